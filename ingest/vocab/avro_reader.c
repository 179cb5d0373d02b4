/* avro_reader.c - our Avro container reader (header, blocks, sync markers, four codecs) and a schema-driven field decoder. */
#include "vocab/avro_reader.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <snappy-c.h>
#include <zlib.h>
#include <zstd.h>

#include "record/json.h"
#include "util/buf.h"
#include "util/sha256.h"

#define SYNC_SIZE 16
/* No writer (nor Java's reader) accepts a block over 2 GiB; a bigger claim is corruption or a bomb. */
#define BLOCK_LIMIT ((size_t)INT32_MAX)
/* Deepest nesting of values the skipper follows (only recursive schemas get near it). */
#define MAX_DEPTH 64

typedef struct meta_entry {
	const char *key;
	size_t key_size;
	const char *value;
	size_t value_size;
} meta_entry;

struct bn_avro_reader {
	char *path;
	int fd;
	const unsigned char *map;
	size_t size;
	size_t pos;                /* next unread byte */
	size_t dropped;            /* pages before this offset were released */
	uint64_t block_offset;
	meta_entry *meta;
	size_t nmeta;
	char *schema;
	bn_codec codec;
	unsigned char sync[SYNC_SIZE];
	bn_buf out;                /* decompressed block */
	ZSTD_DCtx *zd;
	z_stream z;
	int z_ready;
};

/* ---- varints ---- */

enum { VARINT_OK = 0, VARINT_TRUNCATED = -1, VARINT_OVERFLOW = -2 };

/* An Avro long (zigzag varint) at *p, not reading past end. */
static int get_long(const unsigned char **p, const unsigned char *end, int64_t *out)
{
	const unsigned char *q = *p;
	uint64_t u = 0;
	for (unsigned shift = 0; q < end; shift += 7) {
		unsigned b = *q++;
		if (shift == 63 && (b & 0x7e))
			return VARINT_OVERFLOW;
		u |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*out = (int64_t)((u >> 1) ^ (0 - (u & 1)));
			*p = q;
			return VARINT_OK;
		}
		if (shift == 63)
			return VARINT_OVERFLOW;
	}
	return VARINT_TRUNCATED;
}

/* ---- the container ---- */

static int header_error(bn_avro_reader *r, bn_error *err, const char *why)
{
	bn_error_locate(err, r->path, 0, 0);
	return bn_error_set(err, BN_ECORRUPT, "corrupt Avro header: %s", why);
}

static int block_error(bn_avro_reader *r, bn_error *err, const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 3, 4)))
#endif
	;

static int block_error(bn_avro_reader *r, bn_error *err, const char *fmt, ...)
{
	char why[BN_ERROR_MESSAGE_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	bn_error_locate(err, r->path, 0, 0);
	return bn_error_set(err, BN_ECORRUPT, "corrupt Avro block at byte offset %llu: %s",
			    (unsigned long long)r->block_offset, why);
}

/* A length-prefixed byte string at *p. */
static int get_bytes(const unsigned char **p, const unsigned char *end, const char **s, size_t *n)
{
	int64_t len;
	int rc = get_long(p, end, &len);
	if (rc < 0)
		return rc;
	if (len < 0 || (uint64_t)len > (uint64_t)(end - *p))
		return VARINT_TRUNCATED;
	*s = (const char *)*p;
	*n = (size_t)len;
	*p += len;
	return VARINT_OK;
}

static int parse_header(bn_avro_reader *r, bn_error *err)
{
	const unsigned char *p, *end;
	size_t cap = 0;

	/* An empty file is not mapped (r->map is NULL): test the size before any pointer arithmetic. */
	if (r->size < 4 || memcmp(r->map, "Obj\x01", 4) != 0) {
		bn_error_locate(err, r->path, 0, 0);
		return bn_error_set(err, BN_ECORRUPT, "not an Avro object container file (no 'Obj\\x01' magic)");
	}
	p = r->map + 4;
	end = r->map + r->size;
	for (;;) {
		int64_t count, block_size;
		if (get_long(&p, end, &count) < 0)
			return header_error(r, err, "metadata map truncated");
		if (count == 0)
			break;
		if (count < 0) {
			if (count == INT64_MIN || get_long(&p, end, &block_size) < 0)
				return header_error(r, err, "metadata map truncated");
			count = -count;
		}
		if ((uint64_t)count > r->size)
			return header_error(r, err, "metadata map has an impossible entry count");
		for (int64_t i = 0; i < count; i++) {
			meta_entry e;
			if (get_bytes(&p, end, &e.key, &e.key_size) < 0 || get_bytes(&p, end, &e.value, &e.value_size) < 0)
				return header_error(r, err, "metadata map truncated");
			if (r->nmeta == cap) {
				cap = cap ? 2 * cap : 8;
				meta_entry *m = realloc(r->meta, cap * sizeof(*m));
				if (!m)
					return bn_error_set(err, BN_ENOMEM, "out of memory");
				r->meta = m;
			}
			r->meta[r->nmeta++] = e;
		}
	}
	if ((size_t)(end - p) < SYNC_SIZE)
		return header_error(r, err, "file ends before the sync marker");
	memcpy(r->sync, p, SYNC_SIZE);
	p += SYNC_SIZE;
	r->pos = (size_t)(p - r->map);

	size_t n;
	const char *v = bn_avro_reader_meta(r, "avro.schema", &n);
	if (!v)
		return header_error(r, err, "no avro.schema in the metadata");
	r->schema = malloc(n + 1);
	if (!r->schema)
		return bn_error_set(err, BN_ENOMEM, "out of memory");
	memcpy(r->schema, v, n);
	r->schema[n] = '\0';

	v = bn_avro_reader_meta(r, "avro.codec", &n);
	r->codec = BN_CODEC_NULL;
	if (v) {
		char name[32];
		snprintf(name, sizeof(name), "%.*s", (int)(n < 31 ? n : 31), v);
		if (bn_codec_parse(&r->codec, name, NULL) < 0 || n >= 31) {
			bn_error_locate(err, r->path, 0, 0);
			return bn_error_set(err, BN_ECORRUPT,
					    "unsupported Avro codec '%s' (readable: null, deflate, snappy, zstandard)", name);
		}
	}
	return BN_OK;
}

int bn_avro_reader_open(bn_avro_reader **out, const char *path, bn_error *err)
{
	bn_avro_reader *r = NULL;
	struct stat st;
	int rc = BN_ENOMEM;

	r = calloc(1, sizeof(*r));
	if (!r || !(r->path = strdup(path))) {
		bn_error_set(err, BN_ENOMEM, "out of memory");
		goto cleanup;
	}
	r->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (r->fd < 0 || fstat(r->fd, &st) < 0) {
		bn_error_locate(err, path, 0, 0);
		rc = bn_error_set(err, BN_EIO, "cannot open: %s", strerror(errno));
		goto cleanup;
	}
	if (!S_ISREG(st.st_mode)) {
		bn_error_locate(err, path, 0, 0);
		rc = bn_error_set(err, BN_EIO, "not a regular file");
		goto cleanup;
	}
	r->size = (size_t)st.st_size;
	if (r->size > 0) {
		/* mapped, not read: blocks are used in place and the kernel reads ahead */
		void *m = mmap(NULL, r->size, PROT_READ, MAP_PRIVATE, r->fd, 0);
		if (m == MAP_FAILED) {
			bn_error_locate(err, path, 0, 0);
			rc = bn_error_set(err, BN_EIO, "cannot map: %s", strerror(errno));
			goto cleanup;
		}
		r->map = m;
		madvise(m, r->size, MADV_SEQUENTIAL);
	}
	rc = parse_header(r, err);
	if (rc < 0)
		goto cleanup;
	*out = r;
	r = NULL;
cleanup:
	bn_avro_reader_free(r);
	return rc;
}

const char *bn_avro_reader_meta(const bn_avro_reader *r, const char *key, size_t *size)
{
	size_t kn = strlen(key);
	for (size_t i = 0; i < r->nmeta; i++) {
		if (r->meta[i].key_size == kn && memcmp(r->meta[i].key, key, kn) == 0) {
			*size = r->meta[i].value_size;
			return r->meta[i].value;
		}
	}
	return NULL;
}

const char *bn_avro_reader_schema(const bn_avro_reader *r)
{
	return r->schema;
}

bn_codec bn_avro_reader_codec(const bn_avro_reader *r)
{
	return r->codec;
}

void bn_avro_reader_identity(const bn_avro_reader *r, unsigned char out[BN_AVRO_IDENTITY_SIZE])
{
	enum { END = 64 * 1024 };
	unsigned char size[8], digest[BN_SHA256_SIZE];
	bn_sha256 sha;
	size_t head = r->size < END ? r->size : END;
	size_t tail = r->size - head < END ? r->size - head : END;
	for (int i = 0; i < 8; i++)
		size[i] = (unsigned char)((uint64_t)r->size >> (8 * i));
	bn_sha256_init(&sha);
	bn_sha256_update(&sha, size, sizeof(size));
	if (head)
		bn_sha256_update(&sha, r->map, head);
	if (tail)
		bn_sha256_update(&sha, r->map + r->size - tail, tail);
	bn_sha256_final(digest, &sha);
	memcpy(out, digest, BN_AVRO_IDENTITY_SIZE);
}

uint64_t bn_avro_reader_block_offset(const bn_avro_reader *r)
{
	return r->block_offset;
}

static int grow_out(bn_buf *b)
{
	size_t cap = b->cap ? b->cap * 2 : 256 * 1024;
	if (cap > BLOCK_LIMIT)
		cap = BLOCK_LIMIT;
	if (cap <= b->cap)
		return -1;
	return bn_buf_reserve(b, cap - b->size);
}

static int inflate_block(bn_avro_reader *r, const unsigned char *src, size_t n, bn_error *err)
{
	int zrc;
	if (!r->z_ready) {
		if (inflateInit2(&r->z, -15) != Z_OK)
			return bn_error_set(err, BN_ENOMEM, "out of memory");
		r->z_ready = 1;
	} else {
		inflateReset(&r->z);
	}
	r->out.size = 0;
	r->z.next_in = (unsigned char *)src;
	r->z.avail_in = (uInt)n;
	do {
		if (r->out.size == r->out.cap && grow_out(&r->out) < 0) {
			if (r->out.cap >= BLOCK_LIMIT)
				return block_error(r, err, "deflate data inflates to more than 2 GiB");
			return bn_error_set(err, BN_ENOMEM, "out of memory");
		}
		size_t room = r->out.cap - r->out.size;
		if (room > UINT_MAX)
			room = UINT_MAX;
		r->z.next_out = (unsigned char *)r->out.data + r->out.size;
		r->z.avail_out = (uInt)room;
		zrc = inflate(&r->z, Z_NO_FLUSH);
		r->out.size += room - r->z.avail_out;
		if (zrc == Z_MEM_ERROR)
			return bn_error_set(err, BN_ENOMEM, "out of memory");
		if (zrc == Z_DATA_ERROR || zrc == Z_NEED_DICT)
			return block_error(r, err, "invalid deflate data (%s)", r->z.msg ? r->z.msg : "error");
		if (zrc == Z_BUF_ERROR && r->z.avail_in == 0)
			return block_error(r, err, "deflate data ends early");
	} while (zrc != Z_STREAM_END);
	/* bytes after the end of the stream are ignored, as Java's Inflater does: python3-avro
	 * writes zlib.compress(data)[2:-1], which leaves three bytes of the Adler-32 behind */
	return BN_OK;
}

static int snappy_block(bn_avro_reader *r, const unsigned char *src, size_t n, bn_error *err)
{
	size_t len;
	if (n < 4)
		return block_error(r, err, "snappy block of %zu bytes has no CRC", n);
	n -= 4;
	if (snappy_uncompressed_length((const char *)src, n, &len) != SNAPPY_OK)
		return block_error(r, err, "invalid snappy data");
	if (len > BLOCK_LIMIT)
		return block_error(r, err, "snappy data claims %zu bytes (over 2 GiB)", len);
	/* Snappy expands at most ~21x (a 3-byte copy of 64 bytes): a larger claim is a lie, and the
	 * buffer below is sized by it before any data is seen. Found by fuzzing (a 1.7 KB file, 2 GiB). */
	if (len > 22 * n + 64)
		return block_error(r, err, "snappy data claims %zu bytes from %zu compressed bytes", len, n);
	r->out.size = 0;
	if (bn_buf_reserve(&r->out, len ? len : 1) < 0)
		return bn_error_set(err, BN_ENOMEM, "out of memory");
	if (snappy_uncompress((const char *)src, n, r->out.data, &len) != SNAPPY_OK)
		return block_error(r, err, "invalid snappy data");
	r->out.size = len;
	uint32_t want = (uint32_t)src[n] << 24 | (uint32_t)src[n + 1] << 16 | (uint32_t)src[n + 2] << 8 | src[n + 3];
	uint32_t got = (uint32_t)crc32(crc32(0, NULL, 0), (const unsigned char *)r->out.data, (uInt)len);
	if (want != got)
		return block_error(r, err, "snappy CRC mismatch (stored %08x, computed %08x)", want, got);
	return BN_OK;
}

static int zstd_block(bn_avro_reader *r, const unsigned char *src, size_t n, bn_error *err)
{
	ZSTD_inBuffer in = { src, n, 0 };
	size_t zrc = 1;
	if (!r->zd && !(r->zd = ZSTD_createDCtx()))
		return bn_error_set(err, BN_ENOMEM, "out of memory");
	ZSTD_DCtx_reset(r->zd, ZSTD_reset_session_only);
	r->out.size = 0;
	/* A frame that states a plausible size gets one exact buffer; otherwise the buffer grows with
	 * the data. The header is only a claim: a 1.7 KB file stating 2 GiB had this reserve 2 GiB
	 * before any data (found by fuzzing). Real blocks compress a few times, not a thousand. */
	unsigned long long fcs = ZSTD_getFrameContentSize(src, n);
	if (fcs != ZSTD_CONTENTSIZE_ERROR && fcs != ZSTD_CONTENTSIZE_UNKNOWN && fcs < BLOCK_LIMIT &&
	    fcs <= (unsigned long long)n * 1024 && bn_buf_reserve(&r->out, (size_t)fcs + 1) < 0)
		return bn_error_set(err, BN_ENOMEM, "out of memory");
	while (in.pos < in.size || zrc != 0) {
		if (r->out.size == r->out.cap && grow_out(&r->out) < 0) {
			if (r->out.cap >= BLOCK_LIMIT)
				return block_error(r, err, "zstandard data decompresses to more than 2 GiB");
			return bn_error_set(err, BN_ENOMEM, "out of memory");
		}
		ZSTD_outBuffer o = { r->out.data, r->out.cap, r->out.size };
		size_t before_in = in.pos, before_out = o.pos;
		zrc = ZSTD_decompressStream(r->zd, &o, &in);
		r->out.size = o.pos;
		if (ZSTD_isError(zrc))
			return block_error(r, err, "invalid zstandard data (%s)", ZSTD_getErrorName(zrc));
		if (in.pos == in.size && zrc != 0 && o.pos < o.size && before_in == in.pos && before_out == o.pos)
			return block_error(r, err, "zstandard data ends early");
	}
	return BN_OK;
}

int bn_avro_reader_next_block(bn_avro_reader *r, const char **data, size_t *size, uint64_t *count, bn_error *err)
{
	const unsigned char *p = r->map + r->pos, *end = r->map + r->size;
	int64_t n, bytes;
	int rc;

	if (r->pos == r->size)
		return 0;
	/* blocks already read are not needed again: keep the resident size to a few blocks */
	size_t page = 1 << 16, upto = r->pos / page * page;
	if (upto > r->dropped + 16 * page) {
		madvise((void *)(r->map + r->dropped), upto - r->dropped, MADV_DONTNEED);
		r->dropped = upto;
	}
	r->block_offset = r->pos;
	if (get_long(&p, end, &n) < 0 || get_long(&p, end, &bytes) < 0)
		return block_error(r, err, "block header truncated");
	if (n <= 0 || bytes < 0)
		return block_error(r, err, "negative or zero record count %lld or size %lld", (long long)n,
				   (long long)bytes);
	if ((uint64_t)bytes > (uint64_t)(end - p))
		return block_error(r, err, "block of %lld bytes runs past the end of the file (%zu bytes left)",
				   (long long)bytes, (size_t)(end - p));
	if ((size_t)bytes > BLOCK_LIMIT)
		return block_error(r, err, "block of %lld bytes is over 2 GiB", (long long)bytes);
	const unsigned char *src = p;
	p += bytes;
	if ((size_t)(end - p) < SYNC_SIZE)
		return block_error(r, err, "file ends before the block's sync marker");
	if (memcmp(p, r->sync, SYNC_SIZE) != 0)
		return block_error(r, err, "sync marker does not match the header's");
	switch (r->codec) {
	case BN_CODEC_NULL:
		*data = (const char *)src;
		*size = (size_t)bytes;
		break;
	case BN_CODEC_DEFLATE:
	case BN_CODEC_SNAPPY:
	case BN_CODEC_ZSTANDARD:
		rc = r->codec == BN_CODEC_DEFLATE ? inflate_block(r, src, (size_t)bytes, err)
		   : r->codec == BN_CODEC_SNAPPY ? snappy_block(r, src, (size_t)bytes, err)
		   : zstd_block(r, src, (size_t)bytes, err);
		if (rc < 0)
			return rc;
		*data = r->out.data;
		*size = r->out.size;
		break;
	}
	*count = (uint64_t)n;
	r->pos = (size_t)(p + SYNC_SIZE - r->map);
	return 1;
}

void bn_avro_reader_free(bn_avro_reader *r)
{
	if (!r)
		return;
	if (r->map)
		munmap((void *)r->map, r->size);
	if (r->fd > 0)
		close(r->fd);
	if (r->z_ready)
		inflateEnd(&r->z);
	ZSTD_freeDCtx(r->zd);
	bn_buf_free(&r->out);
	free(r->meta);
	free(r->schema);
	free(r->path);
	free(r);
}

/* ---- the decoder ---- */

/*
 * The writer schema compiled to a flat node array: skipping a value is a
 * walk over small integers. The schema JSON is read with bidnorm's own
 * tokenizer (Avro C's parser crashes when one of its allocations fails);
 * named types are registered before their fields are compiled, so
 * recursive schemas compile to cycles.
 */
enum {
	N_NULL, N_BOOLEAN, N_INT, N_LONG, N_FLOAT, N_DOUBLE, N_BYTES, N_STRING,
	N_RECORD, N_ENUM, N_FIXED, N_MAP, N_ARRAY, N_UNION
};

typedef struct node {
	uint8_t type;
	uint32_t first;    /* RECORD/UNION: first index in kids; ARRAY/MAP: item node */
	uint32_t count;    /* RECORD/UNION: number of kids */
	int64_t size;      /* FIXED */
} node;

typedef struct want {
	bn_avro_kind kind;
	const char *type_name;
	uint32_t node;      /* the field's node */
	int union_null;     /* branch index of null, -1 when not a union */
	int union_value;    /* branch index of the value */
	bn_buf items;       /* STRING_ARRAY: bn_avro_span array, reused */
} want;

struct bn_avro_decoder {
	node *nodes;
	size_t nnodes, cap_nodes;
	uint32_t *kids;
	size_t nkids, cap_kids;
	uint32_t root;
	int *slot;             /* per top-level field: index into wants, or -1 */
	want *wants;
	size_t nwants;
	char type_names[8][64];/* "array of X" texts */
	char **field_names;    /* the top-level record's fields, in order */
	size_t nfields;
};

static int add_node(bn_avro_decoder *d, uint8_t type, uint32_t *out)
{
	if (d->nnodes == d->cap_nodes) {
		size_t cap = d->cap_nodes ? 2 * d->cap_nodes : 32;
		node *n = realloc(d->nodes, cap * sizeof(*n));
		if (!n)
			return BN_ENOMEM;
		d->nodes = n;
		d->cap_nodes = cap;
	}
	memset(&d->nodes[d->nnodes], 0, sizeof(node));
	d->nodes[d->nnodes].type = type;
	*out = (uint32_t)d->nnodes++;
	return BN_OK;
}

static int reserve_kids(bn_avro_decoder *d, size_t n, uint32_t *first)
{
	if (d->cap_kids - d->nkids < n) {
		size_t cap = d->cap_kids ? d->cap_kids : 32;
		while (cap - d->nkids < n)
			cap *= 2;
		uint32_t *k = realloc(d->kids, cap * sizeof(*k));
		if (!k)
			return BN_ENOMEM;
		d->kids = k;
		d->cap_kids = cap;
	}
	*first = (uint32_t)d->nkids;
	d->nkids += n;
	return BN_OK;
}

/* Reading the schema JSON: the token array, and the named types seen so far. */
typedef struct schema_reader {
	bn_avro_decoder *d;
	const char *text;
	const bn_json_token *tok;
	char **names;          /* full names of named types, parallel to name_node */
	uint32_t *name_node;
	size_t nnames, cap_names;
} schema_reader;

/* The text of STRING token i, unescaped, as a new string. NULL when out of memory. */
static char *tok_string(const schema_reader *sr, uint32_t i)
{
	const bn_json_token *t = &sr->tok[i];
	char *s = malloc(t->len + 1);
	if (!s)
		return NULL;
	size_t n = t->escaped ? bn_json_unescape(sr->text + t->start, t->len, s) : t->len;
	if (!t->escaped)
		memcpy(s, sr->text + t->start, n);
	s[n] = '\0';
	return s;
}

static int tok_is(const schema_reader *sr, uint32_t i, const char *lit)
{
	const bn_json_token *t = &sr->tok[i];
	return t->type == BN_JSON_STRING && !t->escaped && t->len == strlen(lit) &&
	       memcmp(sr->text + t->start, lit, t->len) == 0;
}

/* Token index of member key's value in object token obj, or 0 when absent. */
static uint32_t member(const schema_reader *sr, uint32_t obj, const char *key)
{
	uint32_t i = obj + 1, end = sr->tok[obj].next;
	while (i < end) {
		if (tok_is(sr, i, key))
			return i + 1;
		i = sr->tok[i + 1].next;
	}
	return 0;
}

static const struct {
	const char *name;
	uint8_t type;
} primitives[] = {
	{ "null", N_NULL }, { "boolean", N_BOOLEAN }, { "int", N_INT }, { "long", N_LONG },
	{ "float", N_FLOAT }, { "double", N_DOUBLE }, { "bytes", N_BYTES }, { "string", N_STRING },
};

/* "ns.name" unless name already has a dot or there is no namespace. */
static char *full_name(const char *ns, const char *name)
{
	size_t n = strlen(name) + (ns ? strlen(ns) : 0) + 2;
	char *s = malloc(n);
	if (s)
		snprintf(s, n, "%s%s%s", !strchr(name, '.') && ns && *ns ? ns : "",
			 !strchr(name, '.') && ns && *ns ? "." : "", name);
	return s;
}

static int add_name(schema_reader *sr, char *full, uint32_t id)
{
	if (sr->nnames == sr->cap_names) {
		size_t cap = sr->cap_names ? 2 * sr->cap_names : 8;
		char **n = realloc(sr->names, cap * sizeof(*n));
		if (!n)
			return BN_ENOMEM;
		sr->names = n;
		uint32_t *k = realloc(sr->name_node, cap * sizeof(*k));
		if (!k)
			return BN_ENOMEM;
		sr->name_node = k;
		sr->cap_names = cap;
	}
	sr->names[sr->nnames] = full;
	sr->name_node[sr->nnames++] = id;
	return BN_OK;
}

/* A named type referenced by name (full, or relative to namespace ns). */
static int lookup_name(const schema_reader *sr, const char *name, const char *ns, uint32_t *out)
{
	char *full = full_name(ns, name);
	if (!full)
		return BN_ENOMEM;
	for (size_t i = 0; i < sr->nnames; i++) {
		if (strcmp(sr->names[i], full) == 0 || strcmp(sr->names[i], name) == 0) {
			*out = sr->name_node[i];
			free(full);
			return BN_OK;
		}
	}
	free(full);
	return BN_ECORRUPT;
}

static int compile(schema_reader *sr, uint32_t ti, const char *ns, uint32_t *out, int depth);

/* A record's fields (or a union's branches): kids of node id. */
static int compile_list(schema_reader *sr, uint32_t id, uint32_t arr, const char *ns, int is_record, int depth)
{
	bn_avro_decoder *d = sr->d;
	uint32_t n = sr->tok[arr].size, first, child, i = arr + 1;
	int rc = reserve_kids(d, n, &first);

	if (rc < 0)
		return rc;
	d->nodes[id].first = first;
	d->nodes[id].count = n;
	for (uint32_t k = 0; k < n; k++, i = sr->tok[i].next) {
		uint32_t type = i;
		if (is_record) {
			if (sr->tok[i].type != BN_JSON_OBJECT || !(type = member(sr, i, "type")))
				return BN_ECORRUPT;
		}
		rc = compile(sr, type, ns, &child, depth + 1);
		if (rc < 0)
			return rc;
		d->kids[first + k] = child;
	}
	return BN_OK;
}

/* A named type's definition (record, enum, fixed): registered before its fields, for recursion. */
static int compile_named(schema_reader *sr, uint32_t obj, uint8_t type, const char *ns, uint32_t *out, int depth)
{
	uint32_t name_t = member(sr, obj, "name"), ns_t = member(sr, obj, "namespace"), id;
	char *name = NULL, *own_ns = NULL, *full = NULL;
	int rc = BN_ECORRUPT;

	if (!name_t || sr->tok[name_t].type != BN_JSON_STRING)
		return BN_ECORRUPT;
	rc = BN_ENOMEM;
	if (!(name = tok_string(sr, name_t)))
		goto cleanup;
	if (ns_t && sr->tok[ns_t].type == BN_JSON_STRING && !(own_ns = tok_string(sr, ns_t)))
		goto cleanup;
	if (own_ns)
		ns = own_ns;
	if (!(full = full_name(ns, name)))
		goto cleanup;
	/* A dotted name carries its own namespace, for the fields inside it. */
	if (strchr(name, '.')) {
		free(own_ns);
		own_ns = strndup(name, (size_t)(strrchr(name, '.') - name));
		if (!own_ns)
			goto cleanup;
		ns = own_ns;
	}
	rc = add_node(sr->d, type, &id);
	if (rc < 0)
		goto cleanup;
	rc = add_name(sr, full, id);
	if (rc < 0)
		goto cleanup;
	full = NULL;
	if (type == N_FIXED) {
		uint32_t size_tok = member(sr, obj, "size");
		int64_t size;
		rc = BN_ECORRUPT;
		if (!size_tok || sr->tok[size_tok].type != BN_JSON_NUMBER ||
		    bn_json_number_int64(sr->text + sr->tok[size_tok].start, sr->tok[size_tok].len, &size) < 0 || size < 0)
			goto cleanup;
		sr->d->nodes[id].size = size;
	} else if (type == N_RECORD) {
		uint32_t fields = member(sr, obj, "fields");
		rc = BN_ECORRUPT;
		if (!fields || sr->tok[fields].type != BN_JSON_ARRAY)
			goto cleanup;
		rc = compile_list(sr, id, fields, ns, 1, depth);
		if (rc < 0)
			goto cleanup;
	}
	*out = id;
	rc = BN_OK;
cleanup:
	free(name);
	free(own_ns);
	free(full);
	return rc;
}

static int compile(schema_reader *sr, uint32_t ti, const char *ns, uint32_t *out, int depth)
{
	bn_avro_decoder *d = sr->d;
	const bn_json_token *t = &sr->tok[ti];
	uint32_t id, child, type_t;
	int rc;

	if (depth > MAX_DEPTH)
		return BN_ECORRUPT;
	if (t->type == BN_JSON_ARRAY) {
		rc = add_node(d, N_UNION, &id);
		if (rc == BN_OK)
			rc = compile_list(sr, id, ti, ns, 0, depth);
		if (rc == BN_OK)
			*out = id;
		return rc;
	}
	if (t->type == BN_JSON_STRING) {
		for (size_t i = 0; i < sizeof(primitives) / sizeof(primitives[0]); i++)
			if (tok_is(sr, ti, primitives[i].name))
				return add_node(d, primitives[i].type, out);
		char *name = tok_string(sr, ti);
		if (!name)
			return BN_ENOMEM;
		rc = lookup_name(sr, name, ns, out);
		free(name);
		return rc;
	}
	if (t->type != BN_JSON_OBJECT || !(type_t = member(sr, ti, "type")))
		return BN_ECORRUPT;
	if (sr->tok[type_t].type != BN_JSON_STRING)
		return compile(sr, type_t, ns, out, depth + 1);   /* {"type": {...}} or {"type": [...]} */
	if (tok_is(sr, type_t, "record") || tok_is(sr, type_t, "error"))
		return compile_named(sr, ti, N_RECORD, ns, out, depth);
	if (tok_is(sr, type_t, "enum"))
		return compile_named(sr, ti, N_ENUM, ns, out, depth);
	if (tok_is(sr, type_t, "fixed"))
		return compile_named(sr, ti, N_FIXED, ns, out, depth);
	if (tok_is(sr, type_t, "array") || tok_is(sr, type_t, "map")) {
		int is_array = tok_is(sr, type_t, "array");
		uint32_t inner = member(sr, ti, is_array ? "items" : "values");
		if (!inner)
			return BN_ECORRUPT;
		rc = add_node(d, is_array ? N_ARRAY : N_MAP, &id);
		if (rc == BN_OK)
			rc = compile(sr, inner, ns, &child, depth + 1);
		if (rc < 0)
			return rc;
		d->nodes[id].first = child;
		*out = id;
		return BN_OK;
	}
	/* {"type": "long", "logicalType": ...} and {"type": "SomeNamedType"} */
	return compile(sr, type_t, ns, out, depth + 1);
}

static const char *node_type_name(uint8_t t)
{
	static const char *const names[] = {
		"null", "boolean", "int", "long", "float", "double", "bytes", "string",
		"record", "enum", "fixed", "map", "array", "union",
	};
	return names[t];
}

/* What field node f is for a vocabulary or filter; fills w. */
static void classify(bn_avro_decoder *d, want *w, uint32_t f, size_t slot_for_name)
{
	const node *n = &d->nodes[f];
	uint32_t inner = f;

	w->node = f;
	w->union_null = -1;
	w->union_value = -1;
	if (n->type == N_UNION) {
		int nulls = 0, values = 0;
		for (uint32_t i = 0; i < n->count; i++) {
			if (d->nodes[d->kids[n->first + i]].type == N_NULL) {
				w->union_null = (int)i;
				nulls++;
			} else {
				w->union_value = (int)i;
				inner = d->kids[n->first + i];
				values++;
			}
		}
		if (values != 1 || nulls > 1) {
			w->kind = BN_AVRO_KIND_OTHER;
			w->type_name = values == 0 ? "null" : "union";
			return;
		}
	}
	switch (d->nodes[inner].type) {
	case N_STRING: w->kind = BN_AVRO_KIND_STRING; break;
	case N_INT:
	case N_LONG: w->kind = BN_AVRO_KIND_INT; break;
	case N_BOOLEAN: w->kind = BN_AVRO_KIND_BOOLEAN; break;
	case N_ARRAY:
		if (d->nodes[d->nodes[inner].first].type == N_STRING) {
			w->kind = BN_AVRO_KIND_STRING_ARRAY;
			break;
		}
		w->kind = BN_AVRO_KIND_OTHER;
		if (slot_for_name < sizeof(d->type_names) / sizeof(d->type_names[0])) {
			snprintf(d->type_names[slot_for_name], sizeof(d->type_names[0]), "array of %s",
				 node_type_name(d->nodes[d->nodes[inner].first].type));
			w->type_name = d->type_names[slot_for_name];
		} else {
			w->type_name = "array";
		}
		return;
	default:
		w->kind = BN_AVRO_KIND_OTHER;
		break;
	}
	w->type_name = node_type_name(d->nodes[inner].type);
	if (w->kind != BN_AVRO_KIND_OTHER)
		w->node = inner;
}

/* The writer schema: a record whose fields' names are kept for lookup. Errors as in bn_avro_decoder_new. */
static int read_schema(bn_avro_decoder *d, const char *schema_json, const char *name, bn_error *err)
{
	bn_json_parser *jp = NULL;
	bn_json_result jr;
	schema_reader sr = { .d = d, .text = schema_json };
	int rc = BN_ENOMEM;

	if (bn_json_parser_new(&jp, MAX_DEPTH) < 0)
		goto cleanup;
	rc = bn_json_parse(jp, schema_json, strlen(schema_json), &jr);
	if (rc == BN_JSON_ENOMEM) {
		rc = BN_ENOMEM;
		goto cleanup;
	}
	bn_error_locate(err, name, 0, 0);
	if (rc < 0) {
		rc = bn_error_set(err, BN_ECORRUPT, "cannot parse avro.schema: invalid JSON at column %u: %s", jr.column,
				  jr.message);
		goto cleanup;
	}
	sr.tok = jr.tokens;
	uint32_t type_t = jr.tokens[0].type == BN_JSON_OBJECT ? member(&sr, 0, "type") : 0;
	if (!type_t || !(tok_is(&sr, type_t, "record") || tok_is(&sr, type_t, "error"))) {
		rc = bn_error_set(err, BN_ECORRUPT, "avro.schema is not a record");
		goto cleanup;
	}
	rc = compile(&sr, 0, NULL, &d->root, 0);
	if (rc == BN_ECORRUPT) {
		bn_error_set(err, rc, "avro.schema is not a valid schema (unknown type or name, or nested too deep)");
		goto cleanup;
	}
	if (rc < 0)
		goto cleanup;
	/* The root record's field names, in order: member "fields" of token 0. */
	uint32_t fields = member(&sr, 0, "fields"), i = fields + 1;
	d->nfields = sr.tok[fields].size;
	rc = BN_ENOMEM;
	d->field_names = calloc(d->nfields ? d->nfields : 1, sizeof(*d->field_names));
	if (!d->field_names)
		goto cleanup;
	for (size_t k = 0; k < d->nfields; k++, i = sr.tok[i].next) {
		uint32_t fname = member(&sr, i, "name");
		if (!fname || sr.tok[fname].type != BN_JSON_STRING) {
			rc = bn_error_set(err, BN_ECORRUPT, "avro.schema has a field without a name");
			goto cleanup;
		}
		if (!(d->field_names[k] = tok_string(&sr, fname)))
			goto cleanup;
	}
	rc = BN_OK;
cleanup:
	if (rc == BN_ENOMEM)
		bn_error_set(err, BN_ENOMEM, "out of memory");
	for (size_t k = 0; k < sr.nnames; k++)
		free(sr.names[k]);
	free(sr.names);
	free(sr.name_node);
	bn_json_parser_free(jp);
	return rc;
}

int bn_avro_decoder_new(bn_avro_decoder **out, const char *schema_json, const char *name,
			const char *const *names, size_t n, bn_error *err)
{
	bn_avro_decoder *d = NULL;
	size_t nfields;
	int rc = BN_ENOMEM;

	d = calloc(1, sizeof(*d));
	if (!d || (n && !(d->wants = calloc(n, sizeof(*d->wants))))) {
		bn_error_set(err, BN_ENOMEM, "out of memory");
		goto cleanup;
	}
	d->nwants = n;
	rc = read_schema(d, schema_json, name, err);
	if (rc < 0)
		goto cleanup;
	nfields = d->nfields;
	d->slot = malloc((nfields ? nfields : 1) * sizeof(*d->slot));
	if (!d->slot) {
		rc = bn_error_set(err, BN_ENOMEM, "out of memory");
		goto cleanup;
	}
	for (size_t j = 0; j < nfields; j++)
		d->slot[j] = -1;
	for (size_t i = 0; i < n; i++) {
		size_t j;
		for (j = 0; j < nfields; j++) {
			if (strcmp(d->field_names[j], names[i]) == 0)
				break;
		}
		if (j == nfields) {
			char list[BN_ERROR_MESSAGE_MAX] = "";
			size_t len = 0;
			for (size_t k = 0; k < nfields && len < sizeof(list); k++)
				len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s", k ? ", " : "",
							d->field_names[k]);
			bn_error_locate(err, name, 0, 0);
			rc = bn_error_set(err, BN_EUSAGE, "no field '%s' in the schema (fields: %s)", names[i], list);
			goto cleanup;
		}
		d->slot[j] = (int)i;
		classify(d, &d->wants[i], d->kids[d->nodes[d->root].first + j], i);
	}
	*out = d;
	d = NULL;
	rc = BN_OK;
cleanup:
	bn_avro_decoder_free(d);
	return rc;
}

bn_avro_kind bn_avro_decoder_kind(const bn_avro_decoder *d, size_t i)
{
	return d->wants[i].kind;
}

const char *bn_avro_decoder_type_name(const bn_avro_decoder *d, size_t i)
{
	return d->wants[i].type_name;
}

typedef struct cursor {
	const unsigned char *p;
	const unsigned char *end;
	const char *why;          /* set on failure */
} cursor;

static int cur_long(cursor *c, int64_t *v)
{
	int rc = get_long(&c->p, c->end, v);
	if (rc == VARINT_TRUNCATED)
		c->why = "record runs past the end of the block";
	else if (rc == VARINT_OVERFLOW)
		c->why = "varint longer than 64 bits";
	return rc;
}

static int cur_skip(cursor *c, int64_t n)
{
	if (n < 0) {
		c->why = "negative length";
		return -1;
	}
	if ((uint64_t)n > (uint64_t)(c->end - c->p)) {
		c->why = "record runs past the end of the block";
		return -1;
	}
	c->p += n;
	return 0;
}

static int skip_value(const bn_avro_decoder *d, uint32_t ni, cursor *c, int depth)
{
	const node *n = &d->nodes[ni];
	int64_t v;

	if (depth > MAX_DEPTH) {
		c->why = "values nested too deep";
		return -1;
	}
	switch (n->type) {
	case N_NULL: return 0;
	case N_BOOLEAN: return cur_skip(c, 1);
	case N_INT:
	case N_LONG:
	case N_ENUM: return cur_long(c, &v);
	case N_FLOAT: return cur_skip(c, 4);
	case N_DOUBLE: return cur_skip(c, 8);
	case N_FIXED: return cur_skip(c, n->size);
	case N_BYTES:
	case N_STRING:
		if (cur_long(c, &v) < 0)
			return -1;
		return cur_skip(c, v);
	case N_RECORD:
		for (uint32_t i = 0; i < n->count; i++) {
			if (skip_value(d, d->kids[n->first + i], c, depth + 1) < 0)
				return -1;
		}
		return 0;
	case N_UNION:
		if (cur_long(c, &v) < 0)
			return -1;
		if (v < 0 || v >= n->count) {
			c->why = "union branch index out of range";
			return -1;
		}
		return skip_value(d, d->kids[n->first + (uint32_t)v], c, depth + 1);
	case N_ARRAY:
	case N_MAP:
		for (;;) {
			if (cur_long(c, &v) < 0)
				return -1;
			if (v == 0)
				return 0;
			if (v < 0) {
				/* a negative count is followed by the block's size: skip it whole */
				int64_t bytes;
				if (v == INT64_MIN || cur_long(c, &bytes) < 0 || cur_skip(c, bytes) < 0)
					return -1;
				continue;
			}
			if ((uint64_t)v > (uint64_t)(c->end - c->p) + 1) {
				c->why = "array or map count larger than the block";
				return -1;
			}
			for (int64_t i = 0; i < v; i++) {
				if (n->type == N_MAP) {
					int64_t kl;
					if (cur_long(c, &kl) < 0 || cur_skip(c, kl) < 0)
						return -1;
				}
				if (skip_value(d, n->first, c, depth + 1) < 0)
					return -1;
			}
		}
	}
	c->why = "unknown node";
	return -1;
}

static int get_string(cursor *c, bn_avro_span *s)
{
	int64_t len;
	if (cur_long(c, &len) < 0)
		return -1;
	if (len < 0) {
		c->why = "negative string length";
		return -1;
	}
	if ((uint64_t)len > (uint64_t)(c->end - c->p)) {
		c->why = "string runs past the end of the block";
		return -1;
	}
	s->p = (const char *)c->p;
	s->n = (size_t)len;
	c->p += len;
	return 0;
}

static int decode_want(want *w, cursor *c, bn_avro_value *v)
{
	int64_t x;

	v->is_null = 0;
	v->nitems = 0;
	if (w->union_null >= 0 || w->union_value >= 0) {
		if (cur_long(c, &x) < 0)
			return -1;
		if (x == w->union_null) {
			v->is_null = 1;
			return 0;
		}
		if (x != w->union_value) {
			c->why = "union branch index out of range";
			return -1;
		}
	}
	switch (w->kind) {
	case BN_AVRO_KIND_STRING:
		return get_string(c, &v->str);
	case BN_AVRO_KIND_INT:
		return cur_long(c, &v->i);
	case BN_AVRO_KIND_BOOLEAN:
		if (c->p == c->end) {
			c->why = "record runs past the end of the block";
			return -1;
		}
		if (*c->p > 1) {
			c->why = "boolean byte is neither 0 nor 1";
			return -1;
		}
		v->i = *c->p++;
		return 0;
	case BN_AVRO_KIND_STRING_ARRAY:
		w->items.size = 0;
		for (;;) {
			if (cur_long(c, &x) < 0)
				return -1;
			if (x == 0)
				break;
			if (x < 0) {
				int64_t bytes;
				if (x == INT64_MIN || cur_long(c, &bytes) < 0)
					return -1;
				x = -x;
			}
			if ((uint64_t)x > (uint64_t)(c->end - c->p)) {
				c->why = "array count larger than the block";
				return -1;
			}
			if (bn_buf_reserve(&w->items, (size_t)x * sizeof(bn_avro_span)) < 0) {
				c->why = NULL;
				return -2;
			}
			bn_avro_span *items = (bn_avro_span *)(void *)w->items.data;
			size_t have = w->items.size / sizeof(bn_avro_span);
			for (int64_t i = 0; i < x; i++) {
				if (get_string(c, &items[have + (size_t)i]) < 0)
					return -1;
			}
			w->items.size += (size_t)x * sizeof(bn_avro_span);
		}
		v->items = (const bn_avro_span *)(const void *)w->items.data;
		v->nitems = w->items.size / sizeof(bn_avro_span);
		return 0;
	case BN_AVRO_KIND_OTHER:
		break;
	}
	return 0;
}

int bn_avro_decode_record(bn_avro_decoder *d, const char **p, const char *end, bn_avro_value *values, bn_error *err)
{
	const node *root = &d->nodes[d->root];
	cursor c = { (const unsigned char *)*p, (const unsigned char *)end, NULL };
	int rc;

	for (uint32_t j = 0; j < root->count; j++) {
		int s = d->slot[j];
		if (s < 0 || d->wants[s].kind == BN_AVRO_KIND_OTHER) {
			rc = skip_value(d, d->kids[root->first + j], &c, 1);
			if (s >= 0)
				values[s].is_null = 1;
		} else {
			rc = decode_want(&d->wants[s], &c, &values[s]);
		}
		if (rc == -2)
			return bn_error_set(err, BN_ENOMEM, "out of memory");
		if (rc < 0)
			return bn_error_set(err, BN_ECORRUPT, "%s", c.why ? c.why : "invalid record");
	}
	*p = (const char *)c.p;
	return BN_OK;
}

void bn_avro_decoder_free(bn_avro_decoder *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->nwants; i++)
		bn_buf_free(&d->wants[i].items);
	free(d->wants);
	free(d->slot);
	free(d->nodes);
	free(d->kids);
	for (size_t i = 0; d->field_names && i < d->nfields; i++)
		free(d->field_names[i]);
	free(d->field_names);
	free(d);
}
