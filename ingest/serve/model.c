/* model.c - the serving model: which output fields are which kind of feature, their vocabularies as hash tables, the encoded schema. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bidnorm/normalize.h"
#include "bidnorm/vocab.h"
#include "record/json.h"
#include "rules/origin.h"
#include "serve/model.h"
#include "util/buf.h"
#include "util/file.h"
#include "util/jsonw.h"
#include "util/sha256.h"
#include "vocab/dir.h"

static int oom(bn_error *err)
{
	return bn_error_set(err, BN_ENOMEM, "out of memory loading the model");
}

/* *file = "NAME.txt", *path = "DIR/NAME.txt" (both replaced, the old ones freed). */
static int vocab_path(char **path, char **file, const char *dir, const char *name, bn_error *err)
{
	free(*path);
	free(*file);
	*path = NULL;
	*file = malloc(strlen(name) + 5);
	if (!*file)
		return oom(err);
	sprintf(*file, "%s.txt", name);
	*path = bn_path_join(dir, *file);
	return *path ? BN_OK : oom(err);
}

static const char *type_name(const bn_field *fd)
{
	static const char *const names[] = { "string", "int", "long", "double", "boolean", "timestamp-millis" };
	const char *t = fd->type >= BN_T_STRING && fd->type <= BN_T_TIMESTAMP_MS ? names[fd->type - 1] : "?";
	if (fd->is_ratio)
		return "a ratio (double)";
	if (fd->shape == BN_SHAPE_MAP)
		return fd->type == BN_T_STRING ? "map<string>" : "a map";
	if (fd->shape == BN_SHAPE_ARRAY)
		return fd->type == BN_T_STRING ? "array<string>" : "an array of numbers";
	return t;
}

static const bn_field *find_field(const bn_rules *r, const char *name, size_t *index)
{
	for (size_t i = 0; i < r->nfields; i++)
		if (strcmp(r->fields[i].name, name) == 0) {
			*index = i;
			return &r->fields[i];
		}
	return NULL;
}

/* The first problem bn_vocab_lint reports. */
typedef struct first_bad {
	int seen;
	bn_error e;
} first_bad;

static void keep_first(void *ctx, const bn_error *e)
{
	first_bad *fb = ctx;
	if (!fb->seen) {
		fb->seen = 1;
		fb->e = *e;
	}
}

/*
 * Build t from the file bytes in b (taken over). Tokens were linted, but a
 * file may change between lint and load: check again what would corrupt
 * the table (empty and duplicate tokens), with lint's words.
 */
static int vocab_table_build(bn_vocab_table *t, bn_buf *b, const char *path, bn_error *err)
{
	size_t n = 0, cap;

	if (bn_buf_putc(b, '\0') < 0)
		return oom(err);
	b->size--;
	t->text = b->data;
	b->data = NULL;
	b->cap = 0;
	for (size_t i = 0; i < b->size; i++)
		n += t->text[i] == '\n';
	if (b->size && t->text[b->size - 1] != '\n')
		n++;
	if (n >= UINT32_MAX / 2) {
		bn_error_locate(err, path, 0, 0);
		return bn_error_set(err, BN_ECORRUPT, "too many tokens");
	}
	for (cap = 16; cap < 2 * n + 2; cap *= 2)
		;
	t->tokens = calloc(n + 1, sizeof(*t->tokens));
	t->lens = calloc(n + 1, sizeof(*t->lens));
	t->slots = calloc(cap, sizeof(*t->slots));
	if (!t->tokens || !t->lens || !t->slots)
		return oom(err);
	t->mask = cap - 1;
	t->key = bn_hash_process_key();
	char *p = t->text, *end = t->text + b->size;
	for (size_t k = 1; k <= n; k++) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
		p[len] = '\0';
		if (len == 0) {
			bn_error_locate(err, path, k, 0);
			return bn_error_set(err, BN_ECORRUPT, "empty line: tokens cannot be empty");
		}
		uint32_t dup = bn_vocab_table_find(t, p, len);
		if (dup) {
			bn_error_locate(err, path, k, 0);
			return bn_error_set(err, BN_ECORRUPT, "token \"%.100s\" duplicates line %u", p, dup);
		}
		t->tokens[k] = p;
		t->lens[k] = (uint32_t)len;
		uint64_t hv = bn_hash(t->key, p, len);
		size_t h = (size_t)hv & t->mask;
		while (t->slots[h])
			h = (h + 1) & t->mask;
		t->slots[h] = BN_VOCAB_SLOT(hv, k);
		t->ntokens = k;
		p += len + 1;
	}
	return BN_OK;
}

static void vocab_table_free(bn_vocab_table *t)
{
	free(t->text);
	free(t->tokens);
	free(t->lens);
	free(t->slots);
}

static bn_number_type number_type(const bn_field *fd)
{
	if (fd->is_ratio)
		return BN_NUMBER_DOUBLE;
	switch (fd->type) {
	case BN_T_INT: return BN_NUMBER_INT;
	case BN_T_LONG: return BN_NUMBER_LONG;
	case BN_T_DOUBLE: return BN_NUMBER_DOUBLE;
	case BN_T_BOOLEAN: return BN_NUMBER_BOOLEAN;
	case BN_T_TIMESTAMP_MS: return BN_NUMBER_TIMESTAMP_MS;
	default: return BN_NUMBER_NONE;
	}
}

/* Avro spelling of a number type. */
static const char *avro_number(bn_number_type t)
{
	switch (t) {
	case BN_NUMBER_INT: return "\"int\"";
	case BN_NUMBER_LONG: return "\"long\"";
	case BN_NUMBER_BOOLEAN: return "\"boolean\"";
	case BN_NUMBER_TIMESTAMP_MS: return "{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"}";
	default: return "\"double\"";
	}
}

static int build_schema(bn_model *m, bn_error *err)
{
	const bn_rules *r = m->rules;
	bn_buf b = { 0 };
	bn_buf name = { 0 };
	int bad = 0, rc = BN_OK;

	bad |= bn_buf_append(&name, r->schema_name, strlen(r->schema_name));
	bad |= bn_buf_append(&name, "Encoded", 7);
	bad |= bn_jsonw_raw(&b, "{\"type\":\"record\",\"name\":");
	bad |= bn_jsonw_string(&b, name.data, name.size);
	if (r->schema_namespace) {
		bad |= bn_jsonw_raw(&b, ",\"namespace\":");
		bad |= bn_jsonw_cstr(&b, r->schema_namespace);
	}
	bad |= bn_jsonw_raw(&b, ",\"doc\":\"Model inputs encoded by bidnorm: categorical -> vocabulary index "
			    "(0 = out of vocabulary or null), lists start with 0.\",\"fields\":[");
	for (size_t f = 0; f < m->nfeatures; f++) {
		const bn_feature *ft = &m->features[f];
		const char *num = avro_number(ft->number_type);
		bad |= bn_jsonw_raw(&b, f ? ",{\"name\":" : "{\"name\":");
		bad |= bn_jsonw_cstr(&b, ft->field->name);
		bad |= bn_jsonw_raw(&b, ",\"type\":");
		switch (ft->kind) {
		case BN_FEATURE_CATEGORICAL:
			bad |= bn_jsonw_raw(&b, "\"int\"}");
			break;
		case BN_FEATURE_CATEGORICAL_LIST:
			bad |= bn_jsonw_raw(&b, "{\"type\":\"array\",\"items\":\"int\"}}");
			break;
		case BN_FEATURE_NUMERIC:
			if (ft->nullable) {
				bad |= bn_jsonw_raw(&b, "[\"null\",");
				bad |= bn_jsonw_raw(&b, num);
				bad |= bn_jsonw_raw(&b, "],\"default\":null}");
			} else {
				bad |= bn_jsonw_raw(&b, num);
				bad |= bn_jsonw_raw(&b, "}");
			}
			break;
		case BN_FEATURE_NUMERIC_MAP:
			bad |= bn_jsonw_raw(&b, "{\"type\":\"map\",\"values\":");
			bad |= bn_jsonw_raw(&b, num);
			bad |= bn_jsonw_raw(&b, "}}");
			break;
		case BN_FEATURE_PASSTHROUGH:
			bad |= bn_jsonw_raw(&b, "[\"null\",\"string\"],\"default\":null}");
			break;
		}
	}
	bad |= bn_jsonw_raw(&b, "]}");
	bad |= bn_buf_putc(&b, '\0');
	if (bad) {
		rc = oom(err);
		goto cleanup;
	}
	/*
	 * Not parsed back with Avro C here: it segfaults when one of its own
	 * allocations fails, and a serving process must not. The tests read every
	 * encoded file with Avro C and python3-avro.
	 */
	m->schema_json = b.data;
	b.data = NULL;
cleanup:
	bn_buf_free(&b);
	bn_buf_free(&name);
	return rc;
}

/* Decide each output field's kind; vocab_of[i] = 1 when field i has a vocabulary. */
static int build_features(bn_model *m, const unsigned char *vocab_of, bn_error *err)
{
	const bn_rules *r = m->rules;
	m->features = calloc(r->nfields + 1, sizeof(*m->features));
	if (!m->features)
		return oom(err);
	for (size_t i = 0; i < r->nfields; i++) {
		const bn_field *fd = &r->fields[i];
		bn_feature ft = { .field = fd, .field_index = i, .number_type = number_type(fd) };
		if (fd->is_ratio) {
			ft.kind = BN_FEATURE_NUMERIC;
		} else if (fd->shape == BN_SHAPE_SCALAR && fd->type == BN_T_STRING) {
			ft.kind = vocab_of[i] ? BN_FEATURE_CATEGORICAL : BN_FEATURE_PASSTHROUGH;
			ft.nullable = !vocab_of[i] && bn_field_nullable(fd);
		} else if (fd->shape == BN_SHAPE_SCALAR) {
			ft.kind = BN_FEATURE_NUMERIC;
			ft.nullable = bn_field_nullable(fd);
		} else if (fd->shape == BN_SHAPE_ARRAY && fd->type == BN_T_STRING && vocab_of[i]) {
			ft.kind = BN_FEATURE_CATEGORICAL_LIST;
		} else if (fd->shape == BN_SHAPE_MAP && fd->type != BN_T_STRING) {
			ft.kind = BN_FEATURE_NUMERIC_MAP;
		} else {
			continue; /* array<string> without vocabulary, arrays of numbers, map<string>: not model inputs */
		}
		if (ft.kind != BN_FEATURE_NUMERIC && ft.kind != BN_FEATURE_NUMERIC_MAP)
			ft.number_type = BN_NUMBER_NONE;
		m->features[m->nfeatures++] = ft;
	}
	return BN_OK;
}

/*
 * The vocabulary's tokens came out of a text repair version (the manifest's text_repair; a
 * manifest from before the key had version 1, as Avro headers without bidnorm.text_repair):
 * another version here turns the same raw text into other tokens - training/serving skew
 * that no lint can see, as both versions' tokens are fixed points. A directory without a
 * manifest was not made by `vocab build` and says nothing: it is taken as it is.
 */
static int check_text_repair(const char *vocab_dir, const char *manifest, bn_error *err)
{
	char *version = NULL;
	int found, rc;

	rc = bn_vocab_manifest_string(&version, &found, vocab_dir, "text_repair", err);
	if (rc < 0 || found == 0)
		goto cleanup;
	if (strcmp(version ? version : "1", bn_text_repair_version()) != 0) {
		bn_error_locate(err, manifest, 0, 0);
		rc = bn_error_set(err, BN_ECORRUPT,
				  "vocabulary built with text repair version '%s'%s, but this bidnorm repairs text with "
				  "version '%s': the same raw text gives other tokens (training/serving skew); build the "
				  "vocabulary again from data ingested with this bidnorm",
				  version ? version : "1",
				  !version ? " (the manifest has no text_repair: it predates the key)"
				  : strcmp(version, "mixed") == 0 ? " (inputs of several versions)" : "",
				  bn_text_repair_version());
	}
cleanup:
	free(version);
	return rc;
}

/*
 * The vocabulary's tokens are what the rules that ingested its data made of the raw text
 * (the manifest's rules_sha256, rules_source). Other rules - another bundle chain, say - can
 * make other tokens of the same text that are fixed points of both chains, so lint passes and
 * serving silently looks them up out of vocabulary. Refused unless the caller changed the rules
 * deliberately. A manifest without the hash, or with an empty one (inputs not written by
 * ingest), says nothing.
 */
static int check_rules(const char *vocab_dir, const char *manifest, const bn_rules *rules,
		       const bn_model_options *opt, bn_error *err)
{
	char *sha = NULL, *source = NULL;
	char theirs[BN_ERROR_SOURCE_MAX + 32], ours[BN_ERROR_SOURCE_MAX + 32], set[64];
	const char *ours_sha = bn_rules_sha256(rules), *shipped;
	int found, mixed, rc;

	rc = bn_vocab_manifest_string(&sha, &found, vocab_dir, "rules_sha256", err);
	if (rc < 0 || !sha || !sha[0] || strcmp(sha, ours_sha) == 0 || opt->allow_other_rules)
		goto cleanup;
	rc = bn_vocab_manifest_string(&source, &found, vocab_dir, "rules_source", err);
	if (rc < 0)
		goto cleanup;
	shipped = bn_rules_shipped_with_sha(sha);
	if (shipped)
		snprintf(set, sizeof(set), strcmp(shipped, bn_rules_builtin_name(0)) == 0 ? "<default>" : "<%s>", shipped);
	if (!(source && source[0]))
		snprintf(theirs, sizeof(theirs), "%s%ssha256 %.*s", shipped ? set : "", shipped ? ", " : "",
			 BN_RULES_SHA_SHOWN, sha);
	else
		snprintf(theirs, sizeof(theirs), "%.*s, sha256 %.*s", BN_ERROR_SOURCE_MAX - 1, source, BN_RULES_SHA_SHOWN,
			 sha);
	snprintf(ours, sizeof(ours), "%.*s, sha256 %.*s", BN_ERROR_SOURCE_MAX - 1, bn_rules_source_name(rules),
		 BN_RULES_SHA_SHOWN, ours_sha);
	mixed = strcmp(sha, "mixed") == 0;
	bn_error_locate(err, manifest, 0, 0);
	rc = bn_error_set(err, BN_EUSAGE,
			  "vocabulary built from data ingested with %s (%s)%s the rules loaded (%s): the same raw text "
			  "can give tokens the vocabulary does not hold (training/serving skew, silently out of "
			  "vocabulary); load the rules the data were ingested with, or build the vocabulary again from "
			  "data ingested with these; if the rules changed deliberately, allow_other_rules "
			  "(--allow-other-rules) loads it anyway",
			  mixed ? "several rules" : "other rules", mixed ? "rules_sha256 'mixed'" : theirs,
			  mixed ? ", not only" : " than", ours);
cleanup:
	free(sha);
	free(source);
	return rc;
}

void bn_model_options_init(bn_model_options *opt)
{
	memset(opt, 0, sizeof(*opt));
}

int bn_model_load(bn_model **out, const bn_rules *rules, const char *vocab_dir, bn_error *err)
{
	return bn_model_load_ext(out, rules, vocab_dir, NULL, err);
}

int bn_model_load_ext(bn_model **out, const bn_rules *rules, const char *vocab_dir, const bn_model_options *opt_in,
		      bn_error *err)
{
	bn_model_options opt;
	bn_model *m = NULL;
	char **names = NULL, *path = NULL, *file = NULL, *manifest = NULL;
	size_t nnames = 0;
	unsigned char *vocab_of = NULL;
	bn_buf text = { 0 };
	bn_sha256 sha;
	unsigned char digest[BN_SHA256_SIZE];
	int rc;

	if (!out || !rules || !vocab_dir)
		return bn_error_set(err, BN_EUSAGE, "bn_model_load: rules and vocab_dir must not be NULL");
	bn_error_clear(err);
	if (opt_in)
		opt = *opt_in;
	else
		bn_model_options_init(&opt);
	manifest = bn_path_join(vocab_dir, "manifest.json");
	if (!manifest)
		return oom(err);
	rc = check_text_repair(vocab_dir, manifest, err);
	if (rc == BN_OK)
		rc = check_rules(vocab_dir, manifest, rules, &opt, err);
	if (rc < 0)
		goto cleanup;
	rc = bn_vocab_dir_fields(&names, &nnames, vocab_dir, err);
	if (rc < 0)
		goto cleanup;
	rc = BN_ENOMEM;
	m = calloc(1, sizeof(*m));
	vocab_of = calloc(rules->nfields + 1, 1);
	if (!m || !vocab_of) {
		rc = oom(err);
		goto cleanup;
	}
	m->rules = rules;
	for (size_t i = 0; i < nnames; i++) {
		size_t fi;
		const bn_field *fd = find_field(rules, names[i], &fi);
		rc = vocab_path(&path, &file, vocab_dir, names[i], err);
		if (rc < 0)
			goto cleanup;
		if (!fd) {
			bn_error_locate(err, path, 0, 0);
			rc = bn_error_set(err, BN_ECORRUPT, "no field '%s' in the rules", names[i]);
			goto cleanup;
		}
		if (fd->type != BN_T_STRING || fd->is_ratio || fd->shape == BN_SHAPE_MAP) {
			bn_error_locate(err, path, 0, 0);
			rc = bn_error_set(err, BN_ECORRUPT, "field '%s' is %s: vocabularies are for string and array<string> fields",
					  names[i], type_name(fd));
			goto cleanup;
		}
		vocab_of[fi] = 1;
	}
	if (nnames) {
		/* Exactly the check of `bidnorm vocab lint`: every token a fixed point of its field's chain. */
		first_bad fb = { 0 };
		uint64_t nbad = 0;
		rc = bn_vocab_lint(&nbad, vocab_dir, rules, keep_first, &fb, err);
		if (rc < 0)
			goto cleanup;
		if (nbad && fb.seen) {
			bn_error_clear(err);
			bn_error_locate(err, fb.e.source, fb.e.line, 0);
			rc = bn_error_set(err, BN_ECORRUPT, "%s", fb.e.message);
			goto cleanup;
		}
	}
	rc = build_features(m, vocab_of, err);
	if (rc < 0)
		goto cleanup;
	bn_sha256_init(&sha);
	for (size_t i = 0; i < nnames; i++) {
		size_t fi = 0;
		bn_feature *ft = NULL;
		find_field(rules, names[i], &fi);
		for (size_t f = 0; f < m->nfeatures; f++)
			if (m->features[f].field_index == fi)
				ft = &m->features[f];
		rc = vocab_path(&path, &file, vocab_dir, names[i], err);
		if (rc == BN_OK)
			rc = bn_file_read_all(&text, path, err);
		if (rc < 0)
			goto cleanup;
		bn_sha256_update(&sha, file, strlen(file) + 1);
		bn_sha256_update(&sha, text.data, text.size);
		rc = vocab_table_build(&ft->vocab, &text, path, err);
		if (rc < 0)
			goto cleanup;
	}
	bn_sha256_final(digest, &sha);
	for (int i = 0; i < BN_SHA256_SIZE; i++)
		sprintf(m->vocab_sha256 + 2 * i, "%02x", digest[i]);
	rc = build_schema(m, err);
	if (rc < 0)
		goto cleanup;
	*out = m;
	m = NULL;
cleanup:
	bn_model_free(m);
	bn_vocab_names_free(names, nnames);
	free(vocab_of);
	free(path);
	free(file);
	free(manifest);
	bn_buf_free(&text);
	return rc;
}

void bn_model_free(bn_model *m)
{
	if (!m)
		return;
	for (size_t f = 0; m->features && f < m->nfeatures; f++)
		vocab_table_free(&m->features[f].vocab);
	free(m->features);
	free(m->schema_json);
	free(m);
}

const bn_rules *bn_model_rules(const bn_model *m)
{
	return m->rules;
}

size_t bn_model_feature_count(const bn_model *m)
{
	return m->nfeatures;
}

const char *bn_model_feature_name(const bn_model *m, size_t f)
{
	return f < m->nfeatures ? m->features[f].field->name : NULL;
}

int bn_model_feature_kind(const bn_model *m, size_t f)
{
	return f < m->nfeatures ? (int)m->features[f].kind : 0;
}

bn_number_type bn_model_feature_number_type(const bn_model *m, size_t f)
{
	return f < m->nfeatures ? m->features[f].number_type : BN_NUMBER_NONE;
}

int bn_model_feature_nullable(const bn_model *m, size_t f)
{
	return f < m->nfeatures ? m->features[f].nullable : 0;
}

size_t bn_model_vocab_size(const bn_model *m, size_t f)
{
	return f < m->nfeatures ? m->features[f].vocab.ntokens : 0;
}

int bn_model_feature_find(size_t *out, const bn_model *m, const char *name, bn_error *err)
{
	for (size_t f = 0; name && f < m->nfeatures; f++)
		if (strcmp(m->features[f].field->name, name) == 0) {
			*out = f;
			return BN_OK;
		}
	return bn_error_set(err, BN_EUSAGE, "no feature '%s' in the model", name ? name : "(null)");
}

uint32_t bn_model_vocab_lookup(const bn_model *m, size_t f, const char *token, size_t size)
{
	return f < m->nfeatures && token ? bn_vocab_table_find(&m->features[f].vocab, token, size) : 0;
}

const char *bn_model_vocab_token(const bn_model *m, size_t f, uint32_t index, size_t *size)
{
	if (f >= m->nfeatures || index == 0 || index > m->features[f].vocab.ntokens)
		return NULL;
	if (size)
		*size = m->features[f].vocab.lens[index];
	return m->features[f].vocab.tokens[index];
}

const char *bn_model_schema_json(const bn_model *m)
{
	return m->schema_json;
}

const char *bn_model_vocab_sha256(const bn_model *m)
{
	return m->vocab_sha256;
}
