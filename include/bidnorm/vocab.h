/* bidnorm/vocab.h - vocabularies for categorical features: count tokens in clean Avro, select, write, lint, diff, regenerate. */
#ifndef BIDNORM_VOCAB_H
#define BIDNORM_VOCAB_H

#include <stddef.h>
#include <stdint.h>

#include "bidnorm/error.h"
#include "bidnorm/rules.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * How to drive it (what `bidnorm vocab build` does):
 *
 *     const char *fields[] = {"app_bundle", "installed_apps"};
 *     const char *where[] = {"install=1"};
 *     bn_vocab_counter *c = NULL;
 *     bn_vocab_counter_new(&c, fields, 2, where, 1, 0, 0, &err);
 *     bn_vocab_counter_add_avro(c, "day.avro", &err);     // once per input
 *     bn_vocab_write_options opt;
 *     bn_vocab_write_options_init(&opt);
 *     opt.min_count = 20;
 *     bn_vocab_write(&res, c, "vocab/", &opt, on_bad, ctx, &err);
 *     bn_vocab_counter_free(c);
 *
 * A vocabulary directory holds, per field F:
 *   F.txt         one token per line; the token on line k (1-based) has index
 *                 k. Index 0 is reserved for out-of-vocabulary values and
 *                 padding and is not in the file - what Keras
 *                 StringLookup(vocabulary=path, num_oov_indices=1,
 *                 mask_token=None) expects.
 *   F.counts.tsv  "token TAB count" in the same order.
 * and manifest.json: parameters, filters, inputs, rows, per-field
 * statistics, bidnorm version, the text repair version ("text_repair") and
 * rules hash ("rules_sha256") of the inputs, and the name of those rules
 * ("rules_source": "<default>", "<openrtb>" or a rule file's path, as the
 * rules the tokens were linted against are named, when they have that hash).
 *
 * Order: count descending, then token bytes ascending (memcmp; a prefix
 * first), so the same counts always give the same files. Array fields
 * (array<string>) count each distinct element once per record. Nulls are
 * not tokens.
 *
 * Map/reduce: bn_vocab_counter_write_part saves partial counts (the format
 * is described there), bn_vocab_counter_merge_part adds a saved part to a
 * counter; a counter filled from parts can be saved as a part again, so
 * parts merge as a tree. Merging the parts of any split of the inputs, in
 * any order and any tree shape, gives the same vocabulary files and manifest
 * (except "resources") as counting all inputs in one counter: parts and the
 * manifest list the inputs sorted by name (bytes), then identity.
 *
 * Every input has an identity: the first 16 bytes of the SHA-256 of the
 * Avro file's size (8 bytes, little-endian), first 64 KiB and last 64 KiB
 * (the whole file when smaller) - equal only for byte-identical files, in all
 * likelihood. Counting the same file twice - a path given twice, a part
 * merged twice, parts whose inputs overlap - is refused (BN_EUSAGE).
 */

/* ---- counting ---- */

typedef struct bn_vocab_counter bn_vocab_counter;

/*
 * A counter for the string fields fields[0..nfields) (each string,
 * ["null","string"] or array<string> in the inputs' schemas), counting only
 * records that match every filter in where[0..nwhere):
 *   "F=V"   field F is not null and its text is V
 *   "F!=V"  field F is null or its text is not V
 *   "F<V", "F<=V", "F>V", "F>=V"
 *           field F (int, long or timestamp-millis) is not null and less
 *           than, at most, more than, at least the integer V
 *   "F"     field F is not null
 * The text of an int or long (a timestamp: epoch milliseconds) is its
 * decimal form, of a boolean true/false.
 * max_memory: bytes the hash tables and their token storage may use,
 * 0 = unlimited. allow_mixed_rules: accept inputs whose
 * bidnorm.rules.sha256 or bidnorm.text_repair differ (otherwise BN_EUSAGE
 * when they do: either gives other tokens for the same text).
 * nfields == 0 makes an empty counter for bn_vocab_counter_merge_part, which
 * takes fields and filters from the first part. Strings are copied.
 * Returns BN_OK, BN_EUSAGE ("--where 'x': expected FIELD, or FIELD then =,
 * !=, <, <=, > or >= and a VALUE", "field 'x' given twice"), BN_ENOMEM (also when the empty
 * tables already exceed max_memory). Free with bn_vocab_counter_free.
 */
int bn_vocab_counter_new(bn_vocab_counter **out, const char *const *fields, size_t nfields,
			 const char *const *where, size_t nwhere, size_t max_memory, int allow_mixed_rules,
			 bn_error *err);

/*
 * Check and normalize the filters with a VALUE against the fields of
 * rules, before any input is read, so a filter means what it says and never
 * matches no row by accident: a string field's VALUE goes through the
 * field's normalizer chain (os=iOS compares with "ios", the form the Avro
 * holds); an int or long field's VALUE must be a decimal integer of that
 * size (written in its canonical form: 007 -> 7); a timestamp-millis
 * field's is read as the field reads the log's value (an ISO-8601 time with
 * its zone, or epoch seconds below 1e11, else milliseconds) or is a date
 * alone (2026-11-01: its midnight UTC), and becomes epoch milliseconds; a
 * boolean's must be true or false. Fields the rules do not have, and other
 * types, are left to bn_vocab_counter_add_avro, which checks them against
 * the Avro schema (there an ordering filter needs an int or long field and
 * an integer VALUE). Returns BN_OK; BN_EUSAGE: "--where 'click=true': field
 * 'click' is an int, and 'true' is not a 32-bit integer", "--where
 * 'ts>=yesterday': field 'ts' is a timestamp, and 'yesterday' is not one
 * (<why>); give a date (2026-11-01, midnight UTC), an ISO-8601 time with its
 * zone (2026-11-01T12:00:00Z) or epoch milliseconds", "--where 'os>a': field
 * 'os' is string; <, <=, > and >= compare numbers (int, long or timestamp
 * fields)", "--where 'app_bundle=???': '???'
 * normalizes to null in field 'app_bundle', so no row can hold it (use
 * 'app_bundle' for not null)", "--where 'x=v': no row can hold 'v' in
 * field 'x': <why>" (a validate step would reject it), "--where 'b=yes':
 * field 'b' is a boolean: the value must be true or false, not 'yes'";
 * BN_ENOMEM.
 */
int bn_vocab_counter_resolve_where(bn_vocab_counter *c, const bn_rules *rules, bn_error *err);

/*
 * Filter i (0-based, in the order given): the text as given, the value as
 * given (the text after the operator) and the value it compares with (after
 * bn_vocab_counter_resolve_where); NULL for the values of a "F" filter.
 * Owned by the counter. NULL for a bad index.
 */
size_t bn_vocab_counter_where_count(const bn_vocab_counter *c);
const char *bn_vocab_counter_where_text(const bn_vocab_counter *c, size_t i);
const char *bn_vocab_counter_where_given(const bn_vocab_counter *c, size_t i);
const char *bn_vocab_counter_where_value(const bn_vocab_counter *c, size_t i);

/*
 * Count one Avro object container file (any codec: null, deflate, snappy,
 * zstandard). Returns BN_OK; BN_EUSAGE "no field given" for a counter
 * without fields; BN_EIO (cannot open or read: err->source is
 * path); BN_ECORRUPT ("corrupt Avro block at byte offset N: why", or "not an
 * Avro object container file" / "corrupt Avro header: why"); BN_EUSAGE ("no
 * field 'x' in the schema (fields: a, b)", "field 'x' is double;
 * vocabularies need string or array of string fields", a --where field of
 * the wrong type, different rules hashes or text repair versions); BN_ENOMEM ("counting needs
 * more than --max-memory (N bytes) ..."). After a failure the counter holds
 * part of the file and should only be freed.
 */
int bn_vocab_counter_add_avro(bn_vocab_counter *c, const char *path, bn_error *err);

/*
 * Check, before counting (the counter itself accepts any version), that
 * every Avro file paths[0..npaths) was written with this bidnorm's text
 * repair version (bidnorm.text_repair; a file without it counts as version
 * 1, as the counter and manifest record it): a vocabulary of other versions'
 * tokens is refused by bn_model_load. Every header is read, no record.
 * Returns BN_OK; BN_EUSAGE (err->source the file) "written with text repair
 * version '1' (the header has no bidnorm.text_repair: written before it was
 * recorded, or not by bidnorm ingest), but this bidnorm repairs text with
 * version '2': the same raw text gives other tokens (training/serving
 * skew); ingest it again with this bidnorm, or pass
 * --allow-other-text-repair to count it anyway (serving refuses such a
 * vocabulary)"; BN_EIO, BN_ECORRUPT for a file that cannot be opened or is
 * not an Avro container; BN_ENOMEM.
 */
int bn_vocab_check_text_repair(const char *const *paths, size_t npaths, bn_error *err);

/*
 * The same check for `vocab merge`, before merging: every input the partial
 * counts files paths[0..npaths) record (parts keep each input's text repair
 * version; a version-1 part records none, so its inputs count as version 1)
 * must be of this bidnorm's version. Only the parts' headers are read.
 * Returns BN_OK; BN_EUSAGE (err->source the part) "input 'old.avro' was
 * written with text repair version '1', but this bidnorm repairs text with
 * version '2': the same raw text gives other tokens (training/serving
 * skew); ingest it again with this bidnorm and count it again, or pass
 * --allow-other-text-repair to merge it anyway (serving refuses such a
 * vocabulary)" (a version-1 part: "version '1' (a version-1 part, which
 * records no version), but ..."); BN_EIO (cannot open), BN_ECORRUPT (not a
 * part, truncated header) as bn_vocab_counter_merge_part words them.
 */
int bn_vocab_check_parts_text_repair(const char *const *paths, size_t npaths, bn_error *err);

/*
 * bn_vocab_counter_add_avro, recording the input as name (e.g. the object
 * URL a cluster job read) instead of path in parts and the manifest; NULL =
 * path. Error messages name path. Also BN_EUSAGE "input 'N' is already
 * counted (the same Avro file as 'M', by size and content): ..." when the
 * file was counted before.
 */
int bn_vocab_counter_add_avro_named(bn_vocab_counter *c, const char *path, const char *name, bn_error *err);

/*
 * Add count occurrences of token[0..size) to field index `field` (0-based,
 * as given to bn_vocab_counter_new), outside any input file. For tests and
 * for callers that count from another source. BN_EUSAGE for a bad index,
 * BN_ENOMEM.
 */
int bn_vocab_counter_add_token(bn_vocab_counter *c, size_t field, const char *token, size_t size,
			       uint64_t count, bn_error *err);

/*
 * Save the counts to path (written atomically: temporary name, fsync,
 * rename). The "partial counts" format, version 2, all integers unsigned
 * LEB128 varints, all strings a varint length and the bytes:
 *   magic "BNVOCNT2"
 *   nfields, field names; nwhere, filter texts
 *   ninputs, per input (sorted by name, then identity): name, rules sha256,
 *     bidnorm version, text repair version, rows scanned, rows matched,
 *     identity (16 bytes, see above; empty when unknown)
 *   per field: occurrences, distinct, then distinct entries (token, count)
 *     in token byte order
 *   magic "BNVOCEND"
 * Version 1 ("BNVOCNT1") is the same without the identity; it is still
 * read (its inputs are not checked for duplicates).
 * With spilled runs (bn_vocab_counter_spill_to), they are merged into the
 * file as it is written, with what the counter still holds.
 * Returns BN_OK, BN_EIO, BN_ECORRUPT (a spilled run changed), BN_ENOMEM.
 */
int bn_vocab_counter_write_part(bn_vocab_counter *c, const char *path, bn_error *err);

/*
 * Let counting pass max_memory by spilling to disk: when a table would pass
 * the limit, at the end of that record every field's table is written, in
 * token order, to a run file in a new folder
 * DIR/bidnorm-vocab-spill.XXXXXX (DIR NULL = $TMPDIR, else /tmp) and
 * emptied. bn_vocab_write merges the runs back keeping only tokens counted
 * at least min_count times (so the long tail never returns to memory);
 * bn_vocab_counter_write_part streams them into the count file. Runs and
 * folder are removed by bn_vocab_counter_free (and the runs of a field once
 * merged). Output is byte-identical to counting without a limit. Returns
 * BN_OK; BN_EUSAGE "--max-memory N is too small to spill the counts of F
 * fields: give at least M bytes" (each field needs about 2 MiB); BN_ENOMEM.
 * A folder that cannot be made is reported (BN_EIO) at the first spill.
 */
int bn_vocab_counter_spill_to(bn_vocab_counter *c, const char *dir, bn_error *err);

/* Spilled run files written so far (over all fields). */
uint64_t bn_vocab_counter_spilled_runs(const bn_vocab_counter *c);

/*
 * Add the counts saved in part file path. The first part given to a counter
 * created with nfields == 0 sets its fields and filters; every other part
 * must name the same fields and filters (BN_EUSAGE otherwise). BN_EIO,
 * BN_ECORRUPT ("not a bidnorm partial counts file", "truncated ..."),
 * BN_EUSAGE (different rules hashes; "input 'N' is already counted (the
 * same Avro file as 'M', by size and content): a file given twice, a part
 * merged twice or parts sharing an input would count it twice"; err->source
 * is path), BN_ENOMEM.
 */
int bn_vocab_counter_merge_part(bn_vocab_counter *c, const char *path, bn_error *err);

/*
 * The rules the inputs counted so far were written with, to lint the tokens
 * against: the decision of bn_rules_load_for_avro (rules.h), over the rules
 * hashes the counter keeps per input (from Avro headers, or from parts), with
 * the counter's allow_mixed_rules. For `vocab merge`: a part records each
 * input's hash but not the rule file's name, so without spec the hash must be
 * a shipped set's, else BN_EUSAGE "written with rules that are not a shipped
 * set (sha256 H), and partial counts do not name rule files: pass --rules
 * FILE with the rule file it was written with" (err->source: the input's
 * recorded name). spec given: loaded and checked against every hash unless
 * allow_mixed_rules. No input with a hash: the default rules. Returns as
 * bn_rules_load_for_avro; *out is set only on success.
 */
int bn_vocab_counter_load_rules(bn_rules **out, const bn_vocab_counter *c, const char *spec, bn_error *err);

/* Records read, and records that matched the filters, so far. */
uint64_t bn_vocab_counter_rows_scanned(const bn_vocab_counter *c);
uint64_t bn_vocab_counter_rows_matched(const bn_vocab_counter *c);

/* Number of fields; name of field i (owned by the counter); distinct tokens and occurrences of field i. */
size_t bn_vocab_counter_field_count(const bn_vocab_counter *c);
const char *bn_vocab_counter_field_name(const bn_vocab_counter *c, size_t i);
uint64_t bn_vocab_counter_distinct(const bn_vocab_counter *c, size_t i);
uint64_t bn_vocab_counter_occurrences(const bn_vocab_counter *c, size_t i);

/* The count of token in field i (0 when absent). */
uint64_t bn_vocab_counter_get(const bn_vocab_counter *c, size_t i, const char *token, size_t size);

/* Largest number of bytes the tables and token storage have used at once. */
size_t bn_vocab_counter_peak_memory(const bn_vocab_counter *c);

/* Accepts NULL. */
void bn_vocab_counter_free(bn_vocab_counter *c);

/* ---- selection and vocabulary files ---- */

/*
 * Called once per bad token found by lint. e->source is the vocabulary file
 * (DIR/F.txt, DIR as the caller gave it), e->line the token's line (= its
 * index), e->message e.g. `token "Com.Foo" is not normalized (normalizes
 * to "com.foo")`. e is valid only during the call.
 */
typedef void (*bn_vocab_lint_fn)(void *ctx, const bn_error *e);

typedef struct bn_vocab_write_options {
	uint64_t min_count;       /* keep tokens seen at least this often (default 1) */
	uint64_t top_k;           /* keep at most this many per field, 0 = all (default) */
	const char *task;         /* the model/task name for the manifest, NULL = none */
	const bn_rules *rules;    /* rules the tokens must be fixed points of; NULL = the default rules */
	int force;                /* replace an existing directory */
} bn_vocab_write_options;

void bn_vocab_write_options_init(bn_vocab_write_options *opt);

typedef struct bn_vocab_write_result {
	uint64_t lint_failures;   /* > 0: nothing was written */
	uint64_t tokens_written;  /* over all fields */
} bn_vocab_write_result;

/*
 * Select each field's tokens (count >= min_count, then the first top_k in
 * the order above), lint them (as bn_vocab_lint does, reporting to on_bad,
 * which may be NULL), and when all pass write the directory dir atomically:
 * built in "dir.tmp-XXXXXX" beside it, each file fsynced, then renamed to
 * dir (an existing dir is replaced only with opt->force). Returns BN_OK
 * (check out->lint_failures: when nonzero nothing was written), BN_EUSAGE
 * ("DIR: exists (use --force to replace it)"), BN_EREJECTRATE when the
 * counter matched no row: nothing is written ("no row matched the --where
 * filters (N rows scanned): a vocabulary built from zero rows is not
 * published", "the inputs hold no rows: ..."), BN_EIO, BN_ENOMEM. A counter
 * that spilled has its runs merged back first (tokens under min_count are
 * dropped from it then: write it once); BN_ENOMEM "field 'F': the tokens
 * counted at least N times ... do not fit in --max-memory" when even those
 * pass the limit.
 */
int bn_vocab_write(bn_vocab_write_result *out, bn_vocab_counter *c, const char *dir,
		   const bn_vocab_write_options *opt, bn_vocab_lint_fn on_bad, void *ctx, bn_error *err);

/*
 * The checks of bn_vocab_write that need no counts, for a caller to run
 * before it reads any input: BN_OK, or BN_EUSAGE "DIR: exists (use --force
 * to replace it)" (err->source = dir).
 */
int bn_vocab_write_check(const char *dir, const bn_vocab_write_options *opt, bn_error *err);

/*
 * Check every token of every DIR/F.txt: not empty, no duplicate, no leading
 * or trailing white space, valid UTF-8 without control, format or line
 * separator characters or U+FFFD, no tab/CR, and a fixed point of field F's
 * normalizer chain in rules (NULL = the default rules): normalizing it again
 * gives it back, not null. Reports each bad token to on_bad; *out = number
 * of bad tokens. Returns BN_OK (whatever *out is), BN_EIO (DIR or a file
 * unreadable, or no F.txt in it), BN_ENOMEM.
 */
int bn_vocab_lint(uint64_t *out, const char *dir, const bn_rules *rules, bn_vocab_lint_fn on_bad, void *ctx,
		  bn_error *err);

/*
 * The rules to lint dir against (what `vocab lint` uses): spec != NULL
 * loads it as bn_rules_load does (an explicit choice: not checked against
 * the manifest). spec == NULL: the rules dir/manifest.json records -
 * rules_sha256, found as bn_rules_load_for_avro finds an input's rules (the
 * shipped set with that hash, else the rule file rules_source names when it
 * can be read and still has that hash), with its messages and err->source
 * the manifest: "written with rules that are not a shipped set (sha256 H),
 * and the manifest names no rule file: pass --rules FILE with the rule file
 * it was written with", "written with the rule file 'F' (sha256 H), which
 * cannot be read here (...): ...", "... which has changed since (now sha256
 * H2): ...", "written with the shipped rules <openrtb> of bidnorm V ...".
 * "mixed" is BN_EUSAGE "built from inputs of several rules (rules_sha256
 * 'mixed'): pass --rules FILE|NAME with the rules to lint against". No
 * manifest, no rules_sha256 or "" (inputs not written by ingest): the
 * default rules. Also BN_EIO (unreadable manifest), BN_ECORRUPT ("not a
 * JSON object", "rules_sha256 is not a string"), what bn_rules_load
 * returns, BN_ENOMEM. *out is set only on success; free with bn_rules_free.
 */
int bn_vocab_load_rules(bn_rules **out, const char *dir, const char *spec, bn_error *err);

/* ---- comparing and regenerating ---- */

typedef struct bn_vocab_diff_summary {
	double max_churn;           /* over fields in both: share of OLD's indices whose token changed */
	double max_coverage_drop;   /* over fields in both: OLD coverage - NEW coverage (can be negative) */
	char churn_field[BN_ERROR_FIELD_MAX];     /* the field with max_churn */
	char coverage_field[BN_ERROR_FIELD_MAX];  /* the field with max_coverage_drop */
} bn_vocab_diff_summary;

/*
 * Compare two vocabulary directories field by field: tokens added and
 * removed, tokens whose index changed (with the first examples and their
 * counts), overlap, churn, coverage before and after. *out_text receives
 * the report, human-readable or (json != 0) one JSON object; the caller
 * frees it with free(). sum may be NULL. Returns BN_OK, BN_EIO, BN_ECORRUPT
 * (a manifest or counts file that cannot be read), BN_ENOMEM.
 */
int bn_vocab_diff(char **out_text, bn_vocab_diff_summary *sum, const char *old_dir, const char *new_dir,
		  int json, bn_error *err);

typedef struct bn_vocab_regen_options {
	const char *root;           /* ROOT: versions live in ROOT/TASK/<version>/ */
	const char *task;           /* TASK (also written into the manifest) */
	bn_vocab_write_options write; /* min_count, top_k, rules; task and force are set by regen */
	double max_churn;           /* default 0.2 */
	double max_coverage_drop;   /* default 0.05 */
	unsigned keep;              /* versions kept (default 5; the one `current` names is never removed) */
	int force;                  /* switch even when a guardrail refuses */
} bn_vocab_regen_options;

void bn_vocab_regen_options_init(bn_vocab_regen_options *opt);

typedef struct bn_vocab_regen_result {
	char version[32];           /* the new version's directory name, YYYYmmddTHHMMSSZ */
	int had_current;            /* ROOT/TASK/current existed */
	int switched;               /* current now names the new version */
	int refused;                /* a guardrail kept the old version (the new one stays for inspection) */
	uint64_t lint_failures;     /* > 0: nothing was built */
	bn_vocab_diff_summary diff; /* against the previous current (zeros if none) */
	char *diff_text;            /* human-readable diff, or NULL; freed by bn_vocab_regen_result_free */
} bn_vocab_regen_result;

/*
 * Write the counts as a new version ROOT/TASK/<UTC time>/ (the time is
 * bumped by seconds until the name is unused), diff it against
 * ROOT/TASK/current, and point current (a relative symlink, replaced by
 * rename) at the new version unless churn > max_churn or the coverage drop
 * > max_coverage_drop (then result->refused; force overrides). Removes the
 * oldest versions beyond keep. Returns BN_OK (check refused and
 * lint_failures), BN_EUSAGE, BN_EREJECTRATE (no row matched, as
 * bn_vocab_write: nothing made), BN_EIO, BN_ECORRUPT, BN_ENOMEM.
 */
int bn_vocab_regen(bn_vocab_regen_result *out, bn_vocab_counter *c, const bn_vocab_regen_options *opt,
		   bn_vocab_lint_fn on_bad, void *ctx, bn_error *err);

/*
 * The checks of bn_vocab_regen that need no counts, to run before reading
 * any input: BN_OK, or BN_EUSAGE "--task must be a non-empty name without
 * '/' that does not start with '.'".
 */
int bn_vocab_regen_check(const bn_vocab_regen_options *opt, bn_error *err);

/* Frees diff_text. Accepts NULL. */
void bn_vocab_regen_result_free(bn_vocab_regen_result *r);

#ifdef __cplusplus
}
#endif
#endif
