/* output.h - output files that appear atomically: written under a temporary name, fsynced, renamed into place. */
#ifndef BN_SINK_OUTPUT_H
#define BN_SINK_OUTPUT_H

#include <stddef.h>

#include "bidnorm/error.h"
#include "util/buf.h"

/*
 * bn_outfile_open creates ".<name>.tmp-XXXXXX" in the folder of path (or
 * uses standard output for "-", or writes in place to an existing device or
 * FIFO); bn_outfile_commit fsyncs, closes, renames
 * it to path and fsyncs the folder; bn_outfile_abort removes it. So a reader
 * of path sees either nothing (or the previous file) or the complete file.
 */
typedef struct bn_outfile {
	char *path;       /* final path ("-" for stdout) */
	char *tmp_path;   /* temporary path, NULL for stdout */
	int fd;           /* -1 when closed */
	int direct;       /* 1: an existing device or FIFO, written in place (no rename) */
	bn_buf buf;       /* write buffer (bn_outfile_write) */
	unsigned long long bytes;
} bn_outfile;

int bn_outfile_open(bn_outfile *f, const char *path, bn_error *err);

/* Buffered write; flushes at 256 KiB. BN_EIO "write failed: ..." with the final path as source. */
int bn_outfile_write(bn_outfile *f, const void *data, size_t size, bn_error *err);

/* Write everything buffered to the descriptor. */
int bn_outfile_flush(bn_outfile *f, bn_error *err);

/* Flush, fsync, close and rename into place. After it, the handle is closed either way. */
int bn_outfile_commit(bn_outfile *f, bn_error *err);

/* Close and remove the temporary file. Safe on a closed or never-opened handle (fd -1, paths NULL). */
void bn_outfile_abort(bn_outfile *f);

/* Write all of data to fd (retrying short writes and EINTR). 0 or -1 with errno. */
int bn_write_all(int fd, const void *data, size_t size);

#endif
