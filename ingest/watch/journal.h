/* journal.h - the watcher's append-only journal of what happened to each input file, and file identities. */
#ifndef BN_WATCH_JOURNAL_H
#define BN_WATCH_JOURNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "bidnorm/error.h"
#include "util/buf.h"

#define BN_WATCH_HASH_BYTES (64 * 1024)

/*
 * What identifies an input: its name, its size, and SHA-256 of its first
 * and of its last 64 KiB. Content-based, so a file re-sent under the same
 * name with other content is a different file.
 */
typedef struct bn_watch_identity {
	char name[256];
	uint64_t size;
	char head[65];
	char tail[65];
} bn_watch_identity;

/* Identity of the open file fd (read with pread; the offset is untouched). BN_EIO with errno text. */
int bn_watch_identity_fd(bn_watch_identity *out, int fd, const char *name, bn_error *err);

int bn_watch_identity_equal(const bn_watch_identity *a, const bn_watch_identity *b);

typedef enum bn_journal_status {
	BN_JOURNAL_PUBLISHED = 1, /* outputs are in the outbox; the input may still be in the inbox */
	BN_JOURNAL_DONE = 2,      /* the input was moved to done (or deleted) */
	BN_JOURNAL_QUARANTINED = 3
} bn_journal_status;

/* One journal line. */
typedef struct bn_journal_entry {
	bn_watch_identity id;
	int status;               /* bn_journal_status */
	char stem[256];
	char where[512];          /* done/quarantine file name, "" when deleted */
	uint64_t records_written, records_rejected;
	char time[32];            /* UTC, RFC 3339 */
} bn_journal_entry;

/*
 * The journal: PATH (STATE/journal.jsonl), one JSON object per line,
 *   {"time":"2026-11-20T12:00:03Z","status":"done","file":"a.jsonl","size":123,
 *    "head":"<sha256>","tail":"<sha256>","stem":"a","outputs":["a.avro","a.rejects.jsonl","a.stats.json"],
 *    "where":"a.jsonl","records_written":10,"records_rejected":0}
 * Each entry is written with one write() and fsynced before append returns.
 * A line torn by a crash is skipped when loading. The newest entry of each
 * file name is kept in memory for lookups (older ones never decide
 * anything), and a file that is mostly history is rewritten with only
 * those when opened. Safe to use from several threads.
 */
typedef struct bn_journal bn_journal;

/* Open (creating) and load path. BN_EIO, BN_ENOMEM. */
int bn_journal_open(bn_journal **out, const char *path, bn_error *err);

/* Append e (its time is set here), fsync. BN_EIO ("journal: write failed: ..."), BN_ENOMEM. */
int bn_journal_append(bn_journal *j, bn_journal_entry *e, bn_error *err);

/* The status of the newest entry for exactly this identity, 0 when there is none. */
int bn_journal_last_status(bn_journal *j, const bn_watch_identity *id);

/*
 * The name of the newest done or published input whose stem is stem but
 * whose name is not name (two inputs that would write the same outputs),
 * copied into out; 0 if none, 1 if found.
 */
int bn_journal_stem_owner(bn_journal *j, const char *stem, const char *name, char *out, size_t size);

/* Number of entries kept (one per file name, oldest first); a copy of entry i. For recovery and tests. */
size_t bn_journal_count(bn_journal *j);
void bn_journal_get(bn_journal *j, size_t i, bn_journal_entry *out);

/* Parse one journal line into *out: 0, or -1 when it is not a valid entry. */
int bn_journal_parse_line(bn_journal_entry *out, const char *line, size_t len);

/* Append e as a journal line (with the trailing newline) to b: 0, or -1 when out of memory. */
int bn_journal_format_line(bn_buf *b, const bn_journal_entry *e);

/* Accepts NULL. */
void bn_journal_free(bn_journal *j);

#endif
