/* encode.c - Avro binary encoding of one normalized record, straight from the compiled rules (schema order). */
#include "normalize/record.h"
#include "sink/avro_encode.h"

static int put_scalar(bn_buf *out, bn_type type, const bn_val *v)
{
	switch (type) {
	case BN_T_STRING:
		return bn_avro_put_string(out, v->s, v->n);
	case BN_T_DOUBLE:
		return bn_avro_put_double(out, v->d);
	case BN_T_BOOLEAN:
		return bn_avro_put_boolean(out, v->i != 0);
	default: /* INT, LONG and TIMESTAMP_MS share the zigzag varint encoding */
		return bn_avro_put_long(out, v->i);
	}
}

int bn_record_encode(const bn_normalizer *n, bn_buf *out)
{
	const bn_rules *r = n->rules;
	const bn_record *rec = &n->rec;
	int bad = 0;

	for (size_t f = 0; f < r->nfields; f++) {
		const bn_field *fd = &r->fields[f];
		const bn_fieldval *fv = &rec->fields[f];

		if (fd->is_ratio) {
			bad |= bn_avro_put_double(out, fv->v.d);
		} else if (fd->shape == BN_SHAPE_SCALAR) {
			if (bn_field_nullable(fd)) {
				bad |= bn_avro_put_long(out, fv->v.is_null ? 0 : 1);
				if (fv->v.is_null)
					continue;
			}
			bad |= put_scalar(out, fd->type, &fv->v);
		} else {
			/* One block holding every element, then the 0 terminator. */
			if (fv->count)
				bad |= bn_avro_put_long(out, (int64_t)fv->count);
			for (size_t i = fv->first; i < fv->first + fv->count; i++) {
				if (fd->shape == BN_SHAPE_MAP)
					bad |= bn_avro_put_string(out, rec->keys[i].s, rec->keys[i].n);
				bad |= put_scalar(out, fd->type, &rec->items[i]);
			}
			bad |= bn_avro_put_long(out, 0);
		}
	}
	return bad ? BN_ENOMEM : BN_OK;
}
