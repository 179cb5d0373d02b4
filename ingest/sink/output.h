/* output.h - output files that appear atomically: written under a temporary name, fsynced, renamed into place. */
#ifndef BN_SINK_OUTPUT_H
#define BN_SINK_OUTPUT_H

#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "bidnorm/error.h"
#include "util/buf.h"

/*
 * Outputs are never more readable than their inputs: bn_outmode collects the
 * permission bits of the regular files an output is made from, and an
 * output's mode is 0666 less the umask less every bit some input lacks. The
 * group bits of an input count only when the output has the input's group
 * (the same bits name other people otherwise), so they are dropped when the
 * inputs have different groups or the output another group. Standard input,
 * pipes and devices restrict nothing: their modes say nothing about the data.
 */
typedef struct bn_outmode {
	int limited;     /* some regular input was added */
	mode_t bits;     /* AND of the inputs' permission bits (0777 before the first) */
	gid_t gid;       /* the inputs' group, when one_gid */
	int one_gid;     /* every input added so far has group gid */
} bn_outmode;

/* An empty limit: outputs get 0666 less the umask. */
void bn_outmode_init(bn_outmode *m);

/* Restrict m by the file st describes (nothing when it is not a regular file). */
void bn_outmode_add(bn_outmode *m, const struct stat *st);

/* The mode an output with group out_gid gets under m (NULL: no input restricts it). */
mode_t bn_outmode_for(const bn_outmode *m, gid_t out_gid);

/*
 * bn_outfile_open creates ".<name>.tmp-XXXXXX" in the folder of path (or
 * uses standard output for "-", or writes in place to an existing device or
 * FIFO); bn_outfile_commit fsyncs, closes, renames
 * it to path and fsyncs the folder; bn_outfile_abort removes it. So a reader
 * of path sees either nothing (or the previous file) or the complete file.
 * The temporary file is 0600 while it is written; the commit gives it
 * bn_outmode_for(limit) (set limit before the commit; NULL = the umask only).
 */
typedef struct bn_outfile {
	char *path;       /* final path ("-" for stdout) */
	char *tmp_path;   /* temporary path, NULL for stdout */
	int fd;           /* -1 when closed */
	int direct;       /* 1: an existing device or FIFO, written in place (no rename) */
	bn_buf buf;       /* write buffer (bn_outfile_write) */
	const bn_outmode *limit;  /* not owned; NULL = 0666 less the umask */
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
