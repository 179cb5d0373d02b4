/* journal.c - the watcher's journal (append-only JSON lines, fsynced) and content-based file identities. */
#include "watch/journal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "record/json.h"
#include "sink/output.h"
#include "util/jsonw.h"
#include "util/sha256.h"

struct bn_journal {
	pthread_mutex_t lock;
	int fd;
	char *path;
	bn_journal_entry *entries;
	size_t n, cap;
	bn_json_parser *parser;
	bn_buf line;
	size_t lines;             /* lines in the file when it was loaded */
};

static void hex(char out[65], const unsigned char d[BN_SHA256_SIZE])
{
	static const char digits[] = "0123456789abcdef";
	for (int i = 0; i < BN_SHA256_SIZE; i++) {
		out[2 * i] = digits[d[i] >> 4];
		out[2 * i + 1] = digits[d[i] & 15];
	}
	out[64] = '\0';
}

/* SHA-256 of size bytes at offset off of fd. */
static int hash_range(char out[65], int fd, uint64_t off, size_t size, unsigned char *buf)
{
	size_t got = 0;
	while (got < size) {
		ssize_t r = pread(fd, buf + got, size - got, (off_t)(off + got));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0) {
			errno = EIO;
			return -1;   /* the file shrank under us */
		}
		got += (size_t)r;
	}
	unsigned char d[BN_SHA256_SIZE];
	bn_sha256 c;
	bn_sha256_init(&c);
	bn_sha256_update(&c, buf, size);
	bn_sha256_final(d, &c);
	hex(out, d);
	return 0;
}

int bn_watch_identity_fd(bn_watch_identity *out, int fd, const char *name, bn_error *err)
{
	struct stat st;
	unsigned char *buf = NULL;
	bn_watch_identity id;
	int rc = BN_OK;

	memset(&id, 0, sizeof(id));
	snprintf(id.name, sizeof(id.name), "%s", name);
	if (fstat(fd, &st) < 0) {
		bn_error_locate(err, name, 0, 0);
		return bn_error_set(err, BN_EIO, "cannot stat: %s", strerror(errno));
	}
	id.size = (uint64_t)st.st_size;
	buf = malloc(BN_WATCH_HASH_BYTES);
	if (!buf)
		return bn_error_set(err, BN_ENOMEM, "out of memory");
	size_t n = id.size < BN_WATCH_HASH_BYTES ? (size_t)id.size : BN_WATCH_HASH_BYTES;
	if (hash_range(id.head, fd, 0, n, buf) < 0 || hash_range(id.tail, fd, id.size - n, n, buf) < 0) {
		bn_error_locate(err, name, 0, 0);
		rc = bn_error_set(err, BN_EIO, "read failed: %s", strerror(errno));
		goto cleanup;
	}
	*out = id;
cleanup:
	free(buf);
	return rc;
}

int bn_watch_identity_equal(const bn_watch_identity *a, const bn_watch_identity *b)
{
	return a->size == b->size && strcmp(a->name, b->name) == 0 && strcmp(a->head, b->head) == 0 &&
	       strcmp(a->tail, b->tail) == 0;
}

static const char *status_name(int status)
{
	switch (status) {
	case BN_JOURNAL_PUBLISHED: return "published";
	case BN_JOURNAL_DONE: return "done";
	case BN_JOURNAL_QUARANTINED: return "quarantined";
	default: return "unknown";
	}
}

int bn_journal_format_line(bn_buf *b, const bn_journal_entry *e)
{
	int first = 1, bad = 0;
	static const char *const suffixes[] = { ".avro", ".rejects.jsonl", ".stats.json" };
	char out[300];

	bad |= bn_jsonw_raw(b, "{");
	bad |= bn_jsonw_key(b, "time", &first) | bn_jsonw_cstr(b, e->time);
	bad |= bn_jsonw_key(b, "status", &first) | bn_jsonw_cstr(b, status_name(e->status));
	bad |= bn_jsonw_key(b, "file", &first) | bn_jsonw_cstr(b, e->id.name);
	bad |= bn_jsonw_key(b, "size", &first) | bn_jsonw_u64(b, e->id.size);
	bad |= bn_jsonw_key(b, "head", &first) | bn_jsonw_cstr(b, e->id.head);
	bad |= bn_jsonw_key(b, "tail", &first) | bn_jsonw_cstr(b, e->id.tail);
	bad |= bn_jsonw_key(b, "stem", &first) | bn_jsonw_cstr(b, e->stem);
	bad |= bn_jsonw_key(b, "outputs", &first) | bn_jsonw_raw(b, "[");
	for (size_t i = 0; e->status != BN_JOURNAL_QUARANTINED && i < 3; i++) {
		snprintf(out, sizeof(out), "%s%s", e->stem, suffixes[i]);
		bad |= (i ? bn_jsonw_raw(b, ",") : 0) | bn_jsonw_cstr(b, out);
	}
	bad |= bn_jsonw_raw(b, "]");
	bad |= bn_jsonw_key(b, "where", &first) | bn_jsonw_cstr(b, e->where);
	bad |= bn_jsonw_key(b, "records_written", &first) | bn_jsonw_u64(b, e->records_written);
	bad |= bn_jsonw_key(b, "records_rejected", &first) | bn_jsonw_u64(b, e->records_rejected);
	bad |= bn_jsonw_raw(b, "}\n");
	return bad ? -1 : 0;
}

/* Copy a STRING token into out (NUL-terminated); -1 when it does not fit or is not a string. */
static int token_string(char *out, size_t size, const char *line, const bn_json_token *t)
{
	if (t->type != BN_JSON_STRING || t->len >= size)
		return -1;
	size_t n = bn_json_unescape(line + t->start, t->len, out);
	out[n] = '\0';
	return strlen(out) == n ? 0 : -1;
}

static int token_u64(uint64_t *out, const char *line, const bn_json_token *t)
{
	int64_t v;
	if (t->type != BN_JSON_NUMBER || bn_json_number_int64(line + t->start, t->len, &v) < 0 || v < 0)
		return -1;
	*out = (uint64_t)v;
	return 0;
}

static int parse_with(bn_json_parser *p, bn_journal_entry *out, const char *line, size_t len)
{
	bn_json_result res;
	bn_journal_entry e;
	char status[32] = "";

	memset(&e, 0, sizeof(e));
	if (bn_json_parse(p, line, len, &res) != BN_JSON_OK || res.count == 0 ||
	    res.tokens[0].type != BN_JSON_OBJECT)
		return -1;
	const bn_json_token *t = res.tokens;
	for (size_t i = 1; i < res.count; i = t[i + 1].next) {
		char key[32];
		const bn_json_token *v = &t[i + 1];
		int bad = 0;
		if (token_string(key, sizeof(key), line, &t[i]) < 0)
			continue;   /* a key we do not know, long or odd: skip it */
		if (strcmp(key, "time") == 0)
			bad = token_string(e.time, sizeof(e.time), line, v);
		else if (strcmp(key, "status") == 0)
			bad = token_string(status, sizeof(status), line, v);
		else if (strcmp(key, "file") == 0)
			bad = token_string(e.id.name, sizeof(e.id.name), line, v);
		else if (strcmp(key, "size") == 0)
			bad = token_u64(&e.id.size, line, v);
		else if (strcmp(key, "head") == 0)
			bad = token_string(e.id.head, sizeof(e.id.head), line, v);
		else if (strcmp(key, "tail") == 0)
			bad = token_string(e.id.tail, sizeof(e.id.tail), line, v);
		else if (strcmp(key, "stem") == 0)
			bad = token_string(e.stem, sizeof(e.stem), line, v);
		else if (strcmp(key, "where") == 0)
			bad = token_string(e.where, sizeof(e.where), line, v);
		else if (strcmp(key, "records_written") == 0)
			bad = token_u64(&e.records_written, line, v);
		else if (strcmp(key, "records_rejected") == 0)
			bad = token_u64(&e.records_rejected, line, v);
		if (bad)
			return -1;
	}
	if (strcmp(status, "published") == 0)
		e.status = BN_JOURNAL_PUBLISHED;
	else if (strcmp(status, "done") == 0)
		e.status = BN_JOURNAL_DONE;
	else if (strcmp(status, "quarantined") == 0)
		e.status = BN_JOURNAL_QUARANTINED;
	else
		return -1;
	if (!e.id.name[0] || strlen(e.id.head) != 64 || strlen(e.id.tail) != 64)
		return -1;
	*out = e;
	return 0;
}

int bn_journal_parse_line(bn_journal_entry *out, const char *line, size_t len)
{
	bn_json_parser *p = NULL;
	int rc;
	if (bn_json_parser_new(&p, 8) < 0)
		return -1;
	rc = parse_with(p, out, line, len);
	bn_json_parser_free(p);
	return rc;
}

/* Keep e as the newest entry of its file name: lookups only ever need that one. */
static int remember(bn_journal *j, const bn_journal_entry *e)
{
	for (size_t i = j->n; i-- > 0;) {
		if (strcmp(j->entries[i].id.name, e->id.name) == 0) {
			memmove(&j->entries[i], &j->entries[i + 1], (j->n - i - 1) * sizeof(*e));
			j->entries[j->n - 1] = *e;
			return 0;
		}
	}
	if (j->n == j->cap) {
		size_t cap = j->cap ? j->cap * 2 : 256;
		bn_journal_entry *p = realloc(j->entries, cap * sizeof(*p));
		if (!p)
			return -1;
		j->entries = p;
		j->cap = cap;
	}
	j->entries[j->n++] = *e;
	return 0;
}

/* Read the whole file and keep every valid line; a torn last line is skipped. */
static int load(bn_journal *j, bn_error *err)
{
	bn_buf text = { 0 };
	char chunk[65536];
	int rc = BN_OK;

	for (;;) {
		ssize_t r = read(j->fd, chunk, sizeof(chunk));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			bn_error_locate(err, j->path, 0, 0);
			rc = bn_error_set(err, BN_EIO, "read failed: %s", strerror(errno));
			goto cleanup;
		}
		if (r == 0)
			break;
		if (bn_buf_append(&text, chunk, (size_t)r) < 0) {
			rc = bn_error_set(err, BN_ENOMEM, "out of memory");
			goto cleanup;
		}
	}
	for (size_t at = 0; at < text.size;) {
		char *nl = memchr(text.data + at, '\n', text.size - at);
		size_t end = nl ? (size_t)(nl - text.data) : text.size;
		bn_journal_entry e;
		if (end > at)
			j->lines++;
		if (end > at && parse_with(j->parser, &e, text.data + at, end - at) == 0 && remember(j, &e) < 0) {
			rc = bn_error_set(err, BN_ENOMEM, "out of memory");
			goto cleanup;
		}
		at = end + 1;
	}
	/* A torn last line must not swallow the next entry: start it on a line of its own. */
	if (text.size && text.data[text.size - 1] != '\n' && bn_write_all(j->fd, "\n", 1) < 0) {
		bn_error_locate(err, j->path, 0, 0);
		rc = bn_error_set(err, BN_EIO, "write failed: %s", strerror(errno));
	}
cleanup:
	bn_buf_free(&text);
	return rc;
}

/* Replace the file by one holding only the entries kept in memory (temporary name, fsync, rename). */
static int compact(bn_journal *j, bn_error *err)
{
	bn_outfile f;
	bn_buf b = { 0 };
	int rc = bn_outfile_open(&f, j->path, err);

	if (rc < 0)
		return rc;
	for (size_t i = 0; i < j->n && rc == BN_OK; i++) {
		bn_buf_reset(&b);
		if (bn_journal_format_line(&b, &j->entries[i]) < 0)
			rc = bn_error_set(err, BN_ENOMEM, "out of memory");
		else
			rc = bn_outfile_write(&f, b.data, b.size, err);
	}
	bn_buf_free(&b);
	if (rc < 0) {
		bn_outfile_abort(&f);
		return rc;
	}
	rc = bn_outfile_commit(&f, err);
	if (rc < 0)
		return rc;
	close(j->fd);
	j->fd = open(j->path, O_RDWR | O_APPEND | O_CLOEXEC);
	if (j->fd < 0) {
		bn_error_locate(err, j->path, 0, 0);
		return bn_error_set(err, BN_EIO, "cannot open the journal: %s", strerror(errno));
	}
	return BN_OK;
}

int bn_journal_open(bn_journal **out, const char *path, bn_error *err)
{
	bn_journal *j = calloc(1, sizeof(*j));
	int rc = BN_ENOMEM;

	if (!j)
		return bn_error_set(err, BN_ENOMEM, "out of memory");
	pthread_mutex_init(&j->lock, NULL);
	j->fd = -1;
	j->path = strdup(path);
	if (!j->path || bn_json_parser_new(&j->parser, 8) < 0) {
		bn_error_set(err, BN_ENOMEM, "out of memory");
		goto cleanup;
	}
	j->fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (j->fd < 0) {
		bn_error_locate(err, path, 0, 0);
		rc = bn_error_set(err, BN_EIO, "cannot open the journal: %s", strerror(errno));
		goto cleanup;
	}
	rc = load(j, err);
	/* Only the newest entry per file name matters: rewrite the file when it is mostly history. */
	if (rc == BN_OK && j->lines > 2 * j->n + 1024)
		rc = compact(j, err);
cleanup:
	if (rc < 0) {
		bn_journal_free(j);
		return rc;
	}
	*out = j;
	return BN_OK;
}

int bn_journal_append(bn_journal *j, bn_journal_entry *e, bn_error *err)
{
	struct timespec ts;
	struct tm tm;
	int rc = BN_OK;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(e->time, sizeof(e->time), "%Y-%m-%dT%H:%M:%SZ", &tm);
	pthread_mutex_lock(&j->lock);
	bn_buf_reset(&j->line);
	if (bn_journal_format_line(&j->line, e) < 0) {
		rc = bn_error_set(err, BN_ENOMEM, "out of memory");
		goto cleanup;
	}
	/* One write per entry: a crash tears at most this line, which loading then skips. */
	if (bn_write_all(j->fd, j->line.data, j->line.size) < 0 || fsync(j->fd) < 0) {
		bn_error_locate(err, j->path, 0, 0);
		rc = bn_error_set(err, BN_EIO, "journal: write failed: %s", strerror(errno));
		/* Whatever part was written is a torn line now: end it so the next entry stays whole. */
		if (bn_write_all(j->fd, "\n", 1) < 0) {
			/* Still failing (disk full): loading skips the torn line either way. */
		}
		goto cleanup;
	}
	if (remember(j, e) < 0)
		rc = bn_error_set(err, BN_ENOMEM, "out of memory");
cleanup:
	pthread_mutex_unlock(&j->lock);
	return rc;
}

int bn_journal_last_status(bn_journal *j, const bn_watch_identity *id)
{
	int status = 0;
	pthread_mutex_lock(&j->lock);
	for (size_t i = j->n; i-- > 0;) {
		if (bn_watch_identity_equal(&j->entries[i].id, id)) {
			status = j->entries[i].status;
			break;
		}
	}
	pthread_mutex_unlock(&j->lock);
	return status;
}

int bn_journal_stem_owner(bn_journal *j, const char *stem, const char *name, char *out, size_t size)
{
	int found = 0;
	pthread_mutex_lock(&j->lock);
	for (size_t i = j->n; i-- > 0;) {
		const bn_journal_entry *e = &j->entries[i];
		if (e->status == BN_JOURNAL_QUARANTINED || strcmp(e->stem, stem) != 0)
			continue;
		if (strcmp(e->id.name, name) != 0) {
			snprintf(out, size, "%s", e->id.name);
			found = 1;
		}
		break;
	}
	pthread_mutex_unlock(&j->lock);
	return found;
}

size_t bn_journal_count(bn_journal *j)
{
	pthread_mutex_lock(&j->lock);
	size_t n = j->n;
	pthread_mutex_unlock(&j->lock);
	return n;
}

void bn_journal_get(bn_journal *j, size_t i, bn_journal_entry *out)
{
	pthread_mutex_lock(&j->lock);
	if (i < j->n)
		*out = j->entries[i];
	pthread_mutex_unlock(&j->lock);
}

void bn_journal_free(bn_journal *j)
{
	if (!j)
		return;
	if (j->fd >= 0)
		close(j->fd);
	bn_json_parser_free(j->parser);
	bn_buf_free(&j->line);
	free(j->entries);
	free(j->path);
	pthread_mutex_destroy(&j->lock);
	free(j);
}
