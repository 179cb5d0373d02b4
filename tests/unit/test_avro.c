/* test_avro.c - Avro encoding primitives, block codecs and the container writer, read back with Avro C and python3-avro. */
#include <criterion/criterion.h>

#include <avro.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <snappy-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "bidnorm/avro.h"
#include "sink/avro_encode.h"
#include "util/buf.h"
#include "util/sha256.h"

/* ---- encoding primitives ---- */

enum prim { P_LONG, P_INT, P_DOUBLE, P_FLOAT, P_BOOL, P_STRING, P_BRANCH, P_COUNT, P_END };

static const struct {
	enum prim kind;
	int64_t l;
	double d;
	const char *s;
	size_t want_size;
	const char *want;
} prim_cases[] = {
	{P_LONG, 0, 0, NULL, 1, "\x00"},
	{P_LONG, -1, 0, NULL, 1, "\x01"},
	{P_LONG, 1, 0, NULL, 1, "\x02"},
	{P_LONG, -64, 0, NULL, 1, "\x7f"},
	{P_LONG, 64, 0, NULL, 2, "\x80\x01"},
	{P_LONG, 300, 0, NULL, 2, "\xd8\x04"},
	{P_LONG, INT64_MIN, 0, NULL, 10, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"},
	{P_LONG, INT64_MAX, 0, NULL, 10, "\xfe\xff\xff\xff\xff\xff\xff\xff\xff\x01"},
	{P_INT, INT32_MIN, 0, NULL, 5, "\xff\xff\xff\xff\x0f"},
	{P_INT, INT32_MAX, 0, NULL, 5, "\xfe\xff\xff\xff\x0f"},
	{P_DOUBLE, 0, 1.0, NULL, 8, "\x00\x00\x00\x00\x00\x00\xf0\x3f"},
	{P_DOUBLE, 0, -2.5, NULL, 8, "\x00\x00\x00\x00\x00\x00\x04\xc0"},
	{P_DOUBLE, 0, 0.1, NULL, 8, "\x9a\x99\x99\x99\x99\x99\xb9\x3f"},
	{P_DOUBLE, 0, -0.0, NULL, 8, "\x00\x00\x00\x00\x00\x00\x00\x80"},
	{P_FLOAT, 0, 1.0, NULL, 4, "\x00\x00\x80\x3f"},
	{P_FLOAT, 0, -2.5, NULL, 4, "\x00\x00\x20\xc0"},
	{P_BOOL, 0, 0, NULL, 1, "\x00"},
	{P_BOOL, 7, 0, NULL, 1, "\x01"},
	{P_STRING, 0, 0, "", 1, "\x00"},
	{P_STRING, 0, 0, "foo", 4, "\x06" "foo"},
	{P_STRING, 0, 0, "\xc3\xa9", 3, "\x04\xc3\xa9"},
	{P_BRANCH, 1, 0, NULL, 1, "\x02"},
	{P_COUNT, 3, 0, NULL, 1, "\x06"},
	{P_END, 0, 0, NULL, 1, "\x00"},
};

Test(avro, encodes_primitives_as_the_spec_says)
{
	bn_buf b = {0};
	char raw[BN_AVRO_LONG_MAX];

	for (size_t i = 0; i < sizeof(prim_cases) / sizeof(prim_cases[0]); i++) {
		int rc = -100;
		bn_buf_reset(&b);
		switch (prim_cases[i].kind) {
		case P_LONG: rc = bn_avro_put_long(&b, prim_cases[i].l); break;
		case P_INT: rc = bn_avro_put_int(&b, (int32_t)prim_cases[i].l); break;
		case P_DOUBLE: rc = bn_avro_put_double(&b, prim_cases[i].d); break;
		case P_FLOAT: rc = bn_avro_put_float(&b, (float)prim_cases[i].d); break;
		case P_BOOL: rc = bn_avro_put_boolean(&b, (int)prim_cases[i].l); break;
		case P_STRING: rc = bn_avro_put_string(&b, prim_cases[i].s, strlen(prim_cases[i].s)); break;
		case P_BRANCH: rc = bn_avro_put_branch(&b, (int)prim_cases[i].l); break;
		case P_COUNT: rc = bn_avro_put_count(&b, (size_t)prim_cases[i].l); break;
		case P_END: rc = bn_avro_put_end(&b); break;
		}
		cr_assert_eq(rc, 0, "case %zu", i);
		cr_assert_eq(b.size, prim_cases[i].want_size, "case %zu: %zu bytes", i, b.size);
		cr_assert_eq(memcmp(b.data, prim_cases[i].want, b.size), 0, "case %zu: wrong bytes", i);
		if (prim_cases[i].kind == P_LONG) {
			size_t n = bn_avro_put_long_raw(raw, prim_cases[i].l);
			cr_assert_eq(n, prim_cases[i].want_size, "case %zu raw", i);
			cr_assert_eq(memcmp(raw, prim_cases[i].want, n), 0, "case %zu raw bytes", i);
		}
	}
	bn_buf_free(&b);
}

/* ---- codec names and levels ---- */

Test(avro, parses_and_names_codecs)
{
	static const struct {
		const char *name;
		int rc;
		bn_codec codec;
		const char *canonical;
	} cases[] = {
		{"null", BN_OK, BN_CODEC_NULL, "null"},
		{"deflate", BN_OK, BN_CODEC_DEFLATE, "deflate"},
		{"snappy", BN_OK, BN_CODEC_SNAPPY, "snappy"},
		{"zstandard", BN_OK, BN_CODEC_ZSTANDARD, "zstandard"},
		{"zstd", BN_OK, BN_CODEC_ZSTANDARD, "zstandard"},
		{"lz4", BN_EUSAGE, 0, NULL},
		{"ZSTD", BN_EUSAGE, 0, NULL},
		{"", BN_EUSAGE, 0, NULL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bn_codec c = (bn_codec)99;
		bn_error err;
		char want[128];
		bn_error_clear(&err);
		int rc = bn_codec_parse(&c, cases[i].name, &err);
		cr_assert_eq(rc, cases[i].rc, "%s", cases[i].name);
		if (rc == BN_OK) {
			cr_assert_eq(c, cases[i].codec, "%s", cases[i].name);
			cr_assert_str_eq(bn_codec_name(c), cases[i].canonical);
			continue;
		}
		cr_assert_eq(c, (bn_codec)99, "%s: out written on failure", cases[i].name);
		snprintf(want, sizeof(want), "unknown codec '%s' (expected zstandard, deflate, snappy or null)",
			 cases[i].name);
		cr_assert_str_eq(err.message, want);
		cr_assert_eq(err.code, BN_EUSAGE);
	}
	cr_assert_str_eq(bn_codec_name((bn_codec)42), "unknown");
}

Test(avro, checks_compression_levels)
{
	char zstd_range[128];
	snprintf(zstd_range, sizeof(zstd_range), "zstandard level 99 is out of range (%d to %d)", ZSTD_minCLevel(),
		 ZSTD_maxCLevel());
	const struct {
		bn_codec codec;
		int level;
		const char *message; /* NULL: accepted */
	} cases[] = {
		{BN_CODEC_NULL, 0, NULL},
		{BN_CODEC_DEFLATE, 0, NULL},
		{BN_CODEC_DEFLATE, 1, NULL},
		{BN_CODEC_DEFLATE, 9, NULL},
		{BN_CODEC_DEFLATE, 10, "deflate level 10 is out of range (1 to 9)"},
		{BN_CODEC_DEFLATE, -1, "deflate level -1 is out of range (1 to 9)"},
		{BN_CODEC_SNAPPY, 0, NULL},
		{BN_CODEC_SNAPPY, 1, "codec 'snappy' has no compression level"},
		{BN_CODEC_NULL, 3, "codec 'null' has no compression level"},
		{BN_CODEC_ZSTANDARD, 0, NULL},
		{BN_CODEC_ZSTANDARD, -5, NULL},
		{BN_CODEC_ZSTANDARD, 19, NULL},
		{BN_CODEC_ZSTANDARD, 99, zstd_range},
		{(bn_codec)7, 0, "unknown codec number 7"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bn_avro_compressor *c = NULL;
		bn_error err;
		bn_error_clear(&err);
		int rc = bn_avro_compressor_new(&c, cases[i].codec, cases[i].level, &err);
		if (!cases[i].message) {
			cr_assert_eq(rc, BN_OK, "case %zu: %s", i, err.message);
			cr_assert_not_null(c);
		} else {
			cr_assert_eq(rc, BN_EUSAGE, "case %zu", i);
			cr_assert_null(c, "case %zu: out written on failure", i);
			cr_assert_str_eq(err.message, cases[i].message);
		}
		bn_avro_compressor_free(c);
	}
}

Test(avro, free_functions_accept_null)
{
	bn_avro_compressor_free(NULL);
	bn_avro_writer_free(NULL);
}

/* ---- block codecs against the reference libraries ---- */

static uint64_t lcg(uint64_t *s)
{
	*s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
	return *s >> 33;
}

/* Bid-log-like encoded records: repeated field values, ids, numbers. */
static void fill_realistic(bn_buf *b, size_t size, uint64_t seed)
{
	static const char *const words[] = {
		"com.king.candycrushsaga", "com.supercell.clashofclans", "banner", "interstitial", "US", "DE",
		"BR", "android", "ios", "320x50", "728x90", "com.whatsapp", "com.spotify.music", "rewarded",
	};
	bn_buf_reset(b);
	while (b->size < size) {
		char tmp[64];
		uint64_t r = lcg(&seed);
		const char *w = words[r % (sizeof(words) / sizeof(words[0]))];
		bn_avro_put_string(b, w, strlen(w));
		/* a device id from a pool, a rising timestamp, a price with few digits */
		int n = snprintf(tmp, sizeof(tmp), "%016" PRIx64, (uint64_t)((lcg(&seed) % 5000) * 0x9e3779b97f4a7c15ULL));
		bn_avro_put_string(b, tmp, (size_t)n);
		bn_avro_put_long(b, (int64_t)(1700000000000ULL + b->size * 3 + lcg(&seed) % 1000));
		bn_avro_put_double(b, (double)(lcg(&seed) % 500) / 100.0);
	}
	b->size = size;
}

static void decode_block(bn_codec codec, const void *data, size_t size, bn_buf *out, size_t expect)
{
	bn_buf_reset(out);
	cr_assert_eq(bn_buf_reserve(out, expect + 1), 0);
	if (codec == BN_CODEC_DEFLATE) {
		/* raw inflate (windowBits -15) fails on a zlib header or trailer */
		z_stream z;
		memset(&z, 0, sizeof(z));
		cr_assert_eq(inflateInit2(&z, -15), Z_OK);
		z.next_in = (Bytef *)(uintptr_t)data;
		z.avail_in = (uInt)size;
		z.next_out = (Bytef *)out->data;
		z.avail_out = (uInt)(expect + 1);
		cr_assert_eq(inflate(&z, Z_FINISH), Z_STREAM_END);
		cr_assert_eq(z.avail_in, 0, "bytes after the deflate stream");
		out->size = z.total_out;
		inflateEnd(&z);
	} else if (codec == BN_CODEC_SNAPPY) {
		const unsigned char *p = data;
		size_t n = expect + 1;
		cr_assert_geq(size, 4);
		cr_assert_eq(snappy_uncompress(data, size - 4, out->data, &n), SNAPPY_OK);
		out->size = n;
		uint32_t crc = (uint32_t)crc32_z(0, (const Bytef *)out->data, n);
		uint32_t got = (uint32_t)p[size - 4] << 24 | (uint32_t)p[size - 3] << 16 | (uint32_t)p[size - 2] << 8 |
			       p[size - 1];
		cr_assert_eq(got, crc, "snappy CRC-32 %08x, want %08x", got, crc);
	} else if (codec == BN_CODEC_ZSTANDARD) {
		const unsigned char *p = data;
		cr_assert_eq(ZSTD_getFrameContentSize(data, size), (unsigned long long)expect,
			     "content size in the frame header");
		/* Frame_Header_Descriptor (RFC 8878 3.1.1.1.1) follows the magic; bit 2 is the checksum flag */
		cr_assert_geq(size, 5);
		cr_assert_eq(p[4] & 0x04, 0x04, "no content checksum");
		cr_assert_eq(ZSTD_findFrameCompressedSize(data, size), size, "exactly one frame");
		size_t n = ZSTD_decompress(out->data, expect + 1, data, size);
		cr_assert(!ZSTD_isError(n), "%s", ZSTD_getErrorName(n));
		out->size = n;
	} else {
		cr_assert_eq(data, NULL, "null codec handled by the caller");
	}
}

Test(avro, compressed_blocks_decode_with_reference_libraries)
{
	static const bn_codec codecs[] = {BN_CODEC_DEFLATE, BN_CODEC_SNAPPY, BN_CODEC_ZSTANDARD};
	static const size_t sizes[] = {0, 1, 1000, 1 << 20, 5000};
	bn_buf src = {0}, back = {0};

	for (size_t c = 0; c < sizeof(codecs) / sizeof(codecs[0]); c++) {
		bn_avro_compressor *comp = NULL;
		bn_error err;
		cr_assert_eq(bn_avro_compressor_new(&comp, codecs[c], 0, &err), BN_OK);
		/* one compressor for every size: its stream and buffer are reused */
		for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
			const void *out = NULL;
			size_t out_size = 0;
			fill_realistic(&src, sizes[s], s + 1);
			cr_assert_eq(bn_avro_compress(comp, src.data, src.size, &out, &out_size, &err), BN_OK,
				     "%s", err.message);
			decode_block(codecs[c], out, out_size, &back, src.size);
			cr_assert_eq(back.size, src.size, "%s, %zu bytes", bn_codec_name(codecs[c]), sizes[s]);
			cr_assert(src.size == 0 || memcmp(back.data, src.data, src.size) == 0, "%s, %zu bytes",
				     bn_codec_name(codecs[c]), sizes[s]);
			if (sizes[s] == 1 << 20)
				cr_assert_lt(out_size, src.size / 4 * 3, "%s barely compresses", bn_codec_name(codecs[c]));
		}
		bn_avro_compressor_free(comp);
	}
	bn_buf_free(&src);
	bn_buf_free(&back);
}

Test(avro, null_codec_hands_back_the_input)
{
	bn_avro_compressor *comp = NULL;
	const void *out = NULL;
	size_t out_size = 0;
	static const char data[] = "abc";
	cr_assert_eq(bn_avro_compressor_new(&comp, BN_CODEC_NULL, 0, NULL), BN_OK);
	cr_assert_eq(bn_avro_compress(comp, data, 3, &out, &out_size, NULL), BN_OK);
	cr_assert_eq(out, (const void *)data);
	cr_assert_eq(out_size, 3);
	bn_avro_compressor_free(comp);
}

/* ---- containers, read back by independent readers ---- */

static const char schema_json[] =
	"{\"type\":\"record\",\"name\":\"R\",\"fields\":["
	"{\"name\":\"s\",\"type\":\"string\"},"
	"{\"name\":\"n\",\"type\":[\"null\",\"long\"]},"
	"{\"name\":\"a\",\"type\":{\"type\":\"array\",\"items\":\"string\"}},"
	"{\"name\":\"m\",\"type\":{\"type\":\"map\",\"values\":\"double\"}}]}";

/* sorted by key, as the python check prints them */
static const bn_avro_meta meta[] = {
	{"bidnorm.rules.sha256", "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"},
	{"bidnorm.sources", "[\"impressions-07.jsonl.zst\",\"caf\xc3\xa9.jsonl\"]"},
	{"bidnorm.version", "0.1.0"},
};

#define BIG_SIZE (100 * 1024)

typedef struct rec {
	const char *s; /* NULL: the 100 KB string */
	int has_n;
	int64_t n;
	size_t na;
	const char *a[3];
	size_t nm;
	const char *mk[3];
	double mv[3];
	const char *mjson[3]; /* mv as python's json prints it */
} rec;

static const rec recs[] = {
	{"plain", 1, 42, 2, {"x", "y"}, 1, {"k"}, {1.5}, {"1.5"}},
	{"", 0, 0, 0, {NULL}, 0, {NULL}, {0}, {NULL}},
	{"h\xc3\xa9llo w\xc3\xb6rld \xe2\x80\x94 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x8e\xaf", 1, INT64_MIN, 1,
	 {"\xc3\xbc"}, 2, {"a", "b\xc3\xa9"}, {-0.25, 0.1}, {"-0.25", "0.1"}},
	{"quote \" backslash \\ tab \t newline \n", 1, INT64_MAX, 3, {"", "two", "three"}, 0, {NULL}, {0}, {NULL}},
	{NULL, 1, -1, 1, {"big"}, 3, {"z", "y", "x"}, {1e300, -0.0, 3.0}, {"1e+300", "-0.0", "3.0"}},
	{"last", 0, 0, 0, {NULL}, 1, {""}, {-1e-7}, {"-1e-07"}},
};
#define NRECS (sizeof(recs) / sizeof(recs[0]))
#define REPEAT 4
#define TOTAL (NRECS * REPEAT)

static const char *big_string(void)
{
	static char *big;
	uint64_t seed = 7;
	if (big)
		return big;
	big = malloc(BIG_SIZE + 1);
	cr_assert_not_null(big);
	/* letters at random: compresses, but not to nothing, so blocks stay large */
	for (size_t i = 0; i < BIG_SIZE; i++)
		big[i] = (char)('a' + lcg(&seed) % 26);
	big[BIG_SIZE] = 0;
	return big;
}

static const char *rec_s(const rec *r) { return r->s ? r->s : big_string(); }

static void encode_rec(bn_buf *b, const rec *r)
{
	const char *s = rec_s(r);
	cr_assert_eq(bn_avro_put_string(b, s, strlen(s)), 0);
	if (r->has_n) {
		cr_assert_eq(bn_avro_put_branch(b, 1), 0);
		cr_assert_eq(bn_avro_put_long(b, r->n), 0);
	} else {
		cr_assert_eq(bn_avro_put_branch(b, 0), 0);
	}
	if (r->na) {
		cr_assert_eq(bn_avro_put_count(b, r->na), 0);
		for (size_t i = 0; i < r->na; i++)
			cr_assert_eq(bn_avro_put_string(b, r->a[i], strlen(r->a[i])), 0);
	}
	cr_assert_eq(bn_avro_put_end(b), 0);
	if (r->nm) {
		cr_assert_eq(bn_avro_put_count(b, r->nm), 0);
		for (size_t i = 0; i < r->nm; i++) {
			cr_assert_eq(bn_avro_put_string(b, r->mk[i], strlen(r->mk[i])), 0);
			cr_assert_eq(bn_avro_put_double(b, r->mv[i]), 0);
		}
	}
	cr_assert_eq(bn_avro_put_end(b), 0);
}

static int temp_file(char *path, size_t size)
{
	const char *dir = getenv("TMPDIR");
	snprintf(path, size, "%s/bn_test_avro_XXXXXX", dir && dir[0] ? dir : P_tmpdir);
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0, "mkstemp: %s", strerror(errno));
	return fd;
}

/* Blocks [0,1), [1,5), [5,TOTAL): one tiny, one small, one over the writer's 256 KiB buffer. */
static const size_t block_ends[] = {1, 5, TOTAL};

static void write_container(const char *path, int fd, bn_codec codec)
{
	bn_avro_writer *w = NULL;
	bn_avro_compressor *comp = NULL;
	bn_buf block = {0};
	bn_error err;
	size_t start = 0;
	struct stat st;

	bn_error_clear(&err);
	cr_assert_eq(bn_avro_compressor_new(&comp, codec, 0, &err), BN_OK, "%s", err.message);
	cr_assert_eq(bn_avro_writer_new(&w, fd, path, schema_json, codec, meta, 3, &err), BN_OK, "%s", err.message);
	for (size_t b = 0; b < sizeof(block_ends) / sizeof(block_ends[0]); b++) {
		const void *data;
		size_t size;
		bn_buf_reset(&block);
		for (size_t i = start; i < block_ends[b]; i++)
			encode_rec(&block, &recs[i % NRECS]);
		cr_assert_eq(bn_avro_compress(comp, block.data, block.size, &data, &size, &err), BN_OK, "%s",
			     err.message);
		cr_assert_eq(bn_avro_writer_write_block(w, block_ends[b] - start, data, size, &err), BN_OK, "%s",
			     err.message);
		start = block_ends[b];
	}
	cr_assert_eq(bn_avro_writer_finish(w, &err), BN_OK, "%s", err.message);
	cr_assert_eq(fstat(fd, &st), 0);
	cr_assert_eq(bn_avro_writer_bytes(w), (uint64_t)st.st_size, "bytes %" PRIu64 ", file %lld",
		     bn_avro_writer_bytes(w), (long long)st.st_size);
	bn_avro_writer_free(w);
	bn_avro_compressor_free(comp);
	bn_buf_free(&block);
}

static void check_with_avro_c(const char *path)
{
	avro_file_reader_t reader;
	avro_schema_t ws;
	avro_value_iface_t *iface;
	avro_value_t v;

	cr_assert_eq(avro_file_reader(path, &reader), 0, "%s", avro_strerror());
	ws = avro_file_reader_get_writer_schema(reader);
	iface = avro_generic_class_from_schema(ws);
	cr_assert_eq(avro_generic_value_new(iface, &v), 0);
	for (size_t i = 0; i < TOTAL; i++) {
		const rec *r = &recs[i % NRECS];
		avro_value_t f, br, el;
		const char *str;
		size_t size, n;
		int disc;
		int64_t l;
		double d;

		avro_value_reset(&v);
		cr_assert_eq(avro_file_reader_read_value(reader, &v), 0, "record %zu: %s", i, avro_strerror());
		cr_assert_eq(avro_value_get_by_name(&v, "s", &f, NULL), 0);
		cr_assert_eq(avro_value_get_string(&f, &str, &size), 0);
		/* Avro C counts the NUL it adds */
		cr_assert_eq(size - 1, strlen(rec_s(r)), "record %zu: s has %zu bytes", i, size - 1);
		cr_assert_eq(memcmp(str, rec_s(r), size - 1), 0, "record %zu: s", i);

		cr_assert_eq(avro_value_get_by_name(&v, "n", &f, NULL), 0);
		cr_assert_eq(avro_value_get_discriminant(&f, &disc), 0);
		cr_assert_eq(disc, r->has_n, "record %zu: union branch", i);
		if (r->has_n) {
			cr_assert_eq(avro_value_get_current_branch(&f, &br), 0);
			cr_assert_eq(avro_value_get_long(&br, &l), 0);
			cr_assert_eq(l, r->n, "record %zu: n", i);
		}

		cr_assert_eq(avro_value_get_by_name(&v, "a", &f, NULL), 0);
		cr_assert_eq(avro_value_get_size(&f, &n), 0);
		cr_assert_eq(n, r->na, "record %zu: array size", i);
		for (size_t k = 0; k < n; k++) {
			cr_assert_eq(avro_value_get_by_index(&f, k, &el, NULL), 0);
			cr_assert_eq(avro_value_get_string(&el, &str, &size), 0);
			cr_assert_str_eq(str, r->a[k], "record %zu: a[%zu]", i, k);
		}

		cr_assert_eq(avro_value_get_by_name(&v, "m", &f, NULL), 0);
		cr_assert_eq(avro_value_get_size(&f, &n), 0);
		cr_assert_eq(n, r->nm, "record %zu: map size", i);
		for (size_t k = 0; k < n; k++) {
			const char *key = NULL;
			cr_assert_eq(avro_value_get_by_index(&f, k, &el, &key), 0);
			cr_assert_str_eq(key, r->mk[k], "record %zu: key %zu", i, k);
			cr_assert_eq(avro_value_get_double(&el, &d), 0);
			cr_assert_eq(memcmp(&d, &r->mv[k], sizeof(d)), 0, "record %zu: m[%s] = %g", i, key, d);
		}
	}
	avro_value_reset(&v);
	cr_assert_neq(avro_file_reader_read_value(reader, &v), 0, "more records than written");
	avro_value_decref(&v);
	avro_value_iface_decref(iface);
	avro_schema_decref(ws);
	avro_file_reader_close(reader);
}

/* JSON string as python's json.dumps(ensure_ascii=False) writes it. */
static void json_string(bn_buf *b, const char *s)
{
	bn_buf_putc(b, '"');
	for (; *s; s++) {
		char esc[8];
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\') {
			bn_buf_putc(b, '\\');
			bn_buf_putc(b, (char)ch);
		} else if (ch == '\n') {
			bn_buf_append(b, "\\n", 2);
		} else if (ch == '\t') {
			bn_buf_append(b, "\\t", 2);
		} else if (ch < 0x20) {
			snprintf(esc, sizeof(esc), "\\u%04x", ch);
			bn_buf_append(b, esc, 6);
		} else {
			bn_buf_putc(b, (char)ch);
		}
	}
	bn_buf_putc(b, '"');
}

static void append_str(bn_buf *b, const char *s) { bn_buf_append(b, s, strlen(s)); }

static void expected_python_output(bn_buf *b, bn_codec codec)
{
	char num[32];
	append_str(b, bn_codec_name(codec));
	append_str(b, "\n");
	append_str(b, schema_json);
	append_str(b, "\n");
	for (size_t i = 0; i < sizeof(meta) / sizeof(meta[0]); i++) {
		append_str(b, meta[i].key);
		append_str(b, "=");
		append_str(b, meta[i].value);
		append_str(b, "\n");
	}
	for (size_t i = 0; i < TOTAL; i++) {
		const rec *r = &recs[i % NRECS];
		append_str(b, "{\"s\":");
		json_string(b, rec_s(r));
		append_str(b, ",\"n\":");
		if (r->has_n) {
			snprintf(num, sizeof(num), "%" PRId64, r->n);
			append_str(b, num);
		} else {
			append_str(b, "null");
		}
		append_str(b, ",\"a\":[");
		for (size_t k = 0; k < r->na; k++) {
			if (k)
				append_str(b, ",");
			json_string(b, r->a[k]);
		}
		append_str(b, "],\"m\":{");
		for (size_t k = 0; k < r->nm; k++) {
			if (k)
				append_str(b, ",");
			json_string(b, r->mk[k]);
			append_str(b, ":");
			append_str(b, r->mjson[k]);
		}
		append_str(b, "}}\n");
	}
}

/* No single quotes: it is passed to the shell in them. */
static const char python_reader[] =
	"import sys, json, avro.datafile, avro.io\n"
	"r = avro.datafile.DataFileReader(open(sys.argv[1], \"rb\"), avro.io.DatumReader())\n"
	"o = sys.stdout.buffer\n"
	"o.write(r.meta[\"avro.codec\"] + b\"\\n\" + r.meta[\"avro.schema\"] + b\"\\n\")\n"
	"for k in sorted(r.meta):\n"
	"    if not k.startswith(\"avro.\"):\n"
	"        o.write(k.encode() + b\"=\" + r.meta[k] + b\"\\n\")\n"
	"for x in r:\n"
	"    o.write(json.dumps(x, ensure_ascii=False, separators=(\",\", \":\")).encode() + b\"\\n\")\n";

static void assert_same_text(const char *what, const bn_buf *got, const bn_buf *want)
{
	size_t n = got->size < want->size ? got->size : want->size;
	size_t i = 0;
	while (i < n && got->data[i] == want->data[i])
		i++;
	if (i == n && got->size == want->size)
		return;
	size_t from = i > 40 ? i - 40 : 0;
	cr_assert_fail("%s differs at byte %zu (got %zu bytes, want %zu)\n got: %.80s\nwant: %.80s", what, i,
		       got->size, want->size, got->data + from, want->data + from);
}

static void check_with_python(const char *path, bn_codec codec)
{
	bn_buf cmd = {0}, got = {0}, want = {0};
	FILE *p;
	size_t n;

	append_str(&cmd, "/usr/bin/python3 -c '");
	append_str(&cmd, python_reader);
	append_str(&cmd, "' '");
	append_str(&cmd, path);
	append_str(&cmd, "'");
	bn_buf_putc(&cmd, 0);
	p = popen(cmd.data, "r");
	cr_assert_not_null(p, "popen: %s", strerror(errno));
	do {
		cr_assert_eq(bn_buf_reserve(&got, 65536), 0);
		n = fread(got.data + got.size, 1, got.cap - got.size, p);
		got.size += n;
	} while (n > 0);
	cr_assert_eq(pclose(p), 0, "python3-avro failed to read the %s container", bn_codec_name(codec));
	expected_python_output(&want, codec);
	assert_same_text("python3-avro output", &got, &want);
	bn_buf_free(&cmd);
	bn_buf_free(&got);
	bn_buf_free(&want);
}

static void roundtrip(bn_codec codec, int avro_c_reads_it, int python_reads_it)
{
	char path[4096];
	int fd = temp_file(path, sizeof(path));
	write_container(path, fd, codec);
	close(fd);
	if (avro_c_reads_it)
		check_with_avro_c(path);
	if (python_reads_it)
		check_with_python(path, codec);
	unlink(path);
}

/* Avro C 1.11.1 has no zstandard; Debian's python3-avro has no snappy (no python3-snappy). */
Test(avro, null_container_reads_back) { roundtrip(BN_CODEC_NULL, 1, 1); }
Test(avro, deflate_container_reads_back) { roundtrip(BN_CODEC_DEFLATE, 1, 1); }
Test(avro, snappy_container_reads_back) { roundtrip(BN_CODEC_SNAPPY, 1, 0); }
Test(avro, zstandard_container_reads_back) { roundtrip(BN_CODEC_ZSTANDARD, 0, 1); }

static void slurp(bn_buf *b, const char *path)
{
	FILE *f = fopen(path, "rb");
	size_t n;
	cr_assert_not_null(f);
	do {
		cr_assert_eq(bn_buf_reserve(b, 4096), 0);
		n = fread(b->data + b->size, 1, 4096, f);
		b->size += n;
	} while (n > 0);
	fclose(f);
}

/* Writes a container with two one-record blocks and the given metadata into *out. */
static void write_two_blocks(bn_buf *out, const bn_avro_meta *md, size_t nmd)
{
	static const char data[] = "\x06" "abc"; /* one record: string "abc" */
	char path[4096];
	bn_avro_writer *w = NULL;
	int fd = temp_file(path, sizeof(path));
	cr_assert_eq(bn_avro_writer_new(&w, fd, path, "\"string\"", BN_CODEC_NULL, md, nmd, NULL), BN_OK);
	cr_assert_eq(bn_avro_writer_write_block(w, 1, data, 4, NULL), BN_OK);
	cr_assert_eq(bn_avro_writer_write_block(w, 1, data, 4, NULL), BN_OK);
	cr_assert_eq(bn_avro_writer_finish(w, NULL), BN_OK);
	bn_avro_writer_free(w);
	close(fd);
	slurp(out, path);
	unlink(path);
}

/* Regression: the marker was random, so the same input, rules and options gave different bytes every run. */
Test(avro, sync_marker_is_derived_from_the_header_and_repeated_after_each_block)
{
	bn_buf file[3] = {{0}, {0}, {0}};
	const bn_avro_meta a = { "bidnorm.sources", "[\"a.jsonl\"]" }, b = { "bidnorm.sources", "[\"b.jsonl\"]" };

	write_two_blocks(&file[0], &a, 1);
	write_two_blocks(&file[1], &a, 1);
	write_two_blocks(&file[2], &b, 1);
	/* each block: count 02, size 08, 4 data bytes, 16 sync bytes */
	const size_t block = 1 + 1 + 4 + 16;
	cr_assert_eq(file[0].size, file[1].size);
	cr_assert_eq(memcmp(file[0].data, "Obj\x01", 4), 0);
	for (int k = 0; k < 3; k++) {
		const char *end = file[k].data + file[k].size;
		const char *header_sync = end - 2 * block - 16;
		cr_assert_eq(memcmp(end - block, "\x02\x08\x06" "abc", 6), 0);
		cr_assert_eq(memcmp(header_sync, end - 16, 16), 0, "block sync differs from the header's");
		cr_assert_eq(memcmp(header_sync, end - block - 16, 16), 0);
	}
	/* the same header: byte-identical files; another header: another marker */
	cr_assert_eq(memcmp(file[0].data, file[1].data, file[0].size), 0, "same header, different bytes");
	cr_assert_neq(memcmp(file[0].data + file[0].size - 16, file[2].data + file[2].size - 16, 16), 0,
		      "different headers got the same sync marker");
	/* the marker is the first 16 bytes of SHA-256 over the header before it */
	unsigned char digest[BN_SHA256_SIZE];
	bn_sha256 sha;
	bn_sha256_init(&sha);
	bn_sha256_update(&sha, file[0].data, file[0].size - 2 * block - 16);
	bn_sha256_final(digest, &sha);
	cr_assert_eq(memcmp(digest, file[0].data + file[0].size - 16, 16), 0);
	for (int k = 0; k < 3; k++)
		bn_buf_free(&file[k]);
}

Test(avro, empty_block_writes_nothing)
{
	bn_avro_writer *w = NULL;
	int fd = open("/dev/null", O_WRONLY);
	cr_assert_geq(fd, 0);
	cr_assert_eq(bn_avro_writer_new(&w, fd, "out.avro", schema_json, BN_CODEC_NULL, NULL, 0, NULL), BN_OK);
	uint64_t before = bn_avro_writer_bytes(w);
	cr_assert_gt(before, sizeof(schema_json) + 4 + 16);
	cr_assert_eq(bn_avro_writer_write_block(w, 0, "", 0, NULL), BN_OK);
	cr_assert_eq(bn_avro_writer_bytes(w), before);
	bn_avro_writer_free(w);
	close(fd);
}

Test(avro, rejects_bad_header_input)
{
	static const struct {
		const char *schema;
		bn_avro_meta meta[2];
		size_t nmeta;
		const char *message;
	} cases[] = {
		{"\"string\"", {{"avro.x", "1"}}, 1, "metadata key 'avro.x' is reserved"},
		{"\"string\"", {{"ok", "1"}, {"avro.codec", "null"}}, 2, "metadata key 'avro.codec' is reserved"},
		{"\"string\"", {{"k", "1"}, {"k", "2"}}, 2, "metadata key 'k' appears twice"},
		{"\"string\"", {{"k", NULL}}, 1, "metadata entry 0 has no value"},
		{"\"string\"", {{"k", "1"}, {NULL, "v"}}, 2, "metadata entry 1 has no key"},
		{"", {{NULL, NULL}}, 0, "schema JSON is empty"},
		{NULL, {{NULL, NULL}}, 0, "schema JSON is empty"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bn_avro_writer *w = NULL;
		bn_error err;
		int fd = open("/dev/null", O_WRONLY);
		cr_assert_geq(fd, 0);
		bn_error_clear(&err);
		int rc = bn_avro_writer_new(&w, fd, "out.avro", cases[i].schema, BN_CODEC_NULL, cases[i].meta,
					    cases[i].nmeta, &err);
		cr_assert_eq(rc, BN_EUSAGE, "case %zu", i);
		cr_assert_null(w, "case %zu", i);
		cr_assert_str_eq(err.message, cases[i].message);
		close(fd);
	}
}

/* a write loop that retries ENOSPC would hang: fail instead */
Test(avro, full_disk_fails_at_the_header, .timeout = 10)
{
	bn_avro_writer *w = NULL;
	bn_error err;
	int fd = open("/dev/full", O_WRONLY);
	cr_assert_geq(fd, 0);
	bn_error_clear(&err);
	cr_assert_eq(bn_avro_writer_new(&w, fd, "out.avro", schema_json, BN_CODEC_ZSTANDARD, meta, 3, &err), BN_EIO);
	cr_assert_null(w);
	cr_assert_str_eq(err.message, "write failed: No space left on device");
	cr_assert_str_eq(err.source, "out.avro");
	close(fd);
}

Test(avro, full_disk_fails_at_finish_and_stays_failed, .timeout = 10)
{
	bn_avro_writer *w = NULL;
	bn_error err;
	int fd = open("/dev/null", O_WRONLY);
	int full = open("/dev/full", O_WRONLY);
	cr_assert_geq(fd, 0);
	cr_assert_geq(full, 0);
	cr_assert_eq(bn_avro_writer_new(&w, fd, "part-3.avro", "\"string\"", BN_CODEC_NULL, NULL, 0, NULL), BN_OK);
	/* the disk fills up after the header */
	cr_assert_eq(dup2(full, fd), fd);
	cr_assert_eq(bn_avro_writer_write_block(w, 1, "\x06" "abc", 4, NULL), BN_OK, "small blocks are buffered");
	bn_error_clear(&err);
	cr_assert_eq(bn_avro_writer_finish(w, &err), BN_EIO);
	cr_assert_str_eq(err.message, "write failed: No space left on device");
	cr_assert_str_eq(err.source, "part-3.avro");
	bn_error_clear(&err);
	cr_assert_eq(bn_avro_writer_write_block(w, 1, "\x06" "abc", 4, &err), BN_EIO);
	cr_assert_str_eq(err.message, "write failed: No space left on device");
	bn_error_clear(&err);
	cr_assert_eq(bn_avro_writer_finish(w, &err), BN_EIO);
	cr_assert_str_eq(err.source, "part-3.avro");
	bn_avro_writer_free(w);
	close(fd);
	close(full);
}

Test(avro, full_disk_fails_on_a_large_block, .timeout = 10)
{
	bn_avro_writer *w = NULL;
	bn_error err;
	bn_buf big = {0};
	int fd = open("/dev/null", O_WRONLY);
	int full = open("/dev/full", O_WRONLY);
	cr_assert_geq(fd, 0);
	cr_assert_geq(full, 0);
	cr_assert_eq(bn_avro_writer_new(&w, fd, "big.avro", "\"bytes\"", BN_CODEC_NULL, NULL, 0, NULL), BN_OK);
	cr_assert_eq(dup2(full, fd), fd);
	fill_realistic(&big, 1 << 20, 3);
	bn_error_clear(&err);
	cr_assert_eq(bn_avro_writer_write_block(w, 10, big.data, big.size, &err), BN_EIO);
	cr_assert_str_eq(err.message, "write failed: No space left on device");
	cr_assert_str_eq(err.source, "big.avro");
	bn_avro_writer_free(w);
	bn_buf_free(&big);
	close(fd);
	close(full);
}

static volatile sig_atomic_t alarms;

static void on_alarm(int sig)
{
	(void)sig;
	alarms++;
}

struct drain {
	int fd;
	bn_buf got;
};

/* A slow reader: the writer keeps finding the pipe full, so signals land mid-write. */
static void *drain_pipe(void *arg)
{
	struct drain *d = arg;
	for (;;) {
		if (bn_buf_reserve(&d->got, 4096) < 0)
			break;
		ssize_t k = read(d->fd, d->got.data + d->got.size, 4096);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		d->got.size += (size_t)k;
		usleep(100);
	}
	return NULL;
}

Test(avro, survives_short_writes_and_eintr, .timeout = 30)
{
	struct sigaction sa, old_sa;
	struct itimerval tick = {{0, 500}, {0, 500}}, off = {{0, 0}, {0, 0}};
	sigset_t alrm, old_mask;
	struct drain d = {-1, {0}};
	bn_avro_writer *w = NULL;
	bn_buf data = {0};
	bn_error err;
	pthread_t th;
	int p[2];

	fill_realistic(&data, 1 << 20, 11);
	cr_assert_eq(pipe(p), 0);
	d.fd = p[0];
	/* only this thread takes the signal */
	sigemptyset(&alrm);
	sigaddset(&alrm, SIGALRM);
	pthread_sigmask(SIG_BLOCK, &alrm, &old_mask);
	cr_assert_eq(pthread_create(&th, NULL, drain_pipe, &d), 0);
	pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm; /* no SA_RESTART: write(2) returns EINTR or a short count */
	sigemptyset(&sa.sa_mask);
	cr_assert_eq(sigaction(SIGALRM, &sa, &old_sa), 0);
	setitimer(ITIMER_REAL, &tick, NULL);

	bn_error_clear(&err);
	int rc = bn_avro_writer_new(&w, p[1], "pipe", "\"bytes\"", BN_CODEC_NULL, meta, 3, &err);
	if (rc == BN_OK)
		rc = bn_avro_writer_write_block(w, 1, data.data, data.size, &err);
	if (rc == BN_OK)
		rc = bn_avro_writer_write_block(w, 1, "\x02x", 2, &err);
	if (rc == BN_OK)
		rc = bn_avro_writer_finish(w, &err);

	setitimer(ITIMER_REAL, &off, NULL);
	sigaction(SIGALRM, &old_sa, NULL);
	close(p[1]);
	pthread_join(th, NULL);
	close(p[0]);
	cr_assert_eq(rc, BN_OK, "%s", err.message);
	cr_assert_gt(alarms, 10, "the timer hardly fired (%d): the test proved nothing", (int)alarms);

	/* header, then: count 02, size, data, sync; count 02, size 04, 2 bytes, sync */
	cr_assert_eq(d.got.size, bn_avro_writer_bytes(w));
	const char *end = d.got.data + d.got.size;
	const char *sync = end - 16;
	const char *big = end - 16 - 4 - 16 - data.size;
	cr_assert_eq(memcmp(end - 16 - 4, "\x02\x04\x02x", 4), 0);
	char head[2 * BN_AVRO_LONG_MAX];
	size_t nhead = bn_avro_put_long_raw(head, 1);
	nhead += bn_avro_put_long_raw(head + nhead, (int64_t)data.size);
	cr_assert_eq(memcmp(big - nhead, head, nhead), 0, "block count and size");
	cr_assert_eq(memcmp(big - nhead - 16, sync, 16), 0, "header sync");
	cr_assert_eq(memcmp(big, data.data, data.size), 0, "block data damaged in transit");
	cr_assert_eq(memcmp(big + data.size, sync, 16), 0);
	cr_assert_eq(memcmp(d.got.data, "Obj\x01", 4), 0);
	bn_avro_writer_free(w);
	bn_buf_free(&data);
	bn_buf_free(&d.got);
}
