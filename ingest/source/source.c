/* source.c - streaming reader of raw logs: detects zstd by its magic, decompresses, splits lines and repairs UTF-8. */
#include "bidnorm/source.h"
#include "source/utf8_repair.h"
#include "util/buf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#define DEFAULT_MAX_LINE ((size_t)1 << 20)
#define DEFAULT_PREFIX ((size_t)1024)
/* Bytes decoded or read per step: small enough that the lines are still in
 * cache when split, large enough to keep zstd and read() efficient. */
#define CHUNK ((size_t)128 << 10)
#define IN_CHUNK ((size_t)128 << 10)

enum { MODE_UNKNOWN, MODE_PLAIN, MODE_ZSTD };

struct bn_source {
	char *name;
	int fd;			/* -1 when reading memory */
	int own_fd;
	int mode;
	size_t max_line;
	size_t prefix_len;

	/* Compressed input (zstd) or the first bytes, read for detection. */
	unsigned char *inbuf;
	const unsigned char *in;
	size_t in_size, in_pos;
	int in_eof;
	ZSTD_DStream *zds;
	size_t zret;		/* last ZSTD_decompressStream result: 0 at a frame boundary */
	unsigned char magic[4];	/* first bytes of the current frame, to tell skippable ones */
	size_t magic_len;
	uint64_t frame_start;	/* input byte offset where the current zstd frame begins */

	/*
	 * Decoded bytes. win[start..end) is not yet handed out, win[scan..end)
	 * not yet searched for LF; base is the decoded offset of win[0]. win is
	 * wbuf, except for plain memory input where it is the caller's data.
	 */
	char *wbuf;
	size_t wcap;
	const char *win;
	size_t start, scan, end;
	uint64_t base;
	int eof;		/* no decoded bytes will follow win[end) */

	bn_buf repair;
	char *prefix;		/* the kept start of an over-long line */
	uint64_t line_no;
	int failed;		/* status of the error that ended reading, 0 if none */
	bn_source_stats stats;
};

static int set_error(bn_error *err, const char *name, int code, uint64_t offset, int has_offset,
		     const char *fmt, const char *arg)
{
	bn_error_clear(err);
	bn_error_set(err, code, fmt, arg);
	bn_error_locate(err, name, 0, 0);
	if (err) {
		err->offset = offset;
		err->has_offset = has_offset;
	}
	return code;
}

static int is_zstd_magic(const unsigned char *p, size_t n)
{
	uint32_t m;

	if (n < 4)
		return 0;
	m = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
	return m == ZSTD_MAGICNUMBER || (m & ZSTD_MAGIC_SKIPPABLE_MASK) == ZSTD_MAGIC_SKIPPABLE_START;
}

static int is_skippable_magic(const unsigned char *p)
{
	uint32_t m = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;

	return (m & ZSTD_MAGIC_SKIPPABLE_MASK) == ZSTD_MAGIC_SKIPPABLE_START;
}

/* read() that retries on EINTR; counts what it got. Returns bytes, 0 at EOF, -1 with errno. */
static ssize_t read_some(bn_source *src, void *buf, size_t size)
{
	ssize_t n;

	do {
		n = read(src->fd, buf, size);
	} while (n < 0 && errno == EINTR);
	if (n > 0)
		src->stats.bytes_read += (uint64_t)n;
	return n;
}

static int read_error(bn_source *src, bn_error *err, int errnum)
{
	return set_error(err, src->name, BN_EIO, 0, 0, "read failed: %s", strerror(errnum));
}

static int start_zstd(bn_source *src, bn_error *err)
{
	src->zds = ZSTD_createDStream();
	if (!src->zds)
		return set_error(err, src->name, BN_ENOMEM, 0, 0, "%s", "out of memory creating the zstd decoder");
	ZSTD_initDStream(src->zds);
	src->mode = MODE_ZSTD;
	src->zret = 1;		/* inside the first frame: its magic is there */
	return 0;
}

/* Decide plain or zstd from the first four bytes of a descriptor, reading at most one chunk. */
static int detect(bn_source *src, bn_error *err)
{
	ssize_t n;

	while (src->in_size < 4 && !src->in_eof) {
		n = read_some(src, src->inbuf + src->in_size, IN_CHUNK - src->in_size);
		if (n < 0)
			return read_error(src, err, errno);
		if (n == 0)
			src->in_eof = 1;
		src->in_size += (size_t)n;
	}
	if (is_zstd_magic(src->inbuf, src->in_size))
		return start_zstd(src, err);
	/* Plain: the bytes read so far are text; later reads go straight to the window. */
	src->mode = MODE_PLAIN;
	memcpy(src->wbuf, src->inbuf, src->in_size);
	src->end = src->in_size;
	src->stats.bytes_decoded += src->in_size;
	src->eof = src->in_eof;
	return 0;
}

/* Move the unread partial line to the front when less than a chunk is free. */
static void make_room(bn_source *src)
{
	size_t keep = src->end - src->start;

	if (src->wcap - src->end >= CHUNK)
		return;
	if (keep)
		memmove(src->wbuf, src->wbuf + src->start, keep);
	src->base += src->start;
	src->scan -= src->start;
	src->end = keep;
	src->start = 0;
}

static int fill_plain(bn_source *src, bn_error *err)
{
	size_t room = src->wcap - src->end;
	ssize_t n = read_some(src, src->wbuf + src->end, room < CHUNK ? room : CHUNK);

	if (n < 0)
		return read_error(src, err, errno);
	if (n == 0)
		src->eof = 1;
	src->end += (size_t)n;
	src->stats.bytes_decoded += (uint64_t)n;
	return 0;
}

static int fill_zstd(bn_source *src, bn_error *err)
{
	ZSTD_inBuffer ib;
	ZSTD_outBuffer ob;
	size_t in_before, used, take, r;
	ssize_t n;
	int at_eof;

	for (;;) {
		if (src->in_pos == src->in_size && !src->in_eof) {
			n = read_some(src, src->inbuf, IN_CHUNK);
			if (n < 0)
				return read_error(src, err, errno);
			src->in_eof = n == 0;
			src->in_size = (size_t)n;
			src->in_pos = 0;
			continue;
		}
		at_eof = src->in_pos == src->in_size;
		if (at_eof && src->zret == 0) {
			src->eof = 1;
			return 0;
		}
		/* zstd leaves pos alone on error, so the offset it lets us
		 * report is the start of the failing call's input: feed memory
		 * in read-sized slices to make that as precise as for a file. */
		ib.src = src->in;
		ib.size = src->in_size - src->in_pos > IN_CHUNK ? src->in_pos + IN_CHUNK : src->in_size;
		ib.pos = src->in_pos;
		ob.dst = src->wbuf;
		ob.size = src->wcap - src->end < CHUNK ? src->wcap : src->end + CHUNK;
		ob.pos = src->end;
		in_before = src->in_pos;
		r = ZSTD_decompressStream(src->zds, &ob, &ib);
		src->in_pos = ib.pos;
		if (ZSTD_isError(r)) {
			/* Where in the frame zstd found the fault it does not tell (a bad checksum is found
			 * at the frame's end): the frame's start is exact, and all before it was good. */
			uint64_t off = src->frame_start;
			bn_error_clear(err);
			bn_error_set(err, BN_ECORRUPT, "corrupt zstd input in the frame starting at byte offset %llu: %s",
				     (unsigned long long)off, ZSTD_getErrorName(r));
			bn_error_locate(err, src->name, 0, 0);
			if (err) {
				err->offset = off;
				err->has_offset = 1;
			}
			return BN_ECORRUPT;
		}
		/* zstd stops at each frame end, so the bytes a call consumes
		 * belong to one frame: its first four tell a skippable one. */
		used = ib.pos - in_before;
		if (src->magic_len < 4 && used) {
			take = 4 - src->magic_len < used ? 4 - src->magic_len : used;
			memcpy(src->magic + src->magic_len, src->in + in_before, take);
			src->magic_len += take;
		}
		src->zret = r;
		if (r == 0) {
			if (src->magic_len < 4 || !is_skippable_magic(src->magic))
				src->stats.frames++;
			src->magic_len = 0;
			src->frame_start = src->stats.bytes_read - (src->in_size - src->in_pos);
		}
		if (ob.pos > src->end) {
			src->stats.bytes_decoded += ob.pos - src->end;
			src->end = ob.pos;
			return 0;
		}
		if (at_eof && r != 0) {
			bn_error_clear(err);
			bn_error_set(err, BN_ECORRUPT,
				     "truncated zstd input: ends at byte offset %llu inside the frame starting at byte offset %llu",
				     (unsigned long long)src->stats.bytes_read, (unsigned long long)src->frame_start);
			bn_error_locate(err, src->name, 0, 0);
			if (err) {
				err->offset = src->stats.bytes_read;
				err->has_offset = 1;
			}
			return BN_ECORRUPT;
		}
	}
}

/* Add decoded bytes after win[end), or set eof. */
static int fill(bn_source *src, bn_error *err)
{
	make_room(src);
	if (src->mode == MODE_ZSTD)
		return fill_zstd(src, err);
	return fill_plain(src, err);
}

static int is_blank(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t')
			return 0;
	return 1;
}

static void count_too_long(bn_source *src, bn_line *line, const char *data, uint64_t offset, uint64_t raw)
{
	line->data = data;
	line->size = src->prefix_len;
	line->number = src->line_no;
	line->offset = offset;
	line->raw_size = raw;
	line->repaired_bytes = 0;
	line->too_long = 1;
	src->stats.lines++;
	src->stats.too_long_lines++;
}

/*
 * Hand out win[s..e), a whole line without its LF. Returns 1 when *line is
 * filled, 0 for a blank line, BN_ENOMEM.
 */
static int emit(bn_source *src, bn_line *line, size_t s, size_t e, bn_error *err)
{
	const char *p = src->win + s;
	size_t raw = e - s, valid, replaced = 0;

	src->line_no++;
	if (raw && p[raw - 1] == '\r')
		raw--;
	if (raw > src->max_line) {
		count_too_long(src, line, p, src->base + s, raw);
		return 1;
	}
	if (!raw || ((p[0] == ' ' || p[0] == '\t') && is_blank(p, raw))) {
		src->stats.blank_lines++;
		return 0;
	}
	line->data = p;
	line->size = raw;
	valid = bn_utf8_valid_prefix(p, raw);
	if (valid < raw) {
		bn_buf_reset(&src->repair);
		if (bn_buf_reserve(&src->repair, BN_UTF8_REPAIR_MAX(raw)) < 0)
			return set_error(err, src->name, BN_ENOMEM, 0, 0, "%s", "out of memory repairing UTF-8");
		memcpy(src->repair.data, p, valid);
		line->size = valid + bn_utf8_repair(src->repair.data + valid, &replaced, p + valid, raw - valid);
		line->data = src->repair.data;
	}
	line->number = src->line_no;
	line->offset = src->base + s;
	line->raw_size = raw;
	line->repaired_bytes = replaced;
	line->too_long = 0;
	src->stats.lines++;
	src->stats.repaired_bytes += replaced;
	return 1;
}

/*
 * The unterminated line at win[start..end) is already over the limit: keep
 * its prefix, then drop bytes up to the next LF (or the end), counting them.
 */
static int skip_long_line(bn_source *src, bn_line *line, bn_error *err)
{
	uint64_t offset = src->base + src->start;
	uint64_t count = src->end - src->start;
	char last = src->win[src->end - 1];
	const char *nl;
	size_t k;
	int rc;

	src->line_no++;
	memcpy(src->prefix, src->win + src->start, src->prefix_len);
	for (;;) {
		src->base += src->end;
		src->start = src->scan = src->end = 0;
		if (src->eof)
			break;
		rc = fill(src, err);
		if (rc < 0)
			return rc;
		nl = memchr(src->win, '\n', src->end);
		if (nl) {
			k = (size_t)(nl - src->win);
			count += k;
			if (k)
				last = src->win[k - 1];
			src->start = src->scan = k + 1;
			break;
		}
		count += src->end;
		if (src->end)
			last = src->win[src->end - 1];
	}
	count_too_long(src, line, src->prefix, offset, count - (last == '\r'));
	return 1;
}

int bn_source_next(bn_source *src, bn_line *line, bn_error *err)
{
	const char *nl;
	size_t e;
	int rc;

	if (!src || !line)
		return bn_error_set(err, BN_EUSAGE, "bn_source_next: NULL argument");
	if (src->failed)
		return set_error(err, src->name, src->failed, 0, 0, "%s", "read again after an earlier error");
	if (src->mode == MODE_UNKNOWN) {
		rc = detect(src, err);
		if (rc < 0)
			goto fail;
	}
	for (;;) {
		nl = memchr(src->win + src->scan, '\n', src->end - src->scan);
		if (nl) {
			e = (size_t)(nl - src->win);
			rc = emit(src, line, src->start, e, err);
			src->start = src->scan = e + 1;
			if (rc < 0)
				goto fail;
			if (rc)
				return 1;
			continue;
		}
		src->scan = src->end;
		/* One byte beyond the limit may still be the CR of a CRLF. */
		if (src->end - src->start > src->max_line + 1) {
			rc = skip_long_line(src, line, err);
			if (rc < 0)
				goto fail;
			return 1;
		}
		if (src->eof) {
			if (src->start == src->end)
				return 0;
			e = src->end;
			rc = emit(src, line, src->start, e, err);
			src->start = src->scan = e;
			if (rc < 0)
				goto fail;
			if (rc)
				return 1;
			continue;
		}
		rc = fill(src, err);
		if (rc < 0)
			goto fail;
	}
fail:
	src->failed = rc;
	return rc;
}

static int source_new(bn_source **out, int fd, const void *mem, size_t mem_size, const char *name,
		      const bn_source_options *opts, bn_error *err)
{
	bn_source *src = NULL;
	size_t max_line = opts && opts->max_line_bytes ? opts->max_line_bytes : DEFAULT_MAX_LINE;
	size_t prefix = opts && opts->too_long_prefix ? opts->too_long_prefix : DEFAULT_PREFIX;
	int rc = BN_ENOMEM;

	/* The window and the repair buffer are sized from the limit. */
	if (max_line > SIZE_MAX / 4 - CHUNK) {
		bn_error_clear(err);
		return bn_error_set(err, BN_EUSAGE, "max_line_bytes too large: %zu", max_line);
	}
	src = calloc(1, sizeof(*src));
	if (!src)
		goto nomem;
	src->fd = fd;
	src->max_line = max_line;
	/* Never more than the limit, so the prefix is always buffered when a line proves too long. */
	src->prefix_len = prefix < max_line ? prefix : max_line;
	src->name = strdup(name);
	src->prefix = malloc(src->prefix_len);
	if (!src->name || !src->prefix)
		goto nomem;

	if (fd < 0 && !is_zstd_magic(mem, mem_size)) {
		/* Plain memory is split in place: nothing to copy or read. */
		src->mode = MODE_PLAIN;
		src->win = mem_size ? mem : "";
		src->end = mem_size;
		src->eof = 1;
		src->stats.bytes_read = mem_size;
		src->stats.bytes_decoded = mem_size;
		*out = src;
		return 0;
	}
	src->wcap = max_line + 2 + CHUNK;
	src->wbuf = malloc(src->wcap);
	if (!src->wbuf)
		goto nomem;
	src->win = src->wbuf;
	if (fd < 0) {
		src->in = mem;
		src->in_size = mem_size;
		src->in_eof = 1;
		src->stats.bytes_read = mem_size;
		rc = start_zstd(src, err);
		if (rc < 0)
			goto cleanup;
	} else {
		src->inbuf = malloc(IN_CHUNK);
		if (!src->inbuf)
			goto nomem;
		src->in = src->inbuf;
	}
	*out = src;
	return 0;
nomem:
	rc = set_error(err, name, BN_ENOMEM, 0, 0, "%s", "out of memory opening the input");
cleanup:
	bn_source_free(src);
	return rc;
}

static int open_descriptor(bn_source **out, int fd, int own_fd, const char *name,
			   const bn_source_options *opts, bn_error *err)
{
	struct stat st;
	int rc;

	if (fstat(fd, &st) < 0)
		return set_error(err, name, BN_EIO, 0, 0, "cannot open: %s", strerror(errno));
	/* open() accepts a directory; say so now rather than at the first read. */
	if (S_ISDIR(st.st_mode))
		return set_error(err, name, BN_EIO, 0, 0, "cannot read: %s", strerror(EISDIR));
	if (S_ISREG(st.st_mode))
		posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	rc = source_new(out, fd, NULL, 0, name, opts, err);
	if (rc == 0)
		(*out)->own_fd = own_fd;
	return rc;
}

int bn_source_open_file(bn_source **out, const char *path, const bn_source_options *opts, bn_error *err)
{
	int fd, rc;

	if (!out || !path)
		return bn_error_set(err, BN_EUSAGE, "bn_source_open_file: NULL argument");
	if (strcmp(path, "-") == 0)
		return open_descriptor(out, STDIN_FILENO, 0, "<stdin>", opts, err);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return set_error(err, path, BN_EIO, 0, 0, "cannot open: %s", strerror(errno));
	rc = open_descriptor(out, fd, 1, path, opts, err);
	if (rc < 0)
		close(fd);
	return rc;
}

int bn_source_open_fd(bn_source **out, int fd, const char *name, const bn_source_options *opts, bn_error *err)
{
	char fallback[32];

	if (!out || fd < 0)
		return bn_error_set(err, BN_EUSAGE, "bn_source_open_fd: invalid argument");
	if (!name) {
		snprintf(fallback, sizeof(fallback), "<fd %d>", fd);
		name = fallback;
	}
	return open_descriptor(out, fd, 0, name, opts, err);
}

int bn_source_open_memory(bn_source **out, const void *data, size_t size, const char *name,
			  const bn_source_options *opts, bn_error *err)
{
	if (!out || (!data && size))
		return bn_error_set(err, BN_EUSAGE, "bn_source_open_memory: invalid argument");
	return source_new(out, -1, data, size, name ? name : "<memory>", opts, err);
}

void bn_source_get_stats(const bn_source *src, bn_source_stats *out)
{
	if (!out)
		return;
	if (!src) {
		memset(out, 0, sizeof(*out));
		return;
	}
	*out = src->stats;
	out->compressed = src->mode == MODE_ZSTD;
}

const char *bn_source_name(const bn_source *src)
{
	return src ? src->name : "";
}

void bn_source_free(bn_source *src)
{
	if (!src)
		return;
	if (src->own_fd && src->fd >= 0)
		close(src->fd);
	ZSTD_freeDStream(src->zds);
	bn_buf_free(&src->repair);
	free(src->inbuf);
	free(src->wbuf);
	free(src->prefix);
	free(src->name);
	free(src);
}
