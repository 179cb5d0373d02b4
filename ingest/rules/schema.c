/* schema.c - derives the Avro record schema (JSON) from loaded rules, so training readers and the writer agree by construction. */
#include "rules/schema.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"

/* Avro spelling of each bn_type (index bn_type - 1). */
static const char *const avro_types[] = {
	"\"string\"", "\"int\"", "\"long\"", "\"double\"", "\"boolean\"",
	"{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"}",
};

static int put(bn_buf *b, const char *s)
{
	return bn_buf_append(b, s, strlen(s));
}

/* A JSON string literal: quotes, backslashes and control characters escaped; UTF-8 passes through. */
static int put_json_string(bn_buf *b, const char *s, size_t len)
{
	size_t i;
	int rc = bn_buf_putc(b, '"');

	for (i = 0; i < len && !rc; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[8];
		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			rc = bn_buf_append(b, esc, 2);
		} else if (c == '\n') {
			rc = put(b, "\\n");
		} else if (c == '\t') {
			rc = put(b, "\\t");
		} else if (c == '\r') {
			rc = put(b, "\\r");
		} else if (c < 0x20 || c == 0x7f) {
			snprintf(esc, sizeof(esc), "\\u%04x", c);
			rc = put(b, esc);
		} else {
			rc = bn_buf_putc(b, (char)c);
		}
	}
	return rc ? rc : bn_buf_putc(b, '"');
}

static int put_key_string(bn_buf *b, const char *key, const char *value)
{
	if (put(b, ",\"") || put(b, key) || put(b, "\":"))
		return -1;
	return put_json_string(b, value, strlen(value));
}

static int put_default(bn_buf *b, const bn_field *f)
{
	char num[40];

	switch (f->type) {
	case BN_T_STRING:
		return put_json_string(b, f->def.s, f->def.s_len);
	case BN_T_BOOLEAN:
		return put(b, f->def.i ? "true" : "false");
	case BN_T_DOUBLE:
		/* 17 significant digits round-trip every double; the loader refused non-finite ones. */
		snprintf(num, sizeof(num), "%.17g", f->def.d);
		return put(b, num);
	case BN_T_INT:
	case BN_T_LONG:
	case BN_T_TIMESTAMP_MS:
		snprintf(num, sizeof(num), "%" PRId64, f->def.i);
		return put(b, num);
	}
	return -1;
}

static int put_field(bn_buf *b, const bn_field *f)
{
	const char *t = avro_types[f->type - 1];

	if (put(b, "{\"name\":") || put_json_string(b, f->name, strlen(f->name)))
		return -1;
	if (f->doc && put_key_string(b, "doc", f->doc))
		return -1;
	if (put(b, ",\"type\":"))
		return -1;
	if (f->shape == BN_SHAPE_ARRAY)
		return put(b, "{\"type\":\"array\",\"items\":") || put(b, t) || put(b, "},\"default\":[]}");
	if (f->shape == BN_SHAPE_MAP)
		return put(b, "{\"type\":\"map\",\"values\":") || put(b, t) || put(b, "},\"default\":{}}");
	if (bn_field_nullable(f))
		return put(b, "[\"null\",") || put(b, t) || put(b, "],\"default\":null}");
	if (f->def.present)
		return put(b, t) || put(b, ",\"default\":") || put_default(b, f) || put(b, "}");
	return put(b, t) || put(b, "}");
}

static int put_record(bn_buf *b, const bn_rules *r)
{
	size_t i;

	if (put(b, "{\"type\":\"record\",\"name\":") || put_json_string(b, r->schema_name, strlen(r->schema_name)))
		return -1;
	if (r->schema_namespace && put_key_string(b, "namespace", r->schema_namespace))
		return -1;
	if (r->schema_doc && put_key_string(b, "doc", r->schema_doc))
		return -1;
	if (put(b, ",\"fields\":["))
		return -1;
	for (i = 0; i < r->nfields; i++)
		if ((i && bn_buf_putc(b, ',')) || put_field(b, &r->fields[i]))
			return -1;
	return put(b, "]}") || bn_buf_putc(b, '\0');
}

int bn_rules_schema_build(bn_rules *r, bn_error *err)
{
	bn_buf b = { 0 };
	int rc = BN_OK;

	if (put_record(&b, r)) {
		rc = bn_error_set(err, BN_ENOMEM, "out of memory generating the Avro schema");
		goto cleanup;
	}
	free(r->schema_json);
	r->schema_json = b.data;
	b.data = NULL;
cleanup:
	bn_buf_free(&b);
	return rc;
}
