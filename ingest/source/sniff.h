/* sniff.h - names the compression of an input from its first bytes: the formats read, and those refused with advice. */
#ifndef BN_SOURCE_SNIFF_H
#define BN_SOURCE_SNIFF_H

#include <stddef.h>

#include "bidnorm/error.h"

/* Enough leading bytes to tell every format apart (bzip2 and snappy's framing format need ten). */
#define BN_SNIFF_BYTES 10

enum { BN_SNIFF_PLAIN, BN_SNIFF_ZSTD, BN_SNIFF_GZIP, BN_SNIFF_REFUSED };

/* A compression format that is recognised but not read. */
typedef struct bn_refused_format {
	const char *name;       /* "xz" */
	const char *decompress; /* the command that writes it decompressed to stdout: "xz -dc" */
	const char *needs;      /* what that command needs, said after it, or NULL */
} bn_refused_format;

/*
 * The format of an input that starts with p[0..n). n is at least
 * BN_SNIFF_BYTES unless the input is shorter. For BN_SNIFF_REFUSED, *refused
 * is set to the format (static storage).
 */
int bn_sniff(const unsigned char *p, size_t n, const bn_refused_format **refused);

/*
 * Fill err (BN_ECORRUPT, located at name) with the refusal of format f and
 * the command that would read the input: with path (a file name), "xz -dc
 * PATH | stdin_command"; without (stdin, a descriptor, memory), "... | xz -dc
 * | stdin_command"; then ", with NEEDS" when the format says what its
 * command needs. Returns BN_ECORRUPT.
 */
int bn_sniff_refuse(bn_error *err, const bn_refused_format *f, const char *name, const char *path,
		    const char *stdin_command);

#endif
