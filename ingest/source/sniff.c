/* sniff.c - names the compression of an input from its first bytes: the formats read, and those refused with advice. */
#include "source/sniff.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

/*
 * Formats a log shipper or a person may hand us that are not read: told
 * apart by their magic so the user gets advice instead of a reject file full
 * of binary lines. Why these are refused rather than read is in the README.
 */
static const bn_refused_format fmt_bzip2 = { "bzip2", "bzip2 -dc" };
static const bn_refused_format fmt_xz = { "xz", "xz -dc" };
static const bn_refused_format fmt_lz4 = { "lz4", "lz4 -dc" };
static const bn_refused_format fmt_zip = { "zip", "unzip -p" };
/*
 * The framing format (Kinesis Firehose's "Snappy"). No Debian package has a
 * command for it that works: python3-snappy 0.5.3 fails on its checksums
 * under Python 3.10+, which python-snappy 0.6 fixed.
 */
static const bn_refused_format fmt_snappy = { "snappy", "python3 -m snappy -d", "python-snappy 0.6 or later" };
static const bn_refused_format fmt_lzop = { "lzop", "lzop -dc" };

static uint32_t le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int starts(const unsigned char *p, size_t n, const char *magic, size_t len)
{
	return n >= len && memcmp(p, magic, len) == 0;
}

/* "BZh", the block size '1'..'9', then a block or the end-of-stream marker (the digits of pi or of sqrt(pi)). */
static int is_bzip2(const unsigned char *p, size_t n)
{
	return n >= 10 && starts(p, n, "BZh", 3) && p[3] >= '1' && p[3] <= '9' &&
	       (memcmp(p + 4, "\x31\x41\x59\x26\x53\x59", 6) == 0 || memcmp(p + 4, "\x17\x72\x45\x38\x50\x90", 6) == 0);
}

int bn_sniff(const unsigned char *p, size_t n, const bn_refused_format **refused)
{
	const bn_refused_format *f = NULL;
	uint32_t m = n >= 4 ? le32(p) : 0;

	/* zstd frame, or a skippable frame (0x184D2A50..5F) */
	if (m == 0xFD2FB528u || (m & 0xFFFFFFF0u) == 0x184D2A50u)
		return BN_SNIFF_ZSTD;
	if (starts(p, n, "\x1F\x8B", 2))
		return BN_SNIFF_GZIP;
	if (starts(p, n, "\xFD" "7zXZ\0", 6))
		f = &fmt_xz;
	else if (is_bzip2(p, n))
		f = &fmt_bzip2;
	else if (m == 0x184D2204u || m == 0x184C2102u)	/* LZ4 frame, legacy frame */
		f = &fmt_lz4;
	else if (starts(p, n, "PK\3\4", 4) || starts(p, n, "PK\5\6", 4))	/* zip entry, empty zip */
		f = &fmt_zip;
	else if (starts(p, n, "\xFF\x06\0\0sNaPpY", 10))	/* stream identifier chunk: type FF, length 6 */
		f = &fmt_snappy;
	else if (starts(p, n, "\x89LZO\0\r\n\x1A\n", 9))
		f = &fmt_lzop;
	if (!f)
		return BN_SNIFF_PLAIN;
	*refused = f;
	return BN_SNIFF_REFUSED;
}

/* path as a shell word: as is when it holds only characters no shell treats specially, else in single quotes. */
static void shell_word(char *out, size_t size, const char *path)
{
	size_t o = 0;
	const char *s;

	if (path[0] && strspn(path, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-+.,/:@%=") ==
			       strlen(path)) {
		snprintf(out, size, "%s", path);
		return;
	}
	if (size < 3) {
		out[0] = 0;
		return;
	}
	out[o++] = '\'';
	for (s = path; *s && o + 6 < size; s++) {
		if (*s == '\'') {
			memcpy(out + o, "'\\''", 4);
			o += 4;
		} else {
			out[o++] = *s;
		}
	}
	out[o++] = '\'';
	out[o] = 0;
}

int bn_sniff_refuse(bn_error *err, const bn_refused_format *f, const char *name, const char *path,
		    const char *stdin_command)
{
	char word[BN_ERROR_SOURCE_MAX + 16];
	const char *with = f->needs ? ", with " : "", *needs = f->needs ? f->needs : "";

	bn_error_clear(err);
	if (path) {
		shell_word(word, sizeof(word), path);
		bn_error_set(err, BN_ECORRUPT, "%s-compressed input is not supported (decompress it first: %s %s | %s%s%s)",
			     f->name, f->decompress, word, stdin_command, with, needs);
	} else {
		bn_error_set(err, BN_ECORRUPT, "%s-compressed input is not supported (decompress it first: ... | %s | %s%s%s)",
			     f->name, f->decompress, stdin_command, with, needs);
	}
	bn_error_locate(err, name, 0, 0);
	return BN_ECORRUPT;
}
