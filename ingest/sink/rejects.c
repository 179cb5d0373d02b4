/* rejects.c - writes the reject file: every record that is not in the Avro output is here, with its reason. */
#include "sink/rejects.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bidnorm/ingest.h"
#include "normalize/text.h"
#include "util/jsonw.h"

#define RAW_BYTES_MAX (1024 * 1024)

int bn_reject_raw_parse(int *mode, size_t *bytes, const char *text, bn_error *err)
{
	static const char prefix[] = "truncate:";
	const size_t np = sizeof(prefix) - 1;

	if (text && strcmp(text, "full") == 0) {
		*mode = BN_REJECT_RAW_FULL;
		*bytes = 0;
		return BN_OK;
	}
	if (text && strcmp(text, "none") == 0) {
		*mode = BN_REJECT_RAW_NONE;
		*bytes = 0;
		return BN_OK;
	}
	if (text && strncmp(text, prefix, np) == 0 && text[np] >= '0' && text[np] <= '9') {
		char *end;
		unsigned long long n = strtoull(text + np, &end, 10);
		if (!*end && n <= RAW_BYTES_MAX) {
			*mode = BN_REJECT_RAW_TRUNCATE;
			*bytes = (size_t)n;
			return BN_OK;
		}
	}
	return bn_error_set(err, BN_EUSAGE, "must be full, none or truncate:BYTES (0 to %d), not '%s'", RAW_BYTES_MAX,
			    text ? text : "");
}

size_t bn_reject_raw_format(char *out, size_t size, int mode, size_t bytes)
{
	int n;
	if (mode == BN_REJECT_RAW_TRUNCATE)
		n = snprintf(out, size, "truncate:%zu", bytes);
	else
		n = snprintf(out, size, "%s", mode == BN_REJECT_RAW_NONE ? "none" : "full");
	return n < 0 ? 0 : (size_t)n;
}

void bn_rejects_redact(bn_error *why, int raw_mode)
{
	char out[BN_ERROR_MESSAGE_MAX];
	const char *first, *last;
	if (raw_mode == BN_REJECT_RAW_FULL)
		return;
	first = strchr(why->message, '"');
	last = strrchr(why->message, '"');
	/* Values are quoted; everything between the outermost quotes goes, whatever it holds. */
	if (!first || last == first)
		return;
	snprintf(out, sizeof(out), "%.*s\"...\"%s", (int)(first - why->message), why->message, last + 1);
	memcpy(why->message, out, sizeof(out));
}

int bn_rejects_open(bn_rejects *r, const char *path, bn_error *err)
{
	memset(r, 0, sizeof(*r));
	r->out.fd = -1;
	if (!path)
		return BN_OK;
	int rc = bn_outfile_open(&r->out, path, err);
	if (rc == BN_OK)
		r->open = 1;
	return rc;
}

int bn_rejects_format(bn_buf *b, const char *source, const bn_line *line, const bn_error *why, int raw_mode,
		      size_t raw_bytes)
{
	int bad = 0;
	bad |= bn_jsonw_raw(b, "{\"source\":");
	bad |= bn_jsonw_cstr(b, source);
	bad |= bn_jsonw_raw(b, ",\"line\":");
	bad |= bn_jsonw_u64(b, line->number);
	bad |= bn_jsonw_raw(b, ",\"offset\":");
	bad |= bn_jsonw_u64(b, line->offset);
	bad |= bn_jsonw_raw(b, ",\"reason\":");
	bad |= bn_jsonw_cstr(b, bn_reject_reason_name(why->reason));
	bad |= bn_jsonw_raw(b, ",\"field\":");
	bad |= bn_jsonw_cstr(b, why->field[0] ? why->field : NULL);
	bad |= bn_jsonw_raw(b, ",\"column\":");
	if (why->column)
		bad |= bn_jsonw_u64(b, why->column);
	else
		bad |= bn_jsonw_raw(b, "null");
	bad |= bn_jsonw_raw(b, ",\"message\":");
	bad |= bn_jsonw_cstr(b, why->message);
	bad |= bn_jsonw_raw(b, ",\"raw\":");
	if (raw_mode == BN_REJECT_RAW_NONE) {
		bad |= bn_jsonw_raw(b, "null,\"raw_size\":");
		bad |= bn_jsonw_u64(b, line->raw_size);
	} else {
		size_t kept = line->size;
		if (raw_mode == BN_REJECT_RAW_TRUNCATE && kept > raw_bytes)
			kept = bn_utf8_truncate(line->data, line->size, raw_bytes);
		bad |= bn_jsonw_string(b, line->data, kept);
		if (line->too_long || kept < line->size) {
			bad |= bn_jsonw_raw(b, ",\"raw_truncated\":true,\"raw_size\":");
			bad |= bn_jsonw_u64(b, line->raw_size);
		}
	}
	bad |= bn_jsonw_raw(b, "}\n");
	return bad ? BN_ENOMEM : BN_OK;
}

int bn_rejects_write_formatted(bn_rejects *r, const void *data, size_t size, bn_error *err)
{
	if (!r->open || !size)
		return BN_OK;
	return bn_outfile_write(&r->out, data, size, err);
}

int bn_rejects_commit(bn_rejects *r, bn_error *err)
{
	int rc = BN_OK;
	if (r->open)
		rc = bn_outfile_commit(&r->out, err);
	r->open = 0;
	return rc;
}

void bn_rejects_abort(bn_rejects *r)
{
	if (r->open)
		bn_outfile_abort(&r->out);
	r->open = 0;
}
