/* fuzz_line.c - libFuzzer target: one JSON line through both shipped rule sets (every row of the openrtb one) and the Avro record encoder; the tokenizer's SIMD and portable string scans compared. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bidnorm/bidnorm.h"
#include "normalize/record.h"
#include "source/utf8_repair.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bn_rules *rules, *rows_rules;
static bn_normalizer *norm, *rows_norm;
static bn_json_parser *simd_json, *word_json;
static bn_buf out;
static char *repaired;
static size_t repaired_cap;

static void setup(void)
{
	bn_error err;
	if (bn_rules_load_default(&rules, &err) < 0 || bn_normalizer_new(&norm, rules, &err) < 0 ||
	    bn_rules_load_builtin(&rows_rules, "openrtb", &err) < 0 || bn_normalizer_new(&rows_norm, rows_rules, &err) < 0) {
		fprintf(stderr, "fuzz_line: setup failed: %s\n", err.message);
		abort();
	}
	if (bn_json_parser_new(&simd_json, 0) < 0 || bn_json_parser_new(&word_json, 0) < 0)
		abort();
	bn_json_parser_set_portable(word_json, 1);
}

/* The SIMD string scan and the portable one agree on every token, column and message. */
static void same_in_both_scans(const char *text, size_t len)
{
	bn_json_result a, b;
	int ra = bn_json_parse(simd_json, text, len, &a);
	int rb = bn_json_parse(word_json, text, len, &b);
	int same = ra == rb && a.count == b.count && a.column == b.column &&
		   (a.message == b.message || (a.message && b.message && strcmp(a.message, b.message) == 0));
	for (size_t k = 0; same && k < a.count; k++) {
		const bn_json_token *x = &a.tokens[k], *y = &b.tokens[k];
		same = x->type == y->type && x->escaped == y->escaped && x->ascii == y->ascii && x->start == y->start &&
		       x->len == y->len && x->size == y->size && x->next == y->next;
	}
	if (!same) {
		fprintf(stderr, "fuzz_line: the SIMD and portable string scans disagree\n");
		abort();
	}
}

/* A record is encoded; a reject has a reason and a message; nothing else may happen. */
static void check(bn_normalizer *nz, int rc, const bn_error *err)
{
	if (rc == BN_OK) {
		bn_buf_reset(&out);
		if (bn_record_encode(nz, &out) != BN_OK) {
			fprintf(stderr, "fuzz_line: encode failed\n");
			abort();
		}
	} else if (rc == BN_EREJECT) {
		if (err->reason <= BN_REJECT_NONE || err->reason >= BN_REJECT_REASON_COUNT || !err->message[0]) {
			fprintf(stderr, "fuzz_line: reject without reason or message (reason %d)\n", err->reason);
			abort();
		}
	} else {
		fprintf(stderr, "fuzz_line: unexpected status %d: %s\n", rc, err->message);
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	bn_error err;
	size_t n;
	int rc;

	if (!norm)
		setup();
	if (size > 1 << 20)
		return 0;
	/* Lines reach the normalizer repaired, as the source hands them out. */
	if (BN_UTF8_REPAIR_MAX(size) > repaired_cap) {
		free(repaired);
		repaired_cap = BN_UTF8_REPAIR_MAX(size) + 1;
		repaired = malloc(repaired_cap);
		if (!repaired)
			abort();
	}
	same_in_both_scans((const char *)data, size);
	n = bn_utf8_repair(repaired, NULL, (const char *)data, size);
	bn_error_clear(&err);
	rc = bn_normalize_line(norm, repaired, n, &err);
	check(norm, rc, &err);
	/* A line is written whole or rejected whole: every row is normalized until one is rejected. */
	size_t nrows = 0;
	bn_error_clear(&err);
	rc = bn_normalize_parse(rows_norm, repaired, n, &nrows, &err);
	if (rc == BN_OK && (nrows == 0 || nrows > rows_rules->max_rows)) {
		fprintf(stderr, "fuzz_line: %zu rows accepted\n", nrows);
		abort();
	}
	for (size_t r = 0; rc == BN_OK && r < nrows; r++) {
		rc = bn_normalize_row(rows_norm, r, &err);
		check(rows_norm, rc, &err);
	}
	if (rc != BN_OK)
		check(rows_norm, rc, &err);
	return 0;
}
