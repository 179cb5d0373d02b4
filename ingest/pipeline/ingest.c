/* ingest.c - the batch step: sources -> normalizer -> Avro blocks, rejects and stats, published atomically. */
#include "bidnorm/bidnorm.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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

/* One input line copied into a batch. */
typedef struct line_meta {
	size_t off;              /* into batch.text */
	size_t size;
	uint64_t number, offset, raw_size;
	int too_long;
} line_meta;

enum { SLOT_FREE = 0, SLOT_READY, SLOT_WORKING, SLOT_DONE };

/*
 * A batch of lines from one input: filled by the reading thread, turned into
 * one compressed Avro block plus formatted reject lines by a worker, and
 * consumed in input order by the reading thread, which writes it.
 */
typedef struct batch {
	int state;
	size_t input;            /* index into run.stats.inputs */
	bn_buf text;
	line_meta *lines;
	size_t nlines, cap_lines;
	bn_buf block;            /* encoded records, then reused */
	bn_buf packed;           /* the compressed block */
	uint64_t written;        /* records (rows) encoded into the block */
	uint64_t accepted;       /* lines that made them */
	bn_buf reject_lines;     /* formatted reject file lines */
	bn_error *rejects;       /* why each rejected record was rejected, in order */
	size_t nrejects, cap_rejects;
	int status;              /* a fatal error while processing */
	bn_error err;
} batch;

typedef struct worker {
	struct run *run;
	bn_normalizer *norm;
	bn_avro_compressor *comp;
	pthread_t thread;
	int started;
} worker;

/* Everything one run owns; freed in one place. */
typedef struct run {
	const bn_ingest_options *opt;
	worker *workers;
	unsigned nworkers;       /* normalizers (1 when running inline) */
	unsigned nthreads;       /* worker threads (0 = the reading thread does the work) */
	batch *ring;
	size_t nring;
	uint64_t fill_seq, drain_seq;
	pthread_mutex_t lock;
	pthread_cond_t work_cv, done_cv;
	int stopping;
	bn_avro_writer *writer;
	bn_outfile avro;
	bn_rejects rejects;
	size_t batch_bytes;
	bn_run_stats stats;
	bn_outmode mode;         /* what the inputs allow the outputs to be readable by */
	char reject_raw[32];     /* the reject raw policy as text, for the stats file */
	double started, last_progress;
	char error_text[1024];
} run;

/* Normalize, encode and compress one batch. Runs on a worker (or inline). */
static void process_batch(worker *w, batch *b)
{
	run *r = w->run;
	const char *source = r->stats.inputs[b->input].name;
	bn_error why;
	int rc = BN_OK;

	bn_buf_reset(&b->block);
	bn_buf_reset(&b->reject_lines);
	b->written = 0;
	b->accepted = 0;
	b->nrejects = 0;
	b->status = BN_OK;
	for (size_t i = 0; i < b->nlines && rc == BN_OK; i++) {
		const line_meta *m = &b->lines[i];
		const char *data = b->text.data + m->off;
		bn_error_clear(&why);
		if (m->too_long) {
			why.reason = BN_REJECT_LINE_TOO_LONG;
			bn_error_set(&why, BN_EREJECT, "line of %llu bytes exceeds limits.max_line_bytes (%zu)",
				     (unsigned long long)m->raw_size, bn_rules_max_line_bytes(r->opt->rules));
			rc = BN_EREJECT;
		} else {
			/* A line is written whole or rejected whole: one bad row rejects the line and its rows. */
			size_t nrows = 0, before = b->block.size;
			rc = bn_normalize_parse(w->norm, data, m->size, &nrows, &why);
			for (size_t row = 0; row < nrows && rc == BN_OK; row++) {
				rc = bn_normalize_row(w->norm, row, &why);
				if (rc == BN_OK && bn_record_encode(w->norm, &b->block) < 0)
					rc = bn_error_set(&why, BN_ENOMEM, "out of memory encoding a record");
			}
			if (rc == BN_OK) {
				b->accepted++;
				b->written += nrows;
			} else {
				b->block.size = before;
			}
		}
		if (rc == BN_EREJECT) {
			bn_line line = { .data = data, .size = m->size, .number = m->number, .offset = m->offset,
					 .raw_size = m->raw_size, .too_long = m->too_long };
			if (why.reason <= BN_REJECT_NONE || why.reason >= BN_REJECT_REASON_COUNT)
				why.reason = BN_REJECT_INVALID_VALUE;
			bn_error_locate(&why, source, m->number, why.column);
			bn_rejects_redact(&why, r->opt->reject_raw);
			if (b->nrejects == b->cap_rejects) {
				size_t cap = b->cap_rejects ? b->cap_rejects * 2 : 16;
				bn_error *p = realloc(b->rejects, cap * sizeof(*p));
				if (!p) {
					rc = bn_error_set(&why, BN_ENOMEM, "out of memory");
					break;
				}
				b->rejects = p;
				b->cap_rejects = cap;
			}
			b->rejects[b->nrejects++] = why;
			rc = bn_rejects_format(&b->reject_lines, source, &line, &why, r->opt->reject_raw,
					       r->opt->reject_raw_bytes);
			if (rc < 0)
				bn_error_set(&why, BN_ENOMEM, "out of memory");
		}
	}
	if (rc == BN_OK && b->written) {
		const void *data;
		size_t size;
		rc = bn_avro_compress(w->comp, b->block.data, b->block.size, &data, &size, &why);
		if (rc == BN_OK) {
			bn_buf_reset(&b->packed);
			if (bn_buf_append(&b->packed, data, size) < 0)
				rc = bn_error_set(&why, BN_ENOMEM, "out of memory");
		}
	}
	if (rc < 0) {
		b->status = rc;
		b->err = why;
	}
}

static void *worker_main(void *arg)
{
	worker *w = arg;
	run *r = w->run;
	pthread_mutex_lock(&r->lock);
	for (;;) {
		batch *b = NULL;
		/* The oldest ready batch first, so the in-order writer is never starved. */
		for (uint64_t s = r->drain_seq; s < r->fill_seq; s++) {
			batch *c = &r->ring[s % r->nring];
			if (c->state == SLOT_READY) {
				b = c;
				break;
			}
		}
		if (!b) {
			if (r->stopping)
				break;
			pthread_cond_wait(&r->work_cv, &r->lock);
			continue;
		}
		b->state = SLOT_WORKING;
		pthread_mutex_unlock(&r->lock);
		process_batch(w, b);
		pthread_mutex_lock(&r->lock);
		b->state = SLOT_DONE;
		pthread_cond_broadcast(&r->done_cv);
	}
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

/* What an input is called in the header, rejects, stats and messages. */
static const char *input_name(const bn_ingest_options *opt, const char *path)
{
	if (opt->source_name)
		return opt->source_name;
	return strcmp(path, "-") == 0 ? "<stdin>" : path;
}

/* The header's bidnorm.sources: a JSON array of the input names. */
static int sources_json(const bn_ingest_options *opt, bn_buf *b)
{
	int bad = bn_jsonw_raw(b, "[");
	for (size_t i = 0; i < opt->ninputs; i++) {
		if (i)
			bad |= bn_jsonw_raw(b, ",");
		bad |= bn_jsonw_cstr(b, input_name(opt, opt->inputs[i]));
	}
	if (!opt->ninputs)
		bad |= bn_jsonw_cstr(b, input_name(opt, "-"));
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
		{ "bidnorm.text_repair", bn_text_repair_version() },
		{ "bidnorm.sources", sources.data },
	};
	rc = bn_outfile_open(&r->avro, opt->output, err);
	if (rc < 0)
		goto cleanup;
	r->avro.limit = &r->mode;
	rc = bn_rejects_open(&r->rejects, opt->rejects_path, err);
	if (rc < 0)
		goto cleanup;
	r->rejects.out.limit = &r->mode;
	rc = bn_avro_writer_new(&r->writer, r->avro.fd, opt->output, bn_rules_schema_json(opt->rules), opt->codec,
				meta, sizeof(meta) / sizeof(meta[0]), err);
cleanup:
	bn_buf_free(&sources);
	return rc;
}

static int start_workers(run *r, bn_error *err)
{
	const bn_ingest_options *opt = r->opt;
	unsigned threads = opt->threads ? opt->threads : 1;
	int rc;

	r->nthreads = threads > 1 ? threads : 0;
	r->nworkers = threads;
	/* Enough batches in flight to keep every worker busy while the writer waits for the oldest. */
	r->nring = (size_t)threads * 2 + 1;
	r->workers = calloc(r->nworkers, sizeof(*r->workers));
	r->ring = calloc(r->nring, sizeof(*r->ring));
	if (!r->workers || !r->ring)
		return bn_error_set(err, BN_ENOMEM, "out of memory");
	for (unsigned i = 0; i < r->nworkers; i++) {
		worker *w = &r->workers[i];
		w->run = r;
		rc = bn_normalizer_new(&w->norm, opt->rules, err);
		if (rc == BN_OK)
			rc = bn_avro_compressor_new(&w->comp, opt->codec, opt->codec_level, err);
		if (rc < 0)
			return rc;
	}
	for (unsigned i = 0; i < r->nthreads; i++) {
		int e = pthread_create(&r->workers[i].thread, NULL, worker_main, &r->workers[i]);
		if (e != 0)
			return bn_error_set(err, BN_ENOMEM, "cannot start worker thread %u of %u: %s", i + 1, r->nthreads,
					    strerror(e));
		r->workers[i].started = 1;
	}
	return BN_OK;
}

static void stop_workers(run *r)
{
	if (r->nthreads) {
		pthread_mutex_lock(&r->lock);
		r->stopping = 1;
		pthread_cond_broadcast(&r->work_cv);
		pthread_mutex_unlock(&r->lock);
	}
	for (unsigned i = 0; i < r->nworkers && r->workers; i++)
		if (r->workers[i].started)
			pthread_join(r->workers[i].thread, NULL);
}

static void report_progress(run *r)
{
	double t = now_seconds();
	if (!r->opt->progress || t - r->last_progress < 1.0)
		return;
	r->last_progress = t;
	bn_ingest_progress p = {
		.records_read = r->stats.read,
		.records_written = r->stats.written,
		.records_rejected = r->stats.rejected,
		.elapsed_seconds = t - r->started,
	};
	for (size_t i = 0; i < r->stats.ninputs; i++)
		p.bytes_decoded += r->stats.inputs[i].src.bytes_decoded;
	r->opt->progress(r->opt->progress_ctx, &p);
}

/* Write the oldest batch: its block, its reject lines, its counts. Waits for it when wait is set. */
static int drain_one(run *r, int wait, bn_error *err)
{
	batch *b;
	int rc = BN_OK;

	if (r->drain_seq == r->fill_seq)
		return 0;
	b = &r->ring[r->drain_seq % r->nring];
	if (r->nthreads) {
		pthread_mutex_lock(&r->lock);
		while (wait && b->state != SLOT_DONE)
			pthread_cond_wait(&r->done_cv, &r->lock);
		int done = b->state == SLOT_DONE;
		pthread_mutex_unlock(&r->lock);
		if (!done)
			return 0;
	}
	bn_input_stats *in = &r->stats.inputs[b->input];
	if (b->status < 0) {
		if (err)
			*err = b->err;
		rc = b->status;
	}
	if (rc == BN_OK && b->written)
		rc = bn_avro_writer_write_block(r->writer, b->written, b->packed.data, b->packed.size, err);
	if (rc == BN_OK)
		rc = bn_rejects_write_formatted(&r->rejects, b->reject_lines.data, b->reject_lines.size, err);
	if (rc == BN_OK) {
		in->read += b->nlines;
		in->written += b->accepted;
		in->rows += b->written;
		in->rejected += b->nrejects;
		r->stats.read += b->nlines;
		r->stats.written += b->accepted;
		r->stats.rows += b->written;
		r->stats.rejected += b->nrejects;
		for (size_t i = 0; i < b->nrejects; i++) {
			in->by_reason[b->rejects[i].reason]++;
			r->stats.by_reason[b->rejects[i].reason]++;
			if (r->opt->on_reject)
				r->opt->on_reject(r->opt->on_reject_ctx, &b->rejects[i]);
		}
	}
	b->state = SLOT_FREE;
	r->drain_seq++;
	report_progress(r);
	return rc < 0 ? rc : 1;
}

/* Hand a filled batch to the workers, or process it right here when running inline. */
static void submit(run *r, batch *b)
{
	r->fill_seq++;
	if (!r->nthreads) {
		process_batch(&r->workers[0], b);
		b->state = SLOT_DONE;
		return;
	}
	pthread_mutex_lock(&r->lock);
	b->state = SLOT_READY;
	pthread_cond_signal(&r->work_cv);
	pthread_mutex_unlock(&r->lock);
}

static int add_line(batch *b, const bn_line *line)
{
	if (b->nlines == b->cap_lines) {
		size_t cap = b->cap_lines ? b->cap_lines * 2 : 1024;
		line_meta *p = realloc(b->lines, cap * sizeof(*p));
		if (!p)
			return BN_ENOMEM;
		b->lines = p;
		b->cap_lines = cap;
	}
	line_meta *m = &b->lines[b->nlines];
	m->off = b->text.size;
	m->size = line->size;
	m->number = line->number;
	m->offset = line->offset;
	m->raw_size = line->raw_size;
	m->too_long = line->too_long;
	if (bn_buf_append(&b->text, line->data, line->size) < 0)
		return BN_ENOMEM;
	b->nlines++;
	return BN_OK;
}

/* An error about the input names it as everything else does (the source reader knows only its path). */
static void name_input_error(const run *r, const char *path, const char *name, bn_error *err)
{
	if (err && (!err->source[0] || (r->opt->source_name && (strcmp(err->source, path) == 0 ||
								 strcmp(err->source, "<stdin>") == 0))))
		bn_error_locate(err, name, err->line, err->column);
}

/*
 * Open input i: the caller's descriptor, or the file (opened here, so the
 * mode that limits the outputs is the one of the file that is read). *own_fd
 * is the descriptor to close after the source, or -1.
 */
static int open_input(run *r, bn_source **src, const bn_source_options *so, size_t i, const char *path,
		      int *own_fd, bn_error *err)
{
	struct stat st;
	int fd = r->opt->input_fds ? r->opt->input_fds[i] : -1;

	*own_fd = -1;
	if (fd < 0 && strcmp(path, "-") != 0) {
		fd = open(path, O_RDONLY | O_CLOEXEC);
		*own_fd = fd;
	}
	/* Standard input (its mode restricts nothing), or a file that cannot be opened: the source says why. */
	if (fd < 0)
		return bn_source_open_file(src, path, so, err);
	if (fstat(fd, &st) == 0)
		bn_outmode_add(&r->mode, &st);
	if (strcmp(path, "-") == 0)
		return bn_source_open_fd(src, fd, r->stats.inputs[i].name, so, err);
	return bn_source_open_file_fd(src, fd, r->stats.inputs[i].name, path, so, err);
}

/* Read one input to its end in batches; every line is written or rejected. */
static int ingest_input(run *r, const char *path, size_t input, bn_error *err)
{
	bn_input_stats *in = &r->stats.inputs[input];
	bn_source *src = NULL;
	bn_source_options so = { .max_line_bytes = bn_rules_max_line_bytes(r->opt->rules) };
	bn_line line;
	int rc, more = 1, own_fd;

	in->name = input_name(r->opt, path);
	rc = open_input(r, &src, &so, input, path, &own_fd, err);
	if (rc < 0) {
		name_input_error(r, path, in->name, err);
		if (own_fd >= 0)
			close(own_fd);
		return rc;
	}
	while (more) {
		batch *b = &r->ring[r->fill_seq % r->nring];
		if (r->opt->cancel && r->opt->cancel(r->opt->cancel_ctx)) {
			rc = bn_error_set(err, BN_EIO, "cancelled");
			goto done;
		}
		/* The slot is free once the batch that used it has been written. */
		while (r->fill_seq - r->drain_seq >= r->nring) {
			rc = drain_one(r, 1, err);
			if (rc < 0)
				goto done;
		}
		b->input = input;
		b->nlines = 0;
		bn_buf_reset(&b->text);
		while (b->text.size < r->batch_bytes && b->nlines < 65536) {
			rc = bn_source_next(src, &line, err);
			if (rc <= 0) {
				more = 0;
				break;
			}
			if (add_line(b, &line) < 0) {
				rc = bn_error_set(err, BN_ENOMEM, "out of memory");
				more = 0;
				break;
			}
		}
		/* Lines read before a read error are still processed and counted. */
		if (b->nlines)
			submit(r, b);
		while (more && (rc = drain_one(r, 0, err)) > 0)
			;
		if (rc < 0)
			more = 0;
		bn_source_get_stats(src, &in->src);
	}
done:
	bn_source_get_stats(src, &in->src);
	in->done = rc == 0;
	if (rc < 0)
		name_input_error(r, path, in->name, err);
	bn_source_free(src);
	if (own_fd >= 0)
		close(own_fd);
	return rc < 0 ? rc : BN_OK;
}

/* Write every batch still in flight; the first error wins. */
static int drain_all(run *r, int rc, bn_error *err)
{
	bn_error e2;
	while (r->drain_seq < r->fill_seq) {
		int d = drain_one(r, 1, rc < 0 ? &e2 : err);
		if (d < 0 && rc == BN_OK)
			rc = d;
	}
	return rc;
}

/* The outcome the stats file reports. */
static void set_status(run *r, int rc, const bn_error *err)
{
	/* Milliseconds are enough for a stats file, and keep it readable. */
	r->stats.elapsed = (double)(long long)((now_seconds() - r->started) * 1000.0 + 0.5) / 1000.0;
	r->stats.status = rc == BN_OK ? "ok" : "failed";
	r->stats.exit_status = rc;
	r->stats.error = NULL;
	if (rc < 0) {
		bn_error_format(err, r->error_text, sizeof(r->error_text));
		r->stats.error = r->error_text;
	}
}

int bn_ingest_run(const bn_ingest_options *opt, bn_ingest_summary *summary, bn_error *err)
{
	static const char *const stdin_only[] = { "-" };
	run r;
	int rc, prc;
	const char *const *inputs;
	size_t ninputs;
	bn_normalizer **norms = NULL;
	size_t nnorms = 0;
	int output_published = 0, rejects_published = 0, stats_published = 0;

	memset(&r, 0, sizeof(r));
	r.avro.fd = -1;
	r.rejects.out.fd = -1;
	bn_error_clear(err);
	if (summary)
		memset(summary, 0, sizeof(*summary));
	if (!opt || !opt->rules || !opt->output)
		return bn_error_set(err, BN_EUSAGE, "rules and output are required");
	if (opt->threads > 256)
		return bn_error_set(err, BN_EUSAGE, "threads must be between 1 and 256");
	if (opt->source_name && opt->ninputs > 1)
		return bn_error_set(err, BN_EUSAGE, "a source name names one input; %zu given", opt->ninputs);
	if (opt->reject_raw < BN_REJECT_RAW_FULL || opt->reject_raw > BN_REJECT_RAW_NONE)
		return bn_error_set(err, BN_EUSAGE, "reject_raw must be a bn_reject_raw");
	/* Every option is checked before anything is read or written: a usage error leaves no file behind. */
	rc = bn_codec_check_level(opt->codec, opt->codec_level, err);
	if (rc < 0)
		return rc;
	r.opt = opt;
	r.started = r.last_progress = now_seconds();
	/* JSON is about twice the size of its Avro encoding: this gives blocks of about block_bytes. */
	r.batch_bytes = 2 * (opt->block_bytes ? opt->block_bytes : 1024 * 1024);
	inputs = opt->ninputs ? opt->inputs : stdin_only;
	ninputs = opt->ninputs ? opt->ninputs : 1;
	r.stats.rules = opt->rules;
	r.stats.output = opt->output_name ? opt->output_name : opt->output;
	r.stats.rejects = opt->rejects_name ? opt->rejects_name : opt->rejects_path;
	r.stats.codec = opt->codec;
	r.stats.max_reject_rate = opt->max_reject_rate;
	bn_outmode_init(&r.mode);
	r.stats.limit = &r.mode;
	bn_reject_raw_format(r.reject_raw, sizeof(r.reject_raw), opt->reject_raw, opt->reject_raw_bytes);
	r.stats.reject_raw = r.reject_raw;
	r.stats.inputs = calloc(ninputs, sizeof(*r.stats.inputs));
	if (!r.stats.inputs)
		return bn_error_set(err, BN_ENOMEM, "out of memory");
	pthread_mutex_init(&r.lock, NULL);
	pthread_cond_init(&r.work_cv, NULL);
	pthread_cond_init(&r.done_cv, NULL);

	rc = start_workers(&r, err);
	if (rc == BN_OK)
		rc = open_outputs(&r, err);
	for (size_t i = 0; rc == BN_OK && i < ninputs; i++) {
		r.stats.ninputs++;
		rc = ingest_input(&r, inputs[i], i, err);
	}
	rc = drain_all(&r, rc, err);
	stop_workers(&r);
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

	/*
	 * Rejects and stats are published even when the step fails: they say why.
	 * Rejects and stats are written first, so that a step that cannot write
	 * them fails without having published its output; the stats file is
	 * renamed into place last, so that one saying "ok" means the Avro is there.
	 */
	if (r.rejects.open) {
		bn_error e2;
		bn_error_clear(&e2);
		prc = bn_rejects_commit(&r.rejects, &e2);
		rejects_published = prc == BN_OK;
		if (prc < 0 && rc == BN_OK) {
			rc = prc;
			if (err)
				*err = e2;
		}
	}
	norms = r.workers ? calloc(r.nworkers, sizeof(*norms)) : NULL;
	for (unsigned i = 0; norms && i < r.nworkers; i++)
		if (r.workers[i].norm)
			norms[nnorms++] = r.workers[i].norm;
	if (opt->stats_path && r.workers && !norms && rc == BN_OK)
		rc = bn_error_set(err, BN_ENOMEM, "out of memory");
	set_status(&r, rc, err);
	bn_outfile stats_out = { .fd = -1 };
	int stats_ready = 0;
	if (opt->stats_path && norms) {
		bn_error e2;
		bn_error_clear(&e2);
		prc = bn_stats_prepare(&stats_out, opt->stats_path, &r.stats, norms, nnorms, &e2);
		stats_ready = prc == BN_OK;
		if (prc < 0 && rc == BN_OK) {
			rc = prc;
			if (err)
				*err = e2;
			set_status(&r, rc, err);
		}
	}
	if (rc == BN_OK) {
		rc = bn_outfile_commit(&r.avro, err);
		output_published = rc == BN_OK;
		if (rc < 0 && stats_ready) {
			/* the prepared stats file says "ok": replace it */
			bn_outfile_abort(&stats_out);
			stats_ready = 0;
			set_status(&r, rc, err);
			stats_published = bn_stats_write(opt->stats_path, &r.stats, norms, nnorms, NULL) == BN_OK;
		}
	} else {
		bn_outfile_abort(&r.avro);
	}
	if (stats_ready) {
		bn_error e2;
		bn_error_clear(&e2);
		prc = bn_outfile_commit(&stats_out, &e2);
		stats_published = prc == BN_OK;
		if (prc < 0 && rc == BN_OK) {
			/* a failed step publishes no Avro: take back the one just renamed into place */
			if (strcmp(opt->output, "-") != 0 && unlink(opt->output) == 0)
				output_published = 0;
			rc = prc;
			if (err)
				*err = e2;
		}
	}
	if (summary) {
		summary->records_read = r.stats.read;
		summary->records_written = r.stats.written;
		summary->rows_written = r.stats.rows;
		summary->records_rejected = r.stats.rejected;
		for (size_t i = 0; i < r.stats.ninputs; i++) {
			summary->blank_lines += r.stats.inputs[i].src.blank_lines;
			summary->repaired_bytes += r.stats.inputs[i].src.repaired_bytes;
			summary->bytes_read += r.stats.inputs[i].src.bytes_read;
			summary->bytes_decoded += r.stats.inputs[i].src.bytes_decoded;
		}
		summary->bytes_written = r.stats.bytes_written;
		summary->elapsed_seconds = r.stats.elapsed;
		summary->output_published = output_published;
		summary->rejects_published = rejects_published;
		summary->stats_published = stats_published;
	}
	free(norms);
	bn_rejects_abort(&r.rejects);
	for (unsigned i = 0; r.workers && i < r.nworkers; i++) {
		bn_normalizer_free(r.workers[i].norm);
		bn_avro_compressor_free(r.workers[i].comp);
	}
	for (size_t i = 0; r.ring && i < r.nring; i++) {
		batch *b = &r.ring[i];
		bn_buf_free(&b->text);
		bn_buf_free(&b->block);
		bn_buf_free(&b->packed);
		bn_buf_free(&b->reject_lines);
		free(b->lines);
		free(b->rejects);
	}
	free(r.ring);
	free(r.workers);
	pthread_cond_destroy(&r.work_cv);
	pthread_cond_destroy(&r.done_cv);
	pthread_mutex_destroy(&r.lock);
	free(r.stats.inputs);
	return rc;
}
