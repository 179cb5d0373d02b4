/* encode.c - Avro binary encoding of one normalized record, straight from the compiled rules (schema order). */
#include "normalize/record.h"
#include "sink/avro_encode.h"

/*
 * One reservation per record: a first pass bounds the encoding (string
 * lengths plus the longest varint for every other part), then every value is
 * written with the raw primitives through a local cursor, with no capacity
 * check or buffer update per value.
 */

/* Upper bound of one value's encoding (a string's length prefix included). */
static inline size_t scalar_bound(bn_type type, const bn_val *v)
{
	return type == BN_T_STRING ? BN_AVRO_LONG_MAX + v->n : BN_AVRO_LONG_MAX;
}

static size_t record_bound(const bn_rules *r, const bn_record *rec)
{
	size_t total = 0;

	for (size_t f = 0; f < r->nfields; f++) {
		const bn_field *fd = &r->fields[f];
		const bn_fieldval *fv = &rec->fields[f];

		if (fd->shape == BN_SHAPE_SCALAR || fd->is_ratio) {
			/* union branch, then the value */
			total += BN_AVRO_LONG_MAX + scalar_bound(fd->type, &fv->v);
			continue;
		}
		/* block count and terminator */
		total += 2 * BN_AVRO_LONG_MAX;
		for (size_t i = fv->first; i < fv->first + fv->count; i++) {
			total += scalar_bound(fd->type, &rec->items[i]);
			if (fd->shape == BN_SHAPE_MAP)
				total += BN_AVRO_LONG_MAX + rec->keys[i].n;
		}
	}
	return total;
}

/*
 * Copy a value already checked (valid UTF-8 by construction): bid-log
 * strings are short, and two overlapping loads and stores (8 or 16 bytes)
 * beat a call to memcpy for them.
 */
static inline char *copy_bytes(char *dst, const char *src, size_t n)
{
	if (n >= 8 && n <= 16) {
		uint64_t a, b;
		memcpy(&a, src, 8);
		memcpy(&b, src + n - 8, 8);
		memcpy(dst, &a, 8);
		memcpy(dst + n - 8, &b, 8);
	} else if (n >= 4 && n < 8) {
		uint32_t a, b;
		memcpy(&a, src, 4);
		memcpy(&b, src + n - 4, 4);
		memcpy(dst, &a, 4);
		memcpy(dst + n - 4, &b, 4);
	} else if (n < 4) {
		for (size_t i = 0; i < n; i++)
			dst[i] = src[i];
	} else if (n <= 32) {
		memcpy(dst, src, 16);
		memcpy(dst + n - 16, src + n - 16, 16);
	} else {
		memcpy(dst, src, n);
	}
	return dst + n;
}

static inline char *put_string(char *p, const char *s, size_t n)
{
	p += bn_avro_put_long_raw(p, (int64_t)n);
	return copy_bytes(p, s, n);
}

static inline char *put_scalar(char *p, bn_type type, const bn_val *v)
{
	switch (type) {
	case BN_T_STRING:
		return put_string(p, v->s, v->n);
	case BN_T_DOUBLE:
		return p + bn_avro_put_double_raw(p, v->d);
	case BN_T_BOOLEAN:
		*p = v->i != 0 ? 1 : 0;
		return p + 1;
	default: /* INT, LONG and TIMESTAMP_MS share the zigzag varint encoding */
		return p + bn_avro_put_long_raw(p, v->i);
	}
}

int bn_record_encode(const bn_normalizer *n, bn_buf *out)
{
	const bn_rules *r = n->rules;
	const bn_record *rec = &n->rec;
	char *p;

	if (bn_buf_reserve(out, record_bound(r, rec)) < 0)
		return BN_ENOMEM;
	p = out->data + out->size;
	for (size_t f = 0; f < r->nfields; f++) {
		const bn_field *fd = &r->fields[f];
		const bn_fieldval *fv = &rec->fields[f];

		if (fd->is_ratio) {
			p += bn_avro_put_double_raw(p, fv->v.d);
		} else if (fd->shape == BN_SHAPE_SCALAR) {
			if (bn_field_nullable(fd)) {
				*p++ = fv->v.is_null ? 0 : 2; /* the union branch 0 or 1, zigzag-encoded */
				if (fv->v.is_null)
					continue;
			}
			p = put_scalar(p, fd->type, &fv->v);
		} else {
			/* One block holding every element, then the 0 terminator. */
			if (fv->count)
				p += bn_avro_put_long_raw(p, (int64_t)fv->count);
			for (size_t i = fv->first; i < fv->first + fv->count; i++) {
				if (fd->shape == BN_SHAPE_MAP)
					p = put_string(p, rec->keys[i].s, rec->keys[i].n);
				p = put_scalar(p, fd->type, &rec->items[i]);
			}
			*p++ = 0;
		}
	}
	out->size = (size_t)(p - out->data);
	return BN_OK;
}
