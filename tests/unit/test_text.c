/* test_text.c - unit tests of the `text` repair step: mojibake, NFKC, invisibles, whitespace, truncation, idempotence. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "normalize/chain.h"
#include "normalize/text.h"
#include "normalize/text_mojibake.h"

#define M BN_EFFECT_MOJIBAKE
#define N BN_EFFECT_NFKC
#define I BN_EFFECT_INVISIBLE
#define W BN_EFFECT_WHITESPACE
#define T BN_EFFECT_TRUNCATED

typedef struct repair_case {
	const char *in;
	size_t max;       /* 0 = no limit */
	const char *want;
	uint32_t effects;
} repair_case;

/* C1 controls cannot be written as \u escapes in C, hence the \x bytes. */
static const repair_case cases[] = {
	/* unchanged */
	{"hello world", 0, "hello world", 0},
	{"", 0, "", 0},
	{"Zürich", 0, "Zürich", 0},
	{"naïve", 0, "naïve", 0},
	{"Café", 0, "Café", 0},
	{"SÃO PAULO", 0, "SÃO PAULO", 0},
	{"日本語のテキスト", 0, "日本語のテキスト", 0},
	{"don’t", 0, "don’t", 0},
	{"Ωmega Straße", 0, "Ωmega Straße", 0},
	/* mojibake */
	{"SÃ£o Paulo", 0, "São Paulo", M},
	{"CafÃ©", 0, "Café", M},
	{"CafÃƒÂ©", 0, "Café", M},
	{"CafÃ\xc2\x83" "Â©", 0, "Café", M},
	{"donâ\xc2\x80\xc2\x99t", 0, "don’t", M},
	{"donâ€™t", 0, "don’t", M},
	{"æ—¥æœ¬", 0, "日本", M},
	{"ÃƒÆ’Ã‚Â©", 0, "é", M},
	{"ÃƒÆ’Ã†â€™Ãƒâ€šÃ‚Â©", 0, "é", M},
	{"MÃ¼nchen â€“ ZÃ¼rich", 0, "München – Zürich", M},
	/* Regression: correct text the old repair damaged ("all Windows-1252 and the bytes are UTF-8") */
	{"NESTLÉ®", 0, "NESTLÉ®", 0},
	{"MARQUÉ…", 0, "MARQUÉ...", N},
	{"4288×…", 0, "4288×...", N},
	{"SELKÄ\u00A0EDELLÄ", 0, "SELKÄ EDELLÄ", N},
	{"Offering 5×£35", 0, "Offering 5×£35", 0},
	{"ВІКІ", 0, "ВІКІ", 0},
	{"├┤a┼┐a", 0, "├┤a┼┐a", 0},
	{"Bremer/Mccoy – DrÃ¥ber", 0, "Bremer/Mccoy – DrÃ¥ber", 0},
	{"SENSЕ - Oleg", 0, "SENSЕ - Oleg", 0},
	/* other code pages, partial, lossy and C1 mojibake */
	{"РґРѕСЂРѕРіРµ", 0, "дороге", M},
	{"LiĂ¨ge", 0, "Liège", M},
	{"g√¢teaux et r√©gime", 0, "gâteaux et régime", M},
	{"#╨┐╤Ç╨░╨▓╨╕╨╗╤î╨╜╨╛╨╡", 0, "#правильное", M},
	{"Г‚ВЈ5.8bn", 0, "£5.8bn", M},
	{"dĆ©plia", 0, "déplia", M},
	{"aalborskÄ…", 0, "aalborską", M},
	{"voilÃ le travail", 0, "voilà le travail", M},
	{"\xc2\x84Handwerk\xc2\x93", 0, "„Handwerk“", M},
	{"III DivisÃ£o - Série", 0, "III Divisão - Série", M},
	/* Regression (fuzz_text): collapsing "  " completed a sign ("e Ã "); the next round must see it */
	{"„e  Ã :l§", 0, "„e à :l§", M | W},
	/* a lost byte becomes U+FFFD, which is removed: nothing is invented */
	{"â€œbbâ€?", 0, "“bb", M | I},
	/* mojibake hidden behind an invisible or odd whitespace: found in the next round */
	{"Ã\u200B©", 0, "é", M | I},
	{"Ã©\u2028", 0, "é", M | W},
	{"Ã©ｘ", 0, "éx", M | N},
	/* NFKC */
	{"ｃｏｍ．ｆｏｏ", 0, "com.foo", N},
	{"ﬁle", 0, "file", N},
	{"e\u0301", 0, "é", N},
	{"Ⅻ", 0, "XII", N},
	{"①②", 0, "12", N},
	{"x²", 0, "x2", N},
	{"ſ", 0, "s", N},
	{"e\u200B\u0301", 0, "é", N | I},
	/* invisibles */
	{"com.f\u200Boo", 0, "com.foo", I},
	{"\uFEFFabc", 0, "abc", I},
	{"soft\u00ADhyphen", 0, "softhyphen", I},
	{"a\u200C\u200Db", 0, "ab", I},
	{"a\u200E\u200Fb", 0, "ab", I},
	{"\u202Eabc\u202C", 0, "abc", I},
	{"a\u2066b\u2069", 0, "ab", I},
	{"a\u2060b", 0, "ab", I},
	{"a\xc2\x81" "b", 0, "ab", I},
	{"a\x01" "b\x7f", 0, "ab", I},
	{"a\x1f" "b\x1c", 0, "ab", I},
	/* whitespace */
	{"  a  b  ", 0, "a b", W},
	{"a\tb\nc\rd\ve\ff", 0, "a b c d e f", W},
	{" a", 0, "a", W},
	{"a ", 0, "a", W},
	{"a\u2028b", 0, "a b", W},
	{"a\u2029b", 0, "a b", W},
	{"a\u3000b", 0, "a b", N},
	{"a\u00A0b", 0, "a b", N},
	/* U+0085 is Windows-1252's ellipsis read as Latin-1, not a line break */
	{"a\xc2\x85" "b", 0, "a...b", M | N},
	{"a\u1680b", 0, "a b", W},
	{"a\u205Fb", 0, "a b", N},
	{"a\u202Fb", 0, "a b", N},
	{"a \u200B b", 0, "a b", I | W},
	{"a \x01 b", 0, "a b", I | W},
	{" ", 0, "", W},
	{"\t\n", 0, "", W},
	{"\u200B", 0, "", I},
	{"é  é", 0, "é é", W},
	/* truncation */
	{"abcdefg", 5, "abcde", T},
	{"abcde", 5, "abcde", 0},
	{"ab cdef", 3, "ab", T},
	{"aé", 2, "a", T},
	{"aé", 3, "aé", 0},
	{"日本語", 7, "日本", T},
	{"日本語", 2, "", T},
	{"  abc  ", 2, "ab", W | T},
	{"é bcd", 3, "é", T},
	{"ｃｏｍ．ｆｏｏ", 4, "com.", N | T},
	{"SÃ£o Paulo", 3, "Sã", M | T},
};

static bn_text_scratch *scratch;

static void setup(void)
{
	cr_assert_eq(bn_text_scratch_new(&scratch), 0);
}

static void teardown(void)
{
	bn_text_scratch_free(scratch);
	scratch = NULL;
}

TestSuite(text, .init = setup, .fini = teardown);

static void repair(const char *in, size_t size, size_t max, const char **out, size_t *out_size,
		   uint32_t *effects)
{
	cr_assert_eq(bn_text_repair(scratch, in, size, max, out, out_size, effects), 0);
}

Test(text, table)
{
	size_t i;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const repair_case *c = &cases[i];
		const char *out;
		size_t out_size;
		uint32_t eff;
		repair(c->in, strlen(c->in), c->max, &out, &out_size, &eff);
		cr_expect(out_size == strlen(c->want) && memcmp(out, c->want, out_size) == 0,
			  "case %zu: \"%s\" -> \"%.*s\", want \"%s\"", i, c->in, (int)out_size, out, c->want);
		cr_expect_eq(eff, c->effects, "case %zu: \"%s\": effects %#x, want %#x", i, c->in,
			     (unsigned)eff, (unsigned)c->effects);
	}
}

Test(text, explanation_says_which_reading_and_why)
{
	static const struct {
		const char *in, *why;
	} t[] = {
		{"CafÃ©", "utf-8 read as latin-1: badness 1 -> 0"},
		{"РґРѕСЂРѕРіРµ", "utf-8 read as windows-1251: weak signs 5 -> 0, clean text in one script"},
		{"Offering 5×£35", "left as is: weak signs 2, but no reading is clean text in one script"},
		{"NESTLÉ®", "no sign of mojibake"},
		{"\xc2\x84Handwerk\xc2\x93", "C1 controls read as windows-1252: badness 2 -> 0"},
		{"abc", ""},
	};
	size_t i;
	cr_assert_str_eq(bn_text_explanation(scratch), "");
	bn_text_explain(scratch, 1);
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		const char *out;
		size_t out_size;
		uint32_t eff;
		repair(t[i].in, strlen(t[i].in), 0, &out, &out_size, &eff);
		cr_expect_str_eq(bn_text_explanation(scratch), t[i].why, "case %zu", i);
	}
	bn_text_explain(scratch, 0);
	cr_assert_str_eq(bn_text_explanation(scratch), "");
}

/* The strong signs: sequences of the classes mojibake is made of, counted without overlap. */
Test(text, badness_counts_mojibake_sequences)
{
	static const struct {
		const char *in;
		long want;
	} t[] = {
		{"CafÃ©", 1},         /* Ã then © before a letter */
		{"ÃƒÂ©", 2},          /* Ã before ƒ (nearly only mojibake), Â before © */
		{"â€œ", 1},           /* Windows-1252 reading of U+2000-U+203F */
		{"вЂ™", 1},           /* the same through Windows-1251 */
		{"g√©", 1},           /* MacRoman */
		{"a\xc2\x85" "b", 1},  /* a C1 control */
		{"NESTLÉ®", 0},       /* an accented capital before ® is a brand, not mojibake */
		{"РґРѕСЂРѕРіРµ", 0},  /* only weak signs: a small letter before a capital */
		{"├┤a", 0},
		{"Café", 0},
		{"дороге", 0},
		{"日本語", 0},
		{"", 0},
	};
	bn_mojibake *m = NULL;
	size_t i;
	cr_assert_eq(bn_mojibake_new(&m), 0);
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		cr_expect_eq(bn_mojibake_badness(m, t[i].in, strlen(t[i].in)), t[i].want, "\"%s\"", t[i].in);
	bn_mojibake_free(m);
	bn_mojibake_free(NULL);
}

Test(text, unchanged_values_are_not_copied)
{
	static const char *const clean[] = {"hello world", "Zürich", "日本語", "abcdefgh"};
	size_t i;
	for (i = 0; i < sizeof(clean) / sizeof(clean[0]); i++) {
		const char *out;
		size_t out_size;
		uint32_t eff;
		/* max 5 truncates the ASCII ones: the prefix still points into the input. */
		repair(clean[i], strlen(clean[i]), i == 3 ? 5 : 0, &out, &out_size, &eff);
		cr_expect_eq(out, clean[i], "case %zu was copied", i);
	}
}

Test(text, embedded_nul_is_removed)
{
	const char in[] = {'a', 0, 'b'};
	const char *out;
	size_t out_size;
	uint32_t eff;
	repair(in, sizeof(in), 0, &out, &out_size, &eff);
	cr_assert_eq(out_size, 2);
	cr_assert(memcmp(out, "ab", 2) == 0);
	cr_assert_eq(eff, BN_EFFECT_INVISIBLE);
}

Test(text, invalid_utf8_is_replaced_not_trusted)
{
	/* The contract says valid UTF-8; a caller breaking it gets no crash, and the lost byte is dropped. */
	const char *out;
	size_t out_size;
	uint32_t eff;
	static const char want[] = "aé";
	repair("a\xff" "e\u0301", 5, 0, &out, &out_size, &eff);
	cr_assert(out_size == strlen(want) && memcmp(out, want, out_size) == 0, "got \"%.*s\"",
		  (int)out_size, out);
}

typedef struct trunc_case {
	const char *s;
	size_t max, want;
} trunc_case;

Test(text, replacement_character_is_removed)
{
	/* Regression: a lone surrogate escape decodes to U+FFFD, which reached event ids and publishers. */
	const char *out;
	size_t out_size;
	uint32_t eff;
	repair("e\uFFFDx \uFFFD", 9, 0, &out, &out_size, &eff);
	cr_assert(out_size == 2 && memcmp(out, "ex", 2) == 0, "got \"%.*s\"", (int)out_size, out);
	cr_assert(eff & BN_EFFECT_INVISIBLE);
}

Test(text, utf8_truncate)
{
	static const trunc_case t[] = {
		{"abc", 5, 3}, {"abc", 3, 3}, {"abc", 2, 2}, {"abc", 0, 0},
		{"é", 1, 0}, {"aé", 2, 1}, {"aé", 3, 3},
		{"日", 1, 0}, {"日", 2, 0}, {"日x", 3, 3},
		{"\U0001F600", 3, 0}, {"x\U0001F600", 4, 1}, {"x\U0001F600", 5, 5},
	};
	size_t i;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		cr_expect_eq(bn_utf8_truncate(t[i].s, strlen(t[i].s), t[i].max), t[i].want,
			     "case %zu", i);
}

/*
 * The fast path skips utf8proc for values below U+0300 outside a short list
 * of compatibility characters; every such code point must agree with utf8proc.
 */
Test(text, nfkc_shortcut_agrees_with_utf8proc)
{
	int32_t cp;
	for (cp = 0xA0; cp < 0x300; cp++) {
		char in[16], want[32];
		const char *out;
		size_t n = 0, out_size;
		uint32_t eff;
		utf8proc_uint8_t *nfkc;
		/* Format characters (U+00AD) are removed after NFKC: not this test. */
		if (utf8proc_category(cp) == UTF8PROC_CATEGORY_CF)
			continue;
		in[n++] = 'x';
		n += (size_t)utf8proc_encode_char(cp, (utf8proc_uint8_t *)in + n);
		in[n++] = 'x';
		in[n] = 0;
		nfkc = utf8proc_NFKC((const utf8proc_uint8_t *)in);
		cr_assert_not_null(nfkc);
		snprintf(want, sizeof(want), "%s", (const char *)nfkc);
		free(nfkc);
		/* NBSP becomes a plain space, which the whitespace stage keeps. */
		repair(in, n, 0, &out, &out_size, &eff);
		cr_expect(out_size == strlen(want) && memcmp(out, want, out_size) == 0,
			  "U+%04X: got \"%.*s\", want \"%s\"", (unsigned)cp, (int)out_size, out, want);
	}
}

/* Invariants every result must hold, whatever the input. */
static void check_clean(const char *s, size_t n, size_t max, const char *what)
{
	size_t i = 0;
	cr_assert(max == 0 || n <= max, "%s: %zu bytes > %zu", what, n, max);
	if (n > 0) {
		cr_assert(s[0] != ' ' && s[n - 1] != ' ', "%s: untrimmed", what);
	}
	while (i < n) {
		utf8proc_int32_t cp;
		utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &cp);
		utf8proc_category_t cat;
		cr_assert(k > 0, "%s: invalid UTF-8 at %zu", what, i);
		cat = utf8proc_category(cp);
		cr_assert(cat != UTF8PROC_CATEGORY_CC && cat != UTF8PROC_CATEGORY_CF,
			  "%s: U+%04X left in", what, (unsigned)cp);
		cr_assert(!(cp == ' ' && i > 0 && s[i - 1] == ' '), "%s: double space", what);
		i += (size_t)k;
	}
}

/* repair(repair(x)) == repair(x), and the second call reports nothing and copies nothing. */
static void check_idempotent(const char *in, size_t size, size_t max, const char *what)
{
	const char *out;
	size_t out_size;
	uint32_t eff;
	char *first;
	repair(in, size, max, &out, &out_size, &eff);
	check_clean(out, out_size, max, what);
	first = malloc(out_size + 1);
	cr_assert_not_null(first);
	memcpy(first, out, out_size);
	repair(first, out_size, max, &out, &out_size, &eff);
	cr_assert_eq(out, first, "%s: second repair changed the value to \"%.*s\"", what, (int)out_size, out);
	cr_assert_eq(eff, 0, "%s: second repair reported effects %#x", what, (unsigned)eff);
	free(first);
}

Test(text, idempotent_on_table)
{
	size_t i, m;
	static const size_t maxes[] = {0, 1, 2, 3, 4, 5, 8};
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		for (m = 0; m < sizeof(maxes) / sizeof(maxes[0]); m++) {
			char what[64];
			snprintf(what, sizeof(what), "case %zu max %zu", i, maxes[m]);
			check_idempotent(cases[i].in, strlen(cases[i].in), maxes[m], what);
		}
}

/* Pieces that interact: mojibake lead and trail characters, cp1252 specials,
 * C1 controls, combining marks, compatibility forms, invisibles, whitespace. */
static const char *const alphabet[] = {
	"a", "e", "Z", " ", "  ", "\t", "\n", ".", "0", "Ã", "Â", "â", "€", "™", "©", "£", "ƒ",
	"\xc2\x80", "\xc2\x81", "\xc2\x83", "\xc2\x99", "\xc2\x9d", "\xc2\x85", "\u0301", "\u0308",
	"\u0323", "ｃ", "．", "ﬁ", "²", "\u200B", "\u200D", "\uFEFF", "\u00AD", "\u00A0", "\u2028",
	"\u3000", "\u202F", "é", "日", "ü", "\x01", "\x7f", "Ð", "¾", "\u1100", "\u1161", "\u11A8",
	"ſ", "\u0345", "ΐ", "\U0001F600",
};

Test(text, idempotent_on_random_strings)
{
	uint64_t state = 0x9E3779B97F4A7C15ull;
	size_t nalpha = sizeof(alphabet) / sizeof(alphabet[0]);
	int iter;
	for (iter = 0; iter < 5000; iter++) {
		char buf[256], what[64];
		size_t len = 0, parts, k, max;
		state = state * 6364136223846793005ull + 1442695040888963407ull;
		parts = (size_t)(state >> 60);
		for (k = 0; k < parts; k++) {
			const char *p;
			state = state * 6364136223846793005ull + 1442695040888963407ull;
			p = alphabet[(state >> 33) % nalpha];
			memcpy(buf + len, p, strlen(p));
			len += strlen(p);
		}
		max = (iter % 3 == 0) ? 0 : (size_t)(iter % 11) + 1;
		snprintf(what, sizeof(what), "random %d max %zu", iter, max);
		check_idempotent(buf, len, max, what);
	}
}
