/* watch.c - bidnorm watch: the event loop, worker threads, per-file publication, quarantine, recovery and metrics. */
#include "bidnorm/watch.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bidnorm/ingest.h"
#include "sink/output.h"
#include "util/jsonw.h"
#include "watch/inbox.h"
#include "watch/journal.h"

#define MAX_WORKERS 64

/* Rules shared by the jobs that started with them; freed when the last one lets go (main thread only). */
typedef struct rules_ref {
	bn_rules *rules;
	unsigned refs;
} rules_ref;

enum outcome {
	OUT_DONE = 1,       /* outputs published, input moved or deleted */
	OUT_DUPLICATE,      /* identical to a file already done: input moved or deleted, nothing re-made */
	OUT_QUARANTINED,
	OUT_RETRY,          /* output error: input left in the inbox */
	OUT_CHANGED,        /* the input changed while we read it: not complete after all */
	OUT_GONE,           /* the input vanished before we could read it */
	OUT_CANCELLED       /* stopped by a stop timeout: input left in the inbox */
};

typedef struct job {
	char name[256];
	char stem[256];
	uint64_t size;
	int64_t mtime_ns;
	rules_ref *rules;
	/* results, written by the worker */
	int outcome;
	const char *status;     /* error.json's "status" when not the one of err.code */
	bn_ingest_summary sum;
	double seconds;
	bn_error err;
} job;

typedef struct slot {
	struct bn_watch *w;
	pthread_t thread;
	int started;
	int has_job;        /* a job is assigned (main thread sets, clears after collecting) */
	int finished;       /* the worker is done with it (under lock) */
	job job;
} slot;

typedef struct metrics {
	uint64_t done, quarantined, retried;
	uint64_t written, rejected, bytes_in;
	double last_success;
	uint64_t hist[10];  /* file seconds, cumulative buckets below */
	double seconds_sum;
	uint64_t seconds_count;
} metrics;

static const double buckets[10] = { 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800, 1e300 };

struct bn_watch {
	bn_watch_options opt;          /* strings point at the owned copies below */
	char *inbox, *outbox, *done, *quarantine, *state, *staging, *metrics_path, *rules_path;
	char **include;
	uid_t *allow_uids;
	gid_t *allow_gids;
	bn_journal *journal;
	rules_ref *rules;
	bn_inbox files;
	int sorted;
	int inotify_fd;
	int wake_r, wake_w;
	pthread_mutex_t lock;
	pthread_cond_t cv;
	slot *slots;
	unsigned nslots;
	int shutdown;
	atomic_int cancel;
	metrics m;
	unsigned left;                 /* --once: files left after output errors */
};

static double mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int64_t wall_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void rfc3339(char *out, size_t size)
{
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ---- logging ---- */

static void event_init(bn_watch_event *ev, int level, const char *event, const char *file, const char *detail,
		       const bn_error *why)
{
	memset(ev, 0, sizeof(*ev));
	ev->event = event;
	ev->level = level;
	ev->file = file;
	ev->detail = detail;
	ev->error = why;
}

static void say(bn_watch *w, int level, const char *event, const char *file, const char *detail,
		const bn_error *why)
{
	bn_watch_event ev;
	if (!w->opt.log)
		return;
	event_init(&ev, level, event, file, detail, why);
	w->opt.log(w->opt.log_ctx, &ev);
}

/* An event about job j, with its counts and time. */
static void say_file(bn_watch *w, int level, const char *event, const job *j, const char *detail,
		     const bn_error *why, double retry_in)
{
	bn_watch_event ev;
	if (!w->opt.log)
		return;
	event_init(&ev, level, event, j->name, detail, why);
	ev.records_written = j->sum.records_written;
	ev.records_rejected = j->sum.records_rejected;
	ev.bytes_in = j->size;
	ev.seconds = j->seconds;
	ev.retry_in = retry_in;
	w->opt.log(w->opt.log_ctx, &ev);
}

/* ---- options ---- */

void bn_watch_options_init(bn_watch_options *opt)
{
	memset(opt, 0, sizeof(*opt));
	opt->workers = 1;
	opt->threads = 1;
	opt->codec = BN_CODEC_ZSTANDARD;
	opt->max_reject_rate = 0.01;
	opt->settle_seconds = 5;
	opt->rescan_seconds = 30;
	opt->metrics_seconds = 10;
	opt->retry_max_seconds = 300;
	opt->stop_timeout_seconds = 30;
}

static char *dup_or_join(const char *given, const char *base, const char *sub)
{
	if (given)
		return strdup(given);
	return bn_fs_join(base, sub);
}

static void rules_release(rules_ref *r)
{
	if (r && --r->refs == 0) {
		bn_rules_free(r->rules);
		free(r);
	}
}

static int rules_load(rules_ref **out, const char *path, bn_error *err)
{
	rules_ref *r = calloc(1, sizeof(*r));
	int rc;
	if (!r)
		return bn_error_set(err, BN_ENOMEM, "out of memory");
	rc = bn_rules_load(&r->rules, path, err); /* a file, a shipped set's name, or NULL: the default */
	if (rc < 0) {
		free(r);
		return rc;
	}
	r->refs = 1;
	*out = r;
	return BN_OK;
}

/* ---- per-file work (worker threads) ---- */

static int cancelled(void *ctx)
{
	bn_watch *w = ctx;
	return atomic_load(&w->cancel);
}

/* "corrupt", "reject_rate", ...: the status word of error.json. */
static const char *status_word(int rc)
{
	switch (rc) {
	case BN_EUSAGE: return "usage";
	case BN_ENOMEM: return "no_memory";
	case BN_EIO: return "io";
	case BN_ECORRUPT: return "corrupt";
	case BN_ERULES: return "rules";
	case BN_EREJECTRATE: return "reject_rate";
	case BN_EINTERNAL: return "internal";
	default: return "failed";
	}
}

/* The exit code `bidnorm ingest` would have given for the same file (README: exit codes). */
static int ingest_exit_code(int rc)
{
	switch (rc) {
	case BN_OK: return 0;
	case BN_EUSAGE: return 2;
	case BN_EREJECTRATE: return 3;
	case BN_ERULES: return 4;
	case BN_EIO:
	case BN_ECORRUPT: return 5;
	default: return 1;
	}
}

typedef struct staged {
	char *avro, *rejects, *stats;   /* in staging */
	char *out_avro, *out_rejects, *out_stats;  /* in the outbox */
} staged;

static void staged_free(staged *s)
{
	free(s->avro);
	free(s->rejects);
	free(s->stats);
	free(s->out_avro);
	free(s->out_rejects);
	free(s->out_stats);
}

static char *join3(const char *dir, const char *stem, const char *ext)
{
	size_t n = strlen(dir) + strlen(stem) + strlen(ext) + 2;
	char *p = malloc(n);
	if (p)
		snprintf(p, n, "%s/%s%s", dir, stem, ext);
	return p;
}

static char *concat(const char *a, const char *b)
{
	size_t n = strlen(a) + strlen(b) + 1;
	char *p = malloc(n);
	if (p)
		snprintf(p, n, "%s%s", a, b);
	return p;
}

static int staged_init(staged *s, const bn_watch *w, const char *stem)
{
	memset(s, 0, sizeof(*s));
	s->avro = join3(w->staging, stem, ".avro");
	s->rejects = join3(w->staging, stem, ".rejects.jsonl");
	s->stats = join3(w->staging, stem, ".stats.json");
	s->out_avro = join3(w->outbox, stem, ".avro");
	s->out_rejects = join3(w->outbox, stem, ".rejects.jsonl");
	s->out_stats = join3(w->outbox, stem, ".stats.json");
	return s->avro && s->rejects && s->stats && s->out_avro && s->out_rejects && s->out_stats ? 0 : -1;
}

static void staged_discard(const staged *s)
{
	unlink(s->avro);
	unlink(s->rejects);
	unlink(s->stats);
}

/* Staged outputs into the outbox (same file system: renames), the stats file last, then sync the folder. */
static int publish(bn_watch *w, const staged *s, bn_error *err)
{
	const char *from[] = { s->avro, s->rejects, s->stats };
	const char *to[] = { s->out_avro, s->out_rejects, s->out_stats };
	for (int i = 0; i < 3; i++) {
		if (rename(from[i], to[i]) < 0) {
			bn_error_locate(err, to[i], 0, 0);
			return bn_error_set(err, BN_EIO, "cannot publish: %s", strerror(errno));
		}
	}
	if (bn_fs_sync_dir(w->outbox) < 0) {
		bn_error_locate(err, w->outbox, 0, 0);
		return bn_error_set(err, BN_EIO, "fsync of the folder failed: %s", strerror(errno));
	}
	return BN_OK;
}

/*
 * A folder directly in the inbox (the default quarantine, a done folder put
 * there) must be a folder of the watcher's own: whoever writes the inbox
 * could otherwise have made it a link, or renamed it away and put a link or
 * a folder of theirs in its place, to aim the watcher's writes and moves
 * elsewhere. BN_OK for that, or for a folder elsewhere; BN_EIO naming it.
 */
static int check_inbox_folder(const bn_watch *w, const char *path, bn_error *err)
{
	struct stat in, parent, st;
	char *copy = path ? strdup(path) : NULL;
	int rc = BN_OK;

	if (!path)
		return BN_OK;
	if (!copy)
		return bn_error_set(err, BN_ENOMEM, "out of memory");
	if (stat(w->inbox, &in) == 0 && stat(dirname(copy), &parent) == 0 && in.st_dev == parent.st_dev &&
	    in.st_ino == parent.st_ino && (lstat(path, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid())) {
		bn_error_locate(err, path, 0, 0);
		rc = bn_error_set(err, BN_EIO, "a folder in the inbox must be the watcher's own folder, not a link or "
				  "another user's (whoever writes the inbox could aim the watcher's writes elsewhere)");
	}
	free(copy);
	return rc;
}

/*
 * Move the input to the done folder (under a free name) or delete it: only
 * the file st describes (another file in its place stays). where: the done
 * name, "" if deleted.
 */
static int finish_input(bn_watch *w, const char *path, const char *name, const struct stat *st, char *where,
			size_t wsize, bn_error *err)
{
	if (w->opt.delete_done) {
		int rc = bn_fs_remove(path, st, err);
		if (rc == BN_OK)
			snprintf(where, wsize, "%s", "");
		return rc;
	}
	int rc = check_inbox_folder(w, w->done, err);
	if (rc < 0)
		return rc;
	char *dst = bn_fs_free_name(w->done, name, NULL);
	if (!dst)
		return bn_error_set(err, BN_ENOMEM, "out of memory");
	rc = bn_fs_move(path, dst, st, err);
	if (rc == BN_OK)
		snprintf(where, wsize, "%s", strrchr(dst, '/') + 1);
	free(dst);
	return rc;
}

static int write_error_json(const bn_watch *w, const char *path, const job *j, int rc, const bn_error *why,
			    const char *qname, const struct stat *input, bn_error *err)
{
	bn_buf b = { 0 };
	bn_outfile f;
	bn_outmode mode;
	char msg[2048], now[32], raw[32];
	int first = 1, bad = 0, r;

	bn_error_format(why, msg, sizeof(msg));
	rfc3339(now, sizeof(now));
	bad |= bn_jsonw_raw(&b, "{");
	bad |= bn_jsonw_key(&b, "file", &first) | bn_jsonw_cstr(&b, j->name);
	bad |= bn_jsonw_key(&b, "quarantined_as", &first) | bn_jsonw_cstr(&b, qname);
	bad |= bn_jsonw_key(&b, "status", &first) | bn_jsonw_cstr(&b, j->status ? j->status : status_word(rc));
	char num[16];
	snprintf(num, sizeof(num), "%d", rc);
	bad |= bn_jsonw_key(&b, "code", &first) | bn_jsonw_raw(&b, num);
	snprintf(num, sizeof(num), "%d", ingest_exit_code(rc));
	bad |= bn_jsonw_key(&b, "exit_code", &first) | bn_jsonw_raw(&b, num);
	bad |= bn_jsonw_key(&b, "message", &first) | bn_jsonw_cstr(&b, msg);
	bad |= bn_jsonw_key(&b, "time", &first) | bn_jsonw_cstr(&b, now);
	bad |= bn_jsonw_key(&b, "size", &first) | bn_jsonw_u64(&b, j->size);
	bad |= bn_jsonw_key(&b, "records_read", &first) | bn_jsonw_u64(&b, j->sum.records_read);
	bad |= bn_jsonw_key(&b, "records_written", &first) | bn_jsonw_u64(&b, j->sum.records_written);
	bad |= bn_jsonw_key(&b, "records_rejected", &first) | bn_jsonw_u64(&b, j->sum.records_rejected);
	bn_reject_raw_format(raw, sizeof(raw), w->opt.reject_raw, w->opt.reject_raw_bytes);
	bad |= bn_jsonw_key(&b, "reject_raw", &first) | bn_jsonw_cstr(&b, raw);
	bad |= bn_jsonw_raw(&b, "}\n");
	if (bad) {
		bn_buf_free(&b);
		return bn_error_set(err, BN_ENOMEM, "out of memory");
	}
	/* It may quote the file's name and the run's error: no more readable than the input. */
	bn_outmode_init(&mode);
	if (input)
		bn_outmode_add(&mode, input);
	r = bn_outfile_open(&f, path, err);
	f.limit = &mode;
	if (r == BN_OK)
		r = bn_outfile_write(&f, b.data, b.size, err);
	if (r == BN_OK)
		r = bn_outfile_commit(&f, err);
	else
		bn_outfile_abort(&f);
	bn_buf_free(&b);
	return r;
}

/*
 * Put the input and what explains its failure into the quarantine folder:
 * NAME.error.json first (so a quarantined file always has its reason), the
 * failed run's rejects and stats, then the input itself; then the journal.
 * input: what lstat or fstat said of the entry (NULL if nothing); only that
 * file is moved. An entry that is not a regular file (a link, a FIFO) holds
 * nothing to keep: when the quarantine is on another file system it is
 * removed ("quarantined_as": null).
 */
static int quarantine(bn_watch *w, job *j, const char *path, const bn_watch_identity *id, const staged *s,
		      int why_rc, const bn_error *why, const struct stat *input, bn_error *err)
{
	char *qpath = bn_fs_free_name(w->quarantine, j->name, ".error.json");
	char *epath = NULL, *rpath = NULL, *spath = NULL;
	int rc = BN_ENOMEM, remove_it = 0;
	struct stat qst;

	if (!qpath)
		goto cleanup;
	rc = check_inbox_folder(w, w->quarantine, err);
	if (rc < 0)
		goto cleanup;
	rc = BN_ENOMEM;
	epath = concat(qpath, ".error.json");
	rpath = concat(qpath, ".rejects.jsonl");
	spath = concat(qpath, ".stats.json");
	if (!epath || !rpath || !spath)
		goto cleanup;
	const char *qname = strrchr(qpath, '/') + 1;
	if (input && !S_ISREG(input->st_mode) && stat(w->quarantine, &qst) == 0 && qst.st_dev != input->st_dev)
		remove_it = 1;
	rc = write_error_json(w, epath, j, why_rc, why, remove_it ? NULL : qname, input, err);
	if (rc < 0)
		goto cleanup;
	if (s && access(s->rejects, F_OK) == 0 && (rc = bn_fs_move(s->rejects, rpath, NULL, err)) < 0)
		goto cleanup;
	if (s && access(s->stats, F_OK) == 0 && (rc = bn_fs_move(s->stats, spath, NULL, err)) < 0)
		goto cleanup;
	if (remove_it)
		rc = bn_fs_remove(path, input, err);
	else
		rc = bn_fs_move(path, qpath, input, err);
	if (rc < 0) {
		unlink(epath);
		goto cleanup;
	}
	bn_journal_entry e;
	memset(&e, 0, sizeof(e));
	e.id = *id;
	e.status = BN_JOURNAL_QUARANTINED;
	snprintf(e.stem, sizeof(e.stem), "%s", j->stem);
	snprintf(e.where, sizeof(e.where), "%s", remove_it ? "" : qname);
	e.records_written = j->sum.records_written;
	e.records_rejected = j->sum.records_rejected;
	/* The input is in quarantine already; a lost journal line only costs a warning. */
	bn_error jerr;
	if (bn_journal_append(w->journal, &e, &jerr) < 0)
		say(w, BN_WATCH_WARN, "error", j->name, "journal entry for a quarantined file not written", &jerr);
	rc = BN_OK;
cleanup:
	if (rc == BN_ENOMEM && err && !err->message[0])
		bn_error_set(err, BN_ENOMEM, "out of memory");
	free(qpath);
	free(epath);
	free(rpath);
	free(spath);
	return rc;
}

static int journal_note(bn_watch *w, const job *j, const bn_watch_identity *id, int status, const char *where,
			bn_error *err)
{
	bn_journal_entry e;
	memset(&e, 0, sizeof(e));
	e.id = *id;
	e.status = status;
	snprintf(e.stem, sizeof(e.stem), "%s", j->stem);
	snprintf(e.where, sizeof(e.where), "%s", where ? where : "");
	e.records_written = j->sum.records_written;
	e.records_rejected = j->sum.records_rejected;
	return bn_journal_append(w->journal, &e, err);
}

static int same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* "a symbolic link", "a named pipe (FIFO)", ...: what an inbox entry is when it is not a regular file. */
static const char *kind_of(mode_t mode)
{
	if (S_ISLNK(mode))
		return "a symbolic link";
	if (S_ISFIFO(mode))
		return "a named pipe (FIFO)";
	if (S_ISSOCK(mode))
		return "a socket";
	if (S_ISCHR(mode))
		return "a character device";
	if (S_ISBLK(mode))
		return "a block device";
	if (S_ISDIR(mode))
		return "a folder";
	return "of an unknown kind";
}

static int not_regular(job *j, mode_t mode)
{
	j->status = "not_regular_file";
	bn_error_locate(&j->err, j->name, 0, 0);
	if (S_ISLNK(mode))
		return bn_error_set(&j->err, BN_EIO, "is a symbolic link; links in the inbox are never followed");
	return bn_error_set(&j->err, BN_EIO, "is %s, not a regular file; it was not read", kind_of(mode));
}

static int owner_allowed(const bn_watch *w, const struct stat *st)
{
	if (!w->opt.nallow_uids && !w->opt.nallow_gids)
		return 1;
	for (size_t i = 0; i < w->opt.nallow_uids; i++)
		if (w->allow_uids[i] == st->st_uid)
			return 1;
	for (size_t i = 0; i < w->opt.nallow_gids; i++)
		if (w->allow_gids[i] == st->st_gid)
			return 1;
	return 0;
}

/*
 * Open the inbox entry j->name as the producer left it: never through a
 * symbolic link, never blocking on a FIFO, only a regular file, only from an
 * allowed owner, only with one hard link (unless allowed). Returns the
 * descriptor (blocking again) with *st filled, or -1 with j->outcome
 * OUT_GONE, or -2 with j->err (and j->status) saying why it is to be
 * quarantined and *st what is known of the entry (st_mode 0 when nothing).
 */
static int open_entry(bn_watch *w, job *j, const char *path, struct stat *st)
{
	int fd;

	memset(st, 0, sizeof(*st));
	if (lstat(path, st) < 0) {
		if (errno == ENOENT) {
			j->outcome = OUT_GONE;
			return -1;
		}
		memset(st, 0, sizeof(*st));
		bn_error_locate(&j->err, j->name, 0, 0);
		bn_error_set(&j->err, BN_EIO, "cannot open: %s", strerror(errno));
		return -2;
	}
	/* Not opened at all: opening a device can have effects of its own. */
	if (!S_ISREG(st->st_mode)) {
		not_regular(j, st->st_mode);
		return -2;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0 && errno == ENOENT) {
		j->outcome = OUT_GONE;
		return -1;
	}
	if (fd < 0 && errno == ELOOP) {
		/* Replaced by a link since the lstat: what is there now is a link. */
		if (lstat(path, st) < 0)
			memset(st, 0, sizeof(*st));
		not_regular(j, S_IFLNK);
		return -2;
	}
	if (fd < 0 || fstat(fd, st) < 0) {
		bn_error_locate(&j->err, j->name, 0, 0);
		bn_error_set(&j->err, BN_EIO, "cannot open: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		memset(st, 0, sizeof(*st));
		return -2;
	}
	if (!S_ISREG(st->st_mode)) {
		not_regular(j, st->st_mode);
		close(fd);
		return -2;
	}
	if (!owner_allowed(w, st)) {
		j->status = "owner_not_allowed";
		bn_error_locate(&j->err, j->name, 0, 0);
		bn_error_set(&j->err, BN_EIO,
			     "owned by user %lu and group %lu, neither of them allowed (--allow-owner, --allow-group); "
			     "it was not read", (unsigned long)st->st_uid, (unsigned long)st->st_gid);
		close(fd);
		return -2;
	}
	/* The descriptor's count: what is read is what was checked. */
	if (st->st_nlink > 1 && !w->opt.allow_hard_links) {
		j->status = "hard_linked";
		bn_error_locate(&j->err, j->name, 0, 0);
		bn_error_set(&j->err, BN_EIO,
			     "has %lu hard links, so it may be a link to a file its writer does not own; it was not read "
			     "(--allow-hard-links reads such files)", (unsigned long)st->st_nlink);
		close(fd);
		return -2;
	}
	/* O_NONBLOCK only kept a FIFO swapped in from blocking the open; reads of a regular file ignore it anyway. */
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	return fd;
}

/* Everything for one input file. Sets j->outcome and, for failures, j->err. */
static void process_file(bn_watch *w, job *j)
{
	char *path = bn_fs_join(w->inbox, j->name);
	staged s;
	bn_watch_identity id;
	struct stat before, after;
	char where[512] = "", other[256];
	int fd = -1, rc, have_staged = 0;
	double t0 = mono();

	bn_error_clear(&j->err);
	memset(&j->sum, 0, sizeof(j->sum));
	memset(&before, 0, sizeof(before));
	j->status = NULL;
	/* What the journal records for a file that cannot even be read: its name. */
	memset(&id, 0, sizeof(id));
	snprintf(id.name, sizeof(id.name), "%s", j->name);
	if (!path || staged_init(&s, w, j->stem) < 0) {
		bn_error_set(&j->err, BN_ENOMEM, "out of memory");
		j->outcome = OUT_RETRY;
		goto cleanup;
	}
	have_staged = 1;
	say(w, BN_WATCH_INFO, "file_started", j->name, NULL, NULL);
	fd = open_entry(w, j, path, &before);
	if (fd == -1)
		goto cleanup;
	if (fd < 0) {
		fd = -1;
		rc = BN_EIO;
		goto bad_file;
	}
	if ((uint64_t)before.st_size != j->size ||
	    (int64_t)before.st_mtim.tv_sec * 1000000000 + before.st_mtim.tv_nsec != j->mtime_ns) {
		j->outcome = OUT_CHANGED;
		goto cleanup;
	}
	rc = bn_watch_identity_fd(&id, fd, j->name, &j->err);
	if (rc < 0)
		goto bad_file;

	int last = bn_journal_last_status(w->journal, &id);
	if (last == BN_JOURNAL_DONE || last == BN_JOURNAL_PUBLISHED) {
		/* Done before (a re-sent identical file), or published before a crash: only the input is left to move. */
		rc = finish_input(w, path, j->name, &before, where, sizeof(where), &j->err);
		if (rc == BN_OK)
			rc = journal_note(w, j, &id, BN_JOURNAL_DONE, where, &j->err);
		j->outcome = rc < 0 ? OUT_RETRY : last == BN_JOURNAL_DONE ? OUT_DUPLICATE : OUT_DONE;
		goto cleanup;
	}
	if (bn_journal_stem_owner(w->journal, j->stem, j->name, other, sizeof(other))) {
		bn_error_clear(&j->err);
		bn_error_locate(&j->err, j->name, 0, 0);
		rc = bn_error_set(&j->err, BN_EUSAGE, "its outputs %s.avro/.rejects.jsonl/.stats.json belong to '%s'",
				  j->stem, other);
		goto bad_file;
	}

	staged_discard(&s);
	bn_ingest_options io;
	bn_ingest_options_init(&io);
	const char *inputs[1] = { path };
	/* The descriptor that was checked, not the name: the name may point elsewhere by now. */
	const int fds[1] = { fd };
	io.rules = j->rules->rules;
	io.inputs = inputs;
	io.input_fds = fds;
	io.ninputs = 1;
	io.output = s.avro;
	io.rejects_path = s.rejects;
	io.stats_path = s.stats;
	io.output_name = s.out_avro;
	io.rejects_name = s.out_rejects;
	io.codec = w->opt.codec;
	io.codec_level = w->opt.codec_level;
	io.max_reject_rate = w->opt.max_reject_rate;
	io.reject_raw = w->opt.reject_raw;
	io.reject_raw_bytes = w->opt.reject_raw_bytes;
	io.threads = w->opt.threads;
	io.cancel = cancelled;
	io.cancel_ctx = w;
	rc = bn_ingest_run(&io, &j->sum, &j->err);
	if (atomic_load(&w->cancel)) {
		staged_discard(&s);
		j->outcome = OUT_CANCELLED;
		goto cleanup;
	}
	/*
	 * Still being written (what we made is not of the complete file), or
	 * the name now holds another file (that one is an input of its own).
	 */
	if (fstat(fd, &after) < 0 || !same_file(&before, &after) || !bn_fs_is(path, &before)) {
		staged_discard(&s);
		j->outcome = OUT_CHANGED;
		goto cleanup;
	}
	if (rc < 0) {
		int input_fault = rc == BN_ECORRUPT || rc == BN_EREJECTRATE || rc == BN_EINTERNAL ||
				  rc == BN_EUSAGE || (rc == BN_EIO && strcmp(j->err.source, path) == 0);
		if (!input_fault) {
			staged_discard(&s);
			j->outcome = OUT_RETRY;
			goto cleanup;
		}
		/* Messages name the file as the inbox knows it, not by the watcher's path. */
		if (strcmp(j->err.source, path) == 0)
			snprintf(j->err.source, sizeof(j->err.source), "%s", j->name);
		goto bad_file;
	}
	rc = publish(w, &s, &j->err);
	if (rc == BN_OK)
		rc = journal_note(w, j, &id, BN_JOURNAL_PUBLISHED, NULL, &j->err);
	if (rc == BN_OK)
		rc = finish_input(w, path, j->name, &before, where, sizeof(where), &j->err);
	if (rc < 0) {
		/* The input stays; processing it again replaces whatever was published. */
		staged_discard(&s);
		j->outcome = OUT_RETRY;
		goto cleanup;
	}
	bn_error e2;
	if (journal_note(w, j, &id, BN_JOURNAL_DONE, where, &e2) < 0)
		say(w, BN_WATCH_WARN, "error", j->name, "journal entry 'done' not written; recovery adds it", &e2);
	j->outcome = OUT_DONE;
	goto cleanup;

bad_file:
	{
		bn_error why = j->err;
		bn_error_clear(&j->err);
		if (quarantine(w, j, path, &id, have_staged ? &s : NULL, rc, &why, before.st_mode ? &before : NULL,
			       &j->err) < 0) {
			j->outcome = OUT_RETRY;
		} else {
			j->outcome = OUT_QUARANTINED;
			j->err = why;
		}
		staged_discard(&s);
	}
cleanup:
	if (fd >= 0)
		close(fd);
	if (have_staged)
		staged_free(&s);
	free(path);
	j->seconds = mono() - t0;
}

static void *worker_main(void *arg)
{
	slot *sl = arg;
	bn_watch *w = sl->w;
	char byte = 'D';

	pthread_mutex_lock(&w->lock);
	for (;;) {
		while (!w->shutdown && !(sl->has_job && !sl->finished))
			pthread_cond_wait(&w->cv, &w->lock);
		if (w->shutdown)
			break;
		pthread_mutex_unlock(&w->lock);
		process_file(w, &sl->job);
		pthread_mutex_lock(&w->lock);
		sl->finished = 1;
		/* Wake the main loop; a full pipe already holds a wake-up. */
		if (write(w->wake_w, &byte, 1) < 0) {
		}
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

/* ---- metrics ---- */

static void write_metrics(bn_watch *w)
{
	bn_buf b = { 0 };
	bn_outfile f;
	bn_error err;
	char line[256];
	const metrics *m = &w->m;
	int bad = 0;

	if (!w->metrics_path)
		return;
#define OUT(...) do { snprintf(line, sizeof(line), __VA_ARGS__); bad |= bn_jsonw_raw(&b, line); } while (0)
	OUT("# HELP bidnorm_watch_files_total Input files handled, by outcome.\n");
	OUT("# TYPE bidnorm_watch_files_total counter\n");
	OUT("bidnorm_watch_files_total{status=\"done\"} %llu\n", (unsigned long long)m->done);
	OUT("bidnorm_watch_files_total{status=\"quarantined\"} %llu\n", (unsigned long long)m->quarantined);
	OUT("bidnorm_watch_files_total{status=\"retried\"} %llu\n", (unsigned long long)m->retried);
	OUT("# HELP bidnorm_watch_records_total Records of done files, by outcome.\n");
	OUT("# TYPE bidnorm_watch_records_total counter\n");
	OUT("bidnorm_watch_records_total{outcome=\"written\"} %llu\n", (unsigned long long)m->written);
	OUT("bidnorm_watch_records_total{outcome=\"rejected\"} %llu\n", (unsigned long long)m->rejected);
	OUT("# HELP bidnorm_watch_bytes_in_total Input bytes of done files.\n");
	OUT("# TYPE bidnorm_watch_bytes_in_total counter\n");
	OUT("bidnorm_watch_bytes_in_total %llu\n", (unsigned long long)m->bytes_in);
	OUT("# HELP bidnorm_watch_backlog_files Wanted files in the inbox not yet handled.\n");
	OUT("# TYPE bidnorm_watch_backlog_files gauge\n");
	OUT("bidnorm_watch_backlog_files %zu\n", w->files.n);
	OUT("# HELP bidnorm_watch_last_success_timestamp_seconds When the last file was done (Unix time).\n");
	OUT("# TYPE bidnorm_watch_last_success_timestamp_seconds gauge\n");
	OUT("bidnorm_watch_last_success_timestamp_seconds %.3f\n", m->last_success);
	OUT("# HELP bidnorm_watch_file_seconds Time to process one file.\n");
	OUT("# TYPE bidnorm_watch_file_seconds histogram\n");
	for (int i = 0; i < 10; i++) {
		if (i == 9)
			OUT("bidnorm_watch_file_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)m->hist[i]);
		else
			OUT("bidnorm_watch_file_seconds_bucket{le=\"%g\"} %llu\n", buckets[i],
			    (unsigned long long)m->hist[i]);
	}
	OUT("bidnorm_watch_file_seconds_sum %.6f\n", m->seconds_sum);
	OUT("bidnorm_watch_file_seconds_count %llu\n", (unsigned long long)m->seconds_count);
#undef OUT
	bn_error_clear(&err);
	if (bad) {
		bn_buf_free(&b);
		return;
	}
	int rc = bn_outfile_open(&f, w->metrics_path, &err);
	if (rc == BN_OK)
		rc = bn_outfile_write(&f, b.data, b.size, &err);
	if (rc == BN_OK)
		rc = bn_outfile_commit(&f, &err);
	else
		bn_outfile_abort(&f);
	if (rc < 0)
		say(w, BN_WATCH_WARN, "error", NULL, "metrics not written", &err);
	bn_buf_free(&b);
}

/* ---- the inbox (main thread) ---- */

static void observe_name(bn_watch *w, const char *name, int moved_in, int closed, int backlog)
{
	char *path = bn_fs_join(w->inbox, name);
	struct stat st;
	bn_inbox_file *f;
	if (!path)
		return;
	/* lstat: a symbolic link is an entry of its own (to be quarantined), never what it points at. */
	int ok = lstat(path, &st) == 0;
	f = bn_inbox_observe(&w->files, name, ok ? &st : NULL, mono());
	if (f) {
		f->moved_in |= moved_in;
		f->closed |= closed;
		f->backlog |= backlog;
	}
	w->sorted = 0;
	free(path);
}

static int rescan(bn_watch *w, int initial, bn_error *err)
{
	DIR *d = opendir(w->inbox);
	struct dirent *e;
	if (!d) {
		bn_error_locate(err, w->inbox, 0, 0);
		return bn_error_set(err, BN_EIO, "cannot read the inbox: %s", strerror(errno));
	}
	for (size_t i = 0; i < w->files.n; i++)
		w->files.files[i].present = 0;
	while ((e = readdir(d)) != NULL) {
		if (!bn_watch_name_wanted(e->d_name, (const char *const *)w->include, w->opt.ninclude))
			continue;
		observe_name(w, e->d_name, 0, 0, initial);
		bn_inbox_file *f = bn_inbox_find(&w->files, e->d_name);
		if (f)
			f->present = 1;
	}
	closedir(d);
	for (size_t i = w->files.n; i-- > 0;) {
		bn_inbox_file *f = &w->files.files[i];
		if (!f->present && f->state != BN_INBOX_RUNNING)
			bn_inbox_remove(&w->files, f->name);
	}
	w->sorted = 0;
	return BN_OK;
}

static int stem_running(const bn_watch *w, const char *stem)
{
	for (unsigned i = 0; i < w->nslots; i++)
		if (w->slots[i].has_job && strcmp(w->slots[i].job.stem, stem) == 0)
			return 1;
	return 0;
}

static slot *free_slot(bn_watch *w)
{
	for (unsigned i = 0; i < w->nslots; i++)
		if (!w->slots[i].has_job)
			return &w->slots[i];
	return NULL;
}

static unsigned running(const bn_watch *w)
{
	unsigned n = 0;
	for (unsigned i = 0; i < w->nslots; i++)
		n += w->slots[i].has_job != 0;
	return n;
}

/* Hand complete files to free workers, oldest first. Returns the monotonic time to look again. */
static double dispatch(bn_watch *w, double next)
{
	double now = mono();
	int64_t wall = wall_ns();
	double settle = w->opt.settle_seconds;
	bn_inbox_file **order = NULL;
	size_t n = w->files.n;

	if (!n)
		return next;
	order = malloc(n * sizeof(*order));
	if (!order)
		return now + 1;
	for (size_t i = 0; i < n; i++)
		order[i] = &w->files.files[i];
	qsort(order, n, sizeof(*order), bn_inbox_order);
	for (size_t i = 0; i < n; i++) {
		bn_inbox_file *f = order[i];
		slot *sl;
		double at;
		if (f->state == BN_INBOX_RUNNING)
			continue;
		if (f->state == BN_INBOX_RETRY && now < f->retry_at) {
			next = f->retry_at < next ? f->retry_at : next;
			continue;
		}
		/* First without system calls, assuming no writer: most files are not ready for a while. */
		if (!bn_inbox_ready(f, now, wall, settle, 0)) {
			at = now + settle - (double)(wall - f->mtime_ns) / 1e9;
			next = at < next ? at : next;
			continue;
		}
		sl = free_slot(w);
		if (!sl)
			break;
		char stem[256];
		bn_watch_stem(stem, sizeof(stem), f->name);
		if (stem_running(w, stem))
			continue;
		char *path = bn_fs_join(w->inbox, f->name);
		struct stat st;
		int writer = -1;
		if (!path)
			break;
		int ok = lstat(path, &st) == 0;
		if (ok && S_ISREG(st.st_mode))
			writer = bn_inbox_writer_open(path);
		free(path);
		if (!ok || S_ISDIR(st.st_mode)) {
			/* Gone: order[] may point at the removed slot's replacement, so stop here and come back. */
			bn_inbox_observe(&w->files, f->name, NULL, now);
			next = now;
			break;
		}
		bn_inbox_observe(&w->files, f->name, &st, now);
		if (!bn_inbox_ready(f, now, wall, settle, writer)) {
			at = f->seen_change + settle;
			if (writer == 1 || at <= now)
				at = now + (settle > 0.05 ? settle : 0.05);
			next = at < next ? at : next;
			continue;
		}
		/* Several links: a link() then unlink() publish gets settle seconds to end; open_entry judges what is left. */
		if (!w->opt.allow_hard_links && f->linked_since >= 0 && now - f->linked_since < settle) {
			at = f->linked_since + settle;
			next = at < next ? at : next;
			continue;
		}
		/* Take it. */
		job *j = &sl->job;
		memset(j, 0, sizeof(*j));
		snprintf(j->name, sizeof(j->name), "%s", f->name);
		snprintf(j->stem, sizeof(j->stem), "%s", stem);
		j->size = f->size;
		j->mtime_ns = f->mtime_ns;
		j->rules = w->rules;
		w->rules->refs++;
		f->state = BN_INBOX_RUNNING;
		pthread_mutex_lock(&w->lock);
		sl->has_job = 1;
		sl->finished = 0;
		pthread_cond_broadcast(&w->cv);
		pthread_mutex_unlock(&w->lock);
	}
	free(order);
	return next;
}

static void account(bn_watch *w, const job *j)
{
	metrics *m = &w->m;
	m->written += j->sum.records_written;
	m->rejected += j->sum.records_rejected;
	m->bytes_in += j->size;
	m->seconds_sum += j->seconds;
	m->seconds_count++;
	for (int i = 0; i < 10; i++)
		if (j->seconds <= buckets[i])
			m->hist[i]++;
}

/* Collect finished jobs: log, count, and update the inbox table. Returns how many finished. */
static int collect(bn_watch *w)
{
	int n = 0;
	for (unsigned i = 0; i < w->nslots; i++) {
		slot *sl = &w->slots[i];
		pthread_mutex_lock(&w->lock);
		int fin = sl->has_job && sl->finished;
		pthread_mutex_unlock(&w->lock);
		if (!fin)
			continue;
		job *j = &sl->job;
		bn_inbox_file *f = bn_inbox_find(&w->files, j->name);
		char detail[600];
		n++;
		switch (j->outcome) {
		case OUT_DONE:
		case OUT_DUPLICATE:
			w->m.done++;
			w->m.last_success = (double)wall_ns() / 1e9;
			account(w, j);
			snprintf(detail, sizeof(detail), "%s.avro", j->stem);
			say_file(w, BN_WATCH_INFO, j->outcome == OUT_DONE ? "file_done" : "file_duplicate", j,
				 j->outcome == OUT_DONE ? detail : "identical to a file already done; not processed again",
				 NULL, 0);
			bn_inbox_remove(&w->files, j->name);
			/* A new file of the same name may have arrived while this one ran. */
			observe_name(w, j->name, 0, 0, 0);
			break;
		case OUT_QUARANTINED:
			w->m.quarantined++;
			say_file(w, BN_WATCH_WARN, "file_quarantined", j, w->quarantine, &j->err, 0);
			bn_inbox_remove(&w->files, j->name);
			observe_name(w, j->name, 0, 0, 0);
			break;
		case OUT_RETRY:
			w->m.retried++;
			if (w->opt.once) {
				w->left++;
				say_file(w, BN_WATCH_ERROR, "file_retry", j, "left in the inbox (--once)", &j->err, 0);
				bn_inbox_remove(&w->files, j->name);
				break;
			}
			if (f) {
				double delay = 1;
				f->attempts++;
				for (unsigned a = 1; a < f->attempts && delay < w->opt.retry_max_seconds; a++)
					delay *= 2;
				if (delay > w->opt.retry_max_seconds)
					delay = w->opt.retry_max_seconds;
				f->state = BN_INBOX_RETRY;
				f->retry_at = mono() + delay;
				say_file(w, BN_WATCH_ERROR, "file_retry", j, "left in the inbox", &j->err, delay);
			}
			break;
		case OUT_CHANGED:
			if (f)
				f->state = BN_INBOX_WAITING;
			say_file(w, BN_WATCH_INFO, "file_changed", j, "changed while being read; waiting until it is complete",
				 NULL, 0);
			observe_name(w, j->name, 0, 0, 0);
			break;
		case OUT_GONE:
			say_file(w, BN_WATCH_INFO, "file_gone", j, NULL, NULL, 0);
			bn_inbox_remove(&w->files, j->name);
			break;
		case OUT_CANCELLED:
		default:
			if (f)
				f->state = BN_INBOX_WAITING;
			say_file(w, BN_WATCH_WARN, "file_cancelled", j, "stopped before the end; left in the inbox", NULL, 0);
			if (w->opt.once)
				bn_inbox_remove(&w->files, j->name);
			break;
		}
		rules_release(j->rules);
		j->rules = NULL;
		pthread_mutex_lock(&w->lock);
		sl->has_job = 0;
		sl->finished = 0;
		pthread_mutex_unlock(&w->lock);
	}
	if (n)
		write_metrics(w);
	return n;
}

static void reload_rules(bn_watch *w)
{
	rules_ref *r = NULL;
	bn_error err;
	bn_error_clear(&err);
	if (rules_load(&r, w->rules_path, &err) < 0) {
		say(w, BN_WATCH_ERROR, "rules_reload_failed", NULL, "keeping the rules loaded before", &err);
		return;
	}
	rules_release(w->rules);
	w->rules = r;
	say(w, BN_WATCH_INFO, "rules_reloaded", NULL, w->rules_path ? w->rules_path : "(default rules)", NULL);
}

/* Read inotify events and note the files they name. -1 when the inbox itself went away. */
static int read_events(bn_watch *w, int *overflow)
{
	char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
	for (;;) {
		ssize_t r = read(w->inotify_fd, buf, sizeof(buf));
		if (r <= 0)
			return 0;
		for (char *p = buf; p < buf + r;) {
			const struct inotify_event *ev = (const struct inotify_event *)p;
			p += sizeof(*ev) + ev->len;
			if (ev->mask & IN_Q_OVERFLOW)
				*overflow = 1;
			if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED | IN_UNMOUNT))
				return -1;
			if (!ev->len || !bn_watch_name_wanted(ev->name, (const char *const *)w->include, w->opt.ninclude))
				continue;
			/* IN_CREATE: links and FIFOs never see a close after writing; they are quarantined at once. */
			observe_name(w, ev->name, (ev->mask & IN_MOVED_TO) != 0, (ev->mask & IN_CLOSE_WRITE) != 0, 0);
		}
	}
}

int bn_watch_run(bn_watch *w, bn_error *err)
{
	int rc = BN_OK, stopping = 0, stop_announced = 0;
	double now = mono(), next_rescan, next_metrics, stop_deadline = 0;

	atomic_store(&w->cancel, 0);
	if (!w->opt.once) {
		w->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
		if (w->inotify_fd < 0 ||
		    inotify_add_watch(w->inotify_fd, w->inbox,
				      IN_MOVED_TO | IN_CLOSE_WRITE | IN_CREATE | IN_DELETE_SELF | IN_MOVE_SELF |
					      IN_ONLYDIR) < 0) {
			bn_error_locate(err, w->inbox, 0, 0);
			return bn_error_set(err, BN_EIO, "cannot watch the inbox: %s", strerror(errno));
		}
	}
	for (unsigned i = 0; i < w->nslots; i++) {
		if (pthread_create(&w->slots[i].thread, NULL, worker_main, &w->slots[i]) != 0) {
			rc = bn_error_set(err, BN_ENOMEM, "cannot start worker thread %u of %u", i + 1, w->nslots);
			goto cleanup;
		}
		w->slots[i].started = 1;
	}
	/* Watching starts before the first scan, so no file can slip between the two. */
	rc = rescan(w, 1, err);
	if (rc < 0)
		goto cleanup;
	say(w, BN_WATCH_INFO, "started", NULL, w->inbox, NULL);
	write_metrics(w);
	next_rescan = now + w->opt.rescan_seconds;
	next_metrics = now + w->opt.metrics_seconds;

	for (;;) {
		collect(w);
		now = mono();
		if (stopping && !running(w))
			break;
		if (w->opt.once && !w->files.n && !running(w))
			break;
		double next = now + 3600;
		if (!stopping)
			next = dispatch(w, next);
		if (!w->opt.once) {
			next = next_rescan < next ? next_rescan : next;
			next = next_metrics < next ? next_metrics : next;
		}
		if (stopping && !atomic_load(&w->cancel))
			next = stop_deadline < next ? stop_deadline : next;
		now = mono();
		double wait = next - now;
		int timeout = wait <= 0 ? 0 : wait > 3600 ? 3600000 : (int)(wait * 1000) + 1;
		struct pollfd pfd[2] = { { w->wake_r, POLLIN, 0 }, { w->inotify_fd, POLLIN, 0 } };
		int np = w->inotify_fd >= 0 ? 2 : 1;
		if (poll(pfd, (nfds_t)np, timeout) < 0 && errno != EINTR) {
			rc = bn_error_set(err, BN_EIO, "poll failed: %s", strerror(errno));
			break;
		}
		if (pfd[0].revents & POLLIN) {
			char bytes[64];
			ssize_t r;
			while ((r = read(w->wake_r, bytes, sizeof(bytes))) > 0) {
				for (ssize_t i = 0; i < r; i++) {
					if (bytes[i] == BN_WATCH_WAKE_STOP && !stopping) {
						stopping = 1;
						stop_deadline = mono() + w->opt.stop_timeout_seconds;
					} else if (bytes[i] == BN_WATCH_WAKE_RELOAD) {
						reload_rules(w);
					}
				}
			}
		}
		if (stopping && !stop_announced) {
			char d[64];
			snprintf(d, sizeof(d), "%u running file(s) get %gs to finish", running(w),
				 w->opt.stop_timeout_seconds);
			say(w, BN_WATCH_INFO, "stopping", NULL, d, NULL);
			stop_announced = 1;
		}
		if (stopping && !atomic_load(&w->cancel) && mono() >= stop_deadline && running(w)) {
			say(w, BN_WATCH_WARN, "stop_timeout", NULL, "cancelling the running files; they stay in the inbox",
			    NULL);
			atomic_store(&w->cancel, 1);
		}
		if (w->inotify_fd >= 0 && (pfd[1].revents & POLLIN)) {
			int overflow = 0;
			if (read_events(w, &overflow) < 0) {
				bn_error_locate(err, w->inbox, 0, 0);
				rc = bn_error_set(err, BN_EIO, "the inbox was removed or moved");
				stopping = 1;
				atomic_store(&w->cancel, 1);
				continue;
			}
			if (overflow)
				next_rescan = 0;
		}
		now = mono();
		if (!w->opt.once && !stopping && now >= next_rescan) {
			bn_error e2;
			if (rescan(w, 0, &e2) < 0)
				say(w, BN_WATCH_ERROR, "error", NULL, "rescan failed", &e2);
			next_rescan = now + w->opt.rescan_seconds;
		}
		if (!w->opt.once && now >= next_metrics) {
			write_metrics(w);
			next_metrics = now + w->opt.metrics_seconds;
		}
	}
	if (rc == BN_OK && w->left)
		rc = bn_error_set(err, BN_EIO, "%u file%s left in the inbox after output errors", w->left,
				  w->left == 1 ? "" : "s");
cleanup:
	pthread_mutex_lock(&w->lock);
	w->shutdown = 1;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->lock);
	for (unsigned i = 0; i < w->nslots; i++) {
		if (w->slots[i].started)
			pthread_join(w->slots[i].thread, NULL);
		w->slots[i].started = 0;
	}
	collect(w);
	write_metrics(w);
	say(w, BN_WATCH_INFO, "stopped", NULL, NULL, NULL);
	if (w->inotify_fd >= 0)
		close(w->inotify_fd);
	w->inotify_fd = -1;
	return rc;
}

/* ---- set-up and recovery ---- */

/* Remove every file left in the staging folder: it is what a killed run was still writing. */
static void clear_staging(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	if (!d)
		return;
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			unlinkat(dirfd(d), e->d_name, 0);
	closedir(d);
	bn_fs_sync_dir(dir);
}

/*
 * Inputs whose outputs were published before a crash: when the inbox still
 * holds the very same file, finish it (move or delete); when it does not,
 * it was moved already and only the journal's "done" is missing.
 */
static int recover(bn_watch *w, bn_error *err)
{
	size_t n = bn_journal_count(w->journal);
	for (size_t i = 0; i < n; i++) {
		bn_journal_entry e;
		bn_journal_get(w->journal, i, &e);
		if (e.status != BN_JOURNAL_PUBLISHED)
			continue;
		char *path = bn_fs_join(w->inbox, e.id.name);
		char where[512] = "";
		int fd, rc = BN_OK, present;
		bn_watch_identity id;
		if (!path)
			return bn_error_set(err, BN_ENOMEM, "out of memory");
		struct stat st;
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW | O_NONBLOCK);
		present = fd >= 0;
		if (fd >= 0) {
			int same = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
				   bn_watch_identity_fd(&id, fd, e.id.name, NULL) == BN_OK &&
				   bn_watch_identity_equal(&id, &e.id);
			close(fd);
			if (same)
				rc = finish_input(w, path, e.id.name, &st, where, sizeof(where), err);
			else
				e.status = 0;   /* another file of that name now: it is processed as new */
		}
		free(path);
		if (rc < 0)
			return rc;
		if (e.status != BN_JOURNAL_PUBLISHED)
			continue;
		e.status = BN_JOURNAL_DONE;
		snprintf(e.where, sizeof(e.where), "%s", where);
		rc = bn_journal_append(w->journal, &e, err);
		if (rc < 0)
			return rc;
		say(w, BN_WATCH_INFO, "recovered", e.id.name,
		    present ? "outputs were published before a restart; input moved now"
			    : "outputs were published and the input moved before a restart", NULL);
	}
	return BN_OK;
}

int bn_watch_new(bn_watch **out, const bn_watch_options *opt, bn_error *err)
{
	bn_watch *w = NULL;
	int rc = BN_ENOMEM, fds[2];
	char *journal_path = NULL;

	if (!opt || !opt->inbox || !opt->inbox[0])
		return bn_error_set(err, BN_EUSAGE, "--inbox is required");
	if (!opt->outbox || !opt->outbox[0])
		return bn_error_set(err, BN_EUSAGE, "--outbox is required");
	if (!!opt->done_dir == !!opt->delete_done)
		return bn_error_set(err, BN_EUSAGE, "give --done DIR or --delete (what happens to a processed input)");
	if ((opt->nallow_uids && !opt->allow_uids) || (opt->nallow_gids && !opt->allow_gids))
		return bn_error_set(err, BN_EUSAGE, "allow_uids/allow_gids missing for their counts");
	if (opt->reject_raw < BN_REJECT_RAW_FULL || opt->reject_raw > BN_REJECT_RAW_NONE)
		return bn_error_set(err, BN_EUSAGE, "reject_raw must be a bn_reject_raw");
	if (opt->workers < 1 || opt->workers > MAX_WORKERS)
		return bn_error_set(err, BN_EUSAGE, "workers must be between 1 and %d", MAX_WORKERS);
	if (opt->settle_seconds < 0 || opt->rescan_seconds <= 0 || opt->metrics_seconds <= 0 ||
	    opt->retry_max_seconds < 1 || opt->stop_timeout_seconds < 0)
		return bn_error_set(err, BN_EUSAGE, "settle, rescan, metrics, retry and stop times must be positive");
	rc = bn_codec_check_level(opt->codec, opt->codec_level, err);
	if (rc < 0)
		return rc;
	rc = BN_ENOMEM;
	w = calloc(1, sizeof(*w));
	if (!w)
		return bn_error_set(err, BN_ENOMEM, "out of memory");
	w->opt = *opt;
	w->inotify_fd = w->wake_r = w->wake_w = -1;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cv, NULL);
	atomic_init(&w->cancel, 0);
	w->inbox = strdup(opt->inbox);
	w->outbox = strdup(opt->outbox);
	w->done = opt->done_dir ? strdup(opt->done_dir) : NULL;
	w->quarantine = dup_or_join(opt->quarantine_dir, opt->inbox, ".quarantine");
	w->state = dup_or_join(opt->state_dir, opt->outbox, ".bidnorm-watch");
	w->staging = bn_fs_join(opt->outbox, ".bidnorm-watch/staging");
	w->metrics_path = opt->metrics_path ? strdup(opt->metrics_path) : NULL;
	w->rules_path = opt->rules_path ? strdup(opt->rules_path) : NULL;
	if (!w->inbox || !w->outbox || (opt->done_dir && !w->done) || !w->quarantine || !w->state || !w->staging ||
	    (opt->metrics_path && !w->metrics_path) || (opt->rules_path && !w->rules_path))
		goto nomem;
	if (opt->include && opt->ninclude) {
		w->include = calloc(opt->ninclude, sizeof(*w->include));
		if (!w->include)
			goto nomem;
		for (size_t i = 0; i < opt->ninclude; i++) {
			w->include[i] = strdup(opt->include[i]);
			if (!w->include[i])
				goto nomem;
		}
	} else {
		w->opt.ninclude = 0;
	}
	if (opt->nallow_uids) {
		w->allow_uids = malloc(opt->nallow_uids * sizeof(*w->allow_uids));
		if (!w->allow_uids)
			goto nomem;
		memcpy(w->allow_uids, opt->allow_uids, opt->nallow_uids * sizeof(*w->allow_uids));
	}
	if (opt->nallow_gids) {
		w->allow_gids = malloc(opt->nallow_gids * sizeof(*w->allow_gids));
		if (!w->allow_gids)
			goto nomem;
		memcpy(w->allow_gids, opt->allow_gids, opt->nallow_gids * sizeof(*w->allow_gids));
	}
	w->nslots = opt->workers;
	w->slots = calloc(w->nslots, sizeof(*w->slots));
	if (!w->slots)
		goto nomem;
	for (unsigned i = 0; i < w->nslots; i++)
		w->slots[i].w = w;
	if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0) {
		rc = bn_error_set(err, BN_EIO, "cannot create a pipe: %s", strerror(errno));
		goto cleanup;
	}
	w->wake_r = fds[0];
	w->wake_w = fds[1];

	rc = rules_load(&w->rules, w->rules_path, err);
	if (rc < 0)
		goto cleanup;
	struct stat st;
	if (stat(w->inbox, &st) < 0 || !S_ISDIR(st.st_mode)) {
		bn_error_locate(err, w->inbox, 0, 0);
		rc = bn_error_set(err, BN_EIO, "cannot watch the inbox: %s", errno ? strerror(errno) : "not a folder");
		goto cleanup;
	}
	const char *dirs[] = { w->outbox, w->state, w->staging, w->quarantine, w->done };
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		if (!dirs[i])
			continue;
		rc = bn_fs_mkdirs(dirs[i], err);
		if (rc == BN_OK)
			rc = check_inbox_folder(w, dirs[i], err);
		if (rc < 0)
			goto cleanup;
		bn_fs_remove_temporaries(dirs[i]);
	}
	clear_staging(w->staging);
	journal_path = bn_fs_join(w->state, "journal.jsonl");
	if (!journal_path)
		goto nomem;
	rc = bn_journal_open(&w->journal, journal_path, err);
	if (rc < 0)
		goto cleanup;
	rc = recover(w, err);
	if (rc < 0)
		goto cleanup;
	w->opt.inbox = w->inbox;
	w->opt.outbox = w->outbox;
	w->opt.done_dir = w->done;
	w->opt.quarantine_dir = w->quarantine;
	w->opt.state_dir = w->state;
	w->opt.metrics_path = w->metrics_path;
	w->opt.rules_path = w->rules_path;
	w->opt.include = (const char *const *)w->include;
	w->opt.allow_uids = w->allow_uids;
	w->opt.allow_gids = w->allow_gids;
	rc = BN_OK;
	goto cleanup;
nomem:
	rc = bn_error_set(err, BN_ENOMEM, "out of memory");
cleanup:
	free(journal_path);
	if (rc < 0) {
		bn_watch_free(w);
		return rc;
	}
	*out = w;
	return BN_OK;
}

int bn_watch_wake_fd(const bn_watch *w)
{
	return w->wake_w;
}

void bn_watch_free(bn_watch *w)
{
	if (!w)
		return;
	bn_journal_free(w->journal);
	rules_release(w->rules);
	bn_inbox_free(&w->files);
	if (w->wake_r >= 0)
		close(w->wake_r);
	if (w->wake_w >= 0)
		close(w->wake_w);
	if (w->inotify_fd >= 0)
		close(w->inotify_fd);
	for (size_t i = 0; w->include && i < w->opt.ninclude; i++)
		free(w->include[i]);
	free(w->include);
	free(w->allow_uids);
	free(w->allow_gids);
	free(w->slots);
	free(w->inbox);
	free(w->outbox);
	free(w->done);
	free(w->quarantine);
	free(w->state);
	free(w->staging);
	free(w->metrics_path);
	free(w->rules_path);
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->lock);
	free(w);
}
