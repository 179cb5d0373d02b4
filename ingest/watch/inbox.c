/* inbox.c - which inbox files are wanted and complete, in what order; durable moves, folder syncs, stale temporaries. */
#include "watch/inbox.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bidnorm/watch.h"
#include "sink/output.h"

/* Every format the source reads: plain, zstd, gzip. */
static const char *const default_include[] = { "*.jsonl", "*.jsonl.zst", "*.jsonl.gz", "*.json", "*.zst", "*.gz" };

static int ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && strcmp(s + n - m, suffix) == 0;
}

size_t bn_watch_stem(char *out, size_t size, const char *name)
{
	static const char *const exts[] = { ".jsonl.zst", ".jsonl.gz", ".jsonl", ".zst", ".gz", ".json" };
	size_t n = strlen(name);
	for (size_t i = 0; i < sizeof(exts) / sizeof(exts[0]); i++) {
		size_t m = strlen(exts[i]);
		/* "x.jsonl" -> "x", but ".jsonl" alone keeps its name (it would be a dot-file anyway). */
		if (n > m && ends_with(name, exts[i])) {
			n -= m;
			break;
		}
	}
	if (size) {
		size_t c = n < size - 1 ? n : size - 1;
		memcpy(out, name, c);
		out[c] = '\0';
	}
	return n;
}

int bn_watch_name_wanted(const char *name, const char *const *include, size_t ninclude)
{
	if (!name[0] || name[0] == '.' || ends_with(name, ".tmp") || ends_with(name, ".part"))
		return 0;
	if (!include) {
		include = default_include;
		ninclude = sizeof(default_include) / sizeof(default_include[0]);
	}
	for (size_t i = 0; i < ninclude; i++)
		if (fnmatch(include[i], name, FNM_PERIOD) == 0)
			return 1;
	return 0;
}

bn_inbox_file *bn_inbox_find(bn_inbox *in, const char *name)
{
	for (size_t i = 0; i < in->n; i++)
		if (strcmp(in->files[i].name, name) == 0)
			return &in->files[i];
	return NULL;
}

void bn_inbox_remove(bn_inbox *in, const char *name)
{
	for (size_t i = 0; i < in->n; i++) {
		if (strcmp(in->files[i].name, name) == 0) {
			free(in->files[i].name);
			in->files[i] = in->files[--in->n];
			return;
		}
	}
}

/* A publisher's link() then unlink() passes through two links: the count is timed from when it was first seen. */
static void note_links(bn_inbox_file *f, const struct stat *st, double now)
{
	if (!S_ISREG(st->st_mode) || st->st_nlink <= 1)
		f->linked_since = -1;
	else if (f->linked_since < 0)
		f->linked_since = now;
}

bn_inbox_file *bn_inbox_observe(bn_inbox *in, const char *name, const struct stat *st, double now)
{
	bn_inbox_file *f = bn_inbox_find(in, name);
	if (!st || S_ISDIR(st->st_mode)) {
		if (f && f->state != BN_INBOX_RUNNING)
			bn_inbox_remove(in, name);
		return NULL;
	}
	int64_t mtime = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
	if (!f) {
		if (in->n == in->cap) {
			size_t cap = in->cap ? in->cap * 2 : 64;
			bn_inbox_file *p = realloc(in->files, cap * sizeof(*p));
			if (!p)
				return NULL;
			in->files = p;
			in->cap = cap;
		}
		f = &in->files[in->n];
		memset(f, 0, sizeof(*f));
		f->name = strdup(name);
		if (!f->name)
			return NULL;
		in->n++;
		f->size = (uint64_t)st->st_size;
		f->mtime_ns = mtime;
		f->seen_change = now;
		f->special = !S_ISREG(st->st_mode);
		f->linked_since = -1;
		note_links(f, st, now);
		return f;
	}
	f->special = !S_ISREG(st->st_mode);
	note_links(f, st, now);
	if (f->size != (uint64_t)st->st_size || f->mtime_ns != mtime) {
		/* Changed since we last looked: whatever made it look complete no longer holds. */
		f->size = (uint64_t)st->st_size;
		f->mtime_ns = mtime;
		f->seen_change = now;
		f->moved_in = 0;
		f->closed = 0;
	}
	return f;
}

int bn_inbox_ready(const bn_inbox_file *f, double now_mono, int64_t now_wall_ns, double settle, int writer_open)
{
	if (f->state == BN_INBOX_RUNNING)
		return 0;
	if (f->state == BN_INBOX_RETRY && now_mono < f->retry_at)
		return 0;
	if (f->special)
		return 1;
	if (writer_open == 1)
		return 0;
	if (f->moved_in)
		return 1;
	if ((double)(now_wall_ns - f->mtime_ns) / 1e9 < settle)
		return 0;
	if (writer_open == 0 || f->closed)
		return 1;
	/* Found by a rescan and we cannot tell whether a writer still has it open: watch it stay unchanged. */
	return now_mono - f->seen_change >= settle;
}

int bn_inbox_order(const void *a, const void *b)
{
	const bn_inbox_file *x = *(const bn_inbox_file *const *)a, *y = *(const bn_inbox_file *const *)b;
	if (x->mtime_ns != y->mtime_ns)
		return x->mtime_ns < y->mtime_ns ? -1 : 1;
	return strcmp(x->name, y->name);
}

void bn_inbox_free(bn_inbox *in)
{
	if (!in)
		return;
	for (size_t i = 0; i < in->n; i++)
		free(in->files[i].name);
	free(in->files);
	in->files = NULL;
	in->n = in->cap = 0;
}

int bn_inbox_writer_open(const char *path)
{
	/* A read lease is refused with EAGAIN exactly when someone has the file open for writing. */
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
	int rc = -1;
	if (fd < 0)
		return -1;
	if (fcntl(fd, F_SETLEASE, F_RDLCK) == 0) {
		fcntl(fd, F_SETLEASE, F_UNLCK);
		rc = 0;
	} else if (errno == EAGAIN) {
		rc = 1;
	}
	close(fd);
	return rc;
}

/* ---- durable file operations ---- */

char *bn_fs_join(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *p = malloc(n);
	if (p)
		snprintf(p, n, "%s/%s", dir, name);
	return p;
}

int bn_fs_sync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = fsync(fd);
	int e = errno;
	close(fd);
	errno = e;
	return rc;
}

static char *dir_of(const char *path)
{
	char *a = strdup(path);
	char *d = a ? strdup(dirname(a)) : NULL;
	free(a);
	return d;
}

int bn_fs_is(const char *path, const struct stat *st)
{
	struct stat now;
	return lstat(path, &now) == 0 && now.st_dev == st->st_dev && now.st_ino == st->st_ino;
}

static int replaced(const char *src, const char *dst, bn_error *err)
{
	bn_error_locate(err, src, 0, 0);
	return bn_error_set(err, BN_EIO, "cannot move to '%s': replaced by another file meanwhile", dst);
}

/*
 * Copy the regular file src to a temporary beside dst, fsync, rename over
 * dst: for moves across file systems. The copy is no more readable than src.
 */
static int copy_file(const char *src, const char *dst, const struct stat *expect, bn_error *err)
{
	bn_outfile out;
	bn_outmode mode;
	struct stat st;
	char buf[65536];
	int in = -1, rc;

	in = open(src, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW | O_NONBLOCK);
	if (in < 0 || fstat(in, &st) < 0) {
		bn_error_locate(err, src, 0, 0);
		rc = bn_error_set(err, BN_EIO, "cannot open: %s", strerror(errno));
		goto cleanup;
	}
	if (!S_ISREG(st.st_mode)) {
		bn_error_locate(err, src, 0, 0);
		rc = bn_error_set(err, BN_EIO, "cannot move to '%s': not a regular file, and on another file system",
				  dst);
		goto cleanup;
	}
	if (expect && (st.st_dev != expect->st_dev || st.st_ino != expect->st_ino)) {
		rc = replaced(src, dst, err);
		goto cleanup;
	}
	fcntl(in, F_SETFL, fcntl(in, F_GETFL) & ~O_NONBLOCK);
	bn_outmode_init(&mode);
	bn_outmode_add(&mode, &st);
	rc = bn_outfile_open(&out, dst, err);
	if (rc < 0)
		goto cleanup;
	out.limit = &mode;
	for (;;) {
		ssize_t r = read(in, buf, sizeof(buf));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			bn_error_locate(err, src, 0, 0);
			rc = bn_error_set(err, BN_EIO, "read failed: %s", strerror(errno));
			break;
		}
		if (r == 0)
			break;
		rc = bn_outfile_write(&out, buf, (size_t)r, err);
		if (rc < 0)
			break;
	}
	if (rc == BN_OK)
		rc = bn_outfile_commit(&out, err);
	else
		bn_outfile_abort(&out);
cleanup:
	if (in >= 0)
		close(in);
	return rc;
}

int bn_fs_move(const char *src, const char *dst, const struct stat *expect, bn_error *err)
{
	char *sdir = dir_of(src), *ddir = dir_of(dst);
	int rc = BN_OK;

	if (!sdir || !ddir) {
		rc = bn_error_set(err, BN_ENOMEM, "out of memory");
		goto cleanup;
	}
	if (expect && !bn_fs_is(src, expect)) {
		rc = replaced(src, dst, err);
		goto cleanup;
	}
	if (rename(src, dst) == 0) {
		if (expect && !bn_fs_is(dst, expect)) {
			/* Swapped in between the check and the rename: give the newcomer back (it is an input too). */
			renameat2(AT_FDCWD, dst, AT_FDCWD, src, RENAME_NOREPLACE);
			rc = replaced(src, dst, err);
			goto cleanup;
		}
	} else if (errno != EXDEV) {
		bn_error_locate(err, src, 0, 0);
		rc = bn_error_set(err, BN_EIO, "cannot move to '%s': %s", dst, strerror(errno));
		goto cleanup;
	} else {
		rc = copy_file(src, dst, expect, err);
		if (rc < 0)
			goto cleanup;
		/* Not covered: a file swapped in between this check and the unlink is removed. */
		if (expect && !bn_fs_is(src, expect)) {
			rc = replaced(src, dst, err);
			goto cleanup;
		}
		if (unlink(src) < 0 && errno != ENOENT) {
			bn_error_locate(err, src, 0, 0);
			rc = bn_error_set(err, BN_EIO, "cannot remove after copying: %s", strerror(errno));
			goto cleanup;
		}
	}
	/* The move is durable only once both folders are: the new entry first, then the removal. */
	if (bn_fs_sync_dir(ddir) < 0 || bn_fs_sync_dir(sdir) < 0) {
		bn_error_locate(err, dst, 0, 0);
		rc = bn_error_set(err, BN_EIO, "fsync of the folder failed: %s", strerror(errno));
	}
cleanup:
	free(sdir);
	free(ddir);
	return rc;
}

int bn_fs_remove(const char *path, const struct stat *st, bn_error *err)
{
	char *dir = dir_of(path);
	int rc = BN_OK;

	if (!dir)
		return bn_error_set(err, BN_ENOMEM, "out of memory");
	if (access(path, F_OK) < 0 && errno == ENOENT)
		goto cleanup;
	if (!bn_fs_is(path, st))
		rc = bn_error_set(err, BN_EIO, "cannot delete: replaced by another file meanwhile");
	else if (unlink(path) < 0 && errno != ENOENT)
		rc = bn_error_set(err, BN_EIO, "cannot delete: %s", strerror(errno));
	else if (bn_fs_sync_dir(dir) < 0)
		rc = bn_error_set(err, BN_EIO, "fsync of the folder failed: %s", strerror(errno));
	if (rc < 0)
		bn_error_locate(err, path, 0, 0);
cleanup:
	free(dir);
	return rc;
}

static int exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

char *bn_fs_free_name(const char *dir, const char *name, const char *suffix)
{
	size_t n = strlen(dir) + strlen(name) + (suffix ? strlen(suffix) : 0) + 32;
	char *p = malloc(n), *q = malloc(n);
	if (!p || !q)
		goto fail;
	for (unsigned i = 0;; i++) {
		if (i == 0)
			snprintf(p, n, "%s/%s", dir, name);
		else
			snprintf(p, n, "%s/%s.%u", dir, name, i);
		snprintf(q, n, "%s%s", p, suffix ? suffix : "");
		if (!exists(p) && (!suffix || !exists(q)))
			break;
	}
	free(q);
	return p;
fail:
	free(p);
	free(q);
	return NULL;
}

int bn_fs_remove_temporaries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int removed = 0;
	if (!d)
		return 0;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] != '.' || !strstr(e->d_name, ".tmp-"))
			continue;
		if (unlinkat(dirfd(d), e->d_name, 0) == 0)
			removed++;
	}
	closedir(d);
	if (removed)
		bn_fs_sync_dir(dir);
	return removed;
}
