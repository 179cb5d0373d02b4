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

bn_inbox_file *bn_inbox_observe(bn_inbox *in, const char *name, const struct stat *st, double now)
{
	bn_inbox_file *f = bn_inbox_find(in, name);
	if (!st || !S_ISREG(st->st_mode)) {
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
		return f;
	}
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
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
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

int bn_fs_mkdirs(const char *path, bn_error *err)
{
	char *p = strdup(path);
	int rc = BN_OK;
	if (!p)
		return bn_error_set(err, BN_ENOMEM, "out of memory");
	for (char *s = p + 1;; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		char c = *s;
		*s = '\0';
		if (mkdir(p, 0755) < 0 && errno != EEXIST) {
			rc = bn_error_set(err, BN_EIO, "cannot create folder '%s': %s", p, strerror(errno));
			break;
		}
		*s = c;
		if (!c)
			break;
	}
	struct stat st;
	if (rc == BN_OK && (stat(path, &st) < 0 || !S_ISDIR(st.st_mode)))
		rc = bn_error_set(err, BN_EIO, "cannot create folder '%s': %s", path,
				  errno ? strerror(errno) : "not a folder");
	free(p);
	return rc;
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

/* Copy src to a temporary beside dst, fsync, rename over dst. For moves across file systems. */
static int copy_file(const char *src, const char *dst, bn_error *err)
{
	bn_outfile out;
	char buf[65536];
	int in = -1, rc;

	in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0) {
		bn_error_locate(err, src, 0, 0);
		return bn_error_set(err, BN_EIO, "cannot open: %s", strerror(errno));
	}
	rc = bn_outfile_open(&out, dst, err);
	if (rc < 0)
		goto cleanup;
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
	close(in);
	return rc;
}

int bn_fs_move(const char *src, const char *dst, bn_error *err)
{
	char *sdir = dir_of(src), *ddir = dir_of(dst);
	int rc = BN_OK;

	if (!sdir || !ddir) {
		rc = bn_error_set(err, BN_ENOMEM, "out of memory");
		goto cleanup;
	}
	if (rename(src, dst) < 0) {
		if (errno != EXDEV) {
			bn_error_locate(err, src, 0, 0);
			rc = bn_error_set(err, BN_EIO, "cannot move to '%s': %s", dst, strerror(errno));
			goto cleanup;
		}
		rc = copy_file(src, dst, err);
		if (rc < 0)
			goto cleanup;
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
