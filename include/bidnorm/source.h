/* bidnorm/source.h - streaming reader of raw logs: zstd, gzip or plain, split into repaired UTF-8 lines. */
#ifndef BIDNORM_SOURCE_H
#define BIDNORM_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "bidnorm/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * How to drive a source:
 *
 *     bn_source *src = NULL;
 *     if (bn_source_open_file(&src, "x.jsonl.zst", NULL, &err) < 0) ...
 *     bn_line line;
 *     int rc;
 *     while ((rc = bn_source_next(src, &line, &err)) > 0)
 *         use(line.data, line.size);    // valid until the next call
 *     if (rc < 0) ...                     // corrupt/truncated input or read error
 *     bn_source_free(src);
 *
 * Compression is detected from the first bytes, never from the name: the
 * zstd frame magic (0xFD2FB528, several concatenated frames allowed) or a
 * skippable frame (0x184D2A5?) selects zstd; the gzip magic (1F 8B) selects
 * gzip, any number of concatenated members (zero bytes between or after
 * them are padding and skipped, anything else must start a member). The
 * magics of bzip2, xz, lz4 (frame and legacy), zip, snappy (the framing
 * format's stream identifier) and lzop are recognised and refused: the first bn_source_next fails before any line (see there).
 * Anything else is plain text. Memory stays bounded whatever the input.
 * Lines end at LF; a CR before the LF is removed; a last line without LF
 * counts. Blank lines (empty, or only spaces and tabs once the CR is gone)
 * are skipped and counted; they keep their line numbers. Bytes that
 * are not valid UTF-8 are replaced, each on its own, by the Windows-1252
 * character of that byte, encoded as UTF-8 (0x81, 0x8D, 0x8F, 0x90, 0x9D,
 * undefined there, become U+0081... as in "sloppy" Windows-1252).
 * A line longer than max_line_bytes is never held whole: the caller gets its
 * first bytes with too_long set, and the rest is skipped.
 */

typedef struct bn_source bn_source;

typedef struct bn_source_options {
	size_t max_line_bytes; /* longest accepted line (raw bytes, without LF); 0 = 1 MiB */
	size_t too_long_prefix;/* bytes of an over-long line handed back; 0 = 1024 */
	const char *stdin_command; /* the command that reads the decompressed input from stdin, named in the
	                              advice for a refused format; NULL = "bidnorm ingest -"; copied */
} bn_source_options;

/* The compression of an input (bn_source_stats.compressed). Stable values. */
typedef enum bn_compression {
	BN_COMPRESSION_NONE = 0,
	BN_COMPRESSION_ZSTD = 1,
	BN_COMPRESSION_GZIP = 2
} bn_compression;

typedef struct bn_line {
	const char *data;       /* the line, repaired UTF-8, without LF/CRLF; owned by the source, valid until the next call */
	size_t size;            /* bytes at data */
	uint64_t number;        /* 1-based line number in the (decompressed) input, blank lines included */
	uint64_t offset;        /* byte offset of the line start in the decompressed input */
	uint64_t raw_size;      /* length of the raw line in bytes, without LF/CRLF */
	size_t repaired_bytes;  /* invalid UTF-8 bytes that were replaced in this line */
	int too_long;           /* 1: raw_size > max_line_bytes, data holds only a prefix (not repaired) */
} bn_line;

typedef struct bn_source_stats {
	uint64_t bytes_read;      /* bytes read from the file (compressed size for zstd and gzip) */
	uint64_t bytes_decoded;   /* bytes after decompression */
	uint64_t lines;           /* lines handed out (too_long ones included) */
	uint64_t blank_lines;     /* blank lines skipped */
	uint64_t repaired_bytes;  /* invalid UTF-8 bytes replaced */
	uint64_t too_long_lines;  /* lines over max_line_bytes */
	uint64_t frames;          /* zstd frames decoded (0 for other input) */
	int compressed;           /* a bn_compression: 0 for plain text, 1 zstd, 2 gzip */
	uint64_t members;         /* gzip members decoded, empty ones included (0 for other input) */
} bn_source_stats;

/*
 * Open a file by path; "-" means standard input. name_for_errors defaults to
 * the path ("<stdin>" for "-"). opts may be NULL (defaults).
 * Returns BN_OK, BN_EIO (cannot open; err names the file and errno text),
 * BN_ENOMEM. *out is set only on success and owned by the caller.
 */
int bn_source_open_file(bn_source **out, const char *path, const bn_source_options *opts, bn_error *err);

/* Like bn_source_open_file, reading an open descriptor it does not close. */
int bn_source_open_fd(bn_source **out, int fd, const char *name, const bn_source_options *opts, bn_error *err);

/*
 * Like bn_source_open_fd for a descriptor the caller opened on the file at
 * path: messages name it `name` (NULL: path), and the advice for a refused
 * compression format names path as a file ("xz -dc PATH | ...") rather than
 * a stream. Not closed by the source.
 */
int bn_source_open_file_fd(bn_source **out, int fd, const char *name, const char *path,
			   const bn_source_options *opts, bn_error *err);

/* Read from memory (not copied: data must outlive the source). */
int bn_source_open_memory(bn_source **out, const void *data, size_t size, const char *name,
			  const bn_source_options *opts, bn_error *err);

/*
 * The next non-blank line. Returns 1 and fills *line, 0 at the end of the
 * input, or a negative status: BN_ECORRUPT for invalid or truncated zstd or
 * gzip data (err->offset and the message give compressed byte offsets: for
 * truncated input its size, for invalid data the start of the zstd frame or
 * gzip member that holds the damage - a bad checksum is only found at its
 * end; the message names that frame or member, by number for gzip, in both
 * cases; for bytes after a gzip member that do not start another, their
 * offset) or for a refused format (bzip2, xz, lz4, zip, snappy, lzop:
 * "xz-compressed input is not supported (decompress it first: xz -dc PATH |
 * bidnorm ingest -)", before any line), BN_EIO for a read error. Lines before the damage are
 * handed out first. After an error the source must not be read again.
 */
int bn_source_next(bn_source *src, bn_line *line, bn_error *err);

/* Counters so far. */
void bn_source_get_stats(const bn_source *src, bn_source_stats *out);

/* "none", "zstd" or "gzip" for a bn_compression ("unknown" otherwise). Static. */
const char *bn_source_compression_name(int compression);

/* The name used in messages. Owned by the source. */
const char *bn_source_name(const bn_source *src);

/* Close and free; closes the file only if the source opened it. Accepts NULL. */
void bn_source_free(bn_source *src);

#ifdef __cplusplus
}
#endif
#endif
