/* file.c - whole-file reads into a bn_buf and folder creation, with errors that name the file. */
#include "util/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int bn_file_read_all(bn_buf *b, const char *path, bn_error *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	b->size = 0;
	if (fd < 0) {
		bn_error_locate(err, path, 0, 0);
		return bn_error_set(err, BN_EIO, "cannot open: %s", strerror(errno));
	}
	for (;;) {
		if (bn_buf_reserve(b, 65536) < 0) {
			close(fd);
			return bn_error_set(err, BN_ENOMEM, "out of memory");
		}
		ssize_t k = read(fd, b->data + b->size, b->cap - b->size);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			int e = errno;
			close(fd);
			bn_error_locate(err, path, 0, 0);
			return bn_error_set(err, BN_EIO, "read failed: %s", strerror(e));
		}
		if (k == 0)
			break;
		b->size += (size_t)k;
	}
	close(fd);
	memset(b->data + b->size, 0, b->cap - b->size);
	return BN_OK;
}

char *bn_path_join(const char *dir, const char *name)
{
	size_t dn = strlen(dir);
	while (dn > 1 && dir[dn - 1] == '/')
		dn--;
	char *p = malloc(dn + strlen(name) + 2);
	if (p)
		sprintf(p, "%.*s/%s", (int)dn, dir, name);
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

int bn_fs_mkdirs_parent(const char *path, bn_error *err)
{
	size_t n = strlen(path);
	int rc;
	while (n > 1 && path[n - 1] == '/')
		n--;
	while (n > 0 && path[n - 1] != '/')
		n--;
	while (n > 1 && path[n - 1] == '/')
		n--;
	if (n == 0 || (n == 1 && path[0] == '/'))
		return BN_OK;
	char *dir = strndup(path, n);
	if (!dir)
		return bn_error_set(err, BN_ENOMEM, "out of memory");
	rc = bn_fs_mkdirs(dir, err);
	free(dir);
	return rc;
}
