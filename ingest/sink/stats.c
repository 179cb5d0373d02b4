/* stats.c - writes the stats file: counts that reconcile (read = written + rejected) and explain every change. */
#include "sink/stats.h"

#include <stdlib.h>
#include <string.h>

#include "bidnorm/bidnorm.h"
#include "sink/output.h"
#include "util/jsonw.h"

static int put_u64(bn_buf *b, const char *key, uint64_t v, int *first)
{
	return bn_jsonw_key(b, key, first) | bn_jsonw_u64(b, v);
}

static int put_reasons(bn_buf *b, const uint64_t *by_reason)
{
	int first = 1, bad = bn_jsonw_raw(b, "{");
	for (int r = 1; r < BN_REJECT_REASON_COUNT; r++)
		bad |= put_u64(b, bn_reject_reason_name(r), by_reason[r], &first);
	return bad | bn_jsonw_raw(b, "}");
}

static int put_input(bn_buf *b, const bn_input_stats *in)
{
	int first = 1, bad = bn_jsonw_raw(b, "{");
	bad |= bn_jsonw_key(b, "name", &first) | bn_jsonw_cstr(b, in->name);
	bad |= bn_jsonw_key(b, "compression", &first) | bn_jsonw_cstr(b, bn_source_compression_name(in->src.compressed));
	bad |= bn_jsonw_key(b, "complete", &first) | bn_jsonw_raw(b, in->done ? "true" : "false");
	bad |= put_u64(b, "bytes_read", in->src.bytes_read, &first);
	bad |= put_u64(b, "bytes_decoded", in->src.bytes_decoded, &first);
	bad |= put_u64(b, "zstd_frames", in->src.frames, &first);
	bad |= put_u64(b, "gzip_members", in->src.members, &first);
	bad |= put_u64(b, "records_read", in->read, &first);
	bad |= put_u64(b, "records_written", in->written, &first);
	bad |= put_u64(b, "records_rejected", in->rejected, &first);
	bad |= put_u64(b, "rows_written", in->rows, &first);
	bad |= bn_jsonw_key(b, "rejected_by_reason", &first) | put_reasons(b, in->by_reason);
	bad |= put_u64(b, "blank_lines", in->src.blank_lines, &first);
	bad |= put_u64(b, "repaired_bytes", in->src.repaired_bytes, &first);
	bad |= put_u64(b, "too_long_lines", in->src.too_long_lines, &first);
	return bad | bn_jsonw_raw(b, "}");
}

static int put_field(bn_buf *b, const bn_field *fd, const bn_field_stats *st)
{
	int first = 1, bad = bn_jsonw_raw(b, "{");
	bad |= put_u64(b, "present", st->present, &first);
	bad |= put_u64(b, "null", st->nulls, &first);
	bad |= put_u64(b, "coerced", st->coerced, &first);
	bad |= put_u64(b, "coercion_failures", st->failures, &first);
	if (fd->has_range)
		bad |= put_u64(b, "out_of_range", st->out_of_range, &first);
	bad |= put_u64(b, fd->is_ratio ? "undefined" : "defaulted", st->defaulted, &first);
	if (fd->shape != BN_SHAPE_SCALAR) {
		bad |= put_u64(b, "elements", st->items_in, &first);
		bad |= put_u64(b, "elements_dropped", st->items_dropped, &first);
		if (fd->shape == BN_SHAPE_ARRAY)
			bad |= put_u64(b, "elements_over_max_items", st->items_truncated, &first);
		else
			bad |= put_u64(b, "serving_invalid_keys_dropped", st->keys_stripped, &first);
	}
	if (fd->chain) {
		int f2 = 1;
		bad |= bn_jsonw_key(b, "changed_by", &first) | bn_jsonw_raw(b, "{");
		for (unsigned k = 0; k < BN_EFFECT_KINDS; k++)
			bad |= put_u64(b, bn_chain_effect_name(k), st->effects[k], &f2);
		bad |= bn_jsonw_raw(b, "}");
	}
	return bad | bn_jsonw_raw(b, "}");
}

typedef struct seen_row {
	char *path;
	const char *reason;
	uint64_t count;
} seen_row;

static int cmp_row(const void *a, const void *b)
{
	return strcmp(((const seen_row *)a)->path, ((const seen_row *)b)->path);
}

/* Serving-invalid keys from every normalizer, by full path, summed and sorted. */
static int put_invalid_keys(bn_buf *b, const bn_rules *rules, bn_normalizer *const *norms, size_t nnorms)
{
	seen_row *rows = NULL;
	size_t nrows = 0, cap = 0;
	bn_buf path = { 0 };
	int bad = 0;

	for (size_t k = 0; k < nnorms; k++) {
		const bn_normalizer *n = norms[k];
		for (size_t i = 0; i < n->seen_cap; i++) {
			const bn_invalid_seen *e = &n->seen[i];
			if (!e->key || e->rule == UINT32_MAX || !e->count)
				continue;
			bn_plan_node_path(n, (int32_t)e->node, &path);
			if (path.size)
				bad |= bn_buf_putc(&path, '.');
			bad |= bn_buf_append(&path, e->key, e->key_len);
			bad |= bn_buf_putc(&path, '\0');
			size_t r = 0;
			while (r < nrows && strcmp(rows[r].path, path.data) != 0)
				r++;
			if (r == nrows) {
				if (nrows == cap) {
					cap = cap ? cap * 2 : 16;
					seen_row *p = realloc(rows, cap * sizeof(*p));
					if (!p) {
						bad = 1;
						goto cleanup;
					}
					rows = p;
				}
				rows[nrows++] = (seen_row){ strdup(path.data), rules->invalid[e->rule].reason, 0 };
				if (!rows[r].path) {
					bad = 1;
					goto cleanup;
				}
			}
			rows[r].count += e->count;
		}
	}
	if (nrows)
		qsort(rows, nrows, sizeof(*rows), cmp_row);
	int first = 1;
	bad |= bn_jsonw_raw(b, "{");
	for (size_t r = 0; r < nrows; r++) {
		int f2 = 1;
		bad |= bn_jsonw_key(b, rows[r].path, &first) | bn_jsonw_raw(b, "{");
		bad |= bn_jsonw_key(b, "reason", &f2) | bn_jsonw_cstr(b, rows[r].reason);
		bad |= put_u64(b, "count", rows[r].count, &f2);
		bad |= bn_jsonw_raw(b, "}");
	}
	bad |= bn_jsonw_raw(b, "}");
cleanup:
	for (size_t r = 0; r < nrows; r++)
		free(rows[r].path);
	free(rows);
	bn_buf_free(&path);
	return bad ? -1 : 0;
}

int bn_stats_write(const char *path, const bn_run_stats *run, bn_normalizer *const *norms, size_t nnorms,
		   bn_error *err)
{
	bn_outfile out;
	int rc = bn_stats_prepare(&out, path, run, norms, nnorms, err);
	return rc == BN_OK ? bn_outfile_commit(&out, err) : rc;
}

int bn_stats_prepare(bn_outfile *out, const char *path, const bn_run_stats *run, bn_normalizer *const *norms,
		     size_t nnorms, bn_error *err)
{
	bn_buf b = { 0 };
	int first = 1, bad = 0, rc;
	const bn_rules *rules = run->rules;
	bn_field_stats sum;

	bad |= bn_jsonw_raw(&b, "{");
	bad |= bn_jsonw_key(&b, "bidnorm_version", &first) | bn_jsonw_cstr(&b, bn_version());
	bad |= bn_jsonw_key(&b, "status", &first) | bn_jsonw_cstr(&b, run->status);
	bad |= bn_jsonw_key(&b, "error", &first) | bn_jsonw_cstr(&b, run->error);
	bad |= bn_jsonw_key(&b, "rules", &first) | bn_jsonw_cstr(&b, bn_rules_source_name(rules));
	bad |= bn_jsonw_key(&b, "rules_sha256", &first) | bn_jsonw_cstr(&b, bn_rules_sha256(rules));
	bad |= bn_jsonw_key(&b, "output", &first) | bn_jsonw_cstr(&b, run->output);
	bad |= bn_jsonw_key(&b, "rejects", &first) | bn_jsonw_cstr(&b, run->rejects);
	bad |= bn_jsonw_key(&b, "reject_raw", &first) | bn_jsonw_cstr(&b, run->reject_raw ? run->reject_raw : "full");
	bad |= bn_jsonw_key(&b, "codec", &first) | bn_jsonw_cstr(&b, bn_codec_name(run->codec));
	bad |= bn_jsonw_key(&b, "elapsed_seconds", &first) | bn_jsonw_double(&b, run->elapsed);
	bad |= put_u64(&b, "records_read", run->read, &first);
	bad |= put_u64(&b, "records_written", run->written, &first);
	bad |= put_u64(&b, "records_rejected", run->rejected, &first);
	bad |= put_u64(&b, "rows_written", run->rows, &first);
	bad |= bn_jsonw_key(&b, "reject_rate", &first) |
	       bn_jsonw_double(&b, run->read ? (double)run->rejected / (double)run->read : 0.0);
	bad |= bn_jsonw_key(&b, "max_reject_rate", &first) | bn_jsonw_double(&b, run->max_reject_rate);
	bad |= bn_jsonw_key(&b, "rejected_by_reason", &first) | put_reasons(&b, run->by_reason);
	bad |= put_u64(&b, "bytes_written", run->bytes_written, &first);
	bad |= bn_jsonw_key(&b, "inputs", &first) | bn_jsonw_raw(&b, "[");
	for (size_t i = 0; i < run->ninputs; i++) {
		if (i)
			bad |= bn_jsonw_raw(&b, ",");
		bad |= put_input(&b, &run->inputs[i]);
	}
	bad |= bn_jsonw_raw(&b, "]");
	bad |= bn_jsonw_key(&b, "fields", &first) | bn_jsonw_raw(&b, "{");
	for (size_t f = 0, ff = 1; f < rules->nfields; f++) {
		int f1 = (int)ff;
		memset(&sum, 0, sizeof(sum));
		for (size_t k = 0; k < nnorms; k++) {
			const bn_field_stats *s = &norms[k]->stats[f];
			const uint64_t *src = (const uint64_t *)s;
			uint64_t *dst = (uint64_t *)&sum;
			for (size_t w = 0; w < sizeof(sum) / sizeof(uint64_t); w++)
				dst[w] += src[w];
		}
		bad |= bn_jsonw_key(&b, rules->fields[f].name, &f1) | put_field(&b, &rules->fields[f], &sum);
		ff = 0;
	}
	bad |= bn_jsonw_raw(&b, "}");
	bad |= bn_jsonw_key(&b, "serving_invalid_keys", &first) | put_invalid_keys(&b, rules, norms, nnorms);
	bad |= bn_jsonw_raw(&b, "}\n");
	if (bad) {
		bn_buf_free(&b);
		return bn_error_set(err, BN_ENOMEM, "out of memory writing stats");
	}
	rc = bn_outfile_open(out, path, err);
	out->limit = run->limit;
	if (rc == BN_OK)
		rc = bn_outfile_write(out, b.data, b.size, err);
	if (rc == BN_OK)
		rc = bn_outfile_flush(out, err);
	if (rc < 0)
		bn_outfile_abort(out);
	bn_buf_free(&b);
	return rc;
}
