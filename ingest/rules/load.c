/* load.c - reads a YAML rule file into the compiled bn_rules, rejecting anything wrong with file:line:column and a reason. */
#include "bidnorm/rules.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "rules/compiled.h"
#include "rules/schema.h"
#include "util/sha256.h"

/* Generated at build time from rules/NAME.yaml (tools/embed.cmake). */
extern const char bn_rules_bidlog_text[];
extern const size_t bn_rules_bidlog_size;
extern const char bn_rules_openrtb_text[];
extern const size_t bn_rules_openrtb_size;

/* The shipped rule sets; the first is the default. */
static const struct builtin {
	const char *name;
	const char *source_name;  /* in messages and output headers */
	const char *text;
	const size_t *size;
} builtins[] = {
	{ "bidlog", "<default>", bn_rules_bidlog_text, &bn_rules_bidlog_size },
	{ "openrtb", "<openrtb>", bn_rules_openrtb_text, &bn_rules_openrtb_size },
};
#define NBUILTINS (sizeof(builtins) / sizeof(builtins[0]))

#define TYPE_LIST "string, int, long, double, boolean, timestamp-millis, array<T> or map<T>"
#define STEP_LIST "text, lower, upper, extract, replace, first_match, trim, max_bytes, validate or map"

/* Indexed by bn_type - 1 and bn_step_kind - 1. */
static const char *const type_names[] = {
	"string", "int", "long", "double", "boolean", "timestamp-millis", NULL,
};
static const char *const step_names[] = {
	"text", "lower", "upper", "extract", "replace", "first_match", "trim", "max_bytes", "validate", "map", NULL,
};
/* What each step with an argument looks like, for "needs an argument" messages. */
static const char *const step_usage[] = {
	"text: {max_bytes: N}", NULL, NULL, "extract: PATTERN", "replace: {pattern: P, with: S}",
	"first_match: PATTERN", "trim: CHARS", "max_bytes: N", "validate: PATTERN", "map: {FROM: TO}",
};

/*
 * Key tables: one per kind of mapping. They drive the unknown-key check, the
 * "expected one of" list in its message, and the lookup of values (the
 * enum values below index the tables).
 */
static const char *const top_keys[] = {
	"version", "schema", "limits", "chains", "serving_invalid", "allow", "fields", "rows", "root", NULL,
};
enum { TOP_VERSION, TOP_SCHEMA, TOP_LIMITS, TOP_CHAINS, TOP_INVALID, TOP_ALLOW, TOP_FIELDS, TOP_ROWS, TOP_ROOT,
       TOP_N };

static const char *const schema_keys[] = { "name", "namespace", "doc", NULL };
enum { SCH_NAME, SCH_NAMESPACE, SCH_DOC, SCH_N };

static const char *const limit_keys[] = {
	"max_line_bytes", "max_text_bytes", "regex_match_limit", "regex_depth_limit", "max_rows", NULL,
};
enum { LIM_LINE, LIM_TEXT, LIM_MATCH, LIM_DEPTH, LIM_ROWS, LIM_N };

static const char *const field_keys[] = {
	"name", "doc", "source", "type", "required", "default", "chain", "max_items", "unique",
	"strip_serving_invalid", "ratio", "presence", "row_index", "range", "same_source_as", NULL,
};
enum { F_NAME, F_DOC, F_SOURCE, F_TYPE, F_REQUIRED, F_DEFAULT, F_CHAIN, F_MAX_ITEMS, F_UNIQUE,
       F_STRIP, F_RATIO, F_PRESENCE, F_ROW_INDEX, F_RANGE, F_SAME, F_N };

static const char *const ratio_keys[] = { "numerator", "denominator", "invalid", NULL };
enum { R_NUM, R_DEN, R_INVALID, R_N };

static const char *const invalid_keys[] = { "pattern", "reason", NULL };
static const char *const allow_keys[] = { "name", "justification", NULL };
static const char *const text_keys[] = { "max_bytes", NULL };
static const char *const replace_keys[] = { "pattern", "with", NULL };
static const char *const validate_keys[] = { "pattern", "on_fail", NULL };

#define MAX_KEYS 16

typedef struct loader {
	yaml_document_t doc;
	const char *name;    /* source name for messages */
	const char *field;   /* the field being loaded, named in messages; NULL outside fields */
	bn_error *err;
	bn_rules *r;
	const yaml_node_t **same; /* per field: its same_source_as value, or NULL (link_groups) */
} loader;

static int vfail_at(loader *L, size_t line, size_t column, const char *fmt, va_list ap)
{
	if (!L->err)
		return BN_ERULES;
	L->err->code = BN_ERULES;
	vsnprintf(L->err->message, sizeof(L->err->message), fmt, ap);
	bn_error_locate(L->err, L->name, line, (uint32_t)column);
	bn_error_field(L->err, L->field);
	return BN_ERULES;
}

static int fail_at(loader *L, size_t line, size_t column, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int fail_at(loader *L, size_t line, size_t column, const char *fmt, ...)
{
	va_list ap;
	int rc;
	va_start(ap, fmt);
	rc = vfail_at(L, line, column, fmt, ap);
	va_end(ap);
	return rc;
}

/* A rule-file error at node n (libyaml marks are 0-based; ours are 1-based). */
static int fail(loader *L, const yaml_node_t *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(loader *L, const yaml_node_t *n, const char *fmt, ...)
{
	va_list ap;
	int rc;
	va_start(ap, fmt);
	rc = vfail_at(L, n->start_mark.line + 1, n->start_mark.column + 1, fmt, ap);
	va_end(ap);
	return rc;
}

static int nomem(loader *L)
{
	bn_error_locate(L->err, L->name, 0, 0);
	return bn_error_set(L->err, BN_ENOMEM, "out of memory loading rules");
}

static yaml_node_t *node_at(loader *L, int i)
{
	return yaml_document_get_node(&L->doc, i);
}

static const char *sval(const yaml_node_t *n)
{
	return (const char *)n->data.scalar.value;
}

static size_t slen(const yaml_node_t *n)
{
	return n->data.scalar.length;
}

static size_t mapping_size(const yaml_node_t *n)
{
	return (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
}

static size_t sequence_size(const yaml_node_t *n)
{
	return (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
}

/* A plain (unquoted) scalar YAML reads as null: empty, ~ or null. */
static int is_null(const yaml_node_t *n)
{
	const char *s = sval(n);
	if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return 0;
	return !s[0] || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

static char *memdup(const char *s, size_t n)
{
	char *p = malloc(n + 1);
	if (!p)
		return NULL;
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

static int expect(loader *L, const yaml_node_t *n, yaml_node_type_t type, const char *what)
{
	if (n->type == type)
		return 0;
	if (type == YAML_MAPPING_NODE)
		return fail(L, n, "expected a mapping for %s", what);
	if (type == YAML_SEQUENCE_NODE)
		return fail(L, n, "expected a list for %s", what);
	return fail(L, n, "expected a scalar for %s", what);
}

/*
 * Check every key of map against keys (scalar, known, not repeated) and
 * put the value node of keys[i] into vals[i] (NULL when absent). where
 * completes "unknown key 'x' ..." ("in field", "at top level").
 */
static int check_keys(loader *L, const yaml_node_t *map, const char *const *keys, const char *where,
		      yaml_node_t **vals)
{
	yaml_node_pair_t *p;
	size_t i;

	for (i = 0; keys[i]; i++)
		vals[i] = NULL;
	for (p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
		yaml_node_t *k = node_at(L, p->key);
		if (k->type != YAML_SCALAR_NODE)
			return fail(L, k, "expected a scalar key %s", where);
		for (i = 0; keys[i] && strcmp(keys[i], sval(k)); i++)
			;
		if (!keys[i]) {
			char list[256] = "";
			size_t used = 0;
			for (i = 0; keys[i] && used < sizeof(list); i++)
				used += (size_t)snprintf(list + used, sizeof(list) - used, "%s%s", i ? ", " : "", keys[i]);
			return fail(L, k, "unknown key '%s' %s (expected one of: %s)", sval(k), where, list);
		}
		if (vals[i])
			return fail(L, k, "duplicate key '%s' %s", sval(k), where);
		vals[i] = node_at(L, p->value);
	}
	return 0;
}

/* n is a scalar (and not empty when nonempty). */
static int check_string(loader *L, const yaml_node_t *n, const char *key, int nonempty)
{
	char what[64];
	snprintf(what, sizeof(what), "'%s'", key);
	if (expect(L, n, YAML_SCALAR_NODE, what))
		return BN_ERULES;
	if (nonempty && !slen(n))
		return fail(L, n, "'%s' must not be empty", key);
	return 0;
}

static int get_string(loader *L, const yaml_node_t *n, const char *key, int nonempty, char **out)
{
	int rc = check_string(L, n, key, nonempty);
	if (rc)
		return rc;
	*out = memdup(sval(n), slen(n));
	return *out ? 0 : nomem(L);
}

static int get_bool(loader *L, const yaml_node_t *n, const char *key, int *out)
{
	static const char *const yes[] = { "true", "True", "TRUE", NULL };
	static const char *const no[] = { "false", "False", "FALSE", NULL };
	int i;
	if (n->type == YAML_SCALAR_NODE) {
		for (i = 0; yes[i]; i++)
			if (!strcmp(sval(n), yes[i])) {
				*out = 1;
				return 0;
			}
		for (i = 0; no[i]; i++)
			if (!strcmp(sval(n), no[i])) {
				*out = 0;
				return 0;
			}
	}
	return fail(L, n, "'%s' must be true or false", key);
}

/* A decimal integer filling the whole of s[0..len). */
static int parse_int64(const char *s, size_t len, int64_t *out)
{
	char *end;
	long long v;
	if (!len || !(s[0] == '-' || s[0] == '+' || (s[0] >= '0' && s[0] <= '9')))
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || end != s + len)
		return -1;
	*out = v;
	return 0;
}

static int parse_double(const char *s, size_t len, double *out)
{
	char *end;
	double v;
	if (!len || !(s[0] == '-' || s[0] == '+' || s[0] == '.' || (s[0] >= '0' && s[0] <= '9')))
		return -1;
	errno = 0;
	v = strtod(s, &end);
	/* Infinities and NaN cannot be written as Avro JSON defaults. */
	if (errno == ERANGE || end != s + len || !isfinite(v))
		return -1;
	*out = v;
	return 0;
}

/* A positive integer no larger than max. */
static int get_count(loader *L, const yaml_node_t *n, const char *key, uint64_t max, uint64_t *out)
{
	int64_t v;
	if (n->type != YAML_SCALAR_NODE || parse_int64(sval(n), slen(n), &v) || v <= 0)
		return fail(L, n, "'%s' must be a positive integer", key);
	if ((uint64_t)v > max)
		return fail(L, n, "'%s' must be at most %llu", key, (unsigned long long)max);
	*out = (uint64_t)v;
	return 0;
}

static int is_avro_name(const char *s, size_t len)
{
	size_t i;
	if (!len || !((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
		return 0;
	for (i = 1; i < len; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return 0;
	return 1;
}

static int is_avro_namespace(const char *s)
{
	const char *dot;
	for (;;) {
		dot = strchr(s, '.');
		if (!is_avro_name(s, dot ? (size_t)(dot - s) : strlen(s)))
			return 0;
		if (!dot)
			return 1;
		s = dot + 1;
	}
}

/* Compile the pattern in scalar node n. The JIT is optional: without it the interpreter runs. */
static int compile_regex(loader *L, const yaml_node_t *n, const char *key, char **pattern, pcre2_code **out)
{
	PCRE2_UCHAR msg[256];
	PCRE2_SIZE offset;
	int ec;
	int rc;

	rc = get_string(L, n, key, 1, pattern);
	if (rc)
		return rc;
	*out = pcre2_compile((PCRE2_SPTR)sval(n), slen(n), PCRE2_UTF, &ec, &offset, NULL);
	if (!*out) {
		if (ec == PCRE2_ERROR_HEAP_FAILED)
			return nomem(L); /* the rule file is fine: do not blame it (exit 4) */
		if (pcre2_get_error_message(ec, msg, sizeof(msg)) < 0)
			snprintf((char *)msg, sizeof(msg), "error %d", ec);
		return fail(L, n, "invalid regex '%s' at offset %zu: %s", sval(n), (size_t)offset, (char *)msg);
	}
	(void)pcre2_jit_compile(*out, PCRE2_JIT_COMPLETE);
	return 0;
}

static int is_word(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

/* Does group ref[0..len) (a number or a name) exist in re? */
static int group_exists(const pcre2_code *re, const char *ref, size_t len)
{
	uint32_t groups = 0;
	char name[128];
	size_t i;

	if (ref[0] >= '0' && ref[0] <= '9') {
		unsigned long long n = 0;
		for (i = 0; i < len && n <= UINT32_MAX; i++)
			n = n * 10 + (unsigned)(ref[i] - '0');
		pcre2_pattern_info(re, PCRE2_INFO_CAPTURECOUNT, &groups);
		return n <= groups;
	}
	if (len >= sizeof(name))
		return 0;
	memcpy(name, ref, len);
	name[len] = '\0';
	return pcre2_substring_number_from_name(re, (PCRE2_SPTR)name) >= 0;
}

/*
 * pcre2_substitute reads the replacement only when the pattern matches, so a
 * bad '$' would otherwise fail at some record far into a run. Accepted:
 * $$, $N, $name, ${N}, ${name}, $*MARK and ${*MARK}, as in PCRE2.
 */
static int check_replacement(loader *L, const yaml_node_t *n, const bn_step *s)
{
	const char *p = s->replacement, *end = p + s->replacement_len;
	const char *ref;
	size_t len;

	for (;;) {
		int braced, mark;
		p = memchr(p, '$', (size_t)(end - p));
		if (!p)
			return 0;
		p++;
		if (p < end && *p == '$') {
			p++;
			continue;
		}
		braced = p < end && *p == '{';
		p += braced;
		mark = p < end && *p == '*';
		p += mark;
		ref = p;
		if (p < end && *p >= '0' && *p <= '9' && !mark)
			while (p < end && *p >= '0' && *p <= '9')
				p++;
		else
			while (p < end && is_word(*p))
				p++;
		len = (size_t)(p - ref);
		if (!len || (braced && (p == end || *p != '}')))
			return fail(L, n, "replacement '%s': '$' must be followed by $, a group number or name, "
				    "{group} or *MARK (write $$ for a literal $)", s->replacement);
		p += braced;
		if (!mark && !group_exists(s->re, ref, len))
			return fail(L, n, "replacement '%s' refers to group '%.*s', which the pattern does not have",
				    s->replacement, (int)len, ref);
	}
}

static int step_kind(const char *name)
{
	int i;
	for (i = 0; step_names[i]; i++)
		if (!strcmp(step_names[i], name))
			return i + 1;
	return 0;
}

typedef struct map_item {
	bn_map_entry e;
	const yaml_node_t *key;
	size_t order;
} map_item;

static int map_item_cmp(const void *a, const void *b)
{
	const map_item *x = a, *y = b;
	int c;
	if (x->e.from_len != y->e.from_len)
		return x->e.from_len < y->e.from_len ? -1 : 1;
	c = memcmp(x->e.from, y->e.from, x->e.from_len);
	if (c)
		return c;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* map: {FROM: TO, ...}, sorted by (from_len, memcmp) so lookups can binary-search. */
static int parse_map(loader *L, const yaml_node_t *v, bn_step *s)
{
	map_item *items = NULL;
	yaml_node_pair_t *p;
	size_t i, n;
	int rc = 0;

	if (expect(L, v, YAML_MAPPING_NODE, "step 'map' (like 'map: {FROM: TO}')"))
		return BN_ERULES;
	n = mapping_size(v);
	if (!n)
		return fail(L, v, "step 'map' is empty (expected at least one FROM: TO pair)");
	s->map = calloc(n, sizeof(*s->map));
	items = calloc(n, sizeof(*items));
	if (!s->map || !items) {
		rc = nomem(L);
		goto cleanup;
	}
	s->nmap = n;
	for (i = 0, p = v->data.mapping.pairs.start; i < n; i++, p++) {
		yaml_node_t *k = node_at(L, p->key), *t = node_at(L, p->value);
		if (k->type != YAML_SCALAR_NODE) {
			rc = fail(L, k, "expected a scalar key in step 'map'");
			goto cleanup;
		}
		if (t->type != YAML_SCALAR_NODE) {
			rc = fail(L, t, "expected a scalar value for '%s' in step 'map'", sval(k));
			goto cleanup;
		}
		s->map[i].from = memdup(sval(k), slen(k));
		s->map[i].to = memdup(sval(t), slen(t));
		if (!s->map[i].from || !s->map[i].to) {
			rc = nomem(L);
			goto cleanup;
		}
		s->map[i].from_len = slen(k);
		s->map[i].to_len = slen(t);
		items[i].e = s->map[i];
		items[i].key = k;
		items[i].order = i;
	}
	qsort(items, n, sizeof(*items), map_item_cmp);
	for (i = 1; i < n; i++)
		if (items[i].e.from_len == items[i - 1].e.from_len &&
		    !memcmp(items[i].e.from, items[i - 1].e.from, items[i].e.from_len)) {
			rc = fail(L, items[i].key, "duplicate key '%s' in step 'map'", sval(items[i].key));
			goto cleanup;
		}
	/* The step owns the strings; items only borrowed them to sort. */
	for (i = 0; i < n; i++)
		s->map[i] = items[i].e;
cleanup:
	free(items);
	return rc;
}

static int parse_step(loader *L, const yaml_node_t *n, bn_step *s)
{
	yaml_node_t *k, *v = NULL, *vals[MAX_KEYS];
	const char *name;
	uint64_t count;
	int kind, rc;

	s->line = (uint32_t)n->start_mark.line + 1;
	s->column = (uint32_t)n->start_mark.column + 1;
	if (n->type == YAML_SCALAR_NODE) {
		k = (yaml_node_t *)n;
	} else if (n->type == YAML_MAPPING_NODE && mapping_size(n) == 1) {
		k = node_at(L, n->data.mapping.pairs.start->key);
		v = node_at(L, n->data.mapping.pairs.start->value);
		if (k->type != YAML_SCALAR_NODE)
			return fail(L, k, "expected a step name (" STEP_LIST ")");
	} else if (n->type == YAML_MAPPING_NODE) {
		return fail(L, n, "a step is one name or one 'name: argument' pair, found %zu keys "
			    "(write each step as its own list item)", mapping_size(n));
	} else {
		return fail(L, n, "expected a step (a name like 'lower', or a pair like 'max_bytes: 64')");
	}
	name = sval(k);
	kind = step_kind(name);
	if (!kind)
		return fail(L, k, "unknown step '%s' (expected " STEP_LIST ")", name);
	s->kind = (bn_step_kind)kind;
	if (!v || ((kind == BN_STEP_TEXT || kind == BN_STEP_LOWER || kind == BN_STEP_UPPER) && is_null(v))) {
		if (kind == BN_STEP_TEXT || kind == BN_STEP_LOWER || kind == BN_STEP_UPPER)
			return 0;
		return fail(L, k, "step '%s' needs an argument (like '%s')", name, step_usage[kind - 1]);
	}

	switch (s->kind) {
	case BN_STEP_TEXT:
		if (expect(L, v, YAML_MAPPING_NODE, "step 'text' (like 'text: {max_bytes: 64}')"))
			return BN_ERULES;
		rc = check_keys(L, v, text_keys, "in step 'text'", vals);
		if (!rc && vals[0]) {
			rc = get_count(L, vals[0], "max_bytes", SIZE_MAX, &count);
			s->max_bytes = (size_t)count;
		}
		return rc;
	case BN_STEP_LOWER:
	case BN_STEP_UPPER:
		return fail(L, v, "step '%s' takes no argument", name);
	case BN_STEP_EXTRACT:
	case BN_STEP_FIRST_MATCH:
		rc = compile_regex(L, v, name, &s->pattern, &s->re);
		if (!rc && s->kind == BN_STEP_EXTRACT) {
			uint32_t groups = 0;
			pcre2_pattern_info(s->re, PCRE2_INFO_CAPTURECOUNT, &groups);
			if (!groups)
				return fail(L, v, "extract pattern '%s' has no capture group "
					    "(the value becomes group 1)", s->pattern);
		}
		return rc;
	case BN_STEP_REPLACE:
		if (expect(L, v, YAML_MAPPING_NODE, "step 'replace' (like 'replace: {pattern: P, with: S}')"))
			return BN_ERULES;
		rc = check_keys(L, v, replace_keys, "in step 'replace'", vals);
		if (rc)
			return rc;
		if (!vals[0] || !vals[1])
			return fail(L, v, "step 'replace' needs both 'pattern' and 'with'");
		rc = compile_regex(L, vals[0], "pattern", &s->pattern, &s->re);
		if (rc)
			return rc;
		/* 'with:' left empty (or null) means replace with nothing. */
		if (is_null(vals[1])) {
			s->replacement = memdup("", 0);
			if (!s->replacement)
				return nomem(L);
		} else {
			rc = get_string(L, vals[1], "with", 0, &s->replacement);
			if (rc)
				return rc;
		}
		s->replacement_len = strlen(s->replacement);
		return check_replacement(L, vals[1], s);
	case BN_STEP_TRIM: {
		size_t i;
		rc = get_string(L, v, "trim", 1, &s->chars);
		if (rc)
			return rc;
		s->nchars = slen(v);
		for (i = 0; i < s->nchars; i++)
			if ((unsigned char)s->chars[i] >= 0x80)
				return fail(L, v, "'trim' characters must be ASCII");
		return 0;
	}
	case BN_STEP_MAX_BYTES:
		rc = get_count(L, v, "max_bytes", SIZE_MAX, &count);
		s->max_bytes = (size_t)count;
		return rc;
	case BN_STEP_VALIDATE:
		s->on_fail = BN_ON_FAIL_NULL;
		if (v->type == YAML_SCALAR_NODE)
			return compile_regex(L, v, "validate", &s->pattern, &s->re);
		if (expect(L, v, YAML_MAPPING_NODE, "step 'validate' (a pattern, or {pattern: P, on_fail: null|reject|keep})"))
			return BN_ERULES;
		rc = check_keys(L, v, validate_keys, "in step 'validate'", vals);
		if (rc)
			return rc;
		if (!vals[0])
			return fail(L, v, "step 'validate' needs 'pattern'");
		rc = compile_regex(L, vals[0], "pattern", &s->pattern, &s->re);
		if (rc || !vals[1])
			return rc;
		/* YAML reads a plain null as null; here it is simply the word. */
		if (is_null(vals[1]))
			s->on_fail = BN_ON_FAIL_NULL;
		else if (vals[1]->type == YAML_SCALAR_NODE && !strcmp(sval(vals[1]), "reject"))
			s->on_fail = BN_ON_FAIL_REJECT;
		else if (vals[1]->type == YAML_SCALAR_NODE && !strcmp(sval(vals[1]), "keep"))
			s->on_fail = BN_ON_FAIL_KEEP;
		else if (vals[1]->type == YAML_SCALAR_NODE && !strcmp(sval(vals[1]), "null"))
			s->on_fail = BN_ON_FAIL_NULL;
		else
			return fail(L, vals[1], "unknown on_fail '%s' (expected null, reject or keep)",
				    vals[1]->type == YAML_SCALAR_NODE ? sval(vals[1]) : "...");
		return 0;
	case BN_STEP_MAP:
		return parse_map(L, v, s);
	}
	return fail(L, k, "unknown step '%s' (expected " STEP_LIST ")", name);
}

/* A list of steps. what names the chain in messages ("chain 'bundle'", "'chain'"). */
static int parse_chain(loader *L, const yaml_node_t *n, const char *what, bn_chain *c)
{
	yaml_node_item_t *it;
	size_t i;
	int rc;

	if (expect(L, n, YAML_SEQUENCE_NODE, what))
		return BN_ERULES;
	if (!sequence_size(n))
		return fail(L, n, "%s has no steps (expected a list of steps)", what);
	c->steps = calloc(sequence_size(n), sizeof(*c->steps));
	if (!c->steps)
		return nomem(L);
	c->nsteps = sequence_size(n);
	for (i = 0, it = n->data.sequence.items.start; it < n->data.sequence.items.top; i++, it++) {
		rc = parse_step(L, node_at(L, *it), &c->steps[i]);
		if (rc)
			return rc;
	}
	return 0;
}

static int parse_chains(loader *L, const yaml_node_t *n)
{
	bn_rules *r = L->r;
	yaml_node_pair_t *p;
	size_t i, j;
	int rc;

	if (expect(L, n, YAML_MAPPING_NODE, "'chains' (chain name -> list of steps)"))
		return BN_ERULES;
	if (!mapping_size(n))
		return 0;
	r->chains = calloc(mapping_size(n), sizeof(*r->chains));
	if (!r->chains)
		return nomem(L);
	r->nchains = mapping_size(n);
	for (i = 0, p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; i++, p++) {
		yaml_node_t *k = node_at(L, p->key);
		char what[160];
		if (k->type != YAML_SCALAR_NODE || !slen(k))
			return fail(L, k, "expected a chain name in 'chains'");
		for (j = 0; j < i; j++)
			if (!strcmp(r->chains[j].name, sval(k)))
				return fail(L, k, "duplicate chain name '%s'", sval(k));
		r->chains[i].name = memdup(sval(k), slen(k));
		if (!r->chains[i].name)
			return nomem(L);
		snprintf(what, sizeof(what), "chain '%s'", sval(k));
		rc = parse_chain(L, node_at(L, p->value), what, &r->chains[i]);
		if (rc)
			return rc;
	}
	return 0;
}

/*
 * A source path: member names joined by dots, each optionally followed by
 * [N] (an index), [*] (every element) or [] (the current row, right after the
 * rows array). A leading '/' starts at the line's object when 'root' is set.
 * The row mark and the root are resolved once the whole file is read
 * (resolve_paths).
 */
static int parse_path(loader *L, const yaml_node_t *n, const char *key, bn_path *path)
{
	const char *s, *p, *text;
	size_t cap;
	int rc;

	rc = get_string(L, n, key, 1, &path->text);
	if (rc)
		return rc;
	text = path->text;
	path->line = (uint32_t)n->start_mark.line + 1;
	path->column = (uint32_t)n->start_mark.column + 1;
	s = text;
	if (*s == '/') {
		path->absolute = 1;
		s++;
	}
	/* Every step and part takes at least one character. */
	cap = strlen(s) + 1;
	path->parts = calloc(cap, sizeof(*path->parts));
	path->steps = calloc(cap, sizeof(*path->steps));
	if (!path->parts || !path->steps)
		return nomem(L);
	for (;;) {
		char *name;
		for (p = s; *p && *p != '.' && *p != '[' && *p != ']'; p++)
			;
		if (p == s && *p == '[')
			return fail(L, n, "'%s' path '%s': '[' must follow a member name (like imp[0])", key, text);
		if (p == s)
			return fail(L, n, "'%s' path '%s' has an empty part (expected names joined by dots, like device.os)",
				    key, text);
		if (*p == ']')
			return fail(L, n, "'%s' path '%s' has a ']' without '['", key, text);
		name = memdup(s, (size_t)(p - s));
		if (!name)
			return nomem(L);
		path->parts[path->nparts++] = name;
		path->steps[path->nsteps++] = (bn_path_step){ .kind = BN_PATH_KEY, .name = name, .len = (size_t)(p - s) };
		while (*p == '[') {
			const char *q = strchr(p, ']');
			bn_path_step st = { .kind = BN_PATH_INDEX };
			if (!q)
				return fail(L, n, "'%s' path '%s' has a '[' without ']'", key, text);
			if (q == p + 1) {
				st.kind = BN_PATH_ROW;
			} else if (q == p + 2 && p[1] == '*') {
				st.kind = BN_PATH_ALL;
				path->wildcard = 1;
			} else {
				uint64_t x = 0;
				const char *d;
				for (d = p + 1; d < q && *d >= '0' && *d <= '9' && x <= UINT32_MAX; d++)
					x = x * 10 + (uint64_t)(*d - '0');
				if (d < q || x >= UINT32_MAX)
					return fail(L, n, "'%s' path '%s': '%.*s' is not an index (expected [N] with N from "
						    "0 to 4294967294, [*] for every element, or [] for the current row)",
						    key, text, (int)(q - p + 1), p);
				st.index = (uint32_t)x;
			}
			path->steps[path->nsteps++] = st;
			p = q + 1;
		}
		if (!*p)
			break;
		if (*p != '.')
			return fail(L, n, "'%s' path '%s': expected '.' or '[' after ']'", key, text);
		s = p + 1;
	}
	return 0;
}

/* Parse a field's 'source': one path, or a list of them tried in order (fallbacks). */
static int parse_sources(loader *L, const yaml_node_t *n, const char *key, bn_field *f)
{
	yaml_node_item_t *it;
	size_t i;
	int rc;

	if (n->type != YAML_SEQUENCE_NODE)
		return parse_path(L, n, key, &f->source);
	if (!sequence_size(n))
		return fail(L, n, "'%s' is an empty list (expected a path, or a list of paths tried in order)", key);
	f->alt = calloc(sequence_size(n), sizeof(*f->alt));
	if (!f->alt)
		return nomem(L);
	for (i = 0, it = n->data.sequence.items.start; it < n->data.sequence.items.top; i++, it++) {
		if (i == 0) {
			rc = parse_path(L, node_at(L, *it), key, &f->source);
		} else {
			f->nalt = i;
			rc = parse_path(L, node_at(L, *it), key, &f->alt[i - 1]);
		}
		if (rc)
			return rc;
	}
	f->nalt = sequence_size(n) - 1;
	f->chooses = f->nalt > 0;
	return 0;
}

static int parse_type(const char *s, bn_type *type, bn_shape *shape)
{
	char inner[32];
	size_t len = strlen(s);
	int i;

	*shape = BN_SHAPE_SCALAR;
	if (len > 7 && !strncmp(s, "array<", 6) && s[len - 1] == '>' && len - 7 < sizeof(inner)) {
		*shape = BN_SHAPE_ARRAY;
		memcpy(inner, s + 6, len - 7);
		inner[len - 7] = '\0';
		s = inner;
	} else if (len > 5 && !strncmp(s, "map<", 4) && s[len - 1] == '>' && len - 5 < sizeof(inner)) {
		*shape = BN_SHAPE_MAP;
		memcpy(inner, s + 4, len - 5);
		inner[len - 5] = '\0';
		s = inner;
	}
	for (i = 0; type_names[i]; i++)
		if (!strcmp(type_names[i], s)) {
			*type = (bn_type)(i + 1);
			return 0;
		}
	return -1;
}

static int parse_default(loader *L, const yaml_node_t *n, bn_field *f)
{
	bn_default *d = &f->def;
	int64_t v;

	if (n->type != YAML_SCALAR_NODE)
		return fail(L, n, "'default' must be a single value of the field's type");
	if (is_null(n))
		return fail(L, n, "'default' must not be null (leave 'default' out and the field is nullable)");
	switch (f->type) {
	case BN_T_STRING:
		d->s = memdup(sval(n), slen(n));
		if (!d->s)
			return nomem(L);
		d->s_len = slen(n);
		break;
	case BN_T_INT:
		if (parse_int64(sval(n), slen(n), &v) || v < INT32_MIN || v > INT32_MAX)
			return fail(L, n, "default '%s' is not a valid int (32-bit integer)", sval(n));
		d->i = v;
		break;
	case BN_T_LONG:
	case BN_T_TIMESTAMP_MS:
		if (parse_int64(sval(n), slen(n), &v))
			return fail(L, n, "default '%s' is not a valid %s (64-bit integer%s)", sval(n),
				    type_names[f->type - 1], f->type == BN_T_TIMESTAMP_MS ? " of epoch milliseconds" : "");
		d->i = v;
		break;
	case BN_T_DOUBLE:
		if (parse_double(sval(n), slen(n), &d->d))
			return fail(L, n, "default '%s' is not a valid double (a finite number)", sval(n));
		break;
	case BN_T_BOOLEAN: {
		int b;
		if (get_bool(L, n, "default", &b))
			return fail(L, n, "default '%s' is not a valid boolean (true or false)", sval(n));
		d->i = b;
		break;
	}
	}
	d->present = 1;
	return 0;
}

/* One bound of 'range', a number of the field's type. */
static int parse_bound(loader *L, const yaml_node_t *n, const bn_field *f, int64_t *i, double *d)
{
	if (n->type != YAML_SCALAR_NODE)
		return fail(L, n, "'range' must be a list of two numbers [MIN, MAX]");
	if (f->type == BN_T_DOUBLE) {
		if (parse_double(sval(n), slen(n), d))
			return fail(L, n, "range bound '%s' is not a valid double (a finite number)", sval(n));
		return 0;
	}
	if (parse_int64(sval(n), slen(n), i) || (f->type == BN_T_INT && (*i < INT32_MIN || *i > INT32_MAX)))
		return fail(L, n, "range bound '%s' is not a valid %s", sval(n),
			    f->type == BN_T_INT ? "int (32-bit integer)" : "long (64-bit integer)");
	*d = (double)*i;
	return 0;
}

/* range: [MIN, MAX] - values outside are invalid, like values that cannot be converted. */
static int parse_range(loader *L, const yaml_node_t *n, bn_field *f)
{
	if (f->is_ratio || (f->type != BN_T_INT && f->type != BN_T_LONG && f->type != BN_T_DOUBLE))
		return fail(L, n, "'range' is only for int, long and double fields (and arrays or maps of them)");
	if (n->type != YAML_SEQUENCE_NODE || sequence_size(n) != 2)
		return fail(L, n, "'range' must be a list of two numbers [MIN, MAX]");
	const yaml_node_t *lo = node_at(L, n->data.sequence.items.start[0]);
	const yaml_node_t *hi = node_at(L, n->data.sequence.items.start[1]);
	if (parse_bound(L, lo, f, &f->range_min_i, &f->range_min_d) || parse_bound(L, hi, f, &f->range_max_i, &f->range_max_d))
		return BN_ERULES;
	if (f->range_min_d > f->range_max_d || (f->type != BN_T_DOUBLE && f->range_min_i > f->range_max_i))
		return fail(L, n, "'range' minimum %s is greater than its maximum %s", sval(lo), sval(hi));
	f->has_range = 1;
	return 0;
}

static int parse_ratio(loader *L, const yaml_node_t *n, bn_field *f)
{
	yaml_node_t *vals[MAX_KEYS];
	int rc;

	if (expect(L, n, YAML_MAPPING_NODE, "'ratio' (numerator, denominator, invalid)"))
		return BN_ERULES;
	rc = check_keys(L, n, ratio_keys, "in 'ratio'", vals);
	if (rc)
		return rc;
	if (!vals[R_NUM] || !vals[R_DEN] || !vals[R_INVALID])
		return fail(L, n, "'ratio' needs 'numerator', 'denominator' and 'invalid' "
			    "(the value when the ratio is undefined)");
	rc = parse_path(L, vals[R_NUM], "numerator", &f->numerator);
	if (!rc)
		rc = parse_path(L, vals[R_DEN], "denominator", &f->denominator);
	if (rc)
		return rc;
	if (vals[R_INVALID]->type != YAML_SCALAR_NODE ||
	    parse_double(sval(vals[R_INVALID]), slen(vals[R_INVALID]), &f->ratio_invalid))
		return fail(L, vals[R_INVALID], "'invalid' must be a finite number");
	f->is_ratio = 1;
	return 0;
}

static int parse_field_chain(loader *L, const yaml_node_t *n, bn_field *f)
{
	bn_rules *r = L->r;
	size_t i;

	if (f->type != BN_T_STRING)
		return fail(L, n, "'chain' is only for string fields and arrays or maps of string (type is '%s')",
			    type_names[f->type - 1]);
	if (n->type == YAML_SCALAR_NODE) {
		for (i = 0; i < r->nchains; i++)
			if (!strcmp(r->chains[i].name, sval(n))) {
				f->chain = &r->chains[i];
				return 0;
			}
		return fail(L, n, "unknown chain '%s'", sval(n));
	}
	if (n->type != YAML_SEQUENCE_NODE)
		return fail(L, n, "expected a chain name or a list of steps for 'chain'");
	/* Counted before parsing, so a half-parsed chain is still freed. */
	f->chain = &r->inline_chains[r->ninline_chains++];
	return parse_chain(L, n, "'chain'", &r->inline_chains[r->ninline_chains - 1]);
}

static int parse_field(loader *L, const yaml_node_t *n, size_t index)
{
	bn_rules *r = L->r;
	bn_field *f = &r->fields[index];
	yaml_node_t *v[MAX_KEYS];
	uint64_t count;
	size_t i;
	int rc;

	if (expect(L, n, YAML_MAPPING_NODE, "each entry of 'fields'"))
		return BN_ERULES;
	f->line = (uint32_t)n->start_mark.line + 1;
	f->column = (uint32_t)n->start_mark.column + 1;
	rc = check_keys(L, n, field_keys, "in field", v);
	if (rc)
		return rc;
	if (!v[F_NAME])
		return fail(L, n, "field has no 'name'");
	rc = get_string(L, v[F_NAME], "name", 1, &f->name);
	if (rc)
		return rc;
	if (!is_avro_name(f->name, slen(v[F_NAME])))
		return fail(L, v[F_NAME], "field name '%s' is not an Avro name (expected [A-Za-z_][A-Za-z0-9_]*)",
			    f->name);
	for (i = 0; i < index; i++)
		if (!strcmp(r->fields[i].name, f->name))
			return fail(L, v[F_NAME], "duplicate field name '%s'", f->name);
	L->field = f->name;

	if (!v[F_TYPE])
		return fail(L, n, "missing 'type' (expected " TYPE_LIST ")");
	if (v[F_TYPE]->type != YAML_SCALAR_NODE || parse_type(sval(v[F_TYPE]), &f->type, &f->shape))
		return fail(L, v[F_TYPE], "unknown type '%s' (expected " TYPE_LIST ")",
			    v[F_TYPE]->type == YAML_SCALAR_NODE ? sval(v[F_TYPE]) : "...");
	if (v[F_DOC] && !is_null(v[F_DOC])) {
		rc = get_string(L, v[F_DOC], "doc", 0, &f->doc);
		if (rc)
			return rc;
	}

	if (v[F_RATIO] && (v[F_PRESENCE] || v[F_ROW_INDEX]))
		return fail(L, v[F_PRESENCE] ? v[F_PRESENCE] : v[F_ROW_INDEX], "'%s' is not allowed with 'ratio'",
			    v[F_PRESENCE] ? "presence" : "row_index");
	if (v[F_PRESENCE] && v[F_ROW_INDEX])
		return fail(L, v[F_ROW_INDEX], "'row_index' is not allowed with 'presence'");
	if (v[F_RATIO]) {
		if (f->type != BN_T_DOUBLE || f->shape != BN_SHAPE_SCALAR)
			return fail(L, v[F_TYPE], "a ratio field must have type double");
		if (v[F_SOURCE])
			return fail(L, v[F_SOURCE], "'source' is not allowed with 'ratio' "
				    "(a ratio reads its numerator and denominator)");
		if (v[F_REQUIRED])
			return fail(L, v[F_REQUIRED], "'required' is not allowed with 'ratio' "
				    "(an undefined ratio becomes 'invalid')");
		if (v[F_DEFAULT])
			return fail(L, v[F_DEFAULT], "'default' is not allowed with 'ratio' (use the ratio's 'invalid')");
		rc = parse_ratio(L, v[F_RATIO], f);
		if (rc)
			return rc;
	} else if (v[F_PRESENCE]) {
		if (f->type != BN_T_STRING || f->shape != BN_SHAPE_ARRAY)
			return fail(L, v[F_TYPE], "a presence field must have type array<string>");
		if (v[F_SOURCE])
			return fail(L, v[F_SOURCE], "'source' is not allowed with 'presence' "
				    "(presence lists the paths it looks at)");
		if (v[F_CHAIN])
			return fail(L, v[F_CHAIN], "'chain' is not allowed with 'presence' (its values are path names)");
		if (v[F_PRESENCE]->type != YAML_SEQUENCE_NODE)
			return fail(L, v[F_PRESENCE], "expected a list of paths for 'presence' (like [banner, video])");
		rc = parse_sources(L, v[F_PRESENCE], "presence", f);
		if (rc)
			return rc;
		f->presence = 1;
	} else if (v[F_ROW_INDEX]) {
		int on;
		rc = get_bool(L, v[F_ROW_INDEX], "row_index", &on);
		if (rc)
			return rc;
		if (!on)
			return fail(L, v[F_ROW_INDEX], "'row_index' must be true when given (leave it out otherwise)");
		if ((f->type != BN_T_INT && f->type != BN_T_LONG) || f->shape != BN_SHAPE_SCALAR)
			return fail(L, v[F_TYPE], "a row_index field must have type int or long");
		if (v[F_SOURCE])
			return fail(L, v[F_SOURCE], "'source' is not allowed with 'row_index' (the value is the row's position)");
		if (v[F_DEFAULT])
			return fail(L, v[F_DEFAULT], "'default' is not allowed with 'row_index' (it is never missing)");
		f->row_index = 1;
		f->reads_row = 1;
	} else {
		if (!v[F_SOURCE])
			return fail(L, n, "missing 'source' (the dotted path of the value in the input JSON)");
		rc = parse_sources(L, v[F_SOURCE], "source", f);
		if (rc)
			return rc;
	}

	if (v[F_REQUIRED]) {
		rc = get_bool(L, v[F_REQUIRED], "required", &f->required);
		if (rc)
			return rc;
	}
	if (v[F_DEFAULT]) {
		if (f->required)
			return fail(L, v[F_DEFAULT], "'default' is not allowed with 'required: true' "
				    "(a required field is never missing)");
		if (f->shape != BN_SHAPE_SCALAR)
			return fail(L, v[F_DEFAULT], "'default' is not allowed for arrays and maps (they default to empty)");
		rc = parse_default(L, v[F_DEFAULT], f);
		if (rc)
			return rc;
	}
	if (v[F_RANGE]) {
		rc = parse_range(L, v[F_RANGE], f);
		if (rc)
			return rc;
		if (f->def.present && !bn_field_in_range(f, f->def.i, f->def.d))
			return fail(L, v[F_DEFAULT], "default '%s' is outside 'range'", sval(v[F_DEFAULT]));
	}
	if (v[F_CHAIN]) {
		rc = parse_field_chain(L, v[F_CHAIN], f);
		if (rc)
			return rc;
	}
	if (v[F_MAX_ITEMS]) {
		if (f->shape != BN_SHAPE_ARRAY)
			return fail(L, v[F_MAX_ITEMS], "'max_items' is only for array fields");
		rc = get_count(L, v[F_MAX_ITEMS], "max_items", SIZE_MAX, &count);
		if (rc)
			return rc;
		f->max_items = (size_t)count;
	}
	if (v[F_UNIQUE]) {
		if (f->shape != BN_SHAPE_ARRAY)
			return fail(L, v[F_UNIQUE], "'unique' is only for array fields");
		rc = get_bool(L, v[F_UNIQUE], "unique", &f->unique);
		if (rc)
			return rc;
	}
	f->strip_serving_invalid = f->shape == BN_SHAPE_MAP;
	if (v[F_STRIP]) {
		if (f->shape != BN_SHAPE_MAP)
			return fail(L, v[F_STRIP], "'strip_serving_invalid' is only for map fields");
		rc = get_bool(L, v[F_STRIP], "strip_serving_invalid", &f->strip_serving_invalid);
		if (rc)
			return rc;
	}
	if (v[F_SAME]) {
		/* The group's first field may come later in the file: link_groups checks it once all are read. */
		if (f->is_ratio || f->presence || f->row_index)
			return fail(L, v[F_SAME], "'same_source_as' is not allowed with '%s' (it ties 'source' lists)",
				    f->is_ratio ? "ratio" : f->presence ? "presence" : "row_index");
		rc = check_string(L, v[F_SAME], "same_source_as", 1);
		if (rc)
			return rc;
		if (!strcmp(sval(v[F_SAME]), f->name))
			return fail(L, v[F_SAME], "'same_source_as' names the field itself (expected the name of another "
				    "field, the group's first)");
		L->same[index] = v[F_SAME];
	}
	L->field = NULL;
	return 0;
}

/* The index of the field named name, or -1. */
static ptrdiff_t field_named(const bn_rules *r, const char *name)
{
	for (size_t i = 0; i < r->nfields; i++)
		if (!strcmp(r->fields[i].name, name))
			return (ptrdiff_t)i;
	return -1;
}

/*
 * same_source_as: check every link - to an existing field with as many sources, that is itself in no
 * other field's group (one level: no chains) - then list each group's members, its first field first.
 */
static int link_groups(loader *L)
{
	bn_rules *r = L->r;
	size_t k = 0;

	for (size_t i = 0; i < r->nfields; i++) {
		const yaml_node_t *same = L->same[i];
		const bn_field *f = &r->fields[i], *lead;
		ptrdiff_t g;
		if (!same)
			continue;
		L->field = f->name;
		g = field_named(r, sval(same));
		if (g < 0)
			return fail(L, same, "'same_source_as' names no field '%s'", sval(same));
		lead = &r->fields[g];
		if (L->same[g])
			return fail(L, same, "'same_source_as' names '%s', which takes its source as '%s' does: name '%s' "
				    "(a group has one first field, no chains)", lead->name, sval(L->same[g]),
				    sval(L->same[g]));
		if (lead->is_ratio || lead->presence || lead->row_index)
			return fail(L, same, "'same_source_as' names '%s', which has no 'source' (it is a %s field)",
				    lead->name, lead->is_ratio ? "ratio" : lead->presence ? "presence" : "row_index");
		if (lead->nalt != f->nalt)
			return fail(L, same, "'same_source_as' names '%s', which has %zu source path%s, but this field "
				    "has %zu (a group takes one position in every list)", lead->name, lead->nalt + 1,
				    lead->nalt ? "s" : "", f->nalt + 1);
		k++;
	}
	L->field = NULL;
	if (!k)
		return 0;
	r->groups = calloc(r->nfields, sizeof(*r->groups));
	r->group_members = calloc(r->nfields, sizeof(*r->group_members));
	if (!r->groups || !r->group_members)
		return nomem(L);
	k = 0;
	for (size_t i = 0; i < r->nfields; i++) {
		size_t first = k;
		if (L->same[i])
			continue;
		r->group_members[k++] = i;
		for (size_t j = 0; j < r->nfields; j++)
			if (L->same[j] && !strcmp(sval(L->same[j]), r->fields[i].name))
				r->group_members[k++] = j;
		if (k - first == 1) { /* no field names it: in no group */
			k = first;
			continue;
		}
		for (size_t m = first; m < k; m++) {
			r->groups[r->group_members[m]].first = (uint32_t)first;
			r->groups[r->group_members[m]].count = (uint32_t)(k - first);
			r->fields[r->group_members[m]].chooses = 1;
		}
	}
	return 0;
}

static int parse_fields(loader *L, const yaml_node_t *n)
{
	bn_rules *r = L->r;
	yaml_node_item_t *it;
	size_t i;
	int rc;

	if (expect(L, n, YAML_SEQUENCE_NODE, "'fields'"))
		return BN_ERULES;
	if (!sequence_size(n))
		return fail(L, n, "'fields' is empty (expected at least one field)");
	r->fields = calloc(sequence_size(n), sizeof(*r->fields));
	/* At most one inline chain per field: the array never moves, so fields can point into it. */
	r->inline_chains = calloc(sequence_size(n), sizeof(*r->inline_chains));
	L->same = calloc(sequence_size(n), sizeof(*L->same));
	if (!r->fields || !r->inline_chains || !L->same)
		return nomem(L);
	r->nfields = sequence_size(n);
	for (i = 0, it = n->data.sequence.items.start; it < n->data.sequence.items.top; i++, it++) {
		rc = parse_field(L, node_at(L, *it), i);
		if (rc)
			return rc;
	}
	return 0;
}

static int parse_invalid(loader *L, const yaml_node_t *n)
{
	bn_rules *r = L->r;
	yaml_node_t *vals[MAX_KEYS];
	yaml_node_item_t *it;
	size_t i;
	int rc;

	if (expect(L, n, YAML_SEQUENCE_NODE, "'serving_invalid'"))
		return BN_ERULES;
	if (!sequence_size(n))
		return 0;
	r->invalid = calloc(sequence_size(n), sizeof(*r->invalid));
	if (!r->invalid)
		return nomem(L);
	r->ninvalid = sequence_size(n);
	for (i = 0, it = n->data.sequence.items.start; it < n->data.sequence.items.top; i++, it++) {
		yaml_node_t *e = node_at(L, *it);
		bn_invalid_rule *rule = &r->invalid[i];
		if (expect(L, e, YAML_MAPPING_NODE, "each entry of 'serving_invalid' ({pattern, reason})"))
			return BN_ERULES;
		rc = check_keys(L, e, invalid_keys, "in serving_invalid entry", vals);
		if (rc)
			return rc;
		if (!vals[0] || !vals[1])
			return fail(L, e, "a serving_invalid entry needs 'pattern' and 'reason'");
		rule->line = (uint32_t)e->start_mark.line + 1;
		rule->column = (uint32_t)e->start_mark.column + 1;
		rc = compile_regex(L, vals[0], "pattern", &rule->pattern, &rule->re);
		if (!rc)
			rc = get_string(L, vals[1], "reason", 1, &rule->reason);
		if (rc)
			return rc;
	}
	return 0;
}

static int parse_allow(loader *L, const yaml_node_t *n)
{
	bn_rules *r = L->r;
	yaml_node_t *vals[MAX_KEYS];
	yaml_node_item_t *it;
	size_t i;
	int rc;

	if (expect(L, n, YAML_SEQUENCE_NODE, "'allow'"))
		return BN_ERULES;
	if (!sequence_size(n))
		return 0;
	r->allow = calloc(sequence_size(n), sizeof(*r->allow));
	if (!r->allow)
		return nomem(L);
	r->nallow = sequence_size(n);
	for (i = 0, it = n->data.sequence.items.start; it < n->data.sequence.items.top; i++, it++) {
		yaml_node_t *e = node_at(L, *it);
		if (expect(L, e, YAML_MAPPING_NODE, "each entry of 'allow' ({name, justification})"))
			return BN_ERULES;
		rc = check_keys(L, e, allow_keys, "in allow entry", vals);
		if (rc)
			return rc;
		if (!vals[0])
			return fail(L, e, "an allow entry needs 'name' (a field name or source path)");
		rc = get_string(L, vals[0], "name", 1, &r->allow[i].name);
		if (rc)
			return rc;
		/* The point of 'allow' is the written reason: no reason, no exception. */
		if (!vals[1] || is_null(vals[1]) || (vals[1]->type == YAML_SCALAR_NODE && !slen(vals[1])))
			return fail(L, vals[1] ? vals[1] : e, "allow entry '%s' needs a non-empty 'justification'",
				    r->allow[i].name);
		rc = get_string(L, vals[1], "justification", 1, &r->allow[i].justification);
		if (rc)
			return rc;
	}
	return 0;
}

static int parse_limits(loader *L, const yaml_node_t *n)
{
	bn_rules *r = L->r;
	yaml_node_t *v[MAX_KEYS];
	uint64_t x;
	int i, rc;

	if (expect(L, n, YAML_MAPPING_NODE, "'limits'"))
		return BN_ERULES;
	rc = check_keys(L, n, limit_keys, "in 'limits'", v);
	if (rc)
		return rc;
	/* Table order matches the LIM_ enum; absent keys keep their defaults. */
	for (i = 0; i < LIM_N; i++) {
		if (!v[i])
			continue;
		rc = get_count(L, v[i], limit_keys[i], i == LIM_MATCH || i == LIM_DEPTH || i == LIM_ROWS ? UINT32_MAX
			       : SIZE_MAX, &x);
		if (rc)
			return rc;
		if (i == LIM_ROWS)
			r->max_rows = (size_t)x;
		else if (i == LIM_LINE)
			r->max_line_bytes = (size_t)x;
		else if (i == LIM_TEXT)
			r->max_text_bytes = (size_t)x;
		else if (i == LIM_MATCH)
			r->regex_match_limit = (uint32_t)x;
		else
			r->regex_depth_limit = (uint32_t)x;
	}
	return 0;
}

static int parse_schema(loader *L, const yaml_node_t *n)
{
	bn_rules *r = L->r;
	yaml_node_t *v[MAX_KEYS];
	int rc;

	if (expect(L, n, YAML_MAPPING_NODE, "'schema'"))
		return BN_ERULES;
	rc = check_keys(L, n, schema_keys, "in 'schema'", v);
	if (rc)
		return rc;
	if (!v[SCH_NAME])
		return fail(L, n, "'schema' needs 'name' (the Avro record name, like Impression)");
	rc = get_string(L, v[SCH_NAME], "name", 1, &r->schema_name);
	if (rc)
		return rc;
	if (!is_avro_name(r->schema_name, slen(v[SCH_NAME])))
		return fail(L, v[SCH_NAME], "schema name '%s' is not an Avro name (expected [A-Za-z_][A-Za-z0-9_]*)",
			    r->schema_name);
	if (v[SCH_NAMESPACE]) {
		rc = get_string(L, v[SCH_NAMESPACE], "namespace", 1, &r->schema_namespace);
		if (rc)
			return rc;
		if (!is_avro_namespace(r->schema_namespace))
			return fail(L, v[SCH_NAMESPACE], "schema namespace '%s' is not dot-separated Avro names "
				    "(like ads.bidlog)", r->schema_namespace);
	}
	if (v[SCH_DOC] && !is_null(v[SCH_DOC]))
		return get_string(L, v[SCH_DOC], "doc", 0, &r->schema_doc);
	return 0;
}

static int resolve_paths(loader *L);

static int parse_root(loader *L)
{
	bn_rules *r = L->r;
	yaml_node_t *root = yaml_document_get_root_node(&L->doc);
	yaml_node_t *v[MAX_KEYS];
	int rc;

	if (!root)
		return fail_at(L, 0, 0, "the rule file is empty (expected a mapping with 'version', 'schema' and 'fields')");
	if (expect(L, root, YAML_MAPPING_NODE, "the rule file (version, schema, fields, ...)"))
		return BN_ERULES;
	rc = check_keys(L, root, top_keys, "at top level", v);
	if (rc)
		return rc;
	if (!v[TOP_VERSION])
		return fail(L, root, "missing 'version' (expected 'version: 1')");
	if (v[TOP_VERSION]->type != YAML_SCALAR_NODE || strcmp(sval(v[TOP_VERSION]), "1"))
		return fail(L, v[TOP_VERSION], "'version' must be 1");
	if (!v[TOP_SCHEMA])
		return fail(L, root, "missing 'schema' (expected the output record's name and namespace)");
	if (!v[TOP_FIELDS])
		return fail(L, root, "missing 'fields' (expected the list of output fields)");
	/* Fixed order, whatever the file's order: fields refer to chains. */
	rc = parse_schema(L, v[TOP_SCHEMA]);
	if (!rc && v[TOP_LIMITS])
		rc = parse_limits(L, v[TOP_LIMITS]);
	if (!rc && v[TOP_CHAINS])
		rc = parse_chains(L, v[TOP_CHAINS]);
	if (!rc && v[TOP_INVALID])
		rc = parse_invalid(L, v[TOP_INVALID]);
	if (!rc && v[TOP_ALLOW])
		rc = parse_allow(L, v[TOP_ALLOW]);
	if (!rc && v[TOP_ROWS])
		rc = parse_path(L, v[TOP_ROWS], "rows", &r->rows);
	if (!rc && v[TOP_ROOT])
		rc = parse_path(L, v[TOP_ROOT], "root", &r->root);
	if (!rc)
		rc = parse_fields(L, v[TOP_FIELDS]);
	if (!rc)
		rc = link_groups(L);
	if (!rc)
		rc = resolve_paths(L);
	return rc;
}

/* The i-th step of path p as seen from the line's object: a row path is the rows path, [*], then the rest. */
static bn_path_step vstep(const bn_rules *r, const bn_path *p, size_t i)
{
	if (!p->row)
		return p->steps[i];
	if (i < r->rows.nsteps)
		return r->rows.steps[i];
	if (i == r->rows.nsteps)
		return (bn_path_step){ .kind = BN_PATH_ALL };
	return p->steps[i - r->rows.nsteps];
}

static size_t vlen(const bn_rules *r, const bn_path *p)
{
	return p->row ? r->rows.nsteps + p->nsteps : p->nsteps;
}

/* Every path the rules read, with the field it belongs to (NULL for 'rows'). */
typedef struct path_ref {
	const bn_path *path;
	const bn_field *field;
} path_ref;

/*
 * Two paths that agree up to some member but then read it one as an object
 * and one as an array cannot both find a value: one of them is wrong (like
 * 'imp.0.bidfloor' where 'imp' is the rows array). Report the later one.
 */
static int check_shapes(loader *L, const path_ref *refs, size_t nrefs)
{
	const bn_rules *r = L->r;
	for (size_t b = 1; b < nrefs; b++) {
		for (size_t a = 0; a < b; a++) {
			const bn_path *pa = refs[a].path, *pb = refs[b].path;
			size_t na = vlen(r, pa), nb = vlen(r, pb);
			for (size_t i = 0; i < na && i < nb; i++) {
				bn_path_step sa = vstep(r, pa, i), sb = vstep(r, pb, i);
				int ka = sa.kind == BN_PATH_KEY, kb = sb.kind == BN_PATH_KEY;
				if (ka && kb && (sa.len != sb.len || memcmp(sa.name, sb.name, sa.len)))
					break;
				if (ka == kb)
					continue;
				char prefix[256] = "";
				size_t used = 0;
				for (size_t j = 0; j < i && used < sizeof(prefix); j++) {
					bn_path_step sj = vstep(r, pb, j);
					if (sj.kind == BN_PATH_KEY)
						used += (size_t)snprintf(prefix + used, sizeof(prefix) - used, "%s%.*s",
									 j ? "." : "", (int)sj.len, sj.name);
					else
						used += (size_t)snprintf(prefix + used, sizeof(prefix) - used, "[]");
				}
				L->field = refs[b].field ? refs[b].field->name : NULL;
				return fail_at(L, pb->line, pb->column, "path '%s' reads '%s' as %s, but %s '%s' (line %u) "
					       "reads it as %s", pb->text, prefix, kb ? "an object" : "an array",
					       refs[a].field ? "path" : "the rows path", pa->text, pa->line,
					       ka ? "an object" : "an array");
			}
		}
	}
	L->field = NULL;
	return 0;
}

/* Prepend the steps of prefix to p (the root of relative paths). */
static int prepend(loader *L, bn_path *p, const bn_path *prefix)
{
	bn_path_step *steps = malloc((p->nsteps + prefix->nsteps) * sizeof(*steps));
	if (!steps)
		return nomem(L);
	memcpy(steps, prefix->steps, prefix->nsteps * sizeof(*steps));
	memcpy(steps + prefix->nsteps, p->steps, p->nsteps * sizeof(*steps));
	free(p->steps);
	p->steps = steps;
	p->nsteps += prefix->nsteps;
	return 0;
}

/*
 * Resolve one path of field f: a path with [] must continue the rows path
 * (it then starts at the current row); other paths start at 'root' unless
 * written with '/'. 'what' is the key it was written under.
 */
static int resolve_path(loader *L, bn_field *f, bn_path *p, const char *what)
{
	bn_rules *r = L->r;
	size_t mark = SIZE_MAX, i;

	L->field = f->name;
	for (i = 0; i < p->nsteps; i++) {
		if (p->steps[i].kind != BN_PATH_ROW)
			continue;
		if (mark != SIZE_MAX)
			return fail_at(L, p->line, p->column, "'%s' path '%s' has [] twice (the current row is one element)",
				       what, p->text);
		mark = i;
	}
	if (mark == SIZE_MAX)
		return r->root.nsteps && !p->absolute ? prepend(L, p, &r->root) : 0;
	if (!r->rows.nsteps)
		return fail_at(L, p->line, p->column, "'%s' path '%s': [] is the current row, but the rule file has no "
			       "'rows' (the array whose elements become records)", what, p->text);
	int same = !p->absolute && mark == r->rows.nsteps;
	for (i = 0; same && i < mark; i++)
		same = p->steps[i].kind == BN_PATH_KEY && p->steps[i].len == r->rows.steps[i].len &&
		       !memcmp(p->steps[i].name, r->rows.steps[i].name, p->steps[i].len);
	if (!same)
		return fail_at(L, p->line, p->column, "'%s' path '%s': [] must follow the rows array '%s' (like %s[].id)",
			       what, p->text, r->rows.text, r->rows.text);
	p->steps[0] = (bn_path_step){ .kind = BN_PATH_ROW };
	memmove(p->steps + 1, p->steps + mark + 1, (p->nsteps - mark - 1) * sizeof(*p->steps));
	p->nsteps -= mark;
	p->row = 1;
	f->reads_row = 1;
	return 0;
}

/* After every field is read: resolve rows and root into the paths, then check them against each other. */
static int resolve_paths(loader *L)
{
	bn_rules *r = L->r;
	bn_path_step row_step = { .kind = BN_PATH_ROW };
	bn_path rows_elems;
	path_ref *refs = NULL;
	size_t nrefs = 0, cap = 1;
	int rc = 0;

	if (r->root.nsteps && (r->root.wildcard || r->root.nsteps != r->root.nparts || r->root.absolute))
		return fail_at(L, r->root.line, r->root.column, "'root' path '%s' must be member names joined by dots "
			       "(no [N], [*], [] or leading /)", r->root.text);
	if (r->rows.nsteps && (r->rows.wildcard || r->rows.nsteps != r->rows.nparts))
		return fail_at(L, r->rows.line, r->rows.column, "'rows' path '%s' must be member names joined by dots "
			       "(no [N], [*] or [])", r->rows.text);
	for (size_t i = 0; i < r->nfields; i++)
		cap += 3 + r->fields[i].nalt;
	refs = calloc(cap, sizeof(*refs));
	if (!refs)
		return nomem(L);
	/* Fields' row paths compare with the rows path as written, so it is resolved after them; but its
	   shape goes first, so a field path that disagrees with it is the one reported. */
	if (r->rows.nsteps)
		refs[nrefs++] = (path_ref){ &rows_elems, NULL };
	for (size_t i = 0; i < r->nfields && !rc; i++) {
		bn_field *f = &r->fields[i];
		bn_path *paths[3] = { &f->source, &f->numerator, &f->denominator };
		const char *what[3] = { f->presence ? "presence" : "source", "numerator", "denominator" };
		for (size_t j = 0; j < 3 + f->nalt && !rc; j++) {
			bn_path *p = j < 3 ? paths[j] : &f->alt[j - 3];
			if (!p->nsteps)
				continue;
			rc = resolve_path(L, f, p, j < 3 ? what[j] : what[0]);
			if (rc)
				break;
			L->field = f->name;
			if (p->wildcard && (f->shape != BN_SHAPE_ARRAY || f->presence || f->is_ratio))
				rc = fail_at(L, p->line, p->column, "'%s' path '%s' has [*], which collects several values: "
					     "only for array fields (not %s)", j < 3 ? what[j] : what[0], p->text,
					     f->is_ratio ? "a ratio" : f->presence ? "presence" :
					     f->shape == BN_SHAPE_MAP ? "a map" : "a single value");
			refs[nrefs++] = (path_ref){ p, f };
		}
		L->field = f->name;
		if (!rc && f->row_index && !r->rows.nsteps)
			rc = fail_at(L, f->line, f->column, "'row_index' needs 'rows' at top level (the array whose "
				     "elements become records)");
	}
	L->field = NULL;
	if (!rc && r->rows.nsteps) {
		if (r->root.nsteps && !r->rows.absolute)
			rc = prepend(L, &r->rows, &r->root);
		/* As a path, the rows are the elements of the rows array. */
		rows_elems = (bn_path){ .text = r->rows.text, .steps = &row_step, .nsteps = 1, .row = 1,
					.line = r->rows.line, .column = r->rows.column };
	}
	if (!rc)
		rc = check_shapes(L, refs, nrefs);
	free(refs);
	return rc;
}

static int allowed(const bn_rules *r, const bn_field *f)
{
	size_t i;
	for (i = 0; i < r->nallow; i++) {
		if (!strcmp(r->allow[i].name, f->name) ||
		    (f->source.text && !strcmp(r->allow[i].name, f->source.text)) ||
		    (f->numerator.text && !strcmp(r->allow[i].name, f->numerator.text)) ||
		    (f->denominator.text && !strcmp(r->allow[i].name, f->denominator.text)))
			return 1;
		for (size_t j = 0; j < f->nalt; j++)
			if (!strcmp(r->allow[i].name, f->alt[j].text))
				return 1;
	}
	return 0;
}

/* The first serving_invalid rule matching s, or NULL. */
static const bn_invalid_rule *invalid_match(const bn_rules *r, pcre2_match_data *md, const char *s)
{
	size_t i;
	/*
	 * The interpreter, not the JIT: a few short names at load do not need
	 * it, and the JIT's wide reads past the subject trip memory checkers.
	 */
	for (i = 0; i < r->ninvalid; i++)
		if (pcre2_match(r->invalid[i].re, (PCRE2_SPTR)s, strlen(s), 0, PCRE2_NO_JIT, md, NULL) >= 0)
			return &r->invalid[i];
	return NULL;
}

static const bn_invalid_rule *path_match(const bn_rules *r, pcre2_match_data *md, const bn_path *p)
{
	const bn_invalid_rule *hit;
	size_t i;
	if (!p->text)
		return NULL;
	hit = invalid_match(r, md, p->text);
	for (i = 0; !hit && i < p->nparts; i++)
		hit = invalid_match(r, md, p->parts[i]);
	return hit;
}

/*
 * A feature computed differently in training and serving (relative times,
 * feedback) must not be an output unless someone wrote down why it is safe.
 */
static int check_serving_invalid(loader *L)
{
	const bn_rules *r = L->r;
	pcre2_match_data *md = NULL;
	size_t i;
	int rc = 0;

	if (!r->ninvalid)
		return 0;
	md = pcre2_match_data_create(1, NULL);
	if (!md)
		return nomem(L);
	for (i = 0; i < r->nfields && !rc; i++) {
		const bn_field *f = &r->fields[i];
		const bn_path *paths[3] = { &f->source, &f->numerator, &f->denominator };
		const bn_invalid_rule *hit;
		const bn_path *via = NULL;
		size_t j;
		if (allowed(r, f))
			continue;
		hit = invalid_match(r, md, f->name);
		for (j = 0; !hit && j < 3 + f->nalt; j++) {
			via = j < 3 ? paths[j] : &f->alt[j - 3];
			hit = path_match(r, md, via);
		}
		if (!hit)
			continue;
		if (via)
			rc = fail_at(L, f->line, f->column, "field '%s' (source '%s') matches serving_invalid pattern "
				     "'%s' (%s); remove it, or add it to 'allow' with a justification",
				     f->name, via->text, hit->pattern, hit->reason);
		else
			rc = fail_at(L, f->line, f->column, "field '%s' matches serving_invalid pattern '%s' (%s); "
				     "remove it, or add it to 'allow' with a justification",
				     f->name, hit->pattern, hit->reason);
	}
	pcre2_match_data_free(md);
	return rc;
}

/* libyaml's own message, at its position; the context says where the construct began. */
static int syntax_error(loader *L, const yaml_parser_t *p, const char *text)
{
	size_t line = p->problem_mark.line + 1, column = p->problem_mark.column + 1;
	const char *problem = p->problem ? p->problem : "unknown problem";

	/* libyaml fails without setting an error on some of its allocation failures (copying tags and
	 * scalars while loading): no error means out of memory, not a rule file at fault. */
	if (p->error == YAML_MEMORY_ERROR || p->error == YAML_NO_ERROR)
		return nomem(L);
	if (p->error == YAML_READER_ERROR) {
		/* Reader errors (bad encoding) carry a byte offset instead of a mark. */
		size_t i;
		line = 1;
		column = 1;
		for (i = 0; i < p->problem_offset; i++) {
			column++;
			if (text[i] == '\n') {
				line++;
				column = 1;
			}
		}
		if (p->problem_value >= 0)
			return fail_at(L, line, column, "YAML syntax error: %s (byte 0x%02x)", problem,
				       (unsigned)p->problem_value);
		return fail_at(L, line, column, "YAML syntax error: %s", problem);
	}
	if (p->context)
		return fail_at(L, line, column, "YAML syntax error: %s (%s at %zu:%zu)", problem, p->context,
			       p->context_mark.line + 1, p->context_mark.column + 1);
	return fail_at(L, line, column, "YAML syntax error: %s", problem);
}

static void free_path(bn_path *p)
{
	size_t i;
	for (i = 0; i < p->nparts; i++)
		free(p->parts[i]);
	free(p->parts);
	free(p->steps);
	free(p->text);
}

static void free_chain(bn_chain *c)
{
	size_t i, j;
	for (i = 0; i < c->nsteps; i++) {
		bn_step *s = &c->steps[i];
		free(s->pattern);
		pcre2_code_free(s->re);
		free(s->replacement);
		free(s->chars);
		for (j = 0; j < s->nmap; j++) {
			free(s->map[j].from);
			free(s->map[j].to);
		}
		free(s->map);
	}
	free(c->steps);
	free(c->name);
}

void bn_rules_free(bn_rules *r)
{
	size_t i;
	if (!r)
		return;
	for (i = 0; i < r->nfields; i++) {
		bn_field *f = &r->fields[i];
		free(f->name);
		free(f->doc);
		free(f->def.s);
		free_path(&f->source);
		free_path(&f->numerator);
		free_path(&f->denominator);
		for (size_t j = 0; j < f->nalt; j++)
			free_path(&f->alt[j]);
		free(f->alt);
	}
	free_path(&r->rows);
	free_path(&r->root);
	free(r->fields);
	for (i = 0; i < r->nchains; i++)
		free_chain(&r->chains[i]);
	free(r->chains);
	for (i = 0; i < r->ninline_chains; i++)
		free_chain(&r->inline_chains[i]);
	free(r->inline_chains);
	for (i = 0; i < r->ninvalid; i++) {
		free(r->invalid[i].pattern);
		pcre2_code_free(r->invalid[i].re);
		free(r->invalid[i].reason);
	}
	free(r->invalid);
	for (i = 0; i < r->nallow; i++) {
		free(r->allow[i].name);
		free(r->allow[i].justification);
	}
	free(r->allow);
	free(r->groups);
	free(r->group_members);
	free(r->schema_name);
	free(r->schema_namespace);
	free(r->schema_doc);
	free(r->schema_json);
	free(r->source_name);
	free(r->text);
	free(r);
}

int bn_rules_load_buffer(bn_rules **out, const char *text, size_t size, const char *name, bn_error *err)
{
	loader L = { .err = err };
	yaml_parser_t parser;
	yaml_document_t extra;
	bn_rules *r = NULL;
	int have_parser = 0, have_doc = 0;
	int rc;

	bn_error_clear(err);
	L.name = name ? name : "<buffer>";
	if (!out || (!text && size))
		return bn_error_set(err, BN_EUSAGE, "bn_rules_load_buffer: out and text are required");
	r = calloc(1, sizeof(*r));
	if (!r)
		return nomem(&L);
	L.r = r;
	r->max_line_bytes = 1048576;
	r->max_text_bytes = 256;
	r->max_rows = 1000;
	r->regex_match_limit = 100000;
	r->regex_depth_limit = 1000;
	r->source_name = memdup(L.name, strlen(L.name));
	r->text = malloc(size + 1);
	if (!r->source_name || !r->text) {
		rc = nomem(&L);
		goto cleanup;
	}
	if (size)
		memcpy(r->text, text, size);
	r->text[size] = '\0';
	r->text_len = size;
	bn_sha256_hex(r->sha256, r->text, size);

	if (!yaml_parser_initialize(&parser)) {
		rc = nomem(&L);
		goto cleanup;
	}
	have_parser = 1;
	yaml_parser_set_input_string(&parser, (const unsigned char *)r->text, size);
	/* On failure yaml_parser_load has already freed the document. */
	if (!yaml_parser_load(&parser, &L.doc)) {
		rc = syntax_error(&L, &parser, r->text);
		goto cleanup;
	}
	have_doc = 1;
	rc = parse_root(&L);
	if (rc)
		goto cleanup;
	/* A second document would be silently ignored: refuse it instead. */
	if (!yaml_parser_load(&parser, &extra)) {
		rc = syntax_error(&L, &parser, r->text);
		goto cleanup;
	}
	if (yaml_document_get_root_node(&extra)) {
		yaml_mark_t m = yaml_document_get_root_node(&extra)->start_mark;
		yaml_document_delete(&extra);
		rc = fail_at(&L, m.line + 1, m.column + 1, "a rule file holds one YAML document, found a second one");
		goto cleanup;
	}
	yaml_document_delete(&extra);
	rc = check_serving_invalid(&L);
	if (rc)
		goto cleanup;
	rc = bn_rules_schema_build(r, err);
	if (rc) {
		bn_error_locate(err, L.name, 0, 0);
		goto cleanup;
	}
	*out = r;
	r = NULL;
cleanup:
	free(L.same);
	if (have_doc)
		yaml_document_delete(&L.doc);
	if (have_parser)
		yaml_parser_delete(&parser);
	bn_rules_free(r);
	return rc;
}

int bn_rules_load_file(bn_rules **out, const char *path, bn_error *err)
{
	FILE *fp = NULL;
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int rc = 0;

	bn_error_clear(err);
	if (!out || !path)
		return bn_error_set(err, BN_EUSAGE, "bn_rules_load_file: out and path are required");
	fp = fopen(path, "rb");
	if (!fp) {
		bn_error_locate(err, path, 0, 0);
		return bn_error_set(err, BN_EIO, "cannot open: %s", strerror(errno));
	}
	for (;;) {
		size_t n;
		if (cap - len < 4096) {
			char *p = realloc(buf, cap ? cap * 2 : 65536);
			if (!p) {
				bn_error_locate(err, path, 0, 0);
				rc = bn_error_set(err, BN_ENOMEM, "out of memory loading rules");
				goto cleanup;
			}
			buf = p;
			cap = cap ? cap * 2 : 65536;
		}
		n = fread(buf + len, 1, cap - len, fp);
		len += n;
		if (n == 0)
			break;
	}
	if (ferror(fp)) {
		bn_error_locate(err, path, 0, 0);
		rc = bn_error_set(err, BN_EIO, "cannot read: %s", strerror(errno));
		goto cleanup;
	}
	rc = bn_rules_load_buffer(out, buf, len, path, err);
cleanup:
	fclose(fp);
	free(buf);
	return rc;
}

static const struct builtin *find_builtin(const char *name)
{
	for (size_t i = 0; name && i < NBUILTINS; i++)
		if (!strcmp(builtins[i].name, name))
			return &builtins[i];
	return NULL;
}

int bn_rules_load_default(bn_rules **out, bn_error *err)
{
	return bn_rules_load_buffer(out, builtins[0].text, *builtins[0].size, builtins[0].source_name, err);
}

const char *bn_rules_default_text(size_t *size)
{
	return bn_rules_builtin_text(builtins[0].name, size);
}

const char *bn_rules_builtin_name(size_t i)
{
	return i < NBUILTINS ? builtins[i].name : NULL;
}

const char *bn_rules_builtin_text(const char *name, size_t *size)
{
	const struct builtin *b = find_builtin(name);
	if (size)
		*size = b ? *b->size : 0;
	return b ? b->text : NULL;
}

int bn_rules_load_builtin(bn_rules **out, const char *name, bn_error *err)
{
	const struct builtin *b = find_builtin(name);
	bn_error_clear(err);
	if (!out || !b)
		return bn_error_set(err, BN_EUSAGE, "no shipped rule set named '%s' (expected bidlog or openrtb)",
				    name ? name : "(null)");
	return bn_rules_load_buffer(out, b->text, *b->size, b->source_name, err);
}

int bn_rules_load(bn_rules **out, const char *spec, bn_error *err)
{
	if (!spec)
		return bn_rules_load_default(out, err);
	if (find_builtin(spec))
		return bn_rules_load_builtin(out, spec, err);
	return bn_rules_load_file(out, spec, err);
}

const char *bn_rules_schema_json(const bn_rules *rules)
{
	return rules ? rules->schema_json : NULL;
}

const char *bn_rules_sha256(const bn_rules *rules)
{
	return rules ? rules->sha256 : NULL;
}

const char *bn_rules_source_name(const bn_rules *rules)
{
	return rules ? rules->source_name : NULL;
}

const char *bn_rules_rows(const bn_rules *rules)
{
	return rules && rules->rows.nsteps ? rules->rows.text : NULL;
}

size_t bn_rules_max_line_bytes(const bn_rules *rules)
{
	return rules ? rules->max_line_bytes : 0;
}

size_t bn_rules_field_count(const bn_rules *rules)
{
	return rules ? rules->nfields : 0;
}

const char *bn_rules_field_name(const bn_rules *rules, size_t i)
{
	return rules && i < rules->nfields ? rules->fields[i].name : NULL;
}

int bn_rules_field_is_string(const bn_rules *rules, size_t i)
{
	return rules && i < rules->nfields && rules->fields[i].type == BN_T_STRING && !rules->fields[i].is_ratio;
}
