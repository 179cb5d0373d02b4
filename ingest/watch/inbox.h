/* inbox.h - the watcher's view of the inbox: which files are wanted and complete, in what order; durable file moves. */
#ifndef BN_WATCH_INBOX_H
#define BN_WATCH_INBOX_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "bidnorm/error.h"
#include "util/file.h" /* bn_fs_mkdirs */

typedef enum bn_inbox_state {
	BN_INBOX_WAITING = 0,  /* seen, not yet known to be complete */
	BN_INBOX_RUNNING,      /* handed to a worker */
	BN_INBOX_RETRY         /* failed with an output error; next attempt at retry_at */
} bn_inbox_state;

/* One file in the inbox. Owned by the inbox table; used by the main thread only. */
typedef struct bn_inbox_file {
	char *name;
	uint64_t size;
	int64_t mtime_ns;      /* wall-clock modification time */
	double seen_change;    /* monotonic time size or mtime was last seen to change */
	int moved_in;          /* arrived by rename (IN_MOVED_TO): complete as soon as seen */
	int closed;            /* a writer closed it (IN_CLOSE_WRITE) since the last change */
	int backlog;           /* present when the watcher started */
	int special;           /* not a regular file (a symbolic link, FIFO, ...): taken at once, to be quarantined */
	double linked_since;   /* monotonic time it was first seen with more than one hard link; < 0 while it has one */
	int state;             /* bn_inbox_state */
	double retry_at;       /* monotonic */
	unsigned attempts;     /* failed attempts so far (output errors) */
	int present;           /* scratch for rescans */
} bn_inbox_file;

typedef struct bn_inbox {
	bn_inbox_file *files;
	size_t n, cap;
} bn_inbox;

/* Find name; NULL if not known. */
bn_inbox_file *bn_inbox_find(bn_inbox *in, const char *name);

/*
 * Note what lstat says about name (st == NULL: it is gone, forget it unless
 * running; a folder is forgotten too). now is monotonic. Returns the entry,
 * or NULL (gone, a folder, or out of memory).
 */
bn_inbox_file *bn_inbox_observe(bn_inbox *in, const char *name, const struct stat *st, double now);

/* Forget name (after it was moved away or deleted). */
void bn_inbox_remove(bn_inbox *in, const char *name);

/*
 * Whether f is complete and may be taken now: waiting (or due for retry),
 * and either special (nothing to wait for), moved in, or unchanged for settle seconds of wall-clock mtime
 * age and of observation. writer_open: 1 when some process has the file
 * open for writing, 0 when not, -1 when that cannot be known (then a file
 * found only by a rescan also needs to have been observed unchanged for
 * settle seconds, and closed, moved in or in the backlog).
 */
int bn_inbox_ready(const bn_inbox_file *f, double now_mono, int64_t now_wall_ns, double settle, int writer_open);

/* Backlog order: oldest mtime first, then name. For qsort over bn_inbox_file pointers. */
int bn_inbox_order(const void *a, const void *b);

void bn_inbox_free(bn_inbox *in);

/* 1: a process has path open for writing (a read lease was refused); 0: not; -1: unknown. */
int bn_inbox_writer_open(const char *path);

/* ---- durable file operations ---- */

/* fsync a folder; 0 or -1 with errno. */
int bn_fs_sync_dir(const char *dir);

/* 1 when path itself (a link not followed) is the file st describes: same device and inode. */
int bn_fs_is(const char *path, const struct stat *st);

/*
 * Move src to dst durably: rename (or, across file systems, copy a regular
 * file to a temporary name beside dst, fsync, rename, then unlink src),
 * then fsync both folders. dst is replaced if it exists. With expect, src
 * must be that file before the move and dst after it (otherwise a file that
 * took its place is moved back): BN_EIO "cannot move to 'dst': replaced by
 * another file meanwhile". A symbolic link is never followed. BN_EIO naming
 * the file for other failures.
 */
int bn_fs_move(const char *src, const char *dst, const struct stat *expect, bn_error *err);

/*
 * Remove path durably (unlink, fsync its folder), if it is still the file st
 * describes: BN_EIO "cannot delete: replaced by another file meanwhile"
 * otherwise (a file swapped in between that check and the unlink is not
 * caught). Gone already is BN_OK. BN_EIO naming the file for other failures.
 */
int bn_fs_remove(const char *path, const struct stat *st, bn_error *err);

/*
 * A name in dir for name that does not exist yet: name itself, else
 * "name.1", "name.2", ... (also checking that "<candidate><suffix>" is free
 * when suffix is not NULL). Returns a malloc'ed full path, NULL on ENOMEM.
 */
char *bn_fs_free_name(const char *dir, const char *name, const char *suffix);

/* Remove every ".*.tmp-*" file in dir (stale temporaries of a killed run); the count removed. */
int bn_fs_remove_temporaries(const char *dir);

/* dir + "/" + name, malloc'ed; NULL on ENOMEM. */
char *bn_fs_join(const char *dir, const char *name);

#endif
