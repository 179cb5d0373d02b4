/* serve_example.c - a serving loop in C on the public API only: raw bid-log JSON lines in, encoded features out (or latency with --bench). */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bidnorm/bidnorm.h"

/*
 *   serve_example --vocab DIR [--rules FILE|NAME] [--allow-other-rules] < raw.jsonl
 *       one JSON object per non-blank input line: the encoded features by
 *       name, or {"rejected": REASON, "field": F, "message": M} for a line
 *       `bidnorm ingest` would reject. With rules that have rows (openrtb:
 *       one per imp), one object per row, each starting with "row": N;
 *   serve_example --vocab DIR [--rules FILE|NAME] --bench N < raw.jsonl
 *       time N requests (bn_encoder_encode_json, then every further row) over
 *       the input lines (after one warm-up pass) and print latency percentiles.
 * The rules: --rules FILE|NAME, else those the vocabulary's manifest records
 * (bn_vocab_load_rules, as `bidnorm parity` and `vocab lint` take them: the
 * shipped set with its rules_sha256, else the rule file its rules_source
 * names if still identical; a directory without a manifest: the default).
 * --allow-other-rules loads a vocabulary built from data of other rules than
 * --rules (bn_model_options.allow_other_rules; refused by default: skew).
 * Exit codes: 0 ok, 1 failure, 2 usage.
 */

static void put_json_string(FILE *out, const char *s, size_t n)
{
	putc('"', out);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\')
			fprintf(out, "\\%c", c);
		else if (c < 0x20)
			fprintf(out, "\\u%04x", c);
		else
			putc(c, out);
	}
	putc('"', out);
}

/* A number as JSON: integers exactly, doubles with 17 significant digits (they read back bit for bit). */
static void put_number(FILE *out, bn_number_type t, double d, int64_t i)
{
	if (t == BN_NUMBER_DOUBLE)
		fprintf(out, "%.17g", d);
	else
		fprintf(out, "%" PRId64, i);
}

/* row < 0: rules without rows, no "row" member. */
static void print_features(FILE *out, const bn_model *m, const bn_encoder *e, long row)
{
	size_t nf = bn_model_feature_count(m);
	putc('{', out);
	if (row >= 0)
		fprintf(out, "\"row\":%ld%s", row, nf ? "," : "");
	for (size_t f = 0; f < nf; f++) {
		bn_number_type nt = bn_model_feature_number_type(m, f);
		const char *s;
		size_t n;
		int is_null;

		if (f)
			putc(',', out);
		put_json_string(out, bn_model_feature_name(m, f), strlen(bn_model_feature_name(m, f)));
		putc(':', out);
		switch (bn_model_feature_kind(m, f)) {
		case BN_FEATURE_CATEGORICAL:
			fprintf(out, "%" PRIu32, bn_encoder_index(e, f));
			break;
		case BN_FEATURE_CATEGORICAL_LIST: {
			const uint32_t *ids = bn_encoder_indices(e, f, &n);
			putc('[', out);
			for (size_t k = 0; k < n; k++)
				fprintf(out, k ? ",%" PRIu32 : "%" PRIu32, ids[k]);
			putc(']', out);
			break;
		}
		case BN_FEATURE_NUMERIC: {
			double d = bn_encoder_number(e, f, &is_null);
			if (is_null)
				fputs("null", out);
			else
				put_number(out, nt, d, bn_encoder_integer(e, f, NULL));
			break;
		}
		case BN_FEATURE_NUMERIC_MAP:
			putc('{', out);
			for (size_t k = 0; k < bn_encoder_map_count(e, f); k++) {
				double v = bn_encoder_map_entry(e, f, k, &s, &n);
				if (k)
					putc(',', out);
				put_json_string(out, s, n);
				putc(':', out);
				put_number(out, nt, v, (int64_t)v);
			}
			putc('}', out);
			break;
		case BN_FEATURE_PASSTHROUGH:
			s = bn_encoder_string(e, f, &n);
			if (s)
				put_json_string(out, s, n);
			else
				fputs("null", out);
			break;
		}
	}
	fputs("}\n", out);
}

static void print_reject(FILE *out, const bn_error *err, long row)
{
	const char *reason = bn_reject_reason_name(err->reason);
	putc('{', out);
	if (row >= 0)
		fprintf(out, "\"row\":%ld,", row);
	fputs("\"rejected\":", out);
	put_json_string(out, reason, strlen(reason));
	fputs(",\"field\":", out);
	put_json_string(out, err->field, strlen(err->field));
	fputs(",\"message\":", out);
	put_json_string(out, err->message, strlen(err->message));
	fputs("}\n", out);
}

static int is_blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t')
			return 0;
	return 1;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

typedef struct lines {
	char **text;
	size_t *size;
	size_t n, cap;
} lines;

/* One request: row 0 by bn_encoder_encode_json, then every further row. Returns the first failure's code. */
static int encode_request(bn_encoder *enc, const char *text, size_t size, bn_error *err)
{
	int rc = bn_encoder_encode_json(enc, text, size, err);
	for (size_t r = 1; rc == BN_OK && r < bn_encoder_row_count(enc); r++)
		rc = bn_encoder_select_row(enc, r, err);
	return rc;
}

/* Every non-blank line of stdin, without its LF or CRLF. */
static int read_lines(lines *ls)
{
	char *buf = NULL;
	size_t cap = 0;
	ssize_t k;
	while ((k = getline(&buf, &cap, stdin)) >= 0) {
		size_t n = (size_t)k;
		while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
			n--;
		if (is_blank(buf, n))
			continue;
		if (ls->n == ls->cap) {
			size_t nc = ls->cap ? 2 * ls->cap : 1024;
			char **t = realloc(ls->text, nc * sizeof(*t));
			size_t *s = t ? realloc(ls->size, nc * sizeof(*s)) : NULL;
			if (t)
				ls->text = t;
			if (!s)
				goto nomem;
			ls->size = s;
			ls->cap = nc;
		}
		if (!(ls->text[ls->n] = malloc(n ? n : 1)))
			goto nomem;
		memcpy(ls->text[ls->n], buf, n);
		ls->size[ls->n++] = n;
	}
	free(buf);
	return 0;
nomem:
	free(buf);
	return -1;
}

static int bench(bn_encoder *enc, const lines *ls, size_t iterations)
{
	int64_t *lat = malloc(iterations * sizeof(*lat));
	size_t rejected = 0;
	bn_error err;
	if (!lat || !ls->n) {
		free(lat);
		fprintf(stderr, "serve_example: %s\n", ls->n ? "out of memory" : "no input lines to time");
		return 1;
	}
	for (size_t i = 0; i < ls->n; i++) /* warm-up: every buffer grows to its size once */
		encode_request(enc, ls->text[i], ls->size[i], &err);
	int64_t start = now_ns();
	for (size_t i = 0; i < iterations; i++) {
		size_t k = i % ls->n;
		int64_t t0 = now_ns();
		int rc = encode_request(enc, ls->text[k], ls->size[k], &err);
		lat[i] = now_ns() - t0;
		rejected += rc == BN_EREJECT;
	}
	double total = (double)(now_ns() - start) / 1e9;
	qsort(lat, iterations, sizeof(*lat), cmp_i64);
#define PCT(p) ((double)lat[(size_t)((double)(iterations - 1) * (p))] / 1000.0)
	printf("{\"calls\":%zu,\"lines\":%zu,\"rejected\":%zu,\"p50_us\":%.2f,\"p90_us\":%.2f,\"p99_us\":%.2f,"
	       "\"p999_us\":%.2f,\"max_us\":%.2f,\"calls_per_second\":%.0f}\n",
	       iterations, ls->n, rejected, PCT(0.5), PCT(0.9), PCT(0.99), PCT(0.999),
	       (double)lat[iterations - 1] / 1000.0, (double)iterations / total);
#undef PCT
	free(lat);
	return 0;
}

int main(int argc, char **argv)
{
	const char *vocab = NULL, *rules_path = NULL;
	const char *usage = "usage: serve_example --vocab DIR [--rules FILE|NAME] [--allow-other-rules] [--bench N] "
			    "< raw.jsonl\n";
	bn_model_options mo;
	size_t iterations = 0;
	bn_rules *rules = NULL;
	bn_model *model = NULL;
	bn_encoder *enc = NULL;
	lines ls = { 0 };
	bn_error err;
	char msg[1024];
	int rc = 1;

	bn_model_options_init(&mo);
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--vocab") == 0 && i + 1 < argc) {
			vocab = argv[++i];
		} else if (strcmp(argv[i], "--rules") == 0 && i + 1 < argc) {
			rules_path = argv[++i];
		} else if (strcmp(argv[i], "--allow-other-rules") == 0) {
			mo.allow_other_rules = 1;
		} else if (strcmp(argv[i], "--bench") == 0 && i + 1 < argc) {
			iterations = strtoul(argv[++i], NULL, 10);
		} else {
			fputs(usage, stderr);
			return 2;
		}
	}
	if (!vocab) {
		fputs(usage, stderr);
		return 2;
	}
	bn_error_clear(&err);
	/* Once per process: rules and vocabularies, immutable, shareable by every thread. */
	if (bn_vocab_load_rules(&rules, vocab, rules_path, &err) < 0 ||
	    bn_model_load_ext(&model, rules, vocab, &mo, &err) < 0 ||
	    /* Once per thread: an encoder. */
	    bn_encoder_new(&enc, model, &err) < 0) {
		bn_error_format(&err, msg, sizeof(msg));
		fprintf(stderr, "serve_example: %s\n", msg);
		goto cleanup;
	}
	if (read_lines(&ls) < 0) {
		fprintf(stderr, "serve_example: out of memory\n");
		goto cleanup;
	}
	if (iterations) {
		rc = bench(enc, &ls, iterations);
		goto cleanup;
	}
	int has_rows = bn_rules_rows(rules) != NULL;
	for (size_t i = 0; i < ls.n; i++) {
		/* Per request: row 0 (a reject here rejects the request), then every further row. */
		int st = bn_encoder_encode_json(enc, ls.text[i], ls.size[i], &err);
		size_t nrows = st == BN_OK ? bn_encoder_row_count(enc) : 1;
		for (size_t r = 0; r < nrows && (st == BN_OK || st == BN_EREJECT); r++) {
			if (r)
				st = bn_encoder_select_row(enc, r, &err);
			if (st == BN_EREJECT)
				print_reject(stdout, &err, r ? (long)r : -1);
			else if (st == BN_OK)
				print_features(stdout, model, enc, has_rows ? (long)r : -1);
		}
		if (st < 0 && st != BN_EREJECT) {
			bn_error_format(&err, msg, sizeof(msg));
			fprintf(stderr, "serve_example: %s\n", msg);
			goto cleanup;
		}
	}
	rc = 0;
cleanup:
	for (size_t i = 0; i < ls.n; i++)
		free(ls.text[i]);
	free(ls.text);
	free(ls.size);
	bn_encoder_free(enc);
	bn_model_free(model);
	bn_rules_free(rules);
	return rc;
}
