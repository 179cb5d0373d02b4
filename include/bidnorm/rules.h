/* bidnorm/rules.h - loading and inspecting a rule file: output schema, field sources, normalizer chains. */
#ifndef BIDNORM_RULES_H
#define BIDNORM_RULES_H

#include <stddef.h>

#include "bidnorm/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * A rule file (YAML, documented in rules/README.md) says which output fields
 * exist, where each comes from in the input JSON, its type, and the chain of
 * normalizer steps it runs through. Loading validates everything - unknown
 * keys, wrong types, bad regexes, unknown steps, serving-invalid fields -
 * and fails with "file:line:column: reason" in err, so a wrong rule file
 * never gets as far as the first record.
 *
 * A loaded bn_rules is immutable: share one between threads freely.
 */
typedef struct bn_rules bn_rules;

/*
 * Load and compile a rule file. Returns BN_OK, BN_EIO (cannot read the
 * file), BN_ERULES (invalid: err->source/line/column point at the problem),
 * BN_ENOMEM. *out is set only on success; free it with bn_rules_free.
 */
int bn_rules_load_file(bn_rules **out, const char *path, bn_error *err);

/* Same from memory; name is used in messages. text need not be NUL-terminated. */
int bn_rules_load_buffer(bn_rules **out, const char *text, size_t size, const char *name, bn_error *err);

/* The shipped default rules (rules/bidlog.yaml, embedded at build time; source name "<default>"). */
int bn_rules_load_default(bn_rules **out, bn_error *err);

/* The embedded default rule file text (static, NUL-terminated). */
const char *bn_rules_default_text(size_t *size);

/*
 * Shipped rule sets, embedded at build time: "bidlog" (the default, bid-log
 * v1) and "openrtb" (OpenRTB 2.5/2.6 bid requests, one record per imp).
 * bn_rules_builtin_name(i) names the i-th (NULL past the last).
 * bn_rules_builtin_text: the file text (static, NUL-terminated), or NULL when
 * there is no set of that name. bn_rules_load_builtin: BN_OK, BN_EUSAGE (no
 * such set), BN_ENOMEM; source name "<default>" for bidlog, "<NAME>" otherwise.
 */
const char *bn_rules_builtin_name(size_t i);
const char *bn_rules_builtin_text(const char *name, size_t *size);
int bn_rules_load_builtin(bn_rules **out, const char *name, bn_error *err);

/*
 * What --rules means: NULL loads the default; the name of a shipped rule set
 * ("bidlog", "openrtb") loads that set; anything else is a rule file's path
 * (write ./openrtb for a file of that name). Returns as bn_rules_load_file.
 */
int bn_rules_load(bn_rules **out, const char *spec, bn_error *err);

/*
 * What --rules means for a command that reads Avro written by `bidnorm
 * ingest` (vocab build/count/regen, encode): the rules paths[0..npaths)
 * were written with. Ingest records them in each file's header:
 * bidnorm.rules.sha256 (the hash of the rule file's bytes, the identity) and
 * bidnorm.rules.source ("<default>", "<openrtb>" or the rule file's path as
 * given, a name only). Files without bidnorm.rules.sha256 (not written by
 * ingest) are not checked.
 *
 * spec != NULL (--rules given): load it as bn_rules_load does; unless
 * allow_mixed, every input's hash must be the rules' hash, else BN_EUSAGE
 * "written with other rules (<openrtb>, sha256 0123456789ab) than --rules
 * bidlog (sha256 ba9876543210): leave out --rules to use the input's own
 * rules (where mixing is allowed, --allow-mixed-rules accepts them)".
 *
 * spec == NULL: the inputs' hashes must agree (BN_EUSAGE "written with other
 * rules (A) than FIRST.avro (B): the inputs must share their rules (where
 * mixing is allowed, pass --allow-mixed-rules and --rules FILE|NAME)", or
 * with allow_mixed "...: name the rules to use with --rules FILE|NAME"), and
 * their rules are loaded: the shipped set with that hash; else the rule file
 * the header names, when it can be read and still has that hash. Otherwise
 * BN_EUSAGE naming the input (err->source) and what to pass: "written with
 * rules that are not a shipped set (sha256 H), and the header names no rule
 * file: ...", "written with the shipped rules <openrtb> of bidnorm V
 * (sha256 H), not this bidnorm's (sha256 H2): ...", "written with the rule
 * file 'F' (sha256 H), which cannot be read here (cannot open: ...): ...",
 * "written with the rule file 'F' (sha256 H), which has changed since (now
 * sha256 H2): ...". Hashes are shown by their first 12 hex digits. No input
 * with a hash (or npaths == 0): the default rules.
 *
 * Every header is read before any record. Also returns what bn_rules_load
 * returns (BN_EIO, BN_ERULES for the spec or the named file), BN_EIO /
 * BN_ECORRUPT for an input that cannot be opened or is not an Avro
 * container, BN_ENOMEM. *out is set only on success; free with bn_rules_free.
 */
int bn_rules_load_for_avro(bn_rules **out, const char *spec, const char *const *paths, size_t npaths,
			   int allow_mixed, bn_error *err);

/* The Avro schema (JSON) generated from the rules. Owned by rules. */
const char *bn_rules_schema_json(const bn_rules *rules);

/* Lower-case hex SHA-256 of the rule file bytes (64 chars). Owned by rules. */
const char *bn_rules_sha256(const bn_rules *rules);

/* The name used in messages (path, or "<default>"). Owned by rules. */
const char *bn_rules_source_name(const bn_rules *rules);

/* The rows path as written ("imp": each element is one record), or NULL for one record per line. Owned by rules. */
const char *bn_rules_rows(const bn_rules *rules);

/* Longest accepted input line in bytes (limits.max_line_bytes). */
size_t bn_rules_max_line_bytes(const bn_rules *rules);

/* Number of output fields, and the name of field i (owned by rules). */
size_t bn_rules_field_count(const bn_rules *rules);
const char *bn_rules_field_name(const bn_rules *rules, size_t i);

/* 1 when field i holds strings (string, array<string>, map<string>: the fields with chains), else 0. */
int bn_rules_field_is_string(const bn_rules *rules, size_t i);

/* Accepts NULL. */
void bn_rules_free(bn_rules *rules);

#ifdef __cplusplus
}
#endif
#endif
