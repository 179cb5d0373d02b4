/* text.c - the `text` step: mojibake repair, NFKC, invisible removal, whitespace folding and truncation of one value. */
#include "normalize/text.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "bidnorm/normalize.h"
#include "normalize/chain.h"
#include "normalize/text_mojibake.h"
#include "util/buf.h"
#include "util/swar.h"

/* NFKC through utf8proc: compatibility decomposition, canonical reordering, composition. */
#define NFKC_OPTIONS (UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT)

/*
 * Repair runs in rounds until a round changes nothing, because later stages
 * can make earlier ones apply again (removing a ZWSP between a letter and a
 * combining accent lets NFKC compose them; dropping U+2028 can make the rest
 * decodable mojibake). Each round strictly shortens the value or leaves it
 * stable, so this bound is never reached in practice; it only caps hostile input.
 */
#define MAX_ROUNDS 16

struct bn_text_scratch {
	bn_mojibake *moji;    /* mojibake repair */
	int explain;          /* explanations on (bn_text_explain) */
	int looked;           /* the last value was not ASCII: the mojibake repair judged it */
	bn_buf out[2];        /* round results, alternating */
	bn_buf fixed;         /* input with invalid UTF-8 replaced by U+FFFD (defensive) */
	utf8proc_int32_t *cp; /* code points for NFKC */
	size_t cp_cap;
};

int bn_text_scratch_new(bn_text_scratch **out)
{
	bn_text_scratch *s = calloc(1, sizeof(*s));
	if (!s)
		return -1;
	if (bn_mojibake_new(&s->moji) < 0) {
		free(s);
		return -1;
	}
	*out = s;
	return 0;
}

void bn_text_scratch_free(bn_text_scratch *s)
{
	if (!s)
		return;
	bn_mojibake_free(s->moji);
	bn_buf_free(&s->out[0]);
	bn_buf_free(&s->out[1]);
	bn_buf_free(&s->fixed);
	free(s->cp);
	free(s);
}

size_t bn_utf8_truncate(const char *s, size_t size, size_t max)
{
	size_t n;
	if (size <= max)
		return size;
	n = max;
	/* s[n] exists because n < size; back up while it is a continuation byte. */
	while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
		n--;
	return n;
}

/* White_Space (Unicode PropList). */
static int is_white_space(int32_t cp)
{
	if (cp < 0x80)
		return cp == 0x20 || (cp >= 0x09 && cp <= 0x0D);
	return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
	       cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

/*
 * Control (other than whitespace) and format characters, which are removed;
 * so is U+FFFD: it only marks bytes already lost (a lone surrogate escape),
 * and must not become a feature value or a vocabulary entry.
 */
static int is_invisible(int32_t cp)
{
	if (cp < 0x80)
		return cp < 0x20 || cp == 0x7F;
	if (cp == 0xFFFD)
		return 1;
	utf8proc_category_t cat = utf8proc_category(cp);
	return cat == UTF8PROC_CATEGORY_CC || cat == UTF8PROC_CATEGORY_CF;
}

/*
 * Code points below U+0300 whose NFKC form differs from themselves. Below
 * U+0300 there are no combining marks, so a value made only of such code
 * points outside this list is already NFKC and utf8proc can be skipped.
 * test_text checks this list against utf8proc for every code point.
 */
static int nfkc_changes_below_0300(int32_t cp)
{
	switch (cp) {
	case 0xA0: case 0xA8: case 0xAA: case 0xAF: case 0xB2: case 0xB3: case 0xB4:
	case 0xB5: case 0xB8: case 0xB9: case 0xBA: case 0xBC: case 0xBD: case 0xBE:
	case 0x132: case 0x133: case 0x13F: case 0x140: case 0x149: case 0x17F:
	case 0x1C4: case 0x1C5: case 0x1C6: case 0x1C7: case 0x1C8: case 0x1C9:
	case 0x1CA: case 0x1CB: case 0x1CC: case 0x1F1: case 0x1F2: case 0x1F3:
	case 0x2B0: case 0x2B1: case 0x2B2: case 0x2B3: case 0x2B4: case 0x2B5:
	case 0x2B6: case 0x2B7: case 0x2B8: case 0x2D8: case 0x2D9: case 0x2DA:
	case 0x2DB: case 0x2DC: case 0x2DD: case 0x2E0: case 0x2E1: case 0x2E2:
	case 0x2E3: case 0x2E4:
		return 1;
	default:
		return 0;
	}
}

static int cp_reserve(bn_text_scratch *s, size_t n)
{
	utf8proc_int32_t *p = bn_array_reserve(s->cp, &s->cp_cap, n, sizeof(*s->cp));
	if (!p)
		return -1;
	s->cp = p;
	return 0;
}

/*
 * Decode in into s->cp, through NFKC unless the value is provably already
 * NFKC. Sets *count and *changed. Returns 0 or -1 (out of memory).
 */
static int to_code_points(bn_text_scratch *s, const char *in, size_t size, size_t *count, int *changed)
{
	const unsigned char *u = (const unsigned char *)in;
	utf8proc_ssize_t n;
	size_t i = 0, k = 0;
	int simple = 1, invalid = 0;
	/* At most one code point per byte. */
	if (cp_reserve(s, size + 1) < 0)
		return -1;
	while (i < size) {
		int32_t cp = bn_utf8_next(u, size, &i);
		if (cp < 0) {
			cp = 0xFFFD;
			invalid = 1;
		}
		if (cp >= 0x300 || nfkc_changes_below_0300(cp))
			simple = 0;
		s->cp[k++] = cp;
	}
	*changed = invalid;
	*count = k;
	if (simple)
		return 0;
	/* utf8proc rejects invalid UTF-8; hand it the U+FFFD-repaired text instead. */
	if (invalid) {
		bn_buf_reset(&s->fixed);
		if (bn_buf_reserve(&s->fixed, k * 4) < 0)
			return -1;
		for (i = 0; i < k; i++)
			s->fixed.size += (size_t)utf8proc_encode_char(
				s->cp[i], (utf8proc_uint8_t *)s->fixed.data + s->fixed.size);
		in = s->fixed.data;
		size = s->fixed.size;
	}
	for (;;) {
		n = utf8proc_decompose_custom((const utf8proc_uint8_t *)in, (utf8proc_ssize_t)size, s->cp,
					      (utf8proc_ssize_t)s->cp_cap, NFKC_OPTIONS, NULL, NULL);
		if (n < 0)
			return -1;
		if ((size_t)n <= s->cp_cap)
			break;
		/* Compatibility decompositions can expand one character to many. */
		if (cp_reserve(s, (size_t)n) < 0)
			return -1;
	}
	n = utf8proc_normalize_utf32(s->cp, n, NFKC_OPTIONS);
	if (n < 0)
		return -1;
	/* Detect whether NFKC changed anything by re-reading the input. */
	if (!*changed) {
		size_t j = 0;
		i = 0;
		u = (const unsigned char *)in;
		while (i < size && j < (size_t)n) {
			if (bn_utf8_next(u, size, &i) != s->cp[j])
				break;
			j++;
		}
		*changed = i < size || j < (size_t)n;
	}
	*count = (size_t)n;
	return 0;
}

/*
 * One repair round on non-ASCII input. Writes the result to b, ORs effect
 * bits into *effects and sets *again when a later stage may have made an
 * earlier one applicable. Returns 0 or -1 (out of memory).
 */
static int repair_round(bn_text_scratch *s, bn_buf *b, const char *in, size_t size, size_t max_bytes,
			uint32_t *effects, int *again)
{
	const char *cur = in;
	size_t cur_size = size, count, i, cut;
	int rc, nfkc_changed, pending = 0, run_plain = 1;
	size_t run = 0;

	*again = 0;
	rc = bn_mojibake_fix(s->moji, in, size, &cur, &cur_size);
	if (rc < 0)
		return -1;
	if (rc) {
		/* Later stages may expose more (a stretch behind a removed ZWSP): look again. */
		*effects |= BN_EFFECT_MOJIBAKE;
		*again = 1;
	}

	if (to_code_points(s, cur, cur_size, &count, &nfkc_changed) < 0)
		return -1;
	if (nfkc_changed) {
		*effects |= BN_EFFECT_NFKC;
		*again = 1;
	}

	/* Worst case every code point is 4 bytes. */
	bn_buf_reset(b);
	if (bn_buf_reserve(b, count * 4 + 1) < 0)
		return -1;
	for (i = 0; i < count; i++) {
		int32_t cp = s->cp[i];
		if (is_white_space(cp)) {
			if (cp != ' ') {
				/* U+2028 and friends may have been what kept mojibake from being decoded. */
				*effects |= BN_EFFECT_WHITESPACE;
				*again = 1;
				run_plain = 0;
			}
			run++;
			pending = 1;
			continue;
		}
		if (is_invisible(cp)) {
			*effects |= BN_EFFECT_INVISIBLE;
			*again = 1;
			continue;
		}
		if (pending) {
			/* A run is left alone only when it is one plain space between two characters.
			 * A changed one may complete a mojibake sign ("voilÃ  le" -> "voilÃ le"): look again. */
			if (b->size == 0 || run != 1 || !run_plain) {
				*effects |= BN_EFFECT_WHITESPACE;
				*again = 1;
			}
			if (b->size > 0)
				b->data[b->size++] = ' ';
			pending = 0;
			run = 0;
			run_plain = 1;
		}
		b->size += (size_t)utf8proc_encode_char(cp, (utf8proc_uint8_t *)b->data + b->size);
	}
	if (pending) {
		*effects |= BN_EFFECT_WHITESPACE;
		*again = 1;
	}

	if (max_bytes) {
		cut = bn_utf8_truncate(b->data, b->size, max_bytes);
		if (cut < b->size) {
			b->size = cut;
			*effects |= BN_EFFECT_TRUNCATED;
			*again = 1;
			if (b->size > 0 && b->data[b->size - 1] == ' ')
				b->size--;
		}
	}
	return 0;
}

/*
 * ASCII scan: 0 when in needs no change except truncation, 1 when it is ASCII
 * with control characters or untidy spaces, 2 when it is not ASCII.
 */
static int ascii_state(const char *in, size_t size)
{
	const unsigned char *u = (const unsigned char *)in;
	int dirty = 0;
	size_t i = 0;
	while (i < size) {
		/* Eight printable bytes other than space, the common case, in one step. */
		if (i + 8 <= size) {
			uint64_t w = bn_load64(u + i);
			if (w & BN_SWAR_HIGHS)
				return 2;
			if (bn_swar_in_range(w, 0x21, 0x7E) == BN_SWAR_HIGHS) {
				i += 8;
				continue;
			}
		}
		for (size_t end = i + 8 < size ? i + 8 : size; i < end; i++) {
			unsigned char c = u[i];
			if (c > 0x20 && c < 0x7F)
				continue;
			if (c >= 0x80)
				return 2;
			if (c != ' ' || i == 0 || i + 1 == size || u[i - 1] == ' ')
				dirty = 1;
		}
	}
	return dirty;
}

/* The ASCII path of repair: drop controls, fold whitespace; truncation follows. */
static int repair_ascii(bn_buf *b, const char *in, size_t size, uint32_t *effects)
{
	size_t i, run = 0;
	int pending = 0, run_plain = 1;
	bn_buf_reset(b);
	if (bn_buf_reserve(b, size + 1) < 0)
		return -1;
	for (i = 0; i < size; i++) {
		unsigned char c = (unsigned char)in[i];
		if (c == ' ' || (c >= 0x09 && c <= 0x0D)) {
			if (c != ' ')
				run_plain = 0;
			run++;
			pending = 1;
			continue;
		}
		if (c < 0x20 || c == 0x7F) {
			*effects |= BN_EFFECT_INVISIBLE;
			continue;
		}
		if (pending) {
			if (b->size == 0 || run != 1 || !run_plain)
				*effects |= BN_EFFECT_WHITESPACE;
			if (b->size > 0)
				b->data[b->size++] = ' ';
			pending = 0;
			run = 0;
			run_plain = 1;
		}
		b->data[b->size++] = (char)c;
	}
	if (pending)
		*effects |= BN_EFFECT_WHITESPACE;
	return 0;
}

const char *bn_text_repair_version(void)
{
	return BN_TEXT_REPAIR_VERSION;
}

void bn_text_explain(bn_text_scratch *s, int on)
{
	s->explain = on;
	bn_mojibake_explain(s->moji, on);
}

const char *bn_text_explanation(const bn_text_scratch *s)
{
	const char *why = bn_mojibake_explanation(s->moji);
	if (!s->explain || !s->looked)
		return "";
	return *why ? why : "no sign of mojibake";
}

int bn_text_repair(bn_text_scratch *s, const char *in, size_t size, size_t max_bytes,
		   const char **out, size_t *out_size, uint32_t *effects)
{
	const char *cur = in;
	size_t cur_size = size, cut;
	uint32_t eff = 0;
	int state = ascii_state(in, size), round, again, which = 0;

	s->looked = state == 2;
	if (s->explain)
		bn_mojibake_explain_reset(s->moji);

	if (state == 1) {
		if (repair_ascii(&s->out[0], in, size, &eff) < 0)
			return -1;
		cur = s->out[0].data;
		cur_size = s->out[0].size;
	} else if (state == 2) {
		for (round = 0; round < MAX_ROUNDS; round++) {
			uint32_t round_eff = 0;
			bn_buf *b = &s->out[which];
			if (repair_round(s, b, cur, cur_size, max_bytes, &round_eff, &again) < 0)
				return -1;
			if (!round_eff)
				break;
			eff |= round_eff;
			cur = b->data;
			cur_size = b->size;
			which ^= 1;
			if (!again)
				break;
		}
	}
	/* The non-ASCII rounds truncate themselves; this covers ASCII results. */
	if (max_bytes) {
		cut = bn_utf8_truncate(cur, cur_size, max_bytes);
		if (cut < cur_size) {
			cur_size = cut;
			eff |= BN_EFFECT_TRUNCATED;
			if (cur_size > 0 && cur[cur_size - 1] == ' ')
				cur_size--;
		}
	}
	*out = cur;
	*out_size = cur_size;
	*effects = eff;
	return 0;
}
