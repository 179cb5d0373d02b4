/* jsonw.c - JSON text writing helpers with strict escaping (output is always valid UTF-8 JSON). */
#include "util/jsonw.h"

#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

/* Length of the valid UTF-8 sequence at s[0..n), or 0 when it is not one. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	if (c >= 0xC2 && c <= 0xDF)
		return n >= 2 && (s[1] & 0xC0) == 0x80 ? 2 : 0;
	if (c >= 0xE0 && c <= 0xEF) {
		if (n < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80)
			return 0;
		if ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] > 0x9F))
			return 0;
		return 3;
	}
	if (c >= 0xF0 && c <= 0xF4) {
		if (n < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80)
			return 0;
		if ((c == 0xF0 && s[1] < 0x90) || (c == 0xF4 && s[1] > 0x8F))
			return 0;
		return 4;
	}
	return 0;
}

int bn_jsonw_string(bn_buf *b, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	int bad = bn_buf_putc(b, '"');
	size_t i = 0;
	while (i < n) {
		size_t run = i;
		while (run < n && p[run] >= 0x20 && p[run] < 0x80 && p[run] != '"' && p[run] != '\\')
			run++;
		bad |= bn_buf_append(b, s + i, run - i);
		i = run;
		if (i >= n)
			break;
		unsigned char c = p[i];
		if (c == '"' || c == '\\') {
			char esc[2] = { '\\', (char)c };
			bad |= bn_buf_append(b, esc, 2);
			i++;
		} else if (c < 0x20) {
			char esc[8];
			snprintf(esc, sizeof(esc), "\\u%04x", c);
			bad |= bn_buf_append(b, esc, 6);
			i++;
		} else {
			size_t k = utf8_seq(p + i, n - i);
			if (k) {
				bad |= bn_buf_append(b, s + i, k);
				i += k;
			} else {
				bad |= bn_buf_append(b, "\\ufffd", 6);
				i++;
			}
		}
	}
	bad |= bn_buf_putc(b, '"');
	return bad ? -1 : 0;
}

int bn_jsonw_cstr(bn_buf *b, const char *s)
{
	return s ? bn_jsonw_string(b, s, strlen(s)) : bn_jsonw_raw(b, "null");
}

int bn_jsonw_u64(bn_buf *b, uint64_t v)
{
	char tmp[20];
	size_t i = sizeof(tmp);
	do {
		tmp[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	return bn_buf_append(b, tmp + i, sizeof(tmp) - i);
}

int bn_jsonw_double(bn_buf *b, double v)
{
	char tmp[32];
	if (!isfinite(v))
		return bn_jsonw_raw(b, "null");
	int n = snprintf(tmp, sizeof(tmp), "%.17g", v);
	/* Prefer the shortest form that round-trips, for readable stats. */
	for (int prec = 6; prec < 17; prec++) {
		char t2[32];
		int m = snprintf(t2, sizeof(t2), "%.*g", prec, v);
		if (strtod(t2, NULL) == v) {
			memcpy(tmp, t2, (size_t)m + 1);
			n = m;
			break;
		}
	}
	return bn_buf_append(b, tmp, (size_t)n);
}

int bn_jsonw_raw(bn_buf *b, const char *s)
{
	return bn_buf_append(b, s, strlen(s));
}

int bn_jsonw_key(bn_buf *b, const char *key, int *first)
{
	int bad = 0;
	if (!*first)
		bad |= bn_buf_putc(b, ',');
	*first = 0;
	bad |= bn_jsonw_cstr(b, key);
	bad |= bn_buf_putc(b, ':');
	return bad ? -1 : 0;
}
