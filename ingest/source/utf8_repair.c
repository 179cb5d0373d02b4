/* utf8_repair.c - UTF-8 validation with an ASCII fast path, and byte-wise Windows-1252 repair of invalid sequences. */
#include "source/utf8_repair.h"

#include <stdint.h>
#include <string.h>

#include "util/swar.h"

/* Unicode code points of Windows-1252 bytes 0x80..0x9F; the five bytes the
 * code page leaves undefined map to the C1 control of the same value. */
static const uint16_t cp1252_high[32] = {
	0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
	0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x008D, 0x017D, 0x008F,
	0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
	0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178,
};


/*
 * Length of the well-formed sequence starting at p[0] (a non-ASCII byte),
 * or 0 when p[0] does not start one within the n bytes available.
 */
static size_t sequence_length(const unsigned char *p, size_t n)
{
	unsigned char b = p[0];
	unsigned char lo = 0x80, hi = 0xBF;
	size_t len, i;

	if (b >= 0xC2 && b <= 0xDF) {
		len = 2;
	} else if (b >= 0xE0 && b <= 0xEF) {
		len = 3;
		if (b == 0xE0)
			lo = 0xA0;	/* below is an overlong form */
		else if (b == 0xED)
			hi = 0x9F;	/* above are UTF-16 surrogates */
	} else if (b >= 0xF0 && b <= 0xF4) {
		len = 4;
		if (b == 0xF0)
			lo = 0x90;
		else if (b == 0xF4)
			hi = 0x8F;	/* above is beyond U+10FFFF */
	} else {
		return 0;	/* continuation byte, C0/C1 overlong lead, or F5..FF */
	}
	if (n < len || p[1] < lo || p[1] > hi)
		return 0;
	for (i = 2; i < len; i++)
		if ((p[i] & 0xC0) != 0x80)
			return 0;
	return len;
}

size_t bn_utf8_valid_prefix(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, len;

	while (i < n) {
		/* JSON logs are nearly all ASCII: test 32 bytes per step. */
		while (i + 32 <= n &&
		       !((bn_load64(p + i) | bn_load64(p + i + 8) | bn_load64(p + i + 16) | bn_load64(p + i + 24)) & BN_SWAR_HIGHS))
			i += 32;
		while (i + 8 <= n && !(bn_load64(p + i) & BN_SWAR_HIGHS))
			i += 8;
		while (i < n && p[i] < 0x80)
			i++;
		if (i == n)
			break;
		len = sequence_length(p + i, n - i);
		if (!len)
			return i;
		i += len;
	}
	return n;
}

static size_t put_cp1252(unsigned char *out, unsigned char b)
{
	uint32_t cp = b < 0xA0 ? cp1252_high[b - 0x80] : b;

	if (cp < 0x800) {
		out[0] = (unsigned char)(0xC0 | (cp >> 6));
		out[1] = (unsigned char)(0x80 | (cp & 0x3F));
		return 2;
	}
	out[0] = (unsigned char)(0xE0 | (cp >> 12));
	out[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
	out[2] = (unsigned char)(0x80 | (cp & 0x3F));
	return 3;
}

size_t bn_utf8_repair(char *out, size_t *out_replaced, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	unsigned char *o = (unsigned char *)out;
	size_t i = 0, w = 0, replaced = 0, ok, len;

	while (i < n) {
		ok = bn_utf8_valid_prefix(s + i, n - i);
		memcpy(o + w, p + i, ok);
		i += ok;
		w += ok;
		if (i == n)
			break;
		/* p[i] starts no well-formed sequence: replace it alone, then
		 * let the following bytes be judged on their own. */
		len = put_cp1252(o + w, p[i]);
		w += len;
		i++;
		replaced++;
	}
	if (out_replaced)
		*out_replaced = replaced;
	return w;
}
