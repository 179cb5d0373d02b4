/* avro_writer.c - Avro object container framing: header with user metadata, a sync marker derived from it, buffered blocks. */
#include "bidnorm/avro.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sink/avro_encode.h"
#include "util/buf.h"
#include "util/sha256.h"

#define SYNC_SIZE 16
/* Large enough that small blocks cost one write(2) per many blocks. */
#define OUT_BUFFER (256 * 1024)
#define BLOCK_LIMIT ((size_t)INT32_MAX)

struct bn_avro_writer {
	int fd;
	char *name;
	char sync[SYNC_SIZE];
	bn_buf out;         /* pending bytes, flushed at OUT_BUFFER */
	uint64_t bytes;     /* produced so far, flushed or not */
	int write_errno;    /* nonzero once a write failed: the writer is dead */
};

static int fail_io(bn_avro_writer *w, bn_error *err)
{
	bn_error_locate(err, w->name, 0, 0);
	return bn_error_set(err, BN_EIO, "write failed: %s", strerror(w->write_errno));
}

static int write_all(bn_avro_writer *w, const char *p, size_t n, bn_error *err)
{
	while (n > 0) {
		ssize_t k = write(w->fd, p, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			/* a zero-byte write for n > 0 would loop forever; treat it as full */
			w->write_errno = k < 0 ? errno : ENOSPC;
			return fail_io(w, err);
		}
		p += k;
		n -= (size_t)k;
	}
	return BN_OK;
}

static int flush(bn_avro_writer *w, bn_error *err)
{
	int rc = write_all(w, w->out.data, w->out.size, err);
	w->out.size = 0;
	return rc;
}

static int oom(bn_error *err)
{
	return bn_error_set(err, BN_ENOMEM, "out of memory");
}

static int check_meta(const bn_avro_meta *meta, size_t nmeta, bn_error *err)
{
	for (size_t i = 0; i < nmeta; i++) {
		if (!meta[i].key || !meta[i].value)
			return bn_error_set(err, BN_EUSAGE, "metadata entry %zu has no %s", i,
					    meta[i].key ? "value" : "key");
		if (strncmp(meta[i].key, "avro.", 5) == 0)
			return bn_error_set(err, BN_EUSAGE, "metadata key '%s' is reserved", meta[i].key);
		for (size_t j = 0; j < i; j++) {
			if (strcmp(meta[i].key, meta[j].key) == 0)
				return bn_error_set(err, BN_EUSAGE, "metadata key '%s' appears twice", meta[i].key);
		}
	}
	return BN_OK;
}

static int put_entry(bn_buf *b, const char *key, const char *value)
{
	if (bn_avro_put_string(b, key, strlen(key)) < 0)
		return BN_ENOMEM;
	return bn_avro_put_bytes(b, value, strlen(value));
}

static int build_header(bn_avro_writer *w, const char *schema_json, bn_codec codec, const bn_avro_meta *meta,
			size_t nmeta)
{
	bn_buf *b = &w->out;

	if (bn_buf_append(b, "Obj\x01", 4) < 0)
		return BN_ENOMEM;
	/* the metadata map<bytes> as one block, then the end marker */
	if (bn_avro_put_count(b, 2 + nmeta) < 0 || put_entry(b, "avro.schema", schema_json) < 0 ||
	    put_entry(b, "avro.codec", bn_codec_name(codec)) < 0)
		return BN_ENOMEM;
	for (size_t i = 0; i < nmeta; i++) {
		if (put_entry(b, meta[i].key, meta[i].value) < 0)
			return BN_ENOMEM;
	}
	if (bn_avro_put_end(b) < 0)
		return BN_ENOMEM;
	/*
	 * The marker only has to be unlikely to occur in the data, so it is derived
	 * from the header (schema, codec, metadata: for ingest the bidnorm version,
	 * rules hash and input names) instead of drawn at random: the same inputs,
	 * rules and options give byte-identical files (retries, caches,
	 * content-addressed storage).
	 */
	unsigned char digest[BN_SHA256_SIZE];
	bn_sha256 sha;
	bn_sha256_init(&sha);
	bn_sha256_update(&sha, b->data, b->size);
	bn_sha256_final(digest, &sha);
	memcpy(w->sync, digest, SYNC_SIZE);
	if (bn_buf_append(b, w->sync, SYNC_SIZE) < 0)
		return BN_ENOMEM;
	return BN_OK;
}

int bn_avro_writer_new(bn_avro_writer **out, int fd, const char *name, const char *schema_json, bn_codec codec,
		       const bn_avro_meta *meta, size_t nmeta, bn_error *err)
{
	bn_avro_writer *w = NULL;
	int rc;

	if (!schema_json || !schema_json[0])
		return bn_error_set(err, BN_EUSAGE, "schema JSON is empty");
	if (strcmp(bn_codec_name(codec), "unknown") == 0)
		return bn_error_set(err, BN_EUSAGE, "unknown codec number %d", (int)codec);
	rc = check_meta(meta, nmeta, err);
	if (rc < 0)
		return rc;

	w = calloc(1, sizeof(*w));
	if (!w || !(w->name = strdup(name ? name : "")) || bn_buf_reserve(&w->out, OUT_BUFFER) < 0) {
		rc = oom(err);
		goto cleanup;
	}
	w->fd = fd;
	if (build_header(w, schema_json, codec, meta, nmeta) < 0) {
		rc = oom(err);
		goto cleanup;
	}
	w->bytes = w->out.size;
	/* written at once so a full disk or a bad descriptor fails before any work is done */
	rc = flush(w, err);
	if (rc < 0)
		goto cleanup;
	*out = w;
	w = NULL;
cleanup:
	bn_avro_writer_free(w);
	return rc;
}

/* Make room for n more bytes in the buffer (n <= OUT_BUFFER). */
static int room(bn_avro_writer *w, size_t n, bn_error *err)
{
	if (w->out.size + n <= OUT_BUFFER)
		return BN_OK;
	return flush(w, err);
}

int bn_avro_writer_write_block(bn_avro_writer *w, uint64_t count, const void *data, size_t size, bn_error *err)
{
	bn_buf *b = &w->out;
	size_t head;
	int rc;

	if (w->write_errno)
		return fail_io(w, err);
	if (count == 0)
		return BN_OK;
	if (size > BLOCK_LIMIT || count > INT64_MAX)
		return bn_error_set(err, BN_EUSAGE, "block of %zu bytes is over the 2 GiB limit of Avro readers", size);

	rc = room(w, 2 * BN_AVRO_LONG_MAX, err);
	if (rc < 0)
		return rc;
	head = bn_avro_put_long_raw(b->data + b->size, (int64_t)count);
	head += bn_avro_put_long_raw(b->data + b->size + head, (int64_t)size);
	b->size += head;
	if (size <= OUT_BUFFER - b->size) {
		memcpy(b->data + b->size, data, size);
		b->size += size;
	} else {
		/* big blocks go straight to fd instead of being copied through the buffer */
		rc = flush(w, err);
		if (rc < 0)
			return rc;
		rc = write_all(w, data, size, err);
		if (rc < 0)
			return rc;
	}
	rc = room(w, SYNC_SIZE, err);
	if (rc < 0)
		return rc;
	memcpy(b->data + b->size, w->sync, SYNC_SIZE);
	b->size += SYNC_SIZE;
	w->bytes += head + size + SYNC_SIZE;
	return BN_OK;
}

int bn_avro_writer_finish(bn_avro_writer *w, bn_error *err)
{
	if (w->write_errno)
		return fail_io(w, err);
	return flush(w, err);
}

uint64_t bn_avro_writer_bytes(const bn_avro_writer *w)
{
	return w->bytes;
}

void bn_avro_writer_free(bn_avro_writer *w)
{
	if (!w)
		return;
	free(w->name);
	bn_buf_free(&w->out);
	free(w);
}
