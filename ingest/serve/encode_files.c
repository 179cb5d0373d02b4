/* encode_files.c - bidnorm encode: clean Avro files -> one Avro file of model inputs, through the serving encoder. */
#include <stdio.h>
#include <string.h>

#include "bidnorm/bidnorm.h"
#include "serve/encoder.h"
#include "sink/output.h"
#include "util/jsonw.h"
#include "vocab/avro_reader.h"

/* ---- bidnorm encode: clean Avro files -> one encoded Avro file ---- */

void bn_encode_options_init(bn_encode_options *opt)
{
	memset(opt, 0, sizeof(*opt));
	opt->codec = BN_CODEC_ZSTANDARD;
	opt->block_bytes = 1 << 20;
}

/* State of one bn_encode_files run: everything it must release. */
typedef struct encode_run {
	const bn_encode_options *opt;
	bn_outfile out;
	bn_avro_writer *writer;
	bn_avro_compressor *comp;
	bn_encoder *enc;
	bn_avro_reader *in;
	bn_buf block;
	uint64_t block_records;
	uint64_t records;
} encode_run;

static int flush_block(encode_run *r, bn_error *err)
{
	const void *data;
	size_t size;
	int rc;

	if (!r->block_records)
		return BN_OK;
	rc = bn_avro_compress(r->comp, r->block.data, r->block.size, &data, &size, err);
	if (rc == BN_OK)
		rc = bn_avro_writer_write_block(r->writer, r->block_records, data, size, err);
	bn_buf_reset(&r->block);
	r->block_records = 0;
	return rc;
}

/*
 * The inputs must be ingest outputs of the model's rules (same hash, same schema) and of this
 * bidnorm's text repair, which the model's vocabulary was built with and serving repairs with:
 * strings of another version are fixed points too, so encoding would not notice them.
 */
static int check_input(const bn_avro_reader *in, const bn_rules *rules, const char *path, bn_error *err)
{
	size_t n;
	const char *sha = bn_avro_reader_meta(in, "bidnorm.rules.sha256", &n);

	bn_error_locate(err, path, 0, 0);
	if (!sha)
		return bn_error_set(err, BN_EUSAGE, "not written by bidnorm ingest (no bidnorm.rules.sha256)");
	if (n != strlen(bn_rules_sha256(rules)) || memcmp(sha, bn_rules_sha256(rules), n) != 0)
		return bn_error_set(err, BN_EUSAGE, "written with other rules (rules sha256 %.*s, the model's %s)",
				    (int)(n < 64 ? n : 64), sha, bn_rules_sha256(rules));
	if (strcmp(bn_avro_reader_schema(in), bn_rules_schema_json(rules)) != 0)
		return bn_error_set(err, BN_EUSAGE, "schema is not the rules' schema");
	if (bn_avro_check_text_repair(in, path, "ingest it again with this bidnorm", err) < 0)
		return BN_EUSAGE;
	bn_error_locate(err, NULL, 0, 0);
	return BN_OK;
}

/* Every input's header, before anything is written. */
static int check_inputs(const bn_encode_options *opt, bn_error *err)
{
	bn_avro_reader *in = NULL;
	int rc = BN_OK;
	for (size_t i = 0; rc == BN_OK && i < opt->ninputs; i++) {
		rc = bn_avro_reader_open(&in, opt->inputs[i], err);
		if (rc == BN_OK)
			rc = check_input(in, opt->model->rules, opt->inputs[i], err);
		bn_avro_reader_free(in);
		in = NULL;
	}
	return rc;
}

static int encode_input(encode_run *r, const char *path, bn_error *err)
{
	const char *data;
	size_t size;
	uint64_t count;
	int rc;

	rc = bn_avro_reader_open(&r->in, path, err);
	if (rc == BN_OK) /* again: the file may have been replaced since check_inputs */
		rc = check_input(r->in, r->opt->model->rules, path, err);
	while (rc == BN_OK && (rc = bn_avro_reader_next_block(r->in, &data, &size, &count, err)) > 0) {
		const char *p = data, *end = data + size;
		rc = BN_OK;
		for (uint64_t i = 0; i < count && rc == BN_OK; i++) {
			rc = bn_encoder_encode_avro(r->enc, &p, end, err);
			if (rc < 0) {
				char why[BN_ERROR_MESSAGE_MAX];
				snprintf(why, sizeof(why), "%s", err ? err->message : "");
				bn_error_locate(err, path, 0, 0);
				bn_error_set(err, rc, "block at byte offset %llu, record %llu: %s",
					     (unsigned long long)bn_avro_reader_block_offset(r->in),
					     (unsigned long long)i + 1, why);
				break;
			}
			if (bn_encoder_put_avro(r->enc, &r->block) < 0) {
				rc = bn_error_set(err, BN_ENOMEM, "out of memory");
				break;
			}
			r->block_records++;
			r->records++;
			if (r->block.size >= r->opt->block_bytes)
				rc = flush_block(r, err);
		}
		if (rc == BN_OK && p != end) {
			bn_error_locate(err, path, 0, 0);
			rc = bn_error_set(err, BN_ECORRUPT, "block at byte offset %llu: %zu bytes after the last record",
					  (unsigned long long)bn_avro_reader_block_offset(r->in), (size_t)(end - p));
		}
	}
	bn_avro_reader_free(r->in);
	r->in = NULL;
	return rc;
}

/* The header's bidnorm.sources: a JSON array of the input names. */
static int sources_json(const bn_encode_options *opt, bn_buf *b)
{
	int bad = bn_jsonw_raw(b, "[");
	for (size_t i = 0; i < opt->ninputs; i++) {
		bad |= bn_jsonw_raw(b, i ? "," : "");
		bad |= bn_jsonw_cstr(b, opt->inputs[i]);
	}
	bad |= bn_jsonw_raw(b, "]");
	bad |= bn_buf_putc(b, '\0');
	return bad ? BN_ENOMEM : BN_OK;
}

int bn_encode_files(bn_encode_summary *sum, const bn_encode_options *opt, bn_error *err)
{
	encode_run r;
	bn_buf sources = { 0 };
	int rc, opened = 0;

	memset(&r, 0, sizeof(r));
	r.opt = opt;
	r.out.fd = -1;
	if (sum)
		memset(sum, 0, sizeof(*sum));
	if (!opt || !opt->model || !opt->output)
		return bn_error_set(err, BN_EUSAGE, "bn_encode_files: model and output must be set");
	if (!opt->ninputs)
		return bn_error_set(err, BN_EUSAGE, "no input given");
	rc = sources_json(opt, &sources);
	if (rc < 0) {
		bn_error_set(err, BN_ENOMEM, "out of memory");
		goto cleanup;
	}
	bn_avro_meta meta[] = {
		{ "bidnorm.version", bn_version() },
		{ "bidnorm.rules.sha256", bn_rules_sha256(opt->model->rules) },
		{ "bidnorm.vocab.sha256", bn_model_vocab_sha256(opt->model) },
		{ "bidnorm.text_repair", bn_text_repair_version() },
		{ "bidnorm.sources", sources.data },
	};
	rc = check_inputs(opt, err);
	if (rc == BN_OK)
		rc = bn_encoder_new(&r.enc, opt->model, err);
	if (rc == BN_OK)
		rc = bn_avro_compressor_new(&r.comp, opt->codec, opt->codec_level, err);
	if (rc == BN_OK) {
		rc = bn_outfile_open(&r.out, opt->output, err);
		opened = rc == BN_OK;
	}
	if (rc == BN_OK)
		rc = bn_avro_writer_new(&r.writer, r.out.fd, opt->output, bn_model_schema_json(opt->model), opt->codec,
					meta, sizeof(meta) / sizeof(meta[0]), err);
	for (size_t i = 0; rc == BN_OK && i < opt->ninputs; i++)
		rc = encode_input(&r, opt->inputs[i], err);
	if (rc == BN_OK)
		rc = flush_block(&r, err);
	if (rc == BN_OK)
		rc = bn_avro_writer_finish(r.writer, err);
	if (rc == BN_OK && sum) {
		sum->records = r.records;
		sum->bytes_written = bn_avro_writer_bytes(r.writer);
	}
	if (rc == BN_OK)
		rc = bn_outfile_commit(&r.out, err);
	else if (opened)
		bn_outfile_abort(&r.out);
cleanup:
	bn_avro_writer_free(r.writer);
	bn_avro_compressor_free(r.comp);
	bn_encoder_free(r.enc);
	bn_buf_free(&r.block);
	bn_buf_free(&sources);
	return rc;
}
