/* test_vocab.c - vocabulary building: Avro reader and its errors, hash table, --where, ordering, top-k/min-count, parts, lint, diff. */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bidnorm/avro.h"
#include "bidnorm/normalize.h"
#include "bidnorm/vocab.h"
#include "sink/avro_encode.h"
#include "util/buf.h"
#include "vocab/avro_reader.h"
#include "vocab/count.h"

/* ---- scratch directory ---- */

static char scratch[512];

static void make_scratch(void)
{
	const char *base = getenv("TMPDIR");
	snprintf(scratch, sizeof(scratch), "%s/test_vocab.XXXXXX", base && *base ? base : P_tmpdir);
	cr_assert_not_null(mkdtemp(scratch));
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void drop_scratch(void)
{
	nftw(scratch, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static const char *in_scratch(const char *name)
{
	static char bufs[4][700];
	static int k;
	char *p = bufs[k++ % 4];
	snprintf(p, 700, "%s/%s", scratch, name);
	return p;
}

static char *read_text(const char *path, size_t *size)
{
	FILE *f = fopen(path, "rb");
	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	char *data = malloc(1 << 20);
	size_t n = fread(data, 1, (1 << 20) - 1, f);
	fclose(f);
	data[n] = '\0';
	if (size)
		*size = n;
	return data;
}

static void write_bytes(const char *path, const void *data, size_t n)
{
	FILE *f = fopen(path, "wb");
	cr_assert_not_null(f);
	cr_assert_eq(fwrite(data, 1, n, f), n);
	fclose(f);
}

/* ---- writing test Avro files with the project's writer ---- */

static const char test_schema[] =
	"{\"type\":\"record\",\"name\":\"R\",\"fields\":["
	"{\"name\":\"s\",\"type\":\"string\"},"
	"{\"name\":\"ns\",\"type\":[\"null\",\"string\"]},"
	"{\"name\":\"arr\",\"type\":{\"type\":\"array\",\"items\":\"string\"}},"
	"{\"name\":\"d\",\"type\":\"double\"},"
	"{\"name\":\"i\",\"type\":[\"null\",\"int\"]},"
	"{\"name\":\"b\",\"type\":\"boolean\"},"
	"{\"name\":\"m\",\"type\":{\"type\":\"map\",\"values\":\"double\"}},"
	"{\"name\":\"ad\",\"type\":{\"type\":\"array\",\"items\":\"double\"}}]}";

typedef struct trec {
	const char *s;
	const char *ns;        /* NULL = null */
	const char *arr[4];    /* NULL-terminated */
	int has_i;
	int i;
	int b;
} trec;

static const trec sample[] = {
	{ "a", "x", { "p", "q", "p", NULL }, 1, 1, 1 },
	{ "b", NULL, { "q", NULL }, 0, 0, 0 },
	{ "a", "y", { NULL }, 1, 2, 1 },
	{ "c", "x", { "r", "p", NULL }, 1, 1, 0 },
};

static void encode(bn_buf *b, const trec *r)
{
	size_t n = 0;
	bn_avro_put_string(b, r->s, strlen(r->s));
	if (r->ns) {
		bn_avro_put_branch(b, 1);
		bn_avro_put_string(b, r->ns, strlen(r->ns));
	} else {
		bn_avro_put_branch(b, 0);
	}
	while (r->arr[n])
		n++;
	if (n) {
		bn_avro_put_count(b, n);
		for (size_t k = 0; k < n; k++)
			bn_avro_put_string(b, r->arr[k], strlen(r->arr[k]));
	}
	bn_avro_put_end(b);
	bn_avro_put_double(b, 1.5);
	if (r->has_i) {
		bn_avro_put_branch(b, 1);
		bn_avro_put_int(b, r->i);
	} else {
		bn_avro_put_branch(b, 0);
	}
	bn_avro_put_boolean(b, r->b);
	/* a map with one entry and an array of two doubles, to be skipped */
	bn_avro_put_count(b, 1);
	bn_avro_put_string(b, "k", 1);
	bn_avro_put_double(b, 2.0);
	bn_avro_put_end(b);
	bn_avro_put_count(b, 2);
	bn_avro_put_double(b, 1.0);
	bn_avro_put_double(b, 2.0);
	bn_avro_put_end(b);
}

/* Write recs as blocks of per_block records with header metadata meta[0..nmeta); returns the header size. */
static uint64_t write_avro_meta(const char *path, bn_codec codec, const trec *recs, size_t n, size_t per_block,
				const bn_avro_meta *meta, size_t nmeta)
{
	bn_avro_compressor *comp = NULL;
	bn_avro_writer *w = NULL;
	bn_buf b = { 0 };
	bn_error err;
	uint64_t header;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	cr_assert(fd >= 0);
	cr_assert_eq(bn_avro_compressor_new(&comp, codec, 0, &err), BN_OK);
	cr_assert_eq(bn_avro_writer_new(&w, fd, path, test_schema, codec, meta, nmeta, &err), BN_OK, "%s", err.message);
	header = bn_avro_writer_bytes(w);
	for (size_t i = 0; i < n; i += per_block) {
		size_t k = n - i < per_block ? n - i : per_block;
		const void *data;
		size_t size;
		b.size = 0;
		for (size_t j = 0; j < k; j++)
			encode(&b, &recs[i + j]);
		cr_assert_eq(bn_avro_compress(comp, b.data, b.size, &data, &size, &err), BN_OK);
		cr_assert_eq(bn_avro_writer_write_block(w, k, data, size, &err), BN_OK);
	}
	cr_assert_eq(bn_avro_writer_finish(w, &err), BN_OK);
	bn_avro_writer_free(w);
	bn_avro_compressor_free(comp);
	bn_buf_free(&b);
	close(fd);
	return header;
}

/* Write recs as blocks of per_block records; returns the header size (offset of the first block). */
static uint64_t write_avro(const char *path, bn_codec codec, const trec *recs, size_t n, size_t per_block,
			   const char *rules_sha)
{
	bn_avro_meta meta[] = { { "bidnorm.rules.sha256", rules_sha }, { "bidnorm.version", "0.1.0" } };
	return write_avro_meta(path, codec, recs, n, per_block, meta, 2);
}

static const char sha_a[] = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
static const char sha_b[] = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

static bn_vocab_counter *counter(const char *const *fields, size_t nf, const char *const *where, size_t nw)
{
	bn_vocab_counter *c = NULL;
	bn_error err;
	cr_assert_eq(bn_vocab_counter_new(&c, fields, nf, where, nw, 0, 0, &err), BN_OK, "%s", err.message);
	return c;
}

static uint64_t get(const bn_vocab_counter *c, size_t f, const char *tok)
{
	return bn_vocab_counter_get(c, f, tok, strlen(tok));
}

/* ---- the reader ---- */

Test(vocab, every_codec_reads_back, .init = make_scratch, .fini = drop_scratch)
{
	static const bn_codec codecs[] = { BN_CODEC_NULL, BN_CODEC_DEFLATE, BN_CODEC_SNAPPY, BN_CODEC_ZSTANDARD };
	const char *fields[] = { "s", "ns", "arr" };
	for (size_t k = 0; k < 4; k++) {
		const char *path = in_scratch("codec.avro");
		bn_error err;
		write_avro(path, codecs[k], sample, 4, 3, sha_a);
		bn_vocab_counter *c = counter(fields, 3, NULL, 0);
		cr_assert_eq(bn_vocab_counter_add_avro(c, path, &err), BN_OK, "%s", err.message);
		cr_assert_eq(bn_vocab_counter_rows_scanned(c), 4);
		cr_assert_eq(get(c, 0, "a"), 2);
		cr_assert_eq(get(c, 0, "c"), 1);
		cr_assert_eq(get(c, 1, "x"), 2);
		cr_assert_eq(bn_vocab_counter_occurrences(c, 1), 3, "nulls are not tokens");
		/* "p" twice in record 1 counts once there */
		cr_assert_eq(get(c, 2, "p"), 2, "codec %d", (int)codecs[k]);
		cr_assert_eq(get(c, 2, "q"), 2);
		cr_assert_eq(bn_vocab_counter_distinct(c, 2), 3);
		bn_vocab_counter_free(c);
	}
}

Test(vocab, header_metadata_and_blocks)
{
	bn_avro_reader *r = NULL;
	bn_error err;
	const char *data;
	size_t size, n = 0;
	uint64_t count, total = 0;
	make_scratch();
	const char *path = in_scratch("meta.avro");
	write_avro(path, BN_CODEC_DEFLATE, sample, 4, 1, sha_b);
	cr_assert_eq(bn_avro_reader_open(&r, path, &err), BN_OK, "%s", err.message);
	const char *v = bn_avro_reader_meta(r, "bidnorm.rules.sha256", &n);
	cr_assert_eq(n, 64);
	cr_assert(memcmp(v, sha_b, 64) == 0);
	cr_assert_null(bn_avro_reader_meta(r, "nope", &n));
	cr_assert_eq(bn_avro_reader_codec(r), BN_CODEC_DEFLATE);
	int rc;
	while ((rc = bn_avro_reader_next_block(r, &data, &size, &count, &err)) > 0)
		total += count;
	cr_assert_eq(rc, 0);
	cr_assert_eq(total, 4);
	bn_avro_reader_free(r);
	drop_scratch();
}

typedef enum mutation { CUT_AT, FLIP_AT, SET_AT } mutation;

Test(vocab, corrupt_files_name_offset_and_reason, .init = make_scratch, .fini = drop_scratch)
{
	const char *fields[] = { "s" };
	const char *path = in_scratch("bad.avro");
	uint64_t header = write_avro(path, BN_CODEC_SNAPPY, sample, 4, 4, sha_a);
	size_t size;
	char *orig = read_text(path, &size);
	char want[1024];
	/* offsets: header, then the block: count (1 byte), size, data, 16-byte sync */
	struct {
		mutation m;
		long at;          /* negative: from the end */
		unsigned char v;
		const char *fmt;  /* %s = path, %llu = header */
	} cases[] = {
		{ CUT_AT, 0, 0, "%s: not an Avro object container file (no 'Obj\\x01' magic)" }, /* empty: regression, was NULL + 0 */
		{ CUT_AT, 3, 0, "%s: not an Avro object container file (no 'Obj\\x01' magic)" },
		{ CUT_AT, 12, 0, "%s: corrupt Avro header: metadata map truncated" },
		{ CUT_AT, -10, 0, "%s: corrupt Avro block at byte offset %llu: file ends before the block's sync marker" },
		{ FLIP_AT, -1, 0, "%s: corrupt Avro block at byte offset %llu: sync marker does not match the header's" },
		{ FLIP_AT, -20, 0, "%s: corrupt Avro block at byte offset %llu: snappy CRC mismatch" },
		{ SET_AT, 0, 'X', "%s: not an Avro object container file (no 'Obj\\x01' magic)" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *data = malloc(size);
		size_t n = size;
		size_t at = cases[i].at < 0 ? size - (size_t)-cases[i].at : (size_t)cases[i].at;
		memcpy(data, orig, size);
		if (cases[i].m == CUT_AT)
			n = at;
		else if (cases[i].m == FLIP_AT)
			data[at] ^= 0x01;
		else
			data[at] = (char)cases[i].v;
		write_bytes(path, data, n);
		free(data);
		bn_vocab_counter *c = counter(fields, 1, NULL, 0);
		bn_error err;
		char msg[2048];
		bn_error_clear(&err);
		int rc = bn_vocab_counter_add_avro(c, path, &err);
		cr_assert_eq(rc, BN_ECORRUPT, "case %zu: rc %d", i, rc);
		bn_error_format(&err, msg, sizeof(msg));
		snprintf(want, sizeof(want), cases[i].fmt, path, (unsigned long long)header);
		cr_assert(strncmp(msg, want, strlen(want)) == 0, "case %zu:\n got %s\nwant %s", i, msg, want);
		bn_vocab_counter_free(c);
	}
	/* a block that claims more bytes than the file has */
	memcpy(want, orig, 0);
	char *data = malloc(size);
	memcpy(data, orig, size);
	write_bytes(path, data, size - 40);
	free(data);
	bn_vocab_counter *c = counter(fields, 1, NULL, 0);
	bn_error err;
	cr_assert_eq(bn_vocab_counter_add_avro(c, path, &err), BN_ECORRUPT);
	cr_assert(strstr(err.message, "runs past the end of the file"), "%s", err.message);
	bn_vocab_counter_free(c);
	free(orig);
}

Test(vocab, missing_and_wrong_type_fields, .init = make_scratch, .fini = drop_scratch)
{
	const char *path = in_scratch("t.avro");
	char want[1024];
	write_avro(path, BN_CODEC_NULL, sample, 4, 4, sha_a);
	struct {
		const char *field;
		const char *where;
		const char *msg;
	} cases[] = {
		{ "nope", NULL, "no field 'nope' in the schema (fields: s, ns, arr, d, i, b, m, ad)" },
		{ "d", NULL, "field 'd' is double; vocabularies need string or array of string fields" },
		{ "m", NULL, "field 'm' is map; vocabularies need string or array of string fields" },
		{ "ad", NULL, "field 'ad' is array of double; vocabularies need string or array of string fields" },
		{ "i", NULL, "field 'i' is int; vocabularies need string or array of string fields" },
		{ "s", "arr=p", "--where 'arr=p': field 'arr' is array of string; filters need a string, int, long or boolean field" },
		{ "s", "d=1", "--where 'd=1': field 'd' is double; filters need a string, int, long or boolean field" },
		{ "s", "zz", "no field 'zz' in the schema (fields: s, ns, arr, d, i, b, m, ad)" },
		{ "s", "s<5", "--where 's<5': field 's' is string; <, <=, > and >= compare numbers (int, long or timestamp fields)" },
		{ "s", "b>=0", "--where 'b>=0': field 'b' is boolean; <, <=, > and >= compare numbers (int, long or timestamp fields)" },
		{ "s", "i>=x", "--where 'i>=x': field 'i' is int, and 'x' is not an integer" },
		{ "s", "i<2026-11-01", "--where 'i<2026-11-01': field 'i' is int, and '2026-11-01' is not an integer" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *f[] = { cases[i].field };
		const char *w[] = { cases[i].where };
		bn_vocab_counter *c = counter(f, 1, w, cases[i].where ? 1 : 0);
		bn_error err;
		char msg[2048];
		cr_assert_eq(bn_vocab_counter_add_avro(c, path, &err), BN_EUSAGE, "case %zu", i);
		bn_error_format(&err, msg, sizeof(msg));
		snprintf(want, sizeof(want), "%s: %s", path, cases[i].msg);
		cr_assert_str_eq(msg, want, "case %zu", i);
		bn_vocab_counter_free(c);
	}
}

Test(vocab, unreadable_input_is_eio)
{
	const char *f[] = { "s" };
	bn_vocab_counter *c = counter(f, 1, NULL, 0);
	bn_error err;
	cr_assert_eq(bn_vocab_counter_add_avro(c, "no/such/file.avro", &err), BN_EIO);
	cr_assert_str_eq(err.source, "no/such/file.avro");
	cr_assert_str_eq(err.message, "cannot open: No such file or directory");
	bn_vocab_counter_free(c);
}

Test(vocab, mixed_rules_refused_unless_allowed, .init = make_scratch, .fini = drop_scratch)
{
	const char *f[] = { "s" };
	const char *a = in_scratch("a.avro"), *b = in_scratch("b.avro");
	char want[1024];
	bn_error err;
	write_avro(a, BN_CODEC_NULL, sample, 4, 4, sha_a);
	write_avro(b, BN_CODEC_NULL, sample, 4, 4, sha_b);
	bn_vocab_counter *c = counter(f, 1, NULL, 0);
	cr_assert_eq(bn_vocab_counter_add_avro(c, a, &err), BN_OK);
	cr_assert_eq(bn_vocab_counter_add_avro(c, b, &err), BN_EUSAGE);
	snprintf(want, sizeof(want), "rules sha256 '%s' differs from '%s' of %s (use --allow-mixed-rules to combine them)",
		 sha_b, sha_a, a);
	cr_assert_str_eq(err.message, want);
	bn_vocab_counter_free(c);
	cr_assert_eq(bn_vocab_counter_new(&c, f, 1, NULL, 0, 0, 1, &err), BN_OK);
	cr_assert_eq(bn_vocab_counter_add_avro(c, a, &err), BN_OK);
	cr_assert_eq(bn_vocab_counter_add_avro(c, b, &err), BN_OK);
	cr_assert_eq(get(c, 0, "a"), 4);
	bn_vocab_counter_free(c);
}

Test(vocab, the_rules_of_the_counted_inputs_come_from_their_hashes, .init = make_scratch, .fini = drop_scratch)
{
	const char *f[] = { "s" };
	const char *a = in_scratch("a.avro"), *b = in_scratch("b.avro"), *o = in_scratch("o.avro");
	const char *part = in_scratch("o.part");
	bn_rules *r = NULL, *openrtb = NULL;
	char want[1024];
	bn_error err;
	cr_assert_eq(bn_rules_load_builtin(&openrtb, "openrtb", &err), BN_OK);
	write_avro(a, BN_CODEC_NULL, sample, 4, 4, sha_a);
	write_avro(b, BN_CODEC_NULL, sample, 4, 4, sha_b);
	write_avro(o, BN_CODEC_NULL, sample, 4, 4, bn_rules_sha256(openrtb));

	/* a part keeps the hash: the shipped set it names is found again after the merge */
	bn_vocab_counter *c = counter(f, 1, NULL, 0);
	cr_assert_eq(bn_vocab_counter_add_avro(c, o, &err), BN_OK);
	cr_assert_eq(bn_vocab_counter_write_part(c, part, &err), BN_OK);
	bn_vocab_counter_free(c);
	cr_assert_eq(bn_vocab_counter_new(&c, NULL, 0, NULL, 0, 0, 0, &err), BN_OK);
	cr_assert_eq(bn_vocab_counter_merge_part(c, part, &err), BN_OK);
	cr_assert_eq(bn_vocab_counter_load_rules(&r, c, NULL, &err), BN_OK, "%s", err.message);
	cr_assert_str_eq(bn_rules_source_name(r), "<openrtb>");
	bn_rules_free(r);
	r = NULL;
	bn_rules *bidlog = NULL;
	cr_assert_eq(bn_rules_load_builtin(&bidlog, "bidlog", &err), BN_OK);
	cr_assert_eq(bn_vocab_counter_load_rules(&r, c, "bidlog", &err), BN_EUSAGE);
	cr_assert_null(r);
	cr_assert_str_eq(err.source, o);
	snprintf(want, sizeof(want), "written with other rules (sha256 %.12s) than --rules bidlog (sha256 %.12s): leave "
		 "out --rules to use the input's own rules (where mixing is allowed, --allow-mixed-rules accepts them)",
		 bn_rules_sha256(openrtb), bn_rules_sha256(bidlog));
	cr_assert_str_eq(err.message, want);
	bn_rules_free(bidlog);
	bn_vocab_counter_free(c);

	/* a hash no shipped set has: only --rules can say which file */
	c = counter(f, 1, NULL, 0);
	cr_assert_eq(bn_vocab_counter_add_avro(c, a, &err), BN_OK);
	cr_assert_eq(bn_vocab_counter_load_rules(&r, c, NULL, &err), BN_EUSAGE);
	cr_assert_str_eq(err.message, "written with rules that are not a shipped set (sha256 aaaaaaaaaaaa), and partial "
			 "counts do not name rule files: pass --rules FILE with the rule file it was written with");
	bn_vocab_counter_free(c);

	/* mixing allowed: the rules must be named */
	cr_assert_eq(bn_vocab_counter_new(&c, f, 1, NULL, 0, 0, 1, &err), BN_OK);
	cr_assert_eq(bn_vocab_counter_add_avro(c, a, &err), BN_OK);
	cr_assert_eq(bn_vocab_counter_add_avro(c, b, &err), BN_OK);
	cr_assert_eq(bn_vocab_counter_load_rules(&r, c, NULL, &err), BN_EUSAGE);
	snprintf(want, sizeof(want), "written with other rules (sha256 bbbbbbbbbbbb) than %s (sha256 aaaaaaaaaaaa): name "
		 "the rules to use with --rules FILE|NAME", a);
	cr_assert_str_eq(err.message, want);
	cr_assert_eq(bn_vocab_counter_load_rules(&r, c, "openrtb", &err), BN_OK);
	bn_rules_free(r);
	bn_vocab_counter_free(c);

	/* nothing counted says anything: the default rules */
	c = counter(f, 1, NULL, 0);
	cr_assert_eq(bn_vocab_counter_load_rules(&r, c, NULL, &err), BN_OK);
	cr_assert_str_eq(bn_rules_source_name(r), "<default>");
	bn_rules_free(r);
	bn_vocab_counter_free(c);
	bn_rules_free(openrtb);
}

Test(vocab, mixed_text_repair_versions_refused_unless_allowed, .init = make_scratch, .fini = drop_scratch)
{
	/* a.avro predates the key (repair version 1), b.avro was written by this bidnorm. */
	const char *f[] = { "s" };
	const char *a = in_scratch("a.avro"), *b = in_scratch("b.avro"), *p = in_scratch("b.part");
	bn_avro_meta meta[] = { { "bidnorm.rules.sha256", sha_a }, { "bidnorm.text_repair", bn_text_repair_version() } };
	char want[1024];
	bn_error err;
	cr_assert_str_eq(bn_text_repair_version(), "2");
	write_avro(a, BN_CODEC_NULL, sample, 4, 4, sha_a);
	write_avro_meta(b, BN_CODEC_NULL, sample, 4, 4, meta, 2);
	bn_vocab_counter *c = counter(f, 1, NULL, 0);
	cr_assert_eq(bn_vocab_counter_add_avro(c, a, &err), BN_OK);
	cr_assert_eq(bn_vocab_counter_add_avro(c, b, &err), BN_EUSAGE);
	snprintf(want, sizeof(want),
		 "text repair version '2' differs from '1' of %s: the same text gives other tokens "
		 "(ingest both again with one bidnorm, or use --allow-mixed-rules to combine them)", a);
	cr_assert_str_eq(err.message, want);
	cr_assert_str_eq(err.source, b);
	bn_vocab_counter_free(c);
	/* The version travels in partial counts: merging b's part after a is refused alike. */
	c = counter(f, 1, NULL, 0);
	cr_assert_eq(bn_vocab_counter_add_avro(c, b, &err), BN_OK);
	cr_assert_eq(bn_vocab_counter_write_part(c, p, &err), BN_OK, "%s", err.message);
	bn_vocab_counter_free(c);
	c = counter(f, 1, NULL, 0);
	cr_assert_eq(bn_vocab_counter_add_avro(c, a, &err), BN_OK);
	cr_assert_eq(bn_vocab_counter_merge_part(c, p, &err), BN_EUSAGE);
	cr_assert_str_eq(err.message, want);
	bn_vocab_counter_free(c);
	cr_assert_eq(bn_vocab_counter_new(&c, f, 1, NULL, 0, 0, 1, &err), BN_OK);
	cr_assert_eq(bn_vocab_counter_add_avro(c, a, &err), BN_OK);
	cr_assert_eq(bn_vocab_counter_add_avro(c, b, &err), BN_OK);
	cr_assert_eq(get(c, 0, "a"), 4);
	bn_vocab_counter_free(c);
}

/* ---- --where ---- */

Test(vocab, where_parsing)
{
	struct {
		const char *text;
		int ok;
		bn_where_op op;
		const char *field, *value;
	} cases[] = {
		{ "click=1", 1, BN_WHERE_EQ, "click", "1" },
		{ "click!=1", 1, BN_WHERE_NE, "click", "1" },
		{ "country", 1, BN_WHERE_NOTNULL, "country", "" },
		{ "country=", 1, BN_WHERE_EQ, "country", "" },
		{ "a=b=c", 1, BN_WHERE_EQ, "a", "b=c" },
		{ "a!=!=", 1, BN_WHERE_NE, "a", "!=" },
		{ "_x9=US", 1, BN_WHERE_EQ, "_x9", "US" },
		{ "ts<5", 1, BN_WHERE_LT, "ts", "5" },
		{ "ts<=5", 1, BN_WHERE_LE, "ts", "5" },
		{ "ts>2026-11-01", 1, BN_WHERE_GT, "ts", "2026-11-01" },
		{ "ts>=-1", 1, BN_WHERE_GE, "ts", "-1" },
		{ "ts>==1", 1, BN_WHERE_GE, "ts", "=1" },
		{ "ts=>1", 1, BN_WHERE_EQ, "ts", ">1" },
		{ "ts<", 1, BN_WHERE_LT, "ts", "" },
		{ "", 0, 0, NULL, NULL },
		{ "<1", 0, 0, NULL, NULL },
		{ "a!1", 0, 0, NULL, NULL },
		{ "=1", 0, 0, NULL, NULL },
		{ "!=1", 0, 0, NULL, NULL },
		{ "9a=1", 0, 0, NULL, NULL },
		{ "a b=1", 0, 0, NULL, NULL },
		{ "a.b=1", 0, 0, NULL, NULL },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bn_where w;
		bn_error err;
		char want[256];
		int rc = bn_where_parse(&w, cases[i].text, &err);
		if (!cases[i].ok) {
			cr_assert_eq(rc, BN_EUSAGE, "%s", cases[i].text);
			snprintf(want, sizeof(want), "--where '%s': expected FIELD, or FIELD then =, !=, <, <=, > or >= and a VALUE",
				 cases[i].text);
			cr_assert_str_eq(err.message, want);
			continue;
		}
		cr_assert_eq(rc, BN_OK, "%s", cases[i].text);
		cr_assert_eq(w.op, cases[i].op, "%s", cases[i].text);
		cr_assert_str_eq(w.field, cases[i].field);
		cr_assert_str_eq(w.value, cases[i].value);
		cr_assert_str_eq(w.given, cases[i].value);
		bn_where_free(&w);
	}
}

Test(vocab, where_matching)
{
	struct {
		const char *text;
		bn_avro_kind kind;
		int is_null;
		const char *s;
		int64_t i;
		int want;
	} cases[] = {
		{ "c=US", BN_AVRO_KIND_STRING, 0, "US", 0, 1 },
		{ "c=US", BN_AVRO_KIND_STRING, 0, "USA", 0, 0 },
		{ "c=US", BN_AVRO_KIND_STRING, 1, NULL, 0, 0 },
		{ "c!=US", BN_AVRO_KIND_STRING, 1, NULL, 0, 1 },
		{ "c!=US", BN_AVRO_KIND_STRING, 0, "US", 0, 0 },
		{ "c", BN_AVRO_KIND_STRING, 0, "", 0, 1 },
		{ "c", BN_AVRO_KIND_STRING, 1, NULL, 0, 0 },
		{ "c=", BN_AVRO_KIND_STRING, 0, "", 0, 1 },
		{ "n=1", BN_AVRO_KIND_INT, 0, NULL, 1, 1 },
		{ "n=1", BN_AVRO_KIND_INT, 0, NULL, 10, 0 },
		{ "n=-7", BN_AVRO_KIND_INT, 0, NULL, -7, 1 },
		{ "n=01", BN_AVRO_KIND_INT, 0, NULL, 1, 0 },
		{ "n!=0", BN_AVRO_KIND_INT, 0, NULL, 0, 0 },
		{ "b=true", BN_AVRO_KIND_BOOLEAN, 0, NULL, 1, 1 },
		{ "b=false", BN_AVRO_KIND_BOOLEAN, 0, NULL, 1, 0 },
		{ "b=1", BN_AVRO_KIND_BOOLEAN, 0, NULL, 1, 0 },
		{ "n<5", BN_AVRO_KIND_INT, 0, NULL, 4, 1 },
		{ "n<5", BN_AVRO_KIND_INT, 0, NULL, 5, 0 },
		{ "n<=5", BN_AVRO_KIND_INT, 0, NULL, 5, 1 },
		{ "n<=5", BN_AVRO_KIND_INT, 0, NULL, 6, 0 },
		{ "n>5", BN_AVRO_KIND_INT, 0, NULL, 6, 1 },
		{ "n>5", BN_AVRO_KIND_INT, 0, NULL, 5, 0 },
		{ "n>=-5", BN_AVRO_KIND_INT, 0, NULL, -5, 1 },
		{ "n>=-5", BN_AVRO_KIND_INT, 0, NULL, -6, 0 },
		{ "n>=1795132800000", BN_AVRO_KIND_INT, 0, NULL, 1795132800000, 1 },
		{ "n>=1795132800000", BN_AVRO_KIND_INT, 0, NULL, 1795132799999, 0 },
		{ "n<5", BN_AVRO_KIND_INT, 1, NULL, 0, 0 },          /* null is in no range */
		{ "n>=x", BN_AVRO_KIND_INT, 0, NULL, 0, 0 },         /* refused before rows are read */
		{ "s<5", BN_AVRO_KIND_STRING, 0, "4", 0, 0 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bn_where w;
		bn_avro_value v = { 0 };
		cr_assert_eq(bn_where_parse(&w, cases[i].text, NULL), BN_OK);
		v.is_null = cases[i].is_null;
		v.str.p = cases[i].s;
		v.str.n = cases[i].s ? strlen(cases[i].s) : 0;
		v.i = cases[i].i;
		cr_assert_eq(bn_where_match(&w, cases[i].kind, &v), cases[i].want, "case %zu (%s)", i, cases[i].text);
		bn_where_free(&w);
	}
}

Test(vocab, where_filters_rows_in_files, .init = make_scratch, .fini = drop_scratch)
{
	const char *path = in_scratch("w.avro");
	write_avro(path, BN_CODEC_ZSTANDARD, sample, 4, 2, sha_a);
	struct {
		const char *where[3];
		size_t n;
		uint64_t matched;
		uint64_t count_a;
	} cases[] = {
		{ { NULL }, 0, 4, 2 },
		{ { "i=1" }, 1, 2, 1 },
		{ { "i!=1" }, 1, 2, 1 },     /* i=2 and null */
		{ { "i" }, 1, 3, 2 },
		{ { "b=true" }, 1, 2, 2 },
		{ { "b=true", "i=2" }, 2, 1, 1 },
		{ { "ns=x", "s=c" }, 2, 1, 0 },
		{ { "s=zzz" }, 1, 0, 0 },
		{ { "i>=1" }, 1, 3, 2 },
		{ { "i>1" }, 1, 1, 1 },
		{ { "i<2" }, 1, 2, 1 },      /* null is in no range */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *f[] = { "s", "arr" };
		bn_error err;
		bn_vocab_counter *c = counter(f, 2, cases[i].where, cases[i].n);
		cr_assert_eq(bn_vocab_counter_add_avro(c, path, &err), BN_OK, "case %zu: %s", i, err.message);
		cr_assert_eq(bn_vocab_counter_rows_scanned(c), 4);
		cr_assert_eq(bn_vocab_counter_rows_matched(c), cases[i].matched, "case %zu", i);
		cr_assert_eq(get(c, 0, "a"), cases[i].count_a, "case %zu", i);
		bn_vocab_counter_free(c);
	}
}

/* ---- the hash table ---- */

Test(vocab, hash_table_grows_and_keeps_counts)
{
	bn_vmem mem = { 0 };
	bn_vtable t;
	char key[32];
	cr_assert_eq(bn_vtable_init(&t, &mem, "f", 0, NULL), BN_OK);
	size_t cap0 = t.cap;
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < 100000; i++) {
			int n = snprintf(key, sizeof(key), "tok%d", i);
			cr_assert_eq(bn_vtable_add(&t, key, (size_t)n, (uint64_t)(i % 7 + 1), 0, NULL), BN_OK);
		}
	}
	cr_assert_eq(t.n, 100000);
	cr_assert_gt(t.cap, cap0);
	cr_assert_leq(t.n * 4, t.cap * 3, "load stays at most 3/4");
	for (int i = 0; i < 100000; i += 997) {
		int n = snprintf(key, sizeof(key), "tok%d", i);
		const bn_ventry *e = bn_vtable_find(&t, key, (size_t)n);
		cr_assert_not_null(e);
		cr_assert_eq(e->count, 3 * (uint64_t)(i % 7 + 1));
	}
	cr_assert_null(bn_vtable_find(&t, "tok100000", 9));
	/* keys take a 4-byte length and their bytes, in 1 MiB chunks */
	size_t key_bytes = 0;
	for (int i = 0; i < 100000; i++)
		key_bytes += 4 + (size_t)snprintf(key, sizeof(key), "tok%d", i);
	cr_assert_eq(t.key_bytes, key_bytes);
	cr_assert_eq(mem.used, t.cap * sizeof(bn_ventry) + (key_bytes + (1 << 20) - 1) / (1 << 20) * (1 << 20));
	cr_assert_geq(mem.peak, mem.used + t.cap / 2 * sizeof(bn_ventry), "rehash holds both tables");
	bn_vtable_free(&t);
	cr_assert_eq(mem.used, 0);
}

Test(vocab, empty_token_and_stamps)
{
	bn_vmem mem = { 0 };
	bn_vtable t;
	cr_assert_eq(bn_vtable_init(&t, &mem, "f", 0, NULL), BN_OK);
	cr_assert_eq(bn_vtable_add(&t, "", 0, 1, 0, NULL), BN_OK);
	cr_assert_eq(bn_vtable_add(&t, "x", 1, 1, 5, NULL), BN_OK);
	cr_assert_eq(bn_vtable_add(&t, "x", 1, 1, 5, NULL), BN_OK);   /* same record: ignored */
	cr_assert_eq(bn_vtable_add(&t, "x", 1, 1, 6, NULL), BN_OK);
	cr_assert_eq(bn_vtable_find(&t, "", 0)->count, 1);
	cr_assert_eq(bn_vtable_find(&t, "x", 1)->count, 2);
	cr_assert_eq(t.occurrences, 3);
	bn_vtable_free(&t);
}

Test(vocab, max_memory_fails_cleanly)
{
	const char *f[] = { "app_bundle" };
	bn_vocab_counter *c = NULL;
	bn_error err;
	char key[32];
	int rc = BN_OK;
	cr_assert_eq(bn_vocab_counter_new(&c, f, 1, NULL, 0, 2 * 1024 * 1024, 0, &err), BN_OK);
	int i;
	for (i = 0; i < 1000000 && rc == BN_OK; i++) {
		int n = snprintf(key, sizeof(key), "t%d", i);
		rc = bn_vocab_counter_add_token(c, 0, key, (size_t)n, 1, &err);
	}
	cr_assert_eq(rc, BN_ENOMEM);
	/* 1 MiB of token chunk + 16384 slots fill to 3/4 (12288); growing to 32768 slots while the old table lives passes 2 MiB */
	cr_assert_str_eq(err.message, "counting needs more than --max-memory (2097152 bytes): 12288 distinct tokens so far in "
				      "field 'app_bundle' (raise the limit, or let counting spill to disk)");
	cr_assert_leq(bn_vocab_counter_peak_memory(c), 2 * 1024 * 1024);
	bn_vocab_counter_free(c);
}

/* ---- compressed blocks that lie about their size ---- */

/* A container of codec with one block whose compressed bytes are payload[0..n), then its first block read. */
static int read_crafted_block(const char *path, bn_codec codec, const void *payload, size_t n, bn_error *err)
{
	bn_avro_meta meta[] = { { "bidnorm.rules.sha256", sha_a } };
	bn_avro_writer *w = NULL;
	bn_avro_reader *r = NULL;
	const char *data;
	size_t size;
	uint64_t count;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	cr_assert(fd >= 0);
	cr_assert_eq(bn_avro_writer_new(&w, fd, path, test_schema, codec, meta, 1, err), BN_OK);
	cr_assert_eq(bn_avro_writer_write_block(w, 1, payload, n, err), BN_OK);
	cr_assert_eq(bn_avro_writer_finish(w, err), BN_OK);
	bn_avro_writer_free(w);
	close(fd);
	cr_assert_eq(bn_avro_reader_open(&r, path, err), BN_OK, "%s", err->message);
	int rc = bn_avro_reader_next_block(r, &data, &size, &count, err);
	bn_avro_reader_free(r);
	return rc;
}

/*
 * Regression (found by fuzzing avro_reader: a 1.7 KB file made the reader reserve 2 GiB): snappy's
 * length prefix and a zstd frame's content size are claims. With the address space capped at
 * 256 MiB, a block that claims 96 MiB from 8 bytes, or 1.5 GiB from a few, must be reported as
 * corrupt - before the fix the reserve failed and the read said "out of memory".
 */
Test(vocab, blocks_claiming_huge_sizes_are_corrupt_not_allocated, .init = make_scratch, .fini = drop_scratch)
{
	bn_error err;
#if !defined(__SANITIZE_ADDRESS__) /* ASan maps terabytes of shadow memory */
	struct rlimit lim = { 256u << 20, 256u << 20 };
	cr_assert_eq(setrlimit(RLIMIT_AS, &lim), 0);
#endif
	/* snappy: varint 100663296, 4 bytes, a 4-byte CRC */
	static const unsigned char snappy[] = { 0x80, 0x80, 0x80, 0x30, 'a', 'b', 'c', 'd', 0, 0, 0, 0 };
	cr_assert_eq(read_crafted_block(in_scratch("s.avro"), BN_CODEC_SNAPPY, snappy, sizeof(snappy), &err), BN_ECORRUPT,
		     "%s", err.message);
	cr_assert(strstr(err.message, ": snappy data claims 100663296 bytes from 8 compressed bytes"), "%s", err.message);
	/* zstd: magic, single segment with an 8-byte content size of 1.5 GiB, one raw last block of 4 bytes */
	static const unsigned char zstd[] = { 0x28, 0xB5, 0x2F, 0xFD, 0xE0, 0x00, 0x00, 0x00, 0x60, 0x00, 0x00, 0x00, 0x00,
					      0x21, 0x00, 0x00, 'a', 'b', 'c', 'd' };
	cr_assert_eq(read_crafted_block(in_scratch("z.avro"), BN_CODEC_ZSTANDARD, zstd, sizeof(zstd), &err), BN_ECORRUPT,
		     "%s", err.message);
	cr_assert(strstr(err.message, ": invalid zstandard data ("), "%s", err.message);
}

/* ---- sorting entries ---- */

/* The order bn_vsort must give: major, then the token's bytes, shorter first. */
static int reference_cmp(const void *pa, const void *pb)
{
	const bn_vsort_item *a = pa, *b = pb;
	if (a->k[0] != b->k[0])
		return a->k[0] < b->k[0] ? -1 : 1;
	return bn_vtoken_cmp(a->key, bn_vkey_len(a->key), b->key, bn_vkey_len(b->key));
}

/*
 * Tokens that stress the inline 16-byte key: shared prefixes of every length around 8 and 16,
 * NUL bytes (a zero-padded key cannot tell "ab" from "ab\0"), bytes >= 0x80, duplicates of the
 * major key; inputs already sorted, reversed and all equal (quicksort's bad cases).
 */
Test(vocab, vsort_orders_like_the_reference_comparator)
{
	enum { N = 3000 };
	static bn_ventry entries[N];
	static bn_vsort_item got[N], want[N];
	static char keys[N][4 + 40];
	uint64_t x = 0x9e3779b97f4a7c15ull;
	for (int pattern = 0; pattern < 5; pattern++) {
		for (int i = 0; i < N; i++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			uint32_t len = pattern == 4 ? 12 : (uint32_t)(x % 34);
			char *k = keys[i] + 4;
			for (uint32_t j = 0; j < len; j++) {
				uint64_t r = x >> (j % 8 * 8);
				/* mostly a shared alphabet prefix, sometimes NUL, 0xff or a random byte */
				k[j] = j < (x >> 40) % 20 ? "com.example.apps.xyz"[j] : (char)(r % 5 == 0 ? 0 : r % 5 == 1 ? 0xff : r);
			}
			if (pattern == 4)
				memcpy(k, "com.same.tok", 12);
			memcpy(keys[i], &len, 4);
			entries[i].key = k;
			entries[i].count = pattern == 1 ? 7 : x % 4;
			uint64_t major = pattern == 0 ? 0 : UINT64_MAX - entries[i].count;
			bn_vsort_item_set(&got[i], major, &entries[i]);
		}
		if (pattern == 2 || pattern == 3) { /* sorted, then reversed */
			qsort(got, N, sizeof(*got), reference_cmp);
			for (int i = 0; pattern == 3 && i < N / 2; i++) {
				bn_vsort_item t = got[i];
				got[i] = got[N - 1 - i];
				got[N - 1 - i] = t;
			}
		}
		memcpy(want, got, sizeof(got));
		qsort(want, N, sizeof(*want), reference_cmp);
		bn_vsort(got, N);
		for (int i = 0; i < N; i++)
			cr_assert(reference_cmp(&got[i], &want[i]) == 0, "pattern %d: position %d differs", pattern, i);
	}
	bn_vsort(got, 0);
	bn_vsort(got, 1);
}

/* ---- spilling past max_memory ---- */

/* Token i of the spill tests: every tenth one of 2,000 frequent ones (15 adds of 1..7 each), else a tail token seen once. */
static void spill_token(char *out, size_t cap, int i, uint64_t *count)
{
	if (i % 10 == 0) {
		snprintf(out, cap, "com.frequent%d.app", i / 10 % 2000);
		*count = 1 + (uint64_t)(i / 10 % 7);
	} else {
		snprintf(out, cap, "com.tail%d.app", i);
		*count = 1;
	}
}

static bn_vocab_counter *spill_counter(size_t max_memory, const char *spill_dir)
{
	const char *f[] = { "app_bundle" };
	bn_vocab_counter *c = NULL;
	bn_error err;
	char tok[64];
	uint64_t count;
	cr_assert_eq(bn_vocab_counter_new(&c, f, 1, NULL, 0, max_memory, 0, &err), BN_OK);
	if (spill_dir)
		cr_assert_eq(bn_vocab_counter_spill_to(c, spill_dir, &err), BN_OK, "%s", err.message);
	for (int i = 0; i < 300000; i++) {
		spill_token(tok, sizeof(tok), i, &count);
		cr_assert_eq(bn_vocab_counter_add_token(c, 0, tok, strlen(tok), count, &err), BN_OK, "%s", err.message);
	}
	return c;
}

Test(vocab, spilling_counts_write_the_same_files, .init = make_scratch, .fini = drop_scratch)
{
	char dir_a[600], dir_b[600], spill[600], path_a[700], path_b[700];
	bn_vocab_write_options opt;
	bn_vocab_write_result res;
	bn_error err;
	size_t na, nb;
	snprintf(spill, sizeof(spill), "%s/spill", scratch);
	cr_assert_eq(mkdir(spill, 0755), 0);
	bn_vocab_counter *plain = spill_counter(0, NULL), *spilled = spill_counter(3 << 20, spill);
	cr_assert_gt(bn_vocab_counter_spilled_runs(spilled), 2);
	cr_assert_leq(bn_vocab_counter_peak_memory(spilled), (3 << 20) + (1 << 20), "at most one token chunk over");
	cr_assert_eq(bn_vocab_counter_spilled_runs(plain), 0);

	/* count files: every token streams out of the runs, in the same bytes */
	cr_assert_eq(bn_vocab_counter_write_part(plain, in_scratch("a.part"), &err), BN_OK);
	cr_assert_eq(bn_vocab_counter_write_part(spilled, in_scratch("b.part"), &err), BN_OK, "%s", err.message);
	char *a = read_text(in_scratch("a.part"), &na), *b = read_text(in_scratch("b.part"), &nb);
	cr_assert(na == nb && memcmp(a, b, na) == 0, "count files differ (%zu and %zu bytes)", na, nb);
	free(a);
	free(b);
	cr_assert_eq(bn_vocab_counter_distinct(spilled, 0), bn_vocab_counter_distinct(plain, 0));

	/* vocabularies: only tokens counted 3 times or more come back into memory */
	bn_vocab_write_options_init(&opt);
	opt.min_count = 3;
	snprintf(dir_a, sizeof(dir_a), "%s/va", scratch);
	snprintf(dir_b, sizeof(dir_b), "%s/vb", scratch);
	cr_assert_eq(bn_vocab_write(&res, plain, dir_a, &opt, NULL, NULL, &err), BN_OK, "%s", err.message);
	cr_assert_eq(bn_vocab_write(&res, spilled, dir_b, &opt, NULL, NULL, &err), BN_OK, "%s", err.message);
	cr_assert_eq(res.tokens_written, 2000, "%llu", (unsigned long long)res.tokens_written);
	for (int k = 0; k < 2; k++) {
		const char *name = k ? "app_bundle.counts.tsv" : "app_bundle.txt";
		snprintf(path_a, sizeof(path_a), "%s/%s", dir_a, name);
		snprintf(path_b, sizeof(path_b), "%s/%s", dir_b, name);
		a = read_text(path_a, &na);
		b = read_text(path_b, &nb);
		cr_assert(na == nb && memcmp(a, b, na) == 0, "%s differs", name);
		free(a);
		free(b);
	}
	cr_assert_eq(bn_vocab_counter_distinct(spilled, 0), 270000 + 2000);
	bn_vocab_counter_free(plain);
	bn_vocab_counter_free(spilled);
	DIR *d = opendir(spill);
	struct dirent *e;
	while ((e = readdir(d)))
		cr_assert(e->d_name[0] == '.', "left in the spill folder: %s", e->d_name);
	closedir(d);
}

Test(vocab, spilling_errors)
{
	const char *f[] = { "a", "b" };
	bn_vocab_counter *c = NULL;
	bn_error err;
	cr_assert_eq(bn_vocab_counter_new(&c, f, 2, NULL, 0, 1 << 20, 0, &err), BN_OK);
	cr_assert_eq(bn_vocab_counter_spill_to(c, NULL, &err), BN_EUSAGE);
	cr_assert_str_eq(err.message, "--max-memory 1048576 is too small to spill the counts of 2 fields: give at least "
				      "4292608 bytes");
	bn_vocab_counter_free(c);

	/* the folder is made at the first spill: a file where it should go fails then, naming the place */
	cr_assert_eq(bn_vocab_counter_new(&c, f, 1, NULL, 0, 3 << 20, 0, &err), BN_OK);
	cr_assert_eq(bn_vocab_counter_spill_to(c, "/dev/null", &err), BN_OK);
	char tok[32];
	int rc = BN_OK;
	for (int i = 0; i < 1000000 && rc == BN_OK; i++)
		rc = bn_vocab_counter_add_token(c, 0, tok, (size_t)snprintf(tok, sizeof(tok), "t%d", i), 1, &err);
	cr_assert_eq(rc, BN_EIO);
	cr_assert_str_eq(err.source, "/dev/null");
	cr_assert_str_eq(err.message, "cannot make a folder for spilled counts: Not a directory");
	bn_vocab_counter_free(c);
}

Test(vocab, a_spilled_run_cut_short_is_reported, .init = make_scratch, .fini = drop_scratch)
{
	bn_vocab_counter *c = spill_counter(3 << 20, scratch);
	bn_vocab_write_result res;
	bn_error err;
	char dir[600];
	const bn_vtable *t = &c->tables[0];
	cr_assert_gt(t->nruns, 1);
	cr_assert_eq(truncate(t->runs[1], 1000), 0);
	snprintf(dir, sizeof(dir), "%s/v", scratch);
	cr_assert_eq(bn_vocab_write(&res, c, dir, NULL, NULL, NULL, &err), BN_ECORRUPT);
	cr_assert_str_eq(err.source, t->runs[1]);
	cr_assert_str_eq(err.message, "spilled counts file is cut short or longer than written (changed while counting?)");
	cr_assert_eq(access(dir, F_OK), -1, "nothing is published");
	bn_vocab_counter_free(c);
}

/* ---- selection and files ---- */

typedef struct tokc {
	const char *tok;
	uint64_t count;
} tokc;

static void build_dir(const char *dir, const char *field, const tokc *toks, size_t n, uint64_t min_count, uint64_t top_k)
{
	const char *f[] = { field };
	bn_vocab_counter *c = counter(f, 1, NULL, 0);
	bn_vocab_write_options opt;
	bn_vocab_write_result res;
	bn_error err;
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(bn_vocab_counter_add_token(c, 0, toks[i].tok, strlen(toks[i].tok), toks[i].count, &err), BN_OK);
	bn_vocab_write_options_init(&opt);
	opt.min_count = min_count;
	opt.top_k = top_k;
	opt.force = 1;
	cr_assert_eq(bn_vocab_write(&res, c, dir, &opt, NULL, NULL, &err), BN_OK, "%s", err.message);
	cr_assert_eq(res.lint_failures, 0);
	bn_vocab_counter_free(c);
}

Test(vocab, order_ties_min_count_top_k, .init = make_scratch, .fini = drop_scratch)
{
	static const tokc toks[] = {
		{ "b", 3 }, { "a", 3 }, { "c", 5 }, { "ab", 3 }, { "d", 1 }, { "B", 3 }, { "\xc3\xa9", 3 },
	};
	struct {
		uint64_t min_count, top_k;
		const char *want;
		const char *counts;
	} cases[] = {
		{ 1, 0, "c\nB\na\nab\nb\n\xc3\xa9\nd\n", "c\t5\nB\t3\na\t3\nab\t3\nb\t3\n\xc3\xa9\t3\nd\t1\n" },
		{ 1, 2, "c\nB\n", "c\t5\nB\t3\n" },
		{ 3, 0, "c\nB\na\nab\nb\n\xc3\xa9\n", NULL },
		{ 4, 0, "c\n", NULL },
		{ 5, 0, "c\n", NULL },
		{ 6, 0, "", "" },
		{ 1, 7, "c\nB\na\nab\nb\n\xc3\xa9\nd\n", NULL },
		{ 1, 100, "c\nB\na\nab\nb\n\xc3\xa9\nd\n", NULL },
		{ 3, 4, "c\nB\na\nab\n", NULL },
		{ 1, 1, "c\n", NULL },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *dir = in_scratch("v");
		char p[800];
		build_dir(dir, "city", toks, sizeof(toks) / sizeof(toks[0]), cases[i].min_count, cases[i].top_k);
		snprintf(p, sizeof(p), "%s/city.txt", dir);
		char *got = read_text(p, NULL);
		cr_assert_str_eq(got, cases[i].want, "case %zu", i);
		free(got);
		if (cases[i].counts) {
			snprintf(p, sizeof(p), "%s/city.counts.tsv", dir);
			got = read_text(p, NULL);
			cr_assert_str_eq(got, cases[i].counts, "case %zu", i);
			free(got);
		}
	}
}

/* Regression: a --where that matched no row published empty vocabularies and exited 0. */
Test(vocab, a_counter_of_zero_rows_is_not_published, .init = make_scratch, .fini = drop_scratch)
{
	const char *f[] = { "exchange" };
	const char *dir = in_scratch("empty");
	bn_vocab_counter *c = counter(f, 1, NULL, 0);
	bn_vocab_write_result res;
	bn_error err;
	cr_assert_eq(bn_vocab_write(&res, c, dir, NULL, NULL, NULL, &err), BN_EREJECTRATE);
	cr_assert_str_eq(err.message, "the inputs hold no rows: a vocabulary built from zero rows is not published");
	cr_assert_eq(access(dir, F_OK), -1, "nothing may be written");
	bn_vocab_counter_free(c);
}

Test(vocab, existing_dir_needs_force, .init = make_scratch, .fini = drop_scratch)
{
	const char *f[] = { "exchange" };
	const char *dir = in_scratch("exists");
	bn_vocab_counter *c = counter(f, 1, NULL, 0);
	bn_vocab_write_result res;
	bn_error err;
	cr_assert_eq(bn_vocab_counter_add_token(c, 0, "x", 1, 1, &err), BN_OK);
	cr_assert_eq(mkdir(dir, 0755), 0);
	cr_assert_eq(bn_vocab_write(&res, c, dir, NULL, NULL, NULL, &err), BN_EUSAGE);
	cr_assert_str_eq(err.message, "exists (use --force to replace it)");
	cr_assert_str_eq(err.source, dir);
	bn_vocab_counter_free(c);
	/* nothing left beside it */
	DIR *d = opendir(scratch);
	struct dirent *de;
	while ((de = readdir(d)))
		cr_assert_null(strstr(de->d_name, ".tmp-"), "%s", de->d_name);
	closedir(d);
}

/* ---- lint ---- */

typedef struct found {
	char lines[16][600];
	int n;
} found;

static void collect(void *ctx, const bn_error *e)
{
	found *f = ctx;
	if (f->n < 16)
		bn_error_format(e, f->lines[f->n++], sizeof(f->lines[0]));
}

Test(vocab, build_refuses_unnormalized_tokens, .init = make_scratch, .fini = drop_scratch)
{
	const char *f[] = { "app_bundle", "country" };
	const char *dir = in_scratch("lint");
	bn_vocab_counter *c = counter(f, 2, NULL, 0);
	bn_vocab_write_result res;
	bn_error err;
	found got = { .n = 0 };
	char want[1024];
	bn_vocab_counter_add_token(c, 0, "com.foo", 7, 9, NULL);
	bn_vocab_counter_add_token(c, 0, "Com.Foo", 7, 8, NULL);
	bn_vocab_counter_add_token(c, 0, "a\tb", 3, 7, NULL);
	bn_vocab_counter_add_token(c, 0, "com.x\ny", 7, 6, NULL);
	bn_vocab_counter_add_token(c, 0, "", 0, 5, NULL);
	bn_vocab_counter_add_token(c, 1, "US", 2, 3, NULL);
	bn_vocab_counter_add_token(c, 1, "de", 2, 2, NULL);
	bn_vocab_counter_add_token(c, 1, "F\xe2\x80\x8bR", 5, 1, NULL);
	cr_assert_eq(bn_vocab_write(&res, c, dir, NULL, collect, &got, &err), BN_OK, "%s", err.message);
	cr_assert_eq(res.lint_failures, 6);
	const char *msgs[] = {
		"%s/app_bundle.txt:2: token \"Com.Foo\" is not normalized (normalizes to \"com.foo\")",
		"%s/app_bundle.txt:3: token \"a\\tb\" contains a tab",
		"%s/app_bundle.txt:4: token \"com.x\\ny\" contains a newline",
		"%s/app_bundle.txt:5: empty line: tokens cannot be empty",
		"%s/country.txt:2: token \"de\" is not normalized (normalizes to \"DE\")",
		"%s/country.txt:3: token \"F\\u{200B}R\" contains U+200B (format character)",
	};
	cr_assert_eq(got.n, 6);
	for (int i = 0; i < 6; i++) {
		snprintf(want, sizeof(want), msgs[i], dir);
		cr_assert_str_eq(got.lines[i], want);
	}
	struct stat st;
	cr_assert_neq(stat(dir, &st), 0, "nothing published after a lint failure");
	bn_vocab_counter_free(c);
}

Test(vocab, lint_reads_files, .init = make_scratch, .fini = drop_scratch)
{
	const char *dir = in_scratch("files");
	char p[800], want[1024];
	found got = { .n = 0 };
	uint64_t bad = 0;
	bn_error err;
	cr_assert_eq(mkdir(dir, 0755), 0);
	snprintf(p, sizeof(p), "%s/country.txt", dir);
	static const char text[] = "US\nDE\nUS\n\n FR\nGB\r\nIT \n\xef\xbf\xbd\n\xff\n";
	write_bytes(p, text, sizeof(text) - 1);
	cr_assert_eq(bn_vocab_lint(&bad, dir, NULL, collect, &got, &err), BN_OK, "%s", err.message);
	const char *msgs[] = {
		"%s/country.txt:3: token \"US\" duplicates line 1",
		"%s/country.txt:4: empty line: tokens cannot be empty",
		"%s/country.txt:5: token \" FR\" has leading or trailing white space",
		"%s/country.txt:6: token \"GB\\r\" contains a carriage return",
		"%s/country.txt:7: token \"IT \" has leading or trailing white space",
		"%s/country.txt:8: token \"\\u{FFFD}\" contains U+FFFD (replacement character)",
		"%s/country.txt:9: token \"\\xff\" is not valid UTF-8",
	};
	cr_assert_eq(bad, 7);
	cr_assert_eq(got.n, 7);
	for (int i = 0; i < 7; i++) {
		snprintf(want, sizeof(want), msgs[i], dir);
		cr_assert_str_eq(got.lines[i], want);
	}
	/* an unknown field cannot be checked: reported once */
	got.n = 0;
	snprintf(p, sizeof(p), "%s/zz.txt", dir);
	write_bytes(p, "a\nb\n", 4);
	unlink(in_scratch("files/country.txt"));
	cr_assert_eq(bn_vocab_lint(&bad, dir, NULL, collect, &got, &err), BN_OK);
	cr_assert_eq(bad, 1);
	snprintf(want, sizeof(want), "%s/zz.txt: field 'zz' cannot be checked against the rules: no field 'zz' in the rules", dir);
	cr_assert_str_eq(got.lines[0], want);
	unlink(p);
	cr_assert_eq(bn_vocab_lint(&bad, dir, NULL, NULL, NULL, &err), BN_EIO);
	cr_assert_str_eq(err.message, "no vocabulary files (FIELD.txt) in the directory");
}

/* ---- parts ---- */

Test(vocab, parts_merge_to_the_same_counts, .init = make_scratch, .fini = drop_scratch)
{
	const char *f[] = { "s", "arr" };
	const char *w[] = { "b=true" };
	const char *a = in_scratch("a.avro"), *b = in_scratch("b.avro");
	const char *pa = in_scratch("a.part"), *pb = in_scratch("b.part");
	bn_error err;
	write_avro(a, BN_CODEC_DEFLATE, sample, 2, 2, sha_a);
	write_avro(b, BN_CODEC_SNAPPY, sample + 2, 2, 2, sha_a);
	bn_vocab_counter *whole = counter(f, 2, w, 1), *ca = counter(f, 2, w, 1), *cb = counter(f, 2, w, 1);
	cr_assert_eq(bn_vocab_counter_add_avro(whole, a, &err), BN_OK);
	cr_assert_eq(bn_vocab_counter_add_avro(whole, b, &err), BN_OK);
	cr_assert_eq(bn_vocab_counter_add_avro(ca, a, &err), BN_OK);
	cr_assert_eq(bn_vocab_counter_add_avro(cb, b, &err), BN_OK);
	cr_assert_eq(bn_vocab_counter_write_part(ca, pa, &err), BN_OK, "%s", err.message);
	cr_assert_eq(bn_vocab_counter_write_part(cb, pb, &err), BN_OK);
	bn_vocab_counter *m = NULL;
	cr_assert_eq(bn_vocab_counter_new(&m, NULL, 0, NULL, 0, 0, 0, &err), BN_OK);
	cr_assert_eq(bn_vocab_counter_merge_part(m, pa, &err), BN_OK, "%s", err.message);
	cr_assert_eq(bn_vocab_counter_merge_part(m, pb, &err), BN_OK, "%s", err.message);
	cr_assert_eq(bn_vocab_counter_field_count(m), 2);
	cr_assert_eq(bn_vocab_counter_rows_scanned(m), 4);
	cr_assert_eq(bn_vocab_counter_rows_matched(m), bn_vocab_counter_rows_matched(whole));
	for (size_t i = 0; i < 2; i++) {
		cr_assert_eq(bn_vocab_counter_distinct(m, i), bn_vocab_counter_distinct(whole, i));
		cr_assert_eq(bn_vocab_counter_occurrences(m, i), bn_vocab_counter_occurrences(whole, i));
	}
	cr_assert_eq(get(m, 0, "a"), 2);
	cr_assert_eq(get(m, 1, "p"), 1);

	/* a part with other filters does not merge */
	const char *w2[] = { "b=false" };
	bn_vocab_counter *other = counter(f, 2, w2, 1);
	const char *po = in_scratch("o.part");
	cr_assert_eq(bn_vocab_counter_write_part(other, po, &err), BN_OK);
	cr_assert_eq(bn_vocab_counter_merge_part(m, po, &err), BN_EUSAGE);
	cr_assert_str_eq(err.message, "counts fields or --where filters differ from the first part's (fields s, ..., 1 filters)");

	/* truncated and foreign files (into a fresh counter: m already holds pa's input) */
	size_t size;
	char *data = read_text(pa, &size);
	write_bytes(po, data, size - 3);
	bn_vocab_counter_free(m);
	m = counter(NULL, 0, NULL, 0);
	cr_assert_eq(bn_vocab_counter_merge_part(m, po, &err), BN_ECORRUPT);
	cr_assert(strncmp(err.message, "truncated or corrupt partial counts file (at byte ", 50) == 0, "%s", err.message);
	write_bytes(po, "hello", 5);
	cr_assert_eq(bn_vocab_counter_merge_part(m, po, &err), BN_ECORRUPT);
	cr_assert_str_eq(err.message, "not a bidnorm partial counts file (written by 'bidnorm vocab count')");
	free(data);
	bn_vocab_counter_free(other);
	bn_vocab_counter_free(whole);
	bn_vocab_counter_free(ca);
	bn_vocab_counter_free(cb);
	bn_vocab_counter_free(m);
}

/* Parts merge as a tree in any order; the same Avro file is never counted twice. */
Test(vocab, parts_merge_as_a_tree_and_refuse_an_input_twice, .init = make_scratch, .fini = drop_scratch)
{
	const char *f[] = { "s", "arr" };
	char a[700], b[700], c3[700], pa[700], pb[700], pc[700], pab[700], pba[700], pabc[700], pcab[700];
	bn_error err;
	snprintf(a, sizeof(a), "%s", in_scratch("a.avro"));
	snprintf(b, sizeof(b), "%s", in_scratch("b.avro"));
	snprintf(c3, sizeof(c3), "%s", in_scratch("c.avro"));
	snprintf(pa, sizeof(pa), "%s", in_scratch("a.part"));
	snprintf(pb, sizeof(pb), "%s", in_scratch("b.part"));
	snprintf(pc, sizeof(pc), "%s", in_scratch("c.part"));
	snprintf(pab, sizeof(pab), "%s", in_scratch("ab.part"));
	snprintf(pba, sizeof(pba), "%s", in_scratch("ba.part"));
	snprintf(pabc, sizeof(pabc), "%s", in_scratch("abc.part"));
	snprintf(pcab, sizeof(pcab), "%s", in_scratch("cab.part"));
	write_avro(a, BN_CODEC_DEFLATE, sample, 2, 2, sha_a);
	write_avro(b, BN_CODEC_SNAPPY, sample + 2, 2, 2, sha_a);
	write_avro(c3, BN_CODEC_NULL, sample, 4, 3, sha_a);
	const char *avros[] = { a, b, c3 }, *parts[] = { pa, pb, pc };
	for (int i = 0; i < 3; i++) {
		bn_vocab_counter *k = counter(f, 2, NULL, 0);
		cr_assert_eq(bn_vocab_counter_add_avro(k, avros[i], &err), BN_OK, "%s", err.message);
		cr_assert_eq(bn_vocab_counter_write_part(k, parts[i], &err), BN_OK, "%s", err.message);
		bn_vocab_counter_free(k);
	}
	/* (a b) c and c (b a): a merged part is a part, and the bytes do not depend on the order */
	const char *ab[] = { pa, pb }, *ba[] = { pb, pa }, *ab_c[] = { pab, pc }, *c_ba[] = { pc, pba };
	const char *const *plans[] = { ab, ba, ab_c, c_ba };
	const char *outs[] = { pab, pba, pabc, pcab };
	for (int i = 0; i < 4; i++) {
		bn_vocab_counter *k = counter(NULL, 0, NULL, 0);
		cr_assert_eq(bn_vocab_counter_merge_part(k, plans[i][0], &err), BN_OK, "%s", err.message);
		cr_assert_eq(bn_vocab_counter_merge_part(k, plans[i][1], &err), BN_OK, "%s", err.message);
		cr_assert_eq(bn_vocab_counter_write_part(k, outs[i], &err), BN_OK, "%s", err.message);
		bn_vocab_counter_free(k);
	}
	size_t n1, n2;
	char *x = read_text(pab, &n1), *y = read_text(pba, &n2);
	cr_assert(n1 == n2 && memcmp(x, y, n1) == 0, "merging a, b and b, a gave different parts");
	free(x);
	free(y);
	x = read_text(pabc, &n1);
	y = read_text(pcab, &n2);
	cr_assert(n1 == n2 && memcmp(x, y, n1) == 0, "two trees over the same inputs gave different parts");
	free(x);
	free(y);
	bn_vocab_counter *whole = counter(f, 2, NULL, 0), *m = counter(NULL, 0, NULL, 0);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(bn_vocab_counter_add_avro(whole, avros[i], &err), BN_OK);
	cr_assert_eq(bn_vocab_counter_merge_part(m, pabc, &err), BN_OK);
	for (size_t i = 0; i < 2; i++) {
		cr_assert_eq(bn_vocab_counter_distinct(m, i), bn_vocab_counter_distinct(whole, i));
		cr_assert_eq(bn_vocab_counter_occurrences(m, i), bn_vocab_counter_occurrences(whole, i));
	}
	cr_assert_eq(get(m, 0, "a"), get(whole, 0, "a"));

	/* the same part twice, and overlapping subtrees, are refused naming the input */
	char want[2048];
	bn_vocab_counter_free(m);
	m = counter(NULL, 0, NULL, 0);
	cr_assert_eq(bn_vocab_counter_merge_part(m, pa, &err), BN_OK);
	cr_assert_eq(bn_vocab_counter_merge_part(m, pa, &err), BN_EUSAGE);
	snprintf(want, sizeof(want), "input '%s' is already counted (the same Avro file as '%s', by size and content): "
		 "a file given twice, a part merged twice or parts sharing an input would count it twice", a, a);
	cr_assert_str_eq(err.message, want);
	cr_assert_str_eq(err.source, pa);
	bn_vocab_counter_free(m);
	m = counter(NULL, 0, NULL, 0);
	cr_assert_eq(bn_vocab_counter_merge_part(m, pab, &err), BN_OK);
	cr_assert_eq(bn_vocab_counter_merge_part(m, pabc, &err), BN_EUSAGE);
	cr_assert_str_eq(err.source, pabc);
	/* an Avro file given twice, under any name */
	bn_vocab_counter_free(m);
	m = counter(f, 2, NULL, 0);
	cr_assert_eq(bn_vocab_counter_add_avro_named(m, a, "s3://logs/a.avro", &err), BN_OK);
	cr_assert_eq(bn_vocab_counter_add_avro(m, a, &err), BN_EUSAGE);
	snprintf(want, sizeof(want), "input '%s' is already counted (the same Avro file as 's3://logs/a.avro', by size and "
		 "content): a file given twice, a part merged twice or parts sharing an input would count it twice", a);
	cr_assert_str_eq(err.message, want);
	cr_assert_str_eq(err.source, a);
	/* files that share header and codec but hold other records are other inputs */
	bn_vocab_counter_free(m);
	m = counter(f, 2, NULL, 0);
	write_avro(a, BN_CODEC_NULL, sample, 3, 3, sha_a);
	write_avro(b, BN_CODEC_NULL, sample + 1, 3, 3, sha_a);
	cr_assert_eq(bn_vocab_counter_add_avro(m, a, &err), BN_OK, "%s", err.message);
	cr_assert_eq(bn_vocab_counter_add_avro(m, b, &err), BN_OK, "%s", err.message);
	bn_vocab_counter_free(m);
	bn_vocab_counter_free(whole);
}

/* A version-1 part (no identities) still merges. */
Test(vocab, version_1_parts_still_merge, .init = make_scratch, .fini = drop_scratch)
{
	/* magic, 1 field "s", 0 filters, 1 input (path "x", sha "h", version "v", 3 scanned, 3 matched),
	   field s: 3 occurrences, 2 distinct: "a" 2, "b" 1 */
	static const char v1[] = "BNVOCNT1\x01\x01s\x00\x01\x01x\x01h\x01v\x03\x03\x03\x02\x01" "a\x02\x01" "b\x01"
				 "BNVOCEND";
	const char *p = in_scratch("v1.part");
	bn_error err;
	write_bytes(p, v1, sizeof(v1) - 1);
	bn_vocab_counter *m = counter(NULL, 0, NULL, 0);
	cr_assert_eq(bn_vocab_counter_merge_part(m, p, &err), BN_OK, "%s", err.message);
	cr_assert_eq(get(m, 0, "a"), 2);
	cr_assert_eq(get(m, 0, "b"), 1);
	cr_assert_eq(bn_vocab_counter_rows_scanned(m), 3);
	bn_vocab_counter_free(m);
}

/* ---- diff ---- */

Test(vocab, diff_counts_churn_and_changes, .init = make_scratch, .fini = drop_scratch)
{
	static const tokc old[] = { { "a", 9 }, { "b", 8 }, { "c", 7 }, { "d", 6 } };
	static const tokc new[] = { { "a", 9 }, { "c", 8 }, { "b", 7 }, { "e", 6 }, { "f", 1 } };
	const char *o = in_scratch("old"), *n = in_scratch("new");
	bn_vocab_diff_summary sum;
	bn_error err;
	char *text = NULL;
	build_dir(o, "exchange", old, 4, 1, 0);
	build_dir(n, "exchange", new, 5, 1, 0);
	cr_assert_eq(bn_vocab_diff(&text, &sum, o, n, 0, &err), BN_OK, "%s", err.message);
	/* indices 2, 3 and 4 changed token: 3 of 4 */
	cr_assert_float_eq(sum.max_churn, 0.75, 1e-12);
	cr_assert_str_eq(sum.churn_field, "exchange");
	cr_assert_float_eq(sum.max_coverage_drop, 0.0, 1e-12);
	cr_assert_str_eq(text,
			 "exchange: 4 -> 5 tokens; overlap 3; added 2, removed 1, re-indexed 2; churn 0.7500 (3 of 4 indices "
			 "changed); coverage 1.0000 -> 1.0000 (+0.0000)\n"
			 "  added: \"e\" at 4 (count 6), \"f\" at 5 (count 1)\n"
			 "  removed: \"d\" was 4 (count 6)\n"
			 "  re-indexed: \"b\" 2 -> 3 (count 8 -> 7), \"c\" 3 -> 2 (count 7 -> 8)\n");
	free(text);
	cr_assert_eq(bn_vocab_diff(&text, NULL, o, n, 1, &err), BN_OK);
	cr_assert(strstr(text, "\"removed\": {\"count\": 1, \"examples\": [{\"token\": \"d\", \"index\": 4, \"count\": 6}]}"),
		  "%s", text);
	free(text);
}

Test(vocab, decoder_reads_named_recursive_and_logical_types)
{
	/* Named types used by reference (short and full name), a recursive record, enum, fixed, a logical type. */
	static const char schema[] =
		"{\"type\":\"record\",\"name\":\"R\",\"namespace\":\"t\",\"fields\":["
		"{\"name\":\"e\",\"type\":{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\",\"B\"]}},"
		"{\"name\":\"f\",\"type\":{\"type\":\"fixed\",\"name\":\"F\",\"size\":3}},"
		"{\"name\":\"n\",\"type\":[\"null\",{\"type\":\"record\",\"name\":\"Inner\",\"fields\":["
		"{\"name\":\"x\",\"type\":\"long\"},{\"name\":\"next\",\"type\":[\"null\",\"Inner\"]}]}]},"
		"{\"name\":\"e2\",\"type\":\"E\"},{\"name\":\"f2\",\"type\":\"t.F\"},"
		"{\"name\":\"s\",\"type\":{\"type\":\"string\",\"logicalType\":\"uuid\"}},"
		"{\"name\":\"arr\",\"type\":{\"type\":\"array\",\"items\":\"string\"}}]}";
	static const char rec[] = "\x02" "xyz" "\x02\x0a\x02\x0e\x00" "\x00" "abc" "\x04hi" "\x04\x02" "a" "\x02" "b" "\x00";
	const char *names[] = { "s", "arr" };
	bn_avro_decoder *d = NULL;
	bn_avro_value v[2];
	bn_error err;
	const char *p = rec, *end = rec + sizeof(rec) - 1;

	cr_assert_eq(bn_avro_decoder_new(&d, schema, "t.avro", names, 2, &err), BN_OK, "%s", err.message);
	cr_assert_eq(bn_avro_decoder_kind(d, 0), BN_AVRO_KIND_STRING);
	cr_assert_eq(bn_avro_decoder_kind(d, 1), BN_AVRO_KIND_STRING_ARRAY);
	cr_assert_eq(bn_avro_decode_record(d, &p, end, v, &err), BN_OK, "%s", err.message);
	cr_assert_eq(p, end);
	cr_assert(v[0].str.n == 2 && memcmp(v[0].str.p, "hi", 2) == 0);
	cr_assert_eq(v[1].nitems, 2);
	cr_assert(v[1].items[1].n == 1 && v[1].items[1].p[0] == 'b');
	bn_avro_decoder_free(d);

	/* An unknown named type is a corrupt schema, not a crash. */
	cr_assert_eq(bn_avro_decoder_new(&d, "{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":\"Nope\"}]}",
					 "t.avro", names, 0, &err), BN_ECORRUPT);
	cr_assert_str_eq(err.message, "avro.schema is not a valid schema (unknown type or name, or nested too deep)");
	cr_assert_eq(bn_avro_decoder_new(&d, "[\"null\"]", "t.avro", names, 0, &err), BN_ECORRUPT);
	cr_assert_str_eq(err.message, "avro.schema is not a record");
	cr_assert_eq(bn_avro_decoder_new(&d, "{\"type\":", "t.avro", names, 0, &err), BN_ECORRUPT);
	cr_assert_str_eq(err.message, "cannot parse avro.schema: invalid JSON at column 9: unexpected end of input");
}

Test(vocab, check_text_repair_refuses_other_versions_before_any_record, .init = make_scratch, .fini = drop_scratch)
{
	/* A vocabulary of another repair's tokens is refused by serving: refused before counting. */
	static const char tail[] = "but this bidnorm repairs text with version '2': the same raw text gives other "
				   "tokens (training/serving skew); ingest it again with this bidnorm, or pass "
				   "--allow-other-text-repair to count it anyway (serving refuses such a vocabulary)";
	bn_avro_meta now[] = { { "bidnorm.rules.sha256", sha_a }, { "bidnorm.text_repair", "2" } };
	bn_avro_meta other[] = { { "bidnorm.rules.sha256", sha_a }, { "bidnorm.text_repair", "12" } };
	const char *paths[] = { in_scratch("now.avro"), in_scratch("other.avro"), in_scratch("none.avro") };
	char want[1024];
	bn_error err;

	cr_assert_str_eq(bn_text_repair_version(), "2", "update the messages with the version");
	write_avro_meta(paths[0], BN_CODEC_NULL, sample, 4, 4, now, 2);
	write_avro_meta(paths[1], BN_CODEC_NULL, sample, 4, 4, other, 2);
	write_avro(paths[2], BN_CODEC_NULL, sample, 4, 4, sha_a);
	cr_assert_eq(bn_vocab_check_text_repair(paths, 1, &err), BN_OK);
	cr_assert_eq(bn_vocab_check_text_repair(paths, 0, &err), BN_OK);
	cr_assert_eq(bn_vocab_check_text_repair(paths, 2, &err), BN_EUSAGE);
	snprintf(want, sizeof(want), "written with text repair version '12', %s", tail);
	cr_assert_str_eq(err.message, want);
	cr_assert_str_eq(err.source, paths[1]);
	cr_assert_eq(bn_vocab_check_text_repair(paths + 2, 1, &err), BN_EUSAGE);
	snprintf(want, sizeof(want), "written with text repair version '1' (the header has no bidnorm.text_repair: "
		 "written before it was recorded, or not by bidnorm ingest), %s", tail);
	cr_assert_str_eq(err.message, want);
	const char *missing = in_scratch("missing.avro");
	cr_assert_eq(bn_vocab_check_text_repair(&missing, 1, &err), BN_EIO);
	cr_assert_eq(bn_vocab_check_text_repair(NULL, 1, &err), BN_EUSAGE);
	cr_assert_str_eq(err.message, "bn_vocab_check_text_repair: paths are required");
}

/* Parts keep each input's version: `vocab merge` refused such parts only at serving, after publishing. */
Test(vocab, check_parts_text_repair_refuses_parts_of_other_versions_before_merging, .init = make_scratch,
     .fini = drop_scratch)
{
	static const char tail[] = "but this bidnorm repairs text with version '2': the same raw text gives other "
				   "tokens (training/serving skew); ingest it again with this bidnorm and count it "
				   "again, or pass --allow-other-text-repair to merge it anyway (serving refuses such a "
				   "vocabulary)";
	/* as in version_1_parts_still_merge: one input "x" */
	static const char v1[] = "BNVOCNT1\x01\x01s\x00\x01\x01x\x01h\x01v\x03\x03\x03\x02\x01" "a\x02\x01" "b\x01"
				 "BNVOCEND";
	bn_avro_meta now[] = { { "bidnorm.rules.sha256", sha_a }, { "bidnorm.text_repair", "2" } };
	bn_avro_meta other[] = { { "bidnorm.rules.sha256", sha_a }, { "bidnorm.text_repair", "12" } };
	const char *f[] = { "s" };
	static const char *names[] = { "now.part", "other.part", "v1.part", "cut.part", "missing.part", "now.avro",
				       "other.avro" };
	char buf[7][700], want[1024];
	const char *paths[7];
	bn_error err;

	for (int i = 0; i < 7; i++) /* in_scratch's buffers are reused after four calls */
		paths[i] = strcpy(buf[i], in_scratch(names[i]));
	const char *now_avro = paths[5], *other_avro = paths[6];

	cr_assert_str_eq(bn_text_repair_version(), "2", "update the messages with the version");
	write_avro_meta(now_avro, BN_CODEC_NULL, sample, 4, 4, now, 2);
	write_avro_meta(other_avro, BN_CODEC_NULL, sample, 4, 4, other, 2);
	for (int i = 0; i < 2; i++) {
		bn_vocab_counter *c = counter(f, 1, NULL, 0);
		cr_assert_eq(bn_vocab_counter_add_avro(c, i ? other_avro : now_avro, &err), BN_OK, "%s", err.message);
		cr_assert_eq(bn_vocab_counter_write_part(c, paths[i], &err), BN_OK, "%s", err.message);
		bn_vocab_counter_free(c);
	}
	write_bytes(paths[2], v1, sizeof(v1) - 1);
	write_bytes(paths[3], "BNVOCNT2\x01\x01", 10);
	cr_assert_eq(bn_vocab_check_parts_text_repair(paths, 1, &err), BN_OK, "%s", err.message);
	cr_assert_eq(bn_vocab_check_parts_text_repair(paths, 0, &err), BN_OK);
	cr_assert_eq(bn_vocab_check_parts_text_repair(paths, 2, &err), BN_EUSAGE);
	snprintf(want, sizeof(want), "input '%s' was written with text repair version '12', %s", other_avro, tail);
	cr_assert_str_eq(err.message, want);
	cr_assert_str_eq(err.source, paths[1]);
	cr_assert_eq(bn_vocab_check_parts_text_repair(paths + 2, 1, &err), BN_EUSAGE);
	snprintf(want, sizeof(want), "input 'x' was written with text repair version '1' (a version-1 part, which "
		 "records no version), %s", tail);
	cr_assert_str_eq(err.message, want);
	cr_assert_str_eq(err.source, paths[2]);
	/* the header cut short: the merge's own message */
	cr_assert_eq(bn_vocab_check_parts_text_repair(paths + 3, 1, &err), BN_ECORRUPT);
	cr_assert_str_eq(err.message, "truncated or corrupt partial counts file (at byte 10)");
	cr_assert_eq(bn_vocab_check_parts_text_repair(paths + 4, 1, &err), BN_EIO);
	cr_assert_str_eq(err.source, paths[4]);
	cr_assert_eq(bn_vocab_check_parts_text_repair(&now_avro, 1, &err), BN_ECORRUPT);
	cr_assert_str_eq(err.message, "not a bidnorm partial counts file (written by 'bidnorm vocab count')");
	cr_assert_eq(bn_vocab_check_parts_text_repair(NULL, 1, &err), BN_EUSAGE);
	cr_assert_str_eq(err.message, "bn_vocab_check_parts_text_repair: paths are required");
}

Test(vocab, load_rules_takes_those_the_manifest_records, .init = make_scratch, .fini = drop_scratch)
{
	bn_rules *openrtb = NULL, *r = NULL;
	const char *dir = in_scratch("v");
	char p[800], text[256];
	bn_error err;

	cr_assert_eq(bn_rules_load_builtin(&openrtb, "openrtb", &err), BN_OK);
	cr_assert_eq(mkdir(dir, 0755), 0);
	/* no manifest: the default rules */
	cr_assert_eq(bn_vocab_load_rules(&r, dir, NULL, &err), BN_OK, "%s", err.message);
	cr_assert_str_eq(bn_rules_source_name(r), "<default>");
	bn_rules_free(r);
	/* the shipped set with the manifest's hash */
	snprintf(p, sizeof(p), "%s/manifest.json", dir);
	snprintf(text, sizeof(text), "{\"rules_sha256\": \"%s\"}", bn_rules_sha256(openrtb));
	write_bytes(p, text, strlen(text));
	cr_assert_eq(bn_vocab_load_rules(&r, dir, NULL, &err), BN_OK, "%s", err.message);
	cr_assert_str_eq(bn_rules_sha256(r), bn_rules_sha256(openrtb));
	bn_rules_free(r);
	/* --rules: an explicit choice, not checked against the manifest */
	cr_assert_eq(bn_vocab_load_rules(&r, dir, "bidlog", &err), BN_OK, "%s", err.message);
	cr_assert_str_eq(bn_rules_source_name(r), "<default>");
	bn_rules_free(r);
	r = NULL;
	write_bytes(p, "{\"rules_sha256\": \"mixed\"}", 25);
	cr_assert_eq(bn_vocab_load_rules(&r, dir, NULL, &err), BN_EUSAGE);
	cr_assert_str_eq(err.message, "built from inputs of several rules (rules_sha256 'mixed'): pass --rules FILE|NAME "
				      "with the rules to lint against");
	cr_assert_str_eq(err.source, p);
	write_bytes(p, "{\"rules_sha256\": \"short\"}", 25);
	cr_assert_eq(bn_vocab_load_rules(&r, dir, NULL, &err), BN_EUSAGE);
	cr_assert_str_eq(err.message, "written with rules that are not a shipped set (sha256 not-a-sha256), and the "
				      "manifest names no rule file: pass --rules FILE with the rule file it was written with");
	write_bytes(p, "{\"rules_sha256\": false}", 23);
	cr_assert_eq(bn_vocab_load_rules(&r, dir, NULL, &err), BN_ECORRUPT);
	cr_assert_str_eq(err.message, "rules_sha256 is not a string");
	cr_assert_null(r);
	cr_assert_eq(bn_vocab_load_rules(NULL, dir, NULL, &err), BN_EUSAGE);
	cr_assert_str_eq(err.message, "bn_vocab_load_rules: out and dir are required");
	bn_rules_free(openrtb);
}
