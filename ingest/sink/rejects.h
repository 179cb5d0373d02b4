/* rejects.h - the reject file: one JSON line per rejected record, with where, why, and the raw line. */
#ifndef BN_SINK_REJECTS_H
#define BN_SINK_REJECTS_H

#include "bidnorm/error.h"
#include "bidnorm/source.h"
#include "sink/output.h"

typedef struct bn_rejects {
	bn_outfile out;
	int open;
} bn_rejects;

/* path NULL: rejects are only counted. */
int bn_rejects_open(bn_rejects *r, const char *path, bn_error *err);

/*
 * Append to b the reject line {"source","line","offset","reason","field",
 * "column","message","raw"} for one rejected record, keeping of the line
 * what raw_mode (a bn_reject_raw) and raw_bytes say: "raw_truncated":true
 * and "raw_size" follow when "raw" holds less than the line, "raw_size"
 * alone when "raw" is null. Worker threads format; the writer appends in
 * input order. Returns BN_OK or BN_ENOMEM.
 */
int bn_rejects_format(bn_buf *b, const char *source, const bn_line *line, const bn_error *why, int raw_mode,
		      size_t raw_bytes);

/*
 * Under a raw_mode other than BN_REJECT_RAW_FULL, replace what why's message
 * quotes of the line (from its first to its last double quote) by "...".
 */
void bn_rejects_redact(bn_error *why, int raw_mode);

/* Append formatted reject lines to the file (nothing when it has no path). */
int bn_rejects_write_formatted(bn_rejects *r, const void *data, size_t size, bn_error *err);

int bn_rejects_commit(bn_rejects *r, bn_error *err);
void bn_rejects_abort(bn_rejects *r);

#endif
