/* test_rules.c - rule-file loading: the default rules, every step and field option, every error with its position, sha256, Avro schema, the rules of ingest output from its headers. */
#include <avro.h>
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bidnorm/avro.h"
#include "bidnorm/rules.h"
#include "rules/compiled.h"
#include "util/sha256.h"

#define HEAD "version: 1\nschema: {name: R}\n"
/* Fields section with one plain string field 'x' on lines 3-6 (after HEAD). */
#define FX "fields:\n  - name: x\n    source: x\n    type: string\n"

#define TYPES "string, int, long, double, boolean, timestamp-millis, array<T> or map<T>"
#define STEPS "text, lower, upper, extract, replace, first_match, trim, max_bytes, validate or map"

static bn_rules *load_ok(const char *yaml)
{
	bn_rules *r = NULL;
	bn_error err;
	char msg[1024];
	int rc = bn_rules_load_buffer(&r, yaml, strlen(yaml), "t.yaml", &err);
	bn_error_format(&err, msg, sizeof(msg));
	cr_assert_eq(rc, BN_OK, "load failed: %s", msg);
	cr_assert_not_null(r);
	return r;
}

/* Load yaml, expect failure with code, and return the formatted message in msg. */
static void load_fail(const char *yaml, int code, char *msg, size_t size)
{
	static int sentinel;
	bn_rules *r = (bn_rules *)&sentinel;
	bn_error err;
	int rc = bn_rules_load_buffer(&r, yaml, strlen(yaml), "t.yaml", &err);
	cr_assert_eq(rc, code, "expected %d, got %d for:\n%s", code, rc, yaml);
	cr_assert_eq(err.code, code);
	cr_assert_eq((void *)r, (void *)&sentinel, "*out written on failure");
	bn_error_format(&err, msg, size);
}

static const bn_chain *chain_named(const bn_rules *r, const char *name)
{
	size_t i;
	for (i = 0; i < r->nchains; i++)
		if (!strcmp(r->chains[i].name, name))
			return &r->chains[i];
	return NULL;
}

static const bn_field *field_named(const bn_rules *r, const char *name)
{
	size_t i;
	for (i = 0; i < r->nfields; i++)
		if (!strcmp(r->fields[i].name, name))
			return &r->fields[i];
	return NULL;
}

Test(rules, default_loads)
{
	static const char *const names[] = {
		"event_id", "ts", "exchange", "ad_format", "app_bundle", "publisher", "device_ifa", "os",
		"os_version", "device_make", "device_model", "country", "city", "language", "connection_type",
		"installed_apps", "bid_floor", "device_ctr", "features", "click", "install",
	};
	bn_rules *r = NULL;
	bn_error err;
	size_t size, i;
	const char *text = bn_rules_default_text(&size);
	char hex[65];

	cr_assert_eq(bn_rules_load_default(&r, &err), BN_OK, "%s", err.message);
	cr_assert_str_eq(bn_rules_source_name(r), "<default>");
	cr_assert_eq(bn_rules_field_count(r), sizeof(names) / sizeof(names[0]));
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		cr_expect_str_eq(bn_rules_field_name(r, i), names[i]);
	cr_assert_null(bn_rules_field_name(r, i));
	cr_assert(size > 1000 && text[size] == '\0' && !strncmp(text, "# bidlog.yaml", 13));
	bn_sha256_hex(hex, text, size);
	cr_assert_str_eq(bn_rules_sha256(r), hex);
	cr_assert_eq(bn_rules_max_line_bytes(r), 1048576);
	cr_assert_eq(r->text_len, size);
	cr_assert_eq(memcmp(r->text, text, size), 0);
	bn_rules_free(r);
}

Test(rules, default_contents)
{
	static const bn_step_kind bundle_kinds[] = {
		BN_STEP_TEXT, BN_STEP_LOWER, BN_STEP_EXTRACT, BN_STEP_EXTRACT, BN_STEP_EXTRACT, BN_STEP_EXTRACT, BN_STEP_EXTRACT,
		BN_STEP_EXTRACT,
		BN_STEP_FIRST_MATCH, BN_STEP_TRIM, BN_STEP_MAX_BYTES, BN_STEP_TRIM, BN_STEP_VALIDATE,
	};
	bn_rules *r = NULL;
	const bn_chain *token, *bundle;
	const bn_field *f;
	size_t i;

	cr_assert_eq(bn_rules_load_default(&r, NULL), BN_OK);
	cr_assert_eq(r->max_text_bytes, 256);
	cr_assert_eq(r->regex_match_limit, 100000);
	cr_assert_eq(r->regex_depth_limit, 1000);
	cr_assert_str_eq(r->schema_name, "Impression");
	cr_assert_str_eq(r->schema_namespace, "ads.bidlog");

	cr_assert_eq(r->nchains, 2);
	token = chain_named(r, "token");
	cr_assert_not_null(token);
	cr_assert_eq(token->nsteps, 3);
	cr_assert_eq(token->steps[0].kind, BN_STEP_TEXT);
	cr_assert_eq(token->steps[0].max_bytes, 0);
	cr_assert_eq(token->steps[1].kind, BN_STEP_LOWER);
	cr_assert_eq(token->steps[2].kind, BN_STEP_MAX_BYTES);
	cr_assert_eq(token->steps[2].max_bytes, 64);
	cr_assert_eq(token->steps[0].line, 19);
	cr_assert_eq(token->steps[0].column, 7);

	bundle = chain_named(r, "bundle");
	cr_assert_not_null(bundle);
	cr_assert_eq(bundle->nsteps, sizeof(bundle_kinds) / sizeof(bundle_kinds[0]));
	for (i = 0; i < bundle->nsteps; i++)
		cr_expect_eq(bundle->steps[i].kind, bundle_kinds[i], "step %zu", i);
	cr_assert_not_null(bundle->steps[2].re);
	cr_assert_str_eq(bundle->steps[2].pattern, "play\\.google\\.com/store/apps/details\\?(?:[^#]*?&)?id=([^&#]*)");
	cr_assert_eq(bundle->steps[9].nchars, 3);
	cr_assert_eq(memcmp(bundle->steps[9].chars, "._-", 3), 0);
	cr_assert_eq(bundle->steps[10].max_bytes, 128);
	cr_assert_eq(bundle->steps[12].on_fail, BN_ON_FAIL_NULL);
	cr_assert_str_eq(bundle->steps[12].pattern, "^(?:[a-z][a-z0-9_-]*(?:\\.[a-z0-9_-]+)+|[1-9][0-9]{1,11}|"
			 "b0[0-9a-z]{8}|g[0-9]{11,13}|9[0-9a-z]{11})$");

	f = field_named(r, "event_id");
	cr_assert(f->required && f->type == BN_T_STRING && f->shape == BN_SHAPE_SCALAR);
	cr_assert_not_null(f->chain);
	cr_assert_null(f->chain->name);
	cr_assert_eq(f->chain->nsteps, 1);
	cr_assert_eq(f->line, 58);
	cr_assert_eq(f->column, 5);
	f = field_named(r, "country");
	cr_assert_eq(f->chain->nsteps, 2);
	cr_assert_eq(f->chain->steps[1].kind, BN_STEP_UPPER);
	f = field_named(r, "app_bundle");
	cr_assert_eq(f->chain, bundle);
	cr_assert_eq(f->source.nparts, 2);
	cr_assert_str_eq(f->source.text, "app.bundle");
	cr_assert_str_eq(f->source.parts[0], "app");
	cr_assert_str_eq(f->source.parts[1], "bundle");
	f = field_named(r, "installed_apps");
	cr_assert(f->shape == BN_SHAPE_ARRAY && f->type == BN_T_STRING && f->unique && f->max_items == 256);
	cr_assert_eq(f->chain, bundle);
	f = field_named(r, "ts");
	cr_assert(f->type == BN_T_TIMESTAMP_MS && f->required && !f->chain);
	f = field_named(r, "device_ctr");
	cr_assert(f->is_ratio && f->type == BN_T_DOUBLE && f->ratio_invalid == -1.0);
	cr_assert_eq(f->source.nparts, 0);
	cr_assert_str_eq(f->numerator.text, "device.clicks");
	cr_assert_str_eq(f->denominator.parts[1], "impressions");
	cr_assert(!bn_field_nullable(f));
	f = field_named(r, "features");
	cr_assert(f->shape == BN_SHAPE_MAP && f->type == BN_T_DOUBLE && f->strip_serving_invalid);
	f = field_named(r, "click");
	cr_assert(f->type == BN_T_INT && bn_field_nullable(f));

	cr_assert_eq(r->ninvalid, 3);
	cr_assert_str_eq(r->invalid[0].pattern, "_ago$");
	cr_assert_str_eq(r->invalid[0].reason, "relative-time");
	cr_assert_str_eq(r->invalid[2].reason, "feedback");
	cr_assert_eq(r->nallow, 0);
	bn_rules_free(r);
}

Test(rules, limits_default_when_absent)
{
	bn_rules *r = load_ok(HEAD FX);
	cr_assert_eq(r->max_line_bytes, 1048576);
	cr_assert_eq(r->max_text_bytes, 256);
	cr_assert_eq(r->regex_match_limit, 100000);
	cr_assert_eq(r->regex_depth_limit, 1000);
	cr_assert_null(r->schema_namespace);
	cr_assert_eq(r->nchains, 0);
	cr_assert_eq(r->ninvalid, 0);
	cr_assert_null(r->fields[0].chain);
	cr_assert_eq(r->fields[0].strip_serving_invalid, 0);
	bn_rules_free(r);

	r = load_ok(HEAD "limits: {max_line_bytes: 4096, max_text_bytes: 64, regex_match_limit: 5000, "
		    "regex_depth_limit: 50}\n" FX);
	cr_assert_eq(bn_rules_max_line_bytes(r), 4096);
	cr_assert_eq(r->max_text_bytes, 64);
	cr_assert_eq(r->regex_match_limit, 5000);
	cr_assert_eq(r->regex_depth_limit, 50);
	bn_rules_free(r);
}

Test(rules, every_step_kind)
{
	static const char yaml[] =
		HEAD
		"chains:\n"
		"  c:\n"
		"    - text\n"                                          /* 5 */
		"    - text: {max_bytes: 10}\n"
		"    - lower\n"
		"    - upper\n"
		"    - extract: '^(.)'\n"
		"    - replace: {pattern: '(?<d>-)+', with: '_$1${d}$d$$$0${*MARK}'}\n" /* 10 */
		"    - replace: {pattern: x, with: }\n"
		"    - first_match: '[a-z]+'\n"
		"    - trim: ' ._'\n"
		"    - max_bytes: 12\n"
		"    - validate: '^a'\n"                                 /* 15 */
		"    - validate: {pattern: '^a', on_fail: reject}\n"
		"    - validate: {pattern: '^a', on_fail: keep}\n"
		"    - validate: {pattern: '^a', on_fail: null}\n"
		"    - validate: {pattern: '^a', on_fail: 'null'}\n"
		"    - map: {bb: B, a: A, ab: AB, c: '', \"\\u00e9\": e}\n" /* 20 */
		FX "    chain: c\n";
	bn_rules *r = load_ok(yaml);
	const bn_step *s = r->chains[0].steps;
	pcre2_match_data *md = pcre2_match_data_create(4, NULL);
	PCRE2_SIZE *ov;

	cr_assert_eq(r->chains[0].nsteps, 16);
	cr_assert_eq(r->fields[0].chain, &r->chains[0]);
	for (size_t i = 0; i < 16; i++) {
		cr_expect_eq(s[i].line, 5 + i, "step %zu", i);
		cr_expect_eq(s[i].column, 7, "step %zu", i);
	}
	cr_assert(s[0].kind == BN_STEP_TEXT && s[0].max_bytes == 0);
	cr_assert(s[1].kind == BN_STEP_TEXT && s[1].max_bytes == 10);
	cr_assert(s[2].kind == BN_STEP_LOWER && s[3].kind == BN_STEP_UPPER);
	cr_assert_eq(s[4].kind, BN_STEP_EXTRACT);
	/* Compiled in UTF mode, as the chain module matches (with PCRE2_NO_UTF_CHECK): '.' is one character, two bytes here. */
	cr_assert_eq(pcre2_match(s[4].re, (PCRE2_SPTR) "\xc3\xa9x", 3, 0, PCRE2_NO_UTF_CHECK, md, NULL), 2);
	ov = pcre2_get_ovector_pointer(md);
	cr_assert_eq(ov[3], 2, "group 1 should be the whole e-acute, ended at byte %zu", (size_t)ov[3]);
	cr_assert(s[5].kind == BN_STEP_REPLACE && !strcmp(s[5].pattern, "(?<d>-)+"));
	cr_assert(s[5].replacement_len == 21 && !strcmp(s[5].replacement, "_$1${d}$d$$$0${*MARK}"));
	cr_assert(s[6].kind == BN_STEP_REPLACE && s[6].replacement_len == 0 && s[6].replacement[0] == '\0');
	cr_assert(s[7].kind == BN_STEP_FIRST_MATCH && s[7].re);
	cr_assert(s[8].kind == BN_STEP_TRIM && s[8].nchars == 3 && !memcmp(s[8].chars, " ._", 3));
	cr_assert(s[9].kind == BN_STEP_MAX_BYTES && s[9].max_bytes == 12);
	cr_assert(s[10].kind == BN_STEP_VALIDATE && s[10].on_fail == BN_ON_FAIL_NULL && s[10].re);
	cr_assert_eq(s[11].on_fail, BN_ON_FAIL_REJECT);
	cr_assert_eq(s[12].on_fail, BN_ON_FAIL_KEEP);
	cr_assert_eq(s[13].on_fail, BN_ON_FAIL_NULL);
	cr_assert_eq(s[14].on_fail, BN_ON_FAIL_NULL);
	cr_assert_eq(s[15].kind, BN_STEP_MAP);
	cr_assert_eq(s[15].nmap, 5);
	/* Sorted by (length, bytes): a, c, bb... then ab < bb, and the 2-byte e-acute last among length 2. */
	{
		static const char *const from[] = { "a", "c", "ab", "bb", "\xc3\xa9" };
		static const char *const to[] = { "A", "", "AB", "B", "e" };
		for (size_t i = 0; i < 5; i++) {
			cr_expect_eq(s[15].map[i].from_len, strlen(from[i]));
			cr_expect_str_eq(s[15].map[i].from, from[i], "entry %zu", i);
			cr_expect_str_eq(s[15].map[i].to, to[i], "entry %zu", i);
			cr_expect_eq(s[15].map[i].to_len, strlen(to[i]));
		}
	}
	pcre2_match_data_free(md);
	bn_rules_free(r);
}

Test(rules, field_options)
{
	static const char yaml[] =
		HEAD
		"fields:\n"
		"  - {name: s, source: a.b.c, type: string, default: unknown, doc: the s}\n"
		"  - {name: i, source: i, type: int, default: -5, required: false}\n"
		"  - {name: l, source: l, type: long, default: 9000000000}\n"
		"  - {name: d, source: d, type: double, default: 0.25}\n"
		"  - {name: b, source: b, type: boolean, default: true}\n"
		"  - {name: t, source: t, type: timestamp-millis, default: 0}\n"
		"  - {name: a, source: a, type: array<long>, max_items: 3}\n"
		"  - {name: m, source: m, type: map<string>, strip_serving_invalid: false, chain: [lower]}\n"
		"  - {name: r, type: double, ratio: {numerator: x.n, denominator: x.d, invalid: 0.5}}\n";
	bn_rules *r = load_ok(yaml);
	const bn_field *f = r->fields;

	cr_assert_eq(r->nfields, 9);
	cr_assert(f[0].def.present && f[0].def.s_len == 7 && !strcmp(f[0].def.s, "unknown"));
	cr_assert_str_eq(f[0].doc, "the s");
	cr_assert_eq(f[0].source.nparts, 3);
	cr_assert_str_eq(f[0].source.parts[2], "c");
	cr_assert(f[1].def.present && f[1].def.i == -5 && !f[1].required);
	cr_assert(f[2].def.i == 9000000000LL && f[2].type == BN_T_LONG);
	cr_assert(f[3].def.d == 0.25);
	cr_assert(f[4].def.present && f[4].def.i == 1);
	cr_assert(f[5].def.present && f[5].def.i == 0 && f[5].type == BN_T_TIMESTAMP_MS);
	cr_assert(f[6].shape == BN_SHAPE_ARRAY && f[6].type == BN_T_LONG && f[6].max_items == 3 && !f[6].unique);
	cr_assert(f[7].shape == BN_SHAPE_MAP && !f[7].strip_serving_invalid);
	cr_assert(f[7].chain && f[7].chain->nsteps == 1 && f[7].chain->steps[0].kind == BN_STEP_LOWER);
	cr_assert_eq(r->ninline_chains, 1);
	cr_assert(f[8].is_ratio && f[8].ratio_invalid == 0.5 && !strcmp(f[8].numerator.parts[1], "n"));
	for (size_t i = 0; i < 9; i++)
		cr_expect_eq(f[i].line, 4 + i);
	bn_rules_free(r);
}

struct error_case {
	const char *name;
	const char *yaml;
	const char *want;
};

static const struct error_case error_cases[] = {
	/* structure and top level */
	{ "syntax_flow", "version: 1\nschema: {name: R\nfields: []\n",
	  "t.yaml:3:7: YAML syntax error: did not find expected ',' or '}' (while parsing a flow mapping at 2:9)" },
	{ "syntax_tab", "version: 1\nschema:\n\tname: R\n",
	  "t.yaml:3:1: YAML syntax error: found character that cannot start any token "
	  "(while scanning for the next token at 3:1)" },
	{ "syntax_quote", HEAD "fields:\n  - name: x\n    source: \"abc\n",
	  "t.yaml:6:1: YAML syntax error: found unexpected end of stream (while scanning a quoted scalar at 5:13)" },
	{ "syntax_utf8", HEAD "fields:\n  - name: x\n    source: a\xff\n",
	  "t.yaml:5:14: YAML syntax error: invalid leading UTF-8 octet (byte 0xff)" },
	{ "empty", "", "t.yaml: the rule file is empty (expected a mapping with 'version', 'schema' and 'fields')" },
	{ "only_comment", "# nothing\n",
	  "t.yaml: the rule file is empty (expected a mapping with 'version', 'schema' and 'fields')" },
	{ "second_document", HEAD FX "---\nfoo: 1\n", "t.yaml:8:1: a rule file holds one YAML document, found a second one" },
	{ "root_list", "- a\n", "t.yaml:1:1: expected a mapping for the rule file (version, schema, fields, ...)" },
	{ "unknown_top_key", HEAD "feilds: []\n",
	  "t.yaml:3:1: unknown key 'feilds' at top level (expected one of: version, schema, limits, chains, "
	  "serving_invalid, allow, fields, rows, root)" },
	{ "duplicate_top_key", "version: 1\nversion: 1\n", "t.yaml:2:1: duplicate key 'version' at top level" },
	{ "missing_version", "schema: {name: R}\n" FX, "t.yaml:1:1: missing 'version' (expected 'version: 1')" },
	{ "version_2", "version: 2\nschema: {name: R}\n" FX, "t.yaml:1:10: 'version' must be 1" },
	{ "version_string", "version: one\nschema: {name: R}\n" FX, "t.yaml:1:10: 'version' must be 1" },
	{ "missing_schema", "version: 1\n" FX,
	  "t.yaml:1:1: missing 'schema' (expected the output record's name and namespace)" },
	{ "missing_fields", HEAD, "t.yaml:1:1: missing 'fields' (expected the list of output fields)" },
	{ "fields_not_list", HEAD "fields: {a: 1}\n", "t.yaml:3:9: expected a list for 'fields'" },
	{ "fields_empty", HEAD "fields: []\n", "t.yaml:3:9: 'fields' is empty (expected at least one field)" },
	/* schema and limits */
	{ "schema_no_name", "version: 1\nschema: {namespace: a}\n" FX,
	  "t.yaml:2:9: 'schema' needs 'name' (the Avro record name, like Impression)" },
	{ "schema_bad_name", "version: 1\nschema: {name: my-record}\n" FX,
	  "t.yaml:2:16: schema name 'my-record' is not an Avro name (expected [A-Za-z_][A-Za-z0-9_]*)" },
	{ "schema_bad_namespace", "version: 1\nschema: {name: R, namespace: 'a..b'}\n" FX,
	  "t.yaml:2:30: schema namespace 'a..b' is not dot-separated Avro names (like ads.bidlog)" },
	{ "schema_unknown_key", "version: 1\nschema: {name: R, title: x}\n" FX,
	  "t.yaml:2:19: unknown key 'title' in 'schema' (expected one of: name, namespace, doc)" },
	{ "limits_not_mapping", HEAD "limits: 5\n" FX, "t.yaml:3:9: expected a mapping for 'limits'" },
	{ "limits_unknown_key", HEAD "limits: {max_lines: 1}\n" FX,
	  "t.yaml:3:10: unknown key 'max_lines' in 'limits' (expected one of: max_line_bytes, max_text_bytes, "
	  "regex_match_limit, regex_depth_limit, max_rows)" },
	{ "limits_negative", HEAD "limits: {max_line_bytes: -1}\n" FX,
	  "t.yaml:3:26: 'max_line_bytes' must be a positive integer" },
	{ "limits_zero", HEAD "limits: {max_text_bytes: 0}\n" FX,
	  "t.yaml:3:26: 'max_text_bytes' must be a positive integer" },
	{ "limits_too_big", HEAD "limits: {regex_match_limit: 4294967296}\n" FX,
	  "t.yaml:3:29: 'regex_match_limit' must be at most 4294967295" },
	/* fields */
	{ "unknown_field_key", HEAD FX "    chian: token\n",
	  "t.yaml:7:5: unknown key 'chian' in field (expected one of: name, doc, source, type, required, default, "
	  "chain, max_items, unique, strip_serving_invalid, ratio, presence, row_index, range, same_source_as)" },
	{ "duplicate_field_key", HEAD FX "    type: int\n", "t.yaml:7:5: duplicate key 'type' in field" },
	{ "field_not_mapping", HEAD "fields:\n  - x\n", "t.yaml:4:5: expected a mapping for each entry of 'fields'" },
	{ "field_no_name", HEAD "fields:\n  - source: x\n    type: string\n", "t.yaml:4:5: field has no 'name'" },
	{ "field_bad_name", HEAD "fields:\n  - name: 1x\n    source: x\n    type: string\n",
	  "t.yaml:4:11: field name '1x' is not an Avro name (expected [A-Za-z_][A-Za-z0-9_]*)" },
	{ "duplicate_field_name",
	  HEAD "fields:\n  - {name: os, source: a, type: string}\n  - {name: os, source: b, type: string}\n",
	  "t.yaml:5:12: duplicate field name 'os'" },
	{ "unknown_type", HEAD "fields:\n  - name: x\n    source: x\n    type: strng\n",
	  "t.yaml:6:11: field 'x': unknown type 'strng' (expected " TYPES ")" },
	{ "unknown_array_type", HEAD "fields:\n  - name: x\n    source: x\n    type: array<strng>\n",
	  "t.yaml:6:11: field 'x': unknown type 'array<strng>' (expected " TYPES ")" },
	{ "nested_map_type", HEAD "fields:\n  - name: x\n    source: x\n    type: map<array<string>>\n",
	  "t.yaml:6:11: field 'x': unknown type 'map<array<string>>' (expected " TYPES ")" },
	{ "missing_type", HEAD "fields:\n  - name: x\n    source: x\n",
	  "t.yaml:4:5: field 'x': missing 'type' (expected " TYPES ")" },
	{ "missing_source", HEAD "fields:\n  - name: x\n    type: string\n",
	  "t.yaml:4:5: field 'x': missing 'source' (the dotted path of the value in the input JSON)" },
	{ "empty_path_part", HEAD "fields:\n  - name: x\n    source: a..b\n    type: string\n",
	  "t.yaml:5:13: field 'x': 'source' path 'a..b' has an empty part (expected names joined by dots, like device.os)" },
	{ "required_not_bool", HEAD FX "    required: yes\n", "t.yaml:7:15: field 'x': 'required' must be true or false" },
	{ "default_with_required", HEAD FX "    required: true\n    default: a\n",
	  "t.yaml:8:14: field 'x': 'default' is not allowed with 'required: true' (a required field is never missing)" },
	{ "default_not_int", HEAD "fields:\n  - name: n\n    source: n\n    type: int\n    default: abc\n",
	  "t.yaml:7:14: field 'n': default 'abc' is not a valid int (32-bit integer)" },
	{ "default_int_range", HEAD "fields:\n  - name: n\n    source: n\n    type: int\n    default: 2147483648\n",
	  "t.yaml:7:14: field 'n': default '2147483648' is not a valid int (32-bit integer)" },
	{ "default_not_timestamp", HEAD "fields:\n  - name: n\n    source: n\n    type: timestamp-millis\n    default: 1.5\n",
	  "t.yaml:7:14: field 'n': default '1.5' is not a valid timestamp-millis (64-bit integer of epoch milliseconds)" },
	{ "default_not_double", HEAD "fields:\n  - name: n\n    source: n\n    type: double\n    default: .nan\n",
	  "t.yaml:7:14: field 'n': default '.nan' is not a valid double (a finite number)" },
	{ "default_not_boolean", HEAD "fields:\n  - name: n\n    source: n\n    type: boolean\n    default: 1\n",
	  "t.yaml:7:14: field 'n': default '1' is not a valid boolean (true or false)" },
	{ "default_null", HEAD FX "    default: null\n",
	  "t.yaml:7:14: field 'x': 'default' must not be null (leave 'default' out and the field is nullable)" },
	{ "default_list", HEAD FX "    default: [a]\n",
	  "t.yaml:7:14: field 'x': 'default' must be a single value of the field's type" },
	{ "default_on_array", HEAD "fields:\n  - name: x\n    source: x\n    type: array<string>\n    default: a\n",
	  "t.yaml:7:14: field 'x': 'default' is not allowed for arrays and maps (they default to empty)" },
	{ "chain_on_int", HEAD "fields:\n  - name: n\n    source: n\n    type: int\n    chain: [text]\n",
	  "t.yaml:7:12: field 'n': 'chain' is only for string fields and arrays or maps of string (type is 'int')" },
	{ "chain_mapping", HEAD FX "    chain: {a: b}\n",
	  "t.yaml:7:12: field 'x': expected a chain name or a list of steps for 'chain'" },
	{ "unknown_chain", HEAD FX "    chain: bundel\n", "t.yaml:7:12: field 'x': unknown chain 'bundel'" },
	{ "inline_chain_empty", HEAD FX "    chain: []\n",
	  "t.yaml:7:12: field 'x': 'chain' has no steps (expected a list of steps)" },
	{ "max_items_on_string", HEAD FX "    max_items: 3\n", "t.yaml:7:16: field 'x': 'max_items' is only for array fields" },
	/* range */
	{ "range_on_string", HEAD FX "    range: [0, 1]\n",
	  "t.yaml:7:12: field 'x': 'range' is only for int, long and double fields (and arrays or maps of them)" },
	{ "range_on_ratio", HEAD "fields:\n  - name: x\n    type: double\n    ratio: {numerator: a, denominator: b, invalid: -1}\n"
	  "    range: [0, 1]\n",
	  "t.yaml:7:12: field 'x': 'range' is only for int, long and double fields (and arrays or maps of them)" },
	{ "range_one_bound", HEAD "fields:\n  - name: x\n    source: x\n    type: int\n    range: [0]\n",
	  "t.yaml:7:12: field 'x': 'range' must be a list of two numbers [MIN, MAX]" },
	{ "range_mapping", HEAD "fields:\n  - name: x\n    source: x\n    type: int\n    range: {min: 0}\n",
	  "t.yaml:7:12: field 'x': 'range' must be a list of two numbers [MIN, MAX]" },
	{ "range_not_number", HEAD "fields:\n  - name: x\n    source: x\n    type: int\n    range: [0, one]\n",
	  "t.yaml:7:16: field 'x': range bound 'one' is not a valid int (32-bit integer)" },
	{ "range_int_too_big", HEAD "fields:\n  - name: x\n    source: x\n    type: int\n    range: [0, 4294967296]\n",
	  "t.yaml:7:16: field 'x': range bound '4294967296' is not a valid int (32-bit integer)" },
	{ "range_long_fraction", HEAD "fields:\n  - name: x\n    source: x\n    type: long\n    range: [0.5, 1]\n",
	  "t.yaml:7:13: field 'x': range bound '0.5' is not a valid long (64-bit integer)" },
	{ "range_double_nan", HEAD "fields:\n  - name: x\n    source: x\n    type: map<double>\n    range: [.nan, 1]\n",
	  "t.yaml:7:13: field 'x': range bound '.nan' is not a valid double (a finite number)" },
	{ "range_reversed", HEAD "fields:\n  - name: x\n    source: x\n    type: int\n    range: [1, 0]\n",
	  "t.yaml:7:12: field 'x': 'range' minimum 1 is greater than its maximum 0" },
	{ "range_default_outside", HEAD "fields:\n  - name: x\n    source: x\n    type: int\n    default: 5\n    range: [0, 1]\n",
	  "t.yaml:7:14: field 'x': default '5' is outside 'range'" },
	{ "max_items_zero", HEAD "fields:\n  - name: x\n    source: x\n    type: array<string>\n    max_items: 0\n",
	  "t.yaml:7:16: field 'x': 'max_items' must be a positive integer" },
	{ "unique_on_map", HEAD "fields:\n  - name: x\n    source: x\n    type: map<string>\n    unique: true\n",
	  "t.yaml:7:13: field 'x': 'unique' is only for array fields" },
	{ "strip_on_array", HEAD "fields:\n  - name: x\n    source: x\n    type: array<int>\n    strip_serving_invalid: no\n",
	  "t.yaml:7:28: field 'x': 'strip_serving_invalid' is only for map fields" },
	{ "ratio_long", HEAD "fields:\n  - name: r\n    type: long\n    ratio: {numerator: a, denominator: b, invalid: 0}\n",
	  "t.yaml:5:11: field 'r': a ratio field must have type double" },
	{ "ratio_with_source", HEAD "fields:\n  - name: r\n    type: double\n    source: s\n"
	  "    ratio: {numerator: a, denominator: b, invalid: 0}\n",
	  "t.yaml:6:13: field 'r': 'source' is not allowed with 'ratio' (a ratio reads its numerator and denominator)" },
	{ "ratio_required", HEAD "fields:\n  - name: r\n    type: double\n    required: true\n"
	  "    ratio: {numerator: a, denominator: b, invalid: 0}\n",
	  "t.yaml:6:15: field 'r': 'required' is not allowed with 'ratio' (an undefined ratio becomes 'invalid')" },
	{ "ratio_missing_invalid", HEAD "fields:\n  - name: r\n    type: double\n    ratio: {numerator: a, denominator: b}\n",
	  "t.yaml:6:12: field 'r': 'ratio' needs 'numerator', 'denominator' and 'invalid' "
	  "(the value when the ratio is undefined)" },
	{ "ratio_invalid_nan", HEAD "fields:\n  - name: r\n    type: double\n"
	  "    ratio: {numerator: a, denominator: b, invalid: x}\n",
	  "t.yaml:6:52: field 'r': 'invalid' must be a finite number" },
	{ "ratio_unknown_key", HEAD "fields:\n  - name: r\n    type: double\n"
	  "    ratio: {numerator: a, denominator: b, invalid: 0, over: 1}\n",
	  "t.yaml:6:55: field 'r': unknown key 'over' in 'ratio' (expected one of: numerator, denominator, invalid)" },
	/* chains and steps */
	{ "chains_not_mapping", HEAD "chains: [a]\n" FX,
	  "t.yaml:3:9: expected a mapping for 'chains' (chain name -> list of steps)" },
	{ "chain_not_list", HEAD "chains:\n  c: lower\n" FX, "t.yaml:4:6: expected a list for chain 'c'" },
	{ "chain_empty", HEAD "chains:\n  c: []\n" FX, "t.yaml:4:6: chain 'c' has no steps (expected a list of steps)" },
	{ "duplicate_chain", HEAD "chains:\n  c: [lower]\n  c: [upper]\n" FX, "t.yaml:5:3: duplicate chain name 'c'" },
	{ "unknown_step_named", HEAD "chains:\n  c:\n    - lowercase\n" FX,
	  "t.yaml:5:7: unknown step 'lowercase' (expected " STEPS ")" },
	{ "unknown_step_inline", HEAD FX "    chain: [text, lowercase]\n",
	  "t.yaml:7:19: field 'x': unknown step 'lowercase' (expected " STEPS ")" },
	{ "unknown_step_mapping", HEAD "chains:\n  c:\n    - strip: x\n" FX,
	  "t.yaml:5:7: unknown step 'strip' (expected " STEPS ")" },
	{ "step_two_keys", HEAD "chains:\n  c:\n    - extract: '(a)'\n      trim: x\n" FX,
	  "t.yaml:5:7: a step is one name or one 'name: argument' pair, found 2 keys "
	  "(write each step as its own list item)" },
	{ "step_list", HEAD "chains:\n  c:\n    - [lower]\n" FX,
	  "t.yaml:5:7: expected a step (a name like 'lower', or a pair like 'max_bytes: 64')" },
	{ "step_needs_argument", HEAD "chains:\n  c:\n    - extract\n" FX,
	  "t.yaml:5:7: step 'extract' needs an argument (like 'extract: PATTERN')" },
	{ "step_takes_no_argument", HEAD "chains:\n  c:\n    - lower: yes\n" FX,
	  "t.yaml:5:14: step 'lower' takes no argument" },
	{ "invalid_regex", HEAD "chains:\n  c:\n    - extract: '(a'\n" FX,
	  "t.yaml:5:16: invalid regex '(a' at offset 2: missing closing parenthesis" },
	{ "invalid_regex_validate", HEAD "chains:\n  c:\n    - validate: {pattern: 'a[', on_fail: reject}\n" FX,
	  "t.yaml:5:27: invalid regex 'a[' at offset 2: missing terminating ] for character class" },
	{ "invalid_regex_quantifier", HEAD "chains:\n  c:\n    - first_match: 'a{2,1}'\n" FX,
	  "t.yaml:5:20: invalid regex 'a{2,1}' at offset 5: numbers out of order in {} quantifier" },
	{ "extract_no_group", HEAD "chains:\n  c:\n    - extract: 'a+'\n" FX,
	  "t.yaml:5:16: extract pattern 'a+' has no capture group (the value becomes group 1)" },
	{ "extract_empty", HEAD "chains:\n  c:\n    - extract: ''\n" FX, "t.yaml:5:16: 'extract' must not be empty" },
	{ "text_unknown_key", HEAD "chains:\n  c:\n    - text: {max: 3}\n" FX,
	  "t.yaml:5:14: unknown key 'max' in step 'text' (expected one of: max_bytes)" },
	{ "text_not_mapping", HEAD "chains:\n  c:\n    - text: 3\n" FX,
	  "t.yaml:5:13: expected a mapping for step 'text' (like 'text: {max_bytes: 64}')" },
	{ "replace_missing_with", HEAD "chains:\n  c:\n    - replace: {pattern: a}\n" FX,
	  "t.yaml:5:16: step 'replace' needs both 'pattern' and 'with'" },
	{ "replace_unknown_key", HEAD "chains:\n  c:\n    - replace: {pattern: a, by: b}\n" FX,
	  "t.yaml:5:29: unknown key 'by' in step 'replace' (expected one of: pattern, with)" },
	{ "replace_unknown_group", HEAD "chains:\n  c:\n    - replace: {pattern: '(a)', with: '$2'}\n" FX,
	  "t.yaml:5:39: replacement '$2' refers to group '2', which the pattern does not have" },
	{ "replace_unknown_name", HEAD "chains:\n  c:\n    - replace: {pattern: '(?<x>a)', with: '<${y}>'}\n" FX,
	  "t.yaml:5:43: replacement '<${y}>' refers to group 'y', which the pattern does not have" },
	{ "replace_lone_dollar", HEAD "chains:\n  c:\n    - replace: {pattern: a, with: 'US$'}\n" FX,
	  "t.yaml:5:35: replacement 'US$': '$' must be followed by $, a group number or name, {group} or *MARK "
	  "(write $$ for a literal $)" },
	{ "replace_unclosed_brace", HEAD "chains:\n  c:\n    - replace: {pattern: '(a)', with: '${1'}\n" FX,
	  "t.yaml:5:39: replacement '${1': '$' must be followed by $, a group number or name, {group} or *MARK "
	  "(write $$ for a literal $)" },
	{ "trim_non_ascii", HEAD "chains:\n  c:\n    - trim: '\xc3\xa9'\n" FX, "t.yaml:5:13: 'trim' characters must be ASCII" },
	{ "trim_empty", HEAD "chains:\n  c:\n    - trim: ''\n" FX, "t.yaml:5:13: 'trim' must not be empty" },
	{ "max_bytes_zero", HEAD "chains:\n  c:\n    - max_bytes: 0\n" FX,
	  "t.yaml:5:18: 'max_bytes' must be a positive integer" },
	{ "validate_on_fail", HEAD "chains:\n  c:\n    - validate: {pattern: 'a', on_fail: drop}\n" FX,
	  "t.yaml:5:41: unknown on_fail 'drop' (expected null, reject or keep)" },
	{ "validate_no_pattern", HEAD "chains:\n  c:\n    - validate: {on_fail: keep}\n" FX,
	  "t.yaml:5:17: step 'validate' needs 'pattern'" },
	{ "map_duplicate", HEAD "chains:\n  c:\n    - map: {a: x, b: y, a: z}\n" FX,
	  "t.yaml:5:25: duplicate key 'a' in step 'map'" },
	{ "map_empty", HEAD "chains:\n  c:\n    - map: {}\n" FX,
	  "t.yaml:5:12: step 'map' is empty (expected at least one FROM: TO pair)" },
	{ "map_list_value", HEAD "chains:\n  c:\n    - map: {a: [b]}\n" FX,
	  "t.yaml:5:16: expected a scalar value for 'a' in step 'map'" },
	/* serving_invalid and allow */
	{ "invalid_bad_regex", HEAD "serving_invalid:\n  - {pattern: '(', reason: r}\n" FX,
	  "t.yaml:4:15: invalid regex '(' at offset 1: missing closing parenthesis" },
	{ "invalid_no_reason", HEAD "serving_invalid:\n  - pattern: x\n" FX,
	  "t.yaml:4:5: a serving_invalid entry needs 'pattern' and 'reason'" },
	{ "allow_no_justification", HEAD "allow:\n  - name: weeks_ago\n" FX,
	  "t.yaml:4:5: allow entry 'weeks_ago' needs a non-empty 'justification'" },
	{ "allow_empty_justification", HEAD "allow:\n  - {name: w, justification: ''}\n" FX,
	  "t.yaml:4:30: allow entry 'w' needs a non-empty 'justification'" },
	{ "allow_no_name", HEAD "allow:\n  - {justification: because}\n" FX,
	  "t.yaml:4:5: an allow entry needs 'name' (a field name or source path)" },
	{ "allow_not_list", HEAD "allow: x\n" FX, "t.yaml:3:8: expected a list for 'allow'" },
	/* array paths, fallbacks, rows, presence, row_index, root */
#define F1(src, type) "fields:\n  - name: f\n    source: " src "\n    type: " type "\n"
	{ "path_index_not_number", HEAD F1("imp[x].w", "int"),
	  "t.yaml:5:13: field 'f': 'source' path 'imp[x].w': '[x]' is not an index (expected [N] with N from 0 to "
	  "4294967294, [*] for every element, or [] for the current row)" },
	{ "path_index_too_big", HEAD F1("imp[4294967295]", "int"),
	  "t.yaml:5:13: field 'f': 'source' path 'imp[4294967295]': '[4294967295]' is not an index (expected [N] "
	  "with N from 0 to 4294967294, [*] for every element, or [] for the current row)" },
	{ "path_unclosed", HEAD F1("imp[0.w", "int"), "t.yaml:5:13: field 'f': 'source' path 'imp[0.w' has a '[' without ']'" },
	{ "path_close_only", HEAD F1("imp]0", "int"), "t.yaml:5:13: field 'f': 'source' path 'imp]0' has a ']' without '['" },
	{ "path_bracket_first", HEAD F1("'[0].w'", "int"),
	  "t.yaml:5:13: field 'f': 'source' path '[0].w': '[' must follow a member name (like imp[0])" },
	{ "path_junk_after_bracket", HEAD F1("imp[0]w", "int"),
	  "t.yaml:5:13: field 'f': 'source' path 'imp[0]w': expected '.' or '[' after ']'" },
	{ "wildcard_scalar", HEAD F1("user.data[*].id", "string"),
	  "t.yaml:5:13: field 'f': 'source' path 'user.data[*].id' has [*], which collects several values: only for "
	  "array fields (not a single value)" },
	{ "wildcard_map", HEAD F1("a[*]", "map<int>"),
	  "t.yaml:5:13: field 'f': 'source' path 'a[*]' has [*], which collects several values: only for array "
	  "fields (not a map)" },
	{ "wildcard_ratio", HEAD "fields:\n  - name: r\n    type: double\n    ratio: {numerator: 'a[*]', denominator: b, "
	  "invalid: 0}\n",
	  "t.yaml:6:24: field 'r': 'numerator' path 'a[*]' has [*], which collects several values: only for array "
	  "fields (not a ratio)" },
	{ "row_without_rows", HEAD F1("imp[].id", "string"),
	  "t.yaml:5:13: field 'f': 'source' path 'imp[].id': [] is the current row, but the rule file has no 'rows' "
	  "(the array whose elements become records)" },
	{ "row_not_rows_array", HEAD "rows: imp\n" F1("banner[].w", "int"),
	  "t.yaml:6:13: field 'f': 'source' path 'banner[].w': [] must follow the rows array 'imp' (like imp[].id)" },
	{ "row_twice", HEAD "rows: imp\n" F1("imp[].x[].w", "int"),
	  "t.yaml:6:13: field 'f': 'source' path 'imp[].x[].w' has [] twice (the current row is one element)" },
	{ "rows_with_index", HEAD "rows: imp[0]\n" FX,
	  "t.yaml:3:7: 'rows' path 'imp[0]' must be member names joined by dots (no [N], [*] or [])" },
	{ "root_with_slash", HEAD "root: /request\n" FX,
	  "t.yaml:3:7: 'root' path '/request' must be member names joined by dots (no [N], [*], [] or leading /)" },
	{ "rows_read_as_object", HEAD "rows: imp\n" F1("imp.0.bidfloor", "double"),
	  "t.yaml:6:13: field 'f': path 'imp.0.bidfloor' reads 'imp' as an object, but the rows path 'imp' (line 3) "
	  "reads it as an array" },
	{ "paths_disagree", HEAD "fields:\n  - name: a\n    source: x[0]\n    type: int\n"
	  "  - name: b\n    source: x.y\n    type: int\n",
	  "t.yaml:8:13: field 'b': path 'x.y' reads 'x' as an object, but path 'x[0]' (line 5) reads it as an array" },
	{ "source_empty_list", HEAD F1("[]", "int"),
	  "t.yaml:5:13: field 'f': 'source' is an empty list (expected a path, or a list of paths tried in order)" },
	{ "fallback_bad_path", HEAD F1("[a, 'b..c']", "int"),
	  "t.yaml:5:17: field 'f': 'source' path 'b..c' has an empty part (expected names joined by dots, like "
	  "device.os)" },
	{ "presence_not_array", HEAD "fields:\n  - name: p\n    type: string\n    presence: [a, b]\n",
	  "t.yaml:5:11: field 'p': a presence field must have type array<string>" },
	{ "presence_with_source", HEAD "fields:\n  - name: p\n    type: array<string>\n    source: a\n    presence: [a]\n",
	  "t.yaml:6:13: field 'p': 'source' is not allowed with 'presence' (presence lists the paths it looks at)" },
	{ "presence_not_list", HEAD "fields:\n  - name: p\n    type: array<string>\n    presence: a\n",
	  "t.yaml:6:15: field 'p': expected a list of paths for 'presence' (like [banner, video])" },
	{ "presence_wildcard", HEAD "fields:\n  - name: p\n    type: array<string>\n    presence: ['a[*]']\n",
	  "t.yaml:6:16: field 'p': 'presence' path 'a[*]' has [*], which collects several values: only for array "
	  "fields (not presence)" },
	{ "row_index_without_rows", HEAD "fields:\n  - name: i\n    type: int\n    row_index: true\n",
	  "t.yaml:4:5: field 'i': 'row_index' needs 'rows' at top level (the array whose elements become records)" },
	{ "row_index_type", HEAD "rows: imp\nfields:\n  - name: i\n    type: string\n    row_index: true\n",
	  "t.yaml:6:11: field 'i': a row_index field must have type int or long" },
	{ "row_index_false", HEAD "rows: imp\nfields:\n  - name: i\n    type: int\n    row_index: false\n",
	  "t.yaml:7:16: field 'i': 'row_index' must be true when given (leave it out otherwise)" },
	{ "row_index_with_source", HEAD "rows: imp\nfields:\n  - name: i\n    type: int\n    source: x\n    row_index: true\n",
	  "t.yaml:7:13: field 'i': 'source' is not allowed with 'row_index' (the value is the row's position)" },
	{ "max_rows_zero", HEAD "limits: {max_rows: 0}\n" FX, "t.yaml:3:20: 'max_rows' must be a positive integer" },
	{ "presence_with_ratio", HEAD "fields:\n  - name: r\n    type: double\n    presence: [a]\n"
	  "    ratio: {numerator: a, denominator: b, invalid: 0}\n",
	  "t.yaml:6:15: field 'r': 'presence' is not allowed with 'ratio'" },
	{ "row_index_with_ratio", HEAD "fields:\n  - name: r\n    type: double\n    row_index: true\n"
	  "    ratio: {numerator: a, denominator: b, invalid: 0}\n",
	  "t.yaml:6:16: field 'r': 'row_index' is not allowed with 'ratio'" },
	{ "row_index_with_presence", HEAD "fields:\n  - name: r\n    type: array<string>\n    presence: [a]\n"
	  "    row_index: true\n",
	  "t.yaml:7:16: field 'r': 'row_index' is not allowed with 'presence'" },
	{ "presence_with_chain", HEAD "fields:\n  - name: p\n    type: array<string>\n    presence: [a]\n"
	  "    chain: [text]\n",
	  "t.yaml:7:12: field 'p': 'chain' is not allowed with 'presence' (its values are path names)" },
	{ "row_index_with_default", HEAD "rows: imp\nfields:\n  - name: i\n    type: int\n    default: 0\n"
	  "    row_index: true\n",
	  "t.yaml:7:14: field 'i': 'default' is not allowed with 'row_index' (it is never missing)" },
	/* same_source_as */
#define W "fields:\n  - name: w\n    source: [a.w, b.w]\n    type: int\n"
	{ "same_source_as_unknown", HEAD W "  - name: h\n    source: [a.h, b.h]\n    type: int\n"
	  "    same_source_as: widht\n",
	  "t.yaml:10:21: field 'h': 'same_source_as' names no field 'widht'" },
	{ "same_source_as_itself", HEAD W "    same_source_as: w\n",
	  "t.yaml:7:21: field 'w': 'same_source_as' names the field itself (expected the name of another field, "
	  "the group's first)" },
	{ "same_source_as_empty", HEAD W "  - name: h\n    source: [a.h, b.h]\n    type: int\n    same_source_as: ''\n",
	  "t.yaml:10:21: field 'h': 'same_source_as' must not be empty" },
	{ "same_source_as_list", HEAD W "  - name: h\n    source: [a.h, b.h]\n    type: int\n    same_source_as: [w]\n",
	  "t.yaml:10:21: field 'h': expected a scalar for 'same_source_as'" },
	{ "same_source_as_fewer_sources", HEAD W "  - name: h\n    source: a.h\n    type: int\n    same_source_as: w\n",
	  "t.yaml:10:21: field 'h': 'same_source_as' names 'w', which has 2 source paths, but this field has 1 "
	  "(a group takes one position in every list)" },
	{ "same_source_as_more_sources", HEAD "fields:\n  - name: h\n    source: [a.h, b.h]\n    type: int\n"
	  "    same_source_as: w\n  - name: w\n    source: a.w\n    type: int\n",
	  "t.yaml:7:21: field 'h': 'same_source_as' names 'w', which has 1 source path, but this field has 2 "
	  "(a group takes one position in every list)" },
	{ "same_source_as_chain", HEAD W "  - name: h\n    source: [a.h, b.h]\n    type: int\n    same_source_as: w\n"
	  "  - name: pos\n    source: [a.pos, b.pos]\n    type: int\n    same_source_as: h\n",
	  "t.yaml:14:21: field 'pos': 'same_source_as' names 'h', which takes its source as 'w' does: name 'w' "
	  "(a group has one first field, no chains)" },
	{ "same_source_as_ratio_leader", HEAD "fields:\n  - name: r\n    type: double\n"
	  "    ratio: {numerator: a, denominator: b, invalid: 0}\n  - name: h\n    source: a\n    type: int\n"
	  "    same_source_as: r\n",
	  "t.yaml:10:21: field 'h': 'same_source_as' names 'r', which has no 'source' (it is a ratio field)" },
	{ "same_source_as_presence_leader", HEAD "fields:\n  - name: p\n    type: array<string>\n    presence: [a]\n"
	  "  - name: h\n    source: a\n    type: int\n    same_source_as: p\n",
	  "t.yaml:10:21: field 'h': 'same_source_as' names 'p', which has no 'source' (it is a presence field)" },
	{ "same_source_as_with_ratio", HEAD W "  - name: r\n    type: double\n"
	  "    ratio: {numerator: a, denominator: b, invalid: 0}\n    same_source_as: w\n",
	  "t.yaml:10:21: field 'r': 'same_source_as' is not allowed with 'ratio' (it ties 'source' lists)" },
	{ "same_source_as_with_presence", HEAD W "  - name: p\n    type: array<string>\n    presence: [a, b]\n"
	  "    same_source_as: w\n",
	  "t.yaml:10:21: field 'p': 'same_source_as' is not allowed with 'presence' (it ties 'source' lists)" },
	{ "same_source_as_with_row_index", "version: 1\nschema: {name: R}\nrows: imp\n" W
	  "  - name: i\n    type: int\n    row_index: true\n    same_source_as: w\n",
	  "t.yaml:11:21: field 'i': 'same_source_as' is not allowed with 'row_index' (it ties 'source' lists)" },
	{ "same_source_as_row_index_leader", "version: 1\nschema: {name: R}\nrows: imp\nfields:\n"
	  "  - name: i\n    type: int\n    row_index: true\n  - name: h\n    source: a\n    type: int\n"
	  "    same_source_as: i\n",
	  "t.yaml:11:21: field 'h': 'same_source_as' names 'i', which has no 'source' (it is a row_index field)" },
#undef W
#undef F1
};

Test(rules, error_messages)
{
	size_t i;
	for (i = 0; i < sizeof(error_cases) / sizeof(error_cases[0]); i++) {
		char msg[1024];
		load_fail(error_cases[i].yaml, BN_ERULES, msg, sizeof(msg));
		cr_expect_str_eq(msg, error_cases[i].want, "case %s: got\n%s", error_cases[i].name, msg);
	}
}

Test(rules, error_names_field_separately)
{
	static const char yaml[] = HEAD "fields:\n  - name: x\n    source: x\n    type: strng\n";
	bn_rules *r = NULL;
	bn_error err;
	cr_assert_eq(bn_rules_load_buffer(&r, yaml, strlen(yaml), "t.yaml", &err), BN_ERULES);
	cr_assert_str_eq(err.source, "t.yaml");
	cr_assert_eq(err.line, 6);
	cr_assert_eq(err.column, 11);
	cr_assert_str_eq(err.field, "x");
	cr_assert_str_eq(err.message, "unknown type 'strng' (expected " TYPES ")");
	cr_assert_null(r);
	/* err may be NULL when the caller does not want details. */
	cr_assert_eq(bn_rules_load_buffer(&r, yaml, strlen(yaml), "t.yaml", NULL), BN_ERULES);
	cr_assert_null(r);
}

/* The default rule text with `extra` inserted at `at` (a unique marker) and fields appended. */
static char *default_with(const char *at, const char *insert, const char *append, size_t *field_line)
{
	size_t size, i;
	const char *text = bn_rules_default_text(&size);
	const char *pos = at ? strstr(text, at) : text + size;
	char *out;

	cr_assert_not_null(pos, "marker '%s' not in the default rules", at);
	out = malloc(size + strlen(insert) + strlen(append) + 1);
	cr_assert_not_null(out);
	memcpy(out, text, (size_t)(pos - text));
	strcpy(out + (pos - text), insert);
	strcat(out, pos + (at ? strlen(at) : 0));
	strcat(out, append);
	*field_line = 1;
	for (i = 0; out[i]; i++)
		if (out[i] == '\n')
			*field_line += 1;
	/* The appended field starts on the first line of append. */
	for (i = 0; append[i]; i++)
		if (append[i] == '\n')
			*field_line -= 1;
	return out;
}

Test(rules, serving_invalid_rejected_at_load)
{
	static const struct {
		const char *append;
		const char *want;
	} cases[] = {
		{ "  - name: weeks_ago\n    source: weeks_ago\n    type: long\n",
		  "field 'weeks_ago' matches serving_invalid pattern '_ago$' (relative-time); "
		  "remove it, or add it to 'allow' with a justification" },
		{ "  - name: install_age\n    source: user.days_since_install\n    type: long\n",
		  "field 'install_age' (source 'user.days_since_install') matches serving_invalid pattern "
		  "'^(seconds|minutes|hours|days|weeks|months)_since_' (relative-time); "
		  "remove it, or add it to 'allow' with a justification" },
		{ "  - name: price_ratio\n    type: double\n"
		  "    ratio: {numerator: clearing_price, denominator: bid_floor, invalid: 0}\n",
		  "field 'price_ratio' (source 'clearing_price') matches serving_invalid pattern '^clearing_price$' "
		  "(feedback); remove it, or add it to 'allow' with a justification" },
		{ "  - name: price\n    source: auction.clearing_price\n    type: double\n",
		  "field 'price' (source 'auction.clearing_price') matches serving_invalid pattern '^clearing_price$' "
		  "(feedback); remove it, or add it to 'allow' with a justification" },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t line;
		char *yaml = default_with(NULL, "", cases[i].append, &line);
		char msg[1024], want[1024];
		load_fail(yaml, BN_ERULES, msg, sizeof(msg));
		snprintf(want, sizeof(want), "t.yaml:%zu:5: %s", line, cases[i].want);
		cr_expect_str_eq(msg, want, "case %zu: got\n%s", i, msg);
		free(yaml);
	}
}

Test(rules, serving_invalid_allow_exception)
{
	static const struct {
		const char *allow;
		const char *append;
	} cases[] = {
		{ "allow:\n  - name: weeks_ago\n    justification: computed from the request time, same in serving\n",
		  "  - name: weeks_ago\n    source: weeks_ago\n    type: long\n" },
		/* naming the source path is as good as naming the field */
		{ "allow:\n  - {name: user.days_since_install, justification: fixed at install time}\n",
		  "  - name: install_age\n    source: user.days_since_install\n    type: long\n" },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t line;
		char *yaml = default_with("allow: []\n", cases[i].allow, cases[i].append, &line);
		bn_rules *r = load_ok(yaml);
		cr_assert_eq(r->nallow, 1);
		cr_assert_eq(bn_rules_field_count(r), 22);
		cr_assert_not_null(r->allow[0].justification);
		bn_rules_free(r);
		free(yaml);
	}
}

Test(rules, load_file)
{
	bn_rules *r = NULL;
	bn_error err;
	char msg[1024], want[1024];

	cr_assert_eq(bn_rules_load_file(&r, BN_TEST_DATA "/rules/minimal.yaml", &err), BN_OK, "%s", err.message);
	cr_assert_str_eq(bn_rules_source_name(r), BN_TEST_DATA "/rules/minimal.yaml");
	/* sha256sum of the fixture, computed independently */
	cr_assert_str_eq(bn_rules_sha256(r), "b4e4dd0d2c9ec3827449406afe83a45685be00255c89eb080d65ad8384a36b84");
	cr_assert_str_eq(bn_rules_schema_json(r),
			 "{\"type\":\"record\",\"name\":\"Tiny\",\"fields\":[{\"name\":\"id\",\"type\":\"string\"}]}");
	bn_rules_free(r);
	r = NULL;

	cr_assert_eq(bn_rules_load_file(&r, BN_TEST_DATA "/rules/bad_regex.yaml", &err), BN_ERULES);
	cr_assert_null(r);
	bn_error_format(&err, msg, sizeof(msg));
	snprintf(want, sizeof(want), "%s:6:16: invalid regex '(a' at offset 2: missing closing parenthesis",
		 BN_TEST_DATA "/rules/bad_regex.yaml");
	cr_assert_str_eq(msg, want);

	cr_assert_eq(bn_rules_load_file(&r, BN_TEST_DATA "/rules/missing.yaml", &err), BN_EIO);
	cr_assert_null(r);
	bn_error_format(&err, msg, sizeof(msg));
	cr_assert_str_eq(msg, BN_TEST_DATA "/rules/missing.yaml: cannot open: No such file or directory");

	cr_assert_eq(bn_rules_load_file(&r, BN_TEST_DATA "/rules", &err), BN_EIO);
	bn_error_format(&err, msg, sizeof(msg));
	cr_assert_str_eq(msg, BN_TEST_DATA "/rules: cannot read: Is a directory");
}

Test(rules, free_and_accessors_accept_null)
{
	bn_rules_free(NULL);
	cr_assert_null(bn_rules_schema_json(NULL));
	cr_assert_null(bn_rules_sha256(NULL));
	cr_assert_null(bn_rules_source_name(NULL));
	cr_assert_null(bn_rules_field_name(NULL, 0));
	cr_assert_eq(bn_rules_field_count(NULL), 0);
	cr_assert_eq(bn_rules_max_line_bytes(NULL), 0);
}

Test(rules, sha256_vectors)
{
	static const struct {
		const char *in;
		const char *want;
	} cases[] = {
		{ "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" },
		{ "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" },
		/* 448 bits: the length no longer fits in the first padded block */
		{ "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
		  "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1" },
		{ "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
		  "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1" },
	};
	char hex[65];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bn_sha256_hex(hex, cases[i].in, strlen(cases[i].in));
		cr_expect_str_eq(hex, cases[i].want, "input '%s'", cases[i].in);
	}
}

Test(rules, sha256_streaming)
{
	static const unsigned char want[BN_SHA256_SIZE] = {
		0xcd, 0xc7, 0x6e, 0x5c, 0x99, 0x14, 0xfb, 0x92, 0x81, 0xa1, 0xc7, 0xe2, 0x84, 0xd7, 0x3e, 0x67,
		0xf1, 0x80, 0x9a, 0x48, 0xa4, 0x97, 0x20, 0x0e, 0x04, 0x6d, 0x39, 0xcc, 0xc7, 0x11, 0x2c, 0xd0,
	};
	static const size_t chunks[] = { 1, 7, 55, 63, 64, 65, 1000 };
	unsigned char a[1000], d[BN_SHA256_SIZE];
	size_t c;

	/* One million 'a' (FIPS 180-2 vector), fed in chunk sizes that straddle block boundaries. */
	memset(a, 'a', sizeof(a));
	for (c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
		bn_sha256 ctx;
		size_t done = 0;
		bn_sha256_init(&ctx);
		while (done < 1000000) {
			size_t n = 1000000 - done < chunks[c] ? 1000000 - done : chunks[c];
			bn_sha256_update(&ctx, a, n);
			done += n;
		}
		bn_sha256_final(d, &ctx);
		cr_expect_eq(memcmp(d, want, sizeof(want)), 0, "chunk size %zu", chunks[c]);
	}
}

Test(rules, sha256_padding_boundaries)
{
	/* Lengths around the 55/56/64-byte padding edges, checked against sha256sum. */
	static const struct {
		size_t n;
		const char *want;
	} cases[] = {
		{ 55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318" },
		{ 56, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a" },
		{ 63, "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34" },
		{ 64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb" },
	};
	char in[64], hex[65];
	size_t i;

	memset(in, 'a', sizeof(in));
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bn_sha256_hex(hex, in, cases[i].n);
		cr_expect_str_eq(hex, cases[i].want, "length %zu", cases[i].n);
	}
}

Test(rules, schema_golden)
{
	static const char yaml[] =
		"version: 1\n"
		"schema: {name: T, namespace: a.b, doc: \"say \\\"hi\\\"\\n\\\\ \\u0001\"}\n"
		"fields:\n"
		"  - {name: s, source: s, type: string, required: true, doc: \"tab\\there\"}\n"
		"  - {name: d, source: d, type: string, default: \"x\\\"y\"}\n"
		"  - {name: i, source: i, type: int, default: -5}\n"
		"  - {name: f, source: f, type: double, default: 0.1}\n"
		"  - {name: b, source: b, type: boolean, default: false}\n"
		"  - {name: t, source: t, type: timestamp-millis}\n"
		"  - {name: a, source: a, type: array<long>}\n"
		"  - {name: m, source: m, type: map<boolean>}\n"
		"  - {name: r, type: double, ratio: {numerator: x, denominator: y, invalid: -1}}\n";
	static const char want[] =
		"{\"type\":\"record\",\"name\":\"T\",\"namespace\":\"a.b\",\"doc\":\"say \\\"hi\\\"\\n\\\\ \\u0001\","
		"\"fields\":["
		"{\"name\":\"s\",\"doc\":\"tab\\there\",\"type\":\"string\"},"
		"{\"name\":\"d\",\"type\":\"string\",\"default\":\"x\\\"y\"},"
		"{\"name\":\"i\",\"type\":\"int\",\"default\":-5},"
		"{\"name\":\"f\",\"type\":\"double\",\"default\":0.10000000000000001},"
		"{\"name\":\"b\",\"type\":\"boolean\",\"default\":false},"
		"{\"name\":\"t\",\"type\":[\"null\",{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"}],\"default\":null},"
		"{\"name\":\"a\",\"type\":{\"type\":\"array\",\"items\":\"long\"},\"default\":[]},"
		"{\"name\":\"m\",\"type\":{\"type\":\"map\",\"values\":\"boolean\"},\"default\":{}},"
		"{\"name\":\"r\",\"type\":\"double\"}]}";
	bn_rules *r = load_ok(yaml);
	avro_schema_t schema = NULL;

	cr_assert_str_eq(bn_rules_schema_json(r), want);
	cr_assert_eq(avro_schema_from_json_length(want, strlen(want), &schema), 0, "%s", avro_strerror());
	cr_assert_str_eq(avro_schema_name(schema), "T");
	cr_assert_eq(avro_schema_record_size(schema), 9);
	avro_schema_decref(schema);
	bn_rules_free(r);
}

Test(rules, default_schema_reads_in_avro)
{
	static const struct {
		const char *name;
		avro_type_t type;       /* the field's type, or AVRO_UNION for ["null", inner] */
		avro_type_t inner;      /* union branch 1, array items or map values */
	} want[] = {
		{ "event_id", AVRO_STRING, AVRO_STRING },
		{ "ts", AVRO_INT64, AVRO_INT64 },
		{ "exchange", AVRO_UNION, AVRO_STRING },
		{ "installed_apps", AVRO_ARRAY, AVRO_STRING },
		{ "bid_floor", AVRO_UNION, AVRO_DOUBLE },
		{ "device_ctr", AVRO_DOUBLE, AVRO_DOUBLE },
		{ "features", AVRO_MAP, AVRO_DOUBLE },
		{ "click", AVRO_UNION, AVRO_INT32 },
	};
	bn_rules *r = NULL;
	avro_schema_t schema = NULL;
	const char *json;
	size_t i;

	cr_assert_eq(bn_rules_load_default(&r, NULL), BN_OK);
	json = bn_rules_schema_json(r);
	cr_assert_eq(avro_schema_from_json_length(json, strlen(json), &schema), 0, "%s", avro_strerror());
	cr_assert_eq(avro_typeof(schema), AVRO_RECORD);
	cr_assert_str_eq(avro_schema_name(schema), "Impression");
	cr_assert_str_eq(avro_schema_namespace(schema), "ads.bidlog");
	cr_assert_eq(avro_schema_record_size(schema), bn_rules_field_count(r));
	for (i = 0; i < bn_rules_field_count(r); i++)
		cr_expect_str_eq(avro_schema_record_field_name(schema, (int)i), bn_rules_field_name(r, i));
	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		avro_schema_t f = avro_schema_record_field_get(schema, want[i].name);
		cr_assert_not_null(f, "field %s", want[i].name);
		cr_expect_eq(avro_typeof(f), want[i].type, "field %s", want[i].name);
		if (want[i].type == AVRO_UNION) {
			cr_assert_eq(avro_schema_union_size(f), 2);
			cr_expect_eq(avro_typeof(avro_schema_union_branch(f, 0)), AVRO_NULL, "field %s", want[i].name);
			cr_expect_eq(avro_typeof(avro_schema_union_branch(f, 1)), want[i].inner, "field %s", want[i].name);
		} else if (want[i].type == AVRO_ARRAY) {
			cr_expect_eq(avro_typeof(avro_schema_array_items(f)), want[i].inner);
		} else if (want[i].type == AVRO_MAP) {
			cr_expect_eq(avro_typeof(avro_schema_map_values(f)), want[i].inner);
		}
	}
	/* Avro C drops logicalType, so check the text for it. */
	cr_assert_not_null(strstr(json, "{\"name\":\"ts\",\"type\":{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"}}"));
	avro_schema_decref(schema);
	bn_rules_free(r);
}

/* rules/README.md promises its complete example loads: keep the documentation honest. */
Test(rules, readme_example_loads)
{
	FILE *fp = fopen(BN_TEST_DATA "/../../rules/README.md", "rb");
	char *doc, *start, *end, *yaml;
	long size;
	bn_rules *r;
	char msg[1024];

	cr_assert_not_null(fp);
	fseek(fp, 0, SEEK_END);
	size = ftell(fp);
	rewind(fp);
	doc = calloc(1, (size_t)size + 1);
	cr_assert_eq(fread(doc, 1, (size_t)size, fp), (size_t)size);
	fclose(fp);
	start = strstr(doc, "```yaml\n");
	cr_assert_not_null(start);
	start += 8;
	end = strstr(start, "```\n");
	cr_assert_not_null(end);
	*end = '\0';

	r = load_ok(start);
	cr_assert_eq(bn_rules_field_count(r), 9);
	cr_assert_str_eq(field_named(r, "os_family")->chain->steps[2].map[0].from, "ipados");
	bn_rules_free(r);

	/* Without its allow entry, the example's last_click_days_ago must fail. */
	yaml = strdup(start);
	memcpy(strstr(yaml, "  - name: last_click_days_ago\n    justification"), "  - name: last_click_days_agx", 29);
	load_fail(yaml, BN_ERULES, msg, sizeof(msg));
	cr_assert_not_null(strstr(msg, "field 'last_click_days_ago' matches serving_invalid pattern '_ago$' (relative-time)"),
			   "got %s", msg);
	free(yaml);
	free(doc);
}

Test(rules, anchors_and_aliases)
{
	static const char yaml[] =
		HEAD
		"fields:\n"
		"  - {name: a, source: a, type: string, chain: &clean [text, lower]}\n"
		"  - {name: b, source: b, type: string, chain: *clean}\n";
	bn_rules *r = load_ok(yaml);
	cr_assert_eq(r->ninline_chains, 2);
	cr_assert(r->fields[0].chain != r->fields[1].chain);
	cr_assert_eq(r->fields[1].chain->nsteps, 2);
	cr_assert_eq(r->fields[1].chain->steps[1].kind, BN_STEP_LOWER);
	bn_rules_free(r);
}

Test(rules, buffer_need_not_be_terminated)
{
	static const char yaml[] = HEAD FX;
	char *buf = malloc(sizeof(yaml) + 8);
	bn_rules *r = NULL;
	bn_error err;
	char hex[65];

	/* Bytes after size must be ignored, not parsed. */
	memcpy(buf, yaml, sizeof(yaml) - 1);
	memcpy(buf + sizeof(yaml) - 1, "  - : {[", 8);
	cr_assert_eq(bn_rules_load_buffer(&r, buf, sizeof(yaml) - 1, "t.yaml", &err), BN_OK, "%s", err.message);
	bn_sha256_hex(hex, yaml, sizeof(yaml) - 1);
	cr_assert_str_eq(bn_rules_sha256(r), hex);
	cr_assert_eq(bn_rules_field_count(r), 1);
	bn_rules_free(r);
	free(buf);
}

Test(rules, usage_errors)
{
	bn_rules *r = NULL;
	bn_error err;

	cr_assert_eq(bn_rules_load_buffer(NULL, HEAD FX, 5, "t.yaml", &err), BN_EUSAGE);
	cr_assert_str_eq(err.message, "bn_rules_load_buffer: out and text are required");
	cr_assert_eq(bn_rules_load_buffer(&r, NULL, 5, "t.yaml", &err), BN_EUSAGE);
	cr_assert_null(r);
	cr_assert_eq(bn_rules_load_file(&r, NULL, &err), BN_EUSAGE);
	cr_assert_str_eq(err.message, "bn_rules_load_file: out and path are required");
	cr_assert_null(r);
}

/* ---- bn_rules_load_for_avro: the rules of ingest's Avro output, from its headers ---- */

static char avro_dir[512];

static void make_avro_dir(void)
{
	const char *base = getenv("TMPDIR");
	snprintf(avro_dir, sizeof(avro_dir), "%s/test_rules.XXXXXX", base && *base ? base : P_tmpdir);
	cr_assert_not_null(mkdtemp(avro_dir));
}

static void drop_avro_dir(void)
{
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", avro_dir);
	cr_assert_eq(system(cmd), 0);
}

static const char *in_avro_dir(const char *name)
{
	static char paths[8][600];
	static int next;
	char *p = paths[next++ % 8];
	snprintf(p, sizeof(paths[0]), "%s/%s", avro_dir, name);
	return p;
}

/* An Avro container without records whose header has sha (NULL: none), source (NULL: none) and version 0.0.9. */
static const char *header_only(const char *name, const char *sha, const char *source)
{
	const char *path = in_avro_dir(name);
	bn_avro_meta meta[3] = { { "bidnorm.version", "0.0.9" } };
	size_t n = 1;
	bn_avro_writer *w = NULL;
	bn_error err;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	cr_assert(fd >= 0);
	if (sha)
		meta[n++] = (bn_avro_meta){ "bidnorm.rules.sha256", sha };
	if (source)
		meta[n++] = (bn_avro_meta){ "bidnorm.rules.source", source };
	cr_assert_eq(bn_avro_writer_new(&w, fd, path, "{\"type\":\"record\",\"name\":\"R\",\"fields\":[]}", BN_CODEC_NULL,
				       meta, n, &err), BN_OK, "%s", err.message);
	cr_assert_eq(bn_avro_writer_finish(w, &err), BN_OK);
	bn_avro_writer_free(w);
	close(fd);
	return path;
}

static char *shipped_sha(const char *name)
{
	bn_rules *r = NULL;
	cr_assert_eq(bn_rules_load_builtin(&r, name, NULL), BN_OK);
	char *sha = strdup(bn_rules_sha256(r));
	bn_rules_free(r);
	return sha;
}

/* bn_rules_load_for_avro succeeds; returns the loaded rules' source name (static). */
static const char *for_avro_ok(const char *spec, const char *const *paths, size_t n, int allow_mixed)
{
	static char source[600];
	bn_rules *r = NULL;
	bn_error err;
	cr_assert_eq(bn_rules_load_for_avro(&r, spec, paths, n, allow_mixed, &err), BN_OK, "%s: %s", err.source,
		     err.message);
	snprintf(source, sizeof(source), "%s", bn_rules_source_name(r));
	bn_rules_free(r);
	return source;
}

/* bn_rules_load_for_avro fails with code and the formatted message want (the scratch folder written DIR). */
static void for_avro_fails(const char *spec, const char *const *paths, size_t n, int allow_mixed, int code,
			   const char *want)
{
	static int sentinel;
	bn_rules *r = (bn_rules *)&sentinel;
	bn_error err;
	char msg[2048], got[2048] = "";
	cr_assert_eq(bn_rules_load_for_avro(&r, spec, paths, n, allow_mixed, &err), code);
	cr_assert_eq((void *)r, (void *)&sentinel, "*out written on failure");
	bn_error_format(&err, msg, sizeof(msg));
	for (const char *p = msg, *q; *p; p = q + strlen(avro_dir)) {
		q = strstr(p, avro_dir);
		if (!q) {
			strcat(got, p);
			break;
		}
		strncat(got, p, (size_t)(q - p));
		strcat(got, "DIR");
	}
	cr_assert_str_eq(got, want);
}

TestSuite(rules_for_avro, .init = make_avro_dir, .fini = drop_avro_dir);

Test(rules_for_avro, the_header_names_the_rules)
{
	char *openrtb = shipped_sha("openrtb"), *bidlog = shipped_sha("bidlog");
	const char *o = header_only("o.avro", openrtb, "<openrtb>");
	const char *b = header_only("b.avro", bidlog, "<default>");
	const char *none = header_only("none.avro", NULL, NULL);
	/* the hash is the identity: a shipped set's hash loads that set, whatever the header calls it */
	const char *renamed = header_only("renamed.avro", openrtb, "rules/openrtb.yaml");
	const char *old = header_only("old.avro", openrtb, NULL);

	cr_assert_str_eq(for_avro_ok(NULL, (const char *[]){ o }, 1, 0), "<openrtb>");
	cr_assert_str_eq(for_avro_ok(NULL, (const char *[]){ b }, 1, 0), "<default>");
	cr_assert_str_eq(for_avro_ok(NULL, (const char *[]){ renamed, old, o }, 3, 0), "<openrtb>");
	/* files not written by ingest say nothing; with nothing said, the default rules */
	cr_assert_str_eq(for_avro_ok(NULL, (const char *[]){ none, o, none }, 3, 0), "<openrtb>");
	cr_assert_str_eq(for_avro_ok(NULL, (const char *[]){ none }, 1, 0), "<default>");
	cr_assert_str_eq(for_avro_ok(NULL, NULL, 0, 0), "<default>");
	/* --rules that agree with the headers */
	cr_assert_str_eq(for_avro_ok("openrtb", (const char *[]){ o, none }, 2, 0), "<openrtb>");
	free(openrtb);
	free(bidlog);
}

Test(rules_for_avro, a_rule_file_is_loaded_only_when_it_is_still_the_one)
{
	const char *rules_path = in_avro_dir("mine.yaml");
	char *sha;
	bn_rules *r = NULL;
	FILE *f = fopen(rules_path, "w");
	fputs(HEAD FX, f);
	fclose(f);
	cr_assert_eq(bn_rules_load_file(&r, rules_path, NULL), BN_OK);
	sha = strdup(bn_rules_sha256(r));
	bn_rules_free(r);
	const char *in = header_only("mine.avro", sha, rules_path);
	cr_assert_str_eq(for_avro_ok(NULL, &in, 1, 0), rules_path);

	f = fopen(rules_path, "a");
	fputs("# edited\n", f);
	fclose(f);
	cr_assert_eq(bn_rules_load_file(&r, rules_path, NULL), BN_OK);
	char want[1024];
	snprintf(want, sizeof(want), "DIR/mine.avro: written with the rule file 'DIR/mine.yaml' (sha256 %.12s), which has "
		 "changed since (now sha256 %.12s): pass --rules FILE with the rule file it was written with",
		 sha, bn_rules_sha256(r));
	bn_rules_free(r);
	for_avro_fails(NULL, &in, 1, 0, BN_EUSAGE, want);

	unlink(rules_path);
	snprintf(want, sizeof(want), "DIR/mine.avro: written with the rule file 'DIR/mine.yaml' (sha256 %.12s), which "
		 "cannot be read here (cannot open: No such file or directory): pass --rules FILE with that rule file", sha);
	for_avro_fails(NULL, &in, 1, 0, BN_EUSAGE, want);
	free(sha);
}

Test(rules_for_avro, rules_that_cannot_be_found_are_named)
{
	static const char sha_x[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
	char *openrtb = shipped_sha("openrtb");
	char want[1024];

	const char *anon = header_only("anon.avro", sha_x, NULL);
	for_avro_fails(NULL, &anon, 1, 0, BN_EUSAGE,
		       "DIR/anon.avro: written with rules that are not a shipped set (sha256 0123456789ab), and the "
		       "header names no rule file: pass --rules FILE with the rule file it was written with");
	/* the shipped set as another bidnorm shipped it */
	const char *older = header_only("older.avro", sha_x, "<openrtb>");
	snprintf(want, sizeof(want), "DIR/older.avro: written with the shipped rules <openrtb> of bidnorm 0.0.9 (sha256 "
		 "0123456789ab), not this bidnorm's (sha256 %.12s): ingest it again with this bidnorm, or pass --rules FILE "
		 "with the rules it was written with", openrtb);
	for_avro_fails(NULL, &older, 1, 0, BN_EUSAGE, want);
	const char *gone = header_only("gone.avro", sha_x, "<gone>");
	for_avro_fails(NULL, &gone, 1, 0, BN_EUSAGE,
		       "DIR/gone.avro: written with the shipped rules <gone> of bidnorm 0.0.9 (sha256 0123456789ab), which "
		       "this bidnorm does not ship: pass --rules FILE with the rules it was written with");
	const char *missing = in_avro_dir("missing.avro");
	for_avro_fails(NULL, &missing, 1, 0, BN_EIO, "DIR/missing.avro: cannot open: No such file or directory");
	free(openrtb);
}

Test(rules_for_avro, inputs_of_other_rules_than_each_other_or_than_the_rules_given)
{
	char *openrtb = shipped_sha("openrtb"), *bidlog = shipped_sha("bidlog");
	const char *o = header_only("o.avro", openrtb, "<openrtb>");
	const char *b = header_only("b.avro", bidlog, "<default>");
	char want[1024];

	snprintf(want, sizeof(want), "DIR/b.avro: written with other rules (<default>, sha256 %.12s) than DIR/o.avro "
		 "(<openrtb>, sha256 %.12s): the inputs must share their rules (where mixing is allowed, pass "
		 "--allow-mixed-rules and --rules FILE|NAME)", bidlog, openrtb);
	for_avro_fails(NULL, (const char *[]){ o, b }, 2, 0, BN_EUSAGE, want);
	snprintf(want, sizeof(want), "DIR/b.avro: written with other rules (<default>, sha256 %.12s) than DIR/o.avro "
		 "(<openrtb>, sha256 %.12s): name the rules to use with --rules FILE|NAME", bidlog, openrtb);
	for_avro_fails(NULL, (const char *[]){ o, b }, 2, 1, BN_EUSAGE, want);

	snprintf(want, sizeof(want), "DIR/o.avro: written with other rules (<openrtb>, sha256 %.12s) than --rules bidlog "
		 "(sha256 %.12s): leave out --rules to use the input's own rules (where mixing is allowed, "
		 "--allow-mixed-rules accepts them)", openrtb, bidlog);
	for_avro_fails("bidlog", (const char *[]){ b, o }, 2, 0, BN_EUSAGE, want);
	/* mixing allowed: --rules decides */
	cr_assert_str_eq(for_avro_ok("bidlog", (const char *[]){ b, o }, 2, 1), "<default>");
	/* a --rules that does not load fails as bn_rules_load does */
	for_avro_fails("nope.yaml", &o, 1, 0, BN_EIO, "nope.yaml: cannot open: No such file or directory");
	free(openrtb);
	free(bidlog);
}
