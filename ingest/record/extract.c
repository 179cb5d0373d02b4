/* extract.c - from one JSON line to typed field values: pick out the rule paths, coerce types, run chains, apply field policy. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "normalize/record.h"
#include "record/json.h"
#include "record/timestamp.h"
#include "util/jsonw.h"

/* Outcome of reading one value, before the field's policy (required/default/null) applies. */
enum {
	GOT_VALUE = 0,   /* v holds a value (v.is_null when a chain produced null) */
	GOT_MISSING = 1, /* absent or JSON null */
	GOT_INVALID = 2  /* present but not coercible; err->message says why */
};

static const char *json_type_name(int type)
{
	switch (type) {
	case BN_JSON_OBJECT: return "an object";
	case BN_JSON_ARRAY: return "an array";
	case BN_JSON_STRING: return "a string";
	case BN_JSON_NUMBER: return "a number";
	case BN_JSON_TRUE:
	case BN_JSON_FALSE: return "a boolean";
	default: return "null";
	}
}

/* Write s[0..n) as a JSON string literal into out (at most ~64 bytes of content, then "..."). */
static void quote_value(char *out, size_t cap, const char *s, size_t n)
{
	size_t o = 0;
	const size_t limit = 64;
	if (cap < 16)
		return;
	out[o++] = '"';
	for (size_t i = 0; i < n && o + 8 < cap; i++) {
		unsigned char c = (unsigned char)s[i];
		if (i >= limit) {
			memcpy(out + o, "...", 3);
			o += 3;
			break;
		}
		if (c == '"' || c == '\\') {
			out[o++] = '\\';
			out[o++] = (char)c;
		} else if (c < 0x20) {
			o += (size_t)snprintf(out + o, cap - o, "\\u%04x", c);
		} else {
			out[o++] = (char)c;
		}
	}
	out[o++] = '"';
	out[o] = '\0';
}

static int invalid(bn_error *err, const char *fmt, const char *s, size_t n)
{
	char q[128];
	quote_value(q, sizeof(q), s, n);
	bn_error_set(err, BN_EREJECT, fmt, q);
	return GOT_INVALID;
}

/* RFC 8259 number grammar over the whole of s[0..n). */
static int is_json_number(const char *s, size_t n)
{
	bn_json_number num;
	return bn_json_number_split(&num, s, n) == 0;
}

/* The text of a STRING token, unescaped (into the record arena when it has escapes). */
static int string_text(bn_normalizer *n, const char *line, const bn_json_token *t, const char **s, size_t *len)
{
	const char *raw = line + t->start;
	if (!t->escaped) {
		*s = raw;
		*len = t->len;
		return BN_OK;
	}
	char *dst = bn_arena_alloc(&n->rec.arena, t->len ? t->len : 1);
	if (!dst)
		return BN_ENOMEM;
	*len = bn_json_unescape(raw, t->len, dst);
	*s = dst;
	return BN_OK;
}

/* Numeric text of a NUMBER token, or of a STRING holding a JSON number (surrounding spaces allowed). */
static int numeric_text(bn_normalizer *n, const char *line, const bn_json_token *t, const char **s, size_t *len,
			int *coerced)
{
	*coerced = 0;
	if (t->type == BN_JSON_NUMBER) {
		*s = line + t->start;
		*len = t->len;
		return 1;
	}
	if (t->type != BN_JSON_STRING || string_text(n, line, t, s, len) < 0)
		return 0;
	while (*len && (**s == ' ' || **s == '\t')) {
		(*s)++;
		(*len)--;
	}
	while (*len && ((*s)[*len - 1] == ' ' || (*s)[*len - 1] == '\t'))
		(*len)--;
	*coerced = 1;
	return is_json_number(*s, *len);
}

static void count_effects(bn_field_stats *st, uint32_t effects)
{
	while (effects) {
		unsigned bit = (unsigned)__builtin_ctz(effects);
		if (bit < BN_EFFECT_KINDS)
			st->effects[bit]++;
		effects &= effects - 1;
	}
}

/*
 * After this many lookups, a field whose values rarely repeat (event ids,
 * device ids) stops using the cache, so unique values do not crowd out the
 * bundles and tokens that repeat in every record.
 */
#define CACHE_PROBATION 4096

/*
 * Run fd's chain on s[0..len), through the per-thread result cache when the field's values repeat.
 * *stable = 1 when res->data lives in the cache (valid until the next record: no copy needed).
 */
static inline int cache_worth_it(const bn_normalizer *n, size_t f)
{
	return n->cache_tries[f] < CACHE_PROBATION || n->cache_hits[f] * 8 >= n->cache_tries[f];
}

/* The hash prefetch_values computed for the value at s, or a new one. */
static inline uint64_t value_cache_hash(bn_normalizer *n, const bn_field *fd, const char *s, size_t len)
{
	/* In the order they were prefetched; an entry a lookup passed by (a field that
	 * left probation midway, an element past max_items) is skipped. */
	size_t end = n->next_ahead + 4 < n->nahead ? n->next_ahead + 4 : n->nahead;
	for (size_t i = n->next_ahead; i < end; i++) {
		if (n->ahead[i].s == s && n->ahead[i].chain == fd->chain) {
			n->next_ahead = i + 1;
			return n->ahead[i].h;
		}
	}
	return bn_value_cache_hash(n->cache, fd->chain, s, len);
}

static int chain_cached(bn_normalizer *n, const bn_field *fd, const char *s, size_t len, bn_chain_result *res,
			int *stable, bn_error *err)
{
	size_t f = (size_t)(fd - n->rules->fields);
	int use = fd->chain && len <= BN_VALUE_CACHE_MAX_INPUT && cache_worth_it(n, f);
	*stable = 0;
	if (use) {
		n->cache_tries[f]++;
		if (bn_value_cache_get_hashed(n->cache, value_cache_hash(n, fd, s, len), fd->chain, s, len, res)) {
			n->cache_hits[f]++;
			*stable = 1;
			return BN_OK;
		}
	}
	int rc = bn_chain_apply(n->chain, fd->chain, s, len, res, NULL, NULL, err);
	if (rc == BN_OK && use) {
		const char *kept = bn_value_cache_put(n->cache, fd->chain, s, len, res);
		if (kept) {
			res->data = kept;
			*stable = 1;
		}
	}
	return rc;
}

/* A string value: JSON string (or number/boolean as its text) through the field's chain. */
static int read_string(bn_normalizer *n, const bn_field *fd, const char *line, const bn_json_token *t,
		       bn_val *v, bn_field_stats *st, bn_error *err)
{
	const char *s;
	size_t len;
	bn_chain_result res;

	switch (t->type) {
	case BN_JSON_STRING:
		if (string_text(n, line, t, &s, &len) < 0)
			return bn_error_set(err, BN_ENOMEM, "out of memory");
		break;
	case BN_JSON_NUMBER:
		s = line + t->start;
		len = t->len;
		st->coerced++;
		break;
	case BN_JSON_TRUE:
	case BN_JSON_FALSE:
		s = t->type == BN_JSON_TRUE ? "true" : "false";
		len = strlen(s);
		st->coerced++;
		break;
	default:
		bn_error_set(err, BN_EREJECT, "expected a string, got %s", json_type_name(t->type));
		return GOT_INVALID;
	}
	int stable;
	int rc = chain_cached(n, fd, s, len, &res, &stable, err);
	if (rc == BN_EREJECT)
		count_effects(st, res.effects); /* the rejecting field's validation_failed and regex_limit */
	if (rc < 0)
		return rc;
	count_effects(st, res.effects);
	v->is_null = res.is_null;
	if (res.is_null)
		return GOT_VALUE;
	if (stable || (res.data >= s && res.data + res.size <= s + len)) {
		v->s = res.data;
	} else {
		char *copy = bn_arena_dup(&n->rec.arena, res.data, res.size);
		if (!copy)
			return bn_error_set(err, BN_ENOMEM, "out of memory");
		v->s = copy;
	}
	v->n = res.size;
	return GOT_VALUE;
}

static int read_integer(bn_normalizer *n, const bn_field *fd, const char *line, const bn_json_token *t,
			bn_val *v, bn_field_stats *st, bn_error *err)
{
	const char *s;
	size_t len;
	int coerced;
	int64_t x;

	/* A boolean is not a double: it would land in v->i and leave v->d at 0. */
	if ((t->type == BN_JSON_TRUE || t->type == BN_JSON_FALSE) && fd->type != BN_T_DOUBLE) {
		v->i = t->type == BN_JSON_TRUE;
		if (fd->type != BN_T_BOOLEAN)
			st->coerced++;
		return GOT_VALUE;
	}
	if (t->type == BN_JSON_STRING && fd->type != BN_T_DOUBLE) {
		/* Labels and flags arrive as "true"/"false" too. */
		if (string_text(n, line, t, &s, &len) < 0)
			return bn_error_set(err, BN_ENOMEM, "out of memory");
		if ((len == 4 && memcmp(s, "true", 4) == 0) || (len == 5 && memcmp(s, "false", 5) == 0)) {
			v->i = len == 4;
			st->coerced++;
			return GOT_VALUE;
		}
	}
	if (t->type != BN_JSON_NUMBER && t->type != BN_JSON_STRING) {
		bn_error_set(err, BN_EREJECT, "expected a number, got %s", json_type_name(t->type));
		return GOT_INVALID;
	}
	if (!numeric_text(n, line, t, &s, &len, &coerced))
		return invalid(err, fd->type == BN_T_BOOLEAN ? "not a boolean: %s" : "not a number: %s",
			       line + t->start, t->len);
	if (coerced)
		st->coerced++;
	if (fd->type == BN_T_DOUBLE) {
		if (bn_json_number_double(s, len, &v->d) < 0)
			return invalid(err, "not a finite number: %s", s, len);
		return GOT_VALUE;
	}
	if (bn_json_number_int64(s, len, &x) < 0)
		return invalid(err, "not an integer in range: %s", s, len);
	if (fd->type == BN_T_INT && (x < INT32_MIN || x > INT32_MAX))
		return invalid(err, "out of range for int: %s", s, len);
	if (fd->type == BN_T_BOOLEAN && x != 0 && x != 1)
		return invalid(err, "not a boolean: %s", s, len);
	v->i = x;
	return GOT_VALUE;
}

static int read_timestamp(bn_normalizer *n, const char *line, const bn_json_token *t, bn_val *v,
			  bn_field_stats *st, bn_error *err)
{
	const char *s;
	size_t len;
	if (t->type == BN_JSON_NUMBER) {
		st->coerced++;
		if (bn_timestamp_from_number(line + t->start, t->len, &v->i) < 0)
			return invalid(err, "not an ISO-8601 time or epoch number: %s", line + t->start, t->len);
		return GOT_VALUE;
	}
	if (t->type != BN_JSON_STRING) {
		bn_error_set(err, BN_EREJECT, "not an ISO-8601 time or epoch number: got %s", json_type_name(t->type));
		return GOT_INVALID;
	}
	if (string_text(n, line, t, &s, &len) < 0)
		return bn_error_set(err, BN_ENOMEM, "out of memory");
	if (bn_timestamp_parse_text(s, len, &v->i) < 0)
		return invalid(err, "not an ISO-8601 time or epoch number: %s", s, len);
	return GOT_VALUE;
}

/* A value outside the field's 'range': invalid, like one that cannot be converted, and counted apart. */
static int out_of_range(const bn_field *fd, const bn_val *v, bn_field_stats *st, bn_error *err)
{
	st->out_of_range++;
	if (fd->type == BN_T_DOUBLE)
		bn_error_set(err, BN_EREJECT, "%.17g is outside the range [%.17g, %.17g]", v->d, fd->range_min_d,
			     fd->range_max_d);
	else
		bn_error_set(err, BN_EREJECT, "%lld is outside the range [%lld, %lld]", (long long)v->i,
			     (long long)fd->range_min_i, (long long)fd->range_max_i);
	return GOT_INVALID;
}

/* One scalar (or one array element / map value) of field fd from token t (NULL = absent). */
static int read_scalar(bn_normalizer *n, const bn_field *fd, const char *line, const bn_json_token *t,
		       bn_val *v, bn_field_stats *st, bn_error *err)
{
	memset(v, 0, sizeof(*v));
	if (!t || t->type == BN_JSON_NULL)
		return GOT_MISSING;
	switch (fd->type) {
	case BN_T_STRING:
		return read_string(n, fd, line, t, v, st, err);
	case BN_T_TIMESTAMP_MS:
		return read_timestamp(n, line, t, v, st, err);
	default: {
		int got = read_integer(n, fd, line, t, v, st, err);
		if (got == GOT_VALUE && !bn_field_in_range(fd, v->i, v->d))
			return out_of_range(fd, v, st, err);
		return got;
	}
	}
}

int bn_record_grow_items(bn_record *rec)
{
	if (rec->nitems < rec->cap_items)
		return BN_OK;
	size_t cap = rec->cap_items ? rec->cap_items * 2 : 256;
	bn_val *items = realloc(rec->items, cap * sizeof(*items));
	if (!items)
		return BN_ENOMEM;
	rec->items = items;
	bn_val *keys = realloc(rec->keys, cap * sizeof(*keys));
	if (!keys)
		return BN_ENOMEM;
	rec->keys = keys;
	rec->cap_items = cap;
	return BN_OK;
}

static int same_value(int type, const bn_val *a, const bn_val *b)
{
	if (type == BN_T_STRING)
		return a->n == b->n && bn_bytes_equal(a->s, b->s, a->n);
	if (type == BN_T_DOUBLE)
		return a->d == b->d;
	return a->i == b->i;
}

/*
 * Duplicate detection among the entries an array or map has so far
 * (rec->items or rec->keys from first on). Small collections - nearly all of
 * them - are scanned; past DEDUP_LINEAR entries a hash index (in the record
 * arena) takes over, so a hostile line with 100,000 keys costs O(n), not
 * O(n^2) (it took 20-40 s per 1 MiB line).
 */
#define DEDUP_LINEAR 16

typedef struct dedup {
	uint32_t *slot;  /* 1 + entry offset from first, 0 = empty; NULL while scanning */
	size_t mask;
	bn_hash_key key; /* the normalizer's: hostile lines cannot aim at one slot */
} dedup;

static uint64_t value_hash(const dedup *d, int type, const bn_val *v)
{
	uint64_t u;
	if (type == BN_T_STRING)
		return bn_hash(d->key, v->s, v->n);
	if (type == BN_T_DOUBLE) {
		double x = v->d == 0 ? 0.0 : v->d; /* -0.0 and 0.0 are the same value */
		memcpy(&u, &x, sizeof(u));
	} else {
		u = (uint64_t)v->i;
	}
	return bn_hash_u64(d->key, u);
}

static void dedup_put(dedup *d, const bn_val *vals, size_t first, size_t k, int type)
{
	size_t h = (size_t)value_hash(d, type, &vals[first + k]) & d->mask;
	while (d->slot[h])
		h = (h + 1) & d->mask;
	d->slot[h] = (uint32_t)(k + 1);
}

/*
 * Look v up among vals[first..first+count) (every entry so far, removed map
 * keys included). *out = its index or SIZE_MAX. Returns BN_OK or BN_ENOMEM.
 * After appending an entry, call dedup_added.
 */
static int dedup_find(bn_record *rec, dedup *d, int keys, size_t first, size_t count, const bn_val *v, int type,
		      size_t *out)
{
	const bn_val *vals = keys ? rec->keys : rec->items;
	*out = SIZE_MAX;
	if (!d->slot && count <= DEDUP_LINEAR) {
		for (size_t k = first; k < first + count; k++)
			if (same_value(type, &vals[k], v)) {
				*out = k;
				break;
			}
		return BN_OK;
	}
	if (!d->slot || count * 2 > d->mask + 1) {
		size_t cap = 64;
		while (cap < count * 4)
			cap *= 2;
		/* The arena does not align: over-allocate and align by hand. */
		char *p = bn_arena_alloc(&rec->arena, cap * sizeof(uint32_t) + sizeof(uint32_t) - 1);
		if (!p)
			return BN_ENOMEM;
		d->slot = (uint32_t *)(((uintptr_t)p + sizeof(uint32_t) - 1) & ~(uintptr_t)(sizeof(uint32_t) - 1));
		memset(d->slot, 0, cap * sizeof(uint32_t));
		d->mask = cap - 1;
		for (size_t k = 0; k < count; k++)
			dedup_put(d, vals, first, k, type);
	}
	for (size_t h = (size_t)value_hash(d, type, v) & d->mask; d->slot[h]; h = (h + 1) & d->mask) {
		size_t k = first + d->slot[h] - 1;
		if (same_value(type, &vals[k], v)) {
			*out = k;
			break;
		}
	}
	return BN_OK;
}

/* Entry first+k was just appended. */
static void dedup_added(bn_record *rec, dedup *d, int keys, size_t first, size_t k, int type)
{
	if (d->slot)
		dedup_put(d, keys ? rec->keys : rec->items, first, k, type);
}

/* One element of an array field: read, counted, de-duplicated and appended (or dropped). */
static inline __attribute__((always_inline)) int add_element(bn_normalizer *n, const bn_field *fd, const char *line, const bn_json_token *t, dedup *seen,
		       bn_fieldval *fv, bn_field_stats *st, bn_error *err)
{
	bn_record *rec = &n->rec;
	bn_val v;
	size_t k;
	st->items_in++;
	if (fd->max_items && fv->count == fd->max_items) {
		st->items_truncated++;
		return BN_OK;
	}
	int got = read_scalar(n, fd, line, t, &v, st, err);
	if (got < 0)
		return got;
	if (got == GOT_INVALID)
		st->failures++;
	if (got != GOT_VALUE || v.is_null) {
		st->items_dropped++;
		return BN_OK;
	}
	if (fd->unique) {
		if (dedup_find(rec, seen, 0, fv->first, fv->count, &v, fd->type, &k) < 0)
			return bn_error_set(err, BN_ENOMEM, "out of memory");
		if (k != SIZE_MAX) {
			st->items_dropped++;
			return BN_OK;
		}
	}
	if (bn_record_grow_items(rec) < 0)
		return bn_error_set(err, BN_ENOMEM, "out of memory");
	rec->items[rec->nitems++] = v;
	if (fd->unique)
		dedup_added(rec, seen, 0, fv->first, fv->count, fd->type);
	fv->count++;
	return BN_OK;
}

static int read_array(bn_normalizer *n, const bn_field *fd, const char *line, const bn_json_token *toks,
		      uint32_t ti, bn_fieldval *fv, bn_field_stats *st, bn_error *err)
{
	fv->first = n->rec.nitems;
	fv->count = 0;
	if (!ti || toks[ti - 1].type == BN_JSON_NULL)
		return BN_OK;
	const bn_json_token *arr = &toks[ti - 1];
	st->present++;
	if (arr->type != BN_JSON_ARRAY) {
		st->failures++;
		return BN_OK;
	}
	dedup seen = { NULL, 0, n->hkey };
	for (uint32_t i = ti; i < arr->next; i = toks[i].next) {
		int rc = add_element(n, fd, line, &toks[i], &seen, fv, st, err);
		if (rc < 0)
			return rc;
	}
	bn_error_clear(err);
	return BN_OK;
}

/* An array field from a wildcard path: every match is one element, in document order. */
static int read_list(bn_normalizer *n, const bn_field *fd, const char *line, const bn_json_token *toks,
		     const bn_toklist *l, bn_fieldval *fv, bn_field_stats *st, bn_error *err)
{
	fv->first = n->rec.nitems;
	fv->count = 0;
	st->present++;
	dedup seen = { NULL, 0, n->hkey };
	for (size_t i = 0; i < l->n; i++) {
		int rc = add_element(n, fd, line, &toks[l->v[i]], &seen, fv, st, err);
		if (rc < 0)
			return rc;
	}
	bn_error_clear(err);
	return BN_OK;
}

/* Which serving_invalid rule key[0..len) matches, or UINT32_MAX. */
static uint32_t match_invalid(bn_normalizer *n, const char *key, size_t len)
{
	for (size_t r = 0; r < n->rules->ninvalid; r++) {
		int rc = pcre2_match(n->rules->invalid[r].re, (PCRE2_SPTR)key, len, 0, PCRE2_NO_UTF_CHECK,
				     n->match, n->match_ctx);
		if (rc >= 0)
			return (uint32_t)r;
	}
	return UINT32_MAX;
}

static int seen_grow(bn_normalizer *n)
{
	size_t cap = n->seen_cap * 2;
	bn_invalid_seen *t = calloc(cap, sizeof(*t));
	if (!t)
		return BN_ENOMEM;
	for (size_t i = 0; i < n->seen_cap; i++) {
		if (!n->seen[i].key)
			continue;
		size_t j = n->seen[i].hash & (cap - 1);
		while (t[j].key)
			j = (j + 1) & (cap - 1);
		t[j] = n->seen[i];
	}
	free(n->seen);
	n->seen = t;
	n->seen_cap = cap;
	return BN_OK;
}

/* At most this many distinct (object, key) pairs are remembered; later ones are matched uncached. */
#define SEEN_MAX 65536

/*
 * Check key (in the object at plan node `node`) against serving_invalid,
 * counting it when it matches. Returns the rule index or UINT32_MAX.
 * Keys repeat in every record, so the regex runs once per distinct key.
 */
static uint32_t check_key(bn_normalizer *n, uint32_t node, const char *key, size_t len)
{
	if (!n->rules->ninvalid)
		return UINT32_MAX;
	uint64_t h = bn_hash(n->hkey, key, len) ^ node;
	size_t mask = n->seen_cap - 1;
	size_t i = h & mask;
	for (; n->seen[i].key; i = (i + 1) & mask) {
		bn_invalid_seen *e = &n->seen[i];
		if (e->hash == h && e->node == node && e->key_len == len && bn_bytes_equal(e->key, key, len)) {
			if (e->rule != UINT32_MAX)
				e->count++;
			return e->rule;
		}
	}
	uint32_t rule = match_invalid(n, key, len);
	if (n->seen_count >= SEEN_MAX)
		return rule;
	char *copy = malloc(len + 1);
	if (!copy)
		return rule;
	memcpy(copy, key, len);
	copy[len] = '\0';
	n->seen[i] = (bn_invalid_seen){ .node = node, .rule = rule, .count = rule != UINT32_MAX,
					.hash = h, .key = copy, .key_len = len };
	n->seen_count++;
	if (n->seen_count * 2 > n->seen_cap)
		seen_grow(n);
	return rule;
}

static int key_text(bn_normalizer *n, const char *line, const bn_json_token *k, const char **s, size_t *len)
{
	return string_text(n, line, k, s, len);
}

static int read_map(bn_normalizer *n, const bn_field *fd, int32_t node, const char *line,
		    const bn_json_token *toks, uint32_t ti, bn_fieldval *fv, bn_field_stats *st, bn_error *err)
{
	bn_record *rec = &n->rec;
	fv->first = rec->nitems;
	fv->count = 0;
	if (!ti || toks[ti - 1].type == BN_JSON_NULL)
		return BN_OK;
	const bn_json_token *obj = &toks[ti - 1];
	st->present++;
	if (obj->type != BN_JSON_OBJECT) {
		st->failures++;
		return BN_OK;
	}
	uint32_t i = ti, end = obj->next;
	dedup seen = { NULL, 0, n->hkey };
	size_t removed = 0;
	while (i < end) {
		const char *key;
		size_t klen, k;
		bn_val v;
		uint32_t vi = i + 1;
		int got;

		st->items_in++;
		if (key_text(n, line, &toks[i], &key, &klen) < 0)
			return bn_error_set(err, BN_ENOMEM, "out of memory");
		i = toks[vi].next;
		if (fd->strip_serving_invalid && check_key(n, (uint32_t)node, key, klen) != UINT32_MAX) {
			st->keys_stripped++;
			continue;
		}
		got = read_scalar(n, fd, line, &toks[vi], &v, st, err);
		if (got < 0)
			return got;
		if (got == GOT_INVALID)
			st->failures++;
		/*
		 * Duplicate keys: the last one wins, as in most JSON readers - also when it
		 * is null or invalid. A key removed that way stays as a marked entry
		 * (keys[k].is_null) until the map is complete, so nothing moves meanwhile.
		 */
		bn_val kv = { .s = key, .n = klen };
		if (dedup_find(rec, &seen, 1, fv->first, rec->nitems - fv->first, &kv, BN_T_STRING, &k) < 0)
			return bn_error_set(err, BN_ENOMEM, "out of memory");
		if (got != GOT_VALUE || v.is_null) {
			st->items_dropped++;
			if (k != SIZE_MAX && !rec->keys[k].is_null) {
				rec->keys[k].is_null = 1;
				removed++;
				fv->count--;
			}
			continue;
		}
		if (k != SIZE_MAX) {
			if (rec->keys[k].is_null) {
				rec->keys[k].is_null = 0;
				removed--;
				fv->count++;
			} else {
				st->items_dropped++;
			}
			rec->items[k] = v;
			continue;
		}
		if (bn_record_grow_items(rec) < 0)
			return bn_error_set(err, BN_ENOMEM, "out of memory");
		rec->keys[rec->nitems] = kv;
		rec->items[rec->nitems++] = v;
		dedup_added(rec, &seen, 1, fv->first, rec->nitems - 1 - fv->first, BN_T_STRING);
		fv->count++;
	}
	if (removed) {
		/* The map is the last range in rec: squeeze the removed keys out. */
		size_t w = fv->first;
		for (size_t r = fv->first; r < rec->nitems; r++) {
			if (rec->keys[r].is_null)
				continue;
			rec->keys[w] = rec->keys[r];
			rec->items[w++] = rec->items[r];
		}
		rec->nitems = w;
	}
	bn_error_clear(err);
	return BN_OK;
}

/* A ratio operand: a finite, non-negative number (or numeric string). */
static int ratio_operand(bn_normalizer *n, const char *line, const bn_json_token *toks, uint32_t ti, double *out,
			 int *present)
{
	const char *s;
	size_t len;
	int coerced;
	*present = ti && toks[ti - 1].type != BN_JSON_NULL;
	if (!*present)
		return 0;
	if (!numeric_text(n, line, &toks[ti - 1], &s, &len, &coerced))
		return 0;
	return bn_json_number_double(s, len, out) == 0 && *out >= 0;
}

static void read_ratio(bn_normalizer *n, size_t f, const bn_field *fd, const char *line,
		       const bn_json_token *toks, bn_fieldval *fv, bn_field_stats *st)
{
	double num = 0, den = 0;
	int pn, pd;
	int ok_n = ratio_operand(n, line, toks, n->slots[n->field_slot[f]], &num, &pn);
	int ok_d = ratio_operand(n, line, toks, n->slots[n->den_slot[f]], &den, &pd);
	double q = ok_n && ok_d && den > 0 ? num / den : NAN;

	memset(&fv->v, 0, sizeof(fv->v));
	if (pn && pd)
		st->present++;
	if ((pn && !ok_n) || (pd && !ok_d))
		st->failures++;
	if (isfinite(q)) {
		fv->v.d = q;
	} else {
		fv->v.d = fd->ratio_invalid;
		st->defaulted++;
	}
}

static void set_default(const bn_field *fd, bn_val *v)
{
	memset(v, 0, sizeof(*v));
	v->i = fd->def.i;
	v->d = fd->def.d;
	v->s = fd->def.s;
	v->n = fd->def.s_len;
}

static int reject(bn_error *err, int reason, const bn_field *fd)
{
	if (err) {
		err->code = BN_EREJECT;
		err->reason = reason;
	}
	bn_error_field(err, fd ? fd->name : NULL);
	return BN_EREJECT;
}

/* Apply required/default/null to a scalar read. */
static int scalar_policy(const bn_field *fd, int got, bn_fieldval *fv, bn_field_stats *st, bn_error *err)
{
	if (got == GOT_VALUE && !fv->v.is_null) {
		st->present++;
		return BN_OK;
	}
	if (got == GOT_VALUE) {
		/* The value was there, but its chain turned it into null (empty, failed validation). */
		st->present++;
		if (fd->required) {
			bn_error_set(err, BN_EREJECT, "empty after normalization");
			return reject(err, BN_REJECT_INVALID_VALUE, fd);
		}
	} else if (got == GOT_INVALID) {
		st->present++;
		st->failures++;
		if (fd->required)
			return reject(err, BN_REJECT_INVALID_VALUE, fd);
	} else if (fd->required) {
		bn_error_set(err, BN_EREJECT, "missing required field");
		return reject(err, BN_REJECT_MISSING_REQUIRED, fd);
	}
	if (fd->def.present) {
		set_default(fd, &fv->v);
		st->defaulted++;
	} else {
		memset(&fv->v, 0, sizeof(fv->v));
		fv->v.is_null = 1;
		st->nulls++;
	}
	return BN_OK;
}

static int toklist_push(bn_toklist *l, uint32_t v)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		uint32_t *p = realloc(l->v, cap * sizeof(*p));
		if (!p)
			return BN_ENOMEM;
		l->v = p;
		l->cap = cap;
	}
	l->v[l->n++] = v;
	return BN_OK;
}

/*
 * A repeated object key replaces the earlier value whole: forget what node and
 * the nodes below it found inside the earlier value, tokens [from, to).
 */
static void forget_below(bn_normalizer *n, int32_t node, uint32_t from, uint32_t to)
{
	const bn_plan_node *x = &n->nodes[node];
	if (x->slot >= 0) {
		if (x->multi) {
			bn_toklist *l = &n->lists[x->slot];
			size_t w = 0;
			for (size_t i = 0; i < l->n; i++)
				if (l->v[i] < from || l->v[i] >= to)
					l->v[w++] = l->v[i];
			l->n = w;
		} else if (n->slots[x->slot] > from && n->slots[x->slot] <= to) {
			n->slots[x->slot] = 0;
		}
	}
	for (int32_t c = x->first_child; c >= 0; c = n->nodes[c].next_sibling)
		forget_below(n, c, from, to);
}

static void walk_object(bn_normalizer *n, const bn_json_token *toks, const char *line, uint32_t obj, int32_t node);
static void walk_array(bn_normalizer *n, const bn_json_token *toks, const char *line, uint32_t arr, int32_t node);

/* Value token vi matched node: remember it. */
static inline void keep(bn_normalizer *n, const bn_plan_node *x, uint32_t vi)
{
	if (x->slot < 0)
		return;
	if (!x->multi)
		n->slots[x->slot] = vi + 1;
	else if (toklist_push(&n->lists[x->slot], vi) < 0)
		n->oom = 1;
}

/* Look inside value vi when paths go deeper than node. */
static inline void descend(bn_normalizer *n, const bn_json_token *toks, const char *line, int32_t node, uint32_t vi)
{
	const bn_plan_node *x = &n->nodes[node];
	if (toks[vi].type == BN_JSON_OBJECT && x->has_keys)
		walk_object(n, toks, line, vi, node);
	else if (toks[vi].type == BN_JSON_ARRAY && x->has_elems)
		walk_array(n, toks, line, vi, node);
}

/* The KEY child of x named key, or -1: one probe of x's table, a word and a length compared. */
static inline int32_t find_member(const bn_normalizer *n, const bn_plan_node *x, const char *key, size_t klen)
{
	uint64_t prefix = bn_key_prefix(key, klen);
	uint32_t h = bn_key_slot(prefix, klen, x->keytab_mask);
	int32_t c;
	while ((c = n->keytab[x->keytab + h]) >= 0) {
		const bn_plan_node *y = &n->nodes[c];
		if (y->prefix == prefix && y->len == klen &&
		    (klen <= 8 || (y->suffix == bn_key_suffix(key, klen) &&
				   (klen <= 16 || bn_bytes_equal(y->name + 8, key + 8, klen - 16)))))
			return c;
		h = (h + 1) & x->keytab_mask;
	}
	return -1;
}

/* Find the members the plan names, recursing on a path; check every other key against serving_invalid. */
static void walk_object(bn_normalizer *n, const bn_json_token *toks, const char *line, uint32_t obj, int32_t node)
{
	uint32_t i = obj + 1, end = toks[obj].next;
	while (i < end) {
		const bn_json_token *k = &toks[i];
		uint32_t vi = i + 1;
		const char *key;
		size_t klen;
		int32_t c;

		i = toks[vi].next;
		if (key_text(n, line, k, &key, &klen) < 0)
			continue;
		c = find_member(n, &n->nodes[node], key, klen);
		if (c < 0) {
			check_key(n, (uint32_t)node, key, klen);
			continue;
		}
		keep(n, &n->nodes[c], vi);
		if (n->nodes[c].first_child < 0)
			continue;
		/* A duplicate key overwrites: the last occurrence wins, with nothing of the earlier one left below it. */
		if (n->node_obj[c] == obj + 1)
			forget_below(n, c, n->node_val[c], toks[n->node_val[c]].next);
		n->node_obj[c] = obj + 1;
		n->node_val[c] = vi;
		descend(n, toks, line, c, vi);
	}
}

/* Elements of an array: each goes to the [*] child and to the [N] child of its position. */
static void walk_array(bn_normalizer *n, const bn_json_token *toks, const char *line, uint32_t arr, int32_t node)
{
	uint32_t e = arr + 1, end = toks[arr].next, k = 0;
	for (; e < end; e = toks[e].next, k++)
		for (int32_t c = n->nodes[node].first_child; c >= 0; c = n->nodes[c].next_sibling)
			if (n->nodes[c].kind == BN_PATH_ALL ||
			    (n->nodes[c].kind == BN_PATH_INDEX && n->nodes[c].index == k)) {
				keep(n, &n->nodes[c], e);
				if (n->nodes[c].first_child >= 0)
					descend(n, toks, line, c, e);
			}
}

static void clear_slots(bn_normalizer *n, size_t from)
{
	memset(n->slots + from, 0, (n->nslots - from) * sizeof(*n->slots));
	for (size_t s = from; s < n->nslots; s++)
		n->lists[s].n = 0;
}

/* The rows array of a parsed line: *nrows elements, each an object, or a reject. */
static int find_rows(bn_normalizer *n, const bn_json_token *toks, size_t *nrows, bn_error *err)
{
	const bn_rules *r = n->rules;
	uint32_t ti = n->slots[n->rows_slot];
	n->row_toks.n = 0;
	if (!ti || toks[ti - 1].type == BN_JSON_NULL) {
		bn_error_set(err, BN_EREJECT, "no '%s' (the array whose elements become records)", r->rows.text);
		return reject(err, BN_REJECT_MISSING_ROWS, NULL);
	}
	const bn_json_token *arr = &toks[ti - 1];
	if (arr->type != BN_JSON_ARRAY) {
		bn_error_set(err, BN_EREJECT, "'%s' is not an array: got %s", r->rows.text, json_type_name(arr->type));
		return reject(err, BN_REJECT_ROWS_NOT_ARRAY, NULL);
	}
	if (arr->size == 0) {
		bn_error_set(err, BN_EREJECT, "'%s' is an empty array (no records)", r->rows.text);
		return reject(err, BN_REJECT_EMPTY_ROWS, NULL);
	}
	if (arr->size > r->max_rows) {
		bn_error_set(err, BN_EREJECT, "'%s' has %u elements, more than limits.max_rows (%zu)", r->rows.text,
			     arr->size, r->max_rows);
		return reject(err, BN_REJECT_TOO_MANY_ROWS, NULL);
	}
	uint32_t k = 0;
	for (uint32_t e = ti; e < arr->next; e = toks[e].next, k++) {
		if (toks[e].type != BN_JSON_OBJECT) {
			bn_error_set(err, BN_EREJECT, "%s[%u] is not an object: got %s", r->rows.text, k,
				     json_type_name(toks[e].type));
			if (err)
				err->column = toks[e].start + 1;
			return reject(err, BN_REJECT_ROW_NOT_OBJECT, NULL);
		}
		if (toklist_push(&n->row_toks, e) < 0)
			return bn_error_set(err, BN_ENOMEM, "out of memory");
	}
	*nrows = n->row_toks.n;
	return BN_OK;
}

int bn_normalize_parse(bn_normalizer *n, const char *line, size_t size, size_t *nrows, bn_error *err)
{
	bn_json_result jr;
	int rc;

	*nrows = 0;
	n->toks = NULL;
	bn_arena_reset(&n->rec.arena);
	rc = bn_json_parse(n->json, line, size, &jr);
	if (rc == BN_JSON_ENOMEM)
		return bn_error_set(err, BN_ENOMEM, "out of memory parsing JSON");
	if (rc < 0) {
		bn_error_set(err, BN_EREJECT, "invalid JSON: %s", jr.message);
		if (err)
			err->column = jr.column;
		return reject(err, rc == BN_JSON_EDEPTH ? BN_REJECT_TOO_COMPLEX : BN_REJECT_INVALID_JSON, NULL);
	}
	if (jr.tokens[0].type != BN_JSON_OBJECT) {
		bn_error_set(err, BN_EREJECT, "not a JSON object: got %s", json_type_name(jr.tokens[0].type));
		return reject(err, BN_REJECT_NOT_OBJECT, NULL);
	}
	clear_slots(n, 0);
	memset(n->node_obj, 0, n->nnodes * sizeof(*n->node_obj));
	n->oom = 0;
	walk_object(n, jr.tokens, line, 0, 0);
	if (n->oom)
		return bn_error_set(err, BN_ENOMEM, "out of memory");
	n->line = line;
	n->toks = jr.tokens;
	if (n->rows_slot < 0) {
		*nrows = 1;
		return BN_OK;
	}
	return find_rows(n, jr.tokens, nrows, err);
}

/* Whether slot s holds a value a source list takes: present, not null and not "" (or wildcard matches). An
 * empty string is how many exchanges send "unknown" (`"domain": ""` beside a `page`): it gives way. */
static inline int has_value(const bn_normalizer *n, int32_t s)
{
	if (n->lists[s].n)
		return 1;
	if (!n->slots[s])
		return 0;
	const bn_json_token *t = &n->toks[n->slots[s] - 1];
	return t->type != BN_JSON_NULL && !(t->type == BN_JSON_STRING && t->len == 0);
}

/* The first of field f's sources that has a value: its slot, or -1. */
static int32_t first_present(const bn_normalizer *n, size_t f)
{
	const int32_t *slot = n->src_slot + n->src_first[f];
	for (int32_t j = 0; j < n->src_count[f]; j++)
		if (has_value(n, slot[j]))
			return slot[j];
	return -1;
}

/*
 * same_source_as: field f's source at the first position where every field of its group has a value (a
 * banner's w and h, else format[0]'s w and h, ...), so the group's values come from one place; -1 when no
 * position has them all. Each member works it out again: a handful of slot reads, and no state per row.
 */
static int32_t group_present(const bn_normalizer *n, size_t f)
{
	const bn_group_span g = n->rules->groups[f];
	const size_t *member = n->rules->group_members + g.first;
	for (int32_t j = 0; j < n->src_count[f]; j++) {
		uint32_t m = 0;
		while (m < g.count && has_value(n, n->src_slot[n->src_first[member[m]] + j]))
			m++;
		if (m == g.count)
			return n->src_slot[n->src_first[f] + j];
	}
	return -1;
}

/* Append s to msg[0..cap) at *o, NUL-terminated; what does not fit is cut. */
static void put_str(char *msg, size_t cap, size_t *o, const char *s)
{
	size_t len = strlen(s);
	if (*o + 1 >= cap)
		return;
	if (len > cap - 1 - *o)
		len = cap - 1 - *o;
	memcpy(msg + *o, s, len);
	*o += len;
	msg[*o] = '\0';
}

/*
 * A required member of a same_source_as group that no position completes: the reject says so, with
 * the fields that had no value at the best position (the first where most members have one), rather
 * than a plain "missing required field" while the field itself may have a value there. A group none
 * of whose members has a value anywhere is simply missing. Runs on a reject only.
 */
static void explain_incomplete_group(const bn_normalizer *n, size_t f, bn_error *err)
{
	const bn_rules *r = n->rules;
	if (!err || !r->groups || !r->groups[f].count)
		return;
	const bn_group_span g = r->groups[f];
	const size_t *member = r->group_members + g.first;
	int32_t best = -1;
	uint32_t best_have = 0;
	for (int32_t j = 0; j < n->src_count[f]; j++) {
		uint32_t have = 0;
		for (uint32_t m = 0; m < g.count; m++)
			have += (uint32_t)has_value(n, n->src_slot[n->src_first[member[m]] + j]);
		if (have > best_have) {
			best_have = have;
			best = j;
		}
	}
	if (best < 0)
		return;
	const bn_field *fd = &r->fields[f];
	char msg[sizeof(err->message)];
	size_t o = 0;
	put_str(msg, sizeof(msg), &o, "missing required field: no source position has every field of its "
		"same_source_as group (");
	for (uint32_t m = 0; m < g.count; m++) {
		put_str(msg, sizeof(msg), &o, m ? ", " : "");
		put_str(msg, sizeof(msg), &o, r->fields[member[m]].name);
	}
	put_str(msg, sizeof(msg), &o, "); the best, '");
	put_str(msg, sizeof(msg), &o, best ? fd->alt[best - 1].text : fd->source.text);
	put_str(msg, sizeof(msg), &o, "', lacks ");
	for (uint32_t m = 0, k = 0; m < g.count; m++) {
		if (has_value(n, n->src_slot[n->src_first[member[m]] + best]))
			continue;
		put_str(msg, sizeof(msg), &o, k++ ? ", " : "");
		put_str(msg, sizeof(msg), &o, r->fields[member[m]].name);
	}
	bn_error_set(err, BN_EREJECT, "%s", msg);
}

/* The slot of a field whose source is chosen per record (fd->chooses): its group's position, or the first
 * present of its list. Every other field has one fixed source, n->field_slot[f]. */
static int32_t chosen_source(const bn_normalizer *n, size_t f)
{
	if (n->rules->groups && n->rules->groups[f].count)
		return group_present(n, f);
	return first_present(n, f);
}

/* presence: the last member name of each path whose value is an object, in the rules' order. */
static int read_presence(bn_normalizer *n, size_t f, const bn_field *fd, bn_fieldval *fv, bn_field_stats *st,
			 bn_error *err)
{
	bn_record *rec = &n->rec;
	fv->first = rec->nitems;
	fv->count = 0;
	for (int32_t j = 0; j < n->src_count[f]; j++) {
		const bn_path *p = j ? &fd->alt[j - 1] : &fd->source;
		uint32_t ti = n->slots[n->src_slot[n->src_first[f] + j]];
		const bn_path_step *last = &p->steps[p->nsteps - 1];
		st->items_in++;
		if (!ti || n->toks[ti - 1].type != BN_JSON_OBJECT)
			continue;
		if (bn_record_grow_items(rec) < 0)
			return bn_error_set(err, BN_ENOMEM, "out of memory");
		bn_val v = { .s = last->kind == BN_PATH_KEY ? last->name : p->text,
			     .n = last->kind == BN_PATH_KEY ? last->len : strlen(p->text) };
		rec->items[rec->nitems++] = v;
		fv->count++;
	}
	if (fv->count)
		st->present++;
	return BN_OK;
}

/* The message of a row's reject names the row, when the field reads it. */
static void name_row(bn_normalizer *n, const bn_field *fd, bn_error *err)
{
	char msg[sizeof(err->message)];
	if (!err || !fd || !fd->reads_row)
		return;
	snprintf(msg, sizeof(msg), "%.64s[%zu]: %.*s", n->rules->rows.text, n->row, (int)sizeof(msg) - 90,
		 err->message);
	memcpy(err->message, msg, sizeof(msg));
}

/* A string value the field's chain will look up in the cache: hash it and fetch its slot. */
static inline void ahead(bn_normalizer *n, const bn_field *fd, const char *line, const bn_json_token *t)
{
	if (t->type != BN_JSON_STRING || t->escaped || t->len > BN_VALUE_CACHE_MAX_INPUT ||
	    n->nahead == BN_PREFETCH_MAX)
		return;
	const char *s = line + t->start;
	uint64_t h = bn_value_cache_hash(n->cache, fd->chain, s, t->len);
	n->ahead[n->nahead].s = s;
	n->ahead[n->nahead].chain = fd->chain;
	n->ahead[n->nahead++].h = h;
	bn_value_cache_prefetch_slot(n->cache, h);
}

/*
 * Memory, not instructions, is what a cache lookup costs: some twenty per
 * record, each a likely miss, one after another. Before the fields are read,
 * hash every string the cache will be asked for and prefetch all their slots,
 * then all their entries, so the misses overlap. Looks at the same tokens the
 * field loop reads, in the same order, and changes nothing they find. While
 * the cache is small enough to stay in a core's caches (a serving process's
 * vocabulary, the start of a batch) there are no misses to hide, and the pass
 * would only cost time (5% of a served request's).
 */
#define PREFETCH_FROM_ENTRIES 16384

static void prefetch_values(bn_normalizer *n, const bn_json_token *toks, const char *line)
{
	const bn_rules *r = n->rules;
	n->nahead = n->next_ahead = 0;
	if (bn_value_cache_entries(n->cache) < PREFETCH_FROM_ENTRIES)
		return;
	for (size_t f = 0; f < r->nfields; f++) {
		const bn_field *fd = &r->fields[f];
		if (fd->type != BN_T_STRING || !fd->chain || fd->is_ratio || fd->row_index || fd->presence ||
		    fd->shape == BN_SHAPE_MAP || !cache_worth_it(n, f))
			continue;
		int32_t slot = fd->chooses ? chosen_source(n, f) : n->field_slot[f];
		if (slot < 0)
			continue;
		if (fd->shape == BN_SHAPE_ARRAY && n->lists[slot].n) {
			for (size_t i = 0; i < n->lists[slot].n; i++)
				ahead(n, fd, line, &toks[n->lists[slot].v[i]]);
		} else if (n->slots[slot]) {
			const bn_json_token *t = &toks[n->slots[slot] - 1];
			if (fd->shape != BN_SHAPE_ARRAY)
				ahead(n, fd, line, t);
			else if (t->type == BN_JSON_ARRAY)
				for (uint32_t i = n->slots[slot]; i < t->next; i = toks[i].next)
					ahead(n, fd, line, &toks[i]);
		}
	}
	for (size_t i = 0; i < n->nahead; i++)
		bn_value_cache_prefetch_entry(n->cache, n->ahead[i].h);
}

int bn_normalize_row(bn_normalizer *n, size_t row, bn_error *err)
{
	const bn_rules *r = n->rules;
	const bn_json_token *toks = n->toks;
	const char *line = n->line;
	int rc;

	bn_arena_reset(&n->rec.arena); /* parsing left only unescaped keys there, already compared */
	bn_value_cache_begin_record(n->cache);
	n->rec.nitems = 0;
	n->row = row;
	if (n->rows_slot >= 0) {
		clear_slots(n, n->row_slot_first);
		n->oom = 0;
		walk_object(n, toks, line, n->row_toks.v[row], ROW_ROOT);
		if (n->oom)
			return bn_error_set(err, BN_ENOMEM, "out of memory");
	}

	prefetch_values(n, toks, line);
	for (size_t f = 0; f < r->nfields; f++) {
		const bn_field *fd = &r->fields[f];
		bn_fieldval *fv = &n->rec.fields[f];
		bn_field_stats *st = &n->stats[f];

		if (fd->is_ratio) {
			read_ratio(n, f, fd, line, toks, fv, st);
			continue;
		}
		if (fd->row_index) {
			memset(&fv->v, 0, sizeof(fv->v));
			fv->v.i = (int64_t)row;
			st->present++;
			continue;
		}
		if (fd->presence) {
			rc = read_presence(n, f, fd, fv, st, err);
			if (rc < 0)
				return rc;
			continue;
		}
		/* Only array fields can have wildcard sources. */
		int32_t slot = fd->chooses ? chosen_source(n, f) : n->field_slot[f];
		uint32_t ti = slot >= 0 ? n->slots[slot] : 0;
		if (fd->shape == BN_SHAPE_ARRAY) {
			rc = slot >= 0 && n->lists[slot].n ? read_list(n, fd, line, toks, &n->lists[slot], fv, st, err)
							   : read_array(n, fd, line, toks, ti, fv, st, err);
		} else if (fd->shape == BN_SHAPE_MAP) {
			rc = read_map(n, fd, slot >= 0 ? n->slot_node[slot] : 0, line, toks, ti, fv, st, err);
		} else {
			int got = read_scalar(n, fd, line, ti ? &toks[ti - 1] : NULL, &fv->v, st, err);
			if (got < 0)
				rc = got;
			else
				rc = scalar_policy(fd, got, fv, st, err);
			if (rc == BN_EREJECT && got == GOT_MISSING && fd->chooses)
				explain_incomplete_group(n, f, err);
		}
		if (rc == BN_EREJECT && err && err->reason == BN_REJECT_NONE)
			err->reason = BN_REJECT_VALIDATION;
		if (rc < 0) {
			if (rc == BN_EREJECT) {
				name_row(n, fd, err);
				bn_error_field(err, fd->name);
			}
			return rc;
		}
	}
	return BN_OK;
}

int bn_normalize_line(bn_normalizer *n, const char *line, size_t size, bn_error *err)
{
	size_t nrows;
	int rc = bn_normalize_parse(n, line, size, &nrows, err);
	return rc < 0 ? rc : bn_normalize_row(n, 0, err);
}

/* The value as JSON text into out: what the Avro holds (timestamps as epoch milliseconds). */
static int value_json(bn_buf *out, const bn_field *fd, const bn_val *v)
{
	char num[40];
	if (v->is_null)
		return bn_jsonw_raw(out, "null");
	switch (fd->type) {
	case BN_T_STRING:
		return bn_jsonw_string(out, v->s, v->n);
	case BN_T_DOUBLE:
		return bn_jsonw_double(out, v->d);
	case BN_T_BOOLEAN:
		return bn_jsonw_raw(out, v->i ? "true" : "false");
	default:
		snprintf(num, sizeof(num), "%lld", (long long)v->i);
		return bn_jsonw_raw(out, num);
	}
}

int bn_normalize_json_value(bn_normalizer *n, const char *field, const char *in, size_t size, const char **out,
			    size_t *out_size, bn_error *err)
{
	const bn_field *fd = NULL;
	bn_field_stats st = { 0 };
	bn_json_result jr;
	bn_val v;
	int got;

	for (size_t f = 0; f < n->rules->nfields && field && !fd; f++)
		if (strcmp(n->rules->fields[f].name, field) == 0)
			fd = &n->rules->fields[f];
	if (!fd)
		return bn_error_set(err, BN_EUSAGE, "no field '%s' in the rules", field ? field : "(null)");
	bn_error_field(err, field);
	if (fd->is_ratio)
		return bn_error_set(err, BN_EUSAGE, "a ratio field is computed from two source values, not one");
	/* Valid JSON is read as JSON (1700000000, true, "x"); anything else as the text of a JSON string. */
	bn_buf_reset(&n->tmp);
	if (bn_json_parse(n->json, in, size, &jr) != BN_JSON_OK || jr.tokens[0].type == BN_JSON_OBJECT ||
	    jr.tokens[0].type == BN_JSON_ARRAY) {
		if (bn_jsonw_string(&n->tmp, in, size) < 0 || bn_buf_putc(&n->tmp, '\0') < 0)
			return bn_error_set(err, BN_ENOMEM, "out of memory");
		in = n->tmp.data;
		size = n->tmp.size - 1;
		if (bn_json_parse(n->json, in, size, &jr) != BN_JSON_OK)
			return bn_error_set(err, BN_EUSAGE, "not a JSON value: %s", jr.message);
	}
	bn_arena_reset(&n->rec.arena);
	got = read_scalar(n, fd, in, &jr.tokens[0], &v, &st, err);
	if (got < 0)
		return got;
	if (got == GOT_INVALID) {
		if (err)
			err->reason = BN_REJECT_INVALID_VALUE;
		return BN_EREJECT;
	}
	if (got == GOT_MISSING)
		v.is_null = 1;
	bn_buf_reset(&n->out_json);
	if (value_json(&n->out_json, fd, &v) < 0 || bn_buf_putc(&n->out_json, '\0') < 0)
		return bn_error_set(err, BN_ENOMEM, "out of memory");
	*out = n->out_json.data;
	*out_size = n->out_json.size - 1;
	return BN_OK;
}
