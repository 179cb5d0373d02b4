/* rejects.c - writes the reject file: every record that is not in the Avro output is here, with its reason. */
#include "sink/rejects.h"

#include <string.h>

#include "util/jsonw.h"

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

int bn_rejects_format(bn_buf *b, const char *source, const bn_line *line, const bn_error *why)
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
	bad |= bn_jsonw_string(b, line->data, line->size);
	if (line->too_long) {
		bad |= bn_jsonw_raw(b, ",\"raw_truncated\":true,\"raw_size\":");
		bad |= bn_jsonw_u64(b, line->raw_size);
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
