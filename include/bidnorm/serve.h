/* bidnorm/serve.h - the serving API: model inputs computed from raw bid-log JSON by the very code that ingests training data. */
#ifndef BIDNORM_SERVE_H
#define BIDNORM_SERVE_H

#include <stddef.h>
#include <stdint.h>

#include "bidnorm/avro.h"
#include "bidnorm/error.h"
#include "bidnorm/rules.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * How to drive it (a serving process; tools/serve_example.c is a complete one):
 *
 *     bn_rules *rules = NULL;  bn_model *model = NULL;          // once, at start-up
 *     bn_rules_load_default(&rules, &err);
 *     bn_model_load(&model, rules, "vocab/", &err);
 *
 *     bn_encoder *enc = NULL;                                   // once per thread
 *     bn_encoder_new(&enc, model, &err);
 *
 *     rc = bn_encoder_encode_json(enc, json, len, &err);        // per request
 *     if (rc == BN_EREJECT) ...                                 // ingest would reject it too
 *     // rules with rows (openrtb: one per imp): bn_encoder_select_row(enc, i, &err)
 *     // for i < bn_encoder_row_count(enc), then read row i's features
 *     for (size_t f = 0; f < bn_model_feature_count(model); f++)
 *         switch (bn_model_feature_kind(model, f)) {
 *         case BN_FEATURE_CATEGORICAL:      idx = bn_encoder_index(enc, f); ...
 *         case BN_FEATURE_CATEGORICAL_LIST: ids = bn_encoder_indices(enc, f, &n); ...
 *         ...
 *         }
 *
 *     bn_encoder_free(enc); bn_model_free(model); bn_rules_free(rules);
 *
 * The values are those of `bidnorm encode` applied to the output of
 * `bidnorm ingest` for the same line - not by a second implementation but
 * because bn_encoder_encode_json runs the ingest normalizer and `bidnorm
 * encode` runs the same encoder on the normalized records. Training/serving skew can then only come from a
 * serving process that does not use this library; `bidnorm parity` checks
 * logged serving inputs against it.
 *
 * Features. Every output field of the rules that is one of these is a
 * feature, in the rules' field order:
 *   - a string field (or array<string>) with a vocabulary file
 *     VOCAB_DIR/<field>.txt is categorical (a categorical list): the value
 *     becomes its vocabulary index; line k of the file (1-based) is index k,
 *     index 0 means out of vocabulary, null or padding;
 *   - int, long, double, boolean, timestamp-millis and ratio fields are
 *     numeric, map<number> fields numeric maps: their values as normalized;
 *   - a string field without a vocabulary is passed through (event_id).
 * Other fields (an array<string> without a vocabulary, arrays of numbers)
 * are not features.
 *
 * Lists always start with index 0: an empty list is [0], never an empty
 * tensor, and [0, 5, 9] means the two known elements 5 and 9 (index 0 has
 * no meaning, so the padding is the same in training and serving). Elements
 * out of the vocabulary are 0 as well.
 */

/* ---- the model: rules + vocabularies, immutable, shared between threads ---- */

typedef struct bn_model bn_model;

typedef enum bn_feature_kind {
	BN_FEATURE_CATEGORICAL = 1,      /* string -> index (0 = OOV or null) */
	BN_FEATURE_CATEGORICAL_LIST = 2, /* array<string> -> [0, index...] */
	BN_FEATURE_NUMERIC = 3,          /* a number; may be null when the field is nullable */
	BN_FEATURE_NUMERIC_MAP = 4,      /* map<number> -> key/value pairs */
	BN_FEATURE_PASSTHROUGH = 5       /* string without vocabulary -> the normalized string or null */
} bn_feature_kind;

/* The Avro type of a numeric feature's values (and of a numeric map's values). */
typedef enum bn_number_type {
	BN_NUMBER_NONE = 0,              /* not numeric */
	BN_NUMBER_INT = 1,
	BN_NUMBER_LONG = 2,
	BN_NUMBER_DOUBLE = 3,
	BN_NUMBER_BOOLEAN = 4,
	BN_NUMBER_TIMESTAMP_MS = 5       /* long, milliseconds since the epoch */
} bn_number_type;

/*
 * Load the vocabularies of vocab_dir for rules (which must outlive the
 * model). Each DIR/F.txt must belong to a string or array<string> field F
 * and pass the checks of `bidnorm vocab lint` (bn_vocab_lint): no empty
 * line, no duplicate, every token a fixed point of F's normalizer chain.
 * Returns BN_OK; BN_EIO (vocab_dir or a file unreadable; err->source names
 * it); BN_ECORRUPT (the vocabulary is not valid for these rules) with
 * err->source the file and, for a bad token, err->line
 * its line: "no field 'x' in the rules", "field 'bid_floor' is double:
 * vocabularies are for string and array<string> fields", `token "Com.Foo"
 * is not normalized (normalizes to "com.foo")`, `token "x" duplicates
 * line 3`, "empty line: tokens cannot be empty"; BN_ENOMEM. A directory
 * without vocabulary files is valid (no categorical features). *out is set
 * only on success; BN_EUSAGE for a NULL argument. Free with bn_model_free.
 *
 * The text repair version: DIR/manifest.json (what `bidnorm vocab build`
 * writes) records the one its tokens came from ("text_repair"); another
 * version repairs the same raw text into other tokens that lint cannot tell
 * from right ones, so a version other than bn_text_repair_version() is
 * BN_ECORRUPT with err->source the manifest: "vocabulary built with text
 * repair version '1', but this bidnorm repairs text with version '2': the
 * same raw text gives other tokens (training/serving skew); build the
 * vocabulary again from data ingested with this bidnorm". A manifest
 * without the key predates it and had version 1 ("... version '1' (the
 * manifest has no text_repair: it predates the key), ..."); "mixed" is
 * refused too ("'mixed' (inputs of several versions)"). Also BN_ECORRUPT
 * "not a JSON object", "text_repair is not a string"; BN_EIO when the
 * manifest cannot be read. A directory without manifest.json (not made by
 * vocab build) records no version and is loaded as it is.
 *
 * The rules: the manifest also records the rules that ingested the data
 * ("rules_sha256", and "rules_source": "<default>", "<openrtb>" or a rule
 * file's path). Other rules - another bundle chain, say - can make other
 * tokens of the same raw text that are fixed points of both chains, so lint
 * passes and serving looks them up out of vocabulary. A hash other than
 * bn_rules_sha256(rules) is therefore BN_EUSAGE with err->source the
 * manifest: "vocabulary built from data ingested with other rules
 * (<openrtb>, sha256 e699935e5b65) than the rules loaded (<default>, sha256
 * 0ecf2da2892e): the same raw text can give tokens the vocabulary does not
 * hold (training/serving skew, silently out of vocabulary); load the rules
 * the data were ingested with, or build the vocabulary again from data
 * ingested with these; if the rules changed deliberately, allow_other_rules
 * (--allow-other-rules) loads it anyway" (hashes by their first 12 hex
 * digits; the manifest's rules named by its rules_source, else by the
 * shipped set with that hash, else by the hash alone). "mixed" (inputs of
 * several rules) is refused too: "... with several rules (rules_sha256
 * 'mixed'), not only the rules loaded (...): ...". A manifest without
 * rules_sha256, or with "" (inputs not written by ingest), says nothing.
 * Also BN_ECORRUPT "rules_sha256 is not a string", "rules_source is not a
 * string". bn_model_load is bn_model_load_ext with the default options.
 */
int bn_model_load(bn_model **out, const bn_rules *rules, const char *vocab_dir, bn_error *err);

typedef struct bn_model_options {
	/*
	 * Load a vocabulary whose manifest names other rules than `rules` (or
	 * "mixed"): for rules changed deliberately, knowing the tokens they make
	 * may differ from the vocabulary's. The lint checks still apply. Default 0.
	 */
	int allow_other_rules;
} bn_model_options;

/* Set the defaults (all 0). */
void bn_model_options_init(bn_model_options *opt);

/* bn_model_load with options (NULL = the defaults); returns as bn_model_load. */
int bn_model_load_ext(bn_model **out, const bn_rules *rules, const char *vocab_dir, const bn_model_options *opt,
		      bn_error *err);

/* Accepts NULL. Free every encoder of the model first. */
void bn_model_free(bn_model *m);

/* The rules the model was loaded with. */
const bn_rules *bn_model_rules(const bn_model *m);

/* Number of features; their index f (0..count-1) is what the accessors take. */
size_t bn_model_feature_count(const bn_model *m);

/* Name of feature f (the output field name; owned by the model), or NULL when f is out of range. */
const char *bn_model_feature_name(const bn_model *m, size_t f);

/* Kind of feature f (a bn_feature_kind), 0 when f is out of range. */
int bn_model_feature_kind(const bn_model *m, size_t f);

/* Value type of a numeric feature or numeric map (BN_NUMBER_NONE for the others). */
bn_number_type bn_model_feature_number_type(const bn_model *m, size_t f);

/* 1 when a numeric or passthrough feature can be null (a nullable field), else 0. */
int bn_model_feature_nullable(const bn_model *m, size_t f);

/*
 * Tokens in the vocabulary of a categorical (list) feature; 0 for the
 * others. Indices run from 0 to this number: an embedding needs size + 1 rows.
 */
size_t bn_model_vocab_size(const bn_model *m, size_t f);

/* Find a feature by name. Returns BN_OK and *out, or BN_EUSAGE ("no feature 'x' in the model"). */
int bn_model_feature_find(size_t *out, const bn_model *m, const char *name, bn_error *err);

/* The index of token[0..size) in feature f's vocabulary (0 when absent). The token is not normalized. */
uint32_t bn_model_vocab_lookup(const bn_model *m, size_t f, const char *token, size_t size);

/* The token of index (1..vocab size) of feature f, NUL-terminated, owned by the model; NULL otherwise. */
const char *bn_model_vocab_token(const bn_model *m, size_t f, uint32_t index, size_t *size);

/*
 * The Avro schema (JSON) of encoded records, record <rules name>Encoded in
 * the rules' namespace (ads.bidlog.ImpressionEncoded): categorical -> int,
 * categorical list -> array<int> (first element 0), numeric -> the field's
 * own type (["null", T] when nullable), numeric map -> map<T>, passthrough
 * -> ["null","string"]. Owned by the model.
 */
const char *bn_model_schema_json(const bn_model *m);

/* SHA-256 (hex) over the vocabulary files (names and contents, in name order). Owned by the model. */
const char *bn_model_vocab_sha256(const bn_model *m);

/* ---- the encoder: per thread ---- */

/*
 * A bn_encoder holds one thread's scratch state (a bn_normalizer) and the
 * encoded values of the last call. Never share one between threads; create
 * one per thread from a shared model. After warm-up (the largest record
 * seen) no call allocates.
 */
typedef struct bn_encoder bn_encoder;

/* Returns BN_OK or BN_ENOMEM. The model must outlive the encoder. Free with bn_encoder_free. */
int bn_encoder_new(bn_encoder **out, const bn_model *model, bn_error *err);

/* Accepts NULL. */
void bn_encoder_free(bn_encoder *e);

/*
 * Normalize one raw JSON object json[0..len) (a bid-log v1 record, or any
 * subset of one: missing fields become null, their default or empty, as in
 * ingest) exactly as `bidnorm ingest` normalizes a line - a UTF-8 byte
 * order mark at the start dropped (not counted against the line limit),
 * invalid UTF-8 repaired, the same limits, the same rejects - and encode
 * it. json need not be NUL-terminated and is not kept.
 * Returns BN_OK; BN_EREJECT when ingest would reject the line (err->reason,
 * err->field, err->column and err->message as in the reject file, e.g.
 * reason BN_REJECT_MISSING_REQUIRED, field "ts", "missing required field");
 * BN_ENOMEM. After a failure the accessors return nulls and zeros.
 */
int bn_encoder_encode_json(bn_encoder *e, const char *json, size_t len, bn_error *err);

/*
 * Rules with 'rows' (the shipped openrtb rules: one record per imp) make
 * several records of one request. bn_encoder_encode_json encodes row 0;
 * bn_encoder_row_count gives the number of rows of the last request (1 for
 * rules without rows, 0 after a failure), bn_encoder_select_row(e, i, err)
 * normalizes and encodes row i of that request (the encoder keeps a copy of
 * it), after which the accessors return row i's values; bn_encoder_row says
 * which row they belong to. select_row returns BN_OK; BN_EREJECT when that
 * row's fields are rejected (err as for a line; ingest rejects the whole
 * request then, so such a request has no training rows); BN_EUSAGE when i is
 * not below the row count; BN_ENOMEM. No allocation after warm-up.
 */
size_t bn_encoder_row_count(const bn_encoder *e);
int bn_encoder_select_row(bn_encoder *e, size_t row, bn_error *err);
size_t bn_encoder_row(const bn_encoder *e);

/*
 * Encode one record already normalized by `bidnorm ingest`: its Avro binary
 * encoding in the rules' schema (bn_rules_schema_json), starting at *p and
 * not past end; *p is advanced past it. Every string is checked to be a
 * fixed point of its field's chain (normalizing a normalized value changes
 * nothing), so the values are the ones bn_encoder_encode_json gives for the
 * raw line. Returns BN_OK; BN_ECORRUPT (the bytes are not such a record:
 * "truncated record", "invalid UTF-8 in field 'x'", ...); BN_EINTERNAL
 * ("field 'x': "A" is not normalized (normalizes to "B")": written by other
 * rules or a bug); BN_ENOMEM.
 */
int bn_encoder_encode_avro(bn_encoder *e, const char **p, const char *end, bn_error *err);

/*
 * Accessors for the last encoded record. Feature f must be of the kind
 * named; otherwise (or before the first success, or after a failure) they
 * return 0, NULL or an empty list. Everything returned is owned by the
 * encoder and valid until its next encode call.
 */

/* Categorical: the vocabulary index (0 = out of vocabulary or null). */
uint32_t bn_encoder_index(const bn_encoder *e, size_t f);

/* Categorical list: *count indices, indices[0] == 0 always (count >= 1). */
const uint32_t *bn_encoder_indices(const bn_encoder *e, size_t f, size_t *count);

/*
 * Numeric: the value as a double (*is_null set when null; is_null may be
 * NULL). int, long, boolean and timestamp values convert exactly up to 2^53;
 * use bn_encoder_integer for them.
 */
double bn_encoder_number(const bn_encoder *e, size_t f, int *is_null);

/* Numeric of an integer type (int, long, boolean 0/1, timestamp-millis): the exact value. */
int64_t bn_encoder_integer(const bn_encoder *e, size_t f, int *is_null);

/* Numeric map: number of entries (keys unique, in input order). */
size_t bn_encoder_map_count(const bn_encoder *e, size_t f);

/* Numeric map: entry i's value, and its key (NUL-terminated) in *key / *key_size (either may be NULL). */
double bn_encoder_map_entry(const bn_encoder *e, size_t f, size_t i, const char **key, size_t *key_size);

/* Passthrough: the normalized string (NUL-terminated, *size bytes; size may be NULL), or NULL when null. */
const char *bn_encoder_string(const bn_encoder *e, size_t f, size_t *size);

/* ---- bidnorm encode: clean Avro -> encoded Avro ---- */

typedef struct bn_encode_options {
	const bn_model *model;
	const char *const *inputs;  /* Avro files written by `bidnorm ingest` with the model's rules */
	size_t ninputs;
	const char *output;         /* written atomically (temporary name, fsync, rename); "-" = stdout */
	bn_codec codec;             /* default BN_CODEC_ZSTANDARD */
	int codec_level;            /* 0 = the codec's default */
	size_t block_bytes;         /* uncompressed block size (default 1 MiB) */
} bn_encode_options;

void bn_encode_options_init(bn_encode_options *opt);

typedef struct bn_encode_summary {
	uint64_t records;           /* records written */
	uint64_t bytes_written;     /* size of the output */
} bn_encode_summary;

/*
 * Read every input and write one Avro container of encoded records (schema
 * bn_model_schema_json; header metadata bidnorm.version, bidnorm.rules.sha256,
 * bidnorm.vocab.sha256, bidnorm.sources). Every input's header is checked
 * before anything is written. Returns BN_OK; BN_EUSAGE (no input, or
 * "x.avro: written with other rules (rules sha256 A, the model's B)" /
 * "...: schema is not the rules' schema" / "...: written with text repair
 * version '1', but this bidnorm repairs text with version '2': the same raw
 * text gives other tokens (training/serving skew); ingest it again with
 * this bidnorm" - its strings are fixed points of both versions, so encoding
 * would not notice; a header without bidnorm.text_repair is version 1:
 * "'1' (the header has no bidnorm.text_repair: written before it was
 * recorded, or not by bidnorm ingest)"); BN_EIO; BN_ECORRUPT
 * (err->source names the file, the message the block or record);
 * BN_EINTERNAL; BN_ENOMEM. On failure nothing is published. sum may be NULL.
 */
int bn_encode_files(bn_encode_summary *sum, const bn_encode_options *opt, bn_error *err);

/* ---- bidnorm parity: logged serving inputs against the library ---- */

/*
 * How to drive it (what `bidnorm parity` does):
 *
 *     bn_parity *p = NULL;
 *     bn_parity_new(&p, model, 3, &err);
 *     for each line of each log:
 *         bn_parity_add(p, "serve.log", line_number, line, len, &err);
 *     bn_parity_report(&text, &failed, p, max_rate, json, &err);   // free(text)
 *     bn_parity_free(p);
 *
 * A log line is one JSON object {"raw": {...}, "encoded": {...}}: the raw
 * request as serving received it and the features serving fed the model,
 * by feature name: categorical -> index, list -> [indices], numeric ->
 * number or null, numeric map -> {key: number}, passthrough -> string or
 * null. Each feature present in "encoded" is compared with what
 * bn_encoder_encode_json computes from "raw": indices and integers exactly,
 * doubles bitwise (so -0 differs from 0; both null is equal), maps as sets
 * of keys with their values, strings byte for byte. Names that are not
 * features of the model are counted apart.
 */
typedef struct bn_parity bn_parity;

/* max_examples: mismatches kept per feature (with their traces). Returns BN_OK or BN_ENOMEM. */
int bn_parity_new(bn_parity **out, const bn_model *model, size_t max_examples, bn_error *err);

/* Accepts NULL. */
void bn_parity_free(bn_parity *p);

/*
 * Check one log line {"raw": REQUEST, "encoded": {FEATURE: VALUE...}, "row": N}
 * (source and line are for the report and for err). "row", for rules with
 * rows, says which row of the request was served (default 0).
 * Returns BN_OK or BN_ENOMEM. A raw record the rules reject is counted and
 * reported, not an error; so is a line that is not a parity record (invalid
 * JSON, or not an object with "raw" and "encoded" objects, or a "row" that is
 * not a row of the request): it is counted as malformed, and the report lists the first ones with source:line[:column]
 * and the reason. One torn line in a day of logs does not stop the check;
 * their share fails the report like a mismatch rate.
 */
int bn_parity_add(bn_parity *p, const char *source, uint64_t line, const char *text, size_t size, bn_error *err);

/*
 * Count a line the caller found unusable before parsing it (e.g. longer than
 * its line limit) as malformed, with reason (copied). column 0 = none; text
 * may be NULL, else its first 1,024 bytes are kept for the report.
 * Returns BN_OK or BN_ENOMEM.
 */
int bn_parity_add_malformed(bn_parity *p, const char *source, uint64_t line, uint32_t column, const char *reason,
			    const char *text, size_t size, bn_error *err);

/* Records checked, records whose raw object the rules reject, and lines that were not parity records. */
uint64_t bn_parity_records(const bn_parity *p);
uint64_t bn_parity_rejected(const bn_parity *p);
uint64_t bn_parity_malformed(const bn_parity *p);

/* For feature f: records where it was logged and compared, and those that differed. */
void bn_parity_counts(const bn_parity *p, size_t f, uint64_t *compared, uint64_t *mismatched);

/*
 * The report: per feature compared, mismatched and the mismatch rate, then
 * the first examples of each mismatching feature (raw value, served value,
 * expected value, and the normalization trace of the expected one), records
 * the rules reject, and logged names that are not features. Human-readable,
 * or one JSON object when json != 0. *failed is 0 when the check passes,
 * else the BN_PARITY_FAILED_* bits of what exceeded max_mismatch_rate: a
 * feature's mismatch rate, the share of records whose raw object the rules
 * reject, the share of malformed lines.
 * *out_text is the caller's to free(). Returns BN_OK or BN_ENOMEM.
 */
enum {
	BN_PARITY_FAILED_MISMATCH = 1,
	BN_PARITY_FAILED_REJECTED = 2,
	BN_PARITY_FAILED_MALFORMED = 4
};

int bn_parity_report(char **out_text, int *failed, const bn_parity *p, double max_mismatch_rate, int json,
		     bn_error *err);

#ifdef __cplusplus
}
#endif
#endif
