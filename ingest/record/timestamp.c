/* timestamp.c - RFC 3339 text and epoch numbers to Unix milliseconds, exactly and without libc time or locale. */
#include "record/json.h"
#include "record/timestamp.h"

#include <stdbool.h>

#define MS_PER_DAY INT64_C(86400000)

static inline bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/* n digits at s as a number, or -1 when one of them is not a digit. */
static int digits(const char *s, int n)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (!is_digit((unsigned char)s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

static bool is_leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
	static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* The zone suffix: Z, +HH:MM, +HHMM or +HH (and '-'); minutes east of UTC into *out. */
static int parse_offset(int *out, const char *s, size_t len)
{
	int sign, hh, mm = 0;

	if (len == 1 && (s[0] == 'Z' || s[0] == 'z')) {
		*out = 0;
		return 0;
	}
	if (len < 3 || (s[0] != '+' && s[0] != '-'))
		return -1;
	sign = s[0] == '-' ? -1 : 1;
	hh = digits(s + 1, 2);
	if (len == 6 && s[3] == ':')
		mm = digits(s + 4, 2);
	else if (len == 5)
		mm = digits(s + 3, 2);
	else if (len != 3)
		return -1;
	if (hh < 0 || mm < 0 || mm > 59 || hh * 60 + mm > 18 * 60)
		return -1;
	*out = sign * (hh * 60 + mm);
	return 0;
}

static int parse_rfc3339(const char *s, size_t len, int64_t *out_ms)
{
	int y, mo, d, h, mi, sec, ms = 0, offset;
	size_t i = 19;

	if (len < 20 || s[4] != '-' || s[7] != '-' || s[13] != ':' || s[16] != ':')
		return -1;
	if (s[10] != 'T' && s[10] != 't' && s[10] != ' ')
		return -1;
	y = digits(s, 4);
	mo = digits(s + 5, 2);
	d = digits(s + 8, 2);
	h = digits(s + 11, 2);
	mi = digits(s + 14, 2);
	sec = digits(s + 17, 2);
	if (y < 0 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo))
		return -1;
	if (h < 0 || h > 23 || mi < 0 || mi > 59 || sec < 0 || sec > 59)
		return -1;
	if (s[i] == '.') {
		size_t f0 = i + 1;

		i = f0;
		while (i < len && is_digit((unsigned char)s[i])) {
			/* Later digits only refine below a millisecond: truncation drops them. */
			if (i - f0 < 3)
				ms = ms * 10 + (s[i] - '0');
			i++;
		}
		if (i == f0 || i - f0 > 9)
			return -1;
		for (size_t k = i - f0; k < 3; k++)
			ms *= 10;
	}
	if (parse_offset(&offset, s + i, len - i) != 0)
		return -1;
	/*
	 * The fraction is a non-negative part of the local time, so dropping its
	 * sub-millisecond digits already rounds toward negative infinity, also
	 * for times before 1970.
	 */
	*out_ms = days_from_civil(y, mo, d) * MS_PER_DAY +
		  ((int64_t)h * 3600 + mi * 60 + sec) * 1000 + ms - (int64_t)offset * 60000;
	return 0;
}

/*
 * A JSON-grammar number, kept as its significant digits and a power of ten
 * so the conversion stays exact: no double rounding of 1700000000123.
 */
int bn_timestamp_from_number(const char *s, size_t len, int64_t *out_ms)
{
	bn_json_number num;
	size_t first, last;
	int64_t point, scale;
	uint64_t mag = 0, limit;
	bool inexact;

	if (bn_json_number_split(&num, s, len) < 0)
		return -1;
	if (!bn_json_number_significant(&num, &first, &last, &scale)) {
		*out_ms = 0;
		return 0;
	}
	/* The value is 0.d[first..last] * 10^point; it is below 1e11 exactly when point <= 11. */
	point = scale + (int64_t)(last - first + 1);
	if (point <= 11)
		point += 3;  /* seconds: scale to milliseconds */
	/* Integer milliseconds are the first `point` significant digits. */
	scale = point - (int64_t)(last - first + 1);
	if (point > 19)
		return -1;
	limit = (uint64_t)INT64_MAX + (uint64_t)num.negative;
	inexact = scale < 0;
	for (int64_t k = 0; k < point; k++) {
		size_t idx = first + (size_t)k;
		unsigned dg = idx <= last ? (unsigned)bn_json_number_digit(&num, idx) : 0;
		if (mag > (limit - dg) / 10)
			return -1;
		mag = mag * 10 + dg;
	}
	/* Truncate toward negative infinity: a dropped fraction makes a negative time one earlier. */
	if (num.negative && inexact) {
		if (mag == limit)
			return -1;
		mag++;
	}
	if (num.negative)
		*out_ms = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag;
	else
		*out_ms = (int64_t)mag;
	return 0;
}

int bn_timestamp_parse_text(const char *s, size_t len, int64_t *out_ms)
{
	if (len >= 20 && s[4] == '-')
		return parse_rfc3339(s, len, out_ms);
	return bn_timestamp_from_number(s, len, out_ms);
}
