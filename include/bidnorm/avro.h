/* bidnorm/avro.h - Avro object container files: block codecs and a writer with user metadata. */
#ifndef BIDNORM_AVRO_H
#define BIDNORM_AVRO_H

#include <stddef.h>
#include <stdint.h>

#include "bidnorm/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * How to drive the writer (Avro 1.11 spec, "Object Container Files"):
 *
 *     bn_avro_meta meta[] = {{"bidnorm.version", "0.1.0"}};
 *     bn_avro_writer *w = NULL;
 *     bn_avro_writer_new(&w, fd, "out.avro", schema_json, BN_CODEC_ZSTANDARD, meta, 1, &err);
 *     // per block: encode records (Avro binary) into one buffer, compress it
 *     bn_avro_compress(comp, records, size, &data, &data_size, &err);
 *     bn_avro_writer_write_block(w, record_count, data, data_size, &err);
 *     bn_avro_writer_finish(w, &err);     // flushes; does not fsync or close fd
 *     bn_avro_writer_free(w);
 *
 * Compression is separate from writing so that worker threads can compress
 * whole blocks in parallel (one bn_avro_compressor per thread) while one
 * thread writes them in order.
 */

typedef enum bn_codec {
	BN_CODEC_NULL = 0,
	BN_CODEC_DEFLATE = 1,   /* raw deflate (RFC 1951), as the spec requires */
	BN_CODEC_SNAPPY = 2,    /* snappy block + 4-byte big-endian CRC-32 of the uncompressed data */
	BN_CODEC_ZSTANDARD = 3  /* one zstd frame per block */
} bn_codec;

/*
 * Parse "null", "deflate", "snappy" or "zstandard" (also "zstd"). Returns
 * BN_OK, or BN_EUSAGE with "unknown codec 'x' (expected zstandard, deflate,
 * snappy or null)" in err.
 */
int bn_codec_parse(bn_codec *out, const char *name, bn_error *err);

/*
 * Whether level suits codec, as bn_avro_compressor_new checks it: 0 = the
 * codec's default; deflate 1..9, zstandard its own range, null and snappy
 * only 0. Returns BN_OK, or BN_EUSAGE with "deflate level 10 is out of range
 * (1 to 9)" / "codec 'snappy' has no compression level" in err.
 */
int bn_codec_check_level(bn_codec codec, int level, bn_error *err);

/* The name written into avro.codec. Never NULL. */
const char *bn_codec_name(bn_codec codec);

/* One header metadata entry; both strings are copied by the writer. */
typedef struct bn_avro_meta {
	const char *key;
	const char *value;
} bn_avro_meta;

/* ---- block compression (per thread) ---- */

typedef struct bn_avro_compressor bn_avro_compressor;

/*
 * level: codec level, 0 = the codec's default (zstd 3, deflate 6); deflate
 * takes 1..9, zstandard its own range, null and snappy only 0 (BN_EUSAGE
 * otherwise). zstandard blocks are single frames with the content size and
 * an XXH64 checksum. Returns BN_OK, BN_EUSAGE or BN_ENOMEM.
 */
int bn_avro_compressor_new(bn_avro_compressor **out, bn_codec codec, int level, bn_error *err);

/*
 * Compress one block of encoded records. *out points into a buffer owned by
 * the compressor, valid until the next call on it (for BN_CODEC_NULL it is
 * src itself). Returns BN_OK, BN_ENOMEM, BN_EINTERNAL, or BN_EUSAGE for a
 * block over 2 GiB (no Avro reader accepts one).
 */
int bn_avro_compress(bn_avro_compressor *c, const void *src, size_t size, const void **out,
		     size_t *out_size, bn_error *err);

void bn_avro_compressor_free(bn_avro_compressor *c);

/* ---- the container writer ---- */

typedef struct bn_avro_writer bn_avro_writer;

/*
 * Start a container on fd (not closed by the writer): writes the header with
 * avro.schema = schema_json, avro.codec and the user metadata. name is used
 * in messages. The sync marker is the first 16 bytes of the SHA-256 of
 * the header before it, so the same schema, codec, metadata and blocks give
 * byte-identical files. The header is written to fd
 * before returning, so an unwritable output fails here. schema_json is not
 * parsed, only checked to be non-empty. Returns BN_OK, BN_EUSAGE (empty
 * schema; "avro."-prefixed, duplicate or NULL metadata key or value),
 * BN_EIO ("write failed: <strerror>", err->source = name), BN_ENOMEM.
 */
int bn_avro_writer_new(bn_avro_writer **out, int fd, const char *name, const char *schema_json,
		       bn_codec codec, const bn_avro_meta *meta, size_t nmeta, bn_error *err);

/*
 * Append one block: count records whose compressed bytes are data[0..size).
 * data is copied or written before the call returns. count 0 writes nothing.
 * Output is buffered (256 KiB); after a failure every later call fails too.
 * Returns BN_OK, BN_EIO, or BN_EUSAGE (block over 2 GiB).
 */
int bn_avro_writer_write_block(bn_avro_writer *w, uint64_t count, const void *data, size_t size,
			       bn_error *err);

/* Flush everything written so far to fd. BN_EIO on failure. */
int bn_avro_writer_finish(bn_avro_writer *w, bn_error *err);

/* Bytes of container produced so far (header and blocks), including those
 * still buffered: the file size once finish has succeeded. */
uint64_t bn_avro_writer_bytes(const bn_avro_writer *w);

/* Accepts NULL. Does not close fd. */
void bn_avro_writer_free(bn_avro_writer *w);

#ifdef __cplusplus
}
#endif
#endif
