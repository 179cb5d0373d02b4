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

/*
 * What a reject line keeps of the rejected line (the reject file's "raw"),
 * for deployments where the reject files are read more widely than the
 * inputs: everything (the default), its first bytes, or nothing. When less
 * than the whole line is kept, the values a message quotes (up to 64 bytes
 * of the offending field, between double quotes) are replaced by "...", so
 * the message (in the reject file and given to on_reject) holds no more of
 * the line than "raw" does.
 */
typedef enum bn_reject_raw {
	BN_REJECT_RAW_FULL = 0,      /* "raw": the whole line (over-long lines: their first 1 KiB) */
	BN_REJECT_RAW_TRUNCATE = 1,  /* "raw": at most reject_raw_bytes, cut at a UTF-8 character boundary */
	BN_REJECT_RAW_NONE = 2       /* "raw": null */
} bn_reject_raw;

/*
 * Parse "full", "none" or "truncate:BYTES" (BYTES from 0 to 1048576) into
 * *mode and *bytes. Returns BN_OK or BN_EUSAGE ("must be full, none or
 * truncate:BYTES (0 to 1048576), not 'x'").
 */
int bn_reject_raw_parse(int *mode, size_t *bytes, const char *text, bn_error *err);

/* The text form bn_reject_raw_parse reads ("truncate:200"), as the stats file and error.json give it. */
size_t bn_reject_raw_format(char *out, size_t size, int mode, size_t bytes);

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
	/* What reject lines keep of the line: a bn_reject_raw, and the byte
	 * count for BN_REJECT_RAW_TRUNCATE. */
	int reject_raw;
	size_t reject_raw_bytes;
	/* NULL, or one open descriptor per input: input i is read from
	 * input_fds[i] from its current offset (not closed; inputs[i] is then
	 * only its name; a negative one: inputs[i] is opened), so a
	 * caller that checked what it opened reads exactly that (bidnorm
	 * watch). */
	const int *input_fds;
	/* The name of the one input (e.g. the object URL a cluster job
	 * fetched it from) used instead of its path or "<stdin>" in the Avro
	 * header's bidnorm.sources, the reject file, the stats file and error
	 * messages; NULL = the path. With more than one input: BN_EUSAGE. */
	const char *source_name;
} bn_ingest_options;

/* Fill *opt with the defaults (zstandard, max_reject_rate 0.01, 1 thread). */
void bn_ingest_options_init(bn_ingest_options *opt);

typedef struct bn_ingest_summary {
	uint64_t records_read;       /* input records (lines) = written + rejected */
	uint64_t records_written;    /* input records accepted */
	uint64_t records_rejected;
	uint64_t rows_written;       /* Avro records: = records_written unless the rules have 'rows' */
	uint64_t blank_lines;
	uint64_t repaired_bytes;
	uint64_t bytes_read;         /* input file bytes */
	uint64_t bytes_decoded;      /* after decompression */
	uint64_t bytes_written;      /* Avro output bytes */
	double elapsed_seconds;
	/* What was put in place (renamed to its name, or written to a stream): 1 or 0. */
	int output_published;
	int rejects_published;       /* 0 also when there is no reject file */
	int stats_published;         /* 0 also when there is no stats file */
} bn_ingest_summary;

/*
 * Run the whole step. Every input record ends either in the Avro output or
 * in the reject file. The output (and reject and stats files) are written
 * to temporary names in their folders and renamed into place, never more
 * readable than the inputs: mode 0666 less the umask, less every permission
 * bit a regular input file lacks (group bits only count when the output has
 * that input's group; standard input and pipes restrict nothing); on failure
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
