/* test_error.c - unit tests of the caller-owned bn_error: setting, locating, formatting, and the name tables. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "bidnorm/error.h"

typedef struct format_case {
	const char *source;  /* NULL: not located */
	uint64_t line;
	uint32_t column;
	const char *field;   /* NULL: no field */
	int code;
	const char *message; /* NULL: no message set */
	const char *want;
} format_case;

static const format_case format_cases[] = {
	/* source + line + column */
	{"rules.yaml", 6, 11, "x", BN_ERULES, "unknown type 'strng'", "rules.yaml:6:11: field 'x': unknown type 'strng'"},
	{"rules.yaml", 6, 11, NULL, BN_ERULES, "bad", "rules.yaml:6:11: bad"},
	/* source + line */
	{"impressions-07.jsonl.zst", 1834, 0, "ts", BN_EREJECT, "not an ISO-8601 time or epoch number: \"yesterday\"",
	 "impressions-07.jsonl.zst:1834: field 'ts': not an ISO-8601 time or epoch number: \"yesterday\""},
	{"a.jsonl", 2, 0, NULL, BN_EREJECT, "invalid JSON", "a.jsonl:2: invalid JSON"},
	/* source only (a column without a line is not shown) */
	{"missing.jsonl", 0, 0, NULL, BN_EIO, "cannot open: No such file or directory",
	 "missing.jsonl: cannot open: No such file or directory"},
	{"x.jsonl", 0, 7, NULL, BN_EIO, "m", "x.jsonl: m"},
	/* no source: line and column are not shown either */
	{NULL, 5, 3, NULL, BN_EUSAGE, "bad option", "bad option"},
	{"", 5, 3, "f", BN_EUSAGE, "bad option", "field 'f': bad option"},
	/* field only */
	{NULL, 0, 0, "event_id", BN_EREJECT, "missing required field", "field 'event_id': missing required field"},
	/* no message: the status name */
	{NULL, 0, 0, NULL, BN_ENOMEM, NULL, "out of memory"},
	{"in.zst", 9, 0, NULL, BN_ECORRUPT, NULL, "in.zst:9: corrupt input"},
	{NULL, 0, 0, "f", BN_EREJECT, NULL, "field 'f': record rejected"},
	{NULL, 0, 0, NULL, 42, NULL, "unknown error"},
	{NULL, 0, 0, NULL, BN_OK, NULL, "success"},
	/* a message is used verbatim: no printf expansion of what it contains */
	{"s", 1, 1, NULL, BN_EIO, "100%s done", "s:1:1: 100%s done"},
	/* the largest line number */
	{"s", UINT64_MAX, UINT32_MAX, NULL, BN_EIO, "m", "s:18446744073709551615:4294967295: m"},
};

Test(error, format_table)
{
	size_t i;
	for (i = 0; i < sizeof(format_cases) / sizeof(format_cases[0]); i++) {
		const format_case *c = &format_cases[i];
		bn_error err;
		char buf[1024];
		size_t n;
		bn_error_clear(&err);
		if (c->message)
			cr_assert_eq(bn_error_set(&err, c->code, "%s", c->message), c->code);
		else
			err.code = c->code;
		if (c->source || c->line || c->column)
			bn_error_locate(&err, c->source, c->line, c->column);
		if (c->field)
			bn_error_field(&err, c->field);
		n = bn_error_format(&err, buf, sizeof(buf));
		cr_expect_str_eq(buf, c->want, "case %zu", i);
		cr_expect_eq(n, strlen(c->want), "case %zu: returned %zu", i, n);
	}
}

Test(error, format_truncates_and_returns_full_length)
{
	static const char want[] = "f.jsonl:12:3: field 'ts': bad value";
	static const size_t sizes[] = {0, 1, 2, 8, 20, sizeof(want) - 1, sizeof(want), sizeof(want) + 10};
	bn_error err;
	size_t i;
	bn_error_clear(&err);
	bn_error_set(&err, BN_EREJECT, "bad %s", "value");
	bn_error_locate(&err, "f.jsonl", 12, 3);
	bn_error_field(&err, "ts");
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		char buf[64];
		size_t size = sizes[i];
		memset(buf, '#', sizeof(buf));
		cr_expect_eq(bn_error_format(&err, size ? buf : NULL, size), strlen(want), "size %zu", size);
		if (size == 0) {
			cr_expect_eq(buf[0], '#', "size 0 wrote to the buffer");
			continue;
		}
		size_t kept = size - 1 < strlen(want) ? size - 1 : strlen(want);
		cr_expect(memcmp(buf, want, kept) == 0, "size %zu: \"%.*s\"", size, (int)kept, buf);
		cr_expect_eq(buf[kept], '\0', "size %zu: not terminated", size);
		cr_expect_eq(buf[kept + 1], kept + 1 < size ? buf[kept + 1] : '#', "size %zu: wrote past size", size);
	}
}

Test(error, format_null_error)
{
	char buf[32];
	cr_expect_eq(bn_error_format(NULL, buf, sizeof(buf)), strlen("no error"));
	cr_expect_str_eq(buf, "no error");
}

Test(error, set_formats_and_truncates_message)
{
	bn_error err;
	char longer[BN_ERROR_MESSAGE_MAX * 2];
	bn_error_clear(&err);
	cr_assert_eq(bn_error_set(&err, BN_EIO, "cannot read '%s': %d", "a.jsonl", 5), BN_EIO);
	cr_expect_eq(err.code, BN_EIO);
	cr_expect_str_eq(err.message, "cannot read 'a.jsonl': 5");
	memset(longer, 'x', sizeof(longer) - 1);
	longer[sizeof(longer) - 1] = '\0';
	bn_error_set(&err, BN_EIO, "%s", longer);
	cr_expect_eq(strlen(err.message), BN_ERROR_MESSAGE_MAX - 1);
	/* set leaves the location alone */
	bn_error_locate(&err, "src", 3, 4);
	bn_error_field(&err, "f");
	bn_error_set(&err, BN_ECORRUPT, "again");
	cr_expect_str_eq(err.source, "src");
	cr_expect_eq(err.line, 3);
	cr_expect_eq(err.column, 4);
	cr_expect_str_eq(err.field, "f");
	cr_expect_str_eq(err.message, "again");
}

Test(error, locate_and_field_truncate_long_names)
{
	bn_error err;
	char name[BN_ERROR_SOURCE_MAX + 50];
	bn_error_clear(&err);
	memset(name, 's', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	bn_error_locate(&err, name, 1, 2);
	cr_expect_eq(strlen(err.source), BN_ERROR_SOURCE_MAX - 1);
	bn_error_field(&err, name);
	cr_expect_eq(strlen(err.field), BN_ERROR_FIELD_MAX - 1);
	/* NULL source and NULL field clear them */
	bn_error_locate(&err, NULL, 0, 0);
	cr_expect_str_eq(err.source, "");
	cr_expect_eq(err.line, 0);
	cr_expect_eq(err.column, 0);
	bn_error_field(&err, NULL);
	cr_expect_str_eq(err.field, "");
}

Test(error, clear_resets_everything)
{
	bn_error err;
	bn_error_set(&err, BN_EREJECT, "x");
	err.reason = BN_REJECT_INVALID_JSON;
	err.offset = 99;
	err.has_offset = 1;
	bn_error_locate(&err, "s", 1, 1);
	bn_error_field(&err, "f");
	bn_error_clear(&err);
	cr_expect_eq(err.code, BN_OK);
	cr_expect_eq(err.reason, BN_REJECT_NONE);
	cr_expect_eq(err.line, 0);
	cr_expect_eq(err.column, 0);
	cr_expect_eq(err.offset, 0);
	cr_expect_eq(err.has_offset, 0);
	cr_expect_str_eq(err.source, "");
	cr_expect_str_eq(err.field, "");
	cr_expect_str_eq(err.message, "");
}

Test(error, null_error_is_accepted)
{
	cr_expect_eq(bn_error_set(NULL, BN_ENOMEM, "out of %s", "memory"), BN_ENOMEM);
	cr_expect_eq(bn_error_set(NULL, BN_OK, "fine"), BN_OK);
	bn_error_locate(NULL, "s", 1, 2);
	bn_error_field(NULL, "f");
	bn_error_clear(NULL);
}

typedef struct name_case {
	int value;
	const char *name;
} name_case;

Test(error, status_names)
{
	static const name_case t[] = {
		{BN_OK, "success"},
		{BN_EUSAGE, "invalid argument"},
		{BN_ENOMEM, "out of memory"},
		{BN_EIO, "input/output error"},
		{BN_ECORRUPT, "corrupt input"},
		{BN_ERULES, "invalid rule file"},
		{BN_EREJECT, "record rejected"},
		{BN_EREJECTRATE, "reject rate exceeded"},
		{BN_EINTERNAL, "internal error"},
		{-9, "unknown error"},
		{1, "unknown error"},
		{INT32_MIN, "unknown error"},
		{INT32_MAX, "unknown error"},
	};
	size_t i;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		cr_expect_str_eq(bn_status_name(t[i].value), t[i].name, "status %d", t[i].value);
}

Test(error, status_values_are_stable)
{
	/* Never renumbered: exit codes and logs depend on them. */
	static const name_case t[] = {
		{BN_OK, "0"}, {BN_EUSAGE, "-1"}, {BN_ENOMEM, "-2"}, {BN_EIO, "-3"}, {BN_ECORRUPT, "-4"},
		{BN_ERULES, "-5"}, {BN_EREJECT, "-6"}, {BN_EREJECTRATE, "-7"}, {BN_EINTERNAL, "-8"},
	};
	size_t i;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		char s[16];
		snprintf(s, sizeof(s), "%d", t[i].value);
		cr_expect_str_eq(s, t[i].name);
	}
}

Test(error, reject_reason_names)
{
	static const name_case t[] = {
		{BN_REJECT_NONE, "none"},
		{BN_REJECT_INVALID_JSON, "invalid_json"},
		{BN_REJECT_NOT_OBJECT, "not_object"},
		{BN_REJECT_MISSING_REQUIRED, "missing_required"},
		{BN_REJECT_INVALID_VALUE, "invalid_value"},
		{BN_REJECT_LINE_TOO_LONG, "line_too_long"},
		{BN_REJECT_VALIDATION, "validation_failed"},
		{BN_REJECT_TOO_COMPLEX, "too_complex"},
		{BN_REJECT_MISSING_ROWS, "missing_rows"},
		{BN_REJECT_ROWS_NOT_ARRAY, "rows_not_array"},
		{BN_REJECT_EMPTY_ROWS, "empty_rows"},
		{BN_REJECT_ROW_NOT_OBJECT, "row_not_object"},
		{BN_REJECT_TOO_MANY_ROWS, "too_many_rows"},
		{BN_REJECT_REASON_COUNT, "unknown"},
		{-1, "unknown"},
		{INT32_MIN, "unknown"},
		{INT32_MAX, "unknown"},
	};
	size_t i;
	cr_assert_eq(BN_REJECT_REASON_COUNT, 13);
	cr_assert_eq(BN_REJECT_TOO_COMPLEX, 7);
	cr_assert_eq(BN_REJECT_TOO_MANY_ROWS, 12);
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		cr_expect_str_eq(bn_reject_reason_name(t[i].value), t[i].name, "reason %d", t[i].value);
}
