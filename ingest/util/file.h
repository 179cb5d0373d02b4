/* file.h - reading a whole (small) file into a reused buffer (vocabularies, manifests, rule files); creating folders. */
#ifndef BN_UTIL_FILE_H
#define BN_UTIL_FILE_H

#include "bidnorm/error.h"
#include "util/buf.h"

/*
 * Replace b's contents with the bytes of path. The spare capacity after
 * them is zero-filled, so vector code (PCRE2 JIT) that looks a few bytes
 * past a token's end reads defined memory. Returns BN_OK, BN_EIO ("cannot
 * open: ..." / "read failed: ..." with err->source = path) or BN_ENOMEM.
 */
int bn_file_read_all(bn_buf *b, const char *path, bn_error *err);

/* dir + "/" + name, without doubling a trailing slash of dir. malloc'ed (caller frees); NULL when out of memory. */
char *bn_path_join(const char *dir, const char *name);

/* mkdir -p with mode 0755 (umask applies). BN_EIO "cannot create folder 'x': ...", BN_ENOMEM. */
int bn_fs_mkdirs(const char *path, bn_error *err);

/* mkdir -p of the folder path is in ("a/b/c.avro" -> "a/b"); nothing for a bare name. As bn_fs_mkdirs. */
int bn_fs_mkdirs_parent(const char *path, bn_error *err);

#endif
