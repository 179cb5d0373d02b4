/* avro_encode.h - Avro binary encoding primitives (spec 1.11, "Binary Encoding") appending to a reused bn_buf. */
#ifndef BN_SINK_AVRO_ENCODE_H
#define BN_SINK_AVRO_ENCODE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "bidnorm/error.h"
#include "util/buf.h"

/*
 * Two layers:
 *  - bn_avro_put_*_raw(dst, ...) write into memory the caller has already
 *    reserved (BN_AVRO_LONG_MAX bytes for a long, 8 for a double) and return
 *    the number of bytes written. They cannot fail; use them in loops that
 *    reserve once for a whole record.
 *  - bn_avro_put_*(buf, ...) reserve and append; they return 0 or BN_ENOMEM
 *    (the buffer is unchanged then).
 *
 * Composite values are built from these:
 *  - null: nothing; union: bn_avro_put_branch(index) then the value;
 *  - array/map with n > 0 items: bn_avro_put_count(n), the items (a map item
 *    is a string key then the value), then bn_avro_put_end(); an empty
 *    array/map is bn_avro_put_end() alone;
 *  - record: the fields in schema order, nothing around them;
 *  - fixed: the bytes with bn_buf_append; enum: the index as an int.
 */

/* Longest encoding of a long (zigzag varint of 64 bits: 7 bits per byte). */
#define BN_AVRO_LONG_MAX 10

static inline size_t bn_avro_put_long_raw(char *dst, int64_t v)
{
	/* zigzag in unsigned arithmetic: no signed overflow or right shift of negatives */
	uint64_t u = ((uint64_t)v << 1) ^ (0 - ((uint64_t)v >> 63));
	size_t n = 0;
	while (u >= 0x80) {
		dst[n++] = (char)(u | 0x80);
		u >>= 7;
	}
	dst[n++] = (char)u;
	return n;
}

static inline size_t bn_avro_put_double_raw(char *dst, double v)
{
	uint64_t u;
	memcpy(&u, &v, sizeof(u));
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	memcpy(dst, &u, 8); /* one store (GCC -O2 keeps the byte loop below as eight shifts and stores) */
#else
	/* byte by byte so the file is little-endian on any host */
	for (int i = 0; i < 8; i++)
		dst[i] = (char)(u >> (8 * i));
#endif
	return 8;
}

static inline size_t bn_avro_put_float_raw(char *dst, float v)
{
	uint32_t u;
	memcpy(&u, &v, sizeof(u));
	for (int i = 0; i < 4; i++)
		dst[i] = (char)(u >> (8 * i));
	return 4;
}

static inline int bn_avro_put_long(bn_buf *b, int64_t v)
{
	if (bn_buf_reserve(b, BN_AVRO_LONG_MAX) < 0)
		return BN_ENOMEM;
	b->size += bn_avro_put_long_raw(b->data + b->size, v);
	return 0;
}

/* An Avro int has the same encoding as a long; at most 5 bytes. */
static inline int bn_avro_put_int(bn_buf *b, int32_t v) { return bn_avro_put_long(b, v); }

static inline int bn_avro_put_double(bn_buf *b, double v)
{
	if (bn_buf_reserve(b, 8) < 0)
		return BN_ENOMEM;
	b->size += bn_avro_put_double_raw(b->data + b->size, v);
	return 0;
}

static inline int bn_avro_put_float(bn_buf *b, float v)
{
	if (bn_buf_reserve(b, 4) < 0)
		return BN_ENOMEM;
	b->size += bn_avro_put_float_raw(b->data + b->size, v);
	return 0;
}

static inline int bn_avro_put_boolean(bn_buf *b, int v)
{
	return bn_buf_putc(b, v ? 1 : 0) < 0 ? BN_ENOMEM : 0;
}

/* bytes and string: a long length, then the bytes. A string must be UTF-8. */
static inline int bn_avro_put_bytes(bn_buf *b, const void *p, size_t n)
{
	if (n > SIZE_MAX - BN_AVRO_LONG_MAX || bn_buf_reserve(b, BN_AVRO_LONG_MAX + n) < 0)
		return BN_ENOMEM;
	b->size += bn_avro_put_long_raw(b->data + b->size, (int64_t)n);
	if (n)
		memcpy(b->data + b->size, p, n);
	b->size += n;
	return 0;
}

static inline int bn_avro_put_string(bn_buf *b, const char *s, size_t n) { return bn_avro_put_bytes(b, s, n); }

/* The zero-based index of the union branch that follows. */
static inline int bn_avro_put_branch(bn_buf *b, int index) { return bn_avro_put_long(b, index); }

/* Start an array or map block of n items (n > 0: a count of 0 ends the value). */
static inline int bn_avro_put_count(bn_buf *b, size_t n) { return bn_avro_put_long(b, (int64_t)n); }

/* End an array or map. */
static inline int bn_avro_put_end(bn_buf *b) { return bn_buf_putc(b, 0) < 0 ? BN_ENOMEM : 0; }

#endif
