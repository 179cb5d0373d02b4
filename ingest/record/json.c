/* json.c - the strict RFC 8259 tokenizer behind json.h, plus unescaping and exact number conversion. */
#include "record/json.h"

#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "util/swar.h"
#ifdef __SSE2__
#include <emmintrin.h>  /* baseline on x86_64; other targets take the 8-byte word scan */
#endif

#define DEFAULT_MAX_DEPTH 512
#define INITIAL_TOKENS 256
#define NO_PARENT UINT32_MAX

struct bn_json_parser {
	bn_json_token *tokens;
	size_t cap;
	unsigned max_depth;
	int portable;  /* bn_json_parser_set_portable: no SIMD string scan */
	char msg[64];  /* formatted error text; bn_json_result.message may point here */
};

int bn_json_parser_new(bn_json_parser **out, unsigned max_depth)
{
	bn_json_parser *p = NULL;
	int rc = -1;

	p = calloc(1, sizeof(*p));
	if (!p)
		goto cleanup;
	p->tokens = malloc(INITIAL_TOKENS * sizeof(*p->tokens));
	if (!p->tokens)
		goto cleanup;
	p->cap = INITIAL_TOKENS;
	p->max_depth = max_depth ? max_depth : DEFAULT_MAX_DEPTH;
	*out = p;
	p = NULL;
	rc = 0;
cleanup:
	bn_json_parser_free(p);
	return rc;
}

void bn_json_parser_set_portable(bn_json_parser *p, int on)
{
	p->portable = on != 0;
}

void bn_json_parser_free(bn_json_parser *p)
{
	if (!p)
		return;
	free(p->tokens);
	free(p);
}

static int grow_tokens(bn_json_parser *p)
{
	size_t cap = p->cap * 2;
	bn_json_token *t;

	if (cap < p->cap || cap > SIZE_MAX / sizeof(*t))
		return -1;
	t = realloc(p->tokens, cap * sizeof(*t));
	if (!t)
		return -1;
	p->tokens = t;
	p->cap = cap;
	return 0;
}

/* Lookup tables keep the per-byte dispatch branch-light. */
static const uint8_t is_ws[256] = {[' '] = 1, ['\t'] = 1, ['\n'] = 1, ['\r'] = 1};
static const uint8_t is_digit[256] = {
	['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1,
	['5'] = 1, ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1,
};
static inline int hex_val(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;  /* ASCII lower case */
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Bytes that end the fast part of a string scan: quote, backslash, controls. */
static inline int str_stop(unsigned char c)
{
	return c < 0x20 || c == '"' || c == '\\';
}

#ifdef __SSE2__
#define quote16 _mm_set1_epi8('"')
#define bslash16 _mm_set1_epi8('\\')
#define ctl16 _mm_set1_epi8(0x1F)
#endif

/* Nonzero iff some byte of w is '"', '\\' or below 0x20. Exact for "any"; bytes >= 0x80 never match. */
static inline uint64_t word_has_stop(uint64_t w)
{
	uint64_t q = w ^ (BN_SWAR_ONES * '"');
	uint64_t b = w ^ (BN_SWAR_ONES * '\\');
	uint64_t lt = (w - BN_SWAR_ONES * 0x20) & ~w;
	return (((q - BN_SWAR_ONES) & ~q) | ((b - BN_SWAR_ONES) & ~b) | lt) & BN_SWAR_HIGHS;
}

static const char *unexpected(bn_json_parser *p, unsigned char c)
{
	if (c > 0x20 && c < 0x7f)
		snprintf(p->msg, sizeof(p->msg), "unexpected character '%c'", c);
	else
		snprintf(p->msg, sizeof(p->msg), "unexpected byte 0x%02X", c);
	return p->msg;
}

/*
 * The parser is one loop over two states - "a value may start here" and "a
 * value just ended" - instead of recursion, so depth costs no C stack. An
 * open container keeps its parent's index in its `next` field until it
 * closes; that chain is the container stack, so it needs no second buffer.
 */
int bn_json_parse(bn_json_parser *p, const char *text, size_t len, bn_json_result *res)
{
	const unsigned char *s = (const unsigned char *)text;
	bn_json_token *tok;
	size_t pos = 0, count = 0;
	uint32_t cur = NO_PARENT;  /* index of the innermost open container */
	unsigned depth = 0;
	int is_key;  /* the string being scanned is an object key */
	const char *msg = NULL;
	int rc = BN_JSON_EINVAL;
#ifdef __SSE2__
	size_t simd_len = p->portable ? 0 : len;  /* the 16-byte scan stays below this */
#endif

	res->tokens = p->tokens;
	res->count = 0;
	res->column = 0;
	res->message = NULL;
	/* Columns are uint32 and may be len+1, so len must stay below UINT32_MAX. */
	if (len >= UINT32_MAX) {
		res->message = "document too large";
		return BN_JSON_EINVAL;
	}

	while (pos < len && is_ws[s[pos]])
		pos++;
	if (pos == len) {
		msg = "empty document";
		goto fail;
	}

value:
	if (count == p->cap && grow_tokens(p) != 0) {
		rc = BN_JSON_ENOMEM;
		msg = "out of memory";
		goto fail;
	}
	tok = &p->tokens[count];
	tok->start = (uint32_t)pos;
	tok->escaped = 0;
	tok->ascii = 0;
	tok->size = 0;
	is_key = 0;
	switch (s[pos]) {
	case '{':
	case '[':
		if (depth == p->max_depth) {
			rc = BN_JSON_EDEPTH;
			snprintf(p->msg, sizeof(p->msg), "nesting deeper than %u levels", p->max_depth);
			msg = p->msg;
			goto fail;
		}
		depth++;
		tok->type = s[pos] == '{' ? BN_JSON_OBJECT : BN_JSON_ARRAY;
		tok->next = cur;
		cur = (uint32_t)count++;
		pos++;
		while (pos < len && is_ws[s[pos]])
			pos++;
		if (pos == len)
			goto eof;
		if (tok->type == BN_JSON_ARRAY) {
			if (s[pos] == ']')
				goto close;
			tok->size = 1;
			goto value;
		}
		if (s[pos] == '}')
			goto close;
		goto key;
	case '"':
		tok->type = BN_JSON_STRING;
		pos++;
		tok->start = (uint32_t)pos;
		goto string;
	case '-': case '0': case '1': case '2': case '3': case '4':
	case '5': case '6': case '7': case '8': case '9':
		tok->type = BN_JSON_NUMBER;
		goto number;
	case 't':
		tok->type = BN_JSON_TRUE;
		goto literal;
	case 'f':
		tok->type = BN_JSON_FALSE;
		goto literal;
	case 'n':
		tok->type = BN_JSON_NULL;
		goto literal;
	default:
		msg = unexpected(p, s[pos]);
		goto fail;
	}

key:
	if (s[pos] != '"') {
		msg = "expected string for object key";
		goto fail;
	}
	p->tokens[cur].size++;
	if (count == p->cap && grow_tokens(p) != 0) {
		rc = BN_JSON_ENOMEM;
		msg = "out of memory";
		goto fail;
	}
	tok = &p->tokens[count];
	tok->type = BN_JSON_STRING;
	tok->escaped = 0;
	tok->size = 0;
	pos++;
	tok->start = (uint32_t)pos;
	is_key = 1;
	goto string;

string: {
	/* tok is the STRING token; tok->start is the first content byte. */
	uint64_t high = 0;
	unsigned esc_high = 0, high_sse = 0;

	for (;;) {
#ifdef __SSE2__
		/*
		 * 16 bytes a step: the quote, backslash and control bytes and the
		 * bytes >= 0x80 as two bit masks. A bid-log string takes one step.
		 */
		while (pos + 16 <= simd_len) {
			__m128i v = _mm_loadu_si128((const __m128i *)(s + pos));
			__m128i stops = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote16), _mm_cmpeq_epi8(v, bslash16)),
						     _mm_cmpeq_epi8(_mm_max_epu8(v, ctl16), ctl16));
			unsigned stop = (unsigned)_mm_movemask_epi8(stops);
			unsigned hi = (unsigned)_mm_movemask_epi8(v);
			if (stop) {
				unsigned k = (unsigned)__builtin_ctz(stop);
				high_sse |= hi & ((1u << k) - 1);
				pos += k;
				goto stopped;
			}
			high_sse |= hi;
			pos += 16;
		}
#endif
		while (pos + 8 <= len) {
			uint64_t w, stop;
			memcpy(&w, s + pos, 8);
			stop = word_has_stop(w);
			if (stop) {
#if defined(__GNUC__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
				/*
				 * The lowest flagged byte is exact, so jump straight to it
				 * instead of re-reading the word byte by byte: bid-log
				 * strings are short, and this took 2 of 3 tokenize cycles.
				 * Bytes past it belong to the next token: keep them out of
				 * the ascii flag.
				 */
				unsigned k = (unsigned)__builtin_ctzll(stop) >> 3;
				high |= w & ((UINT64_C(1) << (k * 8)) - 1);
				pos += k;
#endif
				break;
			}
			high |= w;
			pos += 8;
		}
		while (pos < len && !str_stop(s[pos])) {
			high |= s[pos];
			pos++;
		}
#ifdef __SSE2__
stopped:
#endif
		if (pos == len) {
			msg = "unterminated string";
			goto fail;
		}
		if (s[pos] == '"')
			break;
		if (s[pos] != '\\') {
			msg = "control character in string";
			goto fail;
		}
		tok->escaped = 1;
		pos++;
		if (pos == len) {
			msg = "unterminated string";
			goto fail;
		}
		switch (s[pos]) {
		case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
			pos++;
			break;
		case 'u': {
			unsigned v = 0;
			for (int i = 1; i <= 4; i++) {
				if (pos + i == len) {
					pos += i;
					msg = "unterminated string";
					goto fail;
				}
				if (hex_val(s[pos + i]) < 0) {
					pos += i;
					msg = "invalid \\u escape in string";
					goto fail;
				}
				v = v << 4 | (unsigned)hex_val(s[pos + i]);
			}
			if (v >= 0x80)
				esc_high = 1;
			pos += 5;
			break;
		}
		default:
			msg = "invalid escape in string";
			goto fail;
		}
	}
	tok->len = (uint32_t)(pos - tok->start);
	tok->ascii = ((high & BN_SWAR_HIGHS) | esc_high | high_sse) == 0;
	tok->next = (uint32_t)++count;
	pos++;
	if (is_key)
		goto colon;
	goto after;
}

colon:
	while (pos < len && is_ws[s[pos]])
		pos++;
	if (pos == len)
		goto eof;
	if (s[pos] != ':') {
		msg = "expected ':' after object key";
		goto fail;
	}
	pos++;
	while (pos < len && is_ws[s[pos]])
		pos++;
	if (pos == len)
		goto eof;
	goto value;


number: {
	size_t n0 = pos;

	if (s[pos] == '-') {
		pos++;
		if (pos == len || !is_digit[s[pos]]) {
			msg = "invalid number";
			goto fail;
		}
	}
	if (s[pos] == '0') {
		pos++;
	} else {
		while (pos < len && is_digit[s[pos]])
			pos++;
	}
	if (pos < len && s[pos] == '.') {
		pos++;
		if (pos == len || !is_digit[s[pos]]) {
			msg = "invalid number";
			goto fail;
		}
		while (pos < len && is_digit[s[pos]])
			pos++;
	}
	if (pos < len && (s[pos] == 'e' || s[pos] == 'E')) {
		pos++;
		if (pos < len && (s[pos] == '+' || s[pos] == '-'))
			pos++;
		if (pos == len || !is_digit[s[pos]]) {
			msg = "invalid number";
			goto fail;
		}
		while (pos < len && is_digit[s[pos]])
			pos++;
	}
	/* "01", "1.2.3", "1e5e6": name the number, not the separator that did not come. */
	if (pos < len && (is_digit[s[pos]] || s[pos] == '.' || s[pos] == 'e' || s[pos] == 'E' ||
			  s[pos] == '+' || s[pos] == '-')) {
		msg = "invalid number";
		goto fail;
	}
	tok->len = (uint32_t)(pos - n0);
	tok->next = (uint32_t)++count;
	goto after;
}

literal: {
	static const char *const words[] = {[BN_JSON_TRUE] = "true", [BN_JSON_FALSE] = "false", [BN_JSON_NULL] = "null"};
	const char *w = words[tok->type];
	size_t n = tok->type == BN_JSON_FALSE ? 5 : 4;

	for (size_t i = 1; i < n; i++) {
		if (pos + i == len) {
			pos += i;
			goto eof;
		}
		if (s[pos + i] != (unsigned char)w[i]) {
			pos += i;
			msg = "invalid literal";
			goto fail;
		}
	}
	pos += n;
	tok->len = (uint32_t)n;
	tok->next = (uint32_t)++count;
	goto after;
}

close: {
	bn_json_token *c = &p->tokens[cur];
	uint32_t parent = c->next;

	pos++;
	c->len = (uint32_t)(pos - c->start);
	c->next = (uint32_t)count;
	cur = parent;
	depth--;
	goto after;
}

after:
	while (pos < len && is_ws[s[pos]])
		pos++;
	if (cur == NO_PARENT) {
		if (pos != len) {
			msg = "trailing characters after the JSON value";
			goto fail;
		}
		goto done;
	}
	if (pos == len)
		goto eof;
	if (p->tokens[cur].type == BN_JSON_ARRAY) {
		if (s[pos] == ']')
			goto close;
		if (s[pos] != ',') {
			msg = "expected ',' or ']' after array element";
			goto fail;
		}
		pos++;
		while (pos < len && is_ws[s[pos]])
			pos++;
		if (pos == len)
			goto eof;
		if (s[pos] == ']') {
			msg = "trailing comma";
			goto fail;
		}
		p->tokens[cur].size++;
		goto value;
	}
	if (s[pos] == '}')
		goto close;
	if (s[pos] != ',') {
		msg = "expected ',' or '}' after object member";
		goto fail;
	}
	pos++;
	while (pos < len && is_ws[s[pos]])
		pos++;
	if (pos == len)
		goto eof;
	if (s[pos] == '}') {
		msg = "trailing comma";
		goto fail;
	}
	goto key;

done:
	res->tokens = p->tokens;  /* the array may have moved while growing */
	res->count = count;
	return BN_JSON_OK;
eof:
	msg = "unexpected end of input";
fail:
	res->tokens = p->tokens;
	res->column = (uint32_t)pos + 1;
	res->message = msg;
	return rc;
}

static int hex4(const unsigned char *s, size_t avail, unsigned *out)
{
	unsigned v = 0;

	if (avail < 4)
		return -1;
	for (int i = 0; i < 4; i++) {
		if (hex_val(s[i]) < 0)
			return -1;
		v = v << 4 | (unsigned)hex_val(s[i]);
	}
	*out = v;
	return 0;
}

static size_t put_utf8(unsigned char *o, unsigned cp)
{
	if (cp < 0x80) {
		o[0] = (unsigned char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (unsigned char)(0xC0 | cp >> 6);
		o[1] = (unsigned char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (unsigned char)(0xE0 | cp >> 12);
		o[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
		o[2] = (unsigned char)(0x80 | (cp & 0x3F));
		return 3;
	}
	o[0] = (unsigned char)(0xF0 | cp >> 18);
	o[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
	o[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
	o[3] = (unsigned char)(0x80 | (cp & 0x3F));
	return 4;
}

/*
 * Malformed escapes cannot reach here from a parsed token, but the function
 * is public, so it copies anything it does not understand unchanged rather
 * than read past len; the output still never outgrows the input.
 */
size_t bn_json_unescape(const char *src, size_t len, char *out)
{
	const unsigned char *s = (const unsigned char *)src;
	unsigned char *o = (unsigned char *)out;
	size_t i = 0, n = 0;

	while (i < len) {
		const unsigned char *bs = memchr(s + i, '\\', len - i);
		size_t run = bs ? (size_t)(bs - (s + i)) : len - i;
		unsigned cp, lo;

		memmove(o + n, s + i, run);
		n += run;
		i += run;
		if (i + 1 >= len) {
			if (i < len)
				o[n++] = s[i++];
			break;
		}
		switch (s[i + 1]) {
		case '"': o[n++] = '"'; i += 2; continue;
		case '\\': o[n++] = '\\'; i += 2; continue;
		case '/': o[n++] = '/'; i += 2; continue;
		case 'b': o[n++] = '\b'; i += 2; continue;
		case 'f': o[n++] = '\f'; i += 2; continue;
		case 'n': o[n++] = '\n'; i += 2; continue;
		case 'r': o[n++] = '\r'; i += 2; continue;
		case 't': o[n++] = '\t'; i += 2; continue;
		case 'u':
			break;
		default:
			o[n++] = s[i++];
			continue;
		}
		if (hex4(s + i + 2, len - i - 2, &cp) != 0) {
			o[n++] = s[i++];
			continue;
		}
		i += 6;
		if (cp >= 0xD800 && cp <= 0xDBFF) {
			/* Only a directly following low surrogate completes the pair. */
			if (i + 6 <= len && s[i] == '\\' && s[i + 1] == 'u' &&
			    hex4(s + i + 2, 4, &lo) == 0 && lo >= 0xDC00 && lo <= 0xDFFF) {
				cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
				i += 6;
			} else {
				cp = 0xFFFD;
			}
		} else if (cp >= 0xDC00 && cp <= 0xDFFF) {
			cp = 0xFFFD;
		}
		n += put_utf8(o + n, cp);
	}
	return n;
}

#define BIG_EXP 100000000

int bn_json_number_split(bn_json_number *out, const char *t, size_t len)
{
	const unsigned char *s = (const unsigned char *)t;
	bn_json_number np = {0};
	size_t i = 0;

	if (i < len && s[i] == '-') {
		np.negative = 1;
		i++;
	}
	np.int_digits = t + i;
	if (i < len && s[i] == '0') {
		i++;
	} else {
		while (i < len && is_digit[s[i]])
			i++;
	}
	np.n_int = (size_t)(t + i - np.int_digits);
	if (np.n_int == 0)
		return -1;
	np.frac_digits = t + i;
	if (i < len && s[i] == '.') {
		i++;
		np.frac_digits = t + i;
		while (i < len && is_digit[s[i]])
			i++;
		np.n_frac = (size_t)(t + i - np.frac_digits);
		if (np.n_frac == 0)
			return -1;
	}
	if (i < len && (s[i] == 'e' || s[i] == 'E')) {
		int eneg = 0;
		size_t e0;
		i++;
		if (i < len && (s[i] == '+' || s[i] == '-')) {
			eneg = s[i] == '-';
			i++;
		}
		e0 = i;
		while (i < len && is_digit[s[i]]) {
			if (np.exp < BIG_EXP)
				np.exp = np.exp * 10 + (s[i] - '0');
			i++;
		}
		if (i == e0)
			return -1;
		if (eneg)
			np.exp = -np.exp;
	}
	if (i != len)
		return -1;
	*out = np;
	return 0;
}

int bn_json_number_significant(const bn_json_number *num, size_t *first, size_t *last, int64_t *scale)
{
	size_t n = num->n_int + num->n_frac, f = 0, l;
	while (f < n && bn_json_number_digit(num, f) == 0)
		f++;
	if (f == n)
		return 0;
	l = n - 1;
	while (bn_json_number_digit(num, l) == 0)
		l--;
	*first = f;
	*last = l;
	*scale = num->exp - (int64_t)num->n_frac + (int64_t)(n - 1 - l);
	return 1;
}

int bn_json_number_int64(const char *text, size_t len, int64_t *out)
{
	bn_json_number np;
	size_t first, last;
	int64_t scale;
	uint64_t mag = 0, limit;

	if (bn_json_number_split(&np, text, len) != 0)
		return -1;
	if (!bn_json_number_significant(&np, &first, &last, &scale)) {
		*out = 0;
		return 0;
	}
	/* With no trailing zeros left, scale < 0 means a fraction. */
	if (scale < 0 || scale > 19)
		return -1;
	limit = np.negative ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	for (size_t k = first; k <= last; k++) {
		unsigned d = (unsigned)bn_json_number_digit(&np, k);
		if (mag > (limit - d) / 10)
			return -1;
		mag = mag * 10 + d;
	}
	for (int64_t k = 0; k < scale; k++) {
		if (mag > limit / 10)
			return -1;
		mag *= 10;
	}
	if (np.negative)
		*out = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag;
	else
		*out = (int64_t)mag;
	return 0;
}

/*
 * Up to 15 significant digits and a power of ten up to 22 are both exact in
 * a double, so one multiplication or division rounds correctly (Clinger's
 * fast path); that covers prices and rates. Everything else goes to
 * strtod_l in the C locale, so a caller's setlocale() cannot turn '.' into
 * a syntax error.
 */
/*
 * The usual number of a bid log, -?(0|[1-9][0-9]*)(\.[0-9]+)? with at most
 * 15 digits, read in one pass: m / 10^(fraction digits) divides two exact
 * doubles once, so it is the correctly rounded value - the same double the
 * general path below gives. Returns 1 when done, 0 to take that path (other
 * forms, longer numbers, or text that is not a number).
 */
static int number_double_short(const char *text, size_t len, double *out)
{
	static const double pow10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};
	const unsigned char *s = (const unsigned char *)text;
	size_t i = 0, digits = 0, dot = 0;
	uint64_t m = 0;
	int neg = len > 0 && s[0] == '-';

	i = (size_t)neg;
	if (i == len || (s[i] == '0' && i + 1 < len && s[i + 1] != '.'))
		return 0;
	for (; i < len; i++) {
		if (is_digit[s[i]]) {
			m = m * 10 + (uint64_t)(s[i] - '0');
			digits++;
		} else if (s[i] == '.' && !dot && digits > 0 && i + 1 < len) {
			dot = i;
		} else {
			return 0;
		}
	}
	if (digits > 15)
		return 0;
	double v = (double)m;
	if (dot)
		v /= pow10[len - 1 - dot];
	*out = neg ? -v : v;
	return 1;
}

int bn_json_number_double(const char *text, size_t len, double *out)
{
	static const double pow10[] = {
		1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
		1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
	};
	bn_json_number np;
	size_t first, last;
	int64_t scale;
	char buf[128];
	locale_t c_locale;
	double v;

	if (number_double_short(text, len, out))
		return 0;
	if (bn_json_number_split(&np, text, len) != 0)
		return -1;
	if (!bn_json_number_significant(&np, &first, &last, &scale)) {
		*out = np.negative ? -0.0 : 0.0;
		return 0;
	}
	if (last - first < 15 && scale >= -22 && scale <= 22) {
		uint64_t m = 0;
		for (size_t k = first; k <= last; k++)
			m = m * 10 + (uint64_t)bn_json_number_digit(&np, k);
		v = (double)m;
		v = scale < 0 ? v / pow10[-scale] : v * pow10[scale];
		*out = np.negative ? -v : v;
		return 0;
	}
	/* The token is not NUL-terminated; longer numbers than this are not worth a heap copy. */
	if (len >= sizeof(buf))
		return -1;
	memcpy(buf, text, len);
	buf[len] = '\0';
	c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
	if (c_locale == (locale_t)0)
		return -1;
	v = strtod_l(buf, NULL, c_locale);
	freelocale(c_locale);
	if (!isfinite(v))
		return -1;
	*out = v;
	return 0;
}
