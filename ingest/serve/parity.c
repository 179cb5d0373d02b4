/* parity.c - bidnorm parity: logged serving requests and their tensors, checked against what this library computes. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "bidnorm/bidnorm.h"
#include "record/json.h"
#include "serve/encoder.h"
#include "util/jsonw.h"

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
	uint64_t malformed; /* lines that are not parity records */
	par_example *bad;   /* the first of them: where, reason (in expected), the line */
	size_t nbad;
	bn_buf key;       /* unescaped keys */
	bn_buf value;     /* unescaped string values */
	bn_buf out;       /* JSON of one expected value */
	bn_buf trace;
	size_t row;       /* the row of the request the record at hand was served for ("row", default 0) */
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
	p->bad = calloc(max_examples + 1, sizeof(*p->bad));
	if (!p->feat || !p->rej || !p->bad || bn_json_parser_new(&p->json, 0) < 0) {
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
	for (size_t k = 0; k < p->nbad; k++)
		example_free(&p->bad[k]);
	free(p->bad);
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

uint64_t bn_parity_malformed(const bn_parity *p)
{
	return p->malformed;
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

/* Index + 1 of element k of array arr, or 0. */
static uint32_t element(const bn_json_token *toks, uint32_t arr, uint32_t k)
{
	if (toks[arr].type != BN_JSON_ARRAY)
		return 0;
	for (uint32_t e = arr + 1; e < toks[arr].next; e = toks[e].next)
		if (k-- == 0)
			return e + 1;
	return 0;
}

/* Index + 1 of the value at the path's steps [from, to) below obj, or 0 when absent. */
static uint32_t at_steps(bn_parity *p, const bn_json_token *toks, const char *text, uint32_t obj,
			 const bn_path_step *steps, size_t n)
{
	uint32_t v = obj + 1;
	char name[256];
	for (size_t i = 0; i < n; i++) {
		const bn_path_step *st = &steps[i];
		if (st->kind == BN_PATH_KEY) {
			if (toks[obj].type != BN_JSON_OBJECT || st->len >= sizeof(name))
				return 0;
			memcpy(name, st->name, st->len);
			name[st->len] = '\0';
			v = member(p, toks, text, obj, name);
		} else {
			/* [*] shows its first match: enough to tell a reader where the value came from */
			v = element(toks, obj, st->kind == BN_PATH_INDEX ? st->index : 0);
		}
		if (!v)
			return 0;
		obj = v - 1;
	}
	return v;
}

/* Index + 1 of the value at path below the raw request obj (row paths: in row p->row), or 0 when absent. */
static uint32_t at_path(bn_parity *p, const bn_json_token *toks, const char *text, uint32_t obj, const bn_path *path)
{
	const bn_rules *r = p->model->rules;
	if (!path->row)
		return at_steps(p, toks, text, obj, path->steps, path->nsteps);
	uint32_t arr = at_steps(p, toks, text, obj, r->rows.steps, r->rows.nsteps);
	uint32_t el = arr ? element(toks, arr - 1, (uint32_t)p->row) : 0;
	return el ? at_steps(p, toks, text, el - 1, path->steps + 1, path->nsteps - 1) : 0;
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

/* The raw value(s) a field is computed from, as JSON: one value, or {path: value, ...} for several paths. */
static int raw_json(bn_parity *p, const bn_json_token *toks, const char *text, uint32_t raw, const bn_field *fd,
		    bn_buf *out)
{
	const bn_path *paths[16];
	size_t npaths = 0;
	int bad = 0;

	bn_buf_reset(out);
	if (fd->row_index) {
		char num[32];
		return bn_buf_append(out, num, (size_t)snprintf(num, sizeof(num), "%zu", p->row)) < 0 ? BN_ENOMEM : BN_OK;
	}
	paths[npaths++] = fd->is_ratio ? &fd->numerator : &fd->source;
	if (fd->is_ratio)
		paths[npaths++] = &fd->denominator;
	for (size_t j = 0; j < fd->nalt && npaths < sizeof(paths) / sizeof(paths[0]); j++)
		paths[npaths++] = &fd->alt[j];
	if (npaths > 1)
		bad |= bn_jsonw_raw(out, "{");
	for (size_t i = 0; i < npaths; i++) {
		uint32_t v = at_path(p, toks, text, raw, paths[i]);
		const char *s;
		size_t n;
		if (npaths > 1) {
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
	if (npaths > 1)
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

/* Does the value at v (index + 1, 0 = absent) count as there, as the extractor counts a source? */
static int has_value(const bn_json_token *toks, uint32_t v)
{
	const bn_json_token *t = v ? &toks[v - 1] : NULL;
	return t && t->type != BN_JSON_NULL && !(t->type == BN_JSON_STRING && t->len == 0);
}

/* Source k of fd (0 = its first path, k = alt[k - 1]). */
static const bn_path *source_path(const bn_field *fd, size_t k)
{
	return k ? &fd->alt[k - 1] : &fd->source;
}

/*
 * The value the extractor took fd from in this row: its first source with a value (present, not
 * null, not ""), or for a same_source_as group the first position where every member has one; the
 * first source when none has. A [*] path counts by its first match, the one the trace shows.
 */
static uint32_t chosen_value(bn_parity *p, const bn_json_token *toks, const char *text, uint32_t raw,
			     const bn_field *fd)
{
	const bn_rules *r = p->model->rules;
	const bn_group_span *g = r->groups ? &r->groups[fd - r->fields] : NULL;

	for (size_t k = 0; fd->chooses && k <= fd->nalt; k++) {
		int all = 1;
		if (g && g->count) {
			for (uint32_t m = 0; m < g->count && all; m++) {
				const bn_field *member = &r->fields[r->group_members[g->first + m]];
				all = has_value(toks, at_path(p, toks, text, raw, source_path(member, k)));
			}
		} else {
			all = has_value(toks, at_path(p, toks, text, raw, source_path(fd, k)));
		}
		if (all)
			return at_path(p, toks, text, raw, source_path(fd, k));
	}
	return at_path(p, toks, text, raw, &fd->source);
}

static void trace_field(bn_parity *p, const bn_json_token *toks, const char *text, uint32_t raw, const bn_field *fd)
{
	uint32_t v;
	bn_buf_reset(&p->trace);
	if (fd->type != BN_T_STRING || fd->is_ratio || fd->shape == BN_SHAPE_MAP || fd->presence)
		return;
	v = chosen_value(p, toks, text, raw, fd);
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

/* "source:line", or "source:line:column" when column is not 0. */
static char *where_text(const char *source, uint64_t line, uint32_t column)
{
	char buf[BN_ERROR_SOURCE_MAX + 48];
	if (column)
		snprintf(buf, sizeof(buf), "%s:%llu:%u", source ? source : "", (unsigned long long)line, column);
	else
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
	x->where = where_text(where_src, line, 0);
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
	x->where = where_text(source, line, 0);
	return x->expected && x->raw && x->where ? BN_OK : BN_ENOMEM;
}

int bn_parity_add_malformed(bn_parity *p, const char *source, uint64_t line, uint32_t column, const char *reason,
			    const char *text, size_t size, bn_error *err)
{
	p->malformed++;
	if (p->nbad >= p->max_examples)
		return BN_OK;
	par_example *x = &p->bad[p->nbad++];
	x->where = where_text(source, line, column);
	x->expected = strdup(reason ? reason : "");
	x->raw = dup_text(text ? text : "", text ? (size < 1024 ? size : 1024) : 0);
	if (!x->where || !x->expected || !x->raw)
		return bn_error_set(err, BN_ENOMEM, "out of memory");
	return BN_OK;
}

int bn_parity_add(bn_parity *p, const char *source, uint64_t line, const char *text, size_t size, bn_error *err)
{
	const bn_model *m = p->model;
	bn_json_result jr;
	uint32_t raw = 0, enc = 0, rowt = 0;
	int64_t row = 0;
	bn_error why;
	int rc;

	rc = bn_json_parse(p->json, text, size, &jr);
	if (rc == BN_JSON_ENOMEM)
		return bn_error_set(err, BN_ENOMEM, "out of memory");
	if (rc < 0) {
		char reason[BN_ERROR_MESSAGE_MAX];
		snprintf(reason, sizeof(reason), "invalid JSON: %s", jr.message);
		return bn_parity_add_malformed(p, source, line, jr.column, reason, text, size, err);
	}
	const bn_json_token *toks = jr.tokens;
	if (toks[0].type == BN_JSON_OBJECT) {
		raw = member(p, toks, text, 0, "raw");
		enc = member(p, toks, text, 0, "encoded");
		rowt = member(p, toks, text, 0, "row");
	}
	if (rowt && (toks[rowt - 1].type != BN_JSON_NUMBER ||
		     bn_json_number_int64(text + toks[rowt - 1].start, toks[rowt - 1].len, &row) < 0 || row < 0))
		return bn_parity_add_malformed(p, source, line, toks[rowt - 1].start + 1,
					       "\"row\" must be a row index (a whole number from 0)", text, size, err);
	if (!raw || !enc || toks[raw - 1].type != BN_JSON_OBJECT || toks[enc - 1].type != BN_JSON_OBJECT) {
		return bn_parity_add_malformed(p, source, line, 0, "expected an object with \"raw\" and \"encoded\" objects",
					       text, size, err);
	}
	raw--;
	enc--;
	p->records++;
	bn_error_clear(&why);
	rc = bn_encoder_encode_json(p->enc, text + toks[raw].start, toks[raw].len, &why);
	if (rc == BN_OK && (uint64_t)row >= bn_encoder_row_count(p->enc)) {
		char reason[BN_ERROR_MESSAGE_MAX];
		p->records--;
		snprintf(reason, sizeof(reason), "\"row\" %lld is past the request's last row (it has %zu)", (long long)row,
			 bn_encoder_row_count(p->enc));
		return bn_parity_add_malformed(p, source, line, toks[rowt - 1].start + 1, reason, text, size, err);
	}
	if (rc == BN_OK && row)
		rc = bn_encoder_select_row(p->enc, (size_t)row, &why);
	p->row = (size_t)row;
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

/* Rejected records or malformed lines: [{"where":..., "reason":..., text_key: the raw text}, ...]. */
static int put_line_examples_json(bn_buf *b, const par_example *x, size_t n, const char *text_key)
{
	int bad = bn_jsonw_raw(b, "[");
	for (size_t k = 0; k < n; k++) {
		bad |= bn_jsonw_raw(b, k ? ",{\"where\":" : "{\"where\":");
		bad |= bn_jsonw_cstr(b, x[k].where);
		bad |= bn_jsonw_raw(b, ",\"reason\":");
		bad |= bn_jsonw_cstr(b, x[k].expected);
		bad |= put_fmt(b, ",\"%s\":", text_key);
		bad |= bn_jsonw_cstr(b, x[k].raw);
		bad |= bn_jsonw_raw(b, "}");
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
	bad |= put_fmt(b, ",\"malformed_lines\":%llu,\"malformed_rate\":", (unsigned long long)p->malformed);
	bad |= bn_jsonw_double(b, rate(p->malformed, p->records + p->malformed));
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
	bad |= bn_jsonw_raw(b, "],\"rejected_examples\":");
	bad |= put_line_examples_json(b, p->rej, p->nrej, "raw");
	bad |= bn_jsonw_raw(b, ",\"malformed_examples\":");
	bad |= put_line_examples_json(b, p->bad, p->nbad, "line");
	bad |= bn_jsonw_raw(b, ",\"not_features\":[");
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

	bad |= put_fmt(b, "%llu records, %llu rejected by the rules", (unsigned long long)p->records,
		       (unsigned long long)p->rejected);
	if (p->malformed)
		bad |= put_fmt(b, ", %llu malformed lines (%.6f of the lines)", (unsigned long long)p->malformed,
			       rate(p->malformed, p->records + p->malformed));
	bad |= bn_jsonw_raw(b, "; numbers compared exactly (integers equal, doubles bitwise equal or both null)\n\n");
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
	if (p->malformed) {
		bad |= put_fmt(b, "\nmalformed lines, not parity records (not compared): %llu; first examples:\n",
			       (unsigned long long)p->malformed);
		for (size_t k = 0; k < p->nbad; k++)
			bad |= put_fmt(b, "  %s: %s\n", p->bad[k].where, p->bad[k].expected);
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
	int fail = 0, bad;

	if (rate(p->rejected, p->records) > max_mismatch_rate)
		fail |= BN_PARITY_FAILED_REJECTED;
	if (rate(p->malformed, p->records + p->malformed) > max_mismatch_rate)
		fail |= BN_PARITY_FAILED_MALFORMED;
	for (size_t f = 0; f < p->model->nfeatures; f++)
		if (rate(p->feat[f].mismatched, p->feat[f].compared) > max_mismatch_rate)
			fail |= BN_PARITY_FAILED_MISMATCH;
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
