/* chain.c - runs a field's normalizer chain over one value with per-thread scratch (regex match data, work buffers). */
#include "normalize/chain.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "normalize/text.h"
#include "util/buf.h"
#include "util/swar.h"

/* Defaults of limits.* when rules are absent or leave them 0 (see compiled.h). */
#define DEFAULT_MATCH_LIMIT 100000
#define DEFAULT_DEPTH_LIMIT 1000
#define DEFAULT_TEXT_BYTES 256

/* Capture pairs in the match data: extract reads group 1; more only avoids rc == 0. */
#define OVECTOR_PAIRS 16

/* Longest quoted value in a validation message. */
#define MESSAGE_VALUE_BYTES 64

struct bn_chain_scratch {
	size_t max_text_bytes;
	bn_text_scratch *text;
	pcre2_match_context *mctx;
	pcre2_jit_stack *jit_stack;
	pcre2_match_data *md;
	bn_buf buf[2];          /* ping-pong: a step reads one and writes the other */
};

int bn_chain_scratch_new(bn_chain_scratch **out, const bn_rules *rules, bn_error *err)
{
	bn_chain_scratch *s = NULL;
	uint32_t match_limit = DEFAULT_MATCH_LIMIT, depth_limit = DEFAULT_DEPTH_LIMIT;
	int rc = BN_ENOMEM;

	s = calloc(1, sizeof(*s));
	if (!s)
		goto cleanup;
	s->max_text_bytes = DEFAULT_TEXT_BYTES;
	if (rules) {
		if (rules->regex_match_limit)
			match_limit = rules->regex_match_limit;
		if (rules->regex_depth_limit)
			depth_limit = rules->regex_depth_limit;
		if (rules->max_text_bytes)
			s->max_text_bytes = rules->max_text_bytes;
	}
	if (bn_text_scratch_new(&s->text) < 0)
		goto cleanup;
	s->mctx = pcre2_match_context_create(NULL);
	s->md = pcre2_match_data_create(OVECTOR_PAIRS, NULL);
	if (!s->mctx || !s->md)
		goto cleanup;
	pcre2_set_match_limit(s->mctx, match_limit);
	pcre2_set_depth_limit(s->mctx, depth_limit);
	/* The default 32 KiB JIT stack fails on longer values before the match
	 * limit can speak; give JIT room once, here, not per value. Without JIT
	 * support this fails harmlessly and the interpreter is used. */
	s->jit_stack = pcre2_jit_stack_create(32 * 1024, 512 * 1024, NULL);
	if (s->jit_stack)
		pcre2_jit_stack_assign(s->mctx, NULL, s->jit_stack);
	*out = s;
	s = NULL;
	rc = BN_OK;
cleanup:
	bn_chain_scratch_free(s);
	if (rc != BN_OK)
		bn_error_set(err, rc, "out of memory creating the chain scratch");
	return rc;
}

void bn_chain_scratch_free(bn_chain_scratch *s)
{
	if (!s)
		return;
	bn_text_scratch_free(s->text);
	pcre2_match_data_free(s->md);
	pcre2_match_context_free(s->mctx);
	pcre2_jit_stack_free(s->jit_stack);
	bn_buf_free(&s->buf[0]);
	bn_buf_free(&s->buf[1]);
	free(s);
}

const char *bn_chain_effect_name(unsigned bit)
{
	static const char *const names[BN_EFFECT_KINDS] = {
		"mojibake_fixed", "nfkc_changed", "invisible_removed", "whitespace_fixed",
		"truncated", "extracted", "replaced", "case_changed", "trimmed", "mapped",
		"validation_failed", "empty_to_null", "regex_limit",
	};
	if (bit >= BN_EFFECT_KINDS)
		return "unknown";
	return names[bit];
}

const char *bn_step_kind_name(bn_step_kind kind)
{
	switch (kind) {
	case BN_STEP_TEXT: return "text";
	case BN_STEP_LOWER: return "lower";
	case BN_STEP_UPPER: return "upper";
	case BN_STEP_EXTRACT: return "extract";
	case BN_STEP_REPLACE: return "replace";
	case BN_STEP_FIRST_MATCH: return "first_match";
	case BN_STEP_TRIM: return "trim";
	case BN_STEP_MAX_BYTES: return "max_bytes";
	case BN_STEP_VALIDATE: return "validate";
	case BN_STEP_MAP: return "map";
	}
	return "unknown";
}

/* The value being worked on: data points into the input, the rules, or a scratch buffer. */
typedef struct value {
	const char *data;
	size_t size;
	int is_null;
} value;

/* The ping-pong buffer the current value is not in, emptied for writing. */
static bn_buf *other_buf(bn_chain_scratch *s, const value *v)
{
	uintptr_t p = (uintptr_t)v->data, b0 = (uintptr_t)s->buf[0].data;
	bn_buf *b = &s->buf[0];
	/* Compared as integers: the value may point into an unrelated object. */
	if (b0 && p >= b0 && p <= b0 + s->buf[0].cap)
		b = &s->buf[1];
	bn_buf_reset(b);
	return b;
}

/*
 * Run re on v. Returns the number of capture pairs set (>= 1) on a match, 0 on none (a hit limit counts as none
 * and sets BN_EFFECT_REGEX_LIMIT), or a negative bn_status.
 */
static int match(bn_chain_scratch *s, const bn_step *step, const value *v, uint32_t *effects, bn_error *err)
{
	/* PCRE2 10.42 wants a non-NULL subject even when it is empty. */
	const char *subject = v->size ? v->data : "";
	size_t jit = 0;
	int rc;
	/* pcre2_jit_match skips pcre2_match's per-call checks, a third of the
	 * bundle chain's time; it is only valid for JIT-compiled patterns. */
	pcre2_pattern_info(step->re, PCRE2_INFO_JITSIZE, &jit);
	if (jit)
		rc = pcre2_jit_match(step->re, (PCRE2_SPTR)subject, v->size, 0, PCRE2_NO_UTF_CHECK, s->md, s->mctx);
	else
		rc = pcre2_match(step->re, (PCRE2_SPTR)subject, v->size, 0, PCRE2_NO_UTF_CHECK, s->md, s->mctx);
	/* 0 means more pairs were set than the ovector holds: all of them. */
	if (rc >= 0)
		return rc > 0 ? rc : OVECTOR_PAIRS;
	switch (rc) {
	case PCRE2_ERROR_NOMATCH:
		return 0;
	case PCRE2_ERROR_MATCHLIMIT:
	case PCRE2_ERROR_DEPTHLIMIT:
	case PCRE2_ERROR_HEAPLIMIT:
	case PCRE2_ERROR_JIT_STACKLIMIT:
		*effects |= BN_EFFECT_REGEX_LIMIT;
		return 0;
	case PCRE2_ERROR_NOMEMORY:
		return bn_error_set(err, BN_ENOMEM, "out of memory matching pattern '%s'", step->pattern);
	default:
		return bn_error_set(err, BN_EINTERNAL, "pattern '%s': PCRE2 match error %d", step->pattern, rc);
	}
}

static int step_extract(bn_chain_scratch *s, const bn_step *step, value *v, uint32_t *effects, bn_error *err)
{
	PCRE2_SIZE *ov;
	int rc = match(s, step, v, effects, err);
	if (rc <= 0)
		return rc;
	ov = pcre2_get_ovector_pointer(s->md);
	if (rc < 2 || ov[2] == PCRE2_UNSET)
		return BN_OK;
	if (ov[2] != 0 || ov[3] != v->size)
		*effects |= BN_EFFECT_EXTRACTED;
	/* Group 1 lies inside the value: no copy. */
	v->data += ov[2];
	v->size = ov[3] - ov[2];
	return BN_OK;
}

static int step_first_match(bn_chain_scratch *s, const bn_step *step, value *v, uint32_t *effects,
			    bn_error *err)
{
	PCRE2_SIZE *ov;
	int rc = match(s, step, v, effects, err);
	if (rc < 0)
		return rc;
	if (rc == 0) {
		if (v->size)
			*effects |= BN_EFFECT_TRIMMED;
		v->size = 0;
		return BN_OK;
	}
	ov = pcre2_get_ovector_pointer(s->md);
	if (ov[0] != 0 || ov[1] != v->size)
		*effects |= BN_EFFECT_TRIMMED;
	v->data += ov[0];
	v->size = ov[1] - ov[0];
	return BN_OK;
}

static int step_replace(bn_chain_scratch *s, const bn_step *step, value *v, uint32_t *effects, bn_error *err)
{
	const char *subject = v->size ? v->data : "";
	const char *repl = step->replacement ? step->replacement : "";
	bn_buf *b = other_buf(s, v);
	PCRE2_SIZE len;
	int rc, attempt;

	for (attempt = 0; attempt < 2; attempt++) {
		/* Room for the result and the NUL pcre2_substitute always writes. */
		if (bn_buf_reserve(b, v->size + step->replacement_len + 64) < 0)
			return bn_error_set(err, BN_ENOMEM, "out of memory replacing pattern '%s'", step->pattern);
		len = b->cap;
		rc = pcre2_substitute(step->re, (PCRE2_SPTR)subject, v->size, 0,
				      PCRE2_SUBSTITUTE_GLOBAL | PCRE2_SUBSTITUTE_OVERFLOW_LENGTH | PCRE2_NO_UTF_CHECK,
				      s->md, s->mctx, (PCRE2_SPTR)repl, step->replacement_len,
				      (PCRE2_UCHAR *)b->data, &len);
		if (rc != PCRE2_ERROR_NOMEMORY)
			break;
		/* len is now the size needed, NUL included. */
		if (bn_buf_reserve(b, len) < 0)
			return bn_error_set(err, BN_ENOMEM, "out of memory replacing pattern '%s'", step->pattern);
	}
	if (rc < 0) {
		switch (rc) {
		case PCRE2_ERROR_MATCHLIMIT:
		case PCRE2_ERROR_DEPTHLIMIT:
		case PCRE2_ERROR_HEAPLIMIT:
		case PCRE2_ERROR_JIT_STACKLIMIT:
			*effects |= BN_EFFECT_REGEX_LIMIT;
			return BN_OK;
		case PCRE2_ERROR_NOMEMORY:
			return bn_error_set(err, BN_ENOMEM, "out of memory replacing pattern '%s'", step->pattern);
		default:
			return bn_error_set(err, BN_EINTERNAL, "pattern '%s': PCRE2 substitute error %d",
					    step->pattern, rc);
		}
	}
	if (rc == 0)
		return BN_OK;
	b->size = len;
	if (len != v->size || memcmp(b->data, v->data, len) != 0)
		*effects |= BN_EFFECT_REPLACED;
	v->data = b->data;
	v->size = b->size;
	return BN_OK;
}

/* lower/upper: ASCII bytes in place of a copy, utf8proc simple case mapping beyond. */
static int step_case(bn_chain_scratch *s, int upper, value *v, uint32_t *effects, bn_error *err)
{
	const unsigned char *u = (const unsigned char *)v->data;
	const unsigned lo = upper ? 'a' : 'A', hi = upper ? 'z' : 'Z';
	size_t i = 0, first = v->size;
	int ascii = 1;
	bn_buf *b;

	/* The first byte to change or not ASCII: eight bytes a step, then the one word byte by byte. */
	for (; i + 8 <= v->size; i += 8) {
		uint64_t w = bn_load64(u + i);
		if ((w & BN_SWAR_HIGHS) || bn_swar_in_range(w, lo, hi))
			break;
	}
	for (; i < v->size; i++) {
		if (u[i] >= 0x80 || (u[i] >= lo && u[i] <= hi)) {
			first = i;
			break;
		}
	}
	if (first == v->size)
		return BN_OK;
	for (i = first; i < v->size; i++) {
		if (i + 8 <= v->size && !(bn_load64(u + i) & BN_SWAR_HIGHS)) {
			i += 7;
			continue;
		}
		if (u[i] >= 0x80) {
			ascii = 0;
			break;
		}
	}
	b = other_buf(s, v);
	if (bn_buf_reserve(b, v->size) < 0)
		return bn_error_set(err, BN_ENOMEM, "out of memory changing case");
	memcpy(b->data, v->data, first);
	b->size = first;
	if (ascii) {
		for (i = first; i < v->size; i++) {
			unsigned char c = u[i];
			if (upper && c >= 'a' && c <= 'z')
				c -= 32;
			else if (!upper && c >= 'A' && c <= 'Z')
				c += 32;
			b->data[b->size++] = (char)c;
		}
		*effects |= BN_EFFECT_CASE;
	} else {
		int changed = 0;
		i = first;
		while (i < v->size) {
			utf8proc_int32_t cp, mapped;
			utf8proc_ssize_t n = utf8proc_iterate(u + i, (utf8proc_ssize_t)(v->size - i), &cp);
			if (n <= 0) {
				/* Not UTF-8 after all: keep the byte as it is. */
				if (bn_buf_putc(b, (char)u[i]) < 0)
					return bn_error_set(err, BN_ENOMEM, "out of memory changing case");
				i++;
				continue;
			}
			i += (size_t)n;
			mapped = upper ? utf8proc_toupper(cp) : utf8proc_tolower(cp);
			changed |= mapped != cp;
			if (bn_buf_reserve(b, 4) < 0)
				return bn_error_set(err, BN_ENOMEM, "out of memory changing case");
			b->size += (size_t)utf8proc_encode_char(mapped, (utf8proc_uint8_t *)b->data + b->size);
		}
		if (!changed)
			return BN_OK;
		*effects |= BN_EFFECT_CASE;
	}
	v->data = b->data;
	v->size = b->size;
	return BN_OK;
}

static void step_trim(const bn_step *step, value *v, uint32_t *effects)
{
	size_t start = 0, end = v->size;
	if (!step->nchars)
		return;
	while (start < end && memchr(step->chars, v->data[start], step->nchars))
		start++;
	while (end > start && memchr(step->chars, v->data[end - 1], step->nchars))
		end--;
	if (start == 0 && end == v->size)
		return;
	*effects |= BN_EFFECT_TRIMMED;
	v->data += start;
	v->size = end - start;
}

static int map_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	if (alen != blen)
		return alen < blen ? -1 : 1;
	return memcmp(a, b, alen);
}

static void step_map(const bn_step *step, value *v, uint32_t *effects)
{
	size_t lo = 0, hi = step->nmap;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const bn_map_entry *e = &step->map[mid];
		int c = map_cmp(v->data, v->size, e->from, e->from_len);
		if (c == 0) {
			if (map_cmp(e->to, e->to_len, v->data, v->size) != 0)
				*effects |= BN_EFFECT_MAPPED;
			/* The rules outlive every value: point at the table entry. */
			v->data = e->to;
			v->size = e->to_len;
			return;
		}
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
}

static int step_validate(bn_chain_scratch *s, const bn_step *step, value *v, uint32_t *effects, bn_error *err)
{
	size_t shown;
	uint32_t before = *effects;
	int rc = match(s, step, v, effects, err);
	if (rc != 0)
		return rc < 0 ? rc : BN_OK;
	int limited = (*effects & ~before & BN_EFFECT_REGEX_LIMIT) != 0;
	*effects |= BN_EFFECT_INVALID;
	switch (step->on_fail) {
	case BN_ON_FAIL_NULL:
		v->is_null = 1;
		return BN_OK;
	case BN_ON_FAIL_KEEP:
		return BN_OK;
	case BN_ON_FAIL_REJECT:
		break;
	}
	shown = bn_utf8_truncate(v->data, v->size, MESSAGE_VALUE_BYTES);
	if (limited)
		bn_error_set(err, BN_EREJECT,
			     "value \"%.*s\" could not be checked against pattern '%s': the regex hit "
			     "limits.regex_match_limit or regex_depth_limit", (int)shown, v->size ? v->data : "", step->pattern);
	else
		bn_error_set(err, BN_EREJECT, "value \"%.*s\" does not match pattern '%s'", (int)shown,
			     v->size ? v->data : "", step->pattern);
	if (err)
		err->reason = BN_REJECT_VALIDATION;
	return BN_EREJECT;
}

static int step_text(bn_chain_scratch *s, const bn_step *step, value *v, uint32_t *effects, bn_error *err)
{
	const char *out;
	size_t out_size, max = step->max_bytes ? step->max_bytes : s->max_text_bytes;
	uint32_t eff = 0;
	if (bn_text_repair(s->text, v->data, v->size, max, &out, &out_size, &eff) < 0)
		return bn_error_set(err, BN_ENOMEM, "out of memory repairing text");
	*effects |= eff;
	v->data = out;
	v->size = out_size;
	return BN_OK;
}

const char *bn_chain_text_explanation(const bn_chain_scratch *s)
{
	return bn_text_explanation(s->text);
}

int bn_chain_apply(bn_chain_scratch *s, const bn_chain *chain, const char *in, size_t size,
		   bn_chain_result *out, bn_chain_trace_fn trace, void *trace_ctx, bn_error *err)
{
	value v = {in ? in : "", size, 0};
	uint32_t effects = 0;
	size_t i, nsteps = chain ? chain->nsteps : 0;
	int rc = BN_OK, after_text = 0;

	/* Explaining the mojibake decision costs time: only for a trace. */
	bn_text_explain(s->text, trace != NULL);

	for (i = 0; i < nsteps && !v.is_null; i++) {
		const bn_step *step = &chain->steps[i];
		switch (step->kind) {
		case BN_STEP_TEXT:
			/* The text scratch reuses its buffers per call, so a value
			 * that may still live there moves out before a second text. */
			if (after_text) {
				bn_buf *b = other_buf(s, &v);
				if (bn_buf_append(b, v.data, v.size) < 0) {
					rc = bn_error_set(err, BN_ENOMEM, "out of memory repairing text");
					goto cleanup;
				}
				v.data = b->data;
			}
			rc = step_text(s, step, &v, &effects, err);
			after_text = 1;
			break;
		case BN_STEP_LOWER:
		case BN_STEP_UPPER:
			rc = step_case(s, step->kind == BN_STEP_UPPER, &v, &effects, err);
			break;
		case BN_STEP_EXTRACT:
			rc = step_extract(s, step, &v, &effects, err);
			break;
		case BN_STEP_REPLACE:
			rc = step_replace(s, step, &v, &effects, err);
			break;
		case BN_STEP_FIRST_MATCH:
			rc = step_first_match(s, step, &v, &effects, err);
			break;
		case BN_STEP_TRIM:
			step_trim(step, &v, &effects);
			break;
		case BN_STEP_MAX_BYTES: {
			size_t cut = bn_utf8_truncate(v.data, v.size, step->max_bytes);
			if (cut < v.size) {
				effects |= BN_EFFECT_TRUNCATED;
				v.size = cut;
			}
			break;
		}
		case BN_STEP_VALIDATE:
			rc = step_validate(s, step, &v, &effects, err);
			break;
		case BN_STEP_MAP:
			step_map(step, &v, &effects);
			break;
		default:
			rc = bn_error_set(err, BN_EINTERNAL, "unknown step kind %d", (int)step->kind);
			break;
		}
		if (rc < 0)
			goto cleanup;
		if (trace)
			trace(trace_ctx, step, v.is_null ? NULL : v.data, v.is_null ? 0 : v.size, v.is_null);
	}
	if (!v.is_null && v.size == 0) {
		v.is_null = 1;
		effects |= BN_EFFECT_EMPTY_NULL;
	}
	out->data = v.is_null ? NULL : v.data;
	out->size = v.is_null ? 0 : v.size;
	out->is_null = v.is_null;
cleanup:
	if (rc < 0) {
		out->data = NULL;
		out->size = 0;
		out->is_null = 1;
	}
	out->effects = effects;
	return rc;
}
