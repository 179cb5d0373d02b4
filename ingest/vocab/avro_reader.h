/* avro_reader.h - reading Avro object container files and decoding chosen fields of their records. */
#ifndef BN_VOCAB_AVRO_READER_H
#define BN_VOCAB_AVRO_READER_H

#include <stddef.h>
#include <stdint.h>

#include "bidnorm/avro.h"
#include "bidnorm/error.h"

/*
 * How to drive it:
 *
 *     bn_avro_reader *r = NULL;
 *     bn_avro_decoder *d = NULL;
 *     bn_avro_reader_open(&r, path, &err);
 *     bn_avro_decoder_new(&d, bn_avro_reader_schema(r), path, names, n, &err);
 *     while ((rc = bn_avro_reader_next_block(r, &data, &size, &count, &err)) > 0) {
 *         const char *p = data, *end = data + size;
 *         for (i = 0; i < count; i++)
 *             bn_avro_decode_record(d, &p, end, values, &err);   // then check p == end
 *     }
 *
 * The reader maps the file and checks every block: count and size in range,
 * the block inside the file, its sync marker, its decompression (snappy:
 * also the CRC). Errors are BN_ECORRUPT with err->source = the file and a
 * message "corrupt Avro block at byte offset N: why" (N = the block's first
 * byte) or "corrupt Avro header: why".
 */

typedef struct bn_avro_reader bn_avro_reader;

/* Returns BN_OK, BN_EIO ("cannot open: ..."), BN_ECORRUPT, BN_ENOMEM. */
int bn_avro_reader_open(bn_avro_reader **out, const char *path, bn_error *err);

/* Metadata value of key (not NUL-terminated: *size bytes), or NULL when absent. Owned by r. */
const char *bn_avro_reader_meta(const bn_avro_reader *r, const char *key, size_t *size);

/*
 * BN_OK when r's header records this bidnorm's text repair version (bidnorm.text_repair; absent =
 * version 1, as the vocabulary counter records it), else BN_EUSAGE (err->source = path) "written
 * with text repair version 'V', but this bidnorm repairs text with version 'W': the same raw text
 * gives other tokens (training/serving skew); FIX" (absent: "'1' (the header has no
 * bidnorm.text_repair: written before it was recorded, or not by bidnorm ingest), ...").
 */
int bn_avro_check_text_repair(const bn_avro_reader *r, const char *path, const char *fix, bn_error *err);

/* avro.schema as a NUL-terminated string, owned by r. */
const char *bn_avro_reader_schema(const bn_avro_reader *r);

bn_codec bn_avro_reader_codec(const bn_avro_reader *r);

/*
 * The next block, decompressed: *data (owned by r, valid until the next
 * call) of *size bytes holding *count records. Returns 1, 0 at the end of
 * the file, or a negative bn_status.
 */
int bn_avro_reader_next_block(bn_avro_reader *r, const char **data, size_t *size, uint64_t *count,
			      bn_error *err);

/*
 * The file's identity, so a file counted twice shows: the first 16 bytes of the SHA-256 of its
 * size (8 bytes, little-endian), its first 64 KiB and its last 64 KiB (the whole file when smaller).
 * Two files share it only when they are byte-identical, in all likelihood: sync markers alone
 * do not do, as a writer may derive them from the header, which repeats across files.
 */
#define BN_AVRO_IDENTITY_SIZE 16
void bn_avro_reader_identity(const bn_avro_reader *r, unsigned char out[BN_AVRO_IDENTITY_SIZE]);

/* File offset of the block last returned (for messages). */
uint64_t bn_avro_reader_block_offset(const bn_avro_reader *r);

/* Accepts NULL. */
void bn_avro_reader_free(bn_avro_reader *r);

/* ---- decoding records ---- */

/* What a requested field is in the writer schema. */
typedef enum bn_avro_kind {
	BN_AVRO_KIND_OTHER = 0,   /* anything else: bn_avro_decoder_type_name says what */
	BN_AVRO_KIND_STRING,      /* string, or a union of null and string */
	BN_AVRO_KIND_STRING_ARRAY,/* array<string> (or a union of null and it) */
	BN_AVRO_KIND_INT,         /* int or long (nullable or not) */
	BN_AVRO_KIND_BOOLEAN      /* boolean (nullable or not) */
} bn_avro_kind;

typedef struct bn_avro_span {
	const char *p;
	size_t n;
} bn_avro_span;

/* One decoded field. Spans point into the block data; items into the decoder. */
typedef struct bn_avro_value {
	int is_null;
	bn_avro_span str;         /* STRING */
	int64_t i;                /* INT, BOOLEAN (0/1) */
	const bn_avro_span *items;/* STRING_ARRAY */
	size_t nitems;
} bn_avro_value;

typedef struct bn_avro_decoder bn_avro_decoder;

/*
 * A decoder for records of schema_json (the writer schema, a record) that
 * extracts fields names[0..n) and skips the rest. name is the file name for
 * messages. Returns BN_OK, BN_ECORRUPT ("cannot parse avro.schema: why",
 * "avro.schema is not a record"), BN_EUSAGE ("no field 'x' in the schema
 * (fields: a, b, ...)"), BN_ENOMEM. Fields of kind OTHER are decoded as
 * nothing (skipped); the caller decides whether that is an error.
 */
int bn_avro_decoder_new(bn_avro_decoder **out, const char *schema_json, const char *name,
			const char *const *names, size_t n, bn_error *err);

bn_avro_kind bn_avro_decoder_kind(const bn_avro_decoder *d, size_t i);

/* "double", "map", "array of long", "record", ... for messages (static or owned by d). */
const char *bn_avro_decoder_type_name(const bn_avro_decoder *d, size_t i);

/*
 * Decode one record starting at *p (not past end) into values[0..n), and
 * advance *p. Returns BN_OK, BN_ECORRUPT (message says why, without
 * location: the caller adds it), BN_ENOMEM.
 */
int bn_avro_decode_record(bn_avro_decoder *d, const char **p, const char *end, bn_avro_value *values,
			  bn_error *err);

void bn_avro_decoder_free(bn_avro_decoder *d);

#endif
