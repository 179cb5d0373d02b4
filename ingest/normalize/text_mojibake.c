/* text_mojibake.c - evidence-based mojibake repair: badness of a value, code-page readings, stretches, C1 controls. */
#include "normalize/text_mojibake.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "normalize/text_tables.h"
#include "util/buf.h"

/*
 * Readings applied to one value before giving up; each lowers the badness
 * (or, for C1 controls, removes them all), so this only caps hostile input.
 * The text step repeats its rounds, so deeper nests still come undone.
 */
#define MAX_STEPS 6

/* A code-point vector, grown once and reused. */
typedef struct cpvec {
	int32_t *v;
	size_t n, cap;
} cpvec;

struct bn_mojibake {
	cpvec cur, cand, cand2; /* the value, a candidate reading of it, and a reading of that */
	cpvec piece, piece2;    /* a stretch being repaired on its own, and its reading */
	cpvec trial;            /* a reading being ranked */
	uint32_t *cls;          /* character classes of the vector being judged */
	size_t cls_cap;
	bn_buf bytes, bytes2;   /* a vector encoded with a code page, and transformed */
	bn_buf out;             /* the UTF-8 result */
	bn_buf why;             /* the explanation (when explain is on) */
	int explain;
};

/* What a code-page reading did beyond the plain decode, for the explanation. */
#define READ_A0 1    /* a no-break space that had become a space was restored */
#define READ_LOSSY 2 /* a sequence that had lost a byte became U+FFFD */

int bn_mojibake_new(bn_mojibake **out)
{
	bn_mojibake *m = calloc(1, sizeof(*m));
	if (!m)
		return -1;
	*out = m;
	return 0;
}

void bn_mojibake_free(bn_mojibake *m)
{
	if (!m)
		return;
	free(m->cur.v);
	free(m->cand.v);
	free(m->cand2.v);
	free(m->piece.v);
	free(m->piece2.v);
	free(m->trial.v);
	free(m->cls);
	bn_buf_free(&m->bytes);
	bn_buf_free(&m->bytes2);
	bn_buf_free(&m->out);
	bn_buf_free(&m->why);
	free(m);
}

void bn_mojibake_explain(bn_mojibake *m, int on)
{
	m->explain = on;
}

void bn_mojibake_explain_reset(bn_mojibake *m)
{
	bn_buf_reset(&m->why);
}

const char *bn_mojibake_explanation(const bn_mojibake *m)
{
	return m->why.size ? m->why.data : "";
}

/* Append to the explanation ("; " between parts); a failure to grow only shortens it. */
static void say(bn_mojibake *m, const char *fmt, ...)
{
	va_list ap;
	int n;
	if (!m->explain)
		return;
	if (m->why.size) {
		m->why.size--; /* the NUL */
		bn_buf_append(&m->why, "; ", 2);
	}
	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || bn_buf_reserve(&m->why, (size_t)n + 1) < 0) {
		bn_buf_putc(&m->why, '\0');
		return;
	}
	va_start(ap, fmt);
	vsnprintf(m->why.data + m->why.size, (size_t)n + 1, fmt, ap);
	va_end(ap);
	m->why.size += (size_t)n + 1;
}

static int cpvec_reserve(cpvec *c, size_t n)
{
	int32_t *p = bn_array_reserve(c->v, &c->cap, n, sizeof(*c->v));
	if (!p)
		return -1;
	c->v = p;
	return 0;
}

static void cpvec_swap(cpvec *a, cpvec *b)
{
	cpvec t = *a;
	*a = *b;
	*b = t;
}

int32_t bn_utf8_next(const unsigned char *s, size_t n, size_t *i)
{
	size_t p = *i;
	unsigned char c = s[p];
	int32_t cp;
	size_t len, k;
	if (c < 0x80) {
		*i = p + 1;
		return c;
	}
	if (c >= 0xC2 && c <= 0xDF) {
		len = 2;
		cp = c & 0x1F;
	} else if (c >= 0xE0 && c <= 0xEF) {
		len = 3;
		cp = c & 0x0F;
	} else if (c >= 0xF0 && c <= 0xF4) {
		len = 4;
		cp = c & 0x07;
	} else {
		goto invalid;
	}
	if (n - p < len)
		goto invalid;
	for (k = 1; k < len; k++) {
		if ((s[p + k] & 0xC0) != 0x80)
			goto invalid;
		cp = (cp << 6) | (s[p + k] & 0x3F);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
	    (cp >= 0xD800 && cp <= 0xDFFF))
		goto invalid;
	*i = p + len;
	return cp;
invalid:
	*i = p + 1;
	return -1;
}

/* The table row of a non-ASCII character, or NULL when no code page or class has it. */
static const bn_char_row *row_of(int32_t cp)
{
	size_t lo = 0, hi = BN_CHAR_ROWS;
	if (cp < 0x80 || (cp >= BN_CHAR_GAP_LO && cp < BN_CHAR_GAP_HI))
		return NULL;
	if (cp < 0x180)
		return bn_char_row_lo[cp - 0x80] < 0 ? NULL : &bn_char_rows[bn_char_row_lo[cp - 0x80]];
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (bn_char_rows[mid].cp < (uint32_t)cp)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < BN_CHAR_ROWS && bn_char_rows[lo].cp == (uint32_t)cp ? &bn_char_rows[lo] : NULL;
}

static uint32_t classes_of(int32_t cp)
{
	const bn_char_row *r = row_of(cp);
	return r ? r->classes : 0;
}

/* \s of the badness rules: White_Space plus the ASCII separators U+001C-U+001F. */
static int is_space(int32_t cp)
{
	if (cp < 0x80)
		return cp == ' ' || (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x1F);
	return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
	       cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

/* \w of the badness rules: a letter, a number or '_'. */
static int is_word(int32_t cp)
{
	if (cp < 0)
		return 0;
	if (cp < 0x80)
		return cp == '_' || (cp >= '0' && cp <= '9') || ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z');
	switch (utf8proc_category(cp)) {
	case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
	case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_ND:
	case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
		return 1;
	default:
		return 0;
	}
}

static int is_alpha(int32_t cp)
{
	return cp >= 0 && cp < 0x80 && (cp | 0x20) >= 'a' && (cp | 0x20) <= 'z';
}

static int is_lower(int32_t cp)
{
	return cp >= 'a' && cp <= 'z';
}

/* 1 when cp is one of the code points of set (a 0-terminated list). */
static int in_set(int32_t cp, const int32_t *set)
{
	for (; *set; set++)
		if (*set == cp)
			return 1;
	return 0;
}

#define UA BN_CC_UPPER_ACC
#define LA BN_CC_LOWER_ACC
#define UC BN_CC_UPPER_COMMON
#define LC BN_CC_LOWER_COMMON
#define BAD BN_CC_BAD
#define BOX BN_CC_BOX
#define SP BN_CC_START_PUNCT
#define EP BN_CC_END_PUNCT
#define CUR BN_CC_CURRENCY
#define NUM BN_CC_NUMERIC
#define LAW BN_CC_LAW
#define KAO BN_CC_KAOMOJI
#define COMMON BN_CC_COMMON
#define C1 BN_CC_C1

/* The classes the rules test (the UTF-8 clue classes only serve stretch_at). */
#define RULE_CLASSES (BN_CC_UTF8_FIRST2 - 1)

/* Sets of single characters the rules name. */
static const int32_t after_a_tilde[] = {0x20AC, 0x153, 0x160, 0x161, 0xA2, 0xA3, 0x178, 0x17E, 0xA0, 0xAD,
					 0xAE, 0xA9, 0xB0, 0xB7, 0xBB, 0x2013, 0x2014, 0xB4, 0};
static const int32_t arabic_tail[] = {0x178, 0x160, 0xAE, 0xB0, 0xB5, 0xBB, 0};
static const int32_t indic_tail[] = {0xB2, 0xB5, 0xB9, 0xBC, 0xBD, 0xBE, 0};
static const int32_t mac_root_tail[] = {0xB1, 0x2202, 0x2020, 0x2260, 0xAE, 0x2122, 0xB4, 0x2264, 0x2265,
					0xA5, 0xB5, 0xF8, 0};
static const int32_t mac_quote_a_tail[] = {0xEC, 0xEE, 0xEF, 0xF2, 0xF4, 0xFA, 0xF9, 0xFB, 0x2020, 0xB0,
					   0xA2, 0x3C0, 0};
static const int32_t mac_quote_tail[] = {0xE0, 0xE4, 0xB0, 0xEA, 0};
static const int32_t greek_euro_tail[] = {0x2122, 0xA0, 0x386, 0xAD, 0xAE, 0xB0, 0};

static int cyr_vgrs(int32_t cp)
{
	return cp == 0x412 || cp == 0x413 || cp == 0x420 || cp == 0x421;
}

static int greek_bgxo(int32_t cp)
{
	return cp == 0x392 || cp == 0x393 || cp == 0x39E || cp == 0x39F;
}

static int arabic_second(int32_t cp, uint32_t k)
{
	return (k & (COMMON | CUR | BAD | NUM | SP)) || in_set(cp, arabic_tail);
}

/*
 * The length of the mojibake sequence that starts at v[i], or 0. The rules
 * are tried in order and the first that matches counts, as the alternatives
 * of ftfy's badness expression are, which these follow: class sequences such
 * as [accented][bad], then sequences typical of one code page (Windows-1252
 * "Ã©", MacRoman "√©", Windows-1251 "вЂ", ...).
 */
static size_t rule_at(const int32_t *v, const uint32_t *k, size_t n, size_t i)
{
	int32_t x = v[i], y = i + 1 < n ? v[i + 1] : -1, z = i + 2 < n ? v[i + 2] : -1;
	uint32_t a = k[i] & RULE_CLASSES, b = i + 1 < n ? k[i + 1] : 0, c = i + 2 < n ? k[i + 2] : 0;

	/* Only five rules can start with an unclassed character: test just those, in their order. */
	if (!a) {
		if (is_alpha(x) && (b & (LC | UC)) && (c & BAD))
			return 3;
		if (is_space(x) && (b & UA) && (c & CUR))
			return 3;
		if (is_lower(x) && (b & UA) && (c & (SP | CUR)))
			return 3;
		if (is_lower(x)) {
			if (is_space(y) && (z == 0xC3 || z == 0xC2) && i + 3 < n && v[i + 3] == ' ')
				return 4;
			if ((y == 0xC3 || y == 0xC2) && z == ' ')
				return 3;
		}
		if ((is_lower(x) || x == '.' || x == ',' || x == '?' || x == '!') && y == 0xC2 &&
		    (z == ' ' || (c & (SP | EP))))
			return 3;
		return 0;
	}
	if (a & C1)
		return 1;
	if ((a & (BAD | LA | UA | BOX | SP | EP | CUR | NUM | LAW)) && (b & BAD))
		return 2;
	if (is_alpha(x) && (b & (LC | UC)) && (c & BAD))
		return 3;
	if ((a & BAD) && (b & (LA | UA | BOX | SP | EP | CUR | NUM | LAW)))
		return 2;
	if ((a & (LA | LC | BOX | EP | CUR | NUM)) && (b & UA))
		return 2;
	if ((a & (BOX | EP | CUR | NUM)) && (b & LA))
		return 2;
	if ((a & (LA | BOX | EP)) && (b & CUR))
		return 2;
	if (is_space(x) && (b & UA) && (c & CUR))
		return 3;
	if ((a & (UA | BOX)) && (b & (NUM | LAW)))
		return 2;
	if ((a & (LA | UA | BOX | CUR | EP)) && (b & SP) && (c & NUM))
		return 3;
	if ((a & (LA | UA | CUR | NUM | BOX | LAW)) && (b & EP) && (c & SP))
		return 3;
	if ((a & (CUR | NUM | BOX)) && (b & SP))
		return 2;
	if (is_lower(x) && (b & UA) && (c & (SP | CUR)))
		return 3;
	if ((a & BOX) && (b & KAO))
		return 2;
	if ((a & (LA | UA | CUR | NUM | SP | EP | LAW)) && (b & BOX))
		return 2;
	if ((a & BOX) && (b & EP))
		return 2;
	if ((a & (LA | UA)) && (b & (SP | EP)) && is_word(z))
		return 3;
	/* œ not followed by an unaccented Latin letter */
	if ((x == 0x152 || x == 0x153) && y >= 0 && !is_alpha(y))
		return 2;
	/* a degree sign after an accented capital */
	if ((a & UA) && y == 0xB0)
		return 2;
	/* Windows-1252 two-character mojibake: Â, Ã, Î, Ð followed by a typical second character */
	if ((x == 0xC2 || x == 0xC3 || x == 0xCE || x == 0xD0) && ((b & (SP | EP)) || in_set(y, after_a_tilde)))
		return 2;
	if (x == 0xD7 && (y == 0xB2 || y == 0xB3))
		return 2;
	/* Windows-1252 mojibake of Arabic: four characters, since the second ones are common */
	if ((x == 0xD8 || x == 0xD9) && y >= 0 && arabic_second(y, b) && (z == 0xD8 || z == 0xD9) &&
	    i + 3 < n && arabic_second(v[i + 3], k[i + 3]))
		return 4;
	/* Windows-1252 mojibake that starts some South Asian letters */
	if (x == 0xE0 && in_set(y, indic_tail))
		return 2;
	/* MacRoman */
	if (x == 0x221A && in_set(y, mac_root_tail))
		return 2;
	if (x == 0x2248 && (y == 0xB0 || y == 0xA2))
		return 2;
	if (x == 0x201A && y == 0xC4 && in_set(z, mac_quote_a_tail))
		return 3;
	if (x == 0x201A && (y == 0xE2 || y == 0xF3) && in_set(z, mac_quote_tail))
		return 3;
	/* Windows-1251 mojibake of U+2000-U+203F, of Latin-1 and of Cyrillic */
	if (x == 0x432 && y == 0x402)
		return 2;
	if (cyr_vgrs(x) && ((b & (C1 | BAD | SP | EP | CUR)) || y == 0xB0 || y == 0xB5) && cyr_vgrs(z))
		return 3;
	if (x == 0x413 && y == 0x45E && z == 0x412 && i + 6 < n && v[i + 3] == 0x402 && v[i + 4] == 0x412 &&
	    v[i + 5] != '\n' && (is_alpha(v[i + 6]) || v[i + 6] == ' '))
		return 7;
	/* Windows-1252 à and á, and a no-break space that became a space after Ã or Â */
	if (x == 0xC3 && (y == 0xA0 || y == 0xA1))
		return 2;
	if (is_lower(x)) {
		if (is_space(y) && (z == 0xC3 || z == 0xC2) && i + 3 < n && v[i + 3] == ' ')
			return 4;
		if ((y == 0xC3 || y == 0xC2) && z == ' ')
			return 3;
	}
	if (i == 0 && (x == 0xC3 || x == 0xC2) && y == ' ')
		return 2;
	/* Â standing before the very character it was the lead byte of */
	if ((is_lower(x) || x == '.' || x == ',' || x == '?' || x == '!' || (a & EP)) && y == 0xC2 &&
	    (z == ' ' || (c & (SP | EP))))
		return 3;
	/* Windows-1253 and Windows-1257 mojibake of U+2000-U+203F and of Greek */
	if (x == 0x3B2 && y == 0x20AC && in_set(z, greek_euro_tail))
		return 3;
	if (greek_bgxo(x) && ((b & (C1 | BAD | SP | EP | CUR)) || y == 0xB0) && greek_bgxo(z))
		return 3;
	if (x == 0x101 && y == 0x20AC)
		return 2;
	return 0;
}

static int is_letter_cat(utf8proc_category_t c)
{
	return c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO;
}

/* Characters that stand inside words of real text: apostrophes, hyphens, the Catalan middle dot. */
static int word_inner(int32_t cp)
{
	return cp == 0x2019 || cp == 0x2018 || cp == 0xB7 || cp == 0x2010 || cp == 0x2011 || cp == 0x02BC;
}

/* A coarse script of a letter: Latin, IPA, Greek, Cyrillic, CJK (Han, kana, Hangul), else its 256-block. */
static int script_of(int32_t cp)
{
	if (cp < 0x250 || (cp >= 0x1E00 && cp <= 0x1EFF) || (cp >= 0x2C60 && cp <= 0x2C7F) ||
	    (cp >= 0xA720 && cp <= 0xA7FF) || (cp >= 0xFB00 && cp <= 0xFB06))
		return 0;
	if (cp <= 0x2AF || (cp >= 0x1D00 && cp <= 0x1DBF))
		return 1;
	if ((cp >= 0x370 && cp <= 0x3FF) || (cp >= 0x1F00 && cp <= 0x1FFF))
		return 2;
	if (cp >= 0x400 && cp <= 0x52F)
		return 3;
	if ((cp >= 0x2E80 && cp <= 0x9FFF) || (cp >= 0xAC00 && cp <= 0xD7AF) || (cp >= 0xF900 && cp <= 0xFAFF) ||
	    (cp >= 0xFF00 && cp <= 0xFFEF) || cp >= 0x20000)
		return 4;
	return 16 + (cp >> 8);
}

/*
 * Weaker signs of mojibake, which real text shows now and then but which
 * mojibake of short values (single words, names) shows almost always:
 * a small letter followed by a capital outside ASCII ("dĆ©", "РґРѕ"), a
 * symbol or punctuation outside ASCII between two non-spaces ("Ä…c",
 * "b√∏y", "h├╕v"), and a soft hyphen between a letter outside ASCII and a
 * letter ("Å\u00ADt"), letters of two scripts side by
 * side, box drawing touching a letter. Only a reading that leaves none
 * of them and no other sign, in one script, is taken on this evidence.
 */
/* The category the weak signs need: exact outside ASCII; ASCII letters only as LU/LL, the rest as Cn. */
static utf8proc_category_t cat_of(int32_t cp)
{
	if (cp >= 0x80)
		return utf8proc_category(cp);
	if (cp >= 'a' && cp <= 'z')
		return UTF8PROC_CATEGORY_LL;
	if (cp >= 'A' && cp <= 'Z')
		return UTF8PROC_CATEGORY_LU;
	return UTF8PROC_CATEGORY_CN;
}

static long weak_badness(const int32_t *v, size_t n)
{
	long count = 0;
	size_t i;
	/* Categories of v[i-1], v[i], v[i+1] (0 = Cn, also for ASCII not yet looked at). */
	utf8proc_category_t cp_ = UTF8PROC_CATEGORY_CN, cx, cy;
	if (n == 0)
		return 0;
	cx = cat_of(v[0]);
	for (i = 0; i < n; i++, cp_ = cx, cx = cy) {
		int32_t x = v[i];
		cy = i + 1 < n ? cat_of(v[i + 1]) : UTF8PROC_CATEGORY_CN;
		if (x < 0x80 && (i + 1 == n || v[i + 1] < 0x80))
			continue;
		if (i + 1 < n && v[i + 1] >= 0x80) {
			if (cx == UTF8PROC_CATEGORY_LL && (cy == UTF8PROC_CATEGORY_LU || cy == UTF8PROC_CATEGORY_LT))
				count++;
			/* two capitals outside ASCII opening a lowercase word: "ĂŠbattirent" */
			else if (x >= 0x80 && cx == UTF8PROC_CATEGORY_LU && cy == UTF8PROC_CATEGORY_LU && i + 2 < n &&
				 cat_of(v[i + 2]) == UTF8PROC_CATEGORY_LL && (i == 0 || !is_word(v[i - 1])))
				count++;
		}
		/* letters of two scripts side by side: "Гјbergang", "COΓéé" */
		if (i + 1 < n && is_letter_cat(cx) && is_letter_cat(cy) && script_of(x) != script_of(v[i + 1]))
			count++;
		if (x < 0x80)
			continue;
		/* box drawing touching a letter: "─ëerpetataj" */
		if ((classes_of(x) & BN_CC_BOX) && ((i > 0 && is_word(v[i - 1])) || (i + 1 < n && is_word(v[i + 1]))))
			count++;
		if (i == 0 || i + 1 == n)
			continue;
		/* a character nearly only seen in mojibake inside a word: "iƒùa" */
		if ((classes_of(x) & BN_CC_BAD) && is_word(v[i - 1]) && is_word(v[i + 1]))
			count++;
		if (cx >= UTF8PROC_CATEGORY_PC && cx <= UTF8PROC_CATEGORY_SO && !word_inner(x) &&
		    !is_space(v[i - 1]) && !is_space(v[i + 1]) && (v[i - 1] >= 0x80 || is_word(v[i - 1])) &&
		    (v[i + 1] >= 0x80 || is_word(v[i + 1])))
			count++;
		else if (x == 0xAD && v[i - 1] >= 0x80 && is_letter_cat(cp_) && is_letter_cat(cy))
			count++;
	}
	return count;
}

/*
 * 1 when v reads as ordinary text: no unassigned, private-use, control or
 * format character, no U+FFFD, no combining mark on anything but a letter,
 * and every letter of one script. Asked of a reading taken on weak evidence
 * only.
 */
static int plausible(const int32_t *v, size_t n)
{
	int script = -1;
	size_t i;
	for (i = 0; i < n; i++) {
		utf8proc_category_t c;
		int s;
		if (v[i] < 0x80) {
			if (v[i] < 0x20 || v[i] == 0x7F)
				return 0;
			if (!is_alpha(v[i]))
				continue;
		}
		c = utf8proc_category(v[i]);
		if (v[i] == 0xFFFD || c == UTF8PROC_CATEGORY_CN || c == UTF8PROC_CATEGORY_CO ||
		    c == UTF8PROC_CATEGORY_CS || c == UTF8PROC_CATEGORY_CC || c == UTF8PROC_CATEGORY_CF)
			return 0;
		/* a combining mark on a digit, a space or punctuation: "4288×…" is not "4288\u05C5" */
		if (c >= UTF8PROC_CATEGORY_MN && c <= UTF8PROC_CATEGORY_ME &&
		    (i == 0 || !(is_letter_cat(utf8proc_category(v[i - 1])) ||
				 (utf8proc_category(v[i - 1]) >= UTF8PROC_CATEGORY_MN &&
				  utf8proc_category(v[i - 1]) <= UTF8PROC_CATEGORY_ME))))
			return 0;
		if (!is_letter_cat(c))
			continue;
		s = script_of(v[i]);
		if (script < 0)
			script = s;
		else if (s != script)
			return 0;
	}
	return 1;
}

static int cls_reserve(bn_mojibake *m, size_t n)
{
	uint32_t *p = bn_array_reserve(m->cls, &m->cls_cap, n, sizeof(*m->cls));
	if (!p)
		return -1;
	m->cls = p;
	return 0;
}

/* The number of mojibake sequences in v, whose classes m->cls holds (non-overlapping, left to right); at most limit. */
static long badness_classified(bn_mojibake *m, const int32_t *v, size_t n, long limit)
{
	size_t i = 0;
	long count = 0;
	while (i < n && count < limit) {
		size_t len;
		/* Every rule has a classed character among its first three. */
		if (!(m->cls[i] & RULE_CLASSES) && (i + 1 >= n || !(m->cls[i + 1] & RULE_CLASSES)) &&
		    (i + 2 >= n || !(m->cls[i + 2] & RULE_CLASSES))) {
			i++;
			continue;
		}
		len = rule_at(v, m->cls, n, i);
		if (len) {
			count++;
			i += len;
		} else {
			i++;
		}
	}
	return count;
}

/* badness_classified of any v. -1: out of memory. */
static long badness(bn_mojibake *m, const int32_t *v, size_t n, long limit)
{
	size_t i;
	int any = 0;
	if (cls_reserve(m, n) < 0)
		return -1;
	for (i = 0; i < n; i++) {
		m->cls[i] = v[i] < 0x80 ? 0 : classes_of(v[i]);
		any |= m->cls[i] != 0;
	}
	/* Every rule needs a classed character. */
	return any ? badness_classified(m, v, n, limit) : 0;
}

/* What decode_into learns about a value on the way. */
#define SEEN_KNOWN 1   /* a character outside ASCII that the tables know: without one nothing applies */
#define SEEN_PAIR 2    /* a lead byte's character before a continuation's, a space or '?' (a reading may decode) */
#define SEEN_STRICT 4  /* a lead byte's character before a continuation's (a reading without repairs may decode) */
#define SEEN_BUNCHED 8 /* classed characters that a rule could match: without, the badness is 0 */

/*
 * Decode valid UTF-8 into c and its classes into m->cls; *seen gets SEEN_*
 * bits, *pages the code pages that can encode every character. Returns 0 or
 * -1 (out of memory).
 */
static int decode_into(bn_mojibake *m, cpvec *c, const char *in, size_t size, int *seen, uint32_t *pages)
{
	const unsigned char *u = (const unsigned char *)in;
	size_t i = 0;
	uint32_t prev = 0;
	int32_t prev_cp = 0;
	*seen = 0;
	*pages = (1u << BN_CP_COUNT) - 1;
	if (cpvec_reserve(c, size + 1) < 0 || cls_reserve(m, size + 1) < 0)
		return -1;
	c->n = 0;
	while (i < size) {
		int32_t cp = u[i] < 0x80 ? u[i++] : bn_utf8_next(u, size, &i);
		uint32_t k = 0;
		if (cp < 0)
			cp = 0xFFFD;
		if (cp >= 0x80) {
			const bn_char_row *r = row_of(cp);
			if (r) {
				*seen |= SEEN_KNOWN;
				*pages &= r->pages;
				k = r->classes;
			} else {
				*pages = 0;
			}
			/* Every rule needs two classed characters side by side, but for a C1
			 * control, Œ/œ, and Ã or Â before a space (see rule_at). */
			if ((prev_cp >= 0x80 && ((k | prev) & RULE_CLASSES)) || (cp >= 0x80 && cp <= 0x9F) ||
			    cp == 0x152 || cp == 0x153 || cp == 0xC2 || cp == 0xC3)
				*seen |= SEEN_BUNCHED;
		} else if (cp == 0x1A) {
			*pages = 0;
		}
		m->cls[c->n] = k;
		c->v[c->n++] = cp;
		/* A reading decodes only where a lead byte's character meets a continuation's (or a
		 * space or '?' that stood for one): without such a pair no code page can help. */
		if (prev & (BN_CC_UTF8_FIRST2 | BN_CC_UTF8_FIRST3 | BN_CC_UTF8_FIRST4)) {
			if (k & BN_CC_UTF8_CONT)
				*seen |= SEEN_PAIR | SEEN_STRICT;
			else if (cp == ' ' || cp == '?' || cp == 0xFFFD)
				*seen |= SEEN_PAIR;
		}
		prev = k;
		prev_cp = cp;
	}
	return 0;
}

/* The code pages (bit k: bn_cp_names[k]) that can encode every character of v. */
static uint32_t encodable_pages(const int32_t *v, size_t n)
{
	uint32_t pages = (1u << BN_CP_COUNT) - 1;
	size_t i;
	for (i = 0; i < n && pages; i++) {
		const bn_char_row *r;
		if (v[i] < 0x80) {
			/* 0x1A stands for a lost byte in a sloppy encoding: a literal one cannot be told apart. */
			if (v[i] == 0x1A)
				return 0;
			continue;
		}
		r = row_of(v[i]);
		if (!r)
			return 0;
		pages &= r->pages;
	}
	return pages;
}

static void encode_page(bn_buf *b, const int32_t *v, size_t n, int page)
{
	size_t i;
	bn_buf_reset(b);
	for (i = 0; i < n; i++)
		b->data[b->size++] = (char)(v[i] < 0x80 ? v[i] : row_of(v[i])->byte[page]);
}

static int cont_byte(unsigned char c)
{
	return c >= 0x80 && c <= 0xBF;
}

/* A continuation byte that is not 0x85 or 0xA0 (bytes a lost no-break space cannot stand next to). */
static int cont_not_a0(unsigned char c)
{
	return cont_byte(c) && c != 0x85 && c != 0xA0;
}

/*
 * Length of a UTF-8 sequence at u[i] that would be valid if one of its 0xA0
 * bytes had not become a space (the usual fate of a no-break space in
 * Windows-1252 software), or 0. Lead bytes are limited to those whose
 * characters are likely there: Â (U+00A0), à, Š, Π, Р, ٠; E2/E3 and F0.
 */
static size_t altered_at(const unsigned char *u, size_t n, size_t i, int only_c3)
{
	unsigned char c = u[i];
	if (i + 1 < n && u[i + 1] == ' ' &&
	    (c == 0xC3 || (!only_c3 && (c == 0xC2 || c == 0xC5 || c == 0xCE || c == 0xD0 || c == 0xD9))))
		return 2;
	if (only_c3)
		return 0;
	if (i + 2 < n && (c == 0xE2 || c == 0xE3) && u[i + 1] == ' ' && cont_not_a0(u[i + 2]))
		return 3;
	if (i + 2 < n && c >= 0xE0 && c <= 0xE3 && cont_not_a0(u[i + 1]) && u[i + 2] == ' ')
		return 3;
	if (i + 3 < n && c == 0xF0) {
		int spaces = (u[i + 1] == ' ') + (u[i + 2] == ' ') + (u[i + 3] == ' ');
		int conts = cont_byte(u[i + 1]) + cont_byte(u[i + 2]) + cont_byte(u[i + 3]);
		if (spaces == 1 && conts == 2)
			return 4;
	}
	return 0;
}

/* 1 when "\xc3 " at u[i] stands for the French/Portuguese word "à" (not "às", "àquele" and the like). */
static int a_grave_word(const unsigned char *u, size_t n, size_t i)
{
	static const char *const not_after[] = {" ", "quele", "quela", "quilo", "s "};
	size_t k, rest;
	if (!(i + 1 < n && u[i] == 0xC3 && u[i + 1] == ' '))
		return 0;
	rest = n - i - 2;
	for (k = 0; k < sizeof(not_after) / sizeof(not_after[0]); k++) {
		size_t len = strlen(not_after[k]);
		if (rest >= len && memcmp(u + i + 2, not_after[k], len) == 0)
			return 0;
	}
	return 1;
}

/*
 * Restore no-break spaces that became spaces inside UTF-8 sequences: from in
 * to out. only_c3: just "Ã " / "Г " for "à" (code pages whose other lead-byte
 * characters are not letters). Returns 1 when it changed anything.
 */
static int restore_a0(bn_buf *out, const bn_buf *in, int only_c3)
{
	const unsigned char *u = (const unsigned char *)in->data;
	size_t i = 0, n = in->size, k, len;
	int found = 0, changed = 0;
	for (i = 0; i < n && !found; i++)
		found = altered_at(u, n, i, only_c3) > 0;
	if (!found)
		return 0;
	/* "à" followed by a space first: its own no-break space was lost and the word's space kept. */
	bn_buf_reset(out);
	for (i = 0; i < n; i++) {
		out->data[out->size++] = (char)u[i];
		if (a_grave_word(u, n, i)) {
			out->data[out->size++] = (char)0xA0;
			changed = 1;
		}
	}
	u = (const unsigned char *)out->data;
	n = out->size;
	i = 0;
	while (i < n) {
		len = altered_at(u, n, i, only_c3);
		if (!len) {
			i++;
			continue;
		}
		for (k = i; k < i + len; k++)
			if (u[k] == ' ')
				out->data[k] = (char)0xA0;
		changed = 1;
		i += len;
	}
	return changed;
}

static int lost(unsigned char c)
{
	return c == 0x1A;
}

static int lost_or_q(unsigned char c)
{
	return c == 0x1A || c == '?';
}

static int lost_or_cont(unsigned char c)
{
	return c == 0x1A || cont_byte(c);
}

static int lost_q_or_cont(unsigned char c)
{
	return c == 0x1A || c == '?' || cont_byte(c);
}

/*
 * Length of a UTF-8 (or CESU-8) sequence at u[i] that lost a byte - to 0x1A
 * (U+FFFD encoded back) or to '?', at most one '?' - or 0.
 */
static size_t lossy_at(const unsigned char *u, size_t n, size_t i)
{
	unsigned char c = u[i];
	size_t r = n - i;
	if (lost(c))
		return 1;
	if (r >= 2 && c >= 0xC2 && c <= 0xDF && lost(u[i + 1]))
		return 2;
	if (r >= 2 && (c == 0xC2 || c == 0xC3) && u[i + 1] == '?')
		return 2;
	if (r >= 6 && c == 0xED && u[i + 1] >= 0xA0 && u[i + 1] <= 0xAF && u[i + 3] == 0xED && u[i + 4] >= 0xB0 &&
	    u[i + 4] <= 0xBF &&
	    ((lost_or_q(u[i + 2]) && lost_q_or_cont(u[i + 5])) || (lost_q_or_cont(u[i + 2]) && lost_or_q(u[i + 5]))))
		return 6;
	if (r >= 3 && c >= 0xE0 && c <= 0xEF &&
	    ((lost_or_q(u[i + 1]) && lost_or_cont(u[i + 2])) || (lost_or_cont(u[i + 1]) && lost_or_q(u[i + 2]))))
		return 3;
	if (r >= 4 && c >= 0xF0 && c <= 0xF4) {
		int k, q = 0, ok = 1;
		for (k = 1; k <= 3; k++) {
			if (lost_or_q(u[i + k]) && !q)
				q = 1;
			else if (!lost_or_cont(u[i + k]))
				ok = 0;
		}
		if (ok && q)
			return 4;
	}
	return 0;
}

/* Replace sequences that lost a byte by U+FFFD: from in to out. Returns 1 when it changed anything. */
static int replace_lossy(bn_buf *out, const bn_buf *in)
{
	const unsigned char *u = (const unsigned char *)in->data;
	size_t i = 0, n = in->size;
	int changed = 0;
	bn_buf_reset(out);
	while (i < n) {
		size_t len = lossy_at(u, n, i);
		if (!len) {
			out->data[out->size++] = (char)u[i++];
			continue;
		}
		memcpy(out->data + out->size, "\xEF\xBF\xBD", 3);
		out->size += 3;
		i += len;
		changed = 1;
	}
	return changed;
}

/*
 * Decode b as UTF-8 into c, accepting CESU-8 surrogate pairs and C0 80 for
 * U+0000 (what Java and old MySQL write). Returns 1 when it decodes and has
 * a multi-byte character, 0 when not, -1 when out of memory.
 */
static int decode_variants(cpvec *c, const bn_buf *b)
{
	const unsigned char *u = (const unsigned char *)b->data;
	size_t i = 0, n = b->size;
	int multi = 0;
	if (cpvec_reserve(c, n + 1) < 0)
		return -1;
	c->n = 0;
	while (i < n) {
		int32_t cp;
		if (u[i] < 0x80) {
			c->v[c->n++] = u[i++];
			continue;
		}
		multi = 1;
		if (u[i] == 0xC0 && i + 1 < n && u[i + 1] == 0x80) {
			c->v[c->n++] = 0;
			i += 2;
			continue;
		}
		if (u[i] == 0xED && i + 5 < n && u[i + 1] >= 0xA0 && u[i + 1] <= 0xAF && cont_byte(u[i + 2]) &&
		    u[i + 3] == 0xED && u[i + 4] >= 0xB0 && u[i + 4] <= 0xBF && cont_byte(u[i + 5])) {
			int32_t hi = ((u[i + 1] & 0x0F) << 6) | (u[i + 2] & 0x3F);
			int32_t lo = ((u[i + 4] & 0x0F) << 6) | (u[i + 5] & 0x3F);
			c->v[c->n++] = 0x10000 + (hi << 10) + lo;
			i += 6;
			continue;
		}
		cp = bn_utf8_next(u, n, &i);
		if (cp < 0)
			return 0;
		c->v[c->n++] = cp;
	}
	return multi;
}

static int same(const cpvec *a, const cpvec *b)
{
	return a->n == b->n && memcmp(a->v, b->v, a->n * sizeof(*a->v)) == 0;
}

/* Letters and marks that UTF-8 mojibake produces far more often than text does (ĸ, ſ, Latin Extended-B, IPA, rare Greek and Cyrillic, Hebrew points, ...). */
static long rarity(const int32_t *v, size_t n)
{
	long count = 0;
	size_t i;
	for (i = 0; i < n; i++) {
		int32_t c = v[i];
		count += c == 0x138 || c == 0x17F || (c >= 0x180 && c <= 0x36F) || (c >= 0x3CF && c <= 0x3FF) || (c >= 0x460 && c <= 0x48F) ||
			 (c >= 0x492 && c <= 0x52F) || (c >= 0x591 && c <= 0x5CF) || (c >= 0x700 && c <= 0x8FF);
	}
	return count;
}

/* How a reading ranks: fewer strong signs, then fewer weak ones, then plausible, then fewer rare characters. */
typedef struct rank {
	long strong, weak, implausible, rare;
} rank;

static int rank_less(const rank *a, const rank *b)
{
	if (a->strong != b->strong)
		return a->strong < b->strong;
	if (a->weak != b->weak)
		return a->weak < b->weak;
	if (a->implausible != b->implausible)
		return a->implausible < b->implausible;
	return a->rare < b->rare;
}

/* Code pages whose characters for the lead bytes restore_a0 knows are not letters. */
#define NO_A0_PAGE(k) ((k) == BN_CP_MACROMAN || (k) == BN_CP_CP437)

/* Readings read_whole accepts. */
#define ANY_READING LONG_MAX             /* any reading that decodes */
#define ANY_PLAIN_READING (LONG_MAX - 1) /* any reading that decodes with no byte restored or lost */
#define CLEAN_READING 0                  /* no sign of mojibake at all, weak ones included, and plausible() */

/*
 * Read a as UTF-8 that one of the code pages decoded. Of the readings that
 * decode and have a badness below `below` (or, with CLEAN_READING, are clean:
 * no sign, plausible, no rare letter, and no byte restored or lost), the best
 * ranked goes to out. With CLEAN_READING and ANY_PLAIN_READING no byte is
 * restored or marked lost: weak evidence alone never justifies that. Returns 1 with *page, *how (READ_*) and
 * *after set, 0 when no reading qualifies, -1 when out of memory.
 */
static int read_whole(bn_mojibake *m, const cpvec *a, cpvec *out, long below, int *page, int *how, long *after)
{
	uint32_t pages = encodable_pages(a->v, a->n);
	int k, rc, found = 0, repairs = below != CLEAN_READING && below != ANY_PLAIN_READING;
	rank best = {0, 0, 0, 0};
	if (!pages)
		return 0;
	/* restore_a0 adds at most a byte per character, replace_lossy at most triples the result. */
	if (bn_buf_reserve(&m->bytes, a->n * 6 + 1) < 0 || bn_buf_reserve(&m->bytes2, a->n * 6 + 1) < 0)
		return -1;
	for (k = 0; k < BN_CP_COUNT; k++) {
		bn_buf *b = &m->bytes, *t = &m->bytes2, tmp;
		rank r;
		int flags = 0;
		if (!(pages & (1u << k)))
			continue;
		encode_page(b, a->v, a->n, k);
		/* Only where the lead byte's character is a letter (Â, Ã, Å, Î, Ð): in MacRoman and
		 * cp437 it is a dash or a box, in Windows-1251 often a word of its own ("В "), all
		 * but "Г " (à). Never on weak evidence alone. */
		if (repairs && !NO_A0_PAGE(k) && restore_a0(t, b, k == BN_CP_1251)) {
			tmp = *b, *b = *t, *t = tmp;
			flags |= READ_A0;
		}
		if (repairs && bn_cp_sloppy[k] && replace_lossy(t, b)) {
			tmp = *b, *b = *t, *t = tmp;
			flags |= READ_LOSSY;
		}
		rc = decode_variants(&m->trial, &m->bytes);
		if (rc < 0)
			return -1;
		if (rc == 0 || same(a, &m->trial))
			continue;
		r.strong = badness(m, m->trial.v, m->trial.n, LONG_MAX);
		if (r.strong < 0)
			return -1;
		r.weak = weak_badness(m->trial.v, m->trial.n);
		r.implausible = !plausible(m->trial.v, m->trial.n);
		r.rare = rarity(m->trial.v, m->trial.n);
		if (below == CLEAN_READING ? r.strong || r.weak || r.implausible || r.rare : r.strong >= below)
			continue;
		if (found && !rank_less(&r, &best))
			continue;
		cpvec_swap(out, &m->trial);
		best = r;
		found = 1;
		*page = k;
		*how = flags;
		*after = r.strong;
	}
	return found;
}

static int cont_char(int32_t cp, uint32_t k)
{
	return cp == ' ' || (k & BN_CC_UTF8_CONT);
}

/* End of the stretch of UTF-8-looking characters that starts at v[i], or i when none does. */
static size_t stretch_at(const int32_t *v, size_t n, size_t i)
{
	size_t j = i;
	/* Not inside a longer garble: fixing a few characters of it would make it worse.
	 * Quotes and dashes (l’Ã©valuation) are ordinary text before a stretch. */
	if (i > 0 && v[i - 1] != ' ' && !(v[i - 1] >= 0x2010 && v[i - 1] <= 0x2026) &&
	    (classes_of(v[i - 1]) & BN_CC_UTF8_CONT))
		return i;
	for (;;) {
		uint32_t k = j < n ? classes_of(v[j]) : 0;
		if ((k & BN_CC_UTF8_FIRST2) && j + 1 < n && cont_char(v[j + 1], classes_of(v[j + 1])))
			j += 2;
		else if ((k & BN_CC_UTF8_FIRST3) && j + 2 < n && cont_char(v[j + 1], classes_of(v[j + 1])) &&
			 cont_char(v[j + 2], classes_of(v[j + 2])))
			j += 3;
		else if ((k & BN_CC_UTF8_FIRST4) && j + 3 < n && cont_char(v[j + 1], classes_of(v[j + 1])) &&
			 cont_char(v[j + 2], classes_of(v[j + 2])) && cont_char(v[j + 3], classes_of(v[j + 3])))
			j += 4;
		else
			break;
	}
	return j;
}

/*
 * Repair one stretch on its own (whole readings, several layers) into
 * m->piece. Returns 1 when it changed, 0 when not, -1 when out of memory.
 */
static int fix_stretch(bn_mojibake *m, const int32_t *v, size_t n)
{
	int steps, changed = 0, page, how;
	long bad, after;
	if (cpvec_reserve(&m->piece, n + 1) < 0)
		return -1;
	memcpy(m->piece.v, v, n * sizeof(*v));
	m->piece.n = n;
	bad = badness(m, v, n, 1);
	if (bad <= 0)
		return bad < 0 ? -1 : 0;
	bad = badness(m, v, n, LONG_MAX);
	for (steps = 0; steps < MAX_STEPS && bad > 0; steps++) {
		int rc = read_whole(m, &m->piece, &m->piece2, bad, &page, &how, &after);
		if (rc < 0)
			return -1;
		if (rc == 0)
			break;
		cpvec_swap(&m->piece, &m->piece2);
		bad = after;
		changed = 1;
	}
	return changed;
}

/* Stretches of mojibake inside correct text, each repaired on its own: from a to out. Returns 1, 0 or -1 as fix_stretch. */
static int read_stretches(bn_mojibake *m, const cpvec *a, cpvec *out, size_t *count)
{
	size_t i = 0;
	int changed = 0;
	*count = 0;
	if (cpvec_reserve(out, a->n + 1) < 0)
		return -1;
	out->n = 0;
	while (i < a->n) {
		size_t e = stretch_at(a->v, a->n, i);
		int rc;
		if (e == i) {
			out->v[out->n++] = a->v[i++];
			continue;
		}
		/* The whole value was tried as a whole already. */
		rc = e - i < a->n ? fix_stretch(m, a->v + i, e - i) : 0;
		if (rc < 0)
			return -1;
		if (rc) {
			/* A reading is never longer than what it reads. */
			memcpy(out->v + out->n, m->piece.v, m->piece.n * sizeof(*out->v));
			out->n += m->piece.n;
			changed = 1;
			(*count)++;
		} else {
			memcpy(out->v + out->n, a->v + i, (e - i) * sizeof(*out->v));
			out->n += e - i;
		}
		i = e;
	}
	return changed;
}

/* C1 controls read as the Windows-1252 characters of their bytes: from a to out. Returns 1 when any changed. */
static int read_c1(const cpvec *a, cpvec *out)
{
	size_t i;
	int changed = 0;
	if (cpvec_reserve(out, a->n + 1) < 0)
		return -1;
	for (i = 0; i < a->n; i++) {
		int32_t cp = a->v[i];
		if (cp >= 0x80 && cp <= 0x9F && bn_cp1252_c1[cp - 0x80] != cp) {
			cp = bn_cp1252_c1[cp - 0x80];
			changed = 1;
		}
		out->v[i] = cp;
	}
	out->n = a->n;
	return changed;
}

static int encode_out(bn_mojibake *m, const cpvec *c)
{
	size_t i;
	bn_buf_reset(&m->out);
	if (bn_buf_reserve(&m->out, c->n * 4 + 1) < 0)
		return -1;
	for (i = 0; i < c->n; i++)
		m->out.size += (size_t)utf8proc_encode_char(c->v[i], (utf8proc_uint8_t *)m->out.data + m->out.size);
	return 0;
}

long bn_mojibake_badness(bn_mojibake *m, const char *in, size_t size)
{
	int seen;
	uint32_t pages;
	if (decode_into(m, &m->cur, in, size, &seen, &pages) < 0)
		return -1;
	return badness_classified(m, m->cur.v, m->cur.n, LONG_MAX);
}

int bn_mojibake_fix(bn_mojibake *m, const char *in, size_t size, const char **out, size_t *out_size)
{
	int steps, changed = 0, rc, page, how;
	long bad, after, weak;
	size_t count;
	int seen;
	uint32_t pages;
	size_t i;

	/* Every known character is below U+2600 (lead bytes C2-E2) or among U+F8FF-U+FFFD
	 * (EF): CJK, Indic, Thai, Hangul, emoji skip even the decoding. */
	for (i = 0; i < size; i++) {
		unsigned char c = (unsigned char)in[i];
		if ((c >= 0xC2 && c <= 0xE2) || c == 0xEF)
			break;
	}
	if (i == size)
		return 0;
	if (decode_into(m, &m->cur, in, size, &seen, &pages) < 0)
		return -1;
	/* CJK and most other scripts stop here, and so do words with lone accented letters. */
	if (!(seen & SEEN_KNOWN) || (!(seen & SEEN_BUNCHED) && !(seen & SEEN_STRICT)))
		return 0;
	bad = seen & SEEN_BUNCHED ? badness_classified(m, m->cur.v, m->cur.n, LONG_MAX) : 0;
	if (bad < 0)
		return -1;
	if (bad == 0 && (!pages || !(seen & SEEN_STRICT)))
		return 0;
	for (steps = 0; steps < MAX_STEPS; steps++) {
		if (bad == 0)
			goto weak;
		rc = read_whole(m, &m->cur, &m->cand, bad, &page, &how, &after);
		if (rc < 0)
			return -1;
		if (rc) {
			say(m, "utf-8 read as %s%s%s: badness %ld -> %ld", bn_cp_names[page],
			    how & READ_A0 ? ", no-break spaces restored" : "",
			    how & READ_LOSSY ? ", lost bytes marked" : "", bad, after);
			goto accept;
		}
		/* A middle layer of nested mojibake can look as bad as the outer one: accept
		 * a reading that does not lower the badness only when the next one does. */
		rc = read_whole(m, &m->cur, &m->cand2, ANY_READING, &page, &how, &after);
		if (rc > 0) {
			int page2, how2;
			long mid = after;
			rc = read_whole(m, &m->cand2, &m->cand, bad, &page2, &how2, &after);
			if (rc > 0) {
				say(m, "utf-8 read as %s, then as %s%s%s: badness %ld -> %ld -> %ld", bn_cp_names[page],
				    bn_cp_names[page2], (how | how2) & READ_A0 ? ", no-break spaces restored" : "",
				    (how | how2) & READ_LOSSY ? ", lost bytes marked" : "", bad, mid, after);
				goto accept;
			}
		}
		if (rc < 0)
			return -1;
		rc = read_stretches(m, &m->cur, &m->cand, &count);
		if (rc < 0)
			return -1;
		if (rc) {
			after = badness(m, m->cand.v, m->cand.n, LONG_MAX);
			if (after < 0)
				return -1;
			if (after < bad) {
				say(m, "%zu stretch%s of mojibake inside correct text repaired: badness %ld -> %ld",
				    count, count == 1 ? "" : "es", bad, after);
				goto accept;
			}
		}
		rc = read_c1(&m->cur, &m->cand);
		if (rc < 0)
			return -1;
		if (rc) {
			after = badness(m, m->cand.v, m->cand.n, LONG_MAX);
			if (after < 0)
				return -1;
			say(m, "C1 controls read as windows-1252: badness %ld -> %ld", bad, after);
			goto accept;
		}
		say(m, "left as is: badness %ld, but no reading lowers it", bad);
		break;
weak:
		/* No strong sign: a value that shows weak ones and reads as clean text in one script. */
		if (steps == 0 ? !(seen & SEEN_STRICT) || !pages : !encodable_pages(m->cur.v, m->cur.n))
			break;
		weak = weak_badness(m->cur.v, m->cur.n);
		if (weak == 0)
			break;
		rc = read_whole(m, &m->cur, &m->cand, CLEAN_READING, &page, &how, &after);
		if (rc < 0)
			return -1;
		if (rc) {
			say(m, "utf-8 read as %s: weak signs %ld -> 0, clean text in one script", bn_cp_names[page], weak);
			goto accept;
		}
		/* Two layers, the middle one not clean: both readings at once. */
		rc = read_whole(m, &m->cur, &m->cand2, ANY_PLAIN_READING, &page, &how, &after);
		if (rc > 0) {
			int page2, how2;
			rc = read_whole(m, &m->cand2, &m->cand, CLEAN_READING, &page2, &how2, &after);
			if (rc > 0) {
				say(m, "utf-8 read as %s, then as %s: weak signs %ld -> 0, clean text in one script",
				    bn_cp_names[page], bn_cp_names[page2], weak);
				goto accept;
			}
		}
		if (rc < 0)
			return -1;
		say(m, "left as is: weak signs %ld, but no reading is clean text in one script", weak);
		break;
accept:
		cpvec_swap(&m->cur, &m->cand);
		bad = after;
		changed = 1;
	}
	if (!changed)
		return 0;
	if (encode_out(m, &m->cur) < 0)
		return -1;
	*out = m->out.data;
	*out_size = m->out.size;
	return 1;
}
