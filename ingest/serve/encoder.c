/* encoder.c - the per-thread serving encoder: raw JSON (through the ingest normalizer) or an ingested Avro record -> model inputs. */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "bidnorm/bidnorm.h"
#include "normalize/cache.h"
#include "record/json.h"
#include "serve/encoder.h"
#include "sink/avro_encode.h"
#include "sink/output.h"
#include "source/utf8_repair.h"
#include "util/jsonw.h"
#include "vocab/avro_reader.h"

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
	bn_error_clear(err);
	/* What `bidnorm ingest` does to a line before and around bn_normalize_line (pipeline/ingest.c). */
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
	rc = bn_normalize_line(e->norm, json, len, err);
	if (rc == BN_EREJECT && err && (err->reason <= BN_REJECT_NONE || err->reason >= BN_REJECT_REASON_COUNT))
		err->reason = BN_REJECT_INVALID_VALUE;
	if (rc < 0)
		return rc;
	return encode_record(e, err);
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

/* ---- bidnorm encode: clean Avro files -> one encoded Avro file ---- */

void bn_encode_options_init(bn_encode_options *opt)
{
	memset(opt, 0, sizeof(*opt));
	opt->codec = BN_CODEC_ZSTANDARD;
	opt->block_bytes = 1 << 20;
}

/* State of one bn_encode_files run: everything it must release. */
typedef struct encode_run {
	const bn_encode_options *opt;
	bn_outfile out;
	bn_avro_writer *writer;
	bn_avro_compressor *comp;
	bn_encoder *enc;
	bn_avro_reader *in;
	bn_buf block;
	uint64_t block_records;
	uint64_t records;
} encode_run;

static int flush_block(encode_run *r, bn_error *err)
{
	const void *data;
	size_t size;
	int rc;

	if (!r->block_records)
		return BN_OK;
	rc = bn_avro_compress(r->comp, r->block.data, r->block.size, &data, &size, err);
	if (rc == BN_OK)
		rc = bn_avro_writer_write_block(r->writer, r->block_records, data, size, err);
	bn_buf_reset(&r->block);
	r->block_records = 0;
	return rc;
}

/* The inputs must be ingest outputs of the model's rules: same hash, same schema. */
static int check_input(encode_run *r, const char *path, bn_error *err)
{
	const bn_rules *rules = r->opt->model->rules;
	size_t n;
	const char *sha = bn_avro_reader_meta(r->in, "bidnorm.rules.sha256", &n);

	bn_error_locate(err, path, 0, 0);
	if (!sha)
		return bn_error_set(err, BN_EUSAGE, "not written by bidnorm ingest (no bidnorm.rules.sha256)");
	if (n != strlen(bn_rules_sha256(rules)) || memcmp(sha, bn_rules_sha256(rules), n) != 0)
		return bn_error_set(err, BN_EUSAGE, "written with other rules (rules sha256 %.*s, the model's %s)",
				    (int)(n < 64 ? n : 64), sha, bn_rules_sha256(rules));
	if (strcmp(bn_avro_reader_schema(r->in), bn_rules_schema_json(rules)) != 0)
		return bn_error_set(err, BN_EUSAGE, "schema is not the rules' schema");
	bn_error_locate(err, NULL, 0, 0);
	return BN_OK;
}

static int encode_input(encode_run *r, const char *path, bn_error *err)
{
	const char *data;
	size_t size;
	uint64_t count;
	int rc;

	rc = bn_avro_reader_open(&r->in, path, err);
	if (rc == BN_OK)
		rc = check_input(r, path, err);
	while (rc == BN_OK && (rc = bn_avro_reader_next_block(r->in, &data, &size, &count, err)) > 0) {
		const char *p = data, *end = data + size;
		rc = BN_OK;
		for (uint64_t i = 0; i < count && rc == BN_OK; i++) {
			rc = bn_encoder_encode_avro(r->enc, &p, end, err);
			if (rc < 0) {
				char why[BN_ERROR_MESSAGE_MAX];
				snprintf(why, sizeof(why), "%s", err ? err->message : "");
				bn_error_locate(err, path, 0, 0);
				bn_error_set(err, rc, "block at byte offset %llu, record %llu: %s",
					     (unsigned long long)bn_avro_reader_block_offset(r->in),
					     (unsigned long long)i + 1, why);
				break;
			}
			if (bn_encoder_put_avro(r->enc, &r->block) < 0) {
				rc = bn_error_set(err, BN_ENOMEM, "out of memory");
				break;
			}
			r->block_records++;
			r->records++;
			if (r->block.size >= r->opt->block_bytes)
				rc = flush_block(r, err);
		}
		if (rc == BN_OK && p != end) {
			bn_error_locate(err, path, 0, 0);
			rc = bn_error_set(err, BN_ECORRUPT, "block at byte offset %llu: %zu bytes after the last record",
					  (unsigned long long)bn_avro_reader_block_offset(r->in), (size_t)(end - p));
		}
	}
	bn_avro_reader_free(r->in);
	r->in = NULL;
	return rc;
}

/* The header's bidnorm.sources: a JSON array of the input names. */
static int sources_json(const bn_encode_options *opt, bn_buf *b)
{
	int bad = bn_jsonw_raw(b, "[");
	for (size_t i = 0; i < opt->ninputs; i++) {
		bad |= bn_jsonw_raw(b, i ? "," : "");
		bad |= bn_jsonw_cstr(b, opt->inputs[i]);
	}
	bad |= bn_jsonw_raw(b, "]");
	bad |= bn_buf_putc(b, '\0');
	return bad ? BN_ENOMEM : BN_OK;
}

int bn_encode_files(bn_encode_summary *sum, const bn_encode_options *opt, bn_error *err)
{
	encode_run r;
	bn_buf sources = { 0 };
	int rc, opened = 0;

	memset(&r, 0, sizeof(r));
	r.opt = opt;
	r.out.fd = -1;
	if (sum)
		memset(sum, 0, sizeof(*sum));
	if (!opt || !opt->model || !opt->output)
		return bn_error_set(err, BN_EUSAGE, "bn_encode_files: model and output must be set");
	if (!opt->ninputs)
		return bn_error_set(err, BN_EUSAGE, "no input given");
	rc = sources_json(opt, &sources);
	if (rc < 0) {
		bn_error_set(err, BN_ENOMEM, "out of memory");
		goto cleanup;
	}
	bn_avro_meta meta[] = {
		{ "bidnorm.version", bn_version() },
		{ "bidnorm.rules.sha256", bn_rules_sha256(opt->model->rules) },
		{ "bidnorm.vocab.sha256", bn_model_vocab_sha256(opt->model) },
		{ "bidnorm.sources", sources.data },
	};
	rc = bn_encoder_new(&r.enc, opt->model, err);
	if (rc == BN_OK)
		rc = bn_avro_compressor_new(&r.comp, opt->codec, opt->codec_level, err);
	if (rc == BN_OK) {
		rc = bn_outfile_open(&r.out, opt->output, err);
		opened = rc == BN_OK;
	}
	if (rc == BN_OK)
		rc = bn_avro_writer_new(&r.writer, r.out.fd, opt->output, bn_model_schema_json(opt->model), opt->codec,
					meta, sizeof(meta) / sizeof(meta[0]), err);
	for (size_t i = 0; rc == BN_OK && i < opt->ninputs; i++)
		rc = encode_input(&r, opt->inputs[i], err);
	if (rc == BN_OK)
		rc = flush_block(&r, err);
	if (rc == BN_OK)
		rc = bn_avro_writer_finish(r.writer, err);
	if (rc == BN_OK && sum) {
		sum->records = r.records;
		sum->bytes_written = bn_avro_writer_bytes(r.writer);
	}
	if (rc == BN_OK)
		rc = bn_outfile_commit(&r.out, err);
	else if (opened)
		bn_outfile_abort(&r.out);
cleanup:
	bn_avro_writer_free(r.writer);
	bn_avro_compressor_free(r.comp);
	bn_encoder_free(r.enc);
	bn_buf_free(&r.block);
	bn_buf_free(&sources);
	return rc;
}

/* ---- bidnorm parity: logged serving inputs against what this library computes ---- */

/* One mismatch kept for the report; every text is JSON except where and the trace lines. */
typedef struct par_example {
	char *where;      /* "source:line" */
	char *raw;        /* the raw input value(s) of the field */
	char *served;     /* as logged */
	char *expected;   /* as bn_encoder_encode_json computes it; for rejects, the reason (plain text) */
	char *trace;      /* normalization trace, one step per line; may be empty */
} par_example;

typedef struct par_feature {
	uint64_t compared;
	uint64_t mismatched;
	par_example *ex;
	size_t nex;
} par_feature;

typedef struct par_name {
	char *name;
	uint64_t count;
} par_name;

/* At most this many distinct unknown names are listed. */
#define PARITY_MAX_UNKNOWN 64
/* At most this many list elements are traced per example. */
#define PARITY_TRACE_ITEMS 8

struct bn_parity {
	const bn_model *model;
	bn_encoder *enc;
	bn_json_parser *json;
	size_t max_examples;
	par_feature *feat;
	par_name unknown[PARITY_MAX_UNKNOWN];
	size_t nunknown;
	uint64_t records;
	uint64_t rejected;
	par_example *rej;
	size_t nrej;
	bn_buf key;       /* unescaped keys */
	bn_buf value;     /* unescaped string values */
	bn_buf out;       /* JSON of one expected value */
	bn_buf trace;
	unsigned char *matched;
	size_t cap_matched;
};

int bn_parity_new(bn_parity **out, const bn_model *model, size_t max_examples, bn_error *err)
{
	bn_parity *p = calloc(1, sizeof(*p));
	int rc;

	if (!p)
		return bn_error_set(err, BN_ENOMEM, "out of memory");
	p->model = model;
	p->max_examples = max_examples;
	p->feat = calloc(model->nfeatures + 1, sizeof(*p->feat));
	p->rej = calloc(max_examples + 1, sizeof(*p->rej));
	if (!p->feat || !p->rej || bn_json_parser_new(&p->json, 0) < 0) {
		bn_parity_free(p);
		return bn_error_set(err, BN_ENOMEM, "out of memory");
	}
	rc = bn_encoder_new(&p->enc, model, err);
	if (rc < 0) {
		bn_parity_free(p);
		return rc;
	}
	*out = p;
	return BN_OK;
}

static void example_free(par_example *x)
{
	free(x->where);
	free(x->raw);
	free(x->served);
	free(x->expected);
	free(x->trace);
}

void bn_parity_free(bn_parity *p)
{
	if (!p)
		return;
	for (size_t f = 0; p->feat && f < p->model->nfeatures; f++) {
		for (size_t k = 0; k < p->feat[f].nex; k++)
			example_free(&p->feat[f].ex[k]);
		free(p->feat[f].ex);
	}
	free(p->feat);
	for (size_t k = 0; k < p->nrej; k++)
		example_free(&p->rej[k]);
	free(p->rej);
	for (size_t k = 0; k < p->nunknown; k++)
		free(p->unknown[k].name);
	bn_encoder_free(p->enc);
	bn_json_parser_free(p->json);
	bn_buf_free(&p->key);
	bn_buf_free(&p->value);
	bn_buf_free(&p->out);
	bn_buf_free(&p->trace);
	free(p->matched);
	free(p);
}

uint64_t bn_parity_records(const bn_parity *p)
{
	return p->records;
}

uint64_t bn_parity_rejected(const bn_parity *p)
{
	return p->rejected;
}

void bn_parity_counts(const bn_parity *p, size_t f, uint64_t *compared, uint64_t *mismatched)
{
	int ok = f < p->model->nfeatures;
	if (compared)
		*compared = ok ? p->feat[f].compared : 0;
	if (mismatched)
		*mismatched = ok ? p->feat[f].mismatched : 0;
}

/* The text of a STRING token, unescaped into b when needed. */
static void string_of(const char *text, const bn_json_token *t, bn_buf *b, const char **s, size_t *n)
{
	if (!t->escaped) {
		*s = text + t->start;
		*n = t->len;
		return;
	}
	bn_buf_reset(b);
	if (bn_buf_reserve(b, t->len + 1) < 0) {
		*s = "";
		*n = 0;
		return;
	}
	*n = bn_json_unescape(text + t->start, t->len, b->data);
	*s = b->data;
}

/* The JSON text of a value token. */
static void json_text(const char *text, const bn_json_token *t, const char **s, size_t *n)
{
	if (t->type == BN_JSON_STRING) {
		*s = text + t->start - 1;
		*n = (size_t)t->len + 2;
	} else {
		*s = text + t->start;
		*n = t->len;
	}
}

/* Index + 1 of the value of member name in object obj (the last one, as ingest reads duplicates), or 0. */
static uint32_t member(bn_parity *p, const bn_json_token *toks, const char *text, uint32_t obj, const char *name)
{
	size_t nl = strlen(name);
	uint32_t found = 0;
	for (uint32_t i = obj + 1; i < toks[obj].next; i = toks[i + 1].next) {
		const char *k;
		size_t kn;
		string_of(text, &toks[i], &p->key, &k, &kn);
		if (kn == nl && memcmp(k, name, nl) == 0)
			found = i + 2;
	}
	return found;
}

/* Index + 1 of the value at path below obj, or 0 when absent. */
static uint32_t at_path(bn_parity *p, const bn_json_token *toks, const char *text, uint32_t obj, const bn_path *path)
{
	uint32_t v = 0;
	for (size_t i = 0; i < path->nparts; i++) {
		if (toks[obj].type != BN_JSON_OBJECT)
			return 0;
		v = member(p, toks, text, obj, path->parts[i]);
		if (!v)
			return 0;
		obj = v - 1;
	}
	return v;
}

static char *dup_buf(const bn_buf *b)
{
	char *s = malloc(b->size + 1);
	if (s) {
		if (b->size)
			memcpy(s, b->data, b->size);
		s[b->size] = '\0';
	}
	return s;
}

static char *dup_text(const char *s, size_t n)
{
	char *d = malloc(n + 1);
	if (d) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

/* The raw value(s) a field is computed from, as JSON. */
static int raw_json(bn_parity *p, const bn_json_token *toks, const char *text, uint32_t raw, const bn_field *fd,
		    bn_buf *out)
{
	const bn_path *paths[2] = { fd->is_ratio ? &fd->numerator : &fd->source, &fd->denominator };
	size_t npaths = fd->is_ratio ? 2 : 1;
	int bad = 0;

	bn_buf_reset(out);
	if (fd->is_ratio)
		bad |= bn_jsonw_raw(out, "{");
	for (size_t i = 0; i < npaths; i++) {
		uint32_t v = at_path(p, toks, text, raw, paths[i]);
		const char *s;
		size_t n;
		if (fd->is_ratio) {
			bad |= bn_jsonw_raw(out, i ? "," : "");
			bad |= bn_jsonw_cstr(out, paths[i]->text);
			bad |= bn_jsonw_raw(out, ":");
		}
		if (!v) {
			bad |= bn_jsonw_raw(out, "null");
			continue;
		}
		json_text(text, &toks[v - 1], &s, &n);
		bad |= bn_buf_append(out, s, n);
	}
	if (fd->is_ratio)
		bad |= bn_jsonw_raw(out, "}");
	return bad ? BN_ENOMEM : BN_OK;
}

typedef struct trace_ctx {
	bn_buf *b;
	const char *prefix;
	int bad;
} trace_ctx;

static void trace_line(trace_ctx *t, const char *step, const char *value, size_t size, int is_null)
{
	char head[64];
	snprintf(head, sizeof(head), "%s%-12s ", t->prefix, step);
	t->bad |= bn_jsonw_raw(t->b, head);
	t->bad |= is_null ? bn_jsonw_raw(t->b, "null") : bn_jsonw_string(t->b, value, size);
	t->bad |= bn_buf_putc(t->b, '\n');
}

static void on_trace(void *ctx, const char *step, const char *value, size_t size, int is_null)
{
	trace_line(ctx, step, value, size, is_null);
}

/* Trace one raw value token (a string, number or boolean: ingest reads the latter two as their text). */
static void trace_value(bn_parity *p, const bn_field *fd, const char *text, const bn_json_token *t, const char *prefix)
{
	trace_ctx tc = { &p->trace, prefix, 0 };
	const char *s, *out;
	size_t n, out_n;
	int is_null;
	bn_error e;

	if (!t || t->type == BN_JSON_NULL) {
		trace_line(&tc, "input", NULL, 0, 1);
		return;
	}
	if (t->type == BN_JSON_STRING) {
		string_of(text, t, &p->value, &s, &n);
	} else if (t->type == BN_JSON_NUMBER || t->type == BN_JSON_TRUE || t->type == BN_JSON_FALSE) {
		json_text(text, t, &s, &n);
	} else {
		trace_line(&tc, "input", "(not a string: dropped)", 23, 0);
		return;
	}
	trace_line(&tc, "input", s, n, 0);
	bn_error_clear(&e);
	if (bn_normalize_value(p->enc->norm, fd->name, s, n, &out, &out_n, &is_null, on_trace, &tc, &e) < 0) {
		trace_line(&tc, "error", e.message, strlen(e.message), 0);
		return;
	}
	trace_line(&tc, "=", out, out_n, is_null);
}

static void trace_field(bn_parity *p, const bn_json_token *toks, const char *text, uint32_t raw, const bn_field *fd)
{
	uint32_t v;
	bn_buf_reset(&p->trace);
	if (fd->type != BN_T_STRING || fd->is_ratio || fd->shape == BN_SHAPE_MAP)
		return;
	v = at_path(p, toks, text, raw, &fd->source);
	if (fd->shape == BN_SHAPE_SCALAR || !v || toks[v - 1].type != BN_JSON_ARRAY) {
		trace_value(p, fd, text, v ? &toks[v - 1] : NULL, "");
		return;
	}
	uint32_t k = 0;
	for (uint32_t i = v; i < toks[v - 1].next && k < PARITY_TRACE_ITEMS; i = toks[i].next, k++) {
		char prefix[32];
		snprintf(prefix, sizeof(prefix), "[%u] ", k);
		trace_value(p, fd, text, &toks[i], prefix);
	}
	if (k < toks[v - 1].size) {
		trace_ctx tc = { &p->trace, "", 0 };
		trace_line(&tc, "...", "(more elements not traced)", 26, 0);
	}
}

static int same_integer(const char *text, const bn_json_token *t, int64_t want)
{
	int64_t x;
	if (t->type == BN_JSON_TRUE || t->type == BN_JSON_FALSE)
		return 0;
	return t->type == BN_JSON_NUMBER && bn_json_number_int64(text + t->start, t->len, &x) == 0 && x == want;
}

/* Bitwise: 0.1 logged with too few digits, or -0 for 0, is a mismatch. */
static int same_double(const char *text, const bn_json_token *t, double want)
{
	double x;
	return t->type == BN_JSON_NUMBER && bn_json_number_double(text + t->start, t->len, &x) == 0 &&
	       memcmp(&x, &want, sizeof(x)) == 0;
}

static int same_number(const char *text, const bn_json_token *t, bn_number_type type, double d, int64_t i)
{
	if (type == BN_NUMBER_DOUBLE)
		return same_double(text, t, d);
	if (type == BN_NUMBER_BOOLEAN && (t->type == BN_JSON_TRUE || t->type == BN_JSON_FALSE))
		return (t->type == BN_JSON_TRUE) == (i != 0);
	return same_integer(text, t, i);
}

/* Does the logged value t of feature f equal what the encoder computed? */
static int same_value(bn_parity *p, size_t f, const bn_json_token *toks, const char *text, uint32_t ti)
{
	const bn_encoder *e = p->enc;
	const bn_feature *ft = &p->model->features[f];
	const bn_enc_val *v = &e->vals[f];
	const bn_json_token *t = &toks[ti];
	const char *s;
	size_t n;

	switch (ft->kind) {
	case BN_FEATURE_CATEGORICAL:
		return same_integer(text, t, v->index);
	case BN_FEATURE_CATEGORICAL_LIST: {
		if (t->type != BN_JSON_ARRAY || t->size != v->count)
			return 0;
		size_t k = 0;
		for (uint32_t i = ti + 1; i < t->next; i = toks[i].next, k++)
			if (!same_integer(text, &toks[i], e->indices[v->first + k]))
				return 0;
		return 1;
	}
	case BN_FEATURE_NUMERIC:
		if (v->is_null || t->type == BN_JSON_NULL)
			return v->is_null && t->type == BN_JSON_NULL;
		return same_number(text, t, ft->number_type, v->d, v->i);
	case BN_FEATURE_NUMERIC_MAP:
		if (t->type != BN_JSON_OBJECT || t->size != v->count)
			return 0;
		if (v->count > p->cap_matched) {
			unsigned char *m = realloc(p->matched, v->count);
			if (!m)
				return 0;
			p->matched = m;
			p->cap_matched = v->count;
		}
		if (v->count)
			memset(p->matched, 0, v->count);
		for (uint32_t i = ti + 1; i < t->next; i = toks[i + 1].next) {
			size_t k;
			string_of(text, &toks[i], &p->key, &s, &n);
			for (k = 0; k < v->count; k++)
				if (!p->matched[k] && e->map_key_lens[v->first + k] == n &&
				    memcmp(e->strings.data + e->map_keys[v->first + k], s, n) == 0)
					break;
			if (k == v->count)
				return 0;
			double d = e->map_values[v->first + k];
			if (!same_number(text, &toks[i + 1], ft->number_type, d, (int64_t)d))
				return 0;
			p->matched[k] = 1;
		}
		return 1;
	case BN_FEATURE_PASSTHROUGH:
		if (v->is_null || t->type != BN_JSON_STRING)
			return v->is_null && t->type == BN_JSON_NULL;
		string_of(text, t, &p->value, &s, &n);
		return n == v->count && memcmp(s, e->strings.data + v->first, n) == 0;
	}
	return 0;
}

static char *where_text(const char *source, uint64_t line)
{
	char buf[BN_ERROR_SOURCE_MAX + 32];
	snprintf(buf, sizeof(buf), "%s:%llu", source ? source : "", (unsigned long long)line);
	return strdup(buf);
}

static int keep_example(bn_parity *p, size_t f, const bn_json_token *toks, const char *text, uint32_t raw,
			uint32_t ti, const char *where_src, uint64_t line)
{
	par_feature *pf = &p->feat[f];
	const bn_field *fd = p->model->features[f].field;
	const char *s;
	size_t n;

	if (pf->nex >= p->max_examples)
		return BN_OK;
	if (!pf->ex && !(pf->ex = calloc(p->max_examples, sizeof(*pf->ex))))
		return BN_ENOMEM;
	par_example *x = &pf->ex[pf->nex++];
	json_text(text, &toks[ti], &s, &n);
	x->served = dup_text(s, n);
	x->where = where_text(where_src, line);
	if (raw_json(p, toks, text, raw, fd, &p->out) == BN_OK)
		x->raw = dup_buf(&p->out);
	bn_buf_reset(&p->out);
	if (bn_encoder_put_json(p->enc, f, &p->out) == BN_OK)
		x->expected = dup_buf(&p->out);
	trace_field(p, toks, text, raw, fd);
	x->trace = dup_buf(&p->trace);
	return x->served && x->where && x->raw && x->expected && x->trace ? BN_OK : BN_ENOMEM;
}

static int count_unknown(bn_parity *p, const char *name, size_t n)
{
	for (size_t k = 0; k < p->nunknown; k++)
		if (strlen(p->unknown[k].name) == n && memcmp(p->unknown[k].name, name, n) == 0) {
			p->unknown[k].count++;
			return BN_OK;
		}
	if (p->nunknown == PARITY_MAX_UNKNOWN)
		return BN_OK;
	p->unknown[p->nunknown].name = dup_text(name, n);
	if (!p->unknown[p->nunknown].name)
		return BN_ENOMEM;
	p->unknown[p->nunknown++].count = 1;
	return BN_OK;
}

static int keep_reject(bn_parity *p, const char *raw, size_t raw_n, const bn_error *why, const char *source,
		       uint64_t line)
{
	char msg[BN_ERROR_MESSAGE_MAX + BN_ERROR_FIELD_MAX + 64];
	par_example *x;

	if (p->nrej >= p->max_examples)
		return BN_OK;
	x = &p->rej[p->nrej++];
	if (why->field[0])
		snprintf(msg, sizeof(msg), "field '%s': %s (%s)", why->field, why->message,
			 bn_reject_reason_name(why->reason));
	else
		snprintf(msg, sizeof(msg), "%s (%s)", why->message, bn_reject_reason_name(why->reason));
	x->expected = strdup(msg);
	x->raw = dup_text(raw, raw_n < 1024 ? raw_n : 1024);
	x->where = where_text(source, line);
	return x->expected && x->raw && x->where ? BN_OK : BN_ENOMEM;
}

int bn_parity_add(bn_parity *p, const char *source, uint64_t line, const char *text, size_t size, bn_error *err)
{
	const bn_model *m = p->model;
	bn_json_result jr;
	uint32_t raw = 0, enc = 0;
	bn_error why;
	int rc;

	rc = bn_json_parse(p->json, text, size, &jr);
	if (rc == BN_JSON_ENOMEM)
		return bn_error_set(err, BN_ENOMEM, "out of memory");
	if (rc < 0) {
		bn_error_locate(err, source, line, jr.column);
		return bn_error_set(err, BN_ECORRUPT, "invalid JSON: %s", jr.message);
	}
	const bn_json_token *toks = jr.tokens;
	if (toks[0].type == BN_JSON_OBJECT) {
		raw = member(p, toks, text, 0, "raw");
		enc = member(p, toks, text, 0, "encoded");
	}
	if (!raw || !enc || toks[raw - 1].type != BN_JSON_OBJECT || toks[enc - 1].type != BN_JSON_OBJECT) {
		bn_error_locate(err, source, line, 0);
		return bn_error_set(err, BN_ECORRUPT, "expected an object with \"raw\" and \"encoded\" objects");
	}
	raw--;
	enc--;
	p->records++;
	bn_error_clear(&why);
	rc = bn_encoder_encode_json(p->enc, text + toks[raw].start, toks[raw].len, &why);
	if (rc == BN_EREJECT) {
		p->rejected++;
		return keep_reject(p, text + toks[raw].start, toks[raw].len, &why, source, line) < 0
			       ? bn_error_set(err, BN_ENOMEM, "out of memory") : BN_OK;
	}
	if (rc < 0) {
		if (err)
			*err = why;
		return rc;
	}
	for (uint32_t i = enc + 1; i < toks[enc].next; i = toks[i + 1].next) {
		const char *k;
		size_t kn, f;
		string_of(text, &toks[i], &p->key, &k, &kn);
		for (f = 0; f < m->nfeatures; f++)
			if (strlen(m->features[f].field->name) == kn && memcmp(m->features[f].field->name, k, kn) == 0)
				break;
		if (f == m->nfeatures) {
			rc = count_unknown(p, k, kn);
		} else {
			p->feat[f].compared++;
			if (same_value(p, f, toks, text, i + 1)) {
				rc = BN_OK;
			} else {
				p->feat[f].mismatched++;
				rc = keep_example(p, f, toks, text, raw, i + 1, source, line);
			}
		}
		if (rc < 0)
			return bn_error_set(err, BN_ENOMEM, "out of memory");
	}
	return BN_OK;
}

static const char *kind_name(int kind)
{
	switch (kind) {
	case BN_FEATURE_CATEGORICAL: return "categorical";
	case BN_FEATURE_CATEGORICAL_LIST: return "categorical_list";
	case BN_FEATURE_NUMERIC: return "numeric";
	case BN_FEATURE_NUMERIC_MAP: return "numeric_map";
	case BN_FEATURE_PASSTHROUGH: return "passthrough";
	default: return "?";
	}
}

static double rate(uint64_t part, uint64_t whole)
{
	return whole ? (double)part / (double)whole : 0.0;
}

static int put_fmt(bn_buf *b, const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 2, 3)))
#endif
	;

static int put_fmt(bn_buf *b, const char *fmt, ...)
{
	va_list ap;
	char tmp[256];
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	if ((size_t)n < sizeof(tmp))
		return bn_buf_append(b, tmp, (size_t)n);
	/* Examples quote whole raw values: format again straight into the buffer. */
	if (bn_buf_reserve(b, (size_t)n + 1) < 0)
		return -1;
	va_start(ap, fmt);
	vsnprintf(b->data + b->size, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->size += (size_t)n;
	return 0;
}

/* The trace lines as a JSON array of strings. */
static int put_trace_json(bn_buf *b, const char *trace)
{
	int bad = bn_jsonw_raw(b, "[");
	for (const char *s = trace; *s;) {
		const char *nl = strchr(s, '\n');
		size_t n = nl ? (size_t)(nl - s) : strlen(s);
		bad |= bn_jsonw_raw(b, s == trace ? "" : ",");
		bad |= bn_jsonw_string(b, s, n);
		s += n + (nl ? 1 : 0);
	}
	return bad | bn_jsonw_raw(b, "]");
}

static int report_json(bn_buf *b, const bn_parity *p, double max_rate, int failed)
{
	const bn_model *m = p->model;
	int bad = 0;

	bad |= put_fmt(b, "{\"records\":%llu,\"rejected\":%llu,\"rejected_rate\":", (unsigned long long)p->records,
		       (unsigned long long)p->rejected);
	bad |= bn_jsonw_double(b, rate(p->rejected, p->records));
	bad |= bn_jsonw_raw(b, ",\"max_mismatch_rate\":");
	bad |= bn_jsonw_double(b, max_rate);
	bad |= put_fmt(b, ",\"failed\":%s,\"numbers\":\"exact: integers equal, doubles bitwise equal or both null\","
		       "\"features\":[", failed ? "true" : "false");
	for (size_t f = 0; f < m->nfeatures; f++) {
		const par_feature *pf = &p->feat[f];
		double r = rate(pf->mismatched, pf->compared);
		bad |= bn_jsonw_raw(b, f ? ",{\"name\":" : "{\"name\":");
		bad |= bn_jsonw_cstr(b, m->features[f].field->name);
		bad |= put_fmt(b, ",\"kind\":\"%s\",\"compared\":%llu,\"mismatched\":%llu,\"mismatch_rate\":",
			       kind_name(m->features[f].kind), (unsigned long long)pf->compared,
			       (unsigned long long)pf->mismatched);
		bad |= bn_jsonw_double(b, r);
		bad |= put_fmt(b, ",\"failed\":%s,\"examples\":[", r > max_rate ? "true" : "false");
		for (size_t k = 0; k < pf->nex; k++) {
			const par_example *x = &pf->ex[k];
			bad |= bn_jsonw_raw(b, k ? ",{\"where\":" : "{\"where\":");
			bad |= bn_jsonw_cstr(b, x->where);
			bad |= put_fmt(b, ",\"raw\":%s,\"served\":%s,\"expected\":%s,\"trace\":", x->raw, x->served,
				       x->expected);
			bad |= put_trace_json(b, x->trace);
			bad |= bn_jsonw_raw(b, "}");
		}
		bad |= bn_jsonw_raw(b, "]}");
	}
	bad |= bn_jsonw_raw(b, "],\"rejected_examples\":[");
	for (size_t k = 0; k < p->nrej; k++) {
		bad |= bn_jsonw_raw(b, k ? ",{\"where\":" : "{\"where\":");
		bad |= bn_jsonw_cstr(b, p->rej[k].where);
		bad |= bn_jsonw_raw(b, ",\"reason\":");
		bad |= bn_jsonw_cstr(b, p->rej[k].expected);
		bad |= bn_jsonw_raw(b, ",\"raw\":");
		bad |= bn_jsonw_cstr(b, p->rej[k].raw);
		bad |= bn_jsonw_raw(b, "}");
	}
	bad |= bn_jsonw_raw(b, "],\"not_features\":[");
	for (size_t k = 0; k < p->nunknown; k++) {
		bad |= bn_jsonw_raw(b, k ? ",{\"name\":" : "{\"name\":");
		bad |= bn_jsonw_cstr(b, p->unknown[k].name);
		bad |= put_fmt(b, ",\"records\":%llu}", (unsigned long long)p->unknown[k].count);
	}
	return bad | bn_jsonw_raw(b, "]}\n");
}

static int report_text(bn_buf *b, const bn_parity *p, double max_rate, int failed)
{
	const bn_model *m = p->model;
	int bad = 0;

	bad |= put_fmt(b, "%llu records, %llu rejected by the rules; numbers compared exactly "
		       "(integers equal, doubles bitwise equal or both null)\n\n",
		       (unsigned long long)p->records, (unsigned long long)p->rejected);
	bad |= put_fmt(b, "%-24s %-17s %10s %10s %9s\n", "feature", "kind", "compared", "mismatched", "rate");
	for (size_t f = 0; f < m->nfeatures; f++) {
		const par_feature *pf = &p->feat[f];
		double r = rate(pf->mismatched, pf->compared);
		bad |= put_fmt(b, "%-24s %-17s %10llu %10llu %9.6f%s\n", m->features[f].field->name,
			       kind_name(m->features[f].kind), (unsigned long long)pf->compared,
			       (unsigned long long)pf->mismatched, r, r > max_rate ? "  FAIL" : "");
	}
	for (size_t f = 0; f < m->nfeatures; f++) {
		const par_feature *pf = &p->feat[f];
		if (!pf->nex)
			continue;
		bad |= put_fmt(b, "\n%s: %llu of %llu mismatched; first examples:\n", m->features[f].field->name,
			       (unsigned long long)pf->mismatched, (unsigned long long)pf->compared);
		for (size_t k = 0; k < pf->nex; k++) {
			const par_example *x = &pf->ex[k];
			bad |= put_fmt(b, "  %s\n    raw       %s\n    served    %s\n    expected  %s\n", x->where, x->raw,
				       x->served, x->expected);
			for (const char *s = x->trace; *s;) {
				const char *nl = strchr(s, '\n');
				size_t n = nl ? (size_t)(nl - s) : strlen(s);
				bad |= bn_jsonw_raw(b, s == x->trace ? "    trace     " : "              ");
				bad |= bn_buf_append(b, s, n);
				bad |= bn_jsonw_raw(b, "\n");
				s += n + (nl ? 1 : 0);
			}
		}
	}
	if (p->rejected) {
		bad |= put_fmt(b, "\nrejected by the rules (not compared): %llu; first examples:\n",
			       (unsigned long long)p->rejected);
		for (size_t k = 0; k < p->nrej; k++)
			bad |= put_fmt(b, "  %s: %s\n", p->rej[k].where, p->rej[k].expected);
	}
	if (p->nunknown) {
		bad |= bn_jsonw_raw(b, "\nlogged but not features of the model (not compared):");
		for (size_t k = 0; k < p->nunknown; k++)
			bad |= put_fmt(b, " %s (%llu records)", p->unknown[k].name, (unsigned long long)p->unknown[k].count);
		bad |= bn_jsonw_raw(b, "\n");
	}
	bad |= put_fmt(b, "\n%s: max mismatch rate %g\n", failed ? "FAILED" : "ok", max_rate);
	return bad;
}

int bn_parity_report(char **out_text, int *failed, const bn_parity *p, double max_mismatch_rate, int json,
		     bn_error *err)
{
	bn_buf b = { 0 };
	int fail = rate(p->rejected, p->records) > max_mismatch_rate;
	int bad;

	for (size_t f = 0; f < p->model->nfeatures; f++)
		if (rate(p->feat[f].mismatched, p->feat[f].compared) > max_mismatch_rate)
			fail = 1;
	bad = json ? report_json(&b, p, max_mismatch_rate, fail) : report_text(&b, p, max_mismatch_rate, fail);
	bad |= bn_buf_putc(&b, '\0');
	if (bad) {
		bn_buf_free(&b);
		return bn_error_set(err, BN_ENOMEM, "out of memory");
	}
	*out_text = b.data;
	*failed = fail;
	return BN_OK;
}
