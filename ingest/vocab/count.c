/* count.c - counting tokens of chosen Avro fields into arena-backed hash tables; --where filters; partial count files. */
#include "vocab/count.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bidnorm/normalize.h"
#include "rules/compiled.h"
#include "sink/output.h"
#include "util/buf.h"
#include "util/file.h"

#define DEFAULT_CAP 1024
/* Token storage comes in chunks this big; memory accounting rounds up to it. */
#define ARENA_CHUNK (1024 * 1024)

/* Version 2 added each input's text repair version and identity; version 1 parts are still read. */
static const char part_magic[8] = "BNVOCNT2";
static const char part_magic_v1[8] = "BNVOCNT1";
static const char part_end[8] = "BNVOCEND";

static int oom(bn_error *err)
{
	return bn_error_set(err, BN_ENOMEM, "out of memory");
}

/* ---- hash table ---- */


static size_t arena_bytes(size_t key_bytes)
{
	return (key_bytes + ARENA_CHUNK - 1) / ARENA_CHUNK * ARENA_CHUNK;
}

static int over_limit(bn_vtable *t, bn_error *err)
{
	return bn_error_set(err, BN_ENOMEM, "counting needs more than --max-memory (%zu bytes): %zu distinct tokens so far in "
			    "field '%s' (%s)", t->mem->limit, t->n, t->name,
			    t->mem->spill_base ? "the tokens of one record do not fit; raise the limit"
					       : "raise the limit, or let counting spill to disk");
}

static int passes_limit(const bn_vmem *m, size_t delta)
{
	return m->limit && (m->used + delta > m->limit || m->used + delta < m->used);
}

static int spilling(const bn_vmem *m)
{
	return m->spill_base && !m->no_spill;
}

/* Account for delta more bytes; BN_ENOMEM when that passes the limit, unless a spill can make room. */
static int charge(bn_vtable *t, size_t delta, bn_error *err)
{
	bn_vmem *m = t->mem;
	if (passes_limit(m, delta)) {
		if (!spilling(m))
			return over_limit(t, err);
		m->spill_due = 1;
	}
	m->used += delta;
	if (m->used > m->peak)
		m->peak = m->used;
	return BN_OK;
}

int bn_vtable_init(bn_vtable *t, bn_vmem *mem, const char *name, size_t initial_cap, bn_error *err)
{
	size_t cap = DEFAULT_CAP;
	memset(t, 0, sizeof(*t));
	t->mem = mem;
	t->name = name;
	t->key = bn_hash_process_key();
	bn_arena_init(&t->arena, ARENA_CHUNK);
	while (initial_cap && cap < initial_cap)
		cap *= 2;
	if (charge(t, cap * sizeof(bn_ventry), err) < 0)
		return BN_ENOMEM;
	t->slots = calloc(cap, sizeof(bn_ventry));
	if (!t->slots) {
		mem->used -= cap * sizeof(bn_ventry);
		return oom(err);
	}
	t->cap = cap;
	return BN_OK;
}

static int grow(bn_vtable *t, bn_error *err)
{
	size_t cap = t->cap * 2, mask = cap - 1;
	bn_ventry *slots;

	/* both tables exist during the rehash */
	if (charge(t, cap * sizeof(bn_ventry), err) < 0)
		return BN_ENOMEM;
	slots = calloc(cap, sizeof(bn_ventry));
	if (!slots) {
		t->mem->used -= cap * sizeof(bn_ventry);
		return oom(err);
	}
	for (size_t i = 0; i < t->cap; i++) {
		const bn_ventry *e = &t->slots[i];
		if (!e->key)
			continue;
		size_t j = e->hash & mask;
		while (slots[j].key)
			j = (j + 1) & mask;
		slots[j] = *e;
	}
	free(t->slots);
	t->mem->used -= t->cap * sizeof(bn_ventry);
	t->slots = slots;
	t->cap = cap;
	return BN_OK;
}

static int add_hashed(bn_vtable *t, const char *key, size_t len, uint32_t h, uint64_t count, uint32_t stamp,
		      bn_error *err)
{
	size_t mask = t->cap - 1, i;
	bn_ventry *e;

	if (len >= UINT32_MAX)
		return bn_error_set(err, BN_EUSAGE, "token of %zu bytes in field '%s' is too long", len, t->name);
	i = h & mask;
	for (;;) {
		e = &t->slots[i];
		if (!e->key)
			break;
		if (e->hash == h && bn_ventry_len(e) == len && memcmp(e->key, key, len) == 0) {
			if (stamp) {
				if (e->stamp == stamp)
					return BN_OK;
				e->stamp = stamp;
			}
			e->count += count;
			t->occurrences += count;
			return BN_OK;
		}
		i = (i + 1) & mask;
	}
	/* a new token: grow first if the table would pass 3/4 full, then find its slot again */
	if ((t->n + 1) * 4 > t->cap * 3) {
		if (t->cap >= ((size_t)1 << 32))
			return over_limit(t, err);
		if (spilling(t->mem) && passes_limit(t->mem, t->cap * 2 * sizeof(bn_ventry))) {
			/* no room to grow: fill up to 15/16 until the record ends and the table is spilled */
			t->mem->spill_due = 1;
			if ((t->n + 1) * 16 > t->cap * 15)
				return over_limit(t, err);
			goto place;
		}
		int rc = grow(t, err);
		if (rc < 0)
			return rc;
		mask = t->cap - 1;
		i = h & mask;
		while (t->slots[i].key)
			i = (i + 1) & mask;
		e = &t->slots[i];
	}
place:;
	size_t need = sizeof(uint32_t) + len, before = arena_bytes(t->key_bytes);
	if (arena_bytes(t->key_bytes + need) != before && charge(t, arena_bytes(t->key_bytes + need) - before, err) < 0)
		return BN_ENOMEM;
	char *k = bn_arena_alloc(&t->arena, need);
	if (!k)
		return oom(err);
	uint32_t n32 = (uint32_t)len;
	memcpy(k, &n32, sizeof(n32));
	if (len)
		memcpy(k + sizeof(n32), key, len);
	t->key_bytes += need;
	e->key = k + sizeof(n32);
	e->hash = h;
	e->count = count;
	e->stamp = stamp;
	t->n++;
	t->occurrences += count;
	return BN_OK;
}

int bn_vtable_add(bn_vtable *t, const char *key, size_t len, uint64_t count, uint32_t stamp, bn_error *err)
{
	return add_hashed(t, key, len, (uint32_t)bn_hash(t->key, key, len), count, stamp, err);
}

/* Tokens are hashed in groups this big before any is looked up. */
#define BATCH 32

int bn_vtable_add_batch(bn_vtable *t, const bn_avro_span *tokens, size_t n, uint32_t stamp, bn_error *err)
{
	uint32_t h[BATCH];
	while (n > 0) {
		size_t k = n < BATCH ? n : BATCH, mask = t->cap - 1;
		/* in a table bigger than the caches every lookup is a cache (and TLB) miss: start them all at once */
		for (size_t j = 0; j < k; j++) {
			h[j] = (uint32_t)bn_hash(t->key, tokens[j].p, tokens[j].n);
			__builtin_prefetch(&t->slots[h[j] & mask]);
		}
		for (size_t j = 0; j < k; j++) {
			const bn_ventry *e = &t->slots[h[j] & mask];
			if (e->key && e->hash == h[j])
				__builtin_prefetch(e->key - sizeof(uint32_t));
		}
		for (size_t j = 0; j < k; j++) {
			int rc = add_hashed(t, tokens[j].p, tokens[j].n, h[j], 1, stamp, err);
			if (rc < 0)
				return rc;
		}
		tokens += k;
		n -= k;
	}
	return BN_OK;
}

const bn_ventry *bn_vtable_find(const bn_vtable *t, const char *key, size_t len)
{
	size_t mask = t->cap - 1;
	uint32_t h = (uint32_t)bn_hash(t->key, key, len);
	size_t i = h & mask;
	for (;;) {
		const bn_ventry *e = &t->slots[i];
		if (!e->key)
			return NULL;
		if (e->hash == h && bn_ventry_len(e) == len && memcmp(e->key, key, len) == 0)
			return e;
		i = (i + 1) & mask;
	}
}

void bn_vtable_clear_stamps(bn_vtable *t)
{
	for (size_t i = 0; i < t->cap; i++)
		t->slots[i].stamp = 0;
}

void bn_vtable_reset(bn_vtable *t)
{
	memset(t->slots, 0, t->cap * sizeof(bn_ventry));
	t->mem->used -= arena_bytes(t->key_bytes);
	bn_arena_free(&t->arena); /* a reset would keep the chunks: give the memory back */
	bn_arena_init(&t->arena, ARENA_CHUNK);
	t->key_bytes = 0;
	t->n = 0;
}

void bn_vtable_free(bn_vtable *t)
{
	if (!t)
		return;
	bn_vtable_drop_runs(t);
	if (t->mem && t->slots)
		t->mem->used -= t->cap * sizeof(bn_ventry) + arena_bytes(t->key_bytes);
	free(t->slots);
	bn_arena_free(&t->arena);
	t->slots = NULL;
	t->cap = t->n = 0;
}

/* ---- --where ---- */

static int name_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

static int valid_name(const char *s, size_t n)
{
	if (n == 0 || (s[0] >= '0' && s[0] <= '9'))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!name_char(s[i]))
			return 0;
	return 1;
}

/* The operators, longest first so "<=" is not read as "<" and a value "=...". */
static const struct {
	const char *text;
	bn_where_op op;
} where_ops[] = {
	{ "!=", BN_WHERE_NE }, { "<=", BN_WHERE_LE }, { ">=", BN_WHERE_GE },
	{ "<", BN_WHERE_LT },  { ">", BN_WHERE_GT },  { "=", BN_WHERE_EQ },
};

int bn_where_orders(bn_where_op op)
{
	return op == BN_WHERE_LT || op == BN_WHERE_LE || op == BN_WHERE_GT || op == BN_WHERE_GE;
}

/* w->num from w->value when it is a decimal integer ("-7", "0042"), else has_num 0. */
static void where_number(bn_where *w)
{
	char *end;
	errno = 0;
	long long v = strtoll(w->value, &end, 10);
	w->has_num = w->value[0] && !*end && !errno && w->value[0] != '+' && w->value[0] != ' ';
	w->num = w->has_num ? (int64_t)v : 0;
}

int bn_where_parse(bn_where *out, const char *text, bn_error *err)
{
	size_t flen = 0, olen = 0;
	bn_where w = { 0 };

	memset(out, 0, sizeof(*out));
	while (name_char(text[flen]))
		flen++;
	w.op = BN_WHERE_NOTNULL;
	for (size_t i = 0; text[flen] && i < sizeof(where_ops) / sizeof(where_ops[0]) && !olen; i++) {
		if (strncmp(text + flen, where_ops[i].text, strlen(where_ops[i].text)) == 0) {
			w.op = where_ops[i].op;
			olen = strlen(where_ops[i].text);
		}
	}
	if (!valid_name(text, flen) || (text[flen] && !olen))
		return bn_error_set(err, BN_EUSAGE,
				    "--where '%s': expected FIELD, or FIELD then =, !=, <, <=, > or >= and a VALUE", text);
	w.text = strdup(text);
	w.field = strndup(text, flen);
	w.value = strdup(text + flen + olen);
	if (!w.text || !w.field || !w.value) {
		bn_where_free(&w);
		return oom(err);
	}
	w.given = w.text + flen + olen;
	w.value_len = strlen(w.value);
	where_number(&w);
	*out = w;
	return BN_OK;
}

int bn_where_match(const bn_where *w, bn_avro_kind kind, const bn_avro_value *v)
{
	char num[24];
	const char *s = num;
	size_t n = 0;

	if (v->is_null)
		return w->op == BN_WHERE_NE;
	if (w->op == BN_WHERE_NOTNULL)
		return 1;
	if (bn_where_orders(w->op)) {
		/* bn_vocab_counter_add_avro refuses ordering filters on other kinds or values. */
		if (kind != BN_AVRO_KIND_INT || !w->has_num)
			return 0;
		switch (w->op) {
		case BN_WHERE_LT: return v->i < w->num;
		case BN_WHERE_LE: return v->i <= w->num;
		case BN_WHERE_GT: return v->i > w->num;
		default: return v->i >= w->num;
		}
	}
	switch (kind) {
	case BN_AVRO_KIND_STRING:
		s = v->str.p;
		n = v->str.n;
		break;
	case BN_AVRO_KIND_INT:
		n = (size_t)snprintf(num, sizeof(num), "%lld", (long long)v->i);
		break;
	case BN_AVRO_KIND_BOOLEAN:
		s = v->i ? "true" : "false";
		n = strlen(s);
		break;
	default:
		return 0;
	}
	int eq = n == w->value_len && memcmp(s, w->value, n) == 0;
	return w->op == BN_WHERE_EQ ? eq : !eq;
}

/* Replace w->value by value[0..n): the form the field holds in the Avro. */
static int where_set_value(bn_where *w, const char *value, size_t n, bn_error *err)
{
	char *v = strndup(value, n);
	if (!v)
		return oom(err);
	free(w->value);
	w->value = v;
	w->value_len = n;
	where_number(w);
	return BN_OK;
}

/* An integer filter value in its decimal form ("007" -> "7"), or BN_EUSAGE. */
static int where_integer(bn_where *w, const bn_field *fd, bn_error *err)
{
	char num[24];
	if (!w->has_num || (fd->type == BN_T_INT && (w->num < INT32_MIN || w->num > INT32_MAX)))
		return bn_error_set(err, BN_EUSAGE, "--where '%s': field '%s' is %s, and '%s' is not %s", w->text, w->field,
				    fd->type == BN_T_INT ? "an int" : "a long", w->value,
				    fd->type == BN_T_INT ? "a 32-bit integer" : "a 64-bit integer");
	int n = snprintf(num, sizeof(num), "%lld", (long long)w->num);
	return where_set_value(w, num, (size_t)n, err);
}

/* "YYYY-MM-DD" alone (the calendar is the timestamp parser's to check). */
static int is_date(const char *s)
{
	static const char shape[] = "0000-00-00";
	for (size_t i = 0; i < sizeof(shape) - 1; i++)
		if (shape[i] == '-' ? s[i] != '-' : !(s[i] >= '0' && s[i] <= '9'))
			return 0;
	return s[sizeof(shape) - 1] == '\0';
}

/*
 * A timestamp filter value as epoch milliseconds: read as the field reads
 * the log's value (an ISO-8601 time with its zone, or an epoch number), and
 * a date alone as its midnight UTC.
 */
static int where_timestamp(bn_where *w, const bn_rules *rules, bn_error *err)
{
	bn_normalizer *n = NULL;
	char day[32];
	const char *in = w->value, *out;
	size_t size, len = w->value_len;
	int date = is_date(w->value), rc;

	if (date) {
		len = (size_t)snprintf(day, sizeof(day), "%sT00:00:00Z", w->value);
		in = day;
	}
	rc = bn_normalizer_new(&n, rules, err);
	if (rc == BN_OK)
		rc = bn_normalize_json_value(n, w->field, in, len, &out, &size, err);
	if (rc == BN_OK) {
		rc = where_set_value(w, out, size, err);
		/* "null": a JSON null, or what a record would hold instead of the value. */
		if (rc == BN_OK && !w->has_num)
			rc = bn_error_set(err, BN_EREJECT, "it reads as null");
	}
	if (rc == BN_EREJECT) {
		char why[BN_ERROR_MESSAGE_MAX];
		snprintf(why, sizeof(why), "%s", date ? "not a calendar date" : err ? err->message : "");
		bn_error_clear(err);
		rc = bn_error_set(err, BN_EUSAGE,
				  "--where '%s': field '%s' is a timestamp, and '%s' is not one (%s); give a date "
				  "(2026-11-01, midnight UTC), an ISO-8601 time with its zone (2026-11-01T12:00:00Z) or "
				  "epoch milliseconds", w->text, w->field, w->given, why);
	}
	bn_normalizer_free(n);
	return rc;
}

/* A string filter value through the field's chain, as the Avro holds it. */
static int where_string(bn_where *w, const bn_rules *rules, bn_error *err)
{
	bn_normalizer *n = NULL;
	const char *out;
	size_t size;
	int is_null, rc;
	rc = bn_normalizer_new(&n, rules, err);
	if (rc == BN_OK)
		rc = bn_normalize_value(n, w->field, w->value, w->value_len, &out, &size, &is_null, NULL, NULL, err);
	if (rc == BN_EREJECT) {
		char why[BN_ERROR_MESSAGE_MAX];
		snprintf(why, sizeof(why), "%s", err ? err->message : "");
		bn_error_clear(err);
		rc = bn_error_set(err, BN_EUSAGE, "--where '%s': no row can hold '%s' in field '%s': %s", w->text,
				  w->value, w->field, why);
	} else if (rc == BN_OK && is_null) {
		rc = bn_error_set(err, BN_EUSAGE,
				  "--where '%s': '%s' normalizes to null in field '%s', so no row can hold it "
				  "(use '%s' for not null)", w->text, w->value, w->field, w->field);
	} else if (rc == BN_OK) {
		rc = where_set_value(w, out, size, err);
	}
	bn_normalizer_free(n);
	return rc;
}

/* <, <=, >, >= on a field that holds no numbers. */
static int not_ordered(const bn_where *w, const char *type, bn_error *err)
{
	return bn_error_set(err, BN_EUSAGE,
			    "--where '%s': field '%s' is %s; <, <=, > and >= compare numbers (int, long or timestamp fields)",
			    w->text, w->field, type);
}

int bn_vocab_counter_resolve_where(bn_vocab_counter *c, const bn_rules *rules, bn_error *err)
{
	int rc = BN_OK;
	bn_error_clear(err);
	for (size_t i = 0; i < c->nwhere && rc == BN_OK; i++) {
		bn_where *w = &c->where[i];
		const bn_field *fd = NULL;
		for (size_t f = 0; f < rules->nfields && !fd; f++)
			if (strcmp(rules->fields[f].name, w->field) == 0)
				fd = &rules->fields[f];
		/* Fields the rules do not have, and types filters do not take, are refused against the Avro schema. */
		if (w->op == BN_WHERE_NOTNULL || !fd || fd->shape != BN_SHAPE_SCALAR || fd->is_ratio)
			continue;
		if (bn_where_orders(w->op) && (fd->type == BN_T_STRING || fd->type == BN_T_BOOLEAN)) {
			rc = not_ordered(w, fd->type == BN_T_STRING ? "string" : "boolean", err);
			break;
		}
		switch (fd->type) {
		case BN_T_STRING:
			rc = where_string(w, rules, err);
			break;
		case BN_T_INT:
		case BN_T_LONG:
			rc = where_integer(w, fd, err);
			break;
		case BN_T_TIMESTAMP_MS:
			rc = where_timestamp(w, rules, err);
			break;
		case BN_T_BOOLEAN:
			if (strcmp(w->value, "true") != 0 && strcmp(w->value, "false") != 0)
				rc = bn_error_set(err, BN_EUSAGE, "--where '%s': field '%s' is a boolean: the value must be true or false, not '%s'",
						  w->text, w->field, w->value);
			break;
		default:
			break;
		}
	}
	return rc;
}

const char *bn_vocab_counter_where_value(const bn_vocab_counter *c, size_t i)
{
	return i < c->nwhere && c->where[i].op != BN_WHERE_NOTNULL ? c->where[i].value : NULL;
}

const char *bn_vocab_counter_where_given(const bn_vocab_counter *c, size_t i)
{
	return i < c->nwhere && c->where[i].op != BN_WHERE_NOTNULL ? c->where[i].given : NULL;
}

const char *bn_vocab_counter_where_text(const bn_vocab_counter *c, size_t i)
{
	return i < c->nwhere ? c->where[i].text : NULL;
}

size_t bn_vocab_counter_where_count(const bn_vocab_counter *c)
{
	return c->nwhere;
}

void bn_where_free(bn_where *w)
{
	if (!w)
		return;
	free(w->text);
	free(w->field);
	free(w->value);
	memset(w, 0, sizeof(*w));
}

/* ---- the counter ---- */

static int set_fields(bn_vocab_counter *c, const char *const *fields, size_t nfields, const char *const *where,
		      size_t nwhere, bn_error *err)
{
	int rc;
	if (nfields && !(c->fields = calloc(nfields, sizeof(char *))))
		return oom(err);
	if (nfields && !(c->tables = calloc(nfields, sizeof(bn_vtable))))
		return oom(err);
	for (size_t i = 0; i < nfields; i++) {
		if (!valid_name(fields[i], strlen(fields[i])))
			return bn_error_set(err, BN_EUSAGE, "'%s' is not a field name", fields[i]);
		for (size_t j = 0; j < i; j++) {
			if (strcmp(fields[i], fields[j]) == 0)
				return bn_error_set(err, BN_EUSAGE, "field '%s' given twice", fields[i]);
		}
		if (!(c->fields[i] = strdup(fields[i])))
			return oom(err);
		rc = bn_vtable_init(&c->tables[i], &c->mem, c->fields[i], 0, err);
		c->nfields = i + 1;
		if (rc < 0)
			return rc;
	}
	if (nwhere && !(c->where = calloc(nwhere, sizeof(bn_where))))
		return oom(err);
	for (size_t i = 0; i < nwhere; i++) {
		rc = bn_where_parse(&c->where[i], where[i], err);
		if (rc < 0)
			return rc;
		c->nwhere = i + 1;
	}
	return BN_OK;
}

int bn_vocab_counter_new(bn_vocab_counter **out, const char *const *fields, size_t nfields,
			 const char *const *where, size_t nwhere, size_t max_memory, int allow_mixed_rules,
			 bn_error *err)
{
	bn_vocab_counter *c = calloc(1, sizeof(*c));
	int rc;

	if (!c)
		return oom(err);
	c->mem.limit = max_memory;
	c->allow_mixed_rules = allow_mixed_rules;
	rc = set_fields(c, fields, nfields, where, nwhere, err);
	if (rc < 0) {
		bn_vocab_counter_free(c);
		return rc;
	}
	*out = c;
	return BN_OK;
}

/* Each table needs room for its first token chunk and its first slots, with as much again to fill. */
static size_t min_spill_limit(size_t nfields)
{
	return (nfields ? nfields : 1) * 2 * (ARENA_CHUNK + DEFAULT_CAP * sizeof(bn_ventry));
}

static int check_spill_limit(const bn_vocab_counter *c, bn_error *err)
{
	if (!c->mem.spill_base || c->mem.limit >= min_spill_limit(c->nfields))
		return BN_OK;
	return bn_error_set(err, BN_EUSAGE, "--max-memory %zu is too small to spill the counts of %zu field%s: "
			    "give at least %zu bytes", c->mem.limit, c->nfields, c->nfields == 1 ? "" : "s",
			    min_spill_limit(c->nfields));
}

int bn_vocab_counter_spill_to(bn_vocab_counter *c, const char *dir, bn_error *err)
{
	bn_error_clear(err);
	if (!dir) {
		dir = getenv("TMPDIR");
		if (!dir || !*dir)
			dir = "/tmp";
	}
	char *copy = strdup(dir);
	if (!copy)
		return oom(err);
	free(c->mem.spill_base);
	c->mem.spill_base = copy;
	return check_spill_limit(c, err);
}

/*
 * Record an input, refusing one already counted (the same Avro file by its identity: a file
 * given twice, a part merged twice, or parts sharing an input) and one whose rules hash or
 * text repair version differs from the first's unless mixing is allowed: either changes
 * tokens. id is NULL for inputs of a version-1 part.
 */
static int add_input(bn_vocab_counter *c, const char *path, const char *sha, size_t sha_len, const char *version,
		     size_t version_len, const char *repair, size_t repair_len, const unsigned char *id,
		     bn_vinput **out, bn_error *err)
{
	bn_vinput *in;
	for (size_t i = 0; id && i < c->ninputs; i++) {
		if (c->inputs[i].has_id && memcmp(c->inputs[i].id, id, BN_VINPUT_ID_SIZE) == 0)
			return bn_error_set(err, BN_EUSAGE,
					    "input '%s' is already counted (the same Avro file as '%s', by size and content): "
					    "a file given twice, a part merged twice or parts sharing an input would count "
					    "it twice",
					    path, c->inputs[i].path);
	}
	if (c->ninputs && !c->allow_mixed_rules &&
	    (strlen(c->inputs[0].rules_sha256) != sha_len || memcmp(c->inputs[0].rules_sha256, sha, sha_len) != 0)) {
		bn_error_locate(err, path, 0, 0);
		return bn_error_set(err, BN_EUSAGE,
				    "rules sha256 '%.*s' differs from '%s' of %s (use --allow-mixed-rules to combine them)",
				    (int)sha_len, sha, c->inputs[0].rules_sha256, c->inputs[0].path);
	}
	if (c->ninputs && !c->allow_mixed_rules &&
	    (strlen(c->inputs[0].text_repair) != repair_len ||
	     memcmp(c->inputs[0].text_repair, repair, repair_len) != 0)) {
		bn_error_locate(err, path, 0, 0);
		return bn_error_set(err, BN_EUSAGE,
				    "text repair version '%.*s' differs from '%s' of %s: the same text gives other tokens "
				    "(ingest both again with one bidnorm, or use --allow-mixed-rules to combine them)",
				    (int)repair_len, repair, c->inputs[0].text_repair, c->inputs[0].path);
	}
	if (c->ninputs == c->cap_inputs) {
		size_t cap = c->cap_inputs ? 2 * c->cap_inputs : 8;
		bn_vinput *p = realloc(c->inputs, cap * sizeof(*p));
		if (!p)
			return oom(err);
		c->inputs = p;
		c->cap_inputs = cap;
	}
	in = &c->inputs[c->ninputs];
	memset(in, 0, sizeof(*in));
	in->path = strdup(path);
	in->rules_sha256 = strndup(sha, sha_len);
	in->version = strndup(version, version_len);
	in->text_repair = strndup(repair, repair_len);
	if (id) {
		memcpy(in->id, id, BN_VINPUT_ID_SIZE);
		in->has_id = 1;
	}
	c->ninputs++;
	if (!in->path || !in->rules_sha256 || !in->version || !in->text_repair)
		return oom(err);
	*out = in;
	return BN_OK;
}

static int input_cmp(const void *a, const void *b)
{
	const bn_vinput *x = a, *y = b;
	int d = strcmp(x->path, y->path);
	if (d)
		return d;
	if (x->has_id != y->has_id)
		return x->has_id - y->has_id;
	return memcmp(x->id, y->id, BN_VINPUT_ID_SIZE);
}

void bn_vcounter_sort_inputs(bn_vocab_counter *c)
{
	if (c->ninputs > 1)
		qsort(c->inputs, c->ninputs, sizeof(*c->inputs), input_cmp);
}

/* The next record stamp; when it wraps, every table forgets the old ones. */
static uint32_t next_stamp(bn_vocab_counter *c)
{
	if (++c->stamp == 0) {
		for (size_t i = 0; i < c->nfields; i++)
			bn_vtable_clear_stamps(&c->tables[i]);
		c->stamp = 1;
	}
	return c->stamp;
}

int bn_vocab_counter_add_avro(bn_vocab_counter *c, const char *path, bn_error *err)
{
	return bn_vocab_counter_add_avro_named(c, path, NULL, err);
}

int bn_vocab_counter_add_avro_named(bn_vocab_counter *c, const char *path, const char *name, bn_error *err)
{
	bn_avro_reader *r = NULL;
	bn_avro_decoder *d = NULL;
	const char **names = NULL;
	size_t *where_slot = NULL;
	bn_avro_value *vals = NULL;
	bn_vinput *in = NULL;
	size_t nnames = 0, sha_len = 0, ver_len = 0, repair_len = 0;
	const char *sha, *ver, *repair;
	int rc = BN_ENOMEM;

	bn_error_clear(err);
	if (c->nfields == 0)
		return bn_error_set(err, BN_EUSAGE, "no field given");
	rc = bn_avro_reader_open(&r, path, err);
	if (rc < 0)
		goto cleanup;
	sha = bn_avro_reader_meta(r, "bidnorm.rules.sha256", &sha_len);
	ver = bn_avro_reader_meta(r, "bidnorm.version", &ver_len);
	/* Files from before the key was written had repair version 1. */
	repair = bn_avro_reader_meta(r, "bidnorm.text_repair", &repair_len);
	if (!repair) {
		repair = "1";
		repair_len = 1;
	}
	unsigned char id[BN_VINPUT_ID_SIZE];
	bn_avro_reader_identity(r, id);
	rc = add_input(c, name ? name : path, sha ? sha : "", sha_len, ver ? ver : "", ver_len, repair, repair_len, id,
		       &in, err);
	if (rc < 0) {
		bn_error_locate(err, path, 0, 0);
		goto cleanup;
	}

	/* the fields to decode: counted ones, then filter fields not already among them */
	rc = BN_ENOMEM;
	names = calloc(c->nfields + c->nwhere, sizeof(*names));
	where_slot = calloc(c->nwhere + 1, sizeof(*where_slot));
	vals = calloc(c->nfields + c->nwhere, sizeof(*vals));
	if (!names || !where_slot || !vals) {
		oom(err);
		goto cleanup;
	}
	for (size_t i = 0; i < c->nfields; i++)
		names[nnames++] = c->fields[i];
	for (size_t w = 0; w < c->nwhere; w++) {
		size_t j;
		for (j = 0; j < nnames && strcmp(names[j], c->where[w].field) != 0; j++)
			;
		if (j == nnames)
			names[nnames++] = c->where[w].field;
		where_slot[w] = j;
	}
	rc = bn_avro_decoder_new(&d, bn_avro_reader_schema(r), path, names, nnames, err);
	if (rc < 0)
		goto cleanup;
	for (size_t i = 0; i < c->nfields; i++) {
		bn_avro_kind k = bn_avro_decoder_kind(d, i);
		if (k != BN_AVRO_KIND_STRING && k != BN_AVRO_KIND_STRING_ARRAY) {
			bn_error_locate(err, path, 0, 0);
			rc = bn_error_set(err, BN_EUSAGE, "field '%s' is %s; vocabularies need string or array of string fields",
					  names[i], bn_avro_decoder_type_name(d, i));
			goto cleanup;
		}
	}
	for (size_t w = 0; w < c->nwhere; w++) {
		bn_avro_kind k = bn_avro_decoder_kind(d, where_slot[w]);
		if (k == BN_AVRO_KIND_OTHER || k == BN_AVRO_KIND_STRING_ARRAY) {
			bn_error_locate(err, path, 0, 0);
			rc = bn_error_set(err, BN_EUSAGE,
					  "--where '%s': field '%s' is %s; filters need a string, int, long or boolean field",
					  c->where[w].text, c->where[w].field,
					  k == BN_AVRO_KIND_STRING_ARRAY ? "array of string" : bn_avro_decoder_type_name(d, where_slot[w]));
			goto cleanup;
		}
		if (bn_where_orders(c->where[w].op) && (k != BN_AVRO_KIND_INT || !c->where[w].has_num)) {
			bn_error_locate(err, path, 0, 0);
			if (k != BN_AVRO_KIND_INT)
				rc = not_ordered(&c->where[w], bn_avro_decoder_type_name(d, where_slot[w]), err);
			else
				rc = bn_error_set(err, BN_EUSAGE, "--where '%s': field '%s' is %s, and '%s' is not an integer",
						  c->where[w].text, c->where[w].field,
						  bn_avro_decoder_type_name(d, where_slot[w]), c->where[w].value);
			goto cleanup;
		}
	}

	for (;;) {
		const char *data, *p, *end;
		size_t size;
		uint64_t count;
		rc = bn_avro_reader_next_block(r, &data, &size, &count, err);
		if (rc <= 0)
			break;
		p = data;
		end = data + size;
		for (uint64_t i = 0; i < count; i++) {
			const char *before = p;
			rc = bn_avro_decode_record(d, &p, end, vals, err);
			if (rc < 0) {
				if (rc == BN_ECORRUPT) {
					char why[BN_ERROR_MESSAGE_MAX];
					snprintf(why, sizeof(why), "%s", err ? err->message : "");
					bn_error_locate(err, path, 0, 0);
					bn_error_set(err, rc, "corrupt Avro block at byte offset %llu: record %llu of %llu: %s",
						     (unsigned long long)bn_avro_reader_block_offset(r),
						     (unsigned long long)i + 1, (unsigned long long)count, why);
				}
				goto cleanup;
			}
			if (p == before && count - i > size + 1) {
				/* zero-byte records cannot make a claimed count credible */
				bn_error_locate(err, path, 0, 0);
				rc = bn_error_set(err, BN_ECORRUPT, "corrupt Avro block at byte offset %llu: block claims %llu records in %zu bytes",
						  (unsigned long long)bn_avro_reader_block_offset(r),
						  (unsigned long long)count, size);
				goto cleanup;
			}
			c->rows_scanned++;
			in->rows_scanned++;
			int match = 1;
			for (size_t w = 0; w < c->nwhere && match; w++)
				match = bn_where_match(&c->where[w], bn_avro_decoder_kind(d, where_slot[w]), &vals[where_slot[w]]);
			if (!match)
				continue;
			c->rows_matched++;
			in->rows_matched++;
			uint32_t stamp = next_stamp(c);
			for (size_t f = 0; f < c->nfields; f++) {
				const bn_avro_value *v = &vals[f];
				if (v->is_null)
					continue;
				if (bn_avro_decoder_kind(d, f) == BN_AVRO_KIND_STRING) {
					rc = bn_vtable_add(&c->tables[f], v->str.p, v->str.n, 1, 0, err);
					if (rc < 0)
						goto cleanup;
					continue;
				}
				rc = bn_vtable_add_batch(&c->tables[f], v->items, v->nitems, stamp, err);
				if (rc < 0)
					goto cleanup;
			}
			if (c->mem.spill_due && (rc = bn_vmem_spill(&c->mem, c->tables, c->nfields, err)) < 0)
				goto cleanup;
		}
		if (p != end) {
			bn_error_locate(err, path, 0, 0);
			rc = bn_error_set(err, BN_ECORRUPT, "corrupt Avro block at byte offset %llu: %zu bytes left after its %llu records",
					  (unsigned long long)bn_avro_reader_block_offset(r), (size_t)(end - p),
					  (unsigned long long)count);
			goto cleanup;
		}
	}
cleanup:
	if (rc == BN_ENOMEM && err && err->source[0] == '\0')
		bn_error_locate(err, path, 0, 0);
	free(names);
	free(where_slot);
	free(vals);
	bn_avro_decoder_free(d);
	bn_avro_reader_free(r);
	return rc;
}

int bn_vocab_counter_add_token(bn_vocab_counter *c, size_t field, const char *token, size_t size, uint64_t count,
			       bn_error *err)
{
	if (field >= c->nfields)
		return bn_error_set(err, BN_EUSAGE, "no field number %zu (the counter has %zu)", field, c->nfields);
	int rc = bn_vtable_add(&c->tables[field], token, size, count, 0, err);
	if (rc == BN_OK && c->mem.spill_due)
		rc = bn_vmem_spill(&c->mem, c->tables, c->nfields, err);
	return rc;
}

uint64_t bn_vocab_counter_rows_scanned(const bn_vocab_counter *c) { return c->rows_scanned; }
uint64_t bn_vocab_counter_rows_matched(const bn_vocab_counter *c) { return c->rows_matched; }
size_t bn_vocab_counter_field_count(const bn_vocab_counter *c) { return c->nfields; }
const char *bn_vocab_counter_field_name(const bn_vocab_counter *c, size_t i) { return c->fields[i]; }
uint64_t bn_vocab_counter_distinct(const bn_vocab_counter *c, size_t i) { return bn_vtable_distinct(&c->tables[i]); }
uint64_t bn_vocab_counter_occurrences(const bn_vocab_counter *c, size_t i) { return c->tables[i].occurrences; }
size_t bn_vocab_counter_peak_memory(const bn_vocab_counter *c) { return c->mem.peak; }
uint64_t bn_vocab_counter_spilled_runs(const bn_vocab_counter *c) { return c->mem.runs; }

uint64_t bn_vocab_counter_get(const bn_vocab_counter *c, size_t i, const char *token, size_t size)
{
	const bn_ventry *e = i < c->nfields ? bn_vtable_find(&c->tables[i], token, size) : NULL;
	return e ? e->count : 0;
}

void bn_vocab_counter_free(bn_vocab_counter *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->nfields; i++) {
		bn_vtable_free(&c->tables[i]);
		free(c->fields[i]);
	}
	free(c->tables);
	free(c->fields);
	bn_vmem_free(&c->mem);
	for (size_t i = 0; i < c->nwhere; i++)
		bn_where_free(&c->where[i]);
	free(c->where);
	for (size_t i = 0; i < c->ninputs; i++) {
		free(c->inputs[i].path);
		free(c->inputs[i].rules_sha256);
		free(c->inputs[i].version);
		free(c->inputs[i].text_repair);
	}
	free(c->inputs);
	free(c);
}

/* ---- partial count files ---- */

static int put_uv(bn_buf *b, uint64_t v)
{
	char tmp[10];
	size_t n = 0;
	while (v >= 0x80) {
		tmp[n++] = (char)(v | 0x80);
		v >>= 7;
	}
	tmp[n++] = (char)v;
	return bn_buf_append(b, tmp, n);
}

static int put_str(bn_buf *b, const char *s, size_t n)
{
	return put_uv(b, n) < 0 || bn_buf_append(b, s, n) < 0 ? -1 : 0;
}

/* Flush b to f once it holds 1 MiB. */
static int flush_big(bn_outfile *f, bn_buf *b, bn_error *err)
{
	if (b->size < (1u << 20))
		return BN_OK;
	int rc = bn_outfile_write(f, b->data, b->size, err);
	b->size = 0;
	return rc;
}

/* One field's section of a count file from its spilled runs: two passes, the first for the number of tokens. */
static int write_part_runs(bn_outfile *f, bn_buf *b, bn_vrun_merge *g, bn_vtable *t, bn_error *err)
{
	const char *tok;
	size_t len;
	uint64_t count, n = 0;
	int rc;
	while ((rc = bn_vrun_merge_next(g, &tok, &len, &count, err)) > 0)
		n++;
	if (rc < 0 || (rc = bn_vrun_merge_rewind(g, err)) < 0)
		return rc;
	t->distinct_all = n; /* for the summary: the table itself is empty now */
	t->unspilled = 1;
	if (put_uv(b, t->occurrences) | put_uv(b, n))
		return oom(err);
	while ((rc = bn_vrun_merge_next(g, &tok, &len, &count, err)) > 0) {
		if (put_str(b, tok, len) | put_uv(b, count))
			return oom(err);
		if ((rc = flush_big(f, b, err)) < 0)
			return rc;
	}
	return rc;
}

int bn_vocab_counter_write_part(bn_vocab_counter *c, const char *path, bn_error *err)
{
	bn_outfile f;
	bn_buf b = { 0 };
	bn_vsort_item *list = NULL;
	bn_vrun_merge *g = NULL;
	int rc, opened = 0, bad = 0;

	rc = bn_outfile_open(&f, path, err);
	if (rc < 0)
		goto cleanup;
	opened = 1;
	bn_vcounter_sort_inputs(c);
	bad |= bn_buf_append(&b, part_magic, sizeof(part_magic)) | put_uv(&b, c->nfields);
	for (size_t i = 0; i < c->nfields; i++)
		bad |= put_str(&b, c->fields[i], strlen(c->fields[i]));
	bad |= put_uv(&b, c->nwhere);
	for (size_t i = 0; i < c->nwhere; i++)
		bad |= put_str(&b, c->where[i].text, strlen(c->where[i].text));
	bad |= put_uv(&b, c->ninputs);
	for (size_t i = 0; i < c->ninputs; i++) {
		const bn_vinput *in = &c->inputs[i];
		bad |= put_str(&b, in->path, strlen(in->path)) | put_str(&b, in->rules_sha256, strlen(in->rules_sha256)) |
		       put_str(&b, in->version, strlen(in->version)) |
		       put_str(&b, in->text_repair, strlen(in->text_repair)) | put_uv(&b, in->rows_scanned) |
		       put_uv(&b, in->rows_matched) |
		       put_str(&b, (const char *)in->id, in->has_id ? BN_VINPUT_ID_SIZE : 0);
	}
	for (size_t i = 0; i < c->nfields && !bad; i++) {
		bn_vtable *t = &c->tables[i];
		size_t n = 0;
		rc = bn_vrun_merge_open(&g, t, &c->mem, err);
		if (rc < 0)
			goto cleanup;
		if (g) {
			rc = write_part_runs(&f, &b, g, t, err);
			bn_vrun_merge_free(g);
			g = NULL;
			if (rc < 0)
				goto cleanup;
			continue;
		}
		free(list);
		list = malloc((t->n ? t->n : 1) * sizeof(*list));
		if (!list) {
			bad = 1;
			break;
		}
		for (size_t s = 0; s < t->cap; s++) {
			if (t->slots[s].key)
				bn_vsort_item_set(&list[n++], 0, &t->slots[s]);
		}
		/* token order makes the file a function of the counts alone */
		bn_vsort(list, n);
		bad |= put_uv(&b, t->occurrences) | put_uv(&b, n);
		for (size_t k = 0; k < n && !bad; k++) {
			bad |= put_str(&b, list[k].key, bn_vkey_len(list[k].key)) | put_uv(&b, list[k].count);
			if ((rc = flush_big(&f, &b, err)) < 0)
				goto cleanup;
		}
	}
	bad |= bn_buf_append(&b, part_end, sizeof(part_end));
	if (bad) {
		rc = oom(err);
		goto cleanup;
	}
	rc = bn_outfile_write(&f, b.data, b.size, err);
	if (rc < 0)
		goto cleanup;
	rc = bn_outfile_commit(&f, err);
	opened = 0;
cleanup:
	if (opened)
		bn_outfile_abort(&f);
	free(list);
	bn_buf_free(&b);
	return rc;
}

typedef struct reader {
	const unsigned char *p, *start, *end;
	int bad;
} reader;

static uint64_t get_uv(reader *r)
{
	uint64_t v = 0;
	for (unsigned shift = 0; shift < 64; shift += 7) {
		if (r->p >= r->end) {
			r->bad = 1;
			return 0;
		}
		unsigned b = *r->p++;
		v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80))
			return v;
	}
	r->bad = 1;
	return 0;
}

static const char *get_str(reader *r, size_t *n)
{
	uint64_t len = get_uv(r);
	const char *s = (const char *)r->p;
	if (r->bad || len > (uint64_t)(r->end - r->p)) {
		r->bad = 1;
		*n = 0;
		return "";
	}
	r->p += len;
	*n = (size_t)len;
	return s;
}

static int part_corrupt(const char *path, reader *r, bn_error *err)
{
	bn_error_locate(err, path, 0, 0);
	return bn_error_set(err, BN_ECORRUPT, "truncated or corrupt partial counts file (at byte %zu)",
			    (size_t)(r->p - r->start));
}

/*
 * The bytes of a part file: mapped when it is a regular file (a part is as big as its shard's
 * distinct tokens; mapped pages are the page cache's, not counting memory), else read whole.
 */
typedef struct part_bytes {
	bn_buf b;
	void *map;
	size_t map_size;
	const char *data;
	size_t size;
} part_bytes;

static int part_open(part_bytes *pb, const char *path, bn_error *err)
{
	struct stat st;
	memset(pb, 0, sizeof(*pb));
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
		void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (m != MAP_FAILED) {
			close(fd);
			madvise(m, (size_t)st.st_size, MADV_SEQUENTIAL);
			pb->map = m;
			pb->map_size = (size_t)st.st_size;
			pb->data = m;
			pb->size = pb->map_size;
			return BN_OK;
		}
	}
	if (fd >= 0)
		close(fd);
	int rc = bn_file_read_all(&pb->b, path, err);
	pb->data = pb->b.data ? pb->b.data : "";
	pb->size = pb->b.size;
	return rc;
}

static void part_close(part_bytes *pb)
{
	if (pb->map)
		munmap(pb->map, pb->map_size);
	bn_buf_free(&pb->b);
}

/* Open part file path and check its magic; r reads it from just after the magic. *v1: a version-1 part. */
static int part_begin(part_bytes *b, reader *r, int *v1, const char *path, bn_error *err)
{
	int rc = part_open(b, path, err);
	if (rc < 0)
		return rc;
	*v1 = b->size >= sizeof(part_magic_v1) && memcmp(b->data, part_magic_v1, sizeof(part_magic_v1)) == 0;
	if (!*v1 && (b->size < sizeof(part_magic) || memcmp(b->data, part_magic, sizeof(part_magic)) != 0)) {
		bn_error_locate(err, path, 0, 0);
		return bn_error_set(err, BN_ECORRUPT, "not a bidnorm partial counts file (written by 'bidnorm vocab count')");
	}
	/* Both magics have the same length. */
	r->start = (const unsigned char *)b->data;
	r->p = r->start + sizeof(part_magic);
	r->end = r->start + b->size;
	r->bad = 0;
	return BN_OK;
}

/* One input as a part records it; the strings point into the part's bytes. */
typedef struct part_input {
	const char *path, *sha, *version, *repair, *id;
	size_t path_len, sha_len, version_len, repair_len, id_len;
	uint64_t scanned, matched;
} part_input;

/* The next input of a part of version v1 or 2 (a version-1 part records text repair "1" and no identity). */
static void read_part_input(reader *r, int v1, part_input *in)
{
	in->path = get_str(r, &in->path_len);
	in->sha = get_str(r, &in->sha_len);
	in->version = get_str(r, &in->version_len);
	in->repair = "1";
	in->repair_len = 1;
	if (!v1)
		in->repair = get_str(r, &in->repair_len);
	in->scanned = get_uv(r);
	in->matched = get_uv(r);
	in->id = "";
	in->id_len = 0;
	if (!v1)
		in->id = get_str(r, &in->id_len);
	if (in->id_len != 0 && in->id_len != BN_VINPUT_ID_SIZE)
		r->bad = 1;
}

int bn_vocab_check_parts_text_repair(const char *const *paths, size_t npaths, bn_error *err)
{
	const char *ours = bn_text_repair_version();
	int rc = BN_OK;

	bn_error_clear(err);
	if (npaths && !paths)
		return bn_error_set(err, BN_EUSAGE, "bn_vocab_check_parts_text_repair: paths are required");
	for (size_t i = 0; rc == BN_OK && i < npaths; i++) {
		part_bytes b;
		reader r;
		size_t len;
		int v1 = 0;
		rc = part_begin(&b, &r, &v1, paths[i], err);
		/* fields, then filters: skipped */
		for (int list = 0; rc == BN_OK && list < 2 && !r.bad; list++) {
			uint64_t n = get_uv(&r);
			for (uint64_t k = 0; k < n && !r.bad; k++)
				get_str(&r, &len);
		}
		uint64_t ninputs = rc == BN_OK ? get_uv(&r) : 0;
		for (uint64_t k = 0; rc == BN_OK && k < ninputs && !r.bad; k++) {
			part_input in;
			read_part_input(&r, v1, &in);
			if (r.bad || (in.repair_len == strlen(ours) && memcmp(in.repair, ours, in.repair_len) == 0))
				continue;
			bn_error_locate(err, paths[i], 0, 0);
			rc = bn_error_set(err, BN_EUSAGE,
					  "input '%.*s' was written with text repair version '%.*s'%s, but this bidnorm "
					  "repairs text with version '%s': the same raw text gives other tokens "
					  "(training/serving skew); ingest it again with this bidnorm and count it again, or "
					  "pass --allow-other-text-repair to merge it anyway (serving refuses such a vocabulary)",
					  (int)in.path_len, in.path, (int)(in.repair_len < 32 ? in.repair_len : 32), in.repair,
					  v1 ? " (a version-1 part, which records no version)" : "", ours);
		}
		if (rc == BN_OK && r.bad)
			rc = part_corrupt(paths[i], &r, err);
		part_close(&b);
	}
	return rc;
}

int bn_vocab_counter_merge_part(bn_vocab_counter *c, const char *path, bn_error *err)
{
	part_bytes b;
	reader r;
	char **fields = NULL, **where = NULL;
	size_t nfields = 0, nwhere = 0, n;
	const char *s;
	int rc, v1 = 0;

	bn_error_clear(err);
	rc = part_begin(&b, &r, &v1, path, err);
	if (rc < 0)
		goto cleanup;

	nfields = (size_t)get_uv(&r);
	if (r.bad || nfields > b.size || !(fields = calloc(nfields + 1, sizeof(char *)))) {
		rc = r.bad || nfields > b.size ? part_corrupt(path, &r, err) : oom(err);
		goto cleanup;
	}
	for (size_t i = 0; i < nfields; i++) {
		s = get_str(&r, &n);
		if (!(fields[i] = strndup(s, n))) {
			rc = oom(err);
			goto cleanup;
		}
	}
	nwhere = (size_t)get_uv(&r);
	if (r.bad || nwhere > b.size || !(where = calloc(nwhere + 1, sizeof(char *)))) {
		rc = r.bad || nwhere > b.size ? part_corrupt(path, &r, err) : oom(err);
		goto cleanup;
	}
	for (size_t i = 0; i < nwhere; i++) {
		s = get_str(&r, &n);
		if (!(where[i] = strndup(s, n))) {
			rc = oom(err);
			goto cleanup;
		}
	}
	if (r.bad) {
		rc = part_corrupt(path, &r, err);
		goto cleanup;
	}
	if (c->nfields == 0 && c->nwhere == 0 && c->ninputs == 0) {
		rc = set_fields(c, (const char *const *)fields, nfields, (const char *const *)where, nwhere, err);
		if (rc == BN_OK)
			rc = check_spill_limit(c, err);
		if (rc < 0)
			goto cleanup;
	} else {
		int same = c->nfields == nfields && c->nwhere == nwhere;
		for (size_t i = 0; same && i < nfields; i++)
			same = strcmp(c->fields[i], fields[i]) == 0;
		for (size_t i = 0; same && i < nwhere; i++)
			same = strcmp(c->where[i].text, where[i]) == 0;
		if (!same) {
			bn_error_locate(err, path, 0, 0);
			rc = bn_error_set(err, BN_EUSAGE,
					  "counts fields or --where filters differ from the first part's (fields %s%s..., %zu filters)",
					  nfields ? fields[0] : "", nfields > 1 ? ", " : "", nwhere);
			goto cleanup;
		}
	}
	uint64_t ninputs = get_uv(&r);
	for (uint64_t i = 0; i < ninputs && !r.bad; i++) {
		bn_vinput *in = NULL;
		part_input pi;
		read_part_input(&r, v1, &pi);
		if (r.bad)
			break;
		char *pz = strndup(pi.path, pi.path_len);
		if (!pz) {
			rc = oom(err);
			goto cleanup;
		}
		rc = add_input(c, pz, pi.sha, pi.sha_len, pi.version, pi.version_len, pi.repair, pi.repair_len,
			       pi.id_len ? (const unsigned char *)pi.id : NULL, &in, err);
		free(pz);
		if (rc < 0) {
			if (rc == BN_EUSAGE)
				bn_error_locate(err, path, 0, 0);
			goto cleanup;
		}
		in->rows_scanned = pi.scanned;
		in->rows_matched = pi.matched;
		c->rows_scanned += pi.scanned;
		c->rows_matched += pi.matched;
	}
	for (size_t f = 0; f < nfields && !r.bad; f++) {
		uint64_t occurrences = get_uv(&r), distinct = get_uv(&r), sum = 0;
		for (uint64_t k = 0; k < distinct && !r.bad; k++) {
			const char *tok = get_str(&r, &n);
			uint64_t count = get_uv(&r);
			if (r.bad)
				break;
			rc = bn_vtable_add(&c->tables[f], tok, n, count, 0, err);
			if (rc == BN_OK && c->mem.spill_due)
				rc = bn_vmem_spill(&c->mem, c->tables, c->nfields, err);
			if (rc < 0)
				goto cleanup;
			sum += count;
		}
		if (!r.bad && sum != occurrences)
			r.bad = 1;
	}
	if (r.bad || (size_t)(r.end - r.p) != sizeof(part_end) || memcmp(r.p, part_end, sizeof(part_end)) != 0) {
		rc = part_corrupt(path, &r, err);
		goto cleanup;
	}
	rc = BN_OK;
cleanup:
	for (size_t i = 0; fields && i < nfields; i++)
		free(fields[i]);
	for (size_t i = 0; where && i < nwhere; i++)
		free(where[i]);
	free(fields);
	free(where);
	part_close(&b);
	return rc;
}
