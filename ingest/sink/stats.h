/* stats.h - the stats file of one ingest run: per input, per reject reason, per field, serving-invalid keys. */
#ifndef BN_SINK_STATS_H
#define BN_SINK_STATS_H

#include <stdint.h>

#include "bidnorm/avro.h"
#include "bidnorm/error.h"
#include "bidnorm/source.h"
#include "normalize/record.h"
#include "sink/output.h"

typedef struct bn_input_stats {
	const char *name;
	bn_source_stats src;
	uint64_t read, written, rejected;  /* input records (lines) */
	uint64_t rows;                     /* Avro records they made */
	uint64_t by_reason[BN_REJECT_REASON_COUNT];
	int done;                /* read to the end without error */
} bn_input_stats;

typedef struct bn_run_stats {
	const bn_rules *rules;
	const char *output;
	const char *rejects;
	const char *reject_raw;  /* what reject lines keep of the line ("full", "truncate:N", "none") */
	const bn_outmode *limit; /* the inputs' modes, which the stats file's may not exceed; NULL = none */
	bn_codec codec;
	bn_input_stats *inputs;
	size_t ninputs;
	uint64_t read, written, rejected, bytes_written;
	uint64_t rows;
	uint64_t by_reason[BN_REJECT_REASON_COUNT];
	double max_reject_rate;
	double elapsed;
	const char *status;      /* "ok" or "failed" */
	const char *error;       /* formatted error when failed, else NULL */
	int exit_status;         /* bn_status of the run */
} bn_run_stats;

/* Write the stats JSON atomically to path; field counters are summed over the normalizers. */
int bn_stats_write(const char *path, const bn_run_stats *run, bn_normalizer *const *norms, size_t nnorms,
		   bn_error *err);

/*
 * bn_stats_write without the rename: the JSON is written to a temporary file of *out (opened
 * here) and flushed; the caller publishes it with bn_outfile_commit or drops it with
 * bn_outfile_abort (the handle is closed on failure).
 */
int bn_stats_prepare(bn_outfile *out, const char *path, const bn_run_stats *run, bn_normalizer *const *norms,
		     size_t nnorms, bn_error *err);

#endif
