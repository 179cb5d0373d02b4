/* encoder.c - the per-thread serving encoder: raw JSON (through the ingest normalizer) or an ingested Avro record -> model inputs. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "bidnorm/bidnorm.h"
#include "normalize/cache.h"
#include "serve/encoder.h"
#include "sink/avro_encode.h"
#include "source/utf8_repair.h"
#include "util/jsonw.h"

int bn_encoder_new(bn_encoder **out, const bn_model *model, bn_error *err)
{
	bn_encoder *e = NULL;
	int rc;

	if (!out || !model)
		return bn_error_set(err, BN_EUSAGE, "bn_encoder_new: model must not be NULL");
	e = calloc(1, sizeof(*e));
	if (!e)
		goto nomem;
	e->model = model;
	e->vals = calloc(model->nfeatures + 1, sizeof(*e->vals));
	if (!e->vals)
		goto nomem;
	rc = bn_normalizer_new(&e->norm, model->rules, err);
	if (rc < 0) {
		bn_encoder_free(e);
		return rc;
	}
	*out = e;
	return BN_OK;
nomem:
	bn_encoder_free(e);
	return bn_error_set(err, BN_ENOMEM, "out of memory creating the encoder");
}

void bn_encoder_free(bn_encoder *e)
{
	if (!e)
		return;
	bn_normalizer_free(e->norm);
	free(e->vals);
	free(e->indices);
	free(e->map_values);
	free(e->map_keys);
	free(e->map_key_lens);
	bn_buf_free(&e->strings);
	bn_buf_free(&e->repaired);
	bn_buf_free(&e->request);
	free(e);
}

static int push_index(bn_encoder *e, uint32_t index)
{
	if (e->nindices == e->cap_indices) {
		size_t cap = e->cap_indices ? 2 * e->cap_indices : 256;
		uint32_t *p = realloc(e->indices, cap * sizeof(*p));
		if (!p)
			return BN_ENOMEM;
		e->indices = p;
		e->cap_indices = cap;
	}
	e->indices[e->nindices++] = index;
	return BN_OK;
}

/* Copy s[0..n) NUL-terminated into the string pool; *off is its offset. */
static int push_string(bn_encoder *e, const char *s, size_t n, size_t *off)
{
	*off = e->strings.size;
	if (bn_buf_append(&e->strings, s, n) < 0 || bn_buf_putc(&e->strings, '\0') < 0)
		return BN_ENOMEM;
	return BN_OK;
}

static int push_map_entry(bn_encoder *e, const char *key, size_t n, double value)
{
	if (e->nmap == e->cap_map) {
		size_t cap = e->cap_map ? 2 * e->cap_map : 64;
		double *v = realloc(e->map_values, cap * sizeof(*v));
		if (v)
			e->map_values = v;
		size_t *k = v ? realloc(e->map_keys, cap * sizeof(*k)) : NULL;
		if (k)
			e->map_keys = k;
		size_t *l = k ? realloc(e->map_key_lens, cap * sizeof(*l)) : NULL;
		if (!l)
			return BN_ENOMEM;
		e->map_key_lens = l;
		e->cap_map = cap;
	}
	if (push_string(e, key, n, &e->map_keys[e->nmap]) < 0)
		return BN_ENOMEM;
	e->map_key_lens[e->nmap] = n;
	e->map_values[e->nmap++] = value;
	return BN_OK;
}

/*
 * The one place raw values become model inputs: from the normalized record
 * norm->rec, whether it came from a raw line or from an ingested Avro file.
 */
static int encode_record(bn_encoder *e, bn_error *err)
{
	const bn_model *m = e->model;
	const bn_record *rec = &e->norm->rec;
	int bad = 0;

	e->nindices = 0;
	e->nmap = 0;
	bn_buf_reset(&e->strings);
	for (size_t f = 0; f < m->nfeatures; f++) {
		const bn_feature *ft = &m->features[f];
		const bn_field *fd = ft->field;
		const bn_fieldval *fv = &rec->fields[ft->field_index];
		bn_enc_val *v = &e->vals[f];

		memset(v, 0, sizeof(*v));
		switch (ft->kind) {
		case BN_FEATURE_CATEGORICAL:
			v->is_null = fv->v.is_null;
			v->index = fv->v.is_null ? 0 : bn_vocab_table_find(&ft->vocab, fv->v.s, fv->v.n);
			break;
		case BN_FEATURE_CATEGORICAL_LIST:
			/* Index 0 first, always: an empty list is [0], the same in training and serving. */
			v->first = e->nindices;
			bad |= push_index(e, 0);
			for (size_t k = fv->first; k < fv->first + fv->count; k++)
				bad |= push_index(e, bn_vocab_table_find(&ft->vocab, rec->items[k].s, rec->items[k].n));
			v->count = e->nindices - v->first;
			break;
		case BN_FEATURE_NUMERIC:
			v->is_null = fv->v.is_null;
			if (v->is_null)
				break;
			if (ft->number_type == BN_NUMBER_DOUBLE) {
				v->d = fv->v.d;
			} else {
				v->i = fv->v.i;
				v->d = (double)fv->v.i;
			}
			break;
		case BN_FEATURE_NUMERIC_MAP:
			v->first = e->nmap;
			for (size_t k = fv->first; k < fv->first + fv->count; k++)
				bad |= push_map_entry(e, rec->keys[k].s, rec->keys[k].n,
						      fd->type == BN_T_DOUBLE ? rec->items[k].d : (double)rec->items[k].i);
			v->count = e->nmap - v->first;
			break;
		case BN_FEATURE_PASSTHROUGH:
			v->is_null = fv->v.is_null;
			if (!v->is_null) {
				bad |= push_string(e, fv->v.s, fv->v.n, &v->first);
				v->count = fv->v.n;
			}
			break;
		}
	}
	if (bad)
		return bn_error_set(err, BN_ENOMEM, "out of memory encoding a record");
	e->valid = 1;
	return BN_OK;
}

int bn_encoder_encode_json(bn_encoder *e, const char *json, size_t len, bn_error *err)
{
	size_t max = bn_rules_max_line_bytes(e->model->rules);
	int rc;

	e->valid = 0;
	e->nrows = 0;
	e->row = 0;
	bn_error_clear(err);
	/* What `bidnorm ingest` does to a line before and around bn_normalize_parse (source/source.c,
	 * pipeline/ingest.c), starting with dropping a byte order mark. */
	size_t bom = bn_utf8_bom_size(json, len);
	json += bom;
	len -= bom;
	if (len > max) {
		bn_error_set(err, BN_EREJECT, "line of %llu bytes exceeds limits.max_line_bytes (%zu)",
			     (unsigned long long)len, max);
		if (err)
			err->reason = BN_REJECT_LINE_TOO_LONG;
		return BN_EREJECT;
	}
	if (bn_utf8_valid_prefix(json, len) != len) {
		bn_buf_reset(&e->repaired);
		if (bn_buf_reserve(&e->repaired, BN_UTF8_REPAIR_MAX(len)) < 0)
			return bn_error_set(err, BN_ENOMEM, "out of memory");
		e->repaired.size = bn_utf8_repair(e->repaired.data, NULL, json, len);
		json = e->repaired.data;
		len = e->repaired.size;
	}
	/* Later rows are read from the parsed request: keep it, since the caller's buffer is not ours. */
	if (e->model->rules->rows.nsteps && json != e->repaired.data) {
		bn_buf_reset(&e->request);
		if (bn_buf_append(&e->request, json, len) < 0)
			return bn_error_set(err, BN_ENOMEM, "out of memory");
		json = e->request.data;
	}
	size_t nrows = 0;
	rc = bn_normalize_parse(e->norm, json, len, &nrows, err);
	if (rc == BN_OK)
		rc = bn_normalize_row(e->norm, 0, err);
	if (rc == BN_EREJECT && err && (err->reason <= BN_REJECT_NONE || err->reason >= BN_REJECT_REASON_COUNT))
		err->reason = BN_REJECT_INVALID_VALUE;
	if (rc < 0)
		return rc;
	rc = encode_record(e, err);
	if (rc == BN_OK)
		e->nrows = nrows;
	return rc;
}

size_t bn_encoder_row_count(const bn_encoder *e)
{
	return e ? e->nrows : 0;
}

size_t bn_encoder_row(const bn_encoder *e)
{
	return e ? e->row : 0;
}

int bn_encoder_select_row(bn_encoder *e, size_t row, bn_error *err)
{
	int rc;
	bn_error_clear(err);
	if (!e || row >= e->nrows)
		return bn_error_set(err, BN_EUSAGE, "bn_encoder_select_row: row %zu of a request with %zu rows", row,
				    e ? e->nrows : 0);
	if (row == e->row && e->valid)
		return BN_OK;
	e->valid = 0;
	e->row = row;
	rc = bn_normalize_row(e->norm, row, err);
	if (rc == BN_EREJECT && err && (err->reason <= BN_REJECT_NONE || err->reason >= BN_REJECT_REASON_COUNT))
		err->reason = BN_REJECT_INVALID_VALUE;
	return rc < 0 ? rc : encode_record(e, err);
}

/* ---- records already normalized: Avro binary in the rules' schema ---- */

typedef struct reader {
	const char *p, *end;
} reader;

static int get_long(reader *r, int64_t *out)
{
	uint64_t u = 0;
	for (int shift = 0; shift < 64; shift += 7) {
		if (r->p == r->end)
			return -1;
		unsigned char c = (unsigned char)*r->p++;
		u |= (uint64_t)(c & 0x7f) << shift;
		if (!(c & 0x80)) {
			*out = (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
			return 0;
		}
	}
	return -1;
}

static int get_double(reader *r, double *out)
{
	uint64_t u = 0;
	if (r->end - r->p < 8)
		return -1;
	for (int i = 0; i < 8; i++)
		u |= (uint64_t)(unsigned char)r->p[i] << (8 * i);
	memcpy(out, &u, sizeof(*out));
	r->p += 8;
	return 0;
}

static int get_string(reader *r, const char **s, size_t *n)
{
	int64_t len;
	if (get_long(r, &len) < 0 || len < 0 || len > r->end - r->p)
		return -1;
	*s = r->p;
	*n = (size_t)len;
	r->p += len;
	return 0;
}

static int corrupt(bn_error *err, const bn_field *fd, const char *what)
{
	bn_error_field(err, fd ? fd->name : NULL);
	return bn_error_set(err, BN_ECORRUPT, "%s", what);
}

/* Normalizing a normalized value changes nothing: check it, so the encoding equals the raw line's. */
static int check_fixed_point(bn_encoder *e, const bn_field *fd, const char *s, size_t n, bn_error *err)
{
	bn_normalizer *nz = e->norm;
	bn_chain_result res;
	int rc;

	if (bn_utf8_valid_prefix(s, n) != n)
		return corrupt(err, fd, "invalid UTF-8");
	if (n > BN_VALUE_CACHE_MAX_INPUT || !bn_value_cache_get(nz->cache, fd->chain, s, n, &res)) {
		rc = bn_chain_apply(nz->chain, fd->chain, s, n, &res, NULL, NULL, err);
		if (rc == BN_ENOMEM)
			return rc;
		if (rc == BN_OK && n <= BN_VALUE_CACHE_MAX_INPUT)
			bn_value_cache_put(nz->cache, fd->chain, s, n, &res);
		if (rc < 0)
			res.is_null = 1;
	}
	if (!res.is_null && res.size == n && memcmp(res.data, s, n) == 0)
		return BN_OK;
	bn_buf q = { 0 };
	bn_jsonw_string(&q, s, n < 64 ? n : 64);
	bn_buf_putc(&q, '\0');
	bn_buf q2 = { 0 };
	if (res.is_null)
		bn_jsonw_raw(&q2, "null");
	else
		bn_jsonw_string(&q2, res.data, res.size < 64 ? res.size : 64);
	bn_buf_putc(&q2, '\0');
	bn_error_field(err, fd->name);
	rc = bn_error_set(err, BN_EINTERNAL, "%s is not normalized (normalizes to %s): written with other rules?",
			  q.data ? q.data : "?", q2.data ? q2.data : "?");
	bn_buf_free(&q);
	bn_buf_free(&q2);
	return rc;
}

static int get_scalar(bn_encoder *e, reader *r, const bn_field *fd, bn_val *v, bn_error *err)
{
	memset(v, 0, sizeof(*v));
	switch (fd->type) {
	case BN_T_STRING:
		if (get_string(r, &v->s, &v->n) < 0)
			return corrupt(err, fd, "truncated record");
		return check_fixed_point(e, fd, v->s, v->n, err);
	case BN_T_DOUBLE:
		return get_double(r, &v->d) < 0 ? corrupt(err, fd, "truncated record") : BN_OK;
	case BN_T_BOOLEAN:
		if (r->p == r->end)
			return corrupt(err, fd, "truncated record");
		if ((unsigned char)*r->p > 1)
			return corrupt(err, fd, "invalid boolean");
		v->i = *r->p++;
		return BN_OK;
	default:
		if (get_long(r, &v->i) < 0)
			return corrupt(err, fd, "truncated record");
		if (fd->type == BN_T_INT && (v->i < INT32_MIN || v->i > INT32_MAX))
			return corrupt(err, fd, "int out of range");
		return BN_OK;
	}
}

/* An array or map: blocks of items until a count of 0 (a negative count is followed by the block's byte size). */
static int get_items(bn_encoder *e, reader *r, const bn_field *fd, bn_fieldval *fv, bn_error *err)
{
	bn_record *rec = &e->norm->rec;
	int64_t count, size;
	int rc;

	fv->first = rec->nitems;
	fv->count = 0;
	for (;;) {
		if (get_long(r, &count) < 0)
			return corrupt(err, fd, "truncated record");
		if (count == 0)
			return BN_OK;
		if (count < 0) {
			if (count == INT64_MIN || get_long(r, &size) < 0)
				return corrupt(err, fd, "truncated record");
			count = -count;
		}
		if (count > r->end - r->p)
			return corrupt(err, fd, "item count larger than the data");
		for (int64_t k = 0; k < count; k++) {
			if (bn_record_grow_items(rec) < 0)
				return bn_error_set(err, BN_ENOMEM, "out of memory");
			bn_val *key = &rec->keys[rec->nitems];
			memset(key, 0, sizeof(*key));
			if (fd->shape == BN_SHAPE_MAP) {
				if (get_string(r, &key->s, &key->n) < 0)
					return corrupt(err, fd, "truncated record");
				if (bn_utf8_valid_prefix(key->s, key->n) != key->n)
					return corrupt(err, fd, "invalid UTF-8");
			}
			rc = get_scalar(e, r, fd, &rec->items[rec->nitems], err);
			if (rc < 0)
				return rc;
			rec->nitems++;
			fv->count++;
		}
	}
}

int bn_encoder_encode_avro(bn_encoder *e, const char **p, const char *end, bn_error *err)
{
	const bn_rules *rules = e->model->rules;
	bn_normalizer *nz = e->norm;
	reader r = { *p, end };
	int64_t branch;
	int rc = BN_OK;

	e->valid = 0;
	bn_error_clear(err);
	bn_arena_reset(&nz->rec.arena);
	bn_value_cache_begin_record(nz->cache);
	nz->rec.nitems = 0;
	for (size_t f = 0; f < rules->nfields && rc == BN_OK; f++) {
		const bn_field *fd = &rules->fields[f];
		bn_fieldval *fv = &nz->rec.fields[f];
		memset(fv, 0, sizeof(*fv));
		if (fd->is_ratio) {
			if (get_double(&r, &fv->v.d) < 0)
				rc = corrupt(err, fd, "truncated record");
		} else if (fd->shape != BN_SHAPE_SCALAR) {
			rc = get_items(e, &r, fd, fv, err);
		} else {
			if (bn_field_nullable(fd)) {
				if (get_long(&r, &branch) < 0) {
					rc = corrupt(err, fd, "truncated record");
					break;
				}
				if (branch != 0 && branch != 1) {
					rc = corrupt(err, fd, "invalid union branch");
					break;
				}
				if (branch == 0) {
					fv->v.is_null = 1;
					continue;
				}
			}
			rc = get_scalar(e, &r, fd, &fv->v, err);
		}
	}
	if (rc < 0)
		return rc;
	*p = r.p;
	return encode_record(e, err);
}

/* ---- accessors ---- */

static const bn_enc_val *value_of(const bn_encoder *e, size_t f, bn_feature_kind kind)
{
	if (!e->valid || f >= e->model->nfeatures || e->model->features[f].kind != kind)
		return NULL;
	return &e->vals[f];
}

uint32_t bn_encoder_index(const bn_encoder *e, size_t f)
{
	const bn_enc_val *v = value_of(e, f, BN_FEATURE_CATEGORICAL);
	return v ? v->index : 0;
}

const uint32_t *bn_encoder_indices(const bn_encoder *e, size_t f, size_t *count)
{
	static const uint32_t padding[1] = { 0 };
	const bn_enc_val *v = value_of(e, f, BN_FEATURE_CATEGORICAL_LIST);
	if (!v) {
		/* Even here a list is never empty. */
		*count = 1;
		return padding;
	}
	*count = v->count;
	return e->indices + v->first;
}

double bn_encoder_number(const bn_encoder *e, size_t f, int *is_null)
{
	const bn_enc_val *v = value_of(e, f, BN_FEATURE_NUMERIC);
	if (is_null)
		*is_null = !v || v->is_null;
	return v && !v->is_null ? v->d : 0.0;
}

int64_t bn_encoder_integer(const bn_encoder *e, size_t f, int *is_null)
{
	const bn_enc_val *v = value_of(e, f, BN_FEATURE_NUMERIC);
	if (is_null)
		*is_null = !v || v->is_null;
	return v && !v->is_null ? v->i : 0;
}

size_t bn_encoder_map_count(const bn_encoder *e, size_t f)
{
	const bn_enc_val *v = value_of(e, f, BN_FEATURE_NUMERIC_MAP);
	return v ? v->count : 0;
}

double bn_encoder_map_entry(const bn_encoder *e, size_t f, size_t i, const char **key, size_t *key_size)
{
	const bn_enc_val *v = value_of(e, f, BN_FEATURE_NUMERIC_MAP);
	if (!v || i >= v->count) {
		if (key)
			*key = NULL;
		if (key_size)
			*key_size = 0;
		return 0.0;
	}
	if (key)
		*key = e->strings.data + e->map_keys[v->first + i];
	if (key_size)
		*key_size = e->map_key_lens[v->first + i];
	return e->map_values[v->first + i];
}

const char *bn_encoder_string(const bn_encoder *e, size_t f, size_t *size)
{
	const bn_enc_val *v = value_of(e, f, BN_FEATURE_PASSTHROUGH);
	if (size)
		*size = v && !v->is_null ? v->count : 0;
	return v && !v->is_null ? e->strings.data + v->first : NULL;
}

/* ---- output forms: Avro binary (bidnorm encode) and JSON (bidnorm parity reports) ---- */

static int put_number(bn_buf *out, bn_number_type t, const bn_enc_val *v)
{
	switch (t) {
	case BN_NUMBER_DOUBLE: return bn_avro_put_double(out, v->d);
	case BN_NUMBER_BOOLEAN: return bn_avro_put_boolean(out, v->i != 0);
	default: return bn_avro_put_long(out, v->i);
	}
}

int bn_encoder_put_avro(const bn_encoder *e, bn_buf *out)
{
	const bn_model *m = e->model;
	int bad = 0;

	for (size_t f = 0; f < m->nfeatures; f++) {
		const bn_feature *ft = &m->features[f];
		const bn_enc_val *v = &e->vals[f];
		switch (ft->kind) {
		case BN_FEATURE_CATEGORICAL:
			bad |= bn_avro_put_int(out, (int32_t)v->index);
			break;
		case BN_FEATURE_CATEGORICAL_LIST:
			bad |= bn_avro_put_count(out, v->count);
			for (size_t k = 0; k < v->count; k++)
				bad |= bn_avro_put_int(out, (int32_t)e->indices[v->first + k]);
			bad |= bn_avro_put_end(out);
			break;
		case BN_FEATURE_NUMERIC:
			if (ft->nullable) {
				bad |= bn_avro_put_branch(out, v->is_null ? 0 : 1);
				if (v->is_null)
					break;
			}
			bad |= put_number(out, ft->number_type, v);
			break;
		case BN_FEATURE_NUMERIC_MAP:
			if (v->count)
				bad |= bn_avro_put_count(out, v->count);
			for (size_t k = v->first; k < v->first + v->count; k++) {
				bn_enc_val one = { .d = e->map_values[k], .i = (int64_t)e->map_values[k] };
				bad |= bn_avro_put_string(out, e->strings.data + e->map_keys[k], e->map_key_lens[k]);
				bad |= put_number(out, ft->number_type, &one);
			}
			bad |= bn_avro_put_end(out);
			break;
		case BN_FEATURE_PASSTHROUGH:
			bad |= bn_avro_put_branch(out, v->is_null ? 0 : 1);
			if (!v->is_null)
				bad |= bn_avro_put_string(out, e->strings.data + v->first, v->count);
			break;
		}
	}
	return bad ? BN_ENOMEM : BN_OK;
}

static int put_json_number(bn_buf *out, bn_number_type t, double d, int64_t i)
{
	char num[32];
	if (t == BN_NUMBER_DOUBLE)
		return bn_jsonw_double(out, d);
	snprintf(num, sizeof(num), "%" PRId64, i);
	return bn_jsonw_raw(out, num);
}

int bn_encoder_put_json(const bn_encoder *e, size_t f, bn_buf *out)
{
	const bn_feature *ft = &e->model->features[f];
	const bn_enc_val *v = &e->vals[f];
	char num[32];
	int bad = 0;

	switch (ft->kind) {
	case BN_FEATURE_CATEGORICAL:
		snprintf(num, sizeof(num), "%" PRIu32, v->index);
		return bn_jsonw_raw(out, num) < 0 ? BN_ENOMEM : BN_OK;
	case BN_FEATURE_CATEGORICAL_LIST:
		bad |= bn_jsonw_raw(out, "[");
		for (size_t k = 0; k < v->count; k++) {
			snprintf(num, sizeof(num), k ? ",%" PRIu32 : "%" PRIu32, e->indices[v->first + k]);
			bad |= bn_jsonw_raw(out, num);
		}
		bad |= bn_jsonw_raw(out, "]");
		break;
	case BN_FEATURE_NUMERIC:
		bad |= v->is_null ? bn_jsonw_raw(out, "null") : put_json_number(out, ft->number_type, v->d, v->i);
		break;
	case BN_FEATURE_NUMERIC_MAP:
		bad |= bn_jsonw_raw(out, "{");
		for (size_t k = v->first; k < v->first + v->count; k++) {
			bad |= bn_jsonw_raw(out, k > v->first ? "," : "");
			bad |= bn_jsonw_string(out, e->strings.data + e->map_keys[k], e->map_key_lens[k]);
			bad |= bn_jsonw_raw(out, ":");
			bad |= put_json_number(out, ft->number_type, e->map_values[k], (int64_t)e->map_values[k]);
		}
		bad |= bn_jsonw_raw(out, "}");
		break;
	case BN_FEATURE_PASSTHROUGH:
		bad |= v->is_null ? bn_jsonw_raw(out, "null") : bn_jsonw_string(out, e->strings.data + v->first, v->count);
		break;
	}
	return bad ? BN_ENOMEM : BN_OK;
}
