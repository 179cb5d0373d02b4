/* test_normalize.c - unit tests of the record normalizer: the shipped bid-log v1 rules from JSON line to typed field values. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "normalize/record.h"

#include "count_allocs.h"
#include "json_lines.h"

static bn_rules *rules;
static bn_normalizer *norm;

static void setup(void)
{
	bn_error err;
	bn_error_clear(&err);
	cr_assert_eq(bn_rules_load_default(&rules, &err), BN_OK, "%s", err.message);
	cr_assert_eq(bn_normalizer_new(&norm, rules, &err), BN_OK, "%s", err.message);
}

static void teardown(void)
{
	bn_normalizer_free(norm);
	bn_rules_free(rules);
	norm = NULL;
	rules = NULL;
}

TestSuite(normalize, .init = setup, .fini = teardown);

/* ---- helpers ---- */

static size_t field_index(const bn_rules *r, const char *name)
{
	size_t i;
	for (i = 0; i < bn_rules_field_count(r); i++)
		if (strcmp(bn_rules_field_name(r, i), name) == 0)
			return i;
	cr_assert_fail("no field '%s' in the rules", name);
	return 0;
}

static int run_line(bn_normalizer *n, const char *line, bn_error *err)
{
	size_t len;
	const char *l = jq(line, &len);
	bn_error_clear(err);
	return bn_normalize_line(n, l, len, err);
}

/* Append s to out[*o..cap) as a JSON string literal. */
static void put_str(char *out, size_t cap, size_t *o, const char *s, size_t n)
{
	size_t i;
	*o += (size_t)snprintf(out + *o, cap - *o, "\"");
	for (i = 0; i < n && *o + 8 < cap; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\')
			*o += (size_t)snprintf(out + *o, cap - *o, "\\%c", c);
		else if (c < 0x20)
			*o += (size_t)snprintf(out + *o, cap - *o, "\\u%04x", c);
		else
			out[(*o)++] = (char)c;
	}
	*o += (size_t)snprintf(out + *o, cap - *o, "\"");
}

/* The shortest %g form that reads back as the same double. */
static void put_double(char *out, size_t cap, size_t *o, double d)
{
	char tmp[40];
	int p;
	if (d == (double)(long long)d && d > -1e15 && d < 1e15) {
		*o += (size_t)snprintf(out + *o, cap - *o, "%lld", (long long)d);
		return;
	}
	for (p = 1; p <= 17; p++) {
		snprintf(tmp, sizeof(tmp), "%.*g", p, d);
		if (strtod(tmp, NULL) == d)
			break;
	}
	*o += (size_t)snprintf(out + *o, cap - *o, "%s", tmp);
}

static void put_val(char *out, size_t cap, size_t *o, const bn_field *fd, const bn_val *v)
{
	if (v->is_null)
		*o += (size_t)snprintf(out + *o, cap - *o, "null");
	else if (fd->type == BN_T_STRING)
		put_str(out, cap, o, v->s, v->n);
	else if (fd->type == BN_T_DOUBLE)
		put_double(out, cap, o, v->d);
	else
		*o += (size_t)snprintf(out + *o, cap - *o, "%lld", (long long)v->i);
}

/* Field f of the last normalized record, as JSON-like text: "s", 12, 0.25, null, [...], {...}. */
static const char *render(const bn_normalizer *n, size_t f)
{
	static char out[1 << 16];
	const bn_field *fd = &n->rules->fields[f];
	const bn_fieldval *fv = &n->rec.fields[f];
	size_t o = 0, i;
	if (fd->shape == BN_SHAPE_SCALAR) {
		put_val(out, sizeof(out), &o, fd, &fv->v);
		return out;
	}
	out[o++] = fd->shape == BN_SHAPE_ARRAY ? '[' : '{';
	for (i = 0; i < fv->count; i++) {
		if (i)
			out[o++] = ',';
		if (fd->shape == BN_SHAPE_MAP) {
			const bn_val *k = &n->rec.keys[fv->first + i];
			put_str(out, sizeof(out), &o, k->s, k->n);
			out[o++] = ':';
		}
		put_val(out, sizeof(out), &o, fd, &n->rec.items[fv->first + i]);
	}
	out[o++] = fd->shape == BN_SHAPE_ARRAY ? ']' : '}';
	out[o] = '\0';
	return out;
}

typedef struct value_case {
	const char *field;
	const char *line;  /* single-quoted JSON, see jq() */
	const char *want;  /* render() of the field */
} value_case;

static void run_values(bn_normalizer *n, const value_case *cases, size_t count, const char *name)
{
	size_t i;
	for (i = 0; i < count; i++) {
		const value_case *c = &cases[i];
		bn_error err;
		int rc = run_line(n, c->line, &err);
		cr_expect_eq(rc, BN_OK, "%s %zu: %s: rc %d, %s: %s", name, i, c->line, rc, err.field, err.message);
		if (rc != BN_OK)
			continue;
		const char *got = render(n, field_index(n->rules, c->field));
		cr_expect_str_eq(got, c->want, "%s %zu: %s: field %s is %s, want %s", name, i, c->line, c->field, got,
				 c->want);
	}
}

typedef struct reject_case {
	const char *line;
	int reason;
	const char *field;    /* "" when the record as a whole is wrong */
	const char *message;
	uint32_t column;      /* 0 unless the JSON itself is invalid */
} reject_case;

static void run_rejects(bn_normalizer *n, const reject_case *cases, size_t count, const char *name)
{
	size_t i;
	for (i = 0; i < count; i++) {
		const reject_case *c = &cases[i];
		bn_error err;
		cr_expect_eq(run_line(n, c->line, &err), BN_EREJECT, "%s %zu: %s: not rejected", name, i, c->line);
		cr_expect_eq(err.code, BN_EREJECT, "%s %zu", name, i);
		cr_expect_str_eq(bn_reject_reason_name(err.reason), bn_reject_reason_name(c->reason), "%s %zu: %s: %s",
				 name, i, c->line, bn_reject_reason_name(err.reason));
		cr_expect_str_eq(err.field, c->field, "%s %zu: %s: field '%s'", name, i, c->line, err.field);
		cr_expect_str_eq(err.message, c->message, "%s %zu: %s: message '%s'", name, i, c->line, err.message);
		cr_expect_eq(err.column, c->column, "%s %zu: %s: column %u", name, i, c->line, err.column);
	}
}

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* The two required fields; 2026-11-20T12:00:01.123Z is 1795176001123 ms. */
#define B "'event_id':'e1','ts':'2026-11-20T12:00:01.123Z'"
#define TS_MS "1795176001123"

/* ---- scalar coercion ---- */

static const value_case coercion_cases[] = {
	/* doubles */
	{"bid_floor", "{" B ",'bid_floor':0.35}", "0.35"},
	{"bid_floor", "{" B ",'bid_floor':'0.35'}", "0.35"},
	{"bid_floor", "{" B ",'bid_floor':' 0.35 '}", "0.35"},
	{"bid_floor", "{" B ",'bid_floor':'\\t1e2'}", "100"},
	{"bid_floor", "{" B ",'bid_floor':-0.5}", "-0.5"},
	{"bid_floor", "{" B ",'bid_floor':3}", "3"},
	{"bid_floor", "{" B ",'bid_floor':1e999}", "null"},
	{"bid_floor", "{" B ",'bid_floor':'1e999'}", "null"},
	{"bid_floor", "{" B ",'bid_floor':'abc'}", "null"},
	{"bid_floor", "{" B ",'bid_floor':''}", "null"},
	{"bid_floor", "{" B ",'bid_floor':'0x10'}", "null"},
	{"bid_floor", "{" B ",'bid_floor':'1,5'}", "null"},
	{"bid_floor", "{" B ",'bid_floor':'NaN'}", "null"},
	{"bid_floor", "{" B ",'bid_floor':'Infinity'}", "null"},
	{"bid_floor", "{" B ",'bid_floor':'.5'}", "null"},
	{"bid_floor", "{" B ",'bid_floor':null}", "null"},
	{"bid_floor", "{" B "}", "null"},
	{"bid_floor", "{" B ",'bid_floor':{}}", "null"},
	{"bid_floor", "{" B ",'bid_floor':[0.35]}", "null"},
	/* a boolean is not a price */
	{"bid_floor", "{" B ",'bid_floor':true}", "null"},
	{"bid_floor", "{" B ",'bid_floor':false}", "null"},
	/* 32-bit ints: labels */
	{"click", "{" B ",'label':{'click':1}}", "1"},
	{"click", "{" B ",'label':{'click':0}}", "0"},
	{"click", "{" B ",'label':{'click':1.0}}", "1"},
	{"click", "{" B ",'label':{'click':1e0}}", "1"},
	{"click", "{" B ",'label':{'click':-0}}", "0"},
	{"click", "{" B ",'label':{'click':'1'}}", "1"},
	{"click", "{" B ",'label':{'click':' 1 '}}", "1"},
	{"click", "{" B ",'label':{'click':true}}", "1"},
	{"click", "{" B ",'label':{'click':false}}", "0"},
	{"click", "{" B ",'label':{'click':'true'}}", "1"},
	{"click", "{" B ",'label':{'click':'false'}}", "0"},
	{"click", "{" B ",'label':{'click':'TRUE'}}", "null"},
	{"click", "{" B ",'label':{'click':1.5}}", "null"},
	{"click", "{" B ",'label':{'click':'1.5'}}", "null"},
	/* labels are 0/1 (range: [0, 1]): any other int is null (regression: "install": 2 reached training data) */
	{"click", "{" B ",'label':{'click':2}}", "null"},
	{"click", "{" B ",'label':{'click':-1}}", "null"},
	{"click", "{" B ",'label':{'click':'2'}}", "null"},
	{"click", "{" B ",'label':{'click':2147483647}}", "null"},
	{"click", "{" B ",'label':{'click':-2147483648}}", "null"},
	{"click", "{" B ",'label':{'click':2147483648}}", "null"},
	{"click", "{" B ",'label':{'click':3000000000}}", "null"},
	{"click", "{" B ",'label':{'click':1e20}}", "null"},
	{"click", "{" B ",'label':{'click':null}}", "null"},
	{"click", "{" B ",'label':{'click':{}}}", "null"},
	{"click", "{" B ",'label':{'click':''}}", "null"},
	{"click", "{" B ",'label':null}", "null"},
	{"click", "{" B ",'label':5}", "null"},
	{"install", "{" B ",'label':{'install':'1.0'}}", "1"},
	/* strings from other JSON types */
	{"app_bundle", "{" B ",'app':{'bundle':1482155847}}", "\"1482155847\""},
	{"app_bundle", "{" B ",'app':{'bundle':12345}}", "\"12345\""},
	{"app_bundle", "{" B ",'app':{'bundle':7}}", "null"},
	{"app_bundle", "{" B ",'app':{'bundle':{'id':'com.a.b'}}}", "null"},
	{"app_bundle", "{" B ",'app':{'bundle':['com.a.b']}}", "null"},
	{"app_bundle", "{" B ",'app':{'bundle':true}}", "null"},
	{"app_bundle", "{" B ",'app':{'bundle':'com.foo$hl=en'}}", "\"com.foo\""},
	{"app_bundle", "{" B ",'app':'com.foo'}", "null"},
	{"exchange", "{" B ",'exchange':{'a':1}}", "null"},
	{"exchange", "{" B ",'exchange':42}", "\"42\""},
	{"event_id", "{'event_id':123,'ts':0}", "\"123\""},
	/* timestamps */
	{"ts", "{'event_id':'e','ts':'2026-11-20T12:00:01.123Z'}", TS_MS},
	{"ts", "{'event_id':'e','ts':'2026-11-20T14:00:01.123+02:00'}", TS_MS},
	{"ts", "{'event_id':'e','ts':'2026-11-20T07:00:01.123-05:00'}", TS_MS},
	{"ts", "{'event_id':'e','ts':'2026-11-20T17:30:01.123+05:30'}", TS_MS},
	{"ts", "{'event_id':'e','ts':'2026-11-20 12:00:01.123456789Z'}", TS_MS},
	{"ts", "{'event_id':'e','ts':'2026-11-20T12:00:01Z'}", "1795176001000"},
	{"ts", "{'event_id':'e','ts':1795176001}", "1795176001000"},
	{"ts", "{'event_id':'e','ts':1795176001123}", TS_MS},
	{"ts", "{'event_id':'e','ts':'1795176001123'}", TS_MS},
	{"ts", "{'event_id':'e','ts':'1795176001'}", "1795176001000"},
};

Test(normalize, coercion_table)
{
	cr_assert_geq(ARRAY_SIZE(coercion_cases), 60);
	run_values(norm, coercion_cases, ARRAY_SIZE(coercion_cases), "coercion");
}

/* ---- rejects ---- */

static const reject_case reject_cases[] = {
	/* JSON itself */
	{"{'event_id': 'e2', 'ts': }", BN_REJECT_INVALID_JSON, "", "invalid JSON: unexpected character '}'", 26},
	{"{" B "} x", BN_REJECT_INVALID_JSON, "", "invalid JSON: trailing characters after the JSON value", 51},
	{"{" B ",}", BN_REJECT_INVALID_JSON, "", "invalid JSON: trailing comma", 50},
	{"{'event_id':'e1'", BN_REJECT_INVALID_JSON, "", "invalid JSON: unexpected end of input", 17},
	{"", BN_REJECT_INVALID_JSON, "", "invalid JSON: empty document", 1},
	{"['not','an','object']", BN_REJECT_NOT_OBJECT, "", "not a JSON object: got an array", 0},
	{"'str'", BN_REJECT_NOT_OBJECT, "", "not a JSON object: got a string", 0},
	{"42", BN_REJECT_NOT_OBJECT, "", "not a JSON object: got a number", 0},
	{"true", BN_REJECT_NOT_OBJECT, "", "not a JSON object: got a boolean", 0},
	{"null", BN_REJECT_NOT_OBJECT, "", "not a JSON object: got null", 0},
	/* required fields */
	{"{'ts':'2026-11-20T12:00:00Z'}", BN_REJECT_MISSING_REQUIRED, "event_id", "missing required field", 0},
	{"{'event_id':null,'ts':'2026-11-20T12:00:00Z'}", BN_REJECT_MISSING_REQUIRED, "event_id",
	 "missing required field", 0},
	{"{'event_id':'e1'}", BN_REJECT_MISSING_REQUIRED, "ts", "missing required field", 0},
	{"{'event_id':'e1','ts':null}", BN_REJECT_MISSING_REQUIRED, "ts", "missing required field", 0},
	{"{}", BN_REJECT_MISSING_REQUIRED, "event_id", "missing required field", 0},
	{"{'event_id':{'id':'e1'},'ts':0}", BN_REJECT_INVALID_VALUE, "event_id", "expected a string, got an object", 0},
	{"{'event_id':['e1'],'ts':0}", BN_REJECT_INVALID_VALUE, "event_id", "expected a string, got an array", 0},
	{"{'event_id':'  ','ts':0}", BN_REJECT_INVALID_VALUE, "event_id", "empty after normalization", 0},
	{"{'event_id':'','ts':0}", BN_REJECT_INVALID_VALUE, "event_id", "empty after normalization", 0},
	{"{'event_id':'\\u200b\\ufeff','ts':0}", BN_REJECT_INVALID_VALUE, "event_id", "empty after normalization", 0},
	{"{'event_id':'e1','ts':'yesterday'}", BN_REJECT_INVALID_VALUE, "ts",
	 "not an ISO-8601 time or epoch number: \"yesterday\"", 0},
	{"{'event_id':'e1','ts':'now'}", BN_REJECT_INVALID_VALUE, "ts", "not an ISO-8601 time or epoch number: \"now\"", 0},
	{"{'event_id':'e1','ts':'2026-11-31T12:00:00Z'}", BN_REJECT_INVALID_VALUE, "ts",
	 "not an ISO-8601 time or epoch number: \"2026-11-31T12:00:00Z\"", 0},
	{"{'event_id':'e1','ts':''}", BN_REJECT_INVALID_VALUE, "ts", "not an ISO-8601 time or epoch number: \"\"", 0},
	{"{'event_id':'e1','ts':{}}", BN_REJECT_INVALID_VALUE, "ts",
	 "not an ISO-8601 time or epoch number: got an object", 0},
	{"{'event_id':'e1','ts':true}", BN_REJECT_INVALID_VALUE, "ts",
	 "not an ISO-8601 time or epoch number: got a boolean", 0},
	{"{'event_id':'e1','ts':1e999}", BN_REJECT_INVALID_VALUE, "ts",
	 "not an ISO-8601 time or epoch number: \"1e999\"", 0},
	/* the first failing field in schema order is reported */
	{"{'ts':'yesterday'}", BN_REJECT_MISSING_REQUIRED, "event_id", "missing required field", 0},
};

Test(normalize, reject_table)
{
	run_rejects(norm, reject_cases, ARRAY_SIZE(reject_cases), "reject");
}

Test(normalize, nesting_deeper_than_512_is_too_complex)
{
	static char deep[4096];
	size_t depth;
	for (depth = 511; depth <= 512; depth++) {
		/* the record object is level 1, so `depth` arrays make depth + 1 levels */
		size_t o = (size_t)snprintf(deep, sizeof(deep), "{" B ",'x':");
		size_t open = o, i;
		bn_error err;
		for (i = 0; i < depth; i++)
			deep[o++] = '[';
		for (i = 0; i < depth; i++)
			deep[o++] = ']';
		deep[o++] = '}';
		deep[o] = '\0';
		int rc = run_line(norm, deep, &err);
		if (depth == 511) {
			cr_expect_eq(rc, BN_OK, "512 levels: %s", err.message);
			continue;
		}
		cr_expect_eq(rc, BN_EREJECT);
		cr_expect_eq(err.reason, BN_REJECT_TOO_COMPLEX);
		cr_expect_str_eq(err.message, "invalid JSON: nesting deeper than 512 levels");
		cr_expect_eq(err.column, open + 512, "column %u", err.column);
		cr_expect_str_eq(err.field, "");
	}
}

/* ---- JSON details: duplicates, escapes ---- */

static const value_case json_cases[] = {
	/* a duplicate key: the last one wins, at any depth */
	{"event_id", "{'event_id':'a','event_id':'b','ts':0}", "\"b\""},
	{"bid_floor", "{" B ",'bid_floor':1,'bid_floor':null}", "null"},
	{"country", "{" B ",'device':{'country':'us','country':'fr'}}", "\"FR\""},
	{"country", "{" B ",'device':{'country':'us'},'device':{'city':'Paris'}}", "null"},
	{"city", "{" B ",'device':{'country':'us'},'device':{'city':'Paris'}}", "\"Paris\""},
	{"app_bundle", "{" B ",'app':{'bundle':'com.a.b'},'app':null}", "null"},
	{"click", "{" B ",'label':{'click':1},'label':{}}", "null"},
	{"device_ctr", "{" B ",'device':{'clicks':1,'impressions':2},'device':{'clicks':1}}", "-1"},
	{"installed_apps", "{" B ",'device':{'installed_apps':['com.a.b']},'device':{}}", "[]"},
	/* escaped keys are found */
	{"event_id", "{'ev\\u0065nt_id':'e1','ts':0}", "\"e1\""},
	{"country", "{" B ",'dev\\u0069ce':{'c\\u006funtry':'us'}}", "\"US\""},
	/* escaped values */
	{"publisher", "{" B ",'app':{'publisher':'Caf\\u00e9'}}", "\"Café\""},
	{"publisher", "{" B ",'app':{'publisher':'Game \\ud83c\\udfae'}}", "\"Game 🎮\""},
	{"publisher", "{" B ",'app':{'publisher':'Don\\u0027t \\'stop\\''}}", "\"Don't \\\"stop\\\"\""},
	{"publisher", "{" B ",'app':{'publisher':'A\\u0000B'}}", "\"AB\""},
	{"event_id", "{'event_id':'e\\u00001\\n','ts':0}", "\"e1\""},
	{"publisher", "{" B ",'app':{'publisher':'a\\\\b\\/c'}}", "\"a\\\\b/c\""},
	/* unknown keys and types around the known ones are skipped */
	{"country", "{'x':[{'device':{'country':'de'}}]," B ",'device':{'y':{'country':'fr'},'country':'us'}}",
	 "\"US\""},
};

Test(normalize, json_table)
{
	run_values(norm, json_cases, ARRAY_SIZE(json_cases), "json");
}

/* ---- text fields ---- */

#define A16 "aaaaaaaaaaaaaaaa"

static const value_case text_cases[] = {
	{"city", "{" B ",'device':{'city':'SÃ£o Paulo'}}", "\"São Paulo\""},
	{"city", "{" B ",'device':{'city':'ZÃ¼rich'}}", "\"Zürich\""},
	{"city", "{" B ",'device':{'city':'CafÃƒÂ©'}}", "\"Café\""},
	{"city", "{" B ",'device':{'city':'  New\\tYork '}}", "\"New York\""},
	{"city", "{" B ",'device':{'city':'東京'}}", "\"東京\""},
	{"city", "{" B ",'device':{'city':''}}", "null"},
	{"publisher", "{" B ",'app':{'publisher':'Donâ€™t Stop'}}", "\"Don’t Stop\""},
	{"device_model", "{" B ",'device':{'model':'SM\\u00a0G991B'}}", "\"SM G991B\""},
	{"country", "{" B ",'device':{'country':'us'}}", "\"US\""},
	{"country", "{" B ",'device':{'country':' us '}}", "\"US\""},
	{"country", "{" B ",'device':{'country':'Br'}}", "\"BR\""},
	{"os", "{" B ",'device':{'os':' Android '}}", "\"android\""},
	{"os", "{" B ",'device':{'os':'iOS'}}", "\"ios\""},
	{"language", "{" B ",'device':{'language':'EN'}}", "\"en\""},
	{"language", "{" B ",'device':{'language':'en_US'}}", "\"en_us\""},
	{"exchange", "{" B ",'exchange':' UNITY '}", "\"unity\""},
	{"ad_format", "{" B ",'ad_format':'Rewarded_Video'}", "\"rewarded_video\""},
	{"device_ifa", "{" B ",'device':{'ifa':'9A5B-CD'}}", "\"9a5b-cd\""},
	{"connection_type", "{" B ",'device':{'connection_type':'ＷＩＦＩ'}}", "\"wifi\""},
	/* token fields are cut at 64 bytes, never inside a character */
	{"exchange", "{" B ",'exchange':'" A16 A16 A16 A16 "bbbb'}", "\"" A16 A16 A16 A16 "\""},
	{"exchange", "{" B ",'exchange':'" A16 A16 A16 "aaaaaaaaaaaaaaaé'}", "\"" A16 A16 A16 "aaaaaaaaaaaaaaa\""},
	{"exchange", "{" B ",'exchange':'" A16 A16 A16 "aaaaaaaaaaaaaaÉ'}", "\"" A16 A16 A16 "aaaaaaaaaaaaaaé\""},
	{"device_ifa", "{" B ",'device':{'ifa':'" A16 A16 A16 A16 A16 "'}}", "\"" A16 A16 A16 A16 "\""},
};

Test(normalize, text_table)
{
	run_values(norm, text_cases, ARRAY_SIZE(text_cases), "text");
}

/* ---- lists ---- */

static const value_case list_cases[] = {
	{"installed_apps", "{" B ",'device':{'installed_apps':['com.a.b','com.c.d']}}", "[\"com.a.b\",\"com.c.d\"]"},
	/* duplicates after normalization: the first stays */
	{"installed_apps", "{" B ",'device':{'installed_apps':['COM.A.B','com.a.b$x','com.c.d','com.a.b']}}",
	 "[\"com.a.b\",\"com.c.d\"]"},
	{"installed_apps", "{" B ",'device':{'installed_apps':['com.c.d','https://play.google.com/store/apps/details?id=com.a.b&hl=en','market://details?id=com.a.b']}}",
	 "[\"com.c.d\",\"com.a.b\"]"},
	{"installed_apps", "{" B ",'device':{'installed_apps':[1482155847,'id1482155847','https://apps.apple.com/us/app/x/id1482155847']}}",
	 "[\"1482155847\"]"},
	/* nulls and invalid bundles are dropped */
	{"installed_apps", "{" B ",'device':{'installed_apps':[null,'com.a.b',null]}}", "[\"com.a.b\"]"},
	{"installed_apps", "{" B ",'device':{'installed_apps':['foo','com.a.b','0123','',' ']}}", "[\"com.a.b\"]"},
	{"installed_apps", "{" B ",'device':{'installed_apps':[{'a':1},['com.x.y'],'com.a.b',true]}}", "[\"com.a.b\"]"},
	{"installed_apps", "{" B ",'device':{'installed_apps':[' com.a.b ','\\'com.c.d\\'','ｃｏｍ．ｅ．ｆ']}}",
	 "[\"com.a.b\",\"com.c.d\",\"com.e.f\"]"},
	/* missing, null, empty, not a list: an empty array, never a placeholder element */
	{"installed_apps", "{" B ",'device':{}}", "[]"},
	{"installed_apps", "{" B "}", "[]"},
	{"installed_apps", "{" B ",'device':{'installed_apps':null}}", "[]"},
	{"installed_apps", "{" B ",'device':{'installed_apps':[]}}", "[]"},
	{"installed_apps", "{" B ",'device':{'installed_apps':[null]}}", "[]"},
	{"installed_apps", "{" B ",'device':{'installed_apps':'com.a.b'}}", "[]"},
	{"installed_apps", "{" B ",'device':{'installed_apps':{'0':'com.a.b'}}}", "[]"},
	{"installed_apps", "{" B ",'device':{'installed_apps':5}}", "[]"},
};

Test(normalize, list_table)
{
	run_values(norm, list_cases, ARRAY_SIZE(list_cases), "list");
}

Test(normalize, list_count_is_zero_for_missing_lists)
{
	static const char *const lines[] = {
		"{" B "}",
		"{" B ",'device':{'installed_apps':null}}",
		"{" B ",'device':{'installed_apps':[]}}",
		"{" B ",'device':{'installed_apps':[null,'x']}}",
		"{" B ",'device':{'installed_apps':'com.a.b'}}",
	};
	size_t f = field_index(rules, "installed_apps"), i;
	for (i = 0; i < ARRAY_SIZE(lines); i++) {
		bn_error err;
		cr_assert_eq(run_line(norm, lines[i], &err), BN_OK);
		cr_expect_eq(norm->rec.fields[f].count, 0, "line %zu", i);
		cr_expect_eq(norm->rec.fields[f].first, norm->rec.nitems, "line %zu: range outside the record", i);
	}
}

Test(normalize, list_over_256_elements_is_truncated)
{
	static char line[1 << 15];
	size_t f = field_index(rules, "installed_apps"), i, o;
	bn_error err;
	o = (size_t)snprintf(line, sizeof(line), "{" B ",'device':{'installed_apps':[null,'com.app.x0'");
	/* a null and a duplicate first: the limit counts kept elements */
	o += (size_t)snprintf(line + o, sizeof(line) - o, ",'COM.APP.X0'");
	for (i = 1; i < 300; i++)
		o += (size_t)snprintf(line + o, sizeof(line) - o, ",'com.app.x%zu'", i);
	snprintf(line + o, sizeof(line) - o, "]}}");
	cr_assert_eq(run_line(norm, line, &err), BN_OK, "%s", err.message);
	const bn_fieldval *fv = &norm->rec.fields[f];
	cr_assert_eq(fv->count, 256);
	for (i = 0; i < 256; i++) {
		char want[32];
		const bn_val *v = &norm->rec.items[fv->first + i];
		snprintf(want, sizeof(want), "com.app.x%zu", i);
		cr_expect(v->n == strlen(want) && memcmp(v->s, want, v->n) == 0, "element %zu: %.*s", i, (int)v->n,
			  v->s);
	}
	cr_expect_eq(norm->stats[f].items_in, 302);
	cr_expect_eq(norm->stats[f].items_dropped, 2);
	cr_expect_eq(norm->stats[f].items_truncated, 44);
	/* exactly 256: nothing truncated */
	o = (size_t)snprintf(line, sizeof(line), "{" B ",'device':{'installed_apps':['com.app.x0'");
	for (i = 1; i < 256; i++)
		o += (size_t)snprintf(line + o, sizeof(line) - o, ",'com.app.x%zu'", i);
	snprintf(line + o, sizeof(line) - o, "]}}");
	cr_assert_eq(run_line(norm, line, &err), BN_OK);
	cr_expect_eq(norm->rec.fields[f].count, 256);
	cr_expect_eq(norm->stats[f].items_truncated, 44);
}

/* ---- ratio ---- */

#define CTR(c, i) "{" B ",'device':{'clicks':" c ",'impressions':" i "}}"

static const value_case ratio_cases[] = {
	{"device_ctr", CTR("3", "120"), "0.025"},
	{"device_ctr", CTR("0", "5"), "0"},
	{"device_ctr", CTR("1", "3"), "0.3333333333333333"},
	{"device_ctr", CTR("5", "2"), "2.5"},
	{"device_ctr", CTR("'3'", "'120'"), "0.025"},
	{"device_ctr", CTR("' 3 '", "120.0"), "0.025"},
	{"device_ctr", CTR("3", "0"), "-1"},
	{"device_ctr", CTR("0", "0"), "-1"},
	{"device_ctr", CTR("3", "-0"), "-1"},
	{"device_ctr", CTR("-1", "10"), "-1"},
	{"device_ctr", CTR("1", "-10"), "-1"},
	{"device_ctr", CTR("'abc'", "10"), "-1"},
	{"device_ctr", CTR("3", "'abc'"), "-1"},
	{"device_ctr", CTR("1e308", "1e-308"), "-1"},
	{"device_ctr", CTR("1e999", "1"), "-1"},
	{"device_ctr", CTR("null", "10"), "-1"},
	{"device_ctr", CTR("true", "10"), "-1"},
	{"device_ctr", CTR("[1]", "10"), "-1"},
	{"device_ctr", "{" B ",'device':{'impressions':10}}", "-1"},
	{"device_ctr", "{" B ",'device':{'clicks':1}}", "-1"},
	{"device_ctr", "{" B "}", "-1"},
};

Test(normalize, ratio_table)
{
	run_values(norm, ratio_cases, ARRAY_SIZE(ratio_cases), "ratio");
}

/* ---- maps and serving-invalid keys ---- */

static const value_case map_cases[] = {
	{"features", "{" B ",'features':{'session_depth':3,'days_since_last_click':2,'hours_ago':1,'clearing_price':1.2}}",
	 "{\"session_depth\":3}"},
	{"features", "{" B ",'features':{'minutes_since_open':1,'last_purchase_days_ago':2,'weeks_ago':3,'days_since_install':4}}",
	 "{}"},
	/* near misses of the patterns stay */
	{"features", "{" B ",'features':{'clearing_price_x':1,'ago':2,'agox':3,'since_open':4,'x_ago':5}}",
	 "{\"clearing_price_x\":1,\"ago\":2,\"agox\":3,\"since_open\":4}"},
	/* duplicate keys: the last wins, in the first one's place */
	{"features", "{" B ",'features':{'a':1,'a':2}}", "{\"a\":2}"},
	{"features", "{" B ",'features':{'a':1,'b':2,'a':3}}", "{\"a\":3,\"b\":2}"},
	{"features", "{" B ",'features':{'a':1,'a':'n/a'}}", "{}"},
	{"features", "{" B ",'features':{'a':1,'b':2,'a':null,'c':3}}", "{\"b\":2,\"c\":3}"},
	{"features", "{" B ",'features':{'a':1,'a':null,'a':4}}", "{\"a\":4}"},
	/* values that are not numbers are dropped; numeric strings count */
	{"features", "{" B ",'features':{'a':'x','b':null,'c':true,'d':'2','e':'','f':'n/a','g':-1,'h':{},'i':[1],'j':1e999}}",
	 "{\"d\":2,\"g\":-1}"},
	{"features", "{" B ",'features':{'battery_level':0.35,'volume':' 0.5 '}}", "{\"battery_level\":0.35,\"volume\":0.5}"},
	{"features", "{" B ",'features':{'session\\u005fdepth':3,'hours\\u005fago':1}}", "{\"session_depth\":3}"},
	{"features", "{" B ",'features':{}}", "{}"},
	{"features", "{" B ",'features':null}", "{}"},
	{"features", "{" B "}", "{}"},
	{"features", "{" B ",'features':[1,2]}", "{}"},
	{"features", "{" B ",'features':'x'}", "{}"},
};

Test(normalize, map_table)
{
	run_values(norm, map_cases, ARRAY_SIZE(map_cases), "map");
}

/* The count of serving-invalid key `key` seen in the object at plan node `node`, or -1. */
static long seen_count(const bn_normalizer *n, int32_t node, const char *key, const char **reason)
{
	size_t i;
	for (i = 0; i < n->seen_cap; i++) {
		const bn_invalid_seen *e = &n->seen[i];
		if (e->key && e->node == (uint32_t)node && e->key_len == strlen(key) && memcmp(e->key, key, e->key_len) == 0) {
			if (e->rule == UINT32_MAX)
				return -1;
			*reason = n->rules->invalid[e->rule].reason;
			return (long)e->count;
		}
	}
	return -1;
}

Test(normalize, serving_invalid_keys_are_stripped_and_counted)
{
	static const char line[] = "{" B ",'weeks_ago':2,'clearing_price':1.2,'days_since_install':7,"
				   "'device':{'hours_ago':1,'os':'ios'},"
				   "'features':{'session_depth':3,'days_since_last_click':2,'hours_ago':1,'clearing_price':0.5}}";
	static const struct {
		const char *parent; /* "" = top level */
		const char *key;
		long count;
		const char *reason;
	} want[] = {
		{"", "weeks_ago", 2, "relative-time"},
		{"", "clearing_price", 2, "feedback"},
		{"", "days_since_install", 2, "relative-time"},
		{"device", "hours_ago", 2, "relative-time"},
		{"features", "days_since_last_click", 2, "relative-time"},
		{"features", "hours_ago", 2, "relative-time"},
		{"features", "clearing_price", 2, "feedback"},
		{"features", "session_depth", -1, NULL},
		{"", "event_id", -1, NULL},
	};
	size_t f = field_index(rules, "features"), i;
	bn_error err;
	cr_assert_eq(run_line(norm, line, &err), BN_OK);
	cr_assert_eq(run_line(norm, line, &err), BN_OK);
	cr_expect_str_eq(render(norm, f), "{\"session_depth\":3}");
	cr_expect_eq(norm->stats[f].keys_stripped, 6);
	cr_expect_eq(norm->stats[f].items_in, 8);
	for (i = 0; i < ARRAY_SIZE(want); i++) {
		int32_t node = 0;
		const char *reason = NULL;
		if (want[i].parent[0]) {
			for (node = 1; node < (int32_t)norm->nnodes; node++)
				if (norm->nodes[node].parent == 0 && norm->nodes[node].len == strlen(want[i].parent) &&
				    memcmp(norm->nodes[node].name, want[i].parent, norm->nodes[node].len) == 0)
					break;
			cr_assert_lt(node, (int32_t)norm->nnodes, "no plan node %s", want[i].parent);
		}
		cr_expect_eq(seen_count(norm, node, want[i].key, &reason), want[i].count, "%s.%s", want[i].parent,
			     want[i].key);
		if (want[i].reason)
			cr_expect_str_eq(reason ? reason : "", want[i].reason, "%s.%s", want[i].parent, want[i].key);
	}
}

/* ---- counters ---- */

Test(normalize, stats_after_a_small_batch)
{
	static const char *const lines[] = {
		"{" B ",'bid_floor':'0.35','label':{'click':1},'device':{'city':'SÃ£o Paulo','clicks':3,'impressions':120,"
		"'installed_apps':['com.a.b',null,'COM.A.B']}}",
		"{" B ",'bid_floor':null,'label':{'click':'true'},'device':{'clicks':1,'impressions':0}}",
		"{" B ",'bid_floor':'abc','label':{'click':1.5},'device':{'installed_apps':'com.a.b'},'app':{'bundle':1482155847}}",
		"{" B "}",
		"{'ts':'2026-11-20T12:00:00Z','bid_floor':1}",
	};
	static const struct {
		const char *field;
		uint64_t present, nulls, coerced, failures, defaulted;
	} want[] = {
		{"event_id", 4, 0, 0, 0, 0},
		{"bid_floor", 2, 3, 1, 1, 0},
		{"click", 3, 2, 1, 1, 0},
		{"device_ctr", 2, 0, 0, 0, 3},
		{"installed_apps", 2, 0, 0, 1, 0},
		{"app_bundle", 1, 3, 1, 0, 0},
		{"city", 1, 3, 0, 0, 0},
	};
	size_t i;
	for (i = 0; i < ARRAY_SIZE(lines); i++) {
		bn_error err;
		cr_assert_eq(run_line(norm, lines[i], &err), i == 4 ? BN_EREJECT : BN_OK, "line %zu: %s", i, err.message);
	}
	for (i = 0; i < ARRAY_SIZE(want); i++) {
		const bn_field_stats *st = &norm->stats[field_index(rules, want[i].field)];
		cr_expect_eq(st->present, want[i].present, "%s present %llu", want[i].field, (unsigned long long)st->present);
		cr_expect_eq(st->nulls, want[i].nulls, "%s nulls %llu", want[i].field, (unsigned long long)st->nulls);
		cr_expect_eq(st->coerced, want[i].coerced, "%s coerced %llu", want[i].field, (unsigned long long)st->coerced);
		cr_expect_eq(st->failures, want[i].failures, "%s failures %llu", want[i].field,
			     (unsigned long long)st->failures);
		cr_expect_eq(st->defaulted, want[i].defaulted, "%s defaulted %llu", want[i].field,
			     (unsigned long long)st->defaulted);
	}
	{
		const bn_field_stats *st = &norm->stats[field_index(rules, "installed_apps")];
		cr_expect_eq(st->items_in, 3);
		cr_expect_eq(st->items_dropped, 2);
		cr_expect_eq(norm->stats[field_index(rules, "city")].effects[0], 1, "mojibake_fixed");
	}
}

/* ---- other rules: messages of typed required fields, defaults, validate reject ---- */

static const char custom_rules[] =
	"version: 1\n"
	"schema: {name: R}\n"
	"fields:\n"
	"  - {name: i, source: i, type: int, required: true}\n"
	"  - {name: b, source: b, type: boolean, required: true}\n"
	"  - {name: d, source: d, type: double, required: true}\n"
	"  - {name: l, source: l, type: long, default: -5}\n"
	"  - {name: s, source: s, type: string, default: unknown, chain: [text, lower]}\n"
	"  - name: v\n"
	"    source: v\n"
	"    type: string\n"
	"    chain:\n"
	"      - validate: {pattern: '^[a-z]+$', on_fail: reject}\n";

static bn_normalizer *text_normalizer(bn_rules **r, const char *text)
{
	bn_normalizer *n = NULL;
	bn_error err;
	bn_error_clear(&err);
	cr_assert_eq(bn_rules_load_buffer(r, text, strlen(text), "custom.yaml", &err), BN_OK, "%s", err.message);
	cr_assert_eq(bn_normalizer_new(&n, *r, &err), BN_OK);
	return n;
}

static bn_normalizer *custom_normalizer(bn_rules **r)
{
	return text_normalizer(r, custom_rules);
}

/* The plan node of a path's text (as the stats name it), or -1. */
static int32_t node_of(const bn_normalizer *n, const char *path)
{
	bn_buf b = { 0 };
	int32_t found = -1;
	for (int32_t i = 0; i < (int32_t)n->nnodes && found < 0; i++) {
		bn_plan_node_path(n, i, &b);
		if (b.size == strlen(path) && memcmp(b.data, path, b.size) == 0)
			found = i;
	}
	bn_buf_free(&b);
	return found;
}

/*
 * Regression: a map field with a fallback list checked and counted its keys at the first path's
 * plan node whichever path supplied the map, so the stats named keys of b.m as a.m's.
 */
Test(normalize, map_keys_are_counted_at_the_path_that_supplied_the_map)
{
	bn_rules *r = NULL;
	bn_normalizer *n = text_normalizer(&r, "version: 1\nschema: {name: R}\n"
					      "serving_invalid:\n  - {pattern: '_ago$', reason: relative-time}\n"
					      "fields:\n  - {name: m, source: [a.m, b.m], type: map<int>}\n");
	int32_t a = node_of(n, "a.m"), b = node_of(n, "b.m");
	const char *reason = NULL;
	bn_error err;
	cr_assert(a > 0 && b > 0 && a != b, "a.m %d, b.m %d", a, b);
	cr_assert_eq(run_line(n, "{'a':null,'b':{'m':{'x_ago':1,'y':2}}}", &err), BN_OK, "%s", err.message);
	cr_expect_str_eq(render(n, 0), "{\"y\":2}");
	cr_expect_eq(seen_count(n, b, "x_ago", &reason), 1);
	cr_expect_eq(seen_count(n, a, "x_ago", &reason), -1);
	cr_assert_eq(run_line(n, "{'a':{'m':{'x_ago':1,'z_ago':2}},'b':{'m':{'x_ago':3}}}", &err), BN_OK);
	cr_expect_str_eq(render(n, 0), "{}");
	cr_expect_eq(seen_count(n, a, "x_ago", &reason), 1);
	cr_expect_eq(seen_count(n, a, "z_ago", &reason), 1);
	cr_expect_eq(seen_count(n, b, "x_ago", &reason), 1);
	cr_expect_eq(n->stats[0].keys_stripped, 3);
	bn_normalizer_free(n);
	bn_rules_free(r);
}

#define C "'i':1,'b':true,'d':0.5"

static const reject_case custom_rejects[] = {
	{"{'i':'abc','b':true,'d':0.5}", BN_REJECT_INVALID_VALUE, "i", "not a number: \"abc\"", 0},
	{"{'i':1.5,'b':true,'d':0.5}", BN_REJECT_INVALID_VALUE, "i", "not an integer in range: \"1.5\"", 0},
	{"{'i':3000000000,'b':true,'d':0.5}", BN_REJECT_INVALID_VALUE, "i", "out of range for int: \"3000000000\"", 0},
	{"{'i':' 3000000000 ','b':true,'d':0.5}", BN_REJECT_INVALID_VALUE, "i", "out of range for int: \"3000000000\"", 0},
	{"{'i':{},'b':true,'d':0.5}", BN_REJECT_INVALID_VALUE, "i", "expected a number, got an object", 0},
	{"{'i':[1],'b':true,'d':0.5}", BN_REJECT_INVALID_VALUE, "i", "expected a number, got an array", 0},
	{"{'b':true,'d':0.5}", BN_REJECT_MISSING_REQUIRED, "i", "missing required field", 0},
	{"{'i':1,'b':2,'d':0.5}", BN_REJECT_INVALID_VALUE, "b", "not a boolean: \"2\"", 0},
	{"{'i':1,'b':'yes','d':0.5}", BN_REJECT_INVALID_VALUE, "b", "not a boolean: \"yes\"", 0},
	{"{'i':1,'b':true,'d':1e999}", BN_REJECT_INVALID_VALUE, "d", "not a finite number: \"1e999\"", 0},
	{"{'i':1,'b':true,'d':'x'}", BN_REJECT_INVALID_VALUE, "d", "not a number: \"x\"", 0},
	{"{'i':1,'b':true,'d':'true'}", BN_REJECT_INVALID_VALUE, "d", "not a number: \"true\"", 0},
	{"{'i':1,'b':true,'d':true}", BN_REJECT_INVALID_VALUE, "d", "expected a number, got a boolean", 0},
	{"{" C ",'v':'France'}", BN_REJECT_VALIDATION, "v", "value \"France\" does not match pattern '^[a-z]+$'", 0},
	{"{" C ",'v':'ab1'}", BN_REJECT_VALIDATION, "v", "value \"ab1\" does not match pattern '^[a-z]+$'", 0},
};

static const value_case custom_values[] = {
	{"i", "{'i':'7','b':true,'d':0.5}", "7"},
	{"i", "{'i':true,'b':true,'d':0.5}", "1"},
	{"b", "{'i':1,'b':1,'d':0.5}", "1"},
	{"b", "{'i':1,'b':'false','d':0.5}", "0"},
	{"d", "{'i':1,'b':true,'d':'2.5'}", "2.5"},
	{"l", "{" C "}", "-5"},
	{"l", "{" C ",'l':'x'}", "-5"},
	{"l", "{" C ",'l':9007199254740993}", "9007199254740993"},
	{"s", "{" C "}", "\"unknown\""},
	{"s", "{" C ",'s':' '}", "\"unknown\""},
	{"s", "{" C ",'s':{}}", "\"unknown\""},
	{"s", "{" C ",'s':'ABC'}", "\"abc\""},
	{"v", "{" C ",'v':'abc'}", "\"abc\""},
	{"v", "{" C "}", "null"},
};

Test(normalize, typed_required_fields_and_defaults)
{
	bn_rules *r = NULL;
	bn_normalizer *n = custom_normalizer(&r);
	run_rejects(n, custom_rejects, ARRAY_SIZE(custom_rejects), "custom reject");
	run_values(n, custom_values, ARRAY_SIZE(custom_values), "custom");
	bn_normalizer_free(n);
	bn_rules_free(r);
}

Test(normalize, default_counters)
{
	static const char *const lines[] = {"{" C "}", "{" C ",'l':'x','s':'A'}", "{" C ",'l':3,'s':' '}"};
	bn_rules *r = NULL;
	bn_normalizer *n = custom_normalizer(&r);
	const bn_field_stats *l, *s;
	size_t i;
	for (i = 0; i < ARRAY_SIZE(lines); i++) {
		bn_error err;
		cr_assert_eq(run_line(n, lines[i], &err), BN_OK, "line %zu: %s", i, err.message);
	}
	l = &n->stats[field_index(r, "l")];
	s = &n->stats[field_index(r, "s")];
	cr_expect_eq(l->present, 2);
	cr_expect_eq(l->failures, 1);
	cr_expect_eq(l->defaulted, 2);
	cr_expect_eq(l->nulls, 0);
	cr_expect_eq(s->present, 2);
	cr_expect_eq(s->failures, 0);
	cr_expect_eq(s->defaulted, 2);
	cr_expect_eq(s->nulls, 0);
	bn_normalizer_free(n);
	bn_rules_free(r);
}

/* ---- bn_normalize_value ---- */

typedef struct single_case {
	const char *field;
	const char *in;
	const char *want; /* NULL: null */
} single_case;

static const single_case single_cases[] = {
	{"app_bundle", "com.foo$hl=en", "com.foo"},
	{"app_bundle", "https://apps.apple.com/us/app/x/id1482155847", "1482155847"},
	{"app_bundle", "foo", NULL},
	{"app_bundle", "", NULL},
	{"installed_apps", "COM.A.B", "com.a.b"},
	{"country", " us ", "US"},
	{"city", "SÃ£o Paulo", "São Paulo"},
	{"event_id", "  x  ", "x"},
	{"exchange", "UNITY", "unity"},
	{"exchange", "\xe2\x80\x8b", NULL},
};

Test(normalize, value_table)
{
	size_t i;
	for (i = 0; i < ARRAY_SIZE(single_cases); i++) {
		const single_case *c = &single_cases[i];
		const char *out = NULL;
		size_t size = 0;
		int is_null = -1;
		bn_error err;
		bn_error_clear(&err);
		cr_assert_eq(bn_normalize_value(norm, c->field, c->in, strlen(c->in), &out, &size, &is_null, NULL, NULL,
						&err), BN_OK, "case %zu: %s", i, err.message);
		if (!c->want) {
			cr_expect_eq(is_null, 1, "case %zu: \"%s\" -> \"%s\", want null", i, c->in, out);
			continue;
		}
		cr_expect_eq(is_null, 0, "case %zu", i);
		cr_expect_eq(size, strlen(c->want), "case %zu", i);
		cr_expect_str_eq(out, c->want, "case %zu", i);
	}
}

Test(normalize, value_errors)
{
	static const struct {
		const char *field;
		int rc;
		const char *err_field;
		const char *message;
	} t[] = {
		{"nope", BN_EUSAGE, "", "no field 'nope' in the rules"},
		{NULL, BN_EUSAGE, "", "no field '(null)' in the rules"},
		{"bid_floor", BN_EUSAGE, "bid_floor", "not a string field: only string fields have normalizer chains"},
		{"device_ctr", BN_EUSAGE, "device_ctr", "not a string field: only string fields have normalizer chains"},
		{"ts", BN_EUSAGE, "ts", "not a string field: only string fields have normalizer chains"},
		{"features", BN_EUSAGE, "features", "not a string field: only string fields have normalizer chains"},
		{"click", BN_EUSAGE, "click", "not a string field: only string fields have normalizer chains"},
	};
	size_t i;
	for (i = 0; i < ARRAY_SIZE(t); i++) {
		const char *out = NULL;
		size_t size = 0;
		int is_null = 0;
		bn_error err;
		bn_error_clear(&err);
		cr_expect_eq(bn_normalize_value(norm, t[i].field, "x", 1, &out, &size, &is_null, NULL, NULL, &err),
			     t[i].rc, "case %zu", i);
		cr_expect_eq(err.code, t[i].rc, "case %zu", i);
		cr_expect_str_eq(err.field, t[i].err_field, "case %zu", i);
		cr_expect_str_eq(err.message, t[i].message, "case %zu", i);
		cr_expect_null(out, "case %zu: output written on failure", i);
	}
	/* err may be NULL */
	{
		const char *out;
		size_t size;
		int is_null;
		cr_expect_eq(bn_normalize_value(norm, "nope", "x", 1, &out, &size, &is_null, NULL, NULL, NULL), BN_EUSAGE);
	}
}

Test(normalize, value_validate_reject)
{
	bn_rules *r = NULL;
	bn_normalizer *n = custom_normalizer(&r);
	const char *out = NULL;
	size_t size;
	int is_null;
	bn_error err;
	bn_error_clear(&err);
	cr_expect_eq(bn_normalize_value(n, "v", "France", 6, &out, &size, &is_null, NULL, NULL, &err), BN_EREJECT);
	cr_expect_eq(err.code, BN_EREJECT);
	cr_expect_eq(err.reason, BN_REJECT_VALIDATION);
	cr_expect_str_eq(err.field, "v");
	cr_expect_str_eq(err.message, "value \"France\" does not match pattern '^[a-z]+$'");
	cr_expect_null(out);
	bn_normalizer_free(n);
	bn_rules_free(r);
}

typedef struct trace_log {
	char text[1024];
	int calls;
} trace_log;

static void trace(void *ctx, const char *step, const char *value, size_t size, int is_null)
{
	trace_log *log = ctx;
	size_t used = strlen(log->text);
	log->calls++;
	if (is_null)
		snprintf(log->text + used, sizeof(log->text) - used, "%s=null;", step);
	else
		snprintf(log->text + used, sizeof(log->text) - used, "%s=%.*s;", step, (int)size, value);
}

Test(normalize, value_trace_follows_the_shipped_chain)
{
	trace_log log = {"", 0};
	const char *out;
	size_t size;
	int is_null;
	cr_assert_eq(bn_normalize_value(norm, "app_bundle", " COM.Foo$x ", 11, &out, &size, &is_null, trace, &log, NULL),
		     BN_OK);
	cr_expect_str_eq(log.text, "text=COM.Foo$x;lower=com.foo$x;extract=com.foo$x;extract=com.foo$x;"
				   "extract=com.foo$x;extract=com.foo$x;extract=com.foo$x;extract=com.foo$x;"
				   "first_match=com.foo;trim=com.foo;max_bytes=com.foo;trim=com.foo;validate=com.foo;");
	cr_expect_eq(log.calls, 13);
	cr_expect_str_eq(out, "com.foo");
	memset(&log, 0, sizeof(log));
	cr_assert_eq(bn_normalize_value(norm, "country", "fr", 2, &out, &size, &is_null, trace, &log, NULL), BN_OK);
	cr_expect_str_eq(log.text, "text=fr;upper=FR;");
	memset(&log, 0, sizeof(log));
	cr_assert_eq(bn_normalize_value(norm, "app_bundle", "x", 1, &out, &size, &is_null, trace, &log, NULL), BN_OK);
	cr_expect_eq(is_null, 1);
	cr_expect_str_eq(log.text, "text=x;lower=x;extract=x;extract=x;extract=x;extract=x;extract=x;extract=x;"
				   "first_match=x;trim=x;max_bytes=x;trim=x;validate=null;");
}

/* ---- no allocation after warm-up ---- */

#ifdef COUNT_ALLOCS
Test(normalize, no_allocation_after_warm_up)
{
	static const char line[] =
		"{'event_id':'169a73bf4c83cf3b8c0a70a7a84567f9','ts':'2026-11-20T14:00:01.123+02:00','exchange':' AppLovin ',"
		"'app':{'bundle':'https://play.google.com/store/apps/details?id=com.dreamgames.royalmatch&hl=en',"
		"'publisher':'Dream Games \\ud83c\\udfae Caf\\u00e9'},"
		"'device':{'ifa':'5E571EAA-66C1-64E7-C859-90D2E844C762','os':' Android ','os_version':'14','make':'Samsung',"
		"'model':'SM\\u00a0S918B','country':'us','city':'SÃ£o Paulo','language':'en_US','connection_type':'4g',"
		"'installed_apps':['com.titan.mergesort.free','COM.PEAKGAMES.TOONBLAST',null,'com.fox.happyempire.go$hl=en',"
		"'com.dreamgames.royalmatch','id1482155847',1482155847,'com.peakgames.toonblast','foo'],"
		"'clicks':'3','impressions':120,'days_since_install':3},"
		"'ad_format':'Interstitial','bid_floor':' 0.26 ','clearing_price':0.26,'weeks_ago':1,'days_since_install':70,"
		"'features':{'session_depth':2,'session_count':'7','hours_ago':1,'hour_of_day':18,'volume':'n/a',"
		"'screen_density':3.5,'ad_position':5,'ad_position':6},"
		"'label':{'click':'true','install':0}}";
	size_t len;
	const char *l = jq(line, &len);
	char copy[sizeof(line)];
	int i, bad = 0;
	bn_error err;
	memcpy(copy, l, len);
	for (i = 0; i < 5; i++)
		cr_assert_eq(bn_normalize_line(norm, copy, len, &err), BN_OK, "%s", err.message);
	cr_assert_str_eq(render(norm, field_index(rules, "installed_apps")),
			 "[\"com.titan.mergesort.free\",\"com.peakgames.toonblast\",\"com.fox.happyempire.go\","
			 "\"com.dreamgames.royalmatch\",\"1482155847\"]");
	counting = 1;
	for (i = 0; i < 1000; i++)
		bad |= bn_normalize_line(norm, copy, len, &err) != BN_OK;
	counting = 0;
	cr_assert_eq(bad, 0);
	cr_assert_eq(allocations, 0, "%ld allocations after warm-up", (long)allocations);
}
#endif

/* ---- member lookup: keys that share a length and their first or last 8 bytes ---- */

static const char lookalike_rules[] =
	"version: 1\n"
	"schema: {name: K}\n"
	"fields:\n"
	"  - {name: a, source: abcdefghXY, type: string}\n"
	"  - {name: b, source: abcdefghXZ, type: string}\n"
	"  - {name: c, source: abcdefgh_m1_ABCDEFGH, type: string}\n"
	"  - {name: d, source: abcdefgh_m2_ABCDEFGH, type: string}\n"
	"  - {name: e, source: abc, type: string}\n"
	"  - {name: f, source: abcd, type: string}\n"
	"  - {name: g, source: abcdefgh, type: string}\n"
	"  - {name: h, source: o.abcde, type: string}\n";

static const value_case lookalike_values[] = {
	{"a", "{'abcdefghXZ':'b','abcdefghXY':'a'}", "\"a\""},
	{"b", "{'abcdefghXZ':'b','abcdefghXY':'a'}", "\"b\""},
	{"a", "{'abcdefghXX':'x','abcdefghX':'y','abcdefghXYZ':'z'}", "null"},
	{"c", "{'abcdefgh_m2_ABCDEFGH':'d','abcdefgh_m1_ABCDEFGH':'c'}", "\"c\""},
	{"d", "{'abcdefgh_m2_ABCDEFGH':'d','abcdefgh_m1_ABCDEFGH':'c'}", "\"d\""},
	{"c", "{'abcdefgh_m3_ABCDEFGH':'x'}", "null"},
	{"e", "{'abc':'e','abcd':'f','abcdefgh':'g','ab':'x','abce':'x','abcdefgi':'x'}", "\"e\""},
	{"f", "{'abc':'e','abcd':'f','abcdefgh':'g','ab':'x','abce':'x','abcdefgi':'x'}", "\"f\""},
	{"g", "{'abc':'e','abcd':'f','abcdefgh':'g','ab':'x','abce':'x','abcdefgi':'x'}", "\"g\""},
	{"e", "{'ab\\u0063':'escaped'}", "\"escaped\""},
	{"g", "{'abcdefg':'x','abcdefg\\u0000':'x'}", "null"},
	/* a member of a nested object, and a root key of the same name that is not it */
	{"h", "{'abcde':'x','o':{'abcdd':'x','abcde':'h'}}", "\"h\""},
	{"h", "{'abcde':'x','o':{'abcdef':'x'}}", "null"},
};

Test(normalize, member_lookup_tells_apart_keys_that_share_a_prefix_or_suffix)
{
	bn_rules *r = NULL;
	bn_normalizer *n = text_normalizer(&r, lookalike_rules);
	run_values(n, lookalike_values, ARRAY_SIZE(lookalike_values), "lookalike");
	bn_normalizer_free(n);
	bn_rules_free(r);
}

/*
 * Cache lookups are hashed and prefetched before the fields are read and then
 * matched by value pointer and chain: two fields reading one value through
 * different chains, a list longer than the prefetch window, escaped values
 * (not prefetched) and numbers read as strings all still get their own
 * results - on a first line (misses) and on its repeats (hits).
 */
static const char shared_rules[] =
	"version: 1\n"
	"schema: {name: R}\n"
	"fields:\n"
	"  - {name: lo, source: x, type: string, chain: [lower]}\n"
	"  - {name: up, source: x, type: string, chain: [upper]}\n"
	"  - {name: same, source: x, type: string, chain: [lower]}\n"
	"  - {name: list, source: l, type: 'array<string>', chain: [upper], max_items: 100}\n"
	"  - {name: after, source: y, type: string, chain: [upper]}\n"
	"  - {name: warm, source: w, type: 'array<string>', chain: [upper]}\n";

Test(normalize, prefetched_cache_lookups_keep_every_value_its_own)
{
	bn_rules *r = NULL;
	bn_normalizer *n = text_normalizer(&r, shared_rules);
	char line[4096], want[4096];
	size_t o = 0, w = 0;
	o += (size_t)snprintf(line + o, sizeof(line) - o, "{'x':'MiXed','l':[");
	w += (size_t)snprintf(want + w, sizeof(want) - w, "[");
	for (int i = 0; i < 80; i++) {
		if (i % 10 == 3)
			o += (size_t)snprintf(line + o, sizeof(line) - o, "%s'e\\u0078%d'", i ? "," : "", i);
		else if (i % 10 == 7)
			o += (size_t)snprintf(line + o, sizeof(line) - o, "%s%d", i ? "," : "", i);
		else
			o += (size_t)snprintf(line + o, sizeof(line) - o, "%s'v%d'", i ? "," : "", i);
		w += (size_t)snprintf(want + w, sizeof(want) - w, "%s\"%s%d\"", i ? "," : "",
				      i % 10 == 3 ? "EX" : i % 10 == 7 ? "" : "V", i);
	}
	snprintf(line + o, sizeof(line) - o, "],'y':'tail'}");
	snprintf(want + w, sizeof(want) - w, "]");
	/* Rows prefetch only once the cache is past the size a core's caches hold: fill it first,
	 * one new value in eight, so the field stays worth caching. */
	for (int i = 0; i < 17000; i++) {
		char warm[128];
		bn_error err;
		snprintf(warm, sizeof(warm), "{'w':['n%d','r0','r1','r2','r3','r4','r5','r6']}", i);
		cr_assert_eq(run_line(n, warm, &err), BN_OK);
	}
	static const char *const fields[] = {"lo", "up", "same", "list", "after"};
	uint64_t tries[5], hits[5];
	for (int round = 0; round < 3; round++) {
		for (size_t k = 0; k < 5; k++) {
			size_t f = field_index(r, fields[k]);
			tries[k] = n->cache_tries[f];
			hits[k] = n->cache_hits[f];
		}
		const value_case cases[] = {
			{"lo", line, "\"mixed\""}, {"up", line, "\"MIXED\""}, {"same", line, "\"mixed\""},
			{"list", line, want}, {"after", line, "\"TAIL\""},
		};
		run_values(n, cases, ARRAY_SIZE(cases), round ? "shared (hits)" : "shared (misses)");
		/* Every repeat is found through the hashes computed ahead: a wrong one would miss. */
		for (size_t k = 0; round > 0 && k < 5; k++) {
			size_t f = field_index(r, fields[k]);
			cr_expect_gt(n->cache_tries[f], tries[k], "%s: no lookups", fields[k]);
			cr_expect_eq(n->cache_hits[f] - hits[k], n->cache_tries[f] - tries[k],
				     "round %d, %s: %llu hits of %llu lookups", round, fields[k],
				     (unsigned long long)(n->cache_hits[f] - hits[k]),
				     (unsigned long long)(n->cache_tries[f] - tries[k]));
		}
	}
	bn_normalizer_free(n);
	bn_rules_free(r);
}
