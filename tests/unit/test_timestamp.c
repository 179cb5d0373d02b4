/* test_timestamp.c - RFC 3339 text, numeric strings and epoch numbers to Unix milliseconds, and what is refused. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "record/timestamp.h"

#define REJECT INT64_C(0x7eadbeef)  /* marks a case that must fail and leave *out alone */

typedef struct ts_case {
	const char *text;
	int64_t want;  /* REJECT: must return -1 */
} ts_case;

static const ts_case text_cases[] = {
	/* zones and separators */
	{"1970-01-01T00:00:00Z", 0},
	{"1970-01-01T00:00:00z", 0},
	{"1970-01-01t00:00:00Z", 0},
	{"1970-01-01 00:00:00Z", 0},
	{"1970-01-01T00:00:00+00:00", 0},
	{"1970-01-01T00:00:00-00:00", 0},
	{"2026-11-20T12:00:01.123Z", INT64_C(1795176001123)},
	{"2026-11-20T12:00:01+05:30", INT64_C(1795156201000)},
	{"2026-11-20T12:00:01+0530", INT64_C(1795156201000)},
	{"2026-11-20T12:00:01-08:00", INT64_C(1795204801000)},
	{"2026-11-20T12:00:01-08", INT64_C(1795204801000)},
	{"2026-11-20T00:00:00+18:00", INT64_C(1795068000000)},
	{"2026-11-20T00:00:00+18:01", REJECT},
	{"2026-11-20T00:00:00+19", REJECT},
	{"2026-11-20T00:00:00+05:60", REJECT},
	{"2026-11-20T00:00:00+5:30", REJECT},
	{"2026-11-20T00:00:00+05:3", REJECT},
	{"2026-11-20T00:00:00+05:300", REJECT},
	{"2026-11-20T00:00:00 +05:30", REJECT},
	{"2026-11-20T00:00:00UTC", REJECT},
	{"2026-11-20T12:00:01", REJECT},
	{"2026-11-20T12:00:01.123", REJECT},
	{"2026-11-20", REJECT},
	/* fraction lengths */
	{"2026-11-20T12:00:01.1Z", INT64_C(1795176001100)},
	{"2026-11-20T12:00:01.12Z", INT64_C(1795176001120)},
	{"2026-11-20T12:00:01.123Z", INT64_C(1795176001123)},
	{"2026-11-20T12:00:01.1239Z", INT64_C(1795176001123)},
	{"2026-11-20T12:00:01.12399Z", INT64_C(1795176001123)},
	{"2026-11-20T12:00:01.123999Z", INT64_C(1795176001123)},
	{"2026-11-20T12:00:01.1239999Z", INT64_C(1795176001123)},
	{"2026-11-20T12:00:01.12399999Z", INT64_C(1795176001123)},
	{"2026-11-20T12:00:01.123999999Z", INT64_C(1795176001123)},
	{"2026-11-20T12:00:01.1239999999Z", REJECT},
	{"2026-11-20T12:00:01.Z", REJECT},
	{"2026-11-20T12:00:01,5Z", REJECT},
	/* calendar */
	{"2024-02-29T00:00:00Z", INT64_C(1709164800000)},
	{"2023-02-29T00:00:00Z", REJECT},
	{"1900-02-29T00:00:00Z", REJECT},
	{"2000-02-29T00:00:00Z", INT64_C(951782400000)},
	{"2000-03-01T00:00:00Z", INT64_C(951868800000)},
	{"2026-04-31T00:00:00Z", REJECT},
	{"2026-13-01T00:00:00Z", REJECT},
	{"2026-00-10T00:00:00Z", REJECT},
	{"2026-01-00T00:00:00Z", REJECT},
	{"2026-01-32T00:00:00Z", REJECT},
	{"2026-01-01T24:00:00Z", REJECT},
	{"2026-01-01T23:60:00Z", REJECT},
	{"2026-12-31T23:59:60Z", REJECT},
	{"2026-1-01T00:00:00Z", REJECT},
	{"2026/01/01T00:00:00Z", REJECT},
	{"2026-01-01X00:00:00Z", REJECT},
	{"2026-01-01T00:00:0aZ", REJECT},
	/* far dates and times before 1970: fractions truncate toward negative infinity */
	{"1969-12-31T23:59:59.999Z", -1},
	{"1969-12-31T23:59:59.9999Z", -1},
	{"1969-12-31T23:59:59.123Z", -877},
	{"1900-01-01T00:00:00Z", INT64_C(-2208988800000)},
	{"0001-01-01T00:00:00Z", INT64_C(-62135596800000)},
	{"9999-12-31T23:59:59.999Z", INT64_C(253402300799999)},
	/* numeric strings: seconds below 1e11, milliseconds from there */
	{"0", 0},
	{"-0", 0},
	{"1700000000", INT64_C(1700000000000)},
	{"1700000000123", INT64_C(1700000000123)},
	{"1700000000.5", INT64_C(1700000000500)},
	{"1700000000.0005", INT64_C(1700000000000)},
	{"1700000000123.9", INT64_C(1700000000123)},
	{"-5", -5000},
	{"-1.0005", -1001},
	{"-0.0001", -1},
	{"-1700000000123.5", INT64_C(-1700000000124)},
	{"99999999999", INT64_C(99999999999000)},
	{"99999999999.999", INT64_C(99999999999999)},
	{"100000000000", INT64_C(100000000000)},
	{"-99999999999", INT64_C(-99999999999000)},
	{"-100000000000", INT64_C(-100000000000)},
	{"9223372036854775807", INT64_MAX},
	{"9223372036854775808", REJECT},
	{"-9223372036854775808", INT64_MIN},
	{"-9223372036854775807.5", INT64_MIN},
	{"-9223372036854775808.5", REJECT},
	{"1.7e9", INT64_C(1700000000000)},
	{"1e999", REJECT},
	{"1e-999", 0},
	/* junk */
	{"", REJECT},
	{"yesterday", REJECT},
	{"now", REJECT},
	{" 1700000000", REJECT},
	{"1700000000 ", REJECT},
	{" 2026-11-20T12:00:01Z", REJECT},
	{"2026-11-20T12:00:01Z ", REJECT},
	{"+1700000000", REJECT},
	{"01700000000", REJECT},
	{"0x10", REJECT},
	{"1700000000.", REJECT},
	{".5", REJECT},
	{"-", REJECT},
	{"NaN", REJECT},
	{"2026-11-20T12:00:01Zjunk", REJECT},
};

/* Each case through parse: its value, or -1 with the output untouched. */
static void check_table(const ts_case *cases, size_t n, int (*parse)(const char *, size_t, int64_t *))
{
	for (size_t i = 0; i < n; i++) {
		const ts_case *c = &cases[i];
		int64_t v = REJECT;
		int rc = parse(c->text, strlen(c->text), &v);

		if (c->want == REJECT) {
			cr_assert_eq(rc, -1, "case %zu [%s]: accepted as %lld", i, c->text, (long long)v);
			cr_assert_eq(v, REJECT, "case %zu [%s]: out written on failure", i, c->text);
		} else {
			cr_assert_eq(rc, 0, "case %zu [%s]: rejected", i, c->text);
			cr_assert_eq(v, c->want, "case %zu [%s]: %lld, want %lld", i, c->text, (long long)v,
				     (long long)c->want);
		}
	}
}

Test(timestamp, text_table)
{
	check_table(text_cases, sizeof(text_cases) / sizeof(text_cases[0]), bn_timestamp_parse_text);
}

Test(timestamp, number_table)
{
	static const ts_case cases[] = {
		{"1700000000", INT64_C(1700000000000)},
		{"1700000000123", INT64_C(1700000000123)},
		{"1.7e9", INT64_C(1700000000000)},
		{"1.7E+12", INT64_C(1700000000000)},
		{"17000000001234e-1", INT64_C(1700000000123)},
		{"1700000000.5", INT64_C(1700000000500)},
		{"9.9999999999e10", INT64_C(99999999999000)},
		{"1e11", INT64_C(100000000000)},
		{"-1.5", -1500},
		{"-0.0", 0},
		{"0e5", 0},
		{"1e19", REJECT},
		{"1e999", REJECT},
		{"-1e999", REJECT},
		{"2026-11-20T12:00:01Z", REJECT},
		{"1.", REJECT},
		{"1e", REJECT},
		{"", REJECT},
	};
	check_table(cases, sizeof(cases) / sizeof(cases[0]), bn_timestamp_from_number);
}

Test(timestamp, reads_only_len)
{
	int64_t v = 0;

	/* Token text is a slice of the line: what follows it must not be read. */
	cr_assert_eq(bn_timestamp_from_number("1700000000,\"x\":1", 10, &v), 0);
	cr_assert_eq(v, INT64_C(1700000000000));
	cr_assert_eq(bn_timestamp_parse_text("2026-11-20T12:00:01Z\"}", 20, &v), 0);
	cr_assert_eq(v, INT64_C(1795176001000));
	cr_assert_eq(bn_timestamp_parse_text("2026-11-20T12:00:01.5Z", 21, &v), -1);
}

Test(timestamp, every_day_of_four_centuries_matches_day_count)
{
	/* Walk 1900-01-01 .. 2299-12-31 day by day: each midnight is exactly one day after the last. */
	int64_t prev = 0, v = 0;
	int first = 1;
	char buf[32];
	static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

	for (int y = 1900; y < 2300; y++) {
		int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
		for (int m = 1; m <= 12; m++) {
			int n = mdays[m - 1] + (m == 2 && leap);
			for (int d = 1; d <= n + 1; d++) {
				int rc;
				snprintf(buf, sizeof(buf), "%04d-%02d-%02dT00:00:00Z", y, m, d);
				rc = bn_timestamp_parse_text(buf, strlen(buf), &v);
				if (d == n + 1) {
					cr_assert_eq(rc, -1, "%s accepted", buf);
					continue;
				}
				cr_assert_eq(rc, 0, "%s rejected", buf);
				if (!first)
					cr_assert_eq(v - prev, INT64_C(86400000), "%s", buf);
				prev = v;
				first = 0;
			}
		}
	}
	cr_assert_eq(v, INT64_C(10413705600000));  /* 2299-12-31 */
}
