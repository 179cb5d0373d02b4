/* ingest.c - the batch step: sources -> normalizer -> Avro blocks, rejects and stats, published atomically. */
#include "bidnorm/bidnorm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "normalize/record.h"
#include "sink/output.h"
#include "sink/rejects.h"
#include "sink/stats.h"
#include "util/jsonw.h"

const char *bn_version(void)
{
	return BN_VERSION_STRING;
}

void bn_ingest_options_init(bn_ingest_options *opt)
{
	memset(opt, 0, sizeof(*opt));
	opt->codec = BN_CODEC_ZSTANDARD;
	opt->max_reject_rate = 0.01;
	opt->threads = 1;
}

static double now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Everything one run owns; freed in one place. */
typedef struct run {
	const bn_ingest_options *opt;
	bn_normalizer *norm;
	bn_avro_compressor *comp;
	bn_avro_writer *writer;
	bn_outfile avro;
	bn_rejects rejects;
	bn_buf block;
	uint64_t block_count;
	size_t block_bytes;
	bn_run_stats stats;
	double started, last_progress;
	char error_text[1024];
} run;

static int flush_block(run *r, bn_error *err)
{
	const void *data;
	size_t size;
	int rc;

	if (!r->block_count)
		return BN_OK;
	rc = bn_avro_compress(r->comp, r->block.data, r->block.size, &data, &size, err);
	if (rc == BN_OK)
		rc = bn_avro_writer_write_block(r->writer, r->block_count, data, size, err);
	bn_buf_reset(&r->block);
	r->block_count = 0;
	return rc;
}

/* The header's bidnorm.sources: a JSON array of the input names. */
static int sources_json(const bn_ingest_options *opt, bn_buf *b)
{
	int bad = bn_jsonw_raw(b, "[");
	for (size_t i = 0; i < opt->ninputs; i++) {
		if (i)
			bad |= bn_jsonw_raw(b, ",");
		bad |= bn_jsonw_cstr(b, strcmp(opt->inputs[i], "-") == 0 ? "<stdin>" : opt->inputs[i]);
	}
	if (!opt->ninputs)
		bad |= bn_jsonw_cstr(b, "<stdin>");
	bad |= bn_jsonw_raw(b, "]");
	bad |= bn_buf_putc(b, '\0');
	return bad ? BN_ENOMEM : BN_OK;
}

static int open_outputs(run *r, bn_error *err)
{
	const bn_ingest_options *opt = r->opt;
	bn_buf sources = { 0 };
	int rc = sources_json(opt, &sources);
	if (rc < 0) {
		bn_error_set(err, BN_ENOMEM, "out of memory");
		goto cleanup;
	}
	bn_avro_meta meta[] = {
		{ "bidnorm.version", bn_version() },
		{ "bidnorm.rules.sha256", bn_rules_sha256(opt->rules) },
		{ "bidnorm.rules.source", bn_rules_source_name(opt->rules) },
		{ "bidnorm.sources", sources.data },
	};
	rc = bn_outfile_open(&r->avro, opt->output, err);
	if (rc < 0)
		goto cleanup;
	rc = bn_rejects_open(&r->rejects, opt->rejects_path, err);
	if (rc < 0)
		goto cleanup;
	rc = bn_avro_compressor_new(&r->comp, opt->codec, opt->codec_level, err);
	if (rc < 0)
		goto cleanup;
	rc = bn_avro_writer_new(&r->writer, r->avro.fd, opt->output, bn_rules_schema_json(opt->rules), opt->codec,
				meta, sizeof(meta) / sizeof(meta[0]), err);
cleanup:
	bn_buf_free(&sources);
	return rc;
}

static void report_progress(run *r, const bn_input_stats *in)
{
	double t = now_seconds();
	if (!r->opt->progress || t - r->last_progress < 1.0)
		return;
	r->last_progress = t;
	bn_ingest_progress p = {
		.records_read = r->stats.read + in->read,
		.records_written = r->stats.written + in->written,
		.records_rejected = r->stats.rejected + in->rejected,
		.bytes_decoded = in->src.bytes_decoded,
		.elapsed_seconds = t - r->started,
	};
	r->opt->progress(r->opt->progress_ctx, &p);
}

static int reject_line(run *r, bn_input_stats *in, const bn_line *line, bn_error *why, bn_error *err)
{
	int reason = why->reason > 0 && why->reason < BN_REJECT_REASON_COUNT ? why->reason : BN_REJECT_INVALID_VALUE;
	why->reason = reason;
	bn_error_locate(why, in->name, line->number, why->column);
	in->rejected++;
	in->by_reason[reason]++;
	if (r->opt->on_reject)
		r->opt->on_reject(r->opt->on_reject_ctx, why);
	return bn_rejects_write(&r->rejects, in->name, line, why, err);
}

/* Read one input to its end; every line is written or rejected. */
static int ingest_input(run *r, const char *path, bn_input_stats *in, bn_error *err)
{
	bn_source *src = NULL;
	bn_source_options so = { .max_line_bytes = bn_rules_max_line_bytes(r->opt->rules) };
	bn_line line;
	bn_error why;
	int rc;

	in->name = strcmp(path, "-") == 0 ? "<stdin>" : path;
	rc = bn_source_open_file(&src, path, &so, err);
	if (rc < 0)
		return rc;
	while ((rc = bn_source_next(src, &line, err)) > 0) {
		in->read++;
		bn_error_clear(&why);
		if (line.too_long) {
			why.reason = BN_REJECT_LINE_TOO_LONG;
			bn_error_set(&why, BN_EREJECT, "line of %llu bytes exceeds limits.max_line_bytes (%zu)",
				     (unsigned long long)line.raw_size, so.max_line_bytes);
			rc = reject_line(r, in, &line, &why, err);
		} else {
			rc = bn_normalize_line(r->norm, line.data, line.size, &why);
			if (rc == BN_OK) {
				size_t before = r->block.size;
				rc = bn_record_encode(r->norm, &r->block);
				if (rc < 0) {
					r->block.size = before;
					bn_error_set(err, BN_ENOMEM, "out of memory encoding a record");
				} else {
					r->block_count++;
					in->written++;
					if (r->block.size >= r->block_bytes)
						rc = flush_block(r, err);
				}
			} else if (rc == BN_EREJECT) {
				rc = reject_line(r, in, &line, &why, err);
			} else {
				*err = why;
			}
		}
		if (rc < 0)
			break;
		if ((in->read & 4095) == 0) {
			bn_source_get_stats(src, &in->src);
			report_progress(r, in);
		}
	}
	bn_source_get_stats(src, &in->src);
	in->done = rc == 0;
	if (rc < 0 && err && !err->source[0])
		bn_error_locate(err, in->name, err->line, err->column);
	bn_source_free(src);
	return rc < 0 ? rc : BN_OK;
}

static void add_input(bn_run_stats *s, const bn_input_stats *in)
{
	s->read += in->read;
	s->written += in->written;
	s->rejected += in->rejected;
	for (int k = 0; k < BN_REJECT_REASON_COUNT; k++)
		s->by_reason[k] += in->by_reason[k];
}

int bn_ingest_run(const bn_ingest_options *opt, bn_ingest_summary *summary, bn_error *err)
{
	static const char *const stdin_only[] = { "-" };
	run r;
	int rc, prc;
	const char *const *inputs;
	size_t ninputs;

	memset(&r, 0, sizeof(r));
	r.avro.fd = -1;
	r.rejects.out.fd = -1;
	if (summary)
		memset(summary, 0, sizeof(*summary));
	if (!opt || !opt->rules || !opt->output)
		return bn_error_set(err, BN_EUSAGE, "rules and output are required");
	if (opt->threads > 1024)
		return bn_error_set(err, BN_EUSAGE, "--threads must be between 1 and 1024");
	r.opt = opt;
	r.started = r.last_progress = now_seconds();
	r.block_bytes = opt->block_bytes ? opt->block_bytes : 1024 * 1024;
	inputs = opt->ninputs ? opt->inputs : stdin_only;
	ninputs = opt->ninputs ? opt->ninputs : 1;
	r.stats.rules = opt->rules;
	r.stats.output = opt->output;
	r.stats.rejects = opt->rejects_path;
	r.stats.codec = opt->codec;
	r.stats.max_reject_rate = opt->max_reject_rate;
	r.stats.inputs = calloc(ninputs, sizeof(*r.stats.inputs));
	if (!r.stats.inputs)
		return bn_error_set(err, BN_ENOMEM, "out of memory");
	r.stats.ninputs = 0;

	rc = bn_normalizer_new(&r.norm, opt->rules, err);
	if (rc == BN_OK)
		rc = open_outputs(&r, err);
	for (size_t i = 0; rc == BN_OK && i < ninputs; i++) {
		bn_input_stats *in = &r.stats.inputs[r.stats.ninputs++];
		rc = ingest_input(&r, inputs[i], in, err);
		add_input(&r.stats, in);
	}
	if (rc == BN_OK)
		rc = flush_block(&r, err);
	if (rc == BN_OK && opt->max_reject_rate >= 0 && r.stats.read &&
	    (double)r.stats.rejected / (double)r.stats.read > opt->max_reject_rate) {
		bn_error_clear(err);
		rc = bn_error_set(err, BN_EREJECTRATE,
				  "rejected %llu of %llu records (%.2f%%), above the limit of %.2f%% (--max-reject-rate %g); "
				  "no output published",
				  (unsigned long long)r.stats.rejected, (unsigned long long)r.stats.read,
				  100.0 * (double)r.stats.rejected / (double)r.stats.read, 100.0 * opt->max_reject_rate,
				  opt->max_reject_rate);
	}
	if (rc == BN_OK)
		rc = bn_avro_writer_finish(r.writer, err);
	r.stats.bytes_written = r.writer ? bn_avro_writer_bytes(r.writer) : 0;
	bn_avro_writer_free(r.writer);
	r.writer = NULL;
	if (rc == BN_OK)
		rc = bn_outfile_commit(&r.avro, err);
	else
		bn_outfile_abort(&r.avro);

	/* Rejects and stats are published even when the step fails: they say why. */
	/* Milliseconds are enough for a stats file, and keep it readable. */
	r.stats.elapsed = (double)(long long)((now_seconds() - r.started) * 1000.0 + 0.5) / 1000.0;
	r.stats.status = rc == BN_OK ? "ok" : "failed";
	r.stats.exit_status = rc;
	if (rc < 0) {
		bn_error_format(err, r.error_text, sizeof(r.error_text));
		r.stats.error = r.error_text;
	}
	if (r.rejects.open) {
		bn_error e2;
		prc = bn_rejects_commit(&r.rejects, &e2);
		if (prc < 0 && rc == BN_OK) {
			rc = prc;
			if (err)
				*err = e2;
		}
	}
	if (opt->stats_path && r.norm) {
		bn_error e2;
		prc = bn_stats_write(opt->stats_path, &r.stats, &r.norm, 1, &e2);
		if (prc < 0 && rc == BN_OK) {
			rc = prc;
			if (err)
				*err = e2;
		}
	}
	if (summary) {
		summary->records_read = r.stats.read;
		summary->records_written = r.stats.written;
		summary->records_rejected = r.stats.rejected;
		for (size_t i = 0; i < r.stats.ninputs; i++) {
			summary->blank_lines += r.stats.inputs[i].src.blank_lines;
			summary->repaired_bytes += r.stats.inputs[i].src.repaired_bytes;
			summary->bytes_read += r.stats.inputs[i].src.bytes_read;
			summary->bytes_decoded += r.stats.inputs[i].src.bytes_decoded;
		}
		summary->bytes_written = r.stats.bytes_written;
		summary->elapsed_seconds = r.stats.elapsed;
	}
	bn_rejects_abort(&r.rejects);
	bn_avro_compressor_free(r.comp);
	bn_normalizer_free(r.norm);
	bn_buf_free(&r.block);
	free(r.stats.inputs);
	return rc;
}
