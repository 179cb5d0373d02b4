/* bidnorm/ingest.h - the batch step: raw logs in, one Avro container, a reject file and a stats file out. */
#ifndef BIDNORM_INGEST_H
#define BIDNORM_INGEST_H

#include <stddef.h>
#include <stdint.h>

#include "bidnorm/avro.h"
#include "bidnorm/error.h"
#include "bidnorm/rules.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Progress, reported about once a second when options.progress is set. */
typedef struct bn_ingest_progress {
	uint64_t records_read;
	uint64_t records_written;
	uint64_t records_rejected;
	uint64_t bytes_decoded;    /* uncompressed input bytes so far */
	double elapsed_seconds;
} bn_ingest_progress;

typedef struct bn_ingest_options {
	const bn_rules *rules;         /* required; not owned */
	const char *const *inputs;     /* paths; "-" = stdin; ninputs 0 = stdin */
	size_t ninputs;
	const char *output;            /* Avro path, or "-" for stdout (required) */
	const char *rejects_path;      /* reject file (JSON Lines), NULL = none */
	const char *stats_path;        /* stats file (JSON), NULL = none */
	bn_codec codec;                /* block codec (bn_ingest_options_init: zstandard) */
	int codec_level;               /* 0 = codec default */
	double max_reject_rate;        /* fail when rejected/read exceeds this; < 0 = never */
	unsigned threads;              /* 0 or 1 = single-threaded */
	size_t block_bytes;            /* target uncompressed Avro block size; 0 = 1 MiB */
	void (*progress)(void *ctx, const bn_ingest_progress *p);
	void *progress_ctx;
	/* Called for each rejected record (after it is written to the reject
	 * file), e.g. to print the first few; NULL = not called. */
	void (*on_reject)(void *ctx, const bn_error *why);
	void *on_reject_ctx;
	/* Polled between batches (possibly from another thread than the
	 * caller's); when it returns nonzero the run stops and fails with
	 * BN_EIO "cancelled" (the Avro output is not published, as for any
	 * failure). NULL = never cancelled. */
	int (*cancel)(void *ctx);
	void *cancel_ctx;
	/* The names the stats file gives the output and the reject file, for
	 * a caller that writes them elsewhere and moves them into place
	 * (bidnorm watch); NULL = output / rejects_path. */
	const char *output_name;
	const char *rejects_name;
	/* The name of the one input (e.g. the object URL a cluster job
	 * fetched it from) used instead of its path or "<stdin>" in the Avro
	 * header's bidnorm.sources, the reject file, the stats file and error
	 * messages; NULL = the path. With more than one input: BN_EUSAGE. */
	const char *source_name;
} bn_ingest_options;

/* Fill *opt with the defaults (zstandard, max_reject_rate 0.01, 1 thread). */
void bn_ingest_options_init(bn_ingest_options *opt);

typedef struct bn_ingest_summary {
	uint64_t records_read;       /* = written + rejected */
	uint64_t records_written;
	uint64_t records_rejected;
	uint64_t blank_lines;
	uint64_t repaired_bytes;
	uint64_t bytes_read;         /* input file bytes */
	uint64_t bytes_decoded;      /* after decompression */
	uint64_t bytes_written;      /* Avro output bytes */
	double elapsed_seconds;
} bn_ingest_summary;

/*
 * Run the whole step. Every input record ends either in the Avro output or
 * in the reject file. The output (and reject and stats files) are written
 * to temporary names in their folders and renamed into place; on failure
 * the Avro output is not published (rejects and stats still are, to explain
 * the failure). Publication order: rejects, then the Avro, then the stats
 * file - a stats file saying "ok" means the Avro is in place (it is the
 * completion marker). A stats or reject file that cannot be written fails
 * the step before the Avro is published.
 * Returns BN_OK; BN_EREJECTRATE (too many rejects, nothing published);
 * BN_EIO or BN_ECORRUPT (an input could not be read completely, or an output
 * not written: err names the file, and the byte offset for corrupt input);
 * BN_EUSAGE; BN_ENOMEM. *summary (may be NULL) is filled in every case.
 */
int bn_ingest_run(const bn_ingest_options *opt, bn_ingest_summary *summary, bn_error *err);

#ifdef __cplusplus
}
#endif
#endif
