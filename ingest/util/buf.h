/* buf.h - a growable byte buffer owned by a handle and reused across records (grows, never shrinks). */
#ifndef BN_UTIL_BUF_H
#define BN_UTIL_BUF_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct bn_buf {
	char *data;
	size_t size;
	size_t cap;
} bn_buf;

/* Make room for extra more bytes. Returns 0, or -1 when out of memory (buffer unchanged). */
/*
 * The growable array v of *cap elements of elem bytes, with room for n of them (at least one;
 * doubling from 64): v itself, or where realloc moved it (*cap updated). NULL when out of
 * memory; v is then unchanged and still the caller's.
 */
static inline void *bn_array_reserve(void *v, size_t *cap, size_t n, size_t elem)
{
	if (n == 0)
		n = 1;
	if (n <= *cap)
		return v;
	size_t c = *cap ? *cap : 64;
	while (c < n)
		c = c > SIZE_MAX / 2 / elem ? n : c * 2;
	if (c > SIZE_MAX / elem)
		return NULL;
	void *p = realloc(v, c * elem);
	if (p)
		*cap = c;
	return p;
}

static inline int bn_buf_reserve(bn_buf *b, size_t extra)
{
	if (b->cap - b->size >= extra)
		return 0;
	size_t need = b->size + extra;
	if (need < b->size)
		return -1;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	char *p = realloc(b->data, cap);
	if (!p)
		return -1;
	b->data = p;
	b->cap = cap;
	return 0;
}

static inline int bn_buf_append(bn_buf *b, const void *src, size_t n)
{
	if (bn_buf_reserve(b, n) < 0)
		return -1;
	if (n)
		memcpy(b->data + b->size, src, n);
	b->size += n;
	return 0;
}

static inline int bn_buf_putc(bn_buf *b, char c)
{
	if (b->size == b->cap && bn_buf_reserve(b, 1) < 0)
		return -1;
	b->data[b->size++] = c;
	return 0;
}

static inline void bn_buf_reset(bn_buf *b) { b->size = 0; }

static inline void bn_buf_free(bn_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->size = b->cap = 0;
}

#endif
