/* chain.h - running a field's normalizer chain (text repair, case, regex steps, trim, truncation, validation, maps). */
#ifndef BN_NORMALIZE_CHAIN_H
#define BN_NORMALIZE_CHAIN_H

#include <stddef.h>
#include <stdint.h>

#include "bidnorm/error.h"
#include "rules/compiled.h"

/*
 * One bn_chain_scratch per thread: PCRE2 match data and match context (with
 * the rules' match and depth limits), and the work buffers, all reused, so
 * bn_chain_apply allocates nothing once its buffers have grown to the
 * largest value seen.
 */
typedef struct bn_chain_scratch bn_chain_scratch;

int bn_chain_scratch_new(bn_chain_scratch **out, const bn_rules *rules, bn_error *err);
void bn_chain_scratch_free(bn_chain_scratch *s);

/* What a chain did to one value: bits of bn_chain_effect, for the per-field counters. */
typedef enum bn_chain_effect {
	BN_EFFECT_MOJIBAKE = 1u << 0,    /* text: mojibake repaired */
	BN_EFFECT_NFKC = 1u << 1,        /* text: NFKC changed the value */
	BN_EFFECT_INVISIBLE = 1u << 2,   /* text: control/format characters removed */
	BN_EFFECT_WHITESPACE = 1u << 3,  /* text: whitespace mapped, collapsed or trimmed */
	BN_EFFECT_TRUNCATED = 1u << 4,   /* text/max_bytes: cut at max_bytes */
	BN_EFFECT_EXTRACTED = 1u << 5,   /* extract matched and changed the value */
	BN_EFFECT_REPLACED = 1u << 6,    /* replace changed the value */
	BN_EFFECT_CASE = 1u << 7,        /* lower/upper changed the value */
	BN_EFFECT_TRIMMED = 1u << 8,     /* trim or first_match removed bytes */
	BN_EFFECT_MAPPED = 1u << 9,      /* map replaced the value */
	BN_EFFECT_INVALID = 1u << 10,    /* validate failed (value nulled, kept or record rejected) */
	BN_EFFECT_EMPTY_NULL = 1u << 11, /* the result was empty and became null */
	BN_EFFECT_REGEX_LIMIT = 1u << 12 /* a regex hit the match/depth limit */
} bn_chain_effect;
#define BN_EFFECT_KINDS 13

/* Stable snake_case name of effect bit i (0..BN_EFFECT_KINDS-1), for stats. */
const char *bn_chain_effect_name(unsigned bit);

typedef struct bn_chain_result {
	const char *data;   /* the value (valid UTF-8); points into the input or into the scratch,
	                       valid until the next bn_chain_apply on this scratch */
	size_t size;
	int is_null;        /* the chain produced null (empty result, validate on_fail null) */
	uint32_t effects;   /* OR of bn_chain_effect */
} bn_chain_result;

/* Called after every step when tracing: the step, and the value after it. */
typedef void (*bn_chain_trace_fn)(void *ctx, const bn_step *step, const char *data, size_t size, int is_null);

/*
 * Run chain on in[0..size) (valid UTF-8). chain may be NULL (no steps: the
 * value only goes through the final "empty becomes null" rule).
 * Returns BN_OK, or BN_EREJECT with err->reason = BN_REJECT_VALIDATION (a
 * validate step with on_fail: reject failed; the message quotes the value
 * and the pattern), or BN_ENOMEM. A regex hitting the match or depth limit
 * counts as no match (extract/first_match/replace leave the value, validate
 * fails) and sets BN_EFFECT_REGEX_LIMIT. On an error out has no value but
 * out->effects still tells what the steps did (BN_EFFECT_INVALID, and
 * BN_EFFECT_REGEX_LIMIT when the limit made validate fail), so the caller
 * can count a rejecting field like any other.
 */
int bn_chain_apply(bn_chain_scratch *s, const bn_chain *chain, const char *in, size_t size,
		   bn_chain_result *out, bn_chain_trace_fn trace, void *trace_ctx, bn_error *err);

/*
 * After a text step of a traced bn_chain_apply: why that step repaired
 * mojibake as it did (bn_text_explanation); "" otherwise. Owned by s.
 */
const char *bn_chain_text_explanation(const bn_chain_scratch *s);

/* The name of a step kind as written in rule files ("text", "extract", ...). */
const char *bn_step_kind_name(bn_step_kind kind);

#endif
