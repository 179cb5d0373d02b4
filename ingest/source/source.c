/* source.c - streaming reader of raw logs: detects zstd or gzip by its magic, decompresses, splits lines and repairs UTF-8. */
#include "bidnorm/source.h"
#include "source/sniff.h"
#include "source/utf8_repair.h"
#include "util/buf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#define DEFAULT_MAX_LINE ((size_t)1 << 20)
#define DEFAULT_PREFIX ((size_t)1024)
#define DEFAULT_STDIN_COMMAND "bidnorm ingest -"
/* Bytes decoded or read per step: small enough that the lines are still in
 * cache when split, large enough to keep zstd and read() efficient. */
#define CHUNK ((size_t)128 << 10)
#define IN_CHUNK ((size_t)128 << 10)

enum { MODE_UNKNOWN, MODE_PLAIN, MODE_ZSTD, MODE_GZIP, MODE_REFUSED };

struct bn_source {
	char *name;
	char *path;		/* the file name when opened by one, for advice; NULL otherwise */
	char *stdin_command;
	int fd;			/* -1 when reading memory */
	int own_fd;
	int mode;
	size_t max_line;
	size_t prefix_len;

	/* Compressed input or the first bytes, read for detection. */
	unsigned char *inbuf;
	const unsigned char *in;
	size_t in_size, in_pos;
	int in_eof;
	ZSTD_DStream *zds;
	size_t zret;		/* last ZSTD_decompressStream result: 0 at a frame boundary */
	unsigned char magic[4];	/* first bytes of the current frame, to tell skippable ones */
	size_t magic_len;
	uint64_t frame_start;	/* input byte offset where the current zstd frame or gzip member begins */
	z_stream gz;		/* inflate state once gzip_ready */
	int gzip_ready;
	int between_members;	/* gzip: the last member ended, the next has not begun */
	const bn_refused_format *refused;

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

static int start_gzip(bn_source *src, bn_error *err)
{
	/* 16 + MAX_WBITS: a gzip wrapper only, with the largest window; memory stays at about 40 KiB. */
	int r = inflateInit2(&src->gz, 16 + MAX_WBITS);

	if (r != Z_OK)
		return set_error(err, src->name, r == Z_MEM_ERROR ? BN_ENOMEM : BN_EINTERNAL, 0, 0, "%s",
				 r == Z_MEM_ERROR ? "out of memory creating the gzip decoder" : "cannot create the gzip decoder");
	src->gzip_ready = 1;
	src->mode = MODE_GZIP;
	return 0;
}

/* Start reading the format the first bytes of the compressed input name (plain is handled by the callers). */
static int start_compressed(bn_source *src, int format, const bn_refused_format *refused, bn_error *err)
{
	if (format == BN_SNIFF_ZSTD)
		return start_zstd(src, err);
	if (format == BN_SNIFF_GZIP)
		return start_gzip(src, err);
	/* Refused: bn_source_next says so before a single line. */
	src->mode = MODE_REFUSED;
	src->refused = refused;
	return 0;
}

/* Decide the format from the first bytes of a descriptor, reading at most one chunk. */
static int detect(bn_source *src, bn_error *err)
{
	const bn_refused_format *refused = NULL;
	ssize_t n;
	int format;

	while (src->in_size < BN_SNIFF_BYTES && !src->in_eof) {
		n = read_some(src, src->inbuf + src->in_size, IN_CHUNK - src->in_size);
		if (n < 0)
			return read_error(src, err, errno);
		if (n == 0)
			src->in_eof = 1;
		src->in_size += (size_t)n;
	}
	format = bn_sniff(src->inbuf, src->in_size, &refused);
	if (format != BN_SNIFF_PLAIN)
		return start_compressed(src, format, refused, err);
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

/* Read the next chunk of compressed input once the last one is used up. */
static int refill_input(bn_source *src, bn_error *err)
{
	ssize_t n;

	if (src->in_pos < src->in_size || src->in_eof)
		return 0;
	n = read_some(src, src->inbuf, IN_CHUNK);
	if (n < 0)
		return read_error(src, err, errno);
	src->in_eof = n == 0;
	src->in_size = (size_t)n;
	src->in_pos = 0;
	return 0;
}

/* The input byte offset of in[in_pos]. */
static uint64_t in_offset(const bn_source *src)
{
	return src->stats.bytes_read - (src->in_size - src->in_pos);
}

/* Decoded bytes the next step may write after win[end): make_room left at least a chunk free. */
static size_t out_room(const bn_source *src)
{
	return src->wcap - src->end < CHUNK ? src->wcap - src->end : CHUNK;
}

static int compressed_error(bn_source *src, bn_error *err, uint64_t offset, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* A corrupt or truncated input: the message, and the compressed offset it names first. */
static int compressed_error(bn_source *src, bn_error *err, uint64_t offset, const char *fmt, ...)
{
	char msg[BN_ERROR_MESSAGE_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return set_error(err, src->name, BN_ECORRUPT, offset, 1, "%s", msg);
}

static int fill_zstd(bn_source *src, bn_error *err)
{
	ZSTD_inBuffer ib;
	ZSTD_outBuffer ob;
	size_t in_before, used, take, r;
	int at_eof, rc;

	for (;;) {
		if (src->in_pos == src->in_size && !src->in_eof) {
			rc = refill_input(src, err);
			if (rc < 0)
				return rc;
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
		ob.size = src->end + out_room(src);
		ob.pos = src->end;
		in_before = src->in_pos;
		r = ZSTD_decompressStream(src->zds, &ob, &ib);
		src->in_pos = ib.pos;
		if (ZSTD_isError(r)) {
			/* Where in the frame zstd found the fault it does not tell (a bad checksum is found
			 * at the frame's end): the frame's start is exact, and all before it was good. */
			return compressed_error(src, err, src->frame_start,
						"corrupt zstd input in the frame starting at byte offset %llu: %s",
						(unsigned long long)src->frame_start, ZSTD_getErrorName(r));
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
			src->frame_start = in_offset(src);
		}
		if (ob.pos > src->end) {
			src->stats.bytes_decoded += ob.pos - src->end;
			src->end = ob.pos;
			return 0;
		}
		if (at_eof && r != 0)
			return compressed_error(src, err, src->stats.bytes_read,
						"truncated zstd input: ends at byte offset %llu inside the frame starting at byte offset %llu",
						(unsigned long long)src->stats.bytes_read, (unsigned long long)src->frame_start);
	}
}

/* zlib's words for a bad trailer, said the way a user of gzip reads them. */
static const char *inflate_reason(const z_stream *z, int r)
{
	if (!z->msg)
		return r == Z_MEM_ERROR ? "out of memory" : "invalid data";
	if (strcmp(z->msg, "incorrect data check") == 0)
		return "CRC-32 mismatch: the data does not match the member's checksum";
	if (strcmp(z->msg, "incorrect length check") == 0)
		return "length mismatch: the data does not match the member's recorded size";
	return z->msg;
}

/* What follows member - 1, at frame_start, does not start a member. */
static int not_a_member(bn_source *src, bn_error *err, uint64_t member)
{
	return compressed_error(src, err, src->frame_start,
				"corrupt gzip input: the bytes at byte offset %llu, after member %llu, are not a gzip member",
				(unsigned long long)src->frame_start, (unsigned long long)(member - 1));
}

/*
 * gzip: members one after the other (RFC 1952 allows any number; cat a.gz b.gz
 * makes two), each inflated with its own CRC-32 and length checked. Zero
 * bytes between or after members are padding, skipped as gzip and Python
 * skip them; anything else after a member must start another one.
 */
static int fill_gzip(bn_source *src, bn_error *err)
{
	z_stream *z = &src->gz;
	uint64_t member = src->stats.members + 1;	/* 1-based number of the member being read */
	size_t avail, room;
	int r, rc;

	for (;;) {
		if (src->in_pos == src->in_size && !src->in_eof) {
			rc = refill_input(src, err);
			if (rc < 0)
				return rc;
			continue;
		}
		if (src->between_members) {
			while (src->in_pos < src->in_size && src->in[src->in_pos] == 0)
				src->in_pos++;
			if (src->in_pos < src->in_size) {
				src->frame_start = in_offset(src);
				if (src->in[src->in_pos] != 0x1F)
					return not_a_member(src, err, member);
				src->between_members = 0;
				inflateReset(z);
			} else if (src->in_eof) {
				src->eof = 1;
				return 0;
			}
			continue;
		}
		if (src->in_pos == src->in_size)
			return compressed_error(src, err, src->stats.bytes_read,
						"truncated gzip input: ends at byte offset %llu inside member %llu starting at byte offset %llu",
						(unsigned long long)src->stats.bytes_read, (unsigned long long)member,
						(unsigned long long)src->frame_start);
		/* Memory input goes in read-sized slices: zlib counts in unsigned int. */
		avail = src->in_size - src->in_pos < IN_CHUNK ? src->in_size - src->in_pos : IN_CHUNK;
		room = out_room(src);
		z->next_in = (Bytef *)(uintptr_t)(src->in + src->in_pos);
		z->avail_in = (uInt)avail;
		z->next_out = (Bytef *)src->wbuf + src->end;
		z->avail_out = (uInt)room;
		r = inflate(z, Z_NO_FLUSH);
		src->in_pos += avail - z->avail_in;
		/* zlib gives up after a member's first two bytes only when they are not the gzip magic. */
		if (r == Z_DATA_ERROR && member > 1 && in_offset(src) - src->frame_start <= 2)
			return not_a_member(src, err, member);
		if (r == Z_BUF_ERROR && z->avail_in == avail && z->avail_out == room)
			return set_error(err, src->name, BN_EINTERNAL, 0, 0, "%s", "gzip decoder made no progress");
		if (r == Z_MEM_ERROR)
			return set_error(err, src->name, BN_ENOMEM, 0, 0, "%s", "out of memory decoding gzip input");
		if (r != Z_OK && r != Z_STREAM_END && r != Z_BUF_ERROR)
			return compressed_error(src, err, src->frame_start,
						"corrupt gzip input in member %llu starting at byte offset %llu: %s",
						(unsigned long long)member, (unsigned long long)src->frame_start,
						inflate_reason(z, r));
		if (r == Z_STREAM_END) {
			src->stats.members++;
			member++;
			src->between_members = 1;
		}
		if (z->avail_out < room) {
			src->stats.bytes_decoded += room - z->avail_out;
			src->end += room - z->avail_out;
			return 0;
		}
	}
}

/* Add decoded bytes after win[end), or set eof. */
static int fill(bn_source *src, bn_error *err)
{
	make_room(src);
	if (src->mode == MODE_ZSTD)
		return fill_zstd(src, err);
	if (src->mode == MODE_GZIP)
		return fill_gzip(src, err);
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
	size_t raw = e - s, bom, valid, replaced = 0;

	src->line_no++;
	if (raw && p[raw - 1] == '\r')
		raw--;
	bom = bn_utf8_bom_size(p, raw);
	p += bom;
	raw -= bom;
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
	size_t bom = bn_utf8_bom_size(src->win + src->start, src->end - src->start);
	uint64_t count = src->end - src->start - bom;
	char last = src->win[src->end - 1];
	const char *nl;
	size_t k;
	int rc;

	src->line_no++;
	memcpy(src->prefix, src->win + src->start + bom, src->prefix_len);
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
	if (src->mode == MODE_REFUSED) {
		rc = bn_sniff_refuse(err, src->refused, src->name, src->path, src->stdin_command);
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
		if (src->end - src->start > src->max_line + 1 + bn_utf8_bom_size(src->win + src->start, src->end - src->start)) {
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
		      const char *path, const bn_source_options *opts, bn_error *err)
{
	const bn_refused_format *refused = NULL;
	const char *command = opts && opts->stdin_command ? opts->stdin_command : DEFAULT_STDIN_COMMAND;
	int format = fd < 0 ? bn_sniff(mem, mem_size, &refused) : BN_SNIFF_PLAIN;
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
	src->path = path ? strdup(path) : NULL;
	src->stdin_command = strdup(command);
	src->prefix = malloc(src->prefix_len);
	if (!src->name || (path && !src->path) || !src->stdin_command || !src->prefix)
		goto nomem;

	if (fd < 0 && format == BN_SNIFF_PLAIN) {
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
		rc = start_compressed(src, format, refused, err);
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

static int open_descriptor(bn_source **out, int fd, int own_fd, const char *name, const char *path,
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
	rc = source_new(out, fd, NULL, 0, name, path, opts, err);
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
		return open_descriptor(out, STDIN_FILENO, 0, "<stdin>", NULL, opts, err);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return set_error(err, path, BN_EIO, 0, 0, "cannot open: %s", strerror(errno));
	rc = open_descriptor(out, fd, 1, path, path, opts, err);
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
	return open_descriptor(out, fd, 0, name, NULL, opts, err);
}

int bn_source_open_file_fd(bn_source **out, int fd, const char *name, const char *path,
			   const bn_source_options *opts, bn_error *err)
{
	if (!out || fd < 0 || !path)
		return bn_error_set(err, BN_EUSAGE, "bn_source_open_file_fd: invalid argument");
	return open_descriptor(out, fd, 0, name ? name : path, path, opts, err);
}

int bn_source_open_memory(bn_source **out, const void *data, size_t size, const char *name,
			  const bn_source_options *opts, bn_error *err)
{
	if (!out || (!data && size))
		return bn_error_set(err, BN_EUSAGE, "bn_source_open_memory: invalid argument");
	return source_new(out, -1, data, size, name ? name : "<memory>", NULL, opts, err);
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
	out->compressed = src->mode == MODE_ZSTD ? BN_COMPRESSION_ZSTD
			  : src->mode == MODE_GZIP ? BN_COMPRESSION_GZIP : BN_COMPRESSION_NONE;
}

const char *bn_source_compression_name(int compression)
{
	switch (compression) {
	case BN_COMPRESSION_NONE: return "none";
	case BN_COMPRESSION_ZSTD: return "zstd";
	case BN_COMPRESSION_GZIP: return "gzip";
	default: return "unknown";
	}
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
	if (src->gzip_ready)
		inflateEnd(&src->gz);
	bn_buf_free(&src->repair);
	free(src->inbuf);
	free(src->wbuf);
	free(src->prefix);
	free(src->name);
	free(src->path);
	free(src->stdin_command);
	free(src);
}
