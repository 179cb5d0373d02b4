/* test_serve.c - unit tests of the serving API: model loading and its errors, encoding, parity, allocation and threads. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bidnorm/bidnorm.h"
#include "count_allocs.h"
#include "normalize/record.h"
#include "serve/encoder.h"

static char scratch[512];
static bn_rules *rules;

static void setup(void)
{
	bn_error err;
	const char *base = getenv("TMPDIR");
	snprintf(scratch, sizeof(scratch), "%s/test_serve.XXXXXX", base && *base ? base : P_tmpdir);
	cr_assert_not_null(mkdtemp(scratch));
	cr_assert_eq(bn_rules_load_default(&rules, &err), BN_OK);
}

static void teardown(void)
{
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", scratch);
	cr_assert_eq(system(cmd), 0);
	bn_rules_free(rules);
}

TestSuite(serve, .init = setup, .fini = teardown);

/* Write DIR/name (DIR = scratch/sub, created) with text. Returns DIR. */
static const char *vocab_file(const char *sub, const char *name, const char *text)
{
	static char dir[600];
	char path[700];
	snprintf(dir, sizeof(dir), "%s/%s", scratch, sub);
	mkdir(dir, 0755);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
	return dir;
}

/* The vocabulary of most tests: app_bundle com.foo=1 com.bar=2; installed_apps com.a.b=1 com.c.d=2 com.foo=3. */
static const char *standard_vocab(void)
{
	vocab_file("v", "app_bundle.txt", "com.foo\ncom.bar\n");
	vocab_file("v", "os.txt", "android\nios\n");
	return vocab_file("v", "installed_apps.txt", "com.a.b\ncom.c.d\ncom.foo\n");
}

static bn_model *load(const char *dir)
{
	bn_model *m = NULL;
	bn_error err;
	bn_error_clear(&err);
	int rc = bn_model_load(&m, rules, dir, &err);
	cr_assert_eq(rc, BN_OK, "%s", err.message);
	return m;
}

static size_t feature(const bn_model *m, const char *name)
{
	size_t f = 0;
	cr_assert_eq(bn_model_feature_find(&f, m, name, NULL), BN_OK, "%s", name);
	return f;
}

/* The formatted error of a failing bn_model_load, with DIR replaced by "DIR". */
static void assert_load_error(const char *dir, int code, const char *want)
{
	bn_model *m = NULL;
	bn_error err;
	char msg[2048], got[2048];
	bn_error_clear(&err);
	cr_assert_eq(bn_model_load(&m, rules, dir, &err), code);
	cr_assert_null(m);
	bn_error_format(&err, msg, sizeof(msg));
	const char *p = strstr(msg, dir);
	if (p)
		snprintf(got, sizeof(got), "%.*sDIR%s", (int)(p - msg), msg, p + strlen(dir));
	else
		snprintf(got, sizeof(got), "%s", msg);
	cr_assert_str_eq(got, want);
}

static const char line_full[] =
	"{\"event_id\":\"e1\",\"ts\":\"2026-11-20T12:00:01.123Z\",\"exchange\":\"Unity\","
	"\"app\":{\"bundle\":\"com.foo$hl=en_US\",\"publisher\":\"Dream Games\"},"
	"\"device\":{\"os\":\"Android\",\"installed_apps\":[\"com.c.d\",\"com.zzz.unknown\",\"COM.A.B\"],"
	"\"clicks\":3,\"impressions\":120},"
	"\"bid_floor\":\"0.35\",\"features\":{\"session_depth\":3,\"days_since_last_click\":2},"
	"\"label\":{\"click\":0,\"install\":true}}";

static const char line_min[] = "{\"event_id\":\"e2\",\"ts\":1795158638358}";

Test(serve, model_kinds_names_and_vocab_sizes)
{
	bn_model *m = load(standard_vocab());
	struct { const char *name; int kind; bn_number_type nt; int nullable; size_t vocab; } want[] = {
		{ "event_id", BN_FEATURE_PASSTHROUGH, BN_NUMBER_NONE, 0, 0 },
		{ "ts", BN_FEATURE_NUMERIC, BN_NUMBER_TIMESTAMP_MS, 0, 0 },
		{ "exchange", BN_FEATURE_PASSTHROUGH, BN_NUMBER_NONE, 1, 0 },
		{ "app_bundle", BN_FEATURE_CATEGORICAL, BN_NUMBER_NONE, 0, 2 },
		{ "os", BN_FEATURE_CATEGORICAL, BN_NUMBER_NONE, 0, 2 },
		{ "installed_apps", BN_FEATURE_CATEGORICAL_LIST, BN_NUMBER_NONE, 0, 3 },
		{ "bid_floor", BN_FEATURE_NUMERIC, BN_NUMBER_DOUBLE, 1, 0 },
		{ "device_ctr", BN_FEATURE_NUMERIC, BN_NUMBER_DOUBLE, 0, 0 },
		{ "features", BN_FEATURE_NUMERIC_MAP, BN_NUMBER_DOUBLE, 0, 0 },
		{ "click", BN_FEATURE_NUMERIC, BN_NUMBER_INT, 1, 0 },
	};
	cr_assert_eq(bn_model_feature_count(m), bn_rules_field_count(rules));
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		size_t f = feature(m, want[i].name);
		cr_assert_str_eq(bn_model_feature_name(m, f), want[i].name);
		cr_assert_eq(bn_model_feature_kind(m, f), want[i].kind, "%s", want[i].name);
		cr_assert_eq(bn_model_feature_number_type(m, f), want[i].nt, "%s", want[i].name);
		cr_assert_eq(bn_model_feature_nullable(m, f), want[i].nullable, "%s", want[i].name);
		cr_assert_eq(bn_model_vocab_size(m, f), want[i].vocab, "%s", want[i].name);
	}
	size_t a = feature(m, "installed_apps"), n;
	cr_assert_eq(bn_model_vocab_lookup(m, a, "com.foo", 7), 3);
	cr_assert_eq(bn_model_vocab_lookup(m, a, "com.nope", 8), 0);
	cr_assert_str_eq(bn_model_vocab_token(m, a, 2, &n), "com.c.d");
	cr_assert_eq(n, 7);
	cr_assert_null(bn_model_vocab_token(m, a, 0, NULL));
	cr_assert_null(bn_model_vocab_token(m, a, 4, NULL));
	cr_assert_null(bn_model_feature_name(m, 999));
	cr_assert_eq(bn_model_feature_find(&n, m, "weeks_ago", NULL), BN_EUSAGE);
	cr_assert_eq(strlen(bn_model_vocab_sha256(m)), 64);
	cr_assert_not_null(strstr(bn_model_schema_json(m),
				  "{\"name\":\"installed_apps\",\"type\":{\"type\":\"array\",\"items\":\"int\"}}"));
	cr_assert_not_null(strstr(bn_model_schema_json(m), "\"name\":\"ImpressionEncoded\",\"namespace\":\"ads.bidlog\""));
	bn_model_free(m);
	bn_model_free(NULL);
}

Test(serve, model_without_vocabularies_has_no_categorical_features)
{
	char dir[600];
	snprintf(dir, sizeof(dir), "%s/empty", scratch);
	mkdir(dir, 0755);
	bn_model *m = load(dir);
	cr_assert_eq(bn_model_feature_kind(m, feature(m, "app_bundle")), BN_FEATURE_PASSTHROUGH);
	/* installed_apps without a vocabulary is not a model input */
	cr_assert_eq(bn_model_feature_find(&(size_t){ 0 }, m, "installed_apps", NULL), BN_EUSAGE);
	bn_model_free(m);
}

Test(serve, model_load_errors)
{
	char missing[600];
	snprintf(missing, sizeof(missing), "%s/missing", scratch);
	assert_load_error(missing, BN_EIO, "DIR: cannot open the vocabulary directory: No such file or directory");
	assert_load_error(vocab_file("e1", "weeks_ago.txt", "1\n"), BN_ECORRUPT,
			  "DIR/weeks_ago.txt: no field 'weeks_ago' in the rules");
	assert_load_error(vocab_file("e2", "bid_floor.txt", "1\n"), BN_ECORRUPT,
			  "DIR/bid_floor.txt: field 'bid_floor' is double: vocabularies are for string and array<string> fields");
	assert_load_error(vocab_file("e3", "features.txt", "a\n"), BN_ECORRUPT,
			  "DIR/features.txt: field 'features' is a map: vocabularies are for string and array<string> fields");
	assert_load_error(vocab_file("e4", "device_ctr.txt", "a\n"), BN_ECORRUPT,
			  "DIR/device_ctr.txt: field 'device_ctr' is a ratio (double): vocabularies are for string and array<string> fields");
	assert_load_error(vocab_file("e5", "app_bundle.txt", "com.foo\ncom.bar\ncom.foo\n"), BN_ECORRUPT,
			  "DIR/app_bundle.txt:3: token \"com.foo\" duplicates line 1");
	assert_load_error(vocab_file("e6", "app_bundle.txt", "com.foo\n\ncom.bar\n"), BN_ECORRUPT,
			  "DIR/app_bundle.txt:2: empty line: tokens cannot be empty");
	/* the same check as `bidnorm vocab lint`: a token must be a fixed point of the field's chain */
	char many[4096] = "";
	for (int i = 1; i < 17; i++)
		sprintf(many + strlen(many), "com.app%d\n", i);
	strcat(many, "Com.Foo\n");
	assert_load_error(vocab_file("e7", "app_bundle.txt", many), BN_ECORRUPT,
			  "DIR/app_bundle.txt:17: token \"Com.Foo\" is not normalized (normalizes to \"com.foo\")");
	assert_load_error(vocab_file("e8", "installed_apps.txt", "com.foo$hl=en_US\n"), BN_ECORRUPT,
			  "DIR/installed_apps.txt:1: token \"com.foo$hl=en_US\" is not normalized (normalizes to \"com.foo\")");
	bn_model *m = NULL;
	cr_assert_eq(bn_model_load(&m, NULL, scratch, NULL), BN_EUSAGE);
}

Test(serve, model_load_refuses_a_vocabulary_of_another_text_repair_version)
{
	/* Tokens made by another repair version are fixed points too (lint cannot tell): only the manifest can. */
	static const char skew[] = "but this bidnorm repairs text with version '2': the same raw text gives other tokens "
				   "(training/serving skew); build the vocabulary again from data ingested with this bidnorm";
	char want[1024];
	cr_assert_str_eq(bn_text_repair_version(), "2", "update the messages below with the version");
	vocab_file("r1", "app_bundle.txt", "com.foo\n");
	snprintf(want, sizeof(want), "DIR/manifest.json: vocabulary built with text repair version '1', %s", skew);
	assert_load_error(vocab_file("r1", "manifest.json", "{\"format\": \"bidnorm-vocab\", \"text_repair\": \"1\"}"),
			  BN_ECORRUPT, want);
	/* built before the manifest recorded the version: its inputs had version 1 */
	snprintf(want, sizeof(want), "DIR/manifest.json: vocabulary built with text repair version '1' (the manifest has "
		 "no text_repair: it predates the key), %s", skew);
	assert_load_error(vocab_file("r2", "manifest.json", "{\"format\": \"bidnorm-vocab\"}"), BN_ECORRUPT, want);
	snprintf(want, sizeof(want), "DIR/manifest.json: vocabulary built with text repair version 'mixed' (inputs of "
		 "several versions), %s", skew);
	assert_load_error(vocab_file("r3", "manifest.json", "{\"text_repair\": \"mixed\"}"), BN_ECORRUPT, want);
	assert_load_error(vocab_file("r4", "manifest.json", "{\"text_repair\": 2}"), BN_ECORRUPT,
			  "DIR/manifest.json: text_repair is not a string");
	assert_load_error(vocab_file("r5", "manifest.json", "{\"text_repair\": \"2\""), BN_ECORRUPT,
			  "DIR/manifest.json: not a JSON object");
	/* not a directory: said by the directory reader, not as a manifest problem */
	char file[700];
	snprintf(file, sizeof(file), "%s/app_bundle.txt", vocab_file("r8", "app_bundle.txt", "com.foo\n"));
	assert_load_error(file, BN_EIO, "DIR: cannot open the vocabulary directory: Not a directory");
	/* this version loads; so does a directory without a manifest (not made by vocab build: nothing to compare) */
	bn_model_free(load(vocab_file("r6", "manifest.json", "{\"fields\": {}, \"text_repair\": \"2\"}")));
	bn_model *m = load(vocab_file("r7", "app_bundle.txt", "com.foo\n"));
	cr_assert_eq(bn_model_vocab_size(m, feature(m, "app_bundle")), 1);
	bn_model_free(m);
}

Test(serve, model_load_refuses_a_vocabulary_of_other_rules_unless_allowed)
{
	/*
	 * Tokens made by other rules (another bundle chain, say) can be fixed points of both chains, so
	 * lint passes and serving looks the same raw text up out of vocabulary: only the manifest can tell.
	 */
	static const char tail[] = "the same raw text can give tokens the vocabulary does not hold (training/serving "
				   "skew, silently out of vocabulary); load the rules the data were ingested with, or "
				   "build the vocabulary again from data ingested with these; if the rules changed "
				   "deliberately, allow_other_rules (--allow-other-rules) loads it anyway";
	bn_rules *openrtb = NULL;
	bn_model_options opt;
	bn_model *m = NULL;
	bn_error err;
	char text[512], want[2048], ours[64], o1[600];
	const char *other = "abababababababababababababababababababababababababababababababab";

	cr_assert_eq(bn_rules_load_builtin(&openrtb, "openrtb", &err), BN_OK);
	snprintf(ours, sizeof(ours), "<default>, sha256 %.12s", bn_rules_sha256(rules));
	/* the manifest names no source (written before rules_source): the shipped set with that hash names it */
	snprintf(text, sizeof(text), "{\"text_repair\": \"2\", \"rules_sha256\": \"%s\"}", bn_rules_sha256(openrtb));
	vocab_file("o1", "app_bundle.txt", "com.foo\n");
	snprintf(o1, sizeof(o1), "%s", vocab_file("o1", "manifest.json", text));
	snprintf(want, sizeof(want), "DIR/manifest.json: vocabulary built from data ingested with other rules (<openrtb>, "
		 "sha256 %.12s) than the rules loaded (%s): %s", bn_rules_sha256(openrtb), ours, tail);
	assert_load_error(o1, BN_EUSAGE, want);
	/* a rule file's name, as vocab build records it */
	snprintf(text, sizeof(text), "{\"text_repair\": \"2\", \"rules_sha256\": \"%s\", \"rules_source\": \"mine.yaml\"}",
		 other);
	snprintf(want, sizeof(want), "DIR/manifest.json: vocabulary built from data ingested with other rules (mine.yaml, "
		 "sha256 abababababab) than the rules loaded (%s): %s", ours, tail);
	assert_load_error(vocab_file("o2", "manifest.json", text), BN_EUSAGE, want);
	/* neither: the hash alone */
	snprintf(text, sizeof(text), "{\"text_repair\": \"2\", \"rules_sha256\": \"%s\"}", other);
	snprintf(want, sizeof(want), "DIR/manifest.json: vocabulary built from data ingested with other rules (sha256 "
		 "abababababab) than the rules loaded (%s): %s", ours, tail);
	assert_load_error(vocab_file("o3", "manifest.json", text), BN_EUSAGE, want);
	snprintf(want, sizeof(want), "DIR/manifest.json: vocabulary built from data ingested with several rules "
		 "(rules_sha256 'mixed'), not only the rules loaded (%s): %s", ours, tail);
	assert_load_error(vocab_file("o4", "manifest.json", "{\"text_repair\": \"2\", \"rules_sha256\": \"mixed\"}"),
			  BN_EUSAGE, want);
	assert_load_error(vocab_file("o5", "manifest.json", "{\"text_repair\": \"2\", \"rules_sha256\": 7}"), BN_ECORRUPT,
			  "DIR/manifest.json: rules_sha256 is not a string");
	snprintf(text, sizeof(text), "{\"text_repair\": \"2\", \"rules_sha256\": \"%s\", \"rules_source\": [1]}", other);
	assert_load_error(vocab_file("o6", "manifest.json", text), BN_ECORRUPT,
			  "DIR/manifest.json: rules_source is not a string");
	/* the text repair version is checked first: it has no override */
	snprintf(text, sizeof(text), "{\"text_repair\": \"1\", \"rules_sha256\": \"%s\"}", other);
	assert_load_error(vocab_file("o7", "manifest.json", text), BN_ECORRUPT,
			  "DIR/manifest.json: vocabulary built with text repair version '1', but this bidnorm repairs text "
			  "with version '2': the same raw text gives other tokens (training/serving skew); build the "
			  "vocabulary again from data ingested with this bidnorm");

	/* the rules' own hash, an empty one (inputs not written by ingest) and none at all load */
	snprintf(text, sizeof(text), "{\"text_repair\": \"2\", \"rules_sha256\": \"%s\"}", bn_rules_sha256(rules));
	bn_model_free(load(vocab_file("o8", "manifest.json", text)));
	bn_model_free(load(vocab_file("o9", "manifest.json", "{\"text_repair\": \"2\", \"rules_sha256\": \"\"}")));
	bn_model_free(load(vocab_file("o10", "manifest.json", "{\"text_repair\": \"2\"}")));

	/* deliberately other rules: the override loads, and the lint checks still apply */
	bn_model_options_init(&opt);
	cr_assert_eq(opt.allow_other_rules, 0);
	cr_assert_eq(bn_model_load_ext(&m, rules, o1, NULL, &err), BN_EUSAGE);
	cr_assert_null(m);
	opt.allow_other_rules = 1;
	cr_assert_eq(bn_model_load_ext(&m, rules, o1, &opt, &err), BN_OK, "%s", err.message);
	cr_assert_eq(bn_model_vocab_size(m, feature(m, "app_bundle")), 1);
	bn_model_free(m);
	m = NULL;
	vocab_file("o1", "app_bundle.txt", "Com.Foo\n");
	cr_assert_eq(bn_model_load_ext(&m, rules, o1, &opt, &err), BN_ECORRUPT);
	cr_assert_str_eq(err.message, "token \"Com.Foo\" is not normalized (normalizes to \"com.foo\")");
	cr_assert_null(m);
	bn_rules_free(openrtb);
}

static bn_encoder *encoder(const bn_model *m)
{
	bn_encoder *e = NULL;
	cr_assert_eq(bn_encoder_new(&e, m, NULL), BN_OK);
	return e;
}

static void encode(bn_encoder *e, const char *line)
{
	bn_error err;
	int rc = bn_encoder_encode_json(e, line, strlen(line), &err);
	cr_assert_eq(rc, BN_OK, "%s: %s", err.field, err.message);
}

static void assert_indices(const bn_encoder *e, size_t f, const uint32_t *want, size_t n)
{
	size_t count;
	const uint32_t *got = bn_encoder_indices(e, f, &count);
	cr_assert_eq(count, n);
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(got[i], want[i], "element %zu: %u, not %u", i, got[i], want[i]);
}

Test(serve, encodes_every_kind)
{
	bn_model *m = load(standard_vocab());
	bn_encoder *e = encoder(m);
	int is_null;
	size_t n;
	const char *key;

	encode(e, line_full);
	cr_assert_str_eq(bn_encoder_string(e, feature(m, "event_id"), &n), "e1");
	cr_assert_eq(n, 2);
	cr_assert_str_eq(bn_encoder_string(e, feature(m, "exchange"), NULL), "unity");
	cr_assert_eq(bn_encoder_integer(e, feature(m, "ts"), &is_null), 1795176001123);
	cr_assert_eq(is_null, 0);
	cr_assert_eq(bn_encoder_index(e, feature(m, "os")), 1);
	/* unknown elements are 0, known ones their index, after the leading 0 */
	assert_indices(e, feature(m, "installed_apps"), (const uint32_t[]){ 0, 2, 0, 1 }, 4);
	cr_assert_eq(bn_encoder_number(e, feature(m, "bid_floor"), &is_null), 0.35);
	cr_assert_eq(is_null, 0);
	cr_assert_eq(bn_encoder_number(e, feature(m, "device_ctr"), NULL), 3.0 / 120.0);
	size_t feats = feature(m, "features");
	cr_assert_eq(bn_encoder_map_count(e, feats), 1); /* days_since_last_click is serving-invalid */
	cr_assert_eq(bn_encoder_map_entry(e, feats, 0, &key, &n), 3.0);
	cr_assert_str_eq(key, "session_depth");
	cr_assert_eq(bn_encoder_integer(e, feature(m, "install"), NULL), 1);
	/* wrong kind or out of range: zeros */
	cr_assert_eq(bn_encoder_index(e, feature(m, "ts")), 0);
	cr_assert_eq(bn_encoder_map_entry(e, feats, 5, &key, &n), 0.0);
	cr_assert_null(key);

	/* a subset of a record: missing fields as in ingest */
	encode(e, line_min);
	cr_assert_eq(bn_encoder_index(e, feature(m, "app_bundle")), 0);
	bn_encoder_number(e, feature(m, "bid_floor"), &is_null);
	cr_assert_eq(is_null, 1);
	cr_assert_null(bn_encoder_string(e, feature(m, "exchange"), &n));
	cr_assert_eq(n, 0);
	cr_assert_eq(bn_encoder_map_count(e, feats), 0);
	bn_encoder_integer(e, feature(m, "click"), &is_null);
	cr_assert_eq(is_null, 1);
	bn_encoder_free(e);
	bn_encoder_free(NULL);
	bn_model_free(m);
}

/* Incident 2: serving padded empty lists with [0] where 0 was a real app; here 0 means nothing and leads every list. */
Test(serve, incident2_empty_and_missing_lists_encode_as_0)
{
	bn_model *m = load(standard_vocab());
	bn_encoder *e = encoder(m);
	size_t f = feature(m, "installed_apps");
	encode(e, "{\"event_id\":\"a\",\"ts\":1,\"device\":{\"installed_apps\":[]}}");
	assert_indices(e, f, (const uint32_t[]){ 0 }, 1);
	encode(e, line_min);
	assert_indices(e, f, (const uint32_t[]){ 0 }, 1);
	encode(e, "{\"event_id\":\"a\",\"ts\":1,\"device\":{\"installed_apps\":[null,\"\",\"???\"]}}");
	assert_indices(e, f, (const uint32_t[]){ 0 }, 1);
	encode(e, "{\"event_id\":\"a\",\"ts\":1,\"device\":{\"installed_apps\":[\"com.foo\"]}}");
	assert_indices(e, f, (const uint32_t[]){ 0, 3 }, 2);
	bn_encoder_free(e);
	bn_model_free(m);
}

/* Incident 7: a ratio with a zero denominator was -1 in training and 0 in serving; here it is -1 on both paths. */
Test(serve, incident7_ratio_with_zero_denominator_is_minus_1)
{
	bn_model *m = load(standard_vocab());
	bn_encoder *e = encoder(m);
	size_t f = feature(m, "device_ctr");
	encode(e, "{\"event_id\":\"a\",\"ts\":1,\"device\":{\"clicks\":0,\"impressions\":0}}");
	cr_assert_eq(bn_encoder_number(e, f, NULL), -1.0);
	encode(e, line_min);
	cr_assert_eq(bn_encoder_number(e, f, NULL), -1.0);
	encode(e, "{\"event_id\":\"a\",\"ts\":1,\"device\":{\"clicks\":1,\"impressions\":4}}");
	cr_assert_eq(bn_encoder_number(e, f, NULL), 0.25);
	bn_encoder_free(e);
	bn_model_free(m);
}

/* Incident 8: "com.foo$hl=en_US" was OOV in one pipeline; the one bundle chain makes it com.foo's index. */
Test(serve, incident8_bundle_suffix_gets_the_bundle_index)
{
	bn_model *m = load(standard_vocab());
	bn_encoder *e = encoder(m);
	size_t f = feature(m, "app_bundle");
	const char *raw[] = { "com.foo$hl=en_US", "https://play.google.com/store/apps/details?id=com.foo&hl=en",
			      "COM.FOO", "com.foo?utm=x", "\\uff43om.foo" };
	for (size_t i = 0; i < sizeof(raw) / sizeof(raw[0]); i++) {
		char line[512];
		snprintf(line, sizeof(line), "{\"event_id\":\"a\",\"ts\":1,\"app\":{\"bundle\":\"%s\"}}", raw[i]);
		encode(e, line);
		cr_assert_eq(bn_encoder_index(e, f), 1, "%s", raw[i]);
	}
	bn_encoder_free(e);
	bn_model_free(m);
}

static void assert_reject(bn_encoder *e, const char *line, size_t len, int reason, const char *field, const char *msg)
{
	bn_error err;
	int is_null;
	cr_assert_eq(bn_encoder_encode_json(e, line, len, &err), BN_EREJECT);
	cr_assert_eq(err.code, BN_EREJECT);
	cr_assert_eq(err.reason, reason, "%s", bn_reject_reason_name(err.reason));
	cr_assert_str_eq(err.field, field);
	cr_assert_str_eq(err.message, msg);
	/* after a failure the accessors give nothing */
	bn_encoder_number(e, 1, &is_null);
	cr_assert_eq(is_null, 1);
}

Test(serve, rejects_what_ingest_rejects)
{
	bn_model *m = load(standard_vocab());
	bn_encoder *e = encoder(m);
	const char *l;
	l = "{\"event_id\":\"a\"}";
	assert_reject(e, l, strlen(l), BN_REJECT_MISSING_REQUIRED, "ts", "missing required field");
	l = "{\"event_id\":\"a\",\"ts\":\"yesterday\"}";
	assert_reject(e, l, strlen(l), BN_REJECT_INVALID_VALUE, "ts",
		      "not an ISO-8601 time or epoch number: \"yesterday\"");
	l = "{\"event_id\":\"a\",";
	assert_reject(e, l, strlen(l), BN_REJECT_INVALID_JSON, "", "invalid JSON: unexpected end of input");
	l = "[1]";
	assert_reject(e, l, strlen(l), BN_REJECT_NOT_OBJECT, "", "not a JSON object: got an array");
	size_t big = bn_rules_max_line_bytes(rules) + 1;
	char *huge = malloc(big);
	memset(huge, ' ', big);
	assert_reject(e, huge, big, BN_REJECT_LINE_TOO_LONG, "", "line of 1048577 bytes exceeds limits.max_line_bytes (1048576)");
	free(huge);
	/* invalid UTF-8 is repaired as ingest's reader does (0xE3 as Windows-1252: a-tilde) */
	size_t f = feature(m, "exchange");
	encode(e, "{\"event_id\":\"a\",\"ts\":1,\"exchange\":\"S\xe3o\"}");
	cr_assert_str_eq(bn_encoder_string(e, f, NULL), "s\xc3\xa3o");
	/* a byte order mark at the start is dropped as ingest's reader drops it, and not counted in the size;
	 * a second one is data */
	encode(e, "\xEF\xBB\xBF{\"event_id\":\"a\",\"ts\":1,\"exchange\":\"Unity\"}");
	cr_assert_str_eq(bn_encoder_string(e, f, NULL), "unity");
	l = "\xEF\xBB\xBF\xEF\xBB\xBF{\"event_id\":\"a\",\"ts\":1}";
	assert_reject(e, l, strlen(l), BN_REJECT_INVALID_JSON, "", "invalid JSON: unexpected byte 0xEF");
	huge = malloc(big + 3);
	memcpy(huge, "\xEF\xBB\xBF", 3);
	memset(huge + 3, ' ', big);
	assert_reject(e, huge, big + 3, BN_REJECT_LINE_TOO_LONG, "",
		      "line of 1048577 bytes exceeds limits.max_line_bytes (1048576)");
	free(huge);
	bn_encoder_free(e);
	bn_model_free(m);
}

/* The Avro record that `bidnorm ingest` writes for line. */
static void ingest_record(bn_buf *out, const char *line)
{
	bn_normalizer *n = NULL;
	cr_assert_eq(bn_normalizer_new(&n, rules, NULL), BN_OK);
	cr_assert_eq(bn_normalize_line(n, line, strlen(line), NULL), BN_OK);
	cr_assert_eq(bn_record_encode(n, out), BN_OK);
	bn_normalizer_free(n);
}

Test(serve, encode_avro_of_the_ingested_record_equals_encode_json)
{
	bn_model *m = load(standard_vocab());
	bn_encoder *a = encoder(m), *b = encoder(m);
	const char *lines[] = { line_full, line_min,
				"{\"event_id\":\"x\",\"ts\":5,\"device\":{\"installed_apps\":[\"com.foo\",\"com.foo\"]}}" };
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		bn_buf rec = { 0 };
		bn_buf ja = { 0 }, jb = { 0 };
		ingest_record(&rec, lines[i]);
		encode(a, lines[i]);
		const char *p = rec.data;
		cr_assert_eq(bn_encoder_encode_avro(b, &p, rec.data + rec.size, NULL), BN_OK);
		cr_assert_eq(p, rec.data + rec.size);
		for (size_t f = 0; f < bn_model_feature_count(m); f++) {
			bn_buf_reset(&ja);
			bn_buf_reset(&jb);
			bn_encoder_put_json(a, f, &ja);
			bn_encoder_put_json(b, f, &jb);
			cr_assert_eq(ja.size, jb.size, "%s", bn_model_feature_name(m, f));
			cr_assert_eq(memcmp(ja.data, jb.data, ja.size), 0, "%s", bn_model_feature_name(m, f));
		}
		bn_buf_reset(&ja);
		bn_buf_reset(&jb);
		bn_encoder_put_avro(a, &ja);
		bn_encoder_put_avro(b, &jb);
		cr_assert_eq(ja.size, jb.size);
		cr_assert_eq(memcmp(ja.data, jb.data, ja.size), 0);
		bn_buf_free(&rec);
		bn_buf_free(&ja);
		bn_buf_free(&jb);
	}
	bn_encoder_free(a);
	bn_encoder_free(b);
	bn_model_free(m);
}

Test(serve, encode_avro_refuses_values_that_are_not_normalized_and_corrupt_records)
{
	bn_model *m = load(standard_vocab());
	bn_encoder *e = encoder(m);
	bn_buf rec = { 0 };
	bn_error err;
	ingest_record(&rec, "{\"event_id\":\"e\",\"ts\":1,\"app\":{\"bundle\":\"com.foo\"}}");
	char *hit = memmem(rec.data, rec.size, "com.foo", 7);
	cr_assert_not_null(hit);
	hit[0] = 'C';
	const char *p = rec.data;
	cr_assert_eq(bn_encoder_encode_avro(e, &p, rec.data + rec.size, &err), BN_EINTERNAL);
	cr_assert_str_eq(err.field, "app_bundle");
	cr_assert_str_eq(err.message,
			 "\"Com.foo\" is not normalized (normalizes to \"com.foo\"): written with other rules?");
	cr_assert_eq(p, rec.data);
	p = rec.data;
	cr_assert_eq(bn_encoder_encode_avro(e, &p, rec.data + 5, &err), BN_ECORRUPT);
	cr_assert_str_eq(err.message, "truncated record");
	bn_buf_free(&rec);
	bn_encoder_free(e);
	bn_model_free(m);
}

Test(serve, no_allocation_per_call_after_warm_up)
{
#ifdef COUNT_ALLOCS
	bn_model *m = load(standard_vocab());
	bn_encoder *e = encoder(m);
	bn_buf rec = { 0 };
	bn_error err;
	const char *bad = "{\"event_id\":\"a\"}";
	ingest_record(&rec, line_full);
	for (int round = 0; round < 2; round++) {
		if (round == 1) {
			allocations = 0;
			counting = 1;
		}
		for (int i = 0; i < 100; i++) {
			const char *p = rec.data;
			bn_encoder_encode_json(e, line_full, strlen(line_full), &err);
			bn_encoder_encode_json(e, line_min, strlen(line_min), &err);
			bn_encoder_encode_json(e, bad, strlen(bad), &err);
			bn_encoder_encode_avro(e, &p, rec.data + rec.size, &err);
		}
		counting = 0;
	}
	cr_assert_eq(allocations, 0, "%ld allocations after warm-up", allocations);
	bn_buf_free(&rec);
	bn_encoder_free(e);
	bn_model_free(m);
#else
	cr_skip_test("counting allocations needs glibc and no AddressSanitizer");
#endif
}

typedef struct worker_arg {
	const bn_model *m;
	const char *line;
	uint32_t want_bundle;
	size_t want_apps;
	int failures;
} worker_arg;

static void *worker(void *p)
{
	worker_arg *w = p;
	bn_encoder *e = NULL;
	size_t fb = 0, fa = 0, n;
	bn_model_feature_find(&fb, w->m, "app_bundle", NULL);
	bn_model_feature_find(&fa, w->m, "installed_apps", NULL);
	if (bn_encoder_new(&e, w->m, NULL) < 0) {
		w->failures++;
		return NULL;
	}
	for (int i = 0; i < 20000; i++) {
		if (bn_encoder_encode_json(e, w->line, strlen(w->line), NULL) < 0 ||
		    bn_encoder_index(e, fb) != w->want_bundle)
			w->failures++;
		bn_encoder_indices(e, fa, &n);
		if (n != w->want_apps)
			w->failures++;
	}
	bn_encoder_free(e);
	return NULL;
}

Test(serve, one_model_shared_by_two_threads)
{
	bn_model *m = load(standard_vocab());
	worker_arg a = { m, line_full, 1, 4, 0 };
	worker_arg b = { m, "{\"event_id\":\"b\",\"ts\":2,\"app\":{\"bundle\":\"com.bar\"}}", 2, 1, 0 };
	pthread_t ta, tb;
	cr_assert_eq(pthread_create(&ta, NULL, worker, &a), 0);
	cr_assert_eq(pthread_create(&tb, NULL, worker, &b), 0);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	cr_assert_eq(a.failures, 0);
	cr_assert_eq(b.failures, 0);
	bn_model_free(m);
}

static void parity_line(bn_parity *p, uint64_t n, const char *raw, const char *encoded)
{
	char line[4096];
	bn_error err;
	snprintf(line, sizeof(line), "{\"raw\":%s,\"encoded\":%s}", raw, encoded);
	cr_assert_eq(bn_parity_add(p, "serve.log", n, line, strlen(line), &err), BN_OK, "%s", err.message);
}

static void assert_counts(const bn_parity *p, const bn_model *m, const char *name, uint64_t compared,
			  uint64_t mismatched)
{
	uint64_t c, mm;
	bn_parity_counts(p, feature(m, name), &c, &mm);
	cr_assert_eq(c, compared, "%s compared %llu", name, (unsigned long long)c);
	cr_assert_eq(mm, mismatched, "%s mismatched %llu", name, (unsigned long long)mm);
}

Test(serve, parity_finds_each_incident_on_its_feature_only)
{
	bn_model *m = load(standard_vocab());
	bn_parity *p = NULL;
	char *text = NULL;
	int failed;
	cr_assert_eq(bn_parity_new(&p, m, 2, NULL), BN_OK);
	const char *raw = "{\"event_id\":\"a\",\"ts\":1,\"app\":{\"bundle\":\"com.foo$hl=en_US\"},"
			  "\"device\":{\"installed_apps\":[],\"clicks\":0,\"impressions\":0},\"bid_floor\":0.1}";
	/* all right */
	parity_line(p, 1, raw, "{\"event_id\":\"a\",\"app_bundle\":1,\"installed_apps\":[0],\"device_ctr\":-1,"
			       "\"bid_floor\":0.10000000000000001,\"features\":{},\"click\":null}");
	/* incident 2: the empty list served as [] */
	parity_line(p, 2, raw, "{\"installed_apps\":[]}");
	/* incident 7: 0/0 served as 0 */
	parity_line(p, 3, raw, "{\"device_ctr\":0}");
	/* incident 8: the bundle with its suffix looked up as is: OOV */
	parity_line(p, 4, raw, "{\"app_bundle\":0}");
	/* doubles bitwise: -0 is not 0; not a feature: counted apart */
	parity_line(p, 5, "{\"event_id\":\"a\",\"ts\":1,\"bid_floor\":0}", "{\"bid_floor\":-0,\"weeks_ago\":0}");
	/* a raw record the rules reject */
	parity_line(p, 6, "{\"event_id\":\"a\"}", "{\"app_bundle\":0}");
	cr_assert_eq(bn_parity_records(p), 6);
	cr_assert_eq(bn_parity_rejected(p), 1);
	assert_counts(p, m, "installed_apps", 2, 1);
	assert_counts(p, m, "device_ctr", 2, 1);
	assert_counts(p, m, "app_bundle", 2, 1);
	assert_counts(p, m, "bid_floor", 2, 1);
	assert_counts(p, m, "event_id", 1, 0);
	assert_counts(p, m, "features", 1, 0);
	assert_counts(p, m, "click", 1, 0);
	assert_counts(p, m, "os", 0, 0);
	cr_assert_eq(bn_parity_report(&text, &failed, p, 0.5, 0, NULL), BN_OK);
	cr_assert_eq(failed, 0);
	cr_assert_not_null(strstr(text, "app_bundle: 1 of 2 mismatched; first examples:\n"
					"  serve.log:4\n    raw       \"com.foo$hl=en_US\"\n    served    0\n"
					"    expected  1\n    trace     input        \"com.foo$hl=en_US\"\n"), "%s", text);
	cr_assert_not_null(strstr(text, "    raw       {\"device.clicks\":0,\"device.impressions\":0}\n"
					"    served    0\n    expected  -1\n"), "%s", text);
	cr_assert_not_null(strstr(text, "serve.log:6: field 'ts': missing required field (missing_required)"), "%s", text);
	cr_assert_not_null(strstr(text, "weeks_ago (1 records)"), "%s", text);
	free(text);
	cr_assert_eq(bn_parity_report(&text, &failed, p, 0, 1, NULL), BN_OK);
	cr_assert_eq(failed, BN_PARITY_FAILED_MISMATCH | BN_PARITY_FAILED_REJECTED, "1 of 6 rejected is above 0 too");
	cr_assert_not_null(strstr(text, "\"name\":\"installed_apps\",\"kind\":\"categorical_list\",\"compared\":2,"
					"\"mismatched\":1,\"mismatch_rate\":0.5,\"failed\":true,\"examples\":[{\"where\":"
					"\"serve.log:2\",\"raw\":[],\"served\":[],\"expected\":[0],\"trace\":[]}]"), "%s", text);
	free(text);
	bn_parity_free(p);
	bn_parity_free(NULL);
	bn_model_free(m);
}

Test(serve, parity_counts_and_lists_lines_that_are_not_parity_records)
{
	bn_model *m = load(standard_vocab());
	bn_parity *p = NULL;
	bn_error err;
	char *text = NULL;
	int failed = 0;
	cr_assert_eq(bn_parity_new(&p, m, 2, NULL), BN_OK);
	const char *lines[] = { "{\"raw\":{}", "{\"raw\":{},\"encoded\":[]}", "{\"encoded\":{}}" };
	for (size_t i = 0; i < 3; i++)
		cr_assert_eq(bn_parity_add(p, "serve.log", 7 + i, lines[i], strlen(lines[i]), &err), BN_OK);
	cr_assert_eq(bn_parity_add_malformed(p, "serve.log", 10, 0, "line of 9999 bytes is too long", NULL, 0, &err),
		     BN_OK);
	cr_assert_eq(bn_parity_records(p), 0);
	cr_assert_eq(bn_parity_malformed(p), 4);
	cr_assert_eq(bn_parity_report(&text, &failed, p, 0.5, 1, &err), BN_OK);
	cr_assert_eq(failed, BN_PARITY_FAILED_MALFORMED, "4 malformed lines of 4 are above any rate below 1");
	cr_assert(strstr(text, "\"malformed_lines\":4,\"malformed_rate\":1,"), "%s", text);
	/* the first two (--examples 2), with their column when the JSON says where */
	cr_assert(strstr(text, "\"malformed_examples\":[{\"where\":\"serve.log:7:10\",\"reason\":\"invalid JSON: "
				"unexpected end of input\",\"line\":\"{\\\"raw\\\":{}\"},{\"where\":\"serve.log:8\",\"reason\":"
				"\"expected an object with \\\"raw\\\" and \\\"encoded\\\" objects\",\"line\":"
				"\"{\\\"raw\\\":{},\\\"encoded\\\":[]}\"}]"), "%s", text);
	free(text);
	cr_assert_eq(bn_parity_report(&text, &failed, p, 0.5, 0, &err), BN_OK);
	cr_assert(strstr(text, "0 records, 0 rejected by the rules, 4 malformed lines (1.000000 of the lines);"), "%s",
		  text);
	cr_assert(strstr(text, "\nmalformed lines, not parity records (not compared): 4; first examples:\n"
				"  serve.log:7:10: invalid JSON: unexpected end of input\n"
				"  serve.log:8: expected an object with \"raw\" and \"encoded\" objects\n"), "%s", text);
	free(text);
	bn_parity_free(p);
	bn_model_free(m);
}

/* ---- rules with rows: one request, one vector per impression ---- */

static const char ortb_request[] =
	"{\"id\":\"r1\",\"imp\":[{\"id\":\"a\",\"banner\":{\"w\":300,\"h\":250}},"
	"{\"id\":\"b\",\"video\":{\"w\":640,\"h\":480},\"bidfloor\":1.5},{\"id\":\"c\",\"bidfloor\":\"x\"}],"
	"\"app\":{\"bundle\":\"com.foo\"},\"user\":{\"data\":[{\"segment\":[{\"id\":\"s2\"},{\"id\":\"s9\"}]}]}}";

Test(serve, openrtb_rows_are_encoded_one_by_one)
{
	bn_rules *ortb = NULL;
	bn_model *m = NULL;
	bn_encoder *e = NULL;
	bn_error err;
	size_t n;
	int is_null;
	bn_error_clear(&err);
	vocab_file("o", "app_bundle.txt", "com.bar\ncom.foo\n");
	const char *dir = vocab_file("o", "user_segments.txt", "s1\ns2\n");
	cr_assert_eq(bn_rules_load(&ortb, "openrtb", &err), BN_OK, "%s", err.message);
	cr_assert_str_eq(bn_rules_rows(ortb), "imp");
	cr_assert_null(bn_rules_rows(rules));
	cr_assert_eq(bn_model_load(&m, ortb, dir, &err), BN_OK, "%s", err.message);
	cr_assert_eq(bn_encoder_new(&e, m, &err), BN_OK);
	size_t fb = feature(m, "app_bundle"), fs = feature(m, "user_segments"), fi = feature(m, "imp_index"),
	       fw = feature(m, "width"), ff = feature(m, "bidfloor");

	cr_assert_eq(bn_encoder_row_count(e), 0);
	cr_assert_eq(bn_encoder_select_row(e, 0, &err), BN_EUSAGE);
	cr_assert_str_eq(err.message, "bn_encoder_select_row: row 0 of a request with 0 rows");
	cr_assert_eq(bn_encoder_encode_json(e, ortb_request, strlen(ortb_request), &err), BN_OK, "%s", err.message);
	cr_assert_eq(bn_encoder_row_count(e), 3);
	cr_assert_eq(bn_encoder_row(e), 0);
	cr_assert_eq(bn_encoder_integer(e, fi, NULL), 0);
	cr_assert_eq(bn_encoder_integer(e, fw, NULL), 300);
	cr_assert_eq(bn_encoder_index(e, fb), 2);
	const uint32_t *ids = bn_encoder_indices(e, fs, &n);
	cr_assert_eq(n, 3);
	cr_assert(ids[0] == 0 && ids[1] == 2 && ids[2] == 0);
	cr_assert_eq(bn_encoder_select_row(e, 1, &err), BN_OK, "%s", err.message);
	cr_assert_eq(bn_encoder_row(e), 1);
	cr_assert_eq(bn_encoder_integer(e, fi, NULL), 1);
	cr_assert_eq(bn_encoder_integer(e, fw, NULL), 640);
	cr_assert(bn_encoder_number(e, ff, &is_null) == 1.5 && !is_null);
	cr_assert_eq(bn_encoder_index(e, fb), 2);
	cr_assert_eq(bn_encoder_select_row(e, 2, &err), BN_OK, "%s", err.message);
	bn_encoder_number(e, ff, &is_null);
	cr_assert(is_null);
	cr_assert_eq(bn_encoder_select_row(e, 3, &err), BN_EUSAGE);
	cr_assert_str_eq(err.message, "bn_encoder_select_row: row 3 of a request with 3 rows");
	/* a request ingest rejects: no rows */
	cr_assert_eq(bn_encoder_encode_json(e, "{\"id\":\"r\",\"imp\":[]}", 19, &err), BN_EREJECT);
	cr_assert_str_eq(bn_reject_reason_name(err.reason), "empty_rows");
	cr_assert_eq(bn_encoder_row_count(e), 0);
#ifdef COUNT_ALLOCS
	for (int round = 0; round < 2; round++) {
		if (round == 1) {
			allocations = 0;
			counting = 1;
		}
		for (int i = 0; i < 100; i++) {
			bn_encoder_encode_json(e, ortb_request, strlen(ortb_request), &err);
			for (size_t r = 1; r < bn_encoder_row_count(e); r++)
				bn_encoder_select_row(e, r, &err);
		}
		counting = 0;
	}
	cr_assert_eq(allocations, 0, "%ld allocations after warm-up", allocations);
#endif
	bn_encoder_free(e);
	bn_model_free(m);
	bn_rules_free(ortb);
}
