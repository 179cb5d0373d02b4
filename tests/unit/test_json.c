/* test_json.c - the strict tokenizer: accepted and rejected documents, token layout, unescaping, number conversion. */
#include <criterion/criterion.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "record/json.h"

/*
 * Token shapes in one letter each: O object, A array, N number, T true,
 * F false, Z null; strings: S plain ASCII, s escaped ASCII, U raw non-ASCII,
 * u escaped non-ASCII (ascii=0 because of a \u above 0x7F or raw bytes).
 */
static char shape(const bn_json_token *t)
{
	switch (t->type) {
	case BN_JSON_OBJECT: return 'O';
	case BN_JSON_ARRAY: return 'A';
	case BN_JSON_NUMBER: return 'N';
	case BN_JSON_TRUE: return 'T';
	case BN_JSON_FALSE: return 'F';
	case BN_JSON_NULL: return 'Z';
	case BN_JSON_STRING:
		if (t->escaped)
			return t->ascii ? 's' : 'u';
		return t->ascii ? 'S' : 'U';
	default: return '?';
	}
}

typedef struct doc_case {
	const char *doc;
	size_t len;          /* 0: strlen(doc) */
	int rc;
	const char *shapes;  /* valid documents: one letter per token */
	const char *message; /* invalid documents */
	uint32_t column;
} doc_case;

static const doc_case docs[] = {
	/* valid */
	{"{}", 0, BN_JSON_OK, "O", NULL, 0},
	{"[]", 0, BN_JSON_OK, "A", NULL, 0},
	{" \t\r\n{\"a\":1,\"b\":[true,\"x\"]} \n", 0, BN_JSON_OK, "OSNSATS", NULL, 0},
	{"\"abc\"", 0, BN_JSON_OK, "S", NULL, 0},
	{"\"\"", 0, BN_JSON_OK, "S", NULL, 0},
	{"\"a\\\"b\"", 0, BN_JSON_OK, "s", NULL, 0},
	{"\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", 0, BN_JSON_OK, "s", NULL, 0},
	{"\"\\u007f\\u0000\"", 0, BN_JSON_OK, "s", NULL, 0},
	{"\"\\u0080\"", 0, BN_JSON_OK, "u", NULL, 0},
	{"\"\\uD83D\\uDE00\"", 0, BN_JSON_OK, "u", NULL, 0},
	{"\"caf\xc3\xa9\"", 0, BN_JSON_OK, "U", NULL, 0},
	{"\"0123456789abcdef\xc3\xa9 long enough for words\"", 0, BN_JSON_OK, "U", NULL, 0},
	{"\"caf\xc3\xa9\\n\"", 0, BN_JSON_OK, "u", NULL, 0},
	{"\"a long ascii string that crosses several words\\n\"", 0, BN_JSON_OK, "s", NULL, 0},
	{"0", 0, BN_JSON_OK, "N", NULL, 0},
	{"-0", 0, BN_JSON_OK, "N", NULL, 0},
	{"-0.0e+5", 0, BN_JSON_OK, "N", NULL, 0},
	{"1E-7", 0, BN_JSON_OK, "N", NULL, 0},
	{"123.456e789", 0, BN_JSON_OK, "N", NULL, 0},
	{"true", 0, BN_JSON_OK, "T", NULL, 0},
	{"false", 0, BN_JSON_OK, "F", NULL, 0},
	{"null", 0, BN_JSON_OK, "Z", NULL, 0},
	{"[1,[2,[3]],{\"k\":{}}]", 0, BN_JSON_OK, "ANANANOSO", NULL, 0},
	{"{\"\":\"\"}", 0, BN_JSON_OK, "OSS", NULL, 0},
	{"[ 1 , -2.5 , true , false , null ]", 0, BN_JSON_OK, "ANNTFZ", NULL, 0},
	{"[\"a\u00e9\"]", 0, BN_JSON_OK, "AU", NULL, 0},
	/* Word-at-a-time scanning: non-ASCII bytes next to a closing quote belong to the neighbour. */
	{"[\"ab\",\"\xc3\xa9\xc3\xa9\"]", 0, BN_JSON_OK, "ASU", NULL, 0},
	{"[\"\xc3\xa9\xc3\xa9\",\"abcdefgh\"]", 0, BN_JSON_OK, "AUS", NULL, 0},
	{"[\"\xc3\xa9" "abcdefgh\"]", 0, BN_JSON_OK, "AU", NULL, 0},
	{"[\"abcdefg\xc3\xa9\", 1]", 0, BN_JSON_OK, "AUN", NULL, 0},
	{"[\"abcdefgh\\u00e9\"]", 0, BN_JSON_OK, "Au", NULL, 0},
	/* invalid: empty, unexpected bytes */
	{"", 0, BN_JSON_EINVAL, NULL, "empty document", 1},
	{"  \n ", 0, BN_JSON_EINVAL, NULL, "empty document", 5},
	{".5", 0, BN_JSON_EINVAL, NULL, "unexpected character '.'", 1},
	{"+1", 0, BN_JSON_EINVAL, NULL, "unexpected character '+'", 1},
	{"NaN", 0, BN_JSON_EINVAL, NULL, "unexpected character 'N'", 1},
	{"'a'", 0, BN_JSON_EINVAL, NULL, "unexpected character '''", 1},
	{"// c", 0, BN_JSON_EINVAL, NULL, "unexpected character '/'", 1},
	{"{\"a\":}", 0, BN_JSON_EINVAL, NULL, "unexpected character '}'", 6},
	{"[,1]", 0, BN_JSON_EINVAL, NULL, "unexpected character ','", 2},
	{"[\0]", 3, BN_JSON_EINVAL, NULL, "unexpected byte 0x00", 2},
	{"\xef\xbb\xbf{}", 0, BN_JSON_EINVAL, NULL, "unexpected byte 0xEF", 1},
	{"[\x7f]", 0, BN_JSON_EINVAL, NULL, "unexpected byte 0x7F", 2},
	{"\f1", 0, BN_JSON_EINVAL, NULL, "unexpected byte 0x0C", 1},
	/* invalid: end of input */
	{"[", 0, BN_JSON_EINVAL, NULL, "unexpected end of input", 2},
	{"{", 0, BN_JSON_EINVAL, NULL, "unexpected end of input", 2},
	{"{\"a\"", 0, BN_JSON_EINVAL, NULL, "unexpected end of input", 5},
	{"{\"a\": ", 0, BN_JSON_EINVAL, NULL, "unexpected end of input", 7},
	{"[1,", 0, BN_JSON_EINVAL, NULL, "unexpected end of input", 4},
	{"[1", 0, BN_JSON_EINVAL, NULL, "unexpected end of input", 3},
	{"{\"a\":1", 0, BN_JSON_EINVAL, NULL, "unexpected end of input", 7},
	{"tru", 0, BN_JSON_EINVAL, NULL, "unexpected end of input", 4},
	{"[nul", 0, BN_JSON_EINVAL, NULL, "unexpected end of input", 5},
	/* invalid: structure */
	{"[1,]", 0, BN_JSON_EINVAL, NULL, "trailing comma", 4},
	{"[1, ]", 0, BN_JSON_EINVAL, NULL, "trailing comma", 5},
	{"{\"a\":1,}", 0, BN_JSON_EINVAL, NULL, "trailing comma", 8},
	{"{\"a\" 1}", 0, BN_JSON_EINVAL, NULL, "expected ':' after object key", 6},
	{"{\"a\",1}", 0, BN_JSON_EINVAL, NULL, "expected ':' after object key", 5},
	{"{\"a\":1 \"b\":2}", 0, BN_JSON_EINVAL, NULL, "expected ',' or '}' after object member", 8},
	{"{\"a\":1]", 0, BN_JSON_EINVAL, NULL, "expected ',' or '}' after object member", 7},
	{"[1 2]", 0, BN_JSON_EINVAL, NULL, "expected ',' or ']' after array element", 4},
	{"[1}", 0, BN_JSON_EINVAL, NULL, "expected ',' or ']' after array element", 3},
	{"[truex]", 0, BN_JSON_EINVAL, NULL, "expected ',' or ']' after array element", 6},
	{"{1:2}", 0, BN_JSON_EINVAL, NULL, "expected string for object key", 2},
	{"{\"a\":1,2}", 0, BN_JSON_EINVAL, NULL, "expected string for object key", 8},
	{"{'a':1}", 0, BN_JSON_EINVAL, NULL, "expected string for object key", 2},
	{"[1] x", 0, BN_JSON_EINVAL, NULL, "trailing characters after the JSON value", 5},
	{"{} {}", 0, BN_JSON_EINVAL, NULL, "trailing characters after the JSON value", 4},
	{"[1]]", 0, BN_JSON_EINVAL, NULL, "trailing characters after the JSON value", 4},
	{"1 2", 0, BN_JSON_EINVAL, NULL, "trailing characters after the JSON value", 3},
	{"{}\0", 3, BN_JSON_EINVAL, NULL, "trailing characters after the JSON value", 3},
	/* invalid: strings */
	{"\"\\x\"", 0, BN_JSON_EINVAL, NULL, "invalid escape in string", 3},
	{"\"\\U0041\"", 0, BN_JSON_EINVAL, NULL, "invalid escape in string", 3},
	{"\"\\'\"", 0, BN_JSON_EINVAL, NULL, "invalid escape in string", 3},
	{"\"\\u12G4\"", 0, BN_JSON_EINVAL, NULL, "invalid \\u escape in string", 6},
	{"\"\\u00\"", 0, BN_JSON_EINVAL, NULL, "invalid \\u escape in string", 6},
	{"\"a\tb\"", 0, BN_JSON_EINVAL, NULL, "control character in string", 3},
	{"\"a\0b\"", 5, BN_JSON_EINVAL, NULL, "control character in string", 3},
	{"\"0123456789abcdef\x01\"", 0, BN_JSON_EINVAL, NULL, "control character in string", 18},
	{"\"0123456789abcdef\n\"", 0, BN_JSON_EINVAL, NULL, "control character in string", 18},
	{"\"abc", 0, BN_JSON_EINVAL, NULL, "unterminated string", 5},
	{"\"abc\\", 0, BN_JSON_EINVAL, NULL, "unterminated string", 6},
	{"\"\\u12", 0, BN_JSON_EINVAL, NULL, "unterminated string", 6},
	{"\"0123456789abcdef0123", 0, BN_JSON_EINVAL, NULL, "unterminated string", 22},
	/* invalid: numbers and literals */
	{"01", 0, BN_JSON_EINVAL, NULL, "invalid number", 2},
	{"-", 0, BN_JSON_EINVAL, NULL, "invalid number", 2},
	{"-a", 0, BN_JSON_EINVAL, NULL, "invalid number", 2},
	{"-Infinity", 0, BN_JSON_EINVAL, NULL, "invalid number", 2},
	{"1.", 0, BN_JSON_EINVAL, NULL, "invalid number", 3},
	{"1.e5", 0, BN_JSON_EINVAL, NULL, "invalid number", 3},
	{"1e", 0, BN_JSON_EINVAL, NULL, "invalid number", 3},
	{"1e+", 0, BN_JSON_EINVAL, NULL, "invalid number", 4},
	{"[1.5.3]", 0, BN_JSON_EINVAL, NULL, "invalid number", 5},
	{"[-01]", 0, BN_JSON_EINVAL, NULL, "invalid number", 4},
	{"1e5e6", 0, BN_JSON_EINVAL, NULL, "invalid number", 4},
	{"trUe", 0, BN_JSON_EINVAL, NULL, "invalid literal", 3},
	{"falsy", 0, BN_JSON_EINVAL, NULL, "invalid literal", 5},
	{"[nil]", 0, BN_JSON_EINVAL, NULL, "invalid literal", 3},
	{"True", 0, BN_JSON_EINVAL, NULL, "unexpected character 'T'", 1},
};

/* Every case through the SIMD string scan (where built) and through the portable word scan. */
Test(json, documents_table)
{
	bn_json_parser *p = NULL;

	cr_assert_eq(bn_json_parser_new(&p, 0), 0);
	for (int portable = 0; portable < 2; portable++) {
		bn_json_parser_set_portable(p, portable);
		for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
			const doc_case *c = &docs[i];
			size_t len = c->len ? c->len : strlen(c->doc);
			bn_json_result r;
			int rc = bn_json_parse(p, c->doc, len, &r);

			cr_assert_eq(rc, c->rc, "case %zu [%s] (portable %d): rc %d, want %d (%s at %u)", i, c->doc,
				     portable, rc, c->rc, r.message ? r.message : "-", r.column);
			if (c->rc == BN_JSON_OK) {
				char got[64] = "";
				cr_assert_eq(r.count, strlen(c->shapes), "case %zu [%s]: %zu tokens", i, c->doc, r.count);
				for (size_t k = 0; k < r.count; k++)
					got[k] = shape(&r.tokens[k]);
				cr_assert_str_eq(got, c->shapes, "case %zu [%s]", i, c->doc);
				cr_assert_eq(r.tokens[0].next, r.count, "case %zu: root next", i);
				cr_assert_null(r.message);
			} else {
				cr_assert_eq(r.count, 0, "case %zu", i);
				cr_assert_str_eq(r.message, c->message, "case %zu [%s]", i, c->doc);
				cr_assert_eq(r.column, c->column, "case %zu [%s]: column %u, want %u", i, c->doc, r.column,
					     c->column);
			}
		}
	}
	bn_json_parser_free(p);
}

/* Parse doc with both string scans; they must agree on everything. */
static void same_in_both_scans(bn_json_parser *simd, bn_json_parser *word, const char *doc, size_t len)
{
	bn_json_result a, b;
	int ra = bn_json_parse(simd, doc, len, &a);
	int rb = bn_json_parse(word, doc, len, &b);

	cr_assert_eq(ra, rb, "[%.*s]: rc %d vs %d", (int)len, doc, ra, rb);
	cr_assert_eq(a.count, b.count, "[%.*s]", (int)len, doc);
	cr_assert_eq(a.column, b.column, "[%.*s]: column %u vs %u", (int)len, doc, a.column, b.column);
	cr_assert_str_eq(a.message ? a.message : "-", b.message ? b.message : "-", "[%.*s]", (int)len, doc);
	for (size_t k = 0; k < a.count; k++) {
		const bn_json_token *x = &a.tokens[k], *y = &b.tokens[k];
		cr_assert(x->type == y->type && x->escaped == y->escaped && x->ascii == y->ascii && x->start == y->start &&
			  x->len == y->len && x->size == y->size && x->next == y->next,
			  "[%.*s]: token %zu differs", (int)len, doc, k);
	}
}

/*
 * Strings of every length from 0 to 40 (one, two and three 16-byte steps and
 * their tails), with a quote, backslash escape, control byte, byte >= 0x80 or
 * the end of the input at every position: the SIMD scan must stop, flag and
 * reject exactly where the portable one does.
 */
Test(json, simd_and_portable_string_scans_agree)
{
	static const char *const specials[] = {"\"", "\\n", "\\u00e9", "\\x", "\x01", "\x1f", "\t", "\x7f",
					       "\xc3\xa9", "\xff", " ", "\\"};
	bn_json_parser *simd = NULL, *word = NULL;
	char doc[128];

	cr_assert_eq(bn_json_parser_new(&simd, 0), 0);
	cr_assert_eq(bn_json_parser_new(&word, 0), 0);
	bn_json_parser_set_portable(word, 1);
	for (size_t n = 0; n <= 40; n++) {
		for (size_t at = 0; at <= n; at++) {
			for (size_t s = 0; s < sizeof(specials) / sizeof(specials[0]); s++) {
				size_t len = 0;
				doc[len++] = '[';
				doc[len++] = '"';
				for (size_t i = 0; i < n; i++) {
					if (i == at) {
						memcpy(doc + len, specials[s], strlen(specials[s]));
						len += strlen(specials[s]);
					}
					doc[len++] = (char)('a' + i % 26);
				}
				memcpy(doc + len, "\",1]", 5);
				/* the whole array, and cut short at every length */
				for (size_t cut = 2; cut <= len + 5; cut++)
					same_in_both_scans(simd, word, doc, cut);
			}
		}
	}
	bn_json_parser_free(simd);
	bn_json_parser_free(word);
}

Test(json, token_positions_and_lengths)
{
	static const char doc[] = "{\"ab\":\"c\\\"d\", \"n\" : -12.5e3 ,\"l\":[null]}";
	bn_json_parser *p = NULL;
	bn_json_result r;

	cr_assert_eq(bn_json_parser_new(&p, 0), 0);
	cr_assert_eq(bn_json_parse(p, doc, strlen(doc), &r), BN_JSON_OK);
	cr_assert_eq(r.count, 8);
	cr_assert_eq(r.tokens[0].start, 0);
	cr_assert_eq(r.tokens[0].len, strlen(doc));
	cr_assert_eq(r.tokens[0].size, 3);
	cr_assert_eq(r.tokens[1].start, 2);
	cr_assert_eq(r.tokens[1].len, 2);
	cr_assert_eq(r.tokens[1].escaped, 0);
	cr_assert_eq(r.tokens[2].start, 7);
	cr_assert_eq(r.tokens[2].len, 4);
	cr_assert_eq(r.tokens[2].escaped, 1);
	cr_assert_eq(memcmp(doc + r.tokens[4].start, "-12.5e3", 7), 0);
	cr_assert_eq(r.tokens[4].len, 7);
	cr_assert_eq(r.tokens[6].type, BN_JSON_ARRAY);
	cr_assert_eq(memcmp(doc + r.tokens[6].start, "[null]", 6), 0);
	cr_assert_eq(r.tokens[6].len, 6);
	cr_assert_eq(r.tokens[6].size, 1);
	cr_assert_eq(r.tokens[7].start, r.tokens[6].start + 1);
	cr_assert_eq(r.tokens[7].len, 4);
	bn_json_parser_free(p);
}

Test(json, next_skips_nested_values)
{
	static const char doc[] = "{\"a\":{\"b\":[1,2,{\"c\":null}]},\"d\":[[],{}],\"e\":\"x\"}";
	/* index:                 0 1    2 3    4 5 6 7 8    9          10  11 12 13  14  15 */
	static const uint32_t next[] = {16, 2, 10, 4, 10, 6, 7, 10, 9, 10, 11, 14, 13, 14, 15, 16};
	static const uint32_t size[] = {3, 0, 1, 0, 3, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0};
	static const char *const keys[] = {"a", "d", "e"};
	bn_json_parser *p = NULL;
	bn_json_result r;
	size_t k = 1;

	cr_assert_eq(bn_json_parser_new(&p, 0), 0);
	cr_assert_eq(bn_json_parse(p, doc, strlen(doc), &r), BN_JSON_OK);
	cr_assert_eq(r.count, 16);
	for (size_t i = 0; i < r.count; i++) {
		cr_assert_eq(r.tokens[i].next, next[i], "token %zu: next %u, want %u", i, r.tokens[i].next, next[i]);
		cr_assert_eq(r.tokens[i].size, size[i], "token %zu: size %u, want %u", i, r.tokens[i].size, size[i]);
	}
	/* Walking the root's members by next visits exactly the three keys. */
	for (size_t m = 0; m < 3; m++) {
		cr_assert_lt(k, r.count);
		cr_assert_eq(r.tokens[k].len, 1);
		cr_assert_eq(doc[r.tokens[k].start], keys[m][0]);
		k = r.tokens[k + 1].next;
	}
	cr_assert_eq(k, r.count);
	bn_json_parser_free(p);
}

static char *nested(unsigned depth, size_t *len)
{
	char *s = malloc(2 * (size_t)depth + 1);
	cr_assert_not_null(s);
	memset(s, '[', depth);
	memset(s + depth, ']', depth);
	s[2 * depth] = '\0';
	*len = 2 * (size_t)depth;
	return s;
}

Test(json, nesting_limit)
{
	static const struct {
		unsigned max_depth, depth;
		int rc;
		const char *message;
	} cases[] = {
		{0, 512, BN_JSON_OK, NULL},
		{0, 513, BN_JSON_EDEPTH, "nesting deeper than 512 levels"},
		{3, 3, BN_JSON_OK, NULL},
		{3, 4, BN_JSON_EDEPTH, "nesting deeper than 3 levels"},
		{100000, 100000, BN_JSON_OK, NULL},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bn_json_parser *p = NULL;
		bn_json_result r;
		size_t len;
		char *s = nested(cases[i].depth, &len);

		cr_assert_eq(bn_json_parser_new(&p, cases[i].max_depth), 0);
		cr_assert_eq(bn_json_parse(p, s, len, &r), cases[i].rc, "case %zu", i);
		if (cases[i].rc == BN_JSON_OK) {
			cr_assert_eq(r.count, cases[i].depth);
			cr_assert_eq(r.tokens[0].len, len);
			cr_assert_eq(r.tokens[cases[i].depth - 1].next, cases[i].depth);
		} else {
			cr_assert_str_eq(r.message, cases[i].message, "case %zu", i);
			cr_assert_eq(r.column, cases[i].depth, "case %zu: column %u", i, r.column);
		}
		bn_json_parser_free(p);
		free(s);
	}
}

Test(json, depth_limit_in_objects)
{
	static const char doc[] = "{\"a\":{\"b\":{}}}";
	bn_json_parser *p = NULL;
	bn_json_result r;

	cr_assert_eq(bn_json_parser_new(&p, 2), 0);
	cr_assert_eq(bn_json_parse(p, doc, strlen(doc), &r), BN_JSON_EDEPTH);
	cr_assert_str_eq(r.message, "nesting deeper than 2 levels");
	cr_assert_eq(r.column, 11);
	bn_json_parser_free(p);
}

Test(json, hundred_thousand_keys_then_reuse)
{
	enum { KEYS = 100000 };
	char *doc = malloc((size_t)KEYS * 24 + 2);
	size_t len = 0;
	bn_json_parser *p = NULL;
	bn_json_result r;

	cr_assert_not_null(doc);
	doc[len++] = '{';
	for (int i = 0; i < KEYS; i++)
		len += (size_t)sprintf(doc + len, "%s\"k%d\":%d", i ? "," : "", i, i);
	doc[len++] = '}';
	cr_assert_eq(bn_json_parser_new(&p, 0), 0);
	cr_assert_eq(bn_json_parse(p, doc, len, &r), BN_JSON_OK);
	cr_assert_eq(r.count, 2 * KEYS + 1);
	cr_assert_eq(r.tokens[0].size, KEYS);
	cr_assert_eq(r.tokens[0].len, len);
	cr_assert_eq(r.tokens[0].next, 2 * KEYS + 1);
	cr_assert_eq(memcmp(doc + r.tokens[2 * KEYS - 1].start, "k99999", 6), 0);
	/* The grown array is kept; a small document after a big one still parses right. */
	cr_assert_eq(bn_json_parse(p, "[7]", 3, &r), BN_JSON_OK);
	cr_assert_eq(r.count, 2);
	cr_assert_eq(r.tokens[1].type, BN_JSON_NUMBER);
	cr_assert_eq(r.tokens[0].next, 2);
	bn_json_parser_free(p);
	free(doc);
}

Test(json, document_too_large)
{
	bn_json_parser *p = NULL;
	bn_json_result r;

	cr_assert_eq(bn_json_parser_new(&p, 0), 0);
	/* The length is checked before any byte is read, so the short buffer is never overrun. */
	cr_assert_eq(bn_json_parse(p, "{}", (size_t)UINT32_MAX, &r), BN_JSON_EINVAL);
	cr_assert_str_eq(r.message, "document too large");
	cr_assert_eq(r.column, 0);
	bn_json_parser_free(p);
	bn_json_parser_free(NULL);
}

Test(json, unescape_table)
{
	static const struct {
		const char *raw;
		const char *want;
		size_t want_len;
	} cases[] = {
		{"plain", "plain", 5},
		{"", "", 0},
		{"\\\"\\\\\\/\\b\\f\\n\\r\\t", "\"\\/\b\f\n\r\t", 8},
		{"a\\nb", "a\nb", 3},
		{"\\u0041\\u00e9\\u20AC", "A\xc3\xa9\xe2\x82\xac", 6},
		{"\\u07FF\\u0800\\uFFFF", "\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf", 8},
		{"\\uD83D\\uDE00", "\xf0\x9f\x98\x80", 4},
		{"\\udbff\\udfff", "\xf4\x8f\xbf\xbf", 4},
		{"\\uD83Dx", "\xef\xbf\xbdx", 4},
		{"\\uD83D", "\xef\xbf\xbd", 3},
		{"\\uD83D\\n", "\xef\xbf\xbd\n", 4},
		{"\\uD83D\\u0041", "\xef\xbf\xbd" "A", 4},
		{"\\uD83D\\uD83D\\uDE00", "\xef\xbf\xbd\xf0\x9f\x98\x80", 7},
		{"\\uDE00", "\xef\xbf\xbd", 3},
		{"\\uDE00\\uD83D", "\xef\xbf\xbd\xef\xbf\xbd", 6},
		{"a\\u0000b", "a\0b", 3},
		{"caf\xc3\xa9 \xf0\x9f\x98\x80", "caf\xc3\xa9 \xf0\x9f\x98\x80", 10},
		{"\xc3\xa9\\t\xc3\xa9", "\xc3\xa9\t\xc3\xa9", 5},
		/* Not producible by the parser; copied unchanged rather than misread. */
		{"\\x", "\\x", 2},
		{"\\u12", "\\u12", 4},
		{"a\\", "a\\", 2},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t len = strlen(cases[i].raw);
		char out[64];
		size_t n;

		memset(out, 'Z', sizeof(out));
		n = bn_json_unescape(cases[i].raw, len, out);
		cr_assert_eq(n, cases[i].want_len, "case %zu [%s]: length %zu", i, cases[i].raw, n);
		cr_assert_leq(n, len, "case %zu: output longer than input", i);
		cr_assert_eq(memcmp(out, cases[i].want, n), 0, "case %zu [%s]", i, cases[i].raw);
		cr_assert_eq(out[len], 'Z', "case %zu: wrote past len", i);
	}
}

Test(json, number_int64_table)
{
	static const struct {
		const char *text;
		int rc;
		int64_t want;
	} cases[] = {
		{"0", 0, 0},
		{"-0", 0, 0},
		{"-0.0", 0, 0},
		{"0e999999999999", 0, 0},
		{"42", 0, 42},
		{"-42", 0, -42},
		{"1.0", 0, 1},
		{"1.000000", 0, 1},
		{"1e3", 0, 1000},
		{"1E+3", 0, 1000},
		{"1.5e1", 0, 15},
		{"12.5e-1", -1, 0},
		{"1250e-2", -1, 0},
		{"1200e-2", 0, 12},
		{"1.5", -1, 0},
		{"0.1", -1, 0},
		{"1e-1", -1, 0},
		{"9223372036854775807", 0, INT64_MAX},
		{"9223372036854775808", -1, 0},
		{"-9223372036854775808", 0, INT64_MIN},
		{"-9223372036854775809", -1, 0},
		{"922337203685477580.7e1", 0, INT64_MAX},
		{"9.223372036854775807e18", 0, INT64_MAX},
		{"9.223372036854775808e18", -1, 0},
		{"1e18", 0, 1000000000000000000},
		{"1e19", -1, 0},
		{"1e99999999999999999999", -1, 0},
		{"18446744073709551616", -1, 0},
		{"99999999999999999999999", -1, 0},
		{"000", -1, 0},
		{"", -1, 0},
		{"-", -1, 0},
		{"1.", -1, 0},
		{"1e", -1, 0},
		{"1x", -1, 0},
		{" 1", -1, 0},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t v = 12345;
		int rc = bn_json_number_int64(cases[i].text, strlen(cases[i].text), &v);

		cr_assert_eq(rc, cases[i].rc, "case %zu [%s]: rc %d", i, cases[i].text, rc);
		if (rc == 0)
			cr_assert_eq(v, cases[i].want, "case %zu [%s]: %lld", i, cases[i].text, (long long)v);
		else
			cr_assert_eq(v, 12345, "case %zu: out written on failure", i);
	}
}

Test(json, number_int64_reads_only_len)
{
	int64_t v = 0;

	/* The token is a prefix of the line; the bytes after it are not part of the number. */
	cr_assert_eq(bn_json_number_int64("123,456", 3, &v), 0);
	cr_assert_eq(v, 123);
	cr_assert_eq(bn_json_number_int64("1.5e1]", 5, &v), 0);
	cr_assert_eq(v, 15);
}

/* Short decimals, the tokenizer's fast case: every one the correctly rounded double that strtod gives. */
Test(json, number_double_short_decimals_round_like_strtod)
{
	char text[40];
	uint64_t x = 88172645463325252ull;
	for (int i = 0; i < 200000; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		int digits = 1 + (int)(x % 15), frac = (int)((x >> 8) % (uint64_t)(digits + 1));
		uint64_t m = (x >> 16) % 1000000000000000ull;
		int n = snprintf(text, sizeof(text), "%s%0*llu", (x >> 60) & 1 ? "-" : "", digits,
				 (unsigned long long)(m % (uint64_t)pow(10, digits)));
		int sign = text[0] == '-';
		if (frac && frac < digits) { /* put a point frac digits from the end */
			memmove(text + n - frac + 1, text + n - frac, (size_t)frac + 1);
			text[n - frac] = '.';
			n++;
		}
		if (text[sign] == '0' && n > sign + 1 && text[sign + 1] != '.')
			continue; /* a leading zero: not JSON */
		double got = 0, want = strtod(text, NULL);
		cr_assert_eq(bn_json_number_double(text, (size_t)n, &got), 0, "[%s]", text);
		cr_assert(memcmp(&got, &want, sizeof(got)) == 0, "[%s]: %.17g, want %.17g", text, got, want);
	}
}

Test(json, number_double_table)
{
	static const struct {
		const char *text;
		size_t len;  /* 0: strlen */
		int rc;
		double want;
	} cases[] = {
		{"0", 0, 0, 0.0},
		{"0.35", 0, 0, 0.35},
		{"1.2", 0, 0, 1.2},
		{"-1.5e3", 0, 0, -1500.0},
		{"123456789012345", 0, 0, 123456789012345.0},
		{"1e22", 0, 0, 1e22},
		{"1e23", 0, 0, 1e23},
		{"0.1e-22", 0, 0, 1e-23},
		{"9007199254740993", 0, 0, 9007199254740992.0},
		{"2.2250738585072014e-308", 0, 0, 2.2250738585072014e-308},
		{"1.7976931348623157e308", 0, 0, 1.7976931348623157e308},
		{"4.9e-324", 0, 0, 4.9e-324},
		{"1e-400", 0, 0, 0.0},
		{"0.1000000000000000055511151231257827021181583404541015625", 0, 0, 0.1},
		{"1.5]", 4, -1, 0},
		{"1.5]", 3, 0, 1.5},
		{"12345678901234567890123", 2, 0, 12.0},
		{"1e999", 0, -1, 0},
		{"-1e999", 0, -1, 0},
		{"1.8e308", 0, -1, 0},
		{"abc", 0, -1, 0},
		{"", 0, -1, 0},
		/* the short form's edges: leading zeros, a lone sign or point, 15 and 16 digits */
		{"-0", 0, 0, -0.0},
		{"-0.0", 0, 0, -0.0},
		{"00", 0, -1, 0},
		{"01.5", 0, -1, 0},
		{"-", 0, -1, 0},
		{"1.", 0, -1, 0},
		{".5", 0, -1, 0},
		{"-.5", 0, -1, 0},
		{"1.2.3", 0, -1, 0},
		{"1.e5", 0, -1, 0},
		{"0.", 0, -1, 0},
		{"+1", 0, -1, 0},
		{" 1", 0, -1, 0},
		{"0.000000000000001", 0, 0, 1e-15},
		{"999999999999999.9", 0, 0, 999999999999999.9},
		{"0.123456789012345", 0, 0, 0.123456789012345},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t len = cases[i].len ? cases[i].len : strlen(cases[i].text);
		double v = 12345.0;
		int rc = bn_json_number_double(cases[i].text, len, &v);

		cr_assert_eq(rc, cases[i].rc, "case %zu [%s]: rc %d", i, cases[i].text, rc);
		if (rc == 0)
			cr_assert(v == cases[i].want, "case %zu [%s]: %.17g, want %.17g", i, cases[i].text, v,
				  cases[i].want);
		else
			cr_assert(v == 12345.0, "case %zu: out written on failure", i);
	}
}

Test(json, number_double_negative_zero_keeps_sign)
{
	double v = 1.0;

	cr_assert_eq(bn_json_number_double("-0.0", 4, &v), 0);
	cr_assert(v == 0.0 && signbit(v));
}

Test(json, number_double_ignores_locale)
{
	double v = 0;

	/* A comma-decimal locale must not change how JSON's '.' is read; skip if none is installed. */
	if (!setlocale(LC_NUMERIC, "de_DE.UTF-8") && !setlocale(LC_NUMERIC, "fr_FR.UTF-8"))
		cr_skip_test("no comma-decimal locale installed");
	cr_assert_eq(bn_json_number_double("0.1000000000000000055511151231257827", 36, &v), 0);
	setlocale(LC_NUMERIC, "C");
	cr_assert(v == 0.1, "got %.17g", v);
}
