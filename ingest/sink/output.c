/* output.c - atomic publication of output files: temporary name in the same folder, fsync, rename, fsync the folder. */
#include "sink/output.h"
#include "util/file.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FLUSH_AT (256 * 1024)

/*
 * The process's umask, without changing it: umask(2) can only be read by
 * setting it, and two threads doing that at once can leave it at 0 for good
 * (bidnorm watch commits files from several workers). Linux 4.7+ shows it in
 * /proc/self/status; the set-and-restore fallback is for older kernels.
 */
static mode_t current_umask(void)
{
	FILE *f = fopen("/proc/self/status", "re");
	char line[256];
	unsigned mask;
	if (f) {
		while (fgets(line, sizeof(line), f)) {
			if (sscanf(line, "Umask: %o", &mask) == 1) {
				fclose(f);
				return (mode_t)mask & 0777;
			}
		}
		fclose(f);
	}
	mode_t m = umask(077);
	umask(m);
	return m;
}

void bn_outmode_init(bn_outmode *m)
{
	memset(m, 0, sizeof(*m));
	m->bits = 0777;
}

void bn_outmode_add(bn_outmode *m, const struct stat *st)
{
	if (!S_ISREG(st->st_mode))
		return;
	m->bits &= st->st_mode & 0777;
	if (!m->limited) {
		m->gid = st->st_gid;
		m->one_gid = 1;
	} else if (m->gid != st->st_gid) {
		m->one_gid = 0;
	}
	m->limited = 1;
}

mode_t bn_outmode_for(const bn_outmode *m, gid_t out_gid)
{
	mode_t mode = 0666 & ~current_umask();
	if (m && m->limited) {
		mode_t bits = m->bits;
		if (!m->one_gid || m->gid != out_gid)
			bits &= ~(mode_t)070;
		mode &= bits;
	}
	return mode;
}

int bn_write_all(int fd, const void *data, size_t size)
{
	const char *p = data;
	while (size) {
		ssize_t w = write(fd, p, size);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		size -= (size_t)w;
	}
	return 0;
}

/* The folder and base name of path, as separate strings. */
static int split_path(const char *path, char **dir, char **base)
{
	char *a = strdup(path), *b = strdup(path);
	*dir = *base = NULL;
	if (!a || !b) {
		free(a);
		free(b);
		return -1;
	}
	*dir = strdup(dirname(a));
	*base = strdup(basename(b));
	free(a);
	free(b);
	if (!*dir || !*base) {
		free(*dir);
		free(*base);
		/* Callers free both on every path: leave nothing dangling. */
		*dir = *base = NULL;
		return -1;
	}
	return 0;
}

int bn_outfile_open(bn_outfile *f, const char *path, bn_error *err)
{
	char *dir = NULL, *base = NULL;
	int rc = BN_ENOMEM;

	memset(f, 0, sizeof(*f));
	f->fd = -1;
	f->path = strdup(path);
	if (!f->path)
		goto cleanup;
	if (strcmp(path, "-") == 0) {
		f->fd = STDOUT_FILENO;
		return BN_OK;
	}
	/* A device or named pipe (/dev/stdout, a FIFO) cannot be replaced by rename: write to it directly. */
	struct stat st;
	if (stat(path, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
		f->fd = open(path, O_WRONLY | O_CLOEXEC);
		if (f->fd < 0) {
			bn_error_locate(err, path, 0, 0);
			rc = bn_error_set(err, BN_EIO, "cannot open for writing: %s", strerror(errno));
			goto cleanup;
		}
		f->direct = 1;
		return BN_OK;
	}
	if (split_path(path, &dir, &base) < 0)
		goto cleanup;
	size_t n = strlen(dir) + strlen(base) + 32;
	f->tmp_path = malloc(n);
	if (!f->tmp_path)
		goto cleanup;
	snprintf(f->tmp_path, n, "%s/.%s.tmp-XXXXXX", dir, base);
	f->fd = mkstemp(f->tmp_path);
	if (f->fd < 0 && errno == ENOENT) {
		/* A missing output folder is created, as `mkdir -p` would: what a user writing -o out/x.avro expects. */
		rc = bn_fs_mkdirs(dir, err);
		if (rc < 0) {
			bn_error_locate(err, path, 0, 0);
			free(f->tmp_path);
			f->tmp_path = NULL;
			goto cleanup;
		}
		/* mkstemp changed the template's X's when it failed */
		snprintf(f->tmp_path, n, "%s/.%s.tmp-XXXXXX", dir, base);
		f->fd = mkstemp(f->tmp_path);
	}
	if (f->fd < 0) {
		bn_error_locate(err, path, 0, 0);
		rc = bn_error_set(err, BN_EIO, "cannot create output in '%s': %s", dir, strerror(errno));
		free(f->tmp_path);
		f->tmp_path = NULL;
		goto cleanup;
	}
	/* mkstemp makes 0600: nobody else reads a half-written file; the commit sets the final mode. */
	rc = BN_OK;
cleanup:
	free(dir);
	free(base);
	if (rc < 0) {
		if (rc == BN_ENOMEM)
			bn_error_set(err, BN_ENOMEM, "out of memory");
		free(f->path);
		f->path = NULL;
	}
	return rc;
}

static int io_error(bn_outfile *f, bn_error *err, const char *what)
{
	bn_error_locate(err, f->path, 0, 0);
	return bn_error_set(err, BN_EIO, "%s: %s", what, strerror(errno));
}

int bn_outfile_flush(bn_outfile *f, bn_error *err)
{
	if (f->buf.size && bn_write_all(f->fd, f->buf.data, f->buf.size) < 0)
		return io_error(f, err, "write failed");
	f->buf.size = 0;
	return BN_OK;
}

int bn_outfile_write(bn_outfile *f, const void *data, size_t size, bn_error *err)
{
	f->bytes += size;
	if (size >= FLUSH_AT) {
		if (bn_outfile_flush(f, err) < 0)
			return BN_EIO;
		if (bn_write_all(f->fd, data, size) < 0)
			return io_error(f, err, "write failed");
		return BN_OK;
	}
	if (bn_buf_append(&f->buf, data, size) < 0)
		return bn_error_set(err, BN_ENOMEM, "out of memory");
	return f->buf.size >= FLUSH_AT ? bn_outfile_flush(f, err) : BN_OK;
}

static void release(bn_outfile *f)
{
	free(f->path);
	free(f->tmp_path);
	bn_buf_free(&f->buf);
	f->path = f->tmp_path = NULL;
	f->fd = -1;
}

int bn_outfile_commit(bn_outfile *f, bn_error *err)
{
	char *dir = NULL, *base = NULL;
	int rc = bn_outfile_flush(f, err);

	if (rc < 0)
		goto fail;
	if (!f->tmp_path) {
		if (f->direct && close(f->fd) < 0) {
			f->fd = -1;
			rc = io_error(f, err, "close failed");
			goto fail;
		}
		release(f);
		return BN_OK;
	}
	/* Before the rename, so the file never appears under its name more readable than it will be. */
	struct stat st;
	if (fstat(f->fd, &st) < 0 || fchmod(f->fd, bn_outmode_for(f->limit, st.st_gid)) < 0) {
		rc = io_error(f, err, "cannot set the file mode");
		goto fail;
	}
	if (fsync(f->fd) < 0) {
		rc = io_error(f, err, "fsync failed");
		goto fail;
	}
	if (close(f->fd) < 0) {
		f->fd = -1;
		rc = io_error(f, err, "close failed");
		goto fail;
	}
	f->fd = -1;
	if (rename(f->tmp_path, f->path) < 0) {
		rc = io_error(f, err, "cannot rename the temporary file into place");
		goto fail;
	}
	/* The rename is durable only once the folder itself is synced. */
	if (split_path(f->path, &dir, &base) == 0) {
		int dfd = open(dir, O_RDONLY | O_DIRECTORY);
		if (dfd >= 0) {
			fsync(dfd);
			close(dfd);
		}
	}
	free(dir);
	free(base);
	release(f);
	return BN_OK;
fail:
	bn_outfile_abort(f);
	return rc;
}

void bn_outfile_abort(bn_outfile *f)
{
	if (f->tmp_path) {
		if (f->fd >= 0)
			close(f->fd);
		unlink(f->tmp_path);
	} else if (f->direct && f->fd >= 0) {
		close(f->fd);
	}
	release(f);
}
