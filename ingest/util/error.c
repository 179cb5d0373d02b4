/* error.c - filling and formatting the caller-owned bn_error; names of statuses and reject reasons. */
#include "bidnorm/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void bn_error_clear(bn_error *err)
{
	/* Field by field: entry points clear it on every call (every served request), and the
	 * struct is mostly string buffers that only need their first byte. */
	if (!err)
		return;
	err->code = BN_OK;
	err->reason = 0;
	err->source[0] = '\0';
	err->line = 0;
	err->column = 0;
	err->offset = 0;
	err->has_offset = 0;
	err->field[0] = '\0';
	err->message[0] = '\0';
}

int bn_error_set(bn_error *err, int code, const char *fmt, ...)
{
	if (err) {
		va_list ap;
		err->code = code;
		va_start(ap, fmt);
		vsnprintf(err->message, sizeof(err->message), fmt, ap);
		va_end(ap);
	}
	return code;
}

void bn_error_locate(bn_error *err, const char *source, uint64_t line, uint32_t column)
{
	if (!err)
		return;
	snprintf(err->source, sizeof(err->source), "%s", source ? source : "");
	err->line = line;
	err->column = column;
}

void bn_error_field(bn_error *err, const char *field)
{
	if (err)
		snprintf(err->field, sizeof(err->field), "%s", field ? field : "");
}

size_t bn_error_format(const bn_error *err, char *buf, size_t size)
{
	char loc[BN_ERROR_SOURCE_MAX + 48] = "";
	char fld[BN_ERROR_FIELD_MAX + 16] = "";
	int n;
	if (!err)
		return (size_t)snprintf(buf, size, "no error");
	if (err->source[0] && err->line && err->column)
		snprintf(loc, sizeof(loc), "%s:%llu:%u: ", err->source, (unsigned long long)err->line, err->column);
	else if (err->source[0] && err->line)
		snprintf(loc, sizeof(loc), "%s:%llu: ", err->source, (unsigned long long)err->line);
	else if (err->source[0])
		snprintf(loc, sizeof(loc), "%s: ", err->source);
	if (err->field[0])
		snprintf(fld, sizeof(fld), "field '%s': ", err->field);
	n = snprintf(buf, size, "%s%s%s", loc, fld, err->message[0] ? err->message : bn_status_name(err->code));
	return n < 0 ? 0 : (size_t)n;
}

const char *bn_status_name(int code)
{
	switch (code) {
	case BN_OK: return "success";
	case BN_EUSAGE: return "invalid argument";
	case BN_ENOMEM: return "out of memory";
	case BN_EIO: return "input/output error";
	case BN_ECORRUPT: return "corrupt input";
	case BN_ERULES: return "invalid rule file";
	case BN_EREJECT: return "record rejected";
	case BN_EREJECTRATE: return "reject rate exceeded";
	case BN_EINTERNAL: return "internal error";
	default: return "unknown error";
	}
}

const char *bn_reject_reason_name(int reason)
{
	static const char *const names[BN_REJECT_REASON_COUNT] = {
		"none", "invalid_json", "not_object", "missing_required", "invalid_value",
		"line_too_long", "validation_failed", "too_complex", "missing_rows", "rows_not_array",
		"empty_rows", "row_not_object", "too_many_rows",
	};
	if (reason < 0 || reason >= BN_REJECT_REASON_COUNT)
		return "unknown";
	return names[reason];
}
