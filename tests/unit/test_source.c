/* test_source.c - unit tests of the source: zstd and gzip detection and errors, refused formats, line splitting, UTF-8 repair, long lines, pipes. */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <iconv.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "bidnorm/source.h"
#include "source/utf8_repair.h"
#include "util/buf.h"

/* ---- helpers ---------------------------------------------------------- */

typedef struct got_line {
	char *data;
	size_t size;
	uint64_t number, offset, raw_size;
	size_t repaired;
	int too_long;
} got_line;

typedef struct got {
	got_line *lines;
	size_t n;
	int rc;			/* what the last bn_source_next returned */
	bn_error err;
	bn_source_stats stats;
} got;

static void got_free(got *g)
{
	for (size_t i = 0; i < g->n; i++)
		free(g->lines[i].data);
	free(g->lines);
	memset(g, 0, sizeof(*g));
}

/* Read every line of src (which it frees) until the end or an error. */
static void drain(got *g, bn_source *src)
{
	bn_line line;
	size_t cap = 0;

	memset(g, 0, sizeof(*g));
	while ((g->rc = bn_source_next(src, &line, &g->err)) > 0) {
		if (g->n == cap) {
			cap = cap ? cap * 2 : 16;
			g->lines = realloc(g->lines, cap * sizeof(*g->lines));
			cr_assert_not_null(g->lines);
		}
		got_line *l = &g->lines[g->n++];
		l->data = malloc(line.size + 1);
		cr_assert_not_null(l->data);
		memcpy(l->data, line.data, line.size);
		l->data[line.size] = 0;
		l->size = line.size;
		l->number = line.number;
		l->offset = line.offset;
		l->raw_size = line.raw_size;
		l->repaired = line.repaired_bytes;
		l->too_long = line.too_long;
	}
	bn_source_get_stats(src, &g->stats);
	bn_source_free(src);
}

static void read_memory(got *g, const void *data, size_t size, const bn_source_options *opts)
{
	bn_source *src = NULL;
	bn_error err;

	cr_assert_eq(bn_source_open_memory(&src, data, size, "mem", opts, &err), 0, "%s", err.message);
	drain(g, src);
}

/* One zstd frame of data, appended to out. */
static void zstd_frame(bn_buf *out, const void *data, size_t size, int checksum)
{
	ZSTD_CCtx *cctx = ZSTD_createCCtx();
	size_t bound = ZSTD_compressBound(size), n;

	cr_assert_not_null(cctx);
	cr_assert_eq(bn_buf_reserve(out, bound), 0);
	ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, 1);
	ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, checksum);
	n = ZSTD_compress2(cctx, out->data + out->size, bound, data, size);
	cr_assert(!ZSTD_isError(n), "%s", ZSTD_getErrorName(n));
	out->size += n;
	ZSTD_freeCCtx(cctx);
}

/* One gzip member of data (zlib's deflate, level 1), appended to out. */
static void gzip_member(bn_buf *out, const void *data, size_t size)
{
	z_stream z = { 0 };
	size_t bound;

	cr_assert_eq(deflateInit2(&z, 1, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
	bound = deflateBound(&z, (uLong)size) + 64;
	cr_assert_eq(bn_buf_reserve(out, bound), 0);
	z.next_in = (Bytef *)(uintptr_t)data;
	z.avail_in = (uInt)size;
	z.next_out = (Bytef *)out->data + out->size;
	z.avail_out = (uInt)bound;
	cr_assert_eq(deflate(&z, Z_FINISH), Z_STREAM_END);
	out->size += bound - z.avail_out;
	deflateEnd(&z);
}

/* A skippable frame written by hand, so the test does not trust zstd for it. */
static void skippable_frame(bn_buf *out, unsigned variant, const char *payload)
{
	uint32_t magic = 0x184D2A50u + variant, len = (uint32_t)strlen(payload);
	unsigned char hdr[8] = {
		magic & 0xFF, magic >> 8 & 0xFF, magic >> 16 & 0xFF, magic >> 24,
		len & 0xFF, len >> 8 & 0xFF, len >> 16 & 0xFF, len >> 24,
	};
	bn_buf_append(out, hdr, sizeof(hdr));
	bn_buf_append(out, payload, len);
}

typedef struct writer {
	int fd;
	const char *data;
	size_t size;
} writer;

/* Writes in pieces of varying small sizes so reads end at every kind of boundary. */
static void *write_pieces(void *arg)
{
	static const size_t sizes[] = { 1, 2, 3, 5, 7, 64, 1000, 4096, 13, 65536 };
	writer *w = arg;
	size_t pos = 0, i = 0;

	while (pos < w->size) {
		size_t n = sizes[i++ % (sizeof(sizes) / sizeof(sizes[0]))];
		if (n > w->size - pos)
			n = w->size - pos;
		ssize_t k = write(w->fd, w->data + pos, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		pos += (size_t)k;
	}
	close(w->fd);
	return NULL;
}

/* Read data through a pipe fed by a thread in small pieces. */
static void read_pipe(got *g, const void *data, size_t size, const bn_source_options *opts)
{
	int fds[2];
	pthread_t t;
	writer w;
	bn_source *src = NULL;
	bn_error err;

	cr_assert_eq(pipe(fds), 0);
	w.fd = fds[1];
	w.data = data;
	w.size = size;
	cr_assert_eq(pthread_create(&t, NULL, write_pieces, &w), 0);
	cr_assert_eq(bn_source_open_fd(&src, fds[0], "pipe", opts, &err), 0, "%s", err.message);
	drain(g, src);
	pthread_join(t, NULL);
	close(fds[0]);
}

/* The ways the same text can arrive: plain, zstd or gzip, memory or pipe. */
enum { WAY_MEM_PLAIN, WAY_MEM_ZSTD, WAY_MEM_GZIP, WAY_PIPE_PLAIN, WAY_PIPE_ZSTD, WAY_PIPE_GZIP, WAY_COUNT };
static const char *const way_names[WAY_COUNT] = { "memory plain", "memory zstd", "memory gzip",
						  "pipe plain", "pipe zstd", "pipe gzip" };

/* The bn_compression a way's input has. */
static int way_compression(int way)
{
	return way == WAY_MEM_ZSTD || way == WAY_PIPE_ZSTD ? BN_COMPRESSION_ZSTD
	       : way == WAY_MEM_GZIP || way == WAY_PIPE_GZIP ? BN_COMPRESSION_GZIP : BN_COMPRESSION_NONE;
}

static void read_way(got *g, int way, const char *text, size_t size, const bn_source_options *opts)
{
	bn_buf z = { 0 };
	int pipe_way = way >= WAY_PIPE_PLAIN;

	if (way_compression(way) == BN_COMPRESSION_ZSTD)
		zstd_frame(&z, text, size, 1);
	else if (way_compression(way) == BN_COMPRESSION_GZIP)
		gzip_member(&z, text, size);
	else
		bn_buf_append(&z, text, size);
	if (pipe_way)
		read_pipe(g, z.data, z.size, opts);
	else
		read_memory(g, z.size ? z.data : "", z.size, opts);
	bn_buf_free(&z);
}

/* ---- splitting -------------------------------------------------------- */

typedef struct want_line {
	const char *data;
	uint64_t number, offset, raw_size;
} want_line;

static const struct split_case {
	const char *name;
	const char *in;
	want_line want[4];
	size_t nwant;
	uint64_t blank;
	size_t len;		/* bytes of in, when it holds a NUL; 0 = strlen */
} split_cases[] = {
	{ "empty input", "", { { 0 } }, 0, 0 },
	{ "LF lines", "a\nbc\n", { { "a", 1, 0, 1 }, { "bc", 2, 2, 2 } }, 2, 0 },
	{ "CRLF lines", "a\r\nbc\r\n", { { "a", 1, 0, 1 }, { "bc", 2, 3, 2 } }, 2, 0 },
	{ "final line without LF", "a\nbc", { { "a", 1, 0, 1 }, { "bc", 2, 2, 2 } }, 2, 0 },
	{ "final line with CR only", "a\nbc\r", { { "a", 1, 0, 1 }, { "bc", 2, 2, 2 } }, 2, 0 },
	{ "only one CR removed", "a\r\r\nb", { { "a\r", 1, 0, 2 }, { "b", 2, 4, 1 } }, 2, 0 },
	{ "CR inside a line kept", "a\rb\n", { { "a\rb", 1, 0, 3 } }, 1, 0 },
	{ "blank lines keep numbering", "\n  \t\n\r\nx\n \r\n\t\ny",
	  { { "x", 4, 7, 1 }, { "y", 7, 14, 1 } }, 2, 5 },
	{ "spaces around text are not blank", " x \n", { { " x ", 1, 0, 3 } }, 1, 0 },
	{ "lone CR at end is blank", "a\n\r", { { "a", 1, 0, 1 } }, 1, 1 },
	{ "only newlines", "\n\n\n", { { 0 } }, 0, 3 },
	{ "NUL bytes are data", "a\0b\n", { { "a\0b", 1, 0, 3 } }, 1, 0, 4 },
	{ "byte order mark at the start dropped", "\xEF\xBB\xBF" "a\nb\n", { { "a", 1, 0, 1 }, { "b", 2, 5, 1 } }, 2, 0 },
	{ "byte order mark of a concatenated file dropped", "a\n\xEF\xBB\xBF" "b\r\n",
	  { { "a", 1, 0, 1 }, { "b", 2, 2, 1 } }, 2, 0 },
	{ "byte order mark alone is a blank line", "\xEF\xBB\xBF\nx\n", { { "x", 2, 4, 1 } }, 1, 1 },
	{ "byte order mark inside a line kept", "a\xEF\xBB\xBF\n", { { "a\xEF\xBB\xBF", 1, 0, 4 } }, 1, 0 },
	{ "two byte order marks: the second is data", "\xEF\xBB\xBF\xEF\xBB\xBF" "a\n",
	  { { "\xEF\xBB\xBF" "a", 1, 0, 4 } }, 1, 0 },
};

Test(source, splits_lines_every_way)
{
	for (size_t c = 0; c < sizeof(split_cases) / sizeof(split_cases[0]); c++) {
		const struct split_case *k = &split_cases[c];
		size_t len = k->len ? k->len : strlen(k->in);
		for (int way = 0; way < WAY_COUNT; way++) {
			got g;
			read_way(&g, way, k->in, len, NULL);
			cr_assert_eq(g.rc, 0, "%s (%s): rc %d %s", k->name, way_names[way], g.rc, g.err.message);
			cr_assert_eq(g.n, k->nwant, "%s (%s): %zu lines", k->name, way_names[way], g.n);
			for (size_t i = 0; i < g.n; i++) {
				const want_line *w = &k->want[i];
				cr_assert_eq(g.lines[i].size, w->raw_size, "%s line %zu", k->name, i);
				cr_assert_eq(memcmp(g.lines[i].data, w->data, w->raw_size), 0, "%s line %zu", k->name, i);
				cr_assert_eq(g.lines[i].number, w->number, "%s line %zu", k->name, i);
				cr_assert_eq(g.lines[i].offset, w->offset, "%s line %zu", k->name, i);
				cr_assert_eq(g.lines[i].raw_size, w->raw_size, "%s line %zu", k->name, i);
				cr_assert_eq(g.lines[i].too_long, 0);
			}
			cr_assert_eq(g.stats.blank_lines, k->blank, "%s (%s)", k->name, way_names[way]);
			cr_assert_eq(g.stats.lines, k->nwant);
			cr_assert_eq(g.stats.bytes_decoded, len, "%s (%s)", k->name, way_names[way]);
			cr_assert_eq(g.stats.compressed, way_compression(way));
			cr_assert_eq(g.stats.members, way_compression(way) == BN_COMPRESSION_GZIP);
			got_free(&g);
		}
	}
}

/* Line i of the generated corpus: lengths vary from 0 to 700 bytes. */
static size_t corpus_line(char *buf, size_t i)
{
	size_t pad = (i * 37) % 700;
	int n = sprintf(buf, "{\"i\":%zu,\"p\":\"", i);
	memset(buf + n, 'a' + (int)(i % 26), pad);
	memcpy(buf + n + pad, "\"}", 2);
	return (size_t)n + pad + 2;
}

static char *make_corpus(size_t nlines, size_t *out_size)
{
	char *text = malloc(nlines * 740);
	size_t pos = 0;

	cr_assert_not_null(text);
	for (size_t i = 0; i < nlines; i++) {
		pos += corpus_line(text + pos, i);
		/* Every 5th line ends in CRLF, to cross boundaries with a CR. */
		if (i % 5 == 4)
			text[pos++] = '\r';
		text[pos++] = '\n';
	}
	*out_size = pos;
	return text;
}

static void check_corpus(const got *g, size_t nlines)
{
	char want[800];
	uint64_t offset = 0;

	cr_assert_eq(g->rc, 0, "rc %d: %s", g->rc, g->err.message);
	cr_assert_eq(g->n, nlines);
	for (size_t i = 0; i < nlines; i++) {
		size_t n = corpus_line(want, i);
		cr_assert_eq(g->lines[i].size, n, "line %zu", i);
		cr_assert_eq(memcmp(g->lines[i].data, want, n), 0, "line %zu", i);
		cr_assert_eq(g->lines[i].number, i + 1);
		cr_assert_eq(g->lines[i].offset, offset, "line %zu", i);
		offset += n + 1 + (i % 5 == 4);
	}
}

Test(source, buffer_boundaries_crossed_every_way)
{
	/* About 1.8 MB: several window compactions even at the default limit. */
	size_t nlines = 5000, size;
	char *text = make_corpus(nlines, &size);
	bn_source_options small = { .max_line_bytes = 800 };

	for (int way = 0; way < WAY_COUNT; way++) {
		got g;
		read_way(&g, way, text, size, NULL);
		check_corpus(&g, nlines);
		got_free(&g);
		read_way(&g, way, text, size, &small);
		check_corpus(&g, nlines);
		cr_assert_eq(g.stats.bytes_decoded, size);
		got_free(&g);
	}
	free(text);
}

/*
 * Random bytes from an alphabet rich in terminators, blanks and broken UTF-8,
 * read every way with a tiny limit, must give what a naive splitter gives.
 */
static int only_blanks(const unsigned char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t')
			return 0;
	return 1;
}

static void check_against_naive(const got *g, const unsigned char *in, size_t n, size_t max, const char *what)
{
	size_t pos = 0, k = 0, e, raw, bom, want_size, repaired;
	uint64_t number = 0;
	char want[64];

	cr_assert_eq(g->rc, 0, "%s: %s", what, g->err.message);
	while (pos < n) {
		const unsigned char *nl = memchr(in + pos, '\n', n - pos);
		e = nl ? (size_t)(nl - in) : n;
		raw = e - pos;
		number++;
		if (raw && in[e - 1] == '\r')
			raw--;
		bom = raw >= 3 && memcmp(in + pos, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0; /* not part of the line */
		raw -= bom;
		if (raw > max) {
			cr_assert_lt(k, g->n, "%s", what);
			cr_assert_eq(g->lines[k].too_long, 1, "%s: line %llu", what, (unsigned long long)number);
			cr_assert_eq(g->lines[k].size, max);
			cr_assert_eq(memcmp(g->lines[k].data, in + pos + bom, max), 0);
			k++;
		} else if (!only_blanks(in + pos + bom, raw)) {
			want_size = bn_utf8_repair(want, &repaired, (const char *)in + pos + bom, raw);
			cr_assert_lt(k, g->n, "%s", what);
			cr_assert_eq(g->lines[k].too_long, 0, "%s: line %llu", what, (unsigned long long)number);
			cr_assert_eq(g->lines[k].size, want_size, "%s: line %llu", what, (unsigned long long)number);
			cr_assert_eq(memcmp(g->lines[k].data, want, want_size), 0);
			cr_assert_eq(g->lines[k].repaired, repaired);
			k++;
		}
		if (k && g->lines[k - 1].number == number) {
			cr_assert_eq(g->lines[k - 1].offset, pos, "%s: line %llu", what, (unsigned long long)number);
			cr_assert_eq(g->lines[k - 1].raw_size, raw);
		}
		pos = nl ? e + 1 : n;
	}
	cr_assert_eq(g->n, k, "%s", what);
}

Test(source, random_input_matches_naive_splitter)
{
	/* 0xEF 0xBB 0xBF also make byte order marks, at line starts and across buffer boundaries. */
	static const unsigned char alphabet[] = { 'a', 'b', '\n', '\n', '\r', ' ', '\t', 0xC3, 0xA9, 0xE2, 0x82, 0xAC, 0xFF, 0xF0,
						  0xEF, 0xBB, 0xBF };
	bn_source_options opts = { .max_line_bytes = 6 };
	unsigned seed = 12345;
	char what[64];

	for (int round = 0; round < 40; round++) {
		/* The last round is long enough to wrap the window several times. */
		size_t n = round == 39 ? 600000 : (size_t)(round * 53 + 1);
		unsigned char *in = malloc(n);
		cr_assert_not_null(in);
		for (size_t i = 0; i < n; i++) {
			seed = seed * 1103515245u + 12345u;
			in[i] = alphabet[(seed >> 16) % sizeof(alphabet)];
		}
		for (int way = 0; way < WAY_COUNT; way++) {
			got g;
			snprintf(what, sizeof(what), "round %d, %s", round, way_names[way]);
			read_way(&g, way, (const char *)in, n, &opts);
			check_against_naive(&g, in, n, opts.max_line_bytes, what);
			cr_assert_eq(g.stats.bytes_decoded, n, "%s", what);
			got_free(&g);
		}
		free(in);
	}
}

/* ---- zstd framing ----------------------------------------------------- */

Test(source, zstd_line_split_across_frames)
{
	bn_buf z = { 0 };
	got g;

	zstd_frame(&z, "hello\nwor", 9, 0);
	zstd_frame(&z, "ld\r", 3, 1);
	zstd_frame(&z, "\nbye\n", 5, 0);
	read_memory(&g, z.data, z.size, NULL);
	cr_assert_eq(g.rc, 0, "%s", g.err.message);
	cr_assert_eq(g.n, 3);
	cr_assert_str_eq(g.lines[0].data, "hello");
	cr_assert_str_eq(g.lines[1].data, "world");
	cr_assert_eq(g.lines[1].offset, 6);
	cr_assert_str_eq(g.lines[2].data, "bye");
	cr_assert_eq(g.lines[2].offset, 13);
	cr_assert_eq(g.stats.frames, 3);
	cr_assert_eq(g.stats.bytes_read, z.size);
	cr_assert_eq(g.stats.bytes_decoded, 17);
	got_free(&g);
	bn_buf_free(&z);
}

Test(source, zstd_skippable_frames_first_and_between)
{
	bn_buf z = { 0 };
	got g;

	skippable_frame(&z, 0, "metadata");
	zstd_frame(&z, "one\ntw", 6, 0);
	skippable_frame(&z, 15, "");
	skippable_frame(&z, 7, "more\nstuff");
	zstd_frame(&z, "o\n", 2, 0);
	for (int pipe_way = 0; pipe_way < 2; pipe_way++) {
		if (pipe_way)
			read_pipe(&g, z.data, z.size, NULL);
		else
			read_memory(&g, z.data, z.size, NULL);
		cr_assert_eq(g.rc, 0, "%s", g.err.message);
		cr_assert_eq(g.n, 2);
		cr_assert_str_eq(g.lines[0].data, "one");
		cr_assert_str_eq(g.lines[1].data, "two");
		cr_assert_eq(g.lines[1].offset, 4);
		cr_assert_eq(g.stats.frames, 2);
		cr_assert_eq(g.stats.compressed, 1);
		got_free(&g);
	}
	bn_buf_free(&z);
}

Test(source, zstd_only_skippable_frame_is_empty_zstd)
{
	bn_buf z = { 0 };
	got g;

	skippable_frame(&z, 3, "x");
	read_memory(&g, z.data, z.size, NULL);
	cr_assert_eq(g.rc, 0, "%s", g.err.message);
	cr_assert_eq(g.n, 0);
	cr_assert_eq(g.stats.compressed, 1);
	cr_assert_eq(g.stats.frames, 0);
	got_free(&g);
	bn_buf_free(&z);
}

Test(source, short_input_like_magic_is_plain)
{
	got g;

	read_memory(&g, "\x28\xB5\x2F", 3, NULL);
	cr_assert_eq(g.rc, 0);
	cr_assert_eq(g.n, 1);
	cr_assert_eq(g.lines[0].repaired, 1, "B5 is a stray continuation byte; 2F is '/'");
	cr_assert_str_eq(g.lines[0].data, "(\xC2\xB5/");
	cr_assert_eq(g.stats.compressed, 0);
	got_free(&g);
}

static void assert_error(const got *g, int code, const char *source, const char *message, uint64_t offset)
{
	cr_assert_eq(g->rc, code, "rc %d: %s", g->rc, g->err.message);
	cr_assert_eq(g->err.code, code);
	cr_assert_str_eq(g->err.message, message);
	cr_assert_str_eq(g->err.source, source);
	cr_assert_eq(g->err.line, 0);
	cr_assert_eq(g->err.has_offset, 1);
	cr_assert_eq(g->err.offset, offset);
}

/* The same input through a pipe fails the same way (what a memory read already showed). */
static void assert_pipe_error(const void *data, size_t size, int code, const char *message, uint64_t offset)
{
	got g;
	read_pipe(&g, data, size, NULL);
	assert_error(&g, code, "pipe", message, offset);
	got_free(&g);
}

Test(source, zstd_truncated_reports_offset)
{
	static const size_t cuts[] = { 1, 3, 4, 20 };
	const char *text = "first line\nsecond line\nthird line\n";
	bn_buf z = { 0 };
	char msg[128];

	zstd_frame(&z, text, strlen(text), 1);
	for (size_t c = 0; c < sizeof(cuts) / sizeof(cuts[0]); c++) {
		size_t size = z.size - cuts[c];
		got g;
		snprintf(msg, sizeof(msg), "truncated zstd input: ends at byte offset %zu inside the frame starting at byte offset 0",
			 size);
		read_memory(&g, z.data, size, NULL);
		assert_error(&g, BN_ECORRUPT, "mem", msg, size);
		got_free(&g);
		assert_pipe_error(z.data, size, BN_ECORRUPT, msg, size);
	}
	bn_buf_free(&z);
}

Test(source, zstd_magic_alone_is_truncated)
{
	got g;

	read_memory(&g, "\x28\xB5\x2F\xFD", 4, NULL);
	assert_error(&g, BN_ECORRUPT, "mem", "truncated zstd input: ends at byte offset 4 inside the frame starting at byte offset 0", 4);
	got_free(&g);
}

Test(source, zstd_checksum_mismatch_is_corrupt)
{
	const char *text = "{\"a\":1}\n{\"a\":2}\n";
	bn_buf z = { 0 };
	char msg[128];
	size_t first;
	got g;

	zstd_frame(&z, "ok\n", 3, 1);
	first = z.size;
	zstd_frame(&z, text, strlen(text), 1);
	z.data[z.size - 1] ^= 0x01;	/* the last byte belongs to the content checksum */
	snprintf(msg, sizeof(msg), "corrupt zstd input in the frame starting at byte offset %zu: "
		 "Restored data doesn't match checksum", first);
	read_memory(&g, z.data, z.size, NULL);
	assert_error(&g, BN_ECORRUPT, "mem", msg, first);
	cr_assert_eq(g.n, 1);
	cr_assert_str_eq(g.lines[0].data, "ok");
	got_free(&g);
	bn_buf_free(&z);
}

Test(source, zstd_magic_then_garbage_is_corrupt)
{
	static const unsigned char bad[] = {
		0x28, 0xB5, 0x2F, 0xFD, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
		0xFF, 0xFF, 0xFF, 0xFF,
	};
	got g;

	read_memory(&g, bad, sizeof(bad), NULL);
	assert_error(&g, BN_ECORRUPT, "mem", "corrupt zstd input in the frame starting at byte offset 0: Unsupported frame parameter", 0);
	got_free(&g);
}

Test(source, zstd_garbage_after_a_good_frame_is_corrupt)
{
	bn_buf z = { 0 };
	char msg[128];
	size_t good;
	got g;

	zstd_frame(&z, "ok\n", 3, 0);
	good = z.size;
	bn_buf_append(&z, "not zstd at all\n", 16);
	snprintf(msg, sizeof(msg), "corrupt zstd input in the frame starting at byte offset %zu: Unknown frame descriptor",
		 good);
	read_memory(&g, z.data, z.size, NULL);
	assert_error(&g, BN_ECORRUPT, "mem", msg, good);
	cr_assert_eq(g.n, 1, "the line before the garbage is handed out");
	cr_assert_str_eq(g.lines[0].data, "ok");
	got_free(&g);
	bn_buf_free(&z);
}

/* ---- gzip members ----------------------------------------------------- */

Test(source, gzip_line_split_across_members)
{
	bn_buf z = { 0 };
	got g;

	gzip_member(&z, "hello\nwor", 9);
	gzip_member(&z, "ld\r", 3);
	gzip_member(&z, "", 0);		/* an empty member between two others */
	gzip_member(&z, "\nbye\n", 5);
	for (int pipe_way = 0; pipe_way < 2; pipe_way++) {
		if (pipe_way)
			read_pipe(&g, z.data, z.size, NULL);
		else
			read_memory(&g, z.data, z.size, NULL);
		cr_assert_eq(g.rc, 0, "%s", g.err.message);
		cr_assert_eq(g.n, 3);
		cr_assert_str_eq(g.lines[0].data, "hello");
		cr_assert_str_eq(g.lines[1].data, "world");
		cr_assert_eq(g.lines[1].number, 2);
		cr_assert_eq(g.lines[1].offset, 6, "offsets count decompressed bytes across members");
		cr_assert_str_eq(g.lines[2].data, "bye");
		cr_assert_eq(g.lines[2].number, 3);
		cr_assert_eq(g.lines[2].offset, 13);
		cr_assert_eq(g.stats.members, 4);
		cr_assert_eq(g.stats.frames, 0);
		cr_assert_eq(g.stats.compressed, BN_COMPRESSION_GZIP);
		cr_assert_eq(g.stats.bytes_read, z.size);
		cr_assert_eq(g.stats.bytes_decoded, 17);
		got_free(&g);
	}
	bn_buf_free(&z);
}

Test(source, gzip_only_an_empty_member)
{
	bn_buf z = { 0 };
	got g;

	gzip_member(&z, "", 0);
	read_memory(&g, z.data, z.size, NULL);
	cr_assert_eq(g.rc, 0, "%s", g.err.message);
	cr_assert_eq(g.n, 0);
	cr_assert_eq(g.stats.members, 1);
	cr_assert_eq(g.stats.compressed, BN_COMPRESSION_GZIP);
	got_free(&g);
	bn_buf_free(&z);
}

/* Header fields gzip writes (name, comment, extra, header CRC) are skipped whatever their length. */
Test(source, gzip_header_fields_are_skipped)
{
	static char name[3000], comment[] = "shipped by fluent-bit";
	static unsigned char extra[] = { 'A', 'P', 4, 0, 1, 2, 3, 4 };
	gz_header h = { 0 };
	z_stream z = { 0 };
	unsigned char out[4096];
	got g;

	memset(name, 'n', sizeof(name) - 1);
	h.name = (Bytef *)name;
	h.comment = (Bytef *)comment;
	h.extra = extra;
	h.extra_len = sizeof(extra);
	h.hcrc = 1;
	cr_assert_eq(deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
	cr_assert_eq(deflateSetHeader(&z, &h), Z_OK);
	z.next_in = (Bytef *)"{\"a\":1}\n";
	z.avail_in = 8;
	z.next_out = out;
	z.avail_out = sizeof(out);
	cr_assert_eq(deflate(&z, Z_FINISH), Z_STREAM_END);
	cr_assert_eq(out[3], 0x1E, "FHCRC, FEXTRA, FNAME and FCOMMENT set");
	for (int pipe_way = 0; pipe_way < 2; pipe_way++) {
		if (pipe_way)
			read_pipe(&g, out, z.total_out, NULL);
		else
			read_memory(&g, out, z.total_out, NULL);
		cr_assert_eq(g.rc, 0, "%s", g.err.message);
		cr_assert_eq(g.n, 1);
		cr_assert_str_eq(g.lines[0].data, "{\"a\":1}");
		got_free(&g);
	}
	deflateEnd(&z);
}

/* Zero bytes after a member are padding (gzip and Python's gzip skip them): between members too. */
Test(source, gzip_zero_padding_is_skipped)
{
	static const char zeros[1000];
	bn_buf z = { 0 };
	got g;

	gzip_member(&z, "one\n", 4);
	bn_buf_append(&z, zeros, 7);
	gzip_member(&z, "two\n", 4);
	bn_buf_append(&z, zeros, sizeof(zeros));
	for (int pipe_way = 0; pipe_way < 2; pipe_way++) {
		if (pipe_way)
			read_pipe(&g, z.data, z.size, NULL);
		else
			read_memory(&g, z.data, z.size, NULL);
		cr_assert_eq(g.rc, 0, "%s", g.err.message);
		cr_assert_eq(g.n, 2);
		cr_assert_str_eq(g.lines[1].data, "two");
		cr_assert_eq(g.lines[1].offset, 4);
		cr_assert_eq(g.stats.members, 2);
		cr_assert_eq(g.stats.bytes_read, z.size);
		got_free(&g);
	}
	bn_buf_free(&z);
}

/* Cut inside the header, the deflate data and the 8-byte trailer of the third member. */
Test(source, gzip_truncated_member_is_named)
{
	const char *text = "first line\nsecond line\nthird line\n";
	bn_buf z = { 0 };
	size_t third, whole;
	char msg[160];

	gzip_member(&z, "a\n", 2);
	gzip_member(&z, "b\n", 2);
	third = z.size;
	gzip_member(&z, text, strlen(text));
	whole = z.size - third;
	size_t keep[] = { 1, 2, 9, 10, 15, whole - 8, whole - 5, whole - 1 };
	for (size_t c = 0; c < sizeof(keep) / sizeof(keep[0]); c++) {
		size_t size = third + keep[c];
		got g;
		snprintf(msg, sizeof(msg), "truncated gzip input: ends at byte offset %zu inside member 3 starting at byte offset %zu",
			 size, third);
		read_memory(&g, z.data, size, NULL);
		assert_error(&g, BN_ECORRUPT, "mem", msg, size);
		cr_assert_geq(g.n, 2, "the lines of the whole members are handed out first");
		cr_assert_str_eq(g.lines[1].data, "b");
		got_free(&g);
		assert_pipe_error(z.data, size, BN_ECORRUPT, msg, size);
	}
	bn_buf_free(&z);
}

Test(source, gzip_magic_alone_is_truncated)
{
	got g;

	read_memory(&g, "\x1F\x8B", 2, NULL);
	assert_error(&g, BN_ECORRUPT, "mem",
		     "truncated gzip input: ends at byte offset 2 inside member 1 starting at byte offset 0", 2);
	cr_assert_eq(g.stats.compressed, BN_COMPRESSION_GZIP);
	got_free(&g);
}

/* Member 2 of three damaged in its trailer (CRC-32, then length) or in its deflate data. */
Test(source, gzip_corrupt_member_is_named)
{
	static const struct {
		const char *what;
		int from_end;		/* byte of member 2 to flip: counted from its end, or */
		int from_start;		/* ... from its start when from_end is 0 */
		unsigned char set;	/* the value written there */
		const char *reason;
	} cases[] = {
		{ "CRC-32", 8, 0, 0, "CRC-32 mismatch: the data does not match the member's checksum" },
		{ "length", 1, 0, 0x55, "length mismatch: the data does not match the member's recorded size" },
		{ "block type", 0, 10, 0x07, "invalid block type" },
		{ "method", 0, 2, 0x09, "unknown compression method" },
		{ "reserved flag", 0, 3, 0xE0, "unknown header flags set" },
	};
	const char *text = "{\"a\":1}\n{\"a\":2}\n";
	char msg[200];

	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		bn_buf z = { 0 };
		size_t second, end;
		got g;

		gzip_member(&z, "ok\n", 3);
		second = z.size;
		gzip_member(&z, text, strlen(text));
		end = z.size;
		gzip_member(&z, "after\n", 6);
		size_t at = cases[c].from_end ? end - (size_t)cases[c].from_end : second + (size_t)cases[c].from_start;
		z.data[at] = cases[c].from_end == 8 ? (char)(z.data[at] ^ 0x01) : (char)cases[c].set;
		snprintf(msg, sizeof(msg), "corrupt gzip input in member 2 starting at byte offset %zu: %s", second,
			 cases[c].reason);
		read_memory(&g, z.data, z.size, NULL);
		assert_error(&g, BN_ECORRUPT, "mem", msg, second);
		cr_assert_geq(g.n, 1, "%s", cases[c].what);
		cr_assert_str_eq(g.lines[0].data, "ok");
		got_free(&g);
		assert_pipe_error(z.data, z.size, BN_ECORRUPT, msg, second);
		bn_buf_free(&z);
	}
}

/* After a member, bytes that do not start another: text, or a 0x1F not followed by 0x8B, after padding. */
Test(source, gzip_garbage_after_a_member_is_corrupt)
{
	static const struct {
		const char *garbage;
		size_t len, zeros;
	} cases[] = {
		{ "not gzip at all\n", 16, 0 },
		{ "\n", 1, 0 },
		{ "\x1F\x00\x00\x00", 4, 0 },
		{ "\x1F" "A", 2, 3 },
		{ "x", 1, 5 },
	};
	static const char zeros[8];
	char msg[160];

	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		bn_buf z = { 0 };
		size_t at;
		got g;

		gzip_member(&z, "ok\n", 3);
		gzip_member(&z, "ok2\n", 4);
		bn_buf_append(&z, zeros, cases[c].zeros);
		at = z.size;
		bn_buf_append(&z, cases[c].garbage, cases[c].len);
		snprintf(msg, sizeof(msg),
			 "corrupt gzip input: the bytes at byte offset %zu, after member 2, are not a gzip member", at);
		read_memory(&g, z.data, z.size, NULL);
		assert_error(&g, BN_ECORRUPT, "mem", msg, at);
		cr_assert_eq(g.n, 2, "case %zu: the lines before the garbage are handed out", c);
		cr_assert_str_eq(g.lines[1].data, "ok2");
		cr_assert_eq(g.stats.members, 2);
		got_free(&g);
		assert_pipe_error(z.data, z.size, BN_ECORRUPT, msg, at);
		bn_buf_free(&z);
	}
}

/* A bad CRC found at the end of a member inflated over many reads still names the member's start. */
Test(source, gzip_crc_mismatch_in_a_large_member_names_the_member_start)
{
	bn_buf text = { 0 }, z = { 0 };
	char msg[200], row[64];
	size_t second;
	uint64_t x = 88172645463325252ull;
	got g;

	while (text.size < (size_t)2 << 20) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		int n = snprintf(row, sizeof(row), "{\"v\":\"%016llx\"}\n", (unsigned long long)x);
		bn_buf_append(&text, row, (size_t)n);
	}
	gzip_member(&z, "ok\n", 3);
	second = z.size;
	gzip_member(&z, text.data, text.size);
	cr_assert_gt(z.size - second, 3 * ((size_t)128 << 10), "the member must span several reads");
	z.data[z.size - 8] ^= 0x01;
	snprintf(msg, sizeof(msg), "corrupt gzip input in member 2 starting at byte offset %zu: "
		 "CRC-32 mismatch: the data does not match the member's checksum", second);
	read_memory(&g, z.data, z.size, NULL);
	assert_error(&g, BN_ECORRUPT, "mem", msg, second);
	cr_assert_gt(g.n, 1000, "lines decoded before the trailer are handed out");
	got_free(&g);
	assert_pipe_error(z.data, z.size, BN_ECORRUPT, msg, second);
	bn_buf_free(&text);
	bn_buf_free(&z);
}

/* ---- refused formats -------------------------------------------------- */

/* The first bytes of each format as its own tool writes it (magic, then a plausible header). */
static const struct refused_case {
	const char *format, *tool;
	const char *bytes;
	size_t len;
	const char *needs;  /* said after the advice, or NULL */
} refused_cases[] = {
	{ "xz", "xz -dc", "\xFD" "7zXZ\0\0\4\xE6\xD6\xB4\x46", 12 },
	{ "bzip2", "bzip2 -dc", "BZh91AY&SY\x01\x02", 12 },
	{ "bzip2", "bzip2 -dc", "BZh9\x17\x72\x45\x38\x50\x90\0\0\0\0", 14 },	/* empty stream */
	{ "lz4", "lz4 -dc", "\x04\x22\x4D\x18\x64\x40\xA7", 7 },
	{ "lz4", "lz4 -dc", "\x02\x21\x4C\x18\x10\0\0\0", 8 },			/* legacy frame */
	{ "zip", "unzip -p", "PK\3\4\x14\0\0\0\x08\0", 10 },
	{ "zip", "unzip -p", "PK\5\6\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 22 },	/* empty archive */
	/* the framing format's stream identifier, then a compressed-data chunk (type 0, length 17) */
	{ "snappy", "python3 -m snappy -d", "\xFF\x06\0\0sNaPpY\0\x11\0\0", 14, ", with python-snappy 0.6 or later" },
	{ "lzop", "lzop -dc", "\x89LZO\0\r\n\x1A\n\x10\x30\x20\xA0", 13 },
};

Test(source, refused_formats_fail_before_any_line)
{
	char msg[256];

	for (size_t c = 0; c < sizeof(refused_cases) / sizeof(refused_cases[0]); c++) {
		const struct refused_case *k = &refused_cases[c];
		bn_buf data = { 0 };
		got g;

		/* then lines, which must not be read */
		bn_buf_append(&data, k->bytes, k->len);
		bn_buf_append(&data, "\n{\"a\":1}\n", 9);
		snprintf(msg, sizeof(msg), "%s-compressed input is not supported (decompress it first: ... | %s | bidnorm ingest -%s)",
			 k->format, k->tool, k->needs ? k->needs : "");
		read_memory(&g, data.data, data.size, NULL);
		cr_assert_eq(g.rc, BN_ECORRUPT, "case %zu: rc %d", c, g.rc);
		cr_assert_str_eq(g.err.message, msg);
		cr_assert_str_eq(g.err.source, "mem");
		cr_assert_eq(g.n, 0);
		cr_assert_eq(g.stats.lines, 0);
		got_free(&g);
		read_pipe(&g, data.data, data.size, NULL);
		cr_assert_eq(g.rc, BN_ECORRUPT);
		cr_assert_str_eq(g.err.message, msg);
		cr_assert_eq(g.n, 0);
		got_free(&g);
		bn_buf_free(&data);
	}
}

/* Text that only starts like a magic is text. */
Test(source, near_magics_are_plain)
{
	static const char *const texts[] = { "BZh9 is a bzip2 block size\n", "BZh", "PK\3", "\xFD" "7zX", "\x04\x22\x4D",
					     "\xFF\x06", "\xFF\x07\x01\x01sNaPpY", "\x89LZO\x01", "\x89LZO" };
	for (size_t c = 0; c < sizeof(texts) / sizeof(texts[0]); c++) {
		got g;
		read_memory(&g, texts[c], strlen(texts[c]), NULL);
		cr_assert_eq(g.rc, 0, "case %zu: %s", c, g.err.message);
		cr_assert_eq(g.n, 1);
		cr_assert_eq(g.stats.compressed, BN_COMPRESSION_NONE);
		got_free(&g);
	}
}

/* Opened by path, the advice names the file (quoted for the shell when needed) and the caller's command. */
Test(source, refusal_names_the_file_and_the_command)
{
	static const struct {
		const char *name, *shown;
	} names[] = {
		{ "x.jsonl.xz", "x.jsonl.xz" },
		{ "logs of today's run.xz", "'logs of today'\\''s run.xz'" },
	};
	bn_source_options opts = { .stdin_command = "bidnorm parity --vocab DIR -" };
	char path[128], want[256];
	bn_source *src = NULL;
	bn_error err;
	bn_line line;
	int fd;

	for (size_t c = 0; c < sizeof(names) / sizeof(names[0]); c++) {
		snprintf(path, sizeof(path), "%s", names[c].name);
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		cr_assert_geq(fd, 0);
		cr_assert_eq(write(fd, refused_cases[0].bytes, refused_cases[0].len), (ssize_t)refused_cases[0].len);
		close(fd);
		cr_assert_eq(bn_source_open_file(&src, path, c ? &opts : NULL, &err), 0, "%s", err.message);
		cr_assert_eq(bn_source_next(src, &line, &err), BN_ECORRUPT);
		snprintf(want, sizeof(want), "xz-compressed input is not supported (decompress it first: xz -dc %s | %s)",
			 names[c].shown, c ? "bidnorm parity --vocab DIR -" : "bidnorm ingest -");
		cr_assert_str_eq(err.message, want);
		cr_assert_str_eq(err.source, path);
		bn_source_free(src);
		unlink(path);
	}
}

Test(source, next_after_error_keeps_failing)
{
	bn_source *src = NULL;
	bn_error err;
	bn_line line;

	cr_assert_eq(bn_source_open_memory(&src, "\x28\xB5\x2F\xFD", 4, "m", NULL, &err), 0);
	cr_assert_eq(bn_source_next(src, &line, &err), BN_ECORRUPT);
	cr_assert_eq(bn_source_next(src, &line, &err), BN_ECORRUPT);
	cr_assert_str_eq(err.message, "read again after an earlier error");
	bn_source_free(src);
}

/* ---- long lines ------------------------------------------------------- */

Test(source, byte_order_marks_do_not_count_against_the_limit_every_way)
{
	/* Limit 10: a mark and 10 bytes pass, whether or not a read ends inside the line; 11 do not. */
#define BOM "\xEF\xBB\xBF"
	const char *text = BOM "0123456789\n" BOM "0123456789\r\n" BOM "0123456789A\n" BOM "0123456789\n"
			   BOM "0123456789ABCDEF";
#undef BOM
	bn_source_options opts = { .max_line_bytes = 10, .too_long_prefix = 4 };

	for (int way = 0; way < WAY_COUNT; way++) {
		got g;
		read_way(&g, way, text, strlen(text), &opts);
		cr_assert_eq(g.rc, 0, "%s: %s", way_names[way], g.err.message);
		cr_assert_eq(g.n, 5, "%s", way_names[way]);
		for (int i = 0; i < 5; i++) {
			int too_long = i == 2 || i == 4;
			cr_assert_eq(g.lines[i].too_long, too_long, "%s: line %d", way_names[way], i + 1);
			cr_assert_str_eq(g.lines[i].data, too_long ? "0123" : "0123456789", "%s: line %d", way_names[way], i + 1);
		}
		cr_assert_eq(g.lines[1].offset, 14);
		cr_assert_eq(g.lines[2].offset, 29);
		cr_assert_eq(g.lines[2].raw_size, 11);
		cr_assert_eq(g.lines[3].offset, 44);
		cr_assert_eq(g.lines[4].offset, 58);
		cr_assert_eq(g.lines[4].raw_size, 16);
		got_free(&g);
	}
}

Test(source, line_limit_boundaries_every_way)
{
	/* Limit 10: 10 bytes pass, even followed by CRLF; 11 do not. */
	const char *text = "0123456789\n0123456789\r\n0123456789A\nok\n0123456789AB\r\n0123456789ABCDEF";
	bn_source_options opts = { .max_line_bytes = 10, .too_long_prefix = 4 };

	for (int way = 0; way < WAY_COUNT; way++) {
		got g;
		read_way(&g, way, text, strlen(text), &opts);
		cr_assert_eq(g.rc, 0, "%s: %s", way_names[way], g.err.message);
		cr_assert_eq(g.n, 6, "%s", way_names[way]);
		cr_assert_str_eq(g.lines[0].data, "0123456789");
		cr_assert_eq(g.lines[0].too_long, 0);
		cr_assert_str_eq(g.lines[1].data, "0123456789");
		cr_assert_eq(g.lines[1].too_long, 0);
		cr_assert_str_eq(g.lines[2].data, "0123");
		cr_assert_eq(g.lines[2].too_long, 1);
		cr_assert_eq(g.lines[2].raw_size, 11);
		cr_assert_eq(g.lines[2].offset, 23);
		cr_assert_str_eq(g.lines[3].data, "ok");
		cr_assert_eq(g.lines[3].number, 4);
		cr_assert_eq(g.lines[3].offset, 35);
		cr_assert_eq(g.lines[4].too_long, 1);
		cr_assert_eq(g.lines[4].raw_size, 12, "%s: CR not counted", way_names[way]);
		cr_assert_str_eq(g.lines[5].data, "0123");
		cr_assert_eq(g.lines[5].too_long, 1);
		cr_assert_eq(g.lines[5].raw_size, 16);
		cr_assert_eq(g.lines[5].number, 6);
		cr_assert_eq(g.stats.too_long_lines, 3);
		cr_assert_eq(g.stats.lines, 6);
		got_free(&g);
	}
}

Test(source, prefix_never_longer_than_limit)
{
	bn_source_options opts = { .max_line_bytes = 3 };
	got g;

	read_memory(&g, "abcdefgh\n", 9, &opts);
	cr_assert_eq(g.n, 1);
	cr_assert_str_eq(g.lines[0].data, "abc");
	cr_assert_eq(g.lines[0].raw_size, 8);
	got_free(&g);
}

Test(source, five_megabyte_line_skipped_every_way)
{
	size_t big = 5u << 20;
	size_t size = 6 + big + 2 + 5 + 4 + big;
	char *text = malloc(size);
	size_t pos = 0;

	cr_assert_not_null(text);
	memcpy(text + pos, "first\n", 6);
	pos += 6;
	memset(text + pos, 'x', big);
	pos += big;
	memcpy(text + pos, "\r\nnext\n", 7);
	pos += 7;
	memcpy(text + pos, "tail", 4);	/* then an over-long last line without LF */
	pos += 4;
	memset(text + pos, 'y', big);
	pos += big;
	cr_assert_eq(pos, size);

	for (int way = 0; way < WAY_COUNT; way++) {
		got g;
		read_way(&g, way, text, size, NULL);
		cr_assert_eq(g.rc, 0, "%s: %s", way_names[way], g.err.message);
		cr_assert_eq(g.n, 4, "%s", way_names[way]);
		cr_assert_str_eq(g.lines[0].data, "first");
		cr_assert_eq(g.lines[1].too_long, 1);
		cr_assert_eq(g.lines[1].size, 1024);
		cr_assert_eq(g.lines[1].raw_size, big, "%s", way_names[way]);
		cr_assert_eq(g.lines[1].number, 2);
		cr_assert_eq(g.lines[1].offset, 6);
		cr_assert_eq(strspn(g.lines[1].data, "x"), 1024);
		cr_assert_str_eq(g.lines[2].data, "next");
		cr_assert_eq(g.lines[2].number, 3);
		cr_assert_eq(g.lines[2].offset, 6 + big + 2);
		cr_assert_eq(g.lines[3].too_long, 1);
		cr_assert_eq(g.lines[3].raw_size, 4 + big);
		cr_assert_eq(g.lines[3].offset, 6 + big + 2 + 5);
		cr_assert_eq(memcmp(g.lines[3].data, "tailyyyy", 8), 0);
		cr_assert_eq(g.stats.bytes_decoded, size);
		got_free(&g);
	}
	free(text);
}

/* ---- UTF-8 repair ----------------------------------------------------- */

static const struct utf8_case {
	const char *name;
	const char *in;
	const char *want;
	size_t replaced;
} utf8_cases[] = {
	{ "ASCII", "plain ascii", "plain ascii", 0 },
	{ "valid 2-4 byte", "h\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80", "h\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80", 0 },
	{ "valid boundaries", "\xC2\x80\xDF\xBF\xE0\xA0\x80\xED\x9F\xBF\xEE\x80\x80\xEF\xBF\xBF\xF0\x90\x80\x80\xF4\x8F\xBF\xBF",
	  "\xC2\x80\xDF\xBF\xE0\xA0\x80\xED\x9F\xBF\xEE\x80\x80\xEF\xBF\xBF\xF0\x90\x80\x80\xF4\x8F\xBF\xBF", 0 },
	{ "overlong C0", "\xC0\xAF", "\xC3\x80\xC2\xAF", 2 },
	{ "overlong C1", "\xC1\xBF", "\xC3\x81\xC2\xBF", 2 },
	{ "overlong E0 80", "\xE0\x80\xAF", "\xC3\xA0\xE2\x82\xAC\xC2\xAF", 3 },
	{ "overlong E0 9F", "\xE0\x9F\xBF", "\xC3\xA0\xC5\xB8\xC2\xBF", 3 },
	{ "overlong F0 80", "\xF0\x80\x80\x80", "\xC3\xB0\xE2\x82\xAC\xE2\x82\xAC\xE2\x82\xAC", 4 },
	{ "overlong F0 8F", "\xF0\x8F\xBF\xBF", "\xC3\xB0\xC2\x8F\xC2\xBF\xC2\xBF", 4 },
	{ "surrogate ED A0", "\xED\xA0\x80", "\xC3\xAD\xC2\xA0\xE2\x82\xAC", 3 },
	{ "surrogate ED BF", "\xED\xBF\xBF", "\xC3\xAD\xC2\xBF\xC2\xBF", 3 },
	{ "above U+10FFFF F4 90", "\xF4\x90\x80\x80", "\xC3\xB4\xC2\x90\xE2\x82\xAC\xE2\x82\xAC", 4 },
	{ "lead F5", "\xF5\x80", "\xC3\xB5\xE2\x82\xAC", 2 },
	{ "lead FF FE", "\xFF\xFE", "\xC3\xBF\xC3\xBE", 2 },
	{ "truncated 3-byte mid-line", "a\xE2\x82" "b", "a\xC3\xA2\xE2\x80\x9A" "b", 2 },
	{ "truncated 4-byte at end", "x\xF0\x9F\x98", "x\xC3\xB0\xC5\xB8\xCB\x9C", 3 },
	{ "lead then ASCII", "\xC3" "A", "\xC3\x83" "A", 1 },
	{ "stray continuations", "\x80\x9C\xA0\xBF", "\xE2\x82\xAC\xC5\x93\xC2\xA0\xC2\xBF", 4 },
	{ "undefined in cp1252", "\x81\x8D\x8F\x90\x9D", "\xC2\x81\xC2\x8D\xC2\x8F\xC2\x90\xC2\x9D", 5 },
	{ "latin-1 among valid", "caf\xE9 cr\xC3\xA8me", "caf\xC3\xA9 cr\xC3\xA8me", 1 },
	{ "after the ASCII fast path", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\x92" "bbbbbbbbbb",
	  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\xE2\x80\x99" "bbbbbbbbbb", 1 },
};

Test(source, repairs_each_invalid_utf8_class)
{
	size_t total = 0, n = sizeof(utf8_cases) / sizeof(utf8_cases[0]);
	bn_buf text = { 0 };
	got g;

	for (size_t c = 0; c < n; c++) {
		bn_buf_append(&text, utf8_cases[c].in, strlen(utf8_cases[c].in));
		bn_buf_putc(&text, '\n');
		total += utf8_cases[c].replaced;
	}
	read_memory(&g, text.data, text.size, NULL);
	cr_assert_eq(g.rc, 0);
	cr_assert_eq(g.n, n);
	for (size_t c = 0; c < n; c++) {
		const struct utf8_case *k = &utf8_cases[c];
		cr_assert_eq(g.lines[c].size, strlen(k->want), "%s: size %zu", k->name, g.lines[c].size);
		cr_assert_eq(memcmp(g.lines[c].data, k->want, g.lines[c].size), 0, "%s: bytes differ", k->name);
		cr_assert_eq(g.lines[c].repaired, k->replaced, "%s: replaced %zu", k->name, g.lines[c].repaired);
		cr_assert_eq(g.lines[c].raw_size, strlen(k->in), "%s", k->name);
		/* The repaired line is valid by our own validator. */
		cr_assert_eq(bn_utf8_valid_prefix(g.lines[c].data, g.lines[c].size), g.lines[c].size, "%s", k->name);
	}
	cr_assert_eq(g.stats.repaired_bytes, total);
	got_free(&g);
	bn_buf_free(&text);
}

Test(source, repair_matches_iconv_cp1252_for_every_byte)
{
	iconv_t cd = iconv_open("UTF-8", "CP1252");

	cr_assert_neq(cd, (iconv_t)-1, "glibc CP1252 converter missing");
	for (int b = 0x80; b <= 0xFF; b++) {
		char in[1] = { (char)b }, want[8], out[8];
		char *ip = in, *op = want;
		size_t il = 1, ol = sizeof(want), replaced = 0, n;

		n = bn_utf8_repair(out, &replaced, in, 1);
		cr_assert_eq(replaced, 1);
		if (iconv(cd, &ip, &il, &op, &ol) == (size_t)-1) {
			/* Undefined in CP1252: the C1 control of the same value. */
			cr_assert(b == 0x81 || b == 0x8D || b == 0x8F || b == 0x90 || b == 0x9D, "byte %02X", b);
			cr_assert_eq(n, 2);
			cr_assert_eq((unsigned char)out[0], 0xC2);
			cr_assert_eq((unsigned char)out[1], b);
		} else {
			cr_assert_eq(n, (size_t)(op - want), "byte %02X", b);
			cr_assert_eq(memcmp(out, want, n), 0, "byte %02X", b);
		}
		iconv(cd, NULL, NULL, NULL, NULL);
	}
	iconv_close(cd);
}

Test(source, valid_lines_are_zero_copy)
{
	const char *text = "ok\nbad\xFF\n";
	bn_source *src = NULL;
	bn_error err;
	bn_line line;

	cr_assert_eq(bn_source_open_memory(&src, text, strlen(text), NULL, NULL, &err), 0);
	cr_assert_str_eq(bn_source_name(src), "<memory>");
	cr_assert_eq(bn_source_next(src, &line, &err), 1);
	cr_assert_eq(line.data, text, "a valid line points into the input");
	cr_assert_eq(bn_source_next(src, &line, &err), 1);
	cr_assert_neq(line.data, text + 3, "a repaired line lives in the repair buffer");
	cr_assert_eq(line.size, 5);
	cr_assert_eq(bn_source_next(src, &line, &err), 0);
	bn_source_free(src);
}

/* ---- stats ------------------------------------------------------------ */

Test(source, stats_count_everything)
{
	const char *text = "a\n\n  \nb\xE9\xE9\n0123456789abc\nlast";
	bn_source_options opts = { .max_line_bytes = 8 };
	bn_buf z = { 0 };
	got g;

	zstd_frame(&z, text, 12, 0);
	zstd_frame(&z, text + 12, strlen(text) - 12, 1);
	read_memory(&g, z.data, z.size, &opts);
	cr_assert_eq(g.rc, 0, "%s", g.err.message);
	cr_assert_eq(g.stats.bytes_read, z.size);
	cr_assert_eq(g.stats.bytes_decoded, strlen(text));
	cr_assert_eq(g.stats.lines, 4);
	cr_assert_eq(g.stats.blank_lines, 2);
	cr_assert_eq(g.stats.repaired_bytes, 2);
	cr_assert_eq(g.stats.too_long_lines, 1);
	cr_assert_eq(g.stats.frames, 2);
	cr_assert_eq(g.stats.compressed, 1);
	cr_assert_eq(g.lines[3].number, 6);
	got_free(&g);
	bn_buf_free(&z);

	read_memory(&g, text, strlen(text), &opts);
	cr_assert_eq(g.stats.bytes_read, strlen(text));
	cr_assert_eq(g.stats.frames, 0);
	cr_assert_eq(g.stats.compressed, 0);
	cr_assert_eq(g.stats.lines, 4);
	got_free(&g);
}

/* ---- files and descriptors -------------------------------------------- */

Test(source, open_missing_file_fails)
{
	bn_source *src = NULL;
	bn_error err;

	cr_assert_eq(bn_source_open_file(&src, "no-such-dir/missing.jsonl.zst", NULL, &err), BN_EIO);
	cr_assert_null(src);
	cr_assert_eq(err.code, BN_EIO);
	cr_assert_str_eq(err.source, "no-such-dir/missing.jsonl.zst");
	cr_assert_str_eq(err.message, "cannot open: No such file or directory");
}

Test(source, open_directory_fails)
{
	bn_source *src = NULL;
	bn_error err;

	cr_assert_eq(bn_source_open_file(&src, ".", NULL, &err), BN_EIO);
	cr_assert_null(src);
	cr_assert_str_eq(err.source, ".");
	cr_assert_str_eq(err.message, "cannot read: Is a directory");
}

Test(source, read_error_reported)
{
	bn_source *src = NULL;
	bn_error err;
	bn_line line;
	int fds[2];

	/* The write end of a pipe opens fine but cannot be read. */
	cr_assert_eq(pipe(fds), 0);
	cr_assert_eq(bn_source_open_fd(&src, fds[1], NULL, NULL, &err), 0);
	cr_assert_eq(bn_source_next(src, &line, &err), BN_EIO);
	cr_assert_str_eq(err.message, "read failed: Bad file descriptor");
	char want[32];
	snprintf(want, sizeof(want), "<fd %d>", fds[1]);
	cr_assert_str_eq(err.source, want);
	bn_source_free(src);
	cr_assert_neq(fcntl(fds[1], F_GETFD), -1, "open_fd does not close the descriptor");
	close(fds[0]);
	close(fds[1]);
}

Test(source, reads_zstd_file_by_path)
{
	char path[64];
	bn_buf z = { 0 };
	bn_source *src = NULL;
	bn_error err;
	got g;
	int fd;

	/* Relative: tests run in the build directory. */
	snprintf(path, sizeof(path), "test_source_%ld.jsonl.zst", (long)getpid());
	zstd_frame(&z, "{\"a\":1}\n{\"a\":2}\n", 16, 1);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, z.data, z.size), (ssize_t)z.size);
	close(fd);
	cr_assert_eq(bn_source_open_file(&src, path, NULL, &err), 0, "%s", err.message);
	cr_assert_str_eq(bn_source_name(src), path);
	drain(&g, src);
	unlink(path);
	cr_assert_eq(g.rc, 0, "%s", g.err.message);
	cr_assert_eq(g.n, 2);
	cr_assert_str_eq(g.lines[1].data, "{\"a\":2}");
	cr_assert_eq(g.stats.bytes_read, z.size);
	got_free(&g);
	bn_buf_free(&z);
}

Test(source, dash_reads_stdin)
{
	const char *text = "from\r\nstdin\n";
	bn_source *src = NULL;
	bn_error err;
	int fds[2];
	got g;

	/* Each Criterion test runs in its own process, so replacing fd 0 is local. */
	cr_assert_eq(pipe(fds), 0);
	cr_assert_eq(write(fds[1], text, strlen(text)), (ssize_t)strlen(text));
	close(fds[1]);
	cr_assert_eq(dup2(fds[0], STDIN_FILENO), STDIN_FILENO);
	close(fds[0]);
	cr_assert_eq(bn_source_open_file(&src, "-", NULL, &err), 0, "%s", err.message);
	cr_assert_str_eq(bn_source_name(src), "<stdin>");
	drain(&g, src);
	cr_assert_eq(g.rc, 0);
	cr_assert_eq(g.n, 2);
	cr_assert_str_eq(g.lines[0].data, "from");
	cr_assert_str_eq(g.lines[1].data, "stdin");
	cr_assert_neq(fcntl(STDIN_FILENO, F_GETFD), -1, "stdin stays open");
	got_free(&g);
}

Test(source, stdin_errors_name_stdin)
{
	bn_source *src = NULL;
	bn_error err;
	bn_line line;
	int fds[2];

	cr_assert_eq(pipe(fds), 0);
	cr_assert_eq(write(fds[1], "\x28\xB5\x2F\xFD\x00", 5), 5);
	close(fds[1]);
	cr_assert_eq(dup2(fds[0], STDIN_FILENO), STDIN_FILENO);
	close(fds[0]);
	cr_assert_eq(bn_source_open_file(&src, "-", NULL, &err), 0);
	cr_assert_eq(bn_source_next(src, &line, &err), BN_ECORRUPT);
	cr_assert_str_eq(err.source, "<stdin>");
	cr_assert_str_eq(err.message, "truncated zstd input: ends at byte offset 5 inside the frame starting at byte offset 0");
	bn_source_free(src);
}

Test(source, free_accepts_null)
{
	bn_source_stats st;

	bn_source_free(NULL);
	bn_source_get_stats(NULL, &st);
	cr_assert_eq(st.lines, 0);
}

/* A bad checksum is found at the end of a frame that zstd was fed in many slices: the offset given is still the frame's start. */
Test(source, zstd_checksum_mismatch_in_a_large_frame_names_the_frame_start)
{
	bn_buf text = { 0 }, z = { 0 };
	char msg[160], row[64];
	size_t first;
	got g;

	/* incompressible-ish text, several input slices long once compressed */
	uint64_t x = 88172645463325252ull;
	while (text.size < (size_t)2 << 20) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		int n = snprintf(row, sizeof(row), "{\"v\":\"%016llx\"}\n", (unsigned long long)x);
		bn_buf_append(&text, row, (size_t)n);
	}
	zstd_frame(&z, "ok\n", 3, 1);
	first = z.size;
	zstd_frame(&z, text.data, text.size, 1);
	cr_assert_gt(z.size - first, 3 * ((size_t)128 << 10), "the frame must span several reads");
	z.data[z.size - 1] ^= 0x01;
	snprintf(msg, sizeof(msg), "corrupt zstd input in the frame starting at byte offset %zu: "
		 "Restored data doesn't match checksum", first);
	read_memory(&g, z.data, z.size, NULL);
	assert_error(&g, BN_ECORRUPT, "mem", msg, first);
	got_free(&g);
	assert_pipe_error(z.data, z.size, BN_ECORRUPT, msg, first);
	bn_buf_free(&text);
	bn_buf_free(&z);
}
