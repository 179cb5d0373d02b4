/* bidnorm/watch.h - the directory watcher: every complete log file in an inbox becomes Avro exactly once. */
#ifndef BIDNORM_WATCH_H
#define BIDNORM_WATCH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "bidnorm/avro.h"
#include "bidnorm/error.h"
#include "bidnorm/rules.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * How to drive it (what `bidnorm watch` does):
 *
 *     bn_watch_options opt;
 *     bn_watch_options_init(&opt);
 *     opt.inbox = "in"; opt.outbox = "out"; opt.done_dir = "done";
 *     bn_watch *w = NULL;
 *     bn_watch_new(&w, &opt, &err);        // loads the rules, recovers from a crash
 *     // signal handlers write BN_WATCH_WAKE_STOP / _RELOAD to bn_watch_wake_fd(w)
 *     bn_watch_run(w, &err);               // until stopped (or the backlog is done, opt.once)
 *     bn_watch_free(w);
 *
 * Per input file IN/NAME (STEM = NAME without .jsonl.zst, .jsonl.gz, .jsonl,
 * .zst, .gz or .json): bn_ingest_run writes STEM.avro, STEM.rejects.jsonl and
 * STEM.stats.json into OUT/.bidnorm-watch/staging/, they are renamed into
 * OUT (the stats file last) and OUT is fsynced; the journal records
 * "published"; the input is moved to done_dir (or deleted) and the folders
 * are fsynced; the journal records "done". A crash at any point leaves
 * either the input in the inbox (it is processed again, and its outputs
 * replace any earlier ones of the same names) or a journal entry saying
 * what is left to do, so every file's records are in OUT exactly once.
 *
 * A file is taken only when complete: it arrived by rename (recommended:
 * write "x.jsonl.zst.tmp" or ".x.jsonl.zst", then rename), or its size and
 * mtime have not changed for settle_seconds and no process has it open for
 * writing (checked with a read lease where the file system and permissions
 * allow it).
 *
 * Whoever can write the inbox is trusted less than the watcher: an entry is
 * opened without following a symbolic link and without blocking (O_NOFOLLOW,
 * O_NONBLOCK), and only a regular file is read; a symbolic link, FIFO,
 * socket or device is quarantined unread (folders are ignored). With
 * allow_uids/allow_gids, only files owned by one of those users or groups are
 * read. A regular file with more than one hard link is quarantined unread
 * (status "hard_linked") unless allow_hard_links: it may be a link to a file
 * its writer does not own (where Linux's fs.protected_hardlinks is off). The
 * count checked is that of the opened descriptor; a file first seen with
 * several links is given settle_seconds to lose them, so a producer
 * publishing with link() then unlink() is not caught in between. The input is read through the descriptor that was checked, and what
 * is moved to done_dir or the quarantine is checked to be that file (device
 * and inode) before and after the rename; a file put in its place meanwhile
 * is moved back. Outputs are never more readable than the input (see
 * bn_ingest_run), the quarantine's files included.
 *
 * Threads: bn_watch_run uses opt.workers threads besides the caller's. The
 * log callback may be called from any of them, one call per event.
 */

typedef struct bn_watch bn_watch;

/* Bytes a signal handler writes to bn_watch_wake_fd (write(2) is async-signal-safe). */
#define BN_WATCH_WAKE_STOP 'S'    /* stop taking files, finish the running ones, return */
#define BN_WATCH_WAKE_RELOAD 'R'  /* load the rule file again; on error keep the old rules */

typedef enum bn_watch_level {
	BN_WATCH_DEBUG = 0,
	BN_WATCH_INFO = 1,
	BN_WATCH_WARN = 2,
	BN_WATCH_ERROR = 3
} bn_watch_level;

/*
 * One log event. event is a stable snake_case name: "started", "recovered",
 * "file_started", "file_done", "file_duplicate", "file_quarantined", "file_retry",
 * "file_gone", "file_changed", "file_cancelled", "rules_reloaded", "rules_reload_failed", "stopping",
 * "stop_timeout", "stopped", "error". Pointers are valid only during the call.
 */
typedef struct bn_watch_event {
	const char *event;
	int level;                   /* bn_watch_level */
	const char *file;            /* input name (no folder), or NULL */
	const char *detail;          /* e.g. where the file went, or NULL */
	const bn_error *error;       /* why, for failures; NULL otherwise */
	uint64_t records_written;
	uint64_t records_rejected;
	uint64_t bytes_in;           /* input file bytes */
	double seconds;              /* time spent on the file */
	double retry_in;             /* file_retry: seconds until the next attempt */
} bn_watch_event;

typedef void (*bn_watch_log_fn)(void *ctx, const bn_watch_event *ev);

typedef struct bn_watch_options {
	const char *inbox;             /* required: the folder exchanges drop files into */
	const char *outbox;            /* required: where STEM.avro/.rejects.jsonl/.stats.json go */
	const char *rules_path;        /* rule file; NULL = the embedded default rules */
	const char *done_dir;          /* processed inputs are moved here ... */
	int delete_done;               /* ... or deleted (exactly one of the two) */
	const char *quarantine_dir;    /* bad files and NAME.error.json; NULL = INBOX/.quarantine */
	const char *state_dir;         /* the journal; NULL = OUTBOX/.bidnorm-watch */
	const char *metrics_path;      /* Prometheus text file, NULL = none */
	const char *const *include;    /* name globs taken; NULL = *.jsonl *.jsonl.zst *.jsonl.gz *.json *.zst *.gz */
	size_t ninclude;
	unsigned workers;              /* files processed in parallel (default 1, at most 64) */
	unsigned threads;              /* bn_ingest threads per file (default 1) */
	bn_codec codec;                /* default zstandard */
	int codec_level;
	double max_reject_rate;        /* per file, as bidnorm ingest (default 0.01) */
	int reject_raw;                /* what reject lines keep of the line: a bn_reject_raw (default full) */
	size_t reject_raw_bytes;       /* for BN_REJECT_RAW_TRUNCATE */
	const uid_t *allow_uids;       /* when either list is given, files owned by none of these users ... */
	size_t nallow_uids;
	const gid_t *allow_gids;       /* ... and none of these groups are quarantined unread */
	size_t nallow_gids;
	int allow_hard_links;          /* read regular files with more than one hard link (default 0: quarantined) */
	double settle_seconds;         /* default 5 */
	double rescan_seconds;         /* safety-net rescan period (default 30) */
	double metrics_seconds;        /* metrics rewrite period (default 10) */
	double retry_max_seconds;      /* backoff cap for output errors (default 300; starts at 1) */
	double stop_timeout_seconds;   /* after a stop, running files get this long, then are cancelled
	                                  and stay in the inbox (default 30) */
	int once;                      /* process the files present at start, then return */
	bn_watch_log_fn log;           /* NULL = silent */
	void *log_ctx;
} bn_watch_options;

/* Fill *opt with the defaults above (inbox, outbox and done_dir/delete_done left for the caller). */
void bn_watch_options_init(bn_watch_options *opt);

/*
 * Check the options, load the rules, create the folders that are missing
 * (outbox, state, quarantine, done) and recover from an earlier run that
 * was killed: remove temporary files, finish inputs whose outputs were
 * published (the journal says so and the file's identity matches). The
 * strings in opt are copied. Returns BN_OK; BN_EUSAGE ("--inbox is
 * required", "give --done DIR or --delete", ...); BN_ERULES or BN_EIO for
 * the rule file; BN_EIO for a folder or the journal ("cannot create
 * folder 'x': ..."); BN_ENOMEM. *out is set only on success; free it with
 * bn_watch_free.
 */
int bn_watch_new(bn_watch **out, const bn_watch_options *opt, bn_error *err);

/*
 * The write end of the watcher's wake-up pipe (non-blocking, owned by w):
 * write one BN_WATCH_WAKE_* byte to it, e.g. from a signal handler.
 */
int bn_watch_wake_fd(const bn_watch *w);

/*
 * Watch until stopped: returns BN_OK after a BN_WATCH_WAKE_STOP once the
 * running files have finished (or after stop_timeout_seconds, when they are
 * cancelled and left in the inbox), or with opt.once when every file
 * present at start has been handled. With opt.once, returns BN_EIO
 * ("N files left in the inbox after output errors") when some file could
 * not be written. Returns BN_EIO when the inbox cannot be watched or read.
 * Bad input files never make it fail: they are quarantined.
 */
int bn_watch_run(bn_watch *w, bn_error *err);

/* Accepts NULL. */
void bn_watch_free(bn_watch *w);

/*
 * The output stem of an input name: the name without a trailing
 * ".jsonl.zst", ".jsonl.gz", ".jsonl", ".zst", ".gz" or ".json" (the first that matches).
 * Writes at most size bytes including the NUL; returns the stem's length.
 */
size_t bn_watch_stem(char *out, size_t size, const char *name);

/*
 * 1 when the watcher would consider name at all: not a dot-file, not
 * ending in ".tmp" or ".part", and matching one of include[0..ninclude)
 * (fnmatch; NULL = the defaults). 0 otherwise.
 */
int bn_watch_name_wanted(const char *name, const char *const *include, size_t ninclude);

#ifdef __cplusplus
}
#endif
#endif
