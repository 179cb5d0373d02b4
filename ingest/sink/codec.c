/* codec.c - Avro block codecs (null, deflate, snappy, zstandard): names, and a per-thread compressor reusing its buffers. */
#include "bidnorm/avro.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <snappy-c.h>
#include <zlib.h>
#include <zstd.h>

#include "util/buf.h"

#define DEFLATE_DEFAULT_LEVEL 6
#define ZSTD_DEFAULT_LEVEL 3

/* Java's reader keeps a block in one byte array, so no reader takes more. */
#define BLOCK_LIMIT ((size_t)INT32_MAX)

struct bn_avro_compressor {
	bn_codec codec;
	int level;
	z_stream z;
	int z_ready;
	ZSTD_CCtx *zc;
	bn_buf out;
};

static const struct {
	const char *name;
	bn_codec codec;
} codec_names[] = {
	{"null", BN_CODEC_NULL},
	{"deflate", BN_CODEC_DEFLATE},
	{"snappy", BN_CODEC_SNAPPY},
	{"zstandard", BN_CODEC_ZSTANDARD},
	{"zstd", BN_CODEC_ZSTANDARD},
};

int bn_codec_parse(bn_codec *out, const char *name, bn_error *err)
{
	for (size_t i = 0; name && i < sizeof(codec_names) / sizeof(codec_names[0]); i++) {
		if (strcmp(name, codec_names[i].name) == 0) {
			*out = codec_names[i].codec;
			return BN_OK;
		}
	}
	return bn_error_set(err, BN_EUSAGE, "unknown codec '%s' (expected zstandard, deflate, snappy or null)",
			    name ? name : "");
}

const char *bn_codec_name(bn_codec codec)
{
	switch (codec) {
	case BN_CODEC_NULL: return "null";
	case BN_CODEC_DEFLATE: return "deflate";
	case BN_CODEC_SNAPPY: return "snappy";
	case BN_CODEC_ZSTANDARD: return "zstandard";
	}
	return "unknown";
}

static int check_level(bn_codec codec, int level, int *out, bn_error *err)
{
	switch (codec) {
	case BN_CODEC_DEFLATE:
		if (level == 0)
			level = DEFLATE_DEFAULT_LEVEL;
		if (level < 1 || level > 9)
			return bn_error_set(err, BN_EUSAGE, "deflate level %d is out of range (1 to 9)", level);
		break;
	case BN_CODEC_ZSTANDARD:
		if (level == 0)
			level = ZSTD_DEFAULT_LEVEL;
		if (level < ZSTD_minCLevel() || level > ZSTD_maxCLevel())
			return bn_error_set(err, BN_EUSAGE, "zstandard level %d is out of range (%d to %d)", level,
					    ZSTD_minCLevel(), ZSTD_maxCLevel());
		break;
	case BN_CODEC_NULL:
	case BN_CODEC_SNAPPY:
		if (level != 0)
			return bn_error_set(err, BN_EUSAGE, "codec '%s' has no compression level", bn_codec_name(codec));
		break;
	default:
		return bn_error_set(err, BN_EUSAGE, "unknown codec number %d", (int)codec);
	}
	*out = level;
	return BN_OK;
}

int bn_codec_check_level(bn_codec codec, int level, bn_error *err)
{
	int effective;
	return check_level(codec, level, &effective, err);
}

int bn_avro_compressor_new(bn_avro_compressor **out, bn_codec codec, int level, bn_error *err)
{
	bn_avro_compressor *c = NULL;
	int rc;

	rc = check_level(codec, level, &level, err);
	if (rc < 0)
		goto cleanup;
	c = calloc(1, sizeof(*c));
	if (!c) {
		rc = bn_error_set(err, BN_ENOMEM, "out of memory");
		goto cleanup;
	}
	c->codec = codec;
	c->level = level;
	if (codec == BN_CODEC_DEFLATE) {
		/* windowBits -15: raw deflate without the zlib header and Adler-32, as the spec requires */
		if (deflateInit2(&c->z, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
			rc = bn_error_set(err, BN_ENOMEM, "cannot start deflate: out of memory");
			goto cleanup;
		}
		c->z_ready = 1;
	} else if (codec == BN_CODEC_ZSTANDARD) {
		c->zc = ZSTD_createCCtx();
		if (!c->zc) {
			rc = bn_error_set(err, BN_ENOMEM, "cannot start zstandard: out of memory");
			goto cleanup;
		}
		/* The 4-byte XXH64 checksum costs well under 1% of compression time
		 * and lets every reader detect a corrupt block, which raw deflate
		 * and the null codec cannot. ZSTD_compress2 also records the
		 * content size, so readers can size their output at once. */
		if (ZSTD_isError(ZSTD_CCtx_setParameter(c->zc, ZSTD_c_compressionLevel, level)) ||
		    ZSTD_isError(ZSTD_CCtx_setParameter(c->zc, ZSTD_c_checksumFlag, 1))) {
			rc = bn_error_set(err, BN_EINTERNAL, "cannot configure zstandard level %d", level);
			goto cleanup;
		}
	}
	*out = c;
	c = NULL;
	rc = BN_OK;
cleanup:
	bn_avro_compressor_free(c);
	return rc;
}

static int compress_deflate(bn_avro_compressor *c, const void *src, size_t size, bn_error *err)
{
	uLong bound = deflateBound(&c->z, (uLong)size);
	int zrc;

	if (bn_buf_reserve(&c->out, bound) < 0)
		return bn_error_set(err, BN_ENOMEM, "out of memory for a %zu-byte deflate block", size);
	deflateReset(&c->z);
	/* BLOCK_LIMIT keeps size and bound within uInt */
	c->z.next_in = (Bytef *)(uintptr_t)src;
	c->z.avail_in = (uInt)size;
	c->z.next_out = (Bytef *)c->out.data;
	c->z.avail_out = (uInt)bound;
	zrc = deflate(&c->z, Z_FINISH);
	if (zrc != Z_STREAM_END)
		return bn_error_set(err, BN_EINTERNAL, "deflate failed (%d) on a %zu-byte block", zrc, size);
	c->out.size = bound - c->z.avail_out;
	return BN_OK;
}

static int compress_snappy(bn_avro_compressor *c, const void *src, size_t size, bn_error *err)
{
	size_t bound = snappy_max_compressed_length(size);
	size_t n;
	uLong crc;

	if (bn_buf_reserve(&c->out, bound + 4) < 0)
		return bn_error_set(err, BN_ENOMEM, "out of memory for a %zu-byte snappy block", size);
	n = bound;
	if (snappy_compress(src, size, c->out.data, &n) != SNAPPY_OK)
		return bn_error_set(err, BN_EINTERNAL, "snappy failed on a %zu-byte block", size);
	/* Avro's snappy framing: the CRC-32 of the uncompressed data, big-endian */
	crc = crc32_z(0, (const Bytef *)src, size);
	c->out.data[n] = (char)(crc >> 24);
	c->out.data[n + 1] = (char)(crc >> 16);
	c->out.data[n + 2] = (char)(crc >> 8);
	c->out.data[n + 3] = (char)crc;
	c->out.size = n + 4;
	return BN_OK;
}

static int compress_zstd(bn_avro_compressor *c, const void *src, size_t size, bn_error *err)
{
	size_t bound = ZSTD_compressBound(size);
	size_t n;

	if (bn_buf_reserve(&c->out, bound) < 0)
		return bn_error_set(err, BN_ENOMEM, "out of memory for a %zu-byte zstandard block", size);
	n = ZSTD_compress2(c->zc, c->out.data, bound, src, size);
	if (ZSTD_isError(n))
		return bn_error_set(err, BN_EINTERNAL, "zstandard failed on a %zu-byte block: %s", size,
				    ZSTD_getErrorName(n));
	c->out.size = n;
	return BN_OK;
}

int bn_avro_compress(bn_avro_compressor *c, const void *src, size_t size, const void **out, size_t *out_size,
		     bn_error *err)
{
	int rc;

	if (size > BLOCK_LIMIT)
		return bn_error_set(err, BN_EUSAGE, "block of %zu bytes is over the 2 GiB limit of Avro readers", size);
	switch (c->codec) {
	case BN_CODEC_NULL:
		*out = src;
		*out_size = size;
		return BN_OK;
	case BN_CODEC_DEFLATE:
		rc = compress_deflate(c, src, size, err);
		break;
	case BN_CODEC_SNAPPY:
		rc = compress_snappy(c, src, size, err);
		break;
	case BN_CODEC_ZSTANDARD:
		rc = compress_zstd(c, src, size, err);
		break;
	default:
		return bn_error_set(err, BN_EINTERNAL, "unknown codec number %d", (int)c->codec);
	}
	if (rc < 0)
		return rc;
	*out = c->out.data;
	*out_size = c->out.size;
	return BN_OK;
}

void bn_avro_compressor_free(bn_avro_compressor *c)
{
	if (!c)
		return;
	if (c->z_ready)
		deflateEnd(&c->z);
	ZSTD_freeCCtx(c->zc);
	bn_buf_free(&c->out);
	free(c);
}
