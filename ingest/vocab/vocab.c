/* vocab.c - selecting tokens, linting them, writing vocabulary directories atomically, diffing and regenerating them. */
#include "bidnorm/vocab.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <utf8proc.h>

#include "bidnorm/bidnorm.h"
#include "record/json.h"
#include "sink/output.h"
#include "util/buf.h"
#include "util/file.h"
#include "vocab/dir.h"
#include "util/jsonw.h"
#include "util/sha256.h"
#include "vocab/count.h"

/* How many example tokens a diff shows per kind of change. */
#define DIFF_EXAMPLES 5
/* Longest token text quoted in a message. */
#define QUOTE_MAX 120

static int oom(bn_error *err)
{
	return bn_error_set(err, BN_ENOMEM, "out of memory");
}

void bn_vocab_write_options_init(bn_vocab_write_options *opt)
{
	memset(opt, 0, sizeof(*opt));
	opt->min_count = 1;
}

void bn_vocab_regen_options_init(bn_vocab_regen_options *opt)
{
	memset(opt, 0, sizeof(*opt));
	bn_vocab_write_options_init(&opt->write);
	opt->max_churn = 0.2;
	opt->max_coverage_drop = 0.05;
	opt->keep = 5;
}

/* ---- selection ---- */

typedef struct selection {
	bn_vsort_item *list;     /* kept tokens in vocabulary order: key and count */
	size_t kept;
	uint64_t kept_occurrences;
} selection;

/* Tokens with count >= min_count in vocabulary order (count descending, then bytes), the first top_k kept. */
static int select_tokens(selection *out, const bn_vtable *t, uint64_t min_count, uint64_t top_k)
{
	size_t n = 0;
	out->list = malloc((t->n ? t->n : 1) * sizeof(*out->list));
	if (!out->list)
		return BN_ENOMEM;
	for (size_t i = 0; i < t->cap; i++) {
		if (t->slots[i].key && t->slots[i].count >= min_count)
			bn_vsort_item_set(&out->list[n++], UINT64_MAX - t->slots[i].count, &t->slots[i]);
	}
	bn_vsort(out->list, n);
	if (top_k && n > top_k)
		n = (size_t)top_k;
	out->kept = n;
	out->kept_occurrences = 0;
	for (size_t i = 0; i < n; i++)
		out->kept_occurrences += out->list[i].count;
	return BN_OK;
}

/* ---- lint ---- */

/* s as a double-quoted string for messages: escapes, invisible characters as \u{...}, long ones cut. */
static void quote(bn_buf *b, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	bn_buf_putc(b, '"');
	while (i < n) {
		char tmp[16];
		if (i >= QUOTE_MAX) {
			bn_buf_append(b, "...", 3);
			break;
		}
		if (p[i] == '"' || p[i] == '\\') {
			tmp[0] = '\\';
			tmp[1] = (char)p[i++];
			bn_buf_append(b, tmp, 2);
			continue;
		}
		if (p[i] == '\n' || p[i] == '\t' || p[i] == '\r') {
			tmp[0] = '\\';
			tmp[1] = p[i] == '\n' ? 'n' : p[i] == '\t' ? 't' : 'r';
			bn_buf_append(b, tmp, 2);
			i++;
			continue;
		}
		utf8proc_int32_t cp;
		utf8proc_ssize_t k = utf8proc_iterate(p + i, (utf8proc_ssize_t)(n - i), &cp);
		if (k <= 0) {
			snprintf(tmp, sizeof(tmp), "\\x%02x", p[i]);
			bn_buf_append(b, tmp, 4);
			i++;
			continue;
		}
		utf8proc_category_t cat = utf8proc_category(cp);
		if (cat == UTF8PROC_CATEGORY_CC || cat == UTF8PROC_CATEGORY_CF || cat == UTF8PROC_CATEGORY_ZL ||
		    cat == UTF8PROC_CATEGORY_ZP || (cat == UTF8PROC_CATEGORY_ZS && cp != ' ') || cp == 0xFFFD) {
			int m = snprintf(tmp, sizeof(tmp), "\\u{%04X}", (unsigned)cp);
			bn_buf_append(b, tmp, (size_t)m);
		} else {
			bn_buf_append(b, s + i, (size_t)k);
		}
		i += (size_t)k;
	}
	bn_buf_putc(b, '"');
	bn_buf_putc(b, '\0');
}

typedef struct linter {
	bn_normalizer *norm;
	bn_vocab_lint_fn on_bad;
	void *ctx;
	uint64_t bad;
	int check_dups;       /* tokens from files; a counter's are distinct by construction */
	bn_vtable seen;       /* token -> line, for duplicates */
	bn_vmem mem;
	int seen_ready;
	bn_buf q1, q2;
} linter;

static void report(linter *L, const char *file, uint64_t line, const char *fmt, const char *a, const char *b)
{
	bn_error e;
	L->bad++;
	if (!L->on_bad)
		return;
	bn_error_clear(&e);
	bn_error_locate(&e, file, line, 0);
	e.code = BN_EUSAGE;
	snprintf(e.message, sizeof(e.message), fmt, a, b ? b : "");
	L->on_bad(L->ctx, &e);
}

/* The first character class problem in tok, as a reason, or NULL. */
static const char *char_problem(const char *tok, size_t n, char *why, size_t why_size)
{
	const unsigned char *p = (const unsigned char *)tok;
	size_t i = 0;
	while (i < n) {
		if (p[i] < 0x80 && p[i] >= 0x20 && p[i] != 0x7f) {
			i++;
			continue;
		}
		if (p[i] == '\n')
			return "contains a newline";
		if (p[i] == '\t')
			return "contains a tab";
		if (p[i] == '\r')
			return "contains a carriage return";
		utf8proc_int32_t cp;
		utf8proc_ssize_t k = utf8proc_iterate(p + i, (utf8proc_ssize_t)(n - i), &cp);
		if (k <= 0)
			return "is not valid UTF-8";
		utf8proc_category_t cat = utf8proc_category(cp);
		const char *kind = cat == UTF8PROC_CATEGORY_CC ? "control"
				 : cat == UTF8PROC_CATEGORY_CF ? "format"
				 : cat == UTF8PROC_CATEGORY_ZL || cat == UTF8PROC_CATEGORY_ZP ? "line separator"
				 : cp == 0xFFFD ? "replacement" : NULL;
		if (kind) {
			snprintf(why, why_size, "contains U+%04X (%s character)", (unsigned)cp, kind);
			return why;
		}
		i += (size_t)k;
	}
	return NULL;
}

/* Is the code point at the start (end = 0) or end (end = 1) of tok white space? */
static int edge_space(const char *tok, size_t n, int end)
{
	const unsigned char *p = (const unsigned char *)tok;
	utf8proc_int32_t cp;
	if (n == 0)
		return 0;
	if (!end) {
		if (utf8proc_iterate(p, (utf8proc_ssize_t)n, &cp) <= 0)
			return 0;
	} else {
		size_t i = n - 1;
		while (i > 0 && (p[i] & 0xC0) == 0x80)
			i--;
		if (utf8proc_iterate(p + i, (utf8proc_ssize_t)(n - i), &cp) <= 0)
			return 0;
	}
	return cp == ' ' || utf8proc_category(cp) == UTF8PROC_CATEGORY_ZS;
}

static int linter_init(linter *L, const bn_rules *rules, bn_rules **owned, bn_vocab_lint_fn on_bad, void *ctx,
		       bn_error *err)
{
	int rc;
	memset(L, 0, sizeof(*L));
	L->on_bad = on_bad;
	L->ctx = ctx;
	*owned = NULL;
	if (!rules) {
		rc = bn_rules_load_default(owned, err);
		if (rc < 0)
			return rc;
		rules = *owned;
	}
	return bn_normalizer_new(&L->norm, rules, err);
}

static void linter_free(linter *L)
{
	bn_normalizer_free(L->norm);
	if (L->seen_ready)
		bn_vtable_free(&L->seen);
	bn_buf_free(&L->q1);
	bn_buf_free(&L->q2);
}

/* Start a new file: forget the tokens of the previous one. */
static int linter_file(linter *L, const char *field, bn_error *err)
{
	if (L->seen_ready)
		bn_vtable_free(&L->seen);
	L->seen_ready = 0;
	if (!L->check_dups)
		return BN_OK;
	int rc = bn_vtable_init(&L->seen, &L->mem, field, 0, err);
	if (rc == BN_OK)
		L->seen_ready = 1;
	return rc;
}

/* tok quoted for a message (only bad tokens are quoted: it is the slow part). */
static const char *qtok(linter *L, const char *tok, size_t n)
{
	L->q1.size = 0;
	quote(&L->q1, tok, n);
	return L->q1.data ? L->q1.data : "\"\"";
}

/*
 * Check one token. *field_ok is cleared when the rules have no string
 * field of that name (reported once; later tokens skip normalization).
 */
static int lint_token(linter *L, const char *file, const char *field, int *field_ok, uint64_t line, const char *tok,
		      size_t n, bn_error *err)
{
	char why[96];
	const char *problem;
	const char *out;
	size_t out_n;
	int is_null = 0, rc;

	if (n == 0) {
		report(L, file, line, "empty line: tokens cannot be empty%s%s", "", NULL);
		return BN_OK;
	}
	problem = char_problem(tok, n, why, sizeof(why));
	if (problem) {
		report(L, file, line, "token %s %s", qtok(L, tok, n), problem);
		return BN_OK;
	}
	if (edge_space(tok, n, 0) || edge_space(tok, n, 1)) {
		report(L, file, line, "token %s has leading or trailing white space%s", qtok(L, tok, n), NULL);
		return BN_OK;
	}
	if (L->check_dups) {
		const bn_ventry *dup = bn_vtable_find(&L->seen, tok, n);
		if (dup) {
			char first[32];
			snprintf(first, sizeof(first), "%llu", (unsigned long long)dup->count);
			report(L, file, line, "token %s duplicates line %s", qtok(L, tok, n), first);
			return BN_OK;
		}
		rc = bn_vtable_add(&L->seen, tok, n, line, 0, err);
		if (rc < 0)
			return rc;
	}
	if (!*field_ok)
		return BN_OK;
	bn_error nerr;
	bn_error_clear(&nerr);
	rc = bn_normalize_value(L->norm, field, tok, n, &out, &out_n, &is_null, NULL, NULL, &nerr);
	if (rc == BN_ENOMEM)
		return oom(err);
	if (rc == BN_EUSAGE) {
		*field_ok = 0;
		report(L, file, 0, "field '%s' cannot be checked against the rules: %.200s", field, nerr.message);
		return BN_OK;
	}
	if (rc == BN_EREJECT) {
		report(L, file, line, "token %s is rejected by the field's normalizer (%.200s)", qtok(L, tok, n), nerr.message);
		return BN_OK;
	}
	if (rc < 0) {
		report(L, file, line, "token %s cannot be normalized (%.200s)", qtok(L, tok, n), nerr.message);
		return BN_OK;
	}
	if (is_null) {
		report(L, file, line, "token %s is not normalized (normalizes to null)%s", qtok(L, tok, n), NULL);
		return BN_OK;
	}
	if (out_n != n || memcmp(out, tok, n) != 0) {
		L->q2.size = 0;
		quote(&L->q2, out, out_n);
		if (!L->q2.data)
			return oom(err);
		report(L, file, line, "token %s is not normalized (normalizes to %s)", qtok(L, tok, n), L->q2.data);
	}
	return BN_OK;
}

/* ---- reading vocabulary files ---- */

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int bn_vocab_dir_fields(char ***out, size_t *n, const char *dir, bn_error *err)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char **names = NULL;
	size_t cnt = 0, cap = 0;
	if (!d) {
		bn_error_locate(err, dir, 0, 0);
		return bn_error_set(err, BN_EIO, "cannot open the vocabulary directory: %s", strerror(errno));
	}
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);
		if (len <= 4 || strcmp(de->d_name + len - 4, ".txt") != 0 || de->d_name[0] == '.')
			continue;
		if (cnt == cap) {
			cap = cap ? 2 * cap : 8;
			char **p = realloc(names, cap * sizeof(*p));
			if (!p)
				goto nomem;
			names = p;
		}
		if (!(names[cnt] = strndup(de->d_name, len - 4)))
			goto nomem;
		cnt++;
	}
	closedir(d);
	if (cnt)
		qsort(names, cnt, sizeof(*names), cmp_str);
	*out = names;
	*n = cnt;
	return BN_OK;
nomem:
	closedir(d);
	for (size_t i = 0; i < cnt; i++)
		free(names[i]);
	free(names);
	return oom(err);
}

void bn_vocab_names_free(char **names, size_t n)
{
	for (size_t i = 0; names && i < n; i++)
		free(names[i]);
	free(names);
}

int bn_vocab_lint(uint64_t *out, const char *dir, const bn_rules *rules, bn_vocab_lint_fn on_bad, void *ctx,
		  bn_error *err)
{
	linter L;
	bn_rules *owned = NULL;
	char **fields = NULL, *path = NULL, *name = NULL;
	size_t nfields = 0;
	bn_buf text = { 0 };
	int rc;

	bn_error_clear(err);
	rc = linter_init(&L, rules, &owned, on_bad, ctx, err);
	if (rc < 0)
		goto cleanup;
	L.check_dups = 1;
	rc = bn_vocab_dir_fields(&fields, &nfields, dir, err);
	if (rc < 0)
		goto cleanup;
	if (nfields == 0) {
		bn_error_locate(err, dir, 0, 0);
		rc = bn_error_set(err, BN_EIO, "no vocabulary files (FIELD.txt) in the directory");
		goto cleanup;
	}
	for (size_t f = 0; f < nfields; f++) {
		int field_ok = 1;
		uint64_t line = 0;
		free(name);
		free(path);
		name = malloc(strlen(fields[f]) + 5);
		path = NULL;
		if (!name) {
			rc = oom(err);
			goto cleanup;
		}
		sprintf(name, "%s.txt", fields[f]);
		if (!(path = bn_path_join(dir, name))) {
			rc = oom(err);
			goto cleanup;
		}
		rc = bn_file_read_all(&text, path, err);
		if (rc == BN_OK)
			rc = linter_file(&L, fields[f], err);
		if (rc < 0)
			goto cleanup;
		for (size_t i = 0; i < text.size;) {
			const char *nl = memchr(text.data + i, '\n', text.size - i);
			size_t end = nl ? (size_t)(nl - text.data) : text.size;
			rc = lint_token(&L, path, fields[f], &field_ok, ++line, text.data + i, end - i, err);
			if (rc < 0)
				goto cleanup;
			i = end + 1;
		}
	}
	*out = L.bad;
	rc = BN_OK;
cleanup:
	linter_free(&L);
	bn_rules_free(owned);
	bn_vocab_names_free(fields, nfields);
	free(path);
	free(name);
	bn_buf_free(&text);
	return rc;
}

/* ---- writing a directory atomically ---- */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void remove_tree(const char *path)
{
	nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void fsync_path(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
}

static char *parent_of(const char *path)
{
	char *p = strdup(path);
	if (!p)
		return NULL;
	size_t n = strlen(p);
	while (n > 1 && p[n - 1] == '/')
		p[--n] = '\0';
	char *slash = strrchr(p, '/');
	if (!slash)
		strcpy(p, ".");
	else if (slash == p)
		p[1] = '\0';
	else
		*slash = '\0';
	return p;
}

static int write_file(const char *dir, const char *name, const bn_buf *b, bn_error *err)
{
	char *path = bn_path_join(dir, name);
	int fd = -1, rc = BN_OK;
	if (!path)
		return oom(err);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
	if (fd < 0 || bn_write_all(fd, b->data, b->size) < 0 || fsync(fd) < 0) {
		bn_error_locate(err, path, 0, 0);
		rc = bn_error_set(err, BN_EIO, "write failed: %s", strerror(errno));
	}
	if (fd >= 0 && close(fd) < 0 && rc == BN_OK) {
		bn_error_locate(err, path, 0, 0);
		rc = bn_error_set(err, BN_EIO, "close failed: %s", strerror(errno));
	}
	free(path);
	return rc;
}

/* Move tmp into place as dir: never over an existing dir unless force (then swapped, the old one removed). */
static int publish_dir(const char *tmp, const char *dir, int force, bn_error *err)
{
	struct stat st;
	char *parent = NULL;
	int rc = BN_OK;

	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, dir, RENAME_NOREPLACE) == 0)
		goto done;
	if (errno == EEXIST && !force) {
		bn_error_locate(err, dir, 0, 0);
		return bn_error_set(err, BN_EUSAGE, "exists (use --force to replace it)");
	}
	if (errno == EEXIST && renameat2(AT_FDCWD, tmp, AT_FDCWD, dir, RENAME_EXCHANGE) == 0) {
		remove_tree(tmp);  /* holds the previous version now */
		goto done;
	}
	/* file systems without renameat2 flags: check, then a plain rename */
	if (lstat(dir, &st) == 0) {
		if (!force) {
			bn_error_locate(err, dir, 0, 0);
			return bn_error_set(err, BN_EUSAGE, "exists (use --force to replace it)");
		}
		remove_tree(dir);
	}
	if (rename(tmp, dir) < 0) {
		bn_error_locate(err, dir, 0, 0);
		return bn_error_set(err, BN_EIO, "cannot rename the temporary directory into place: %s", strerror(errno));
	}
done:
	parent = parent_of(dir);
	if (parent)
		fsync_path(parent);
	free(parent);
	return rc;
}

/* "key": preceded by ", " unless first (keys here never need escaping). */
static int jkey(bn_buf *b, const char *key, int *first)
{
	int bad = bn_jsonw_raw(b, *first ? "\"" : ", \"") | bn_jsonw_raw(b, key) | bn_jsonw_raw(b, "\": ");
	*first = 0;
	return bad;
}

/*
 * rules: those the tokens were linted against. Their source name is recorded as the inputs'
 * rules_source when their hash is the inputs' (so the manifest names the rules ingest used, for
 * `vocab lint` and the serving model load), whether they came from --rules or from the inputs.
 */
static int write_manifest(bn_buf *b, const bn_vocab_counter *c, const selection *sel, char (*sha)[65],
			  const bn_vocab_write_options *opt, const bn_rules *rules)
{
	int bad = 0, first = 1, ff;
	struct rusage ru;
	const char *rules_sha = c->ninputs ? c->inputs[0].rules_sha256 : "";
	const char *repair = c->ninputs ? c->inputs[0].text_repair : bn_text_repair_version();
	int mixed = 0, mixed_repair = 0;

	for (size_t i = 1; i < c->ninputs; i++) {
		mixed |= strcmp(c->inputs[i].rules_sha256, rules_sha) != 0;
		mixed_repair |= strcmp(c->inputs[i].text_repair, repair) != 0;
	}
	(void)first;
	bad |= bn_jsonw_raw(b, "{\n  \"format\": \"bidnorm-vocab\",\n  \"format_version\": 1,\n  \"task\": ");
	bad |= bn_jsonw_cstr(b, opt->task);
	bad |= bn_jsonw_raw(b, ",\n  \"bidnorm_version\": ") | bn_jsonw_cstr(b, bn_version());
	bad |= bn_jsonw_raw(b, ",\n  \"rules_sha256\": ") | bn_jsonw_cstr(b, mixed ? "mixed" : rules_sha);
	if (!mixed && strcmp(rules_sha, bn_rules_sha256(rules)) == 0)
		bad |= bn_jsonw_raw(b, ",\n  \"rules_source\": ") | bn_jsonw_cstr(b, bn_rules_source_name(rules));
	bad |= bn_jsonw_raw(b, ",\n  \"text_repair\": ") | bn_jsonw_cstr(b, mixed_repair ? "mixed" : repair);
	bad |= bn_jsonw_raw(b, ",\n  \"parameters\": {\"min_count\": ") | bn_jsonw_u64(b, opt->min_count);
	bad |= bn_jsonw_raw(b, ", \"top_k\": ");
	bad |= opt->top_k ? bn_jsonw_u64(b, opt->top_k) : bn_jsonw_raw(b, "null");
	bad |= bn_jsonw_raw(b, ", \"order\": \"count descending, then token bytes ascending\", "
			       "\"oov_index\": 0, \"num_oov_indices\": 1, \"mask_token\": null, \"first_index\": 1}");
	bad |= bn_jsonw_raw(b, ",\n  \"filters\": [");
	for (size_t i = 0; i < c->nwhere; i++)
		bad |= bn_jsonw_raw(b, i ? ", " : "") | bn_jsonw_cstr(b, c->where[i].text);
	bad |= bn_jsonw_raw(b, "],\n  \"inputs\": [");
	for (size_t i = 0; i < c->ninputs; i++) {
		const bn_vinput *in = &c->inputs[i];
		bad |= bn_jsonw_raw(b, i ? ",\n    {\"path\": " : "\n    {\"path\": ") | bn_jsonw_cstr(b, in->path);
		bad |= bn_jsonw_raw(b, ", \"rules_sha256\": ") | bn_jsonw_cstr(b, in->rules_sha256);
		bad |= bn_jsonw_raw(b, ", \"bidnorm_version\": ") | bn_jsonw_cstr(b, in->version);
		bad |= bn_jsonw_raw(b, ", \"text_repair\": ") | bn_jsonw_cstr(b, in->text_repair);
		bad |= bn_jsonw_raw(b, ", \"rows_scanned\": ") | bn_jsonw_u64(b, in->rows_scanned);
		bad |= bn_jsonw_raw(b, ", \"rows_matched\": ") | bn_jsonw_u64(b, in->rows_matched) | bn_jsonw_raw(b, "}");
	}
	if (mixed) {
		bad |= bn_jsonw_raw(b, "\n  ],\n  \"rules_sha256_all\": [");
		for (size_t i = 0; i < c->ninputs; i++) {
			size_t j;
			for (j = 0; j < i && strcmp(c->inputs[j].rules_sha256, c->inputs[i].rules_sha256) != 0; j++)
				;
			if (j == i)
				bad |= bn_jsonw_raw(b, i ? ", " : "") | bn_jsonw_cstr(b, c->inputs[i].rules_sha256);
		}
		bad |= bn_jsonw_raw(b, "]");
	} else {
		bad |= bn_jsonw_raw(b, c->ninputs ? "\n  ]" : "]");
	}
	bad |= bn_jsonw_raw(b, ",\n  \"rows_scanned\": ") | bn_jsonw_u64(b, c->rows_scanned);
	bad |= bn_jsonw_raw(b, ",\n  \"rows_matched\": ") | bn_jsonw_u64(b, c->rows_matched);
	bad |= bn_jsonw_raw(b, ",\n  \"fields\": {");
	for (size_t i = 0; i < c->nfields; i++) {
		const bn_vtable *t = &c->tables[i];
		char name[BN_ERROR_FIELD_MAX + 16];
		bad |= bn_jsonw_raw(b, i ? ",\n    " : "\n    ") | bn_jsonw_cstr(b, c->fields[i]) | bn_jsonw_raw(b, ": {");
		ff = 1;
		snprintf(name, sizeof(name), "%s.txt", c->fields[i]);
		bad |= jkey(b, "file", &ff) | bn_jsonw_cstr(b, name);
		snprintf(name, sizeof(name), "%s.counts.tsv", c->fields[i]);
		bad |= jkey(b, "counts_file", &ff) | bn_jsonw_cstr(b, name);
		bad |= jkey(b, "sha256", &ff) | bn_jsonw_cstr(b, sha[i]);
		bad |= jkey(b, "distinct", &ff) | bn_jsonw_u64(b, bn_vtable_distinct(t));
		bad |= jkey(b, "occurrences", &ff) | bn_jsonw_u64(b, t->occurrences);
		bad |= jkey(b, "kept", &ff) | bn_jsonw_u64(b, sel[i].kept);
		bad |= jkey(b, "kept_occurrences", &ff) | bn_jsonw_u64(b, sel[i].kept_occurrences);
		bad |= jkey(b, "min_kept_count", &ff);
		bad |= sel[i].kept ? bn_jsonw_u64(b, sel[i].list[sel[i].kept - 1].count) : bn_jsonw_raw(b, "null");
		bad |= jkey(b, "coverage", &ff);
		bad |= bn_jsonw_double(b, t->occurrences ? (double)sel[i].kept_occurrences / (double)t->occurrences : 0.0);
		bad |= bn_jsonw_raw(b, "}");
	}
	bad |= bn_jsonw_raw(b, c->nfields ? "\n  },\n  \"resources\": {" : "},\n  \"resources\": {");
	ff = 1;
	bad |= jkey(b, "peak_counting_bytes", &ff) | bn_jsonw_u64(b, c->mem.peak);
	bad |= jkey(b, "spilled_runs", &ff) | bn_jsonw_u64(b, c->mem.runs);
	if (getrusage(RUSAGE_SELF, &ru) == 0)
		bad |= jkey(b, "peak_rss_bytes", &ff) | bn_jsonw_u64(b, (uint64_t)ru.ru_maxrss * 1024);
	bad |= bn_jsonw_raw(b, "}\n}\n");
	return bad ? BN_ENOMEM : BN_OK;
}

int bn_vocab_write_check(const char *dir, const bn_vocab_write_options *opt, bn_error *err)
{
	struct stat st;
	if (!(opt && opt->force) && lstat(dir, &st) == 0) {
		bn_error_locate(err, dir, 0, 0);
		return bn_error_set(err, BN_EUSAGE, "exists (use --force to replace it)");
	}
	return BN_OK;
}

int bn_vocab_regen_check(const bn_vocab_regen_options *opt, bn_error *err)
{
	if (!opt->root || !opt->task || !opt->task[0] || strchr(opt->task, '/') || opt->task[0] == '.')
		return bn_error_set(err, BN_EUSAGE, "--task must be a non-empty name without '/' that does not start with '.'");
	return BN_OK;
}

/* A vocabulary of zero rows is empty by mistake (a filter no row matches, empty inputs): never published. */
static int check_rows(const bn_vocab_counter *c, bn_error *err)
{
	for (size_t i = 0; i < c->nfields; i++)
		if (c->tables[i].occurrences)
			return BN_OK; /* tokens added without rows (bn_vocab_counter_add_token) */
	if (c->rows_matched || c->mem.runs)
		return BN_OK;
	if (c->nwhere)
		return bn_error_set(err, BN_EREJECTRATE,
				    "no row matched the --where filters (%llu rows scanned): a vocabulary built from zero rows "
				    "is not published", (unsigned long long)c->rows_scanned);
	return bn_error_set(err, BN_EREJECTRATE, "the inputs hold no rows: a vocabulary built from zero rows is not published");
}

int bn_vocab_write(bn_vocab_write_result *out, bn_vocab_counter *c, const char *dir,
		   const bn_vocab_write_options *opt_in, bn_vocab_lint_fn on_bad, void *ctx, bn_error *err)
{
	bn_vocab_write_options opt;
	selection *sel = NULL;
	char (*sha)[65] = NULL;
	char *tmp = NULL, *path = NULL;
	bn_rules *owned = NULL;
	bn_buf txt = { 0 }, tsv = { 0 }, man = { 0 };
	linter L;
	int rc, linter_ready = 0, tmp_made = 0;

	bn_error_clear(err);
	memset(out, 0, sizeof(*out));
	if (opt_in)
		opt = *opt_in;
	else
		bn_vocab_write_options_init(&opt);
	if (opt.min_count == 0)
		opt.min_count = 1;
	if (c->nfields == 0)
		return bn_error_set(err, BN_EUSAGE, "no field given");
	rc = check_rows(c, err);
	if (rc < 0)
		return rc;
	rc = bn_vocab_write_check(dir, &opt, err);
	if (rc < 0)
		return rc;
	rc = BN_ENOMEM;
	sel = calloc(c->nfields, sizeof(*sel));
	sha = calloc(c->nfields, sizeof(*sha));
	if (!sel || !sha) {
		oom(err);
		goto cleanup;
	}
	rc = linter_init(&L, opt.rules, &owned, on_bad, ctx, err);
	linter_ready = 1;
	if (rc < 0)
		goto cleanup;
	for (size_t i = 0; i < c->nfields; i++) {
		char name[BN_ERROR_FIELD_MAX + 8];
		int field_ok = 1;
		rc = bn_vtable_unspill(&c->tables[i], opt.min_count, err);
		if (rc < 0)
			goto cleanup;
		rc = select_tokens(&sel[i], &c->tables[i], opt.min_count, opt.top_k);
		if (rc < 0) {
			oom(err);
			goto cleanup;
		}
		/* lint before writing: a token with a newline would shift every later line */
		snprintf(name, sizeof(name), "%s.txt", c->fields[i]);
		free(path);
		if (!(path = bn_path_join(dir, name))) {
			rc = oom(err);
			goto cleanup;
		}
		rc = linter_file(&L, c->fields[i], err);
		for (size_t k = 0; k < sel[i].kept && rc == BN_OK; k++)
			rc = lint_token(&L, path, c->fields[i], &field_ok, k + 1, sel[i].list[k].key, bn_vkey_len(sel[i].list[k].key),
					err);
		if (rc < 0)
			goto cleanup;
	}
	out->lint_failures = L.bad;
	if (L.bad) {
		rc = BN_OK;
		goto cleanup;
	}

	/* build beside dir so the final rename stays within one file system */
	size_t dn = strlen(dir);
	while (dn > 1 && dir[dn - 1] == '/')
		dn--;
	if (!(tmp = malloc(dn + 16))) {
		rc = oom(err);
		goto cleanup;
	}
	sprintf(tmp, "%.*s.tmp-XXXXXX", (int)dn, dir);
	/* A missing parent folder is created, as `mkdir -p` would. */
	rc = bn_fs_mkdirs_parent(tmp, err);
	if (rc < 0) {
		bn_error_locate(err, dir, 0, 0);
		goto cleanup;
	}
	if (!mkdtemp(tmp)) {
		bn_error_locate(err, dir, 0, 0);
		rc = bn_error_set(err, BN_EIO, "cannot create a temporary directory beside it: %s", strerror(errno));
		goto cleanup;
	}
	tmp_made = 1;
	mode_t mask = umask(0);
	umask(mask);
	chmod(tmp, 0777 & ~mask);
	for (size_t i = 0; i < c->nfields; i++) {
		char name[BN_ERROR_FIELD_MAX + 16];
		int bad = 0;
		txt.size = tsv.size = 0;
		for (size_t k = 0; k < sel[i].kept; k++) {
			const bn_vsort_item *e = &sel[i].list[k];
			size_t n = bn_vkey_len(e->key);
			bad |= bn_buf_append(&txt, e->key, n) | bn_buf_putc(&txt, '\n');
			bad |= bn_buf_append(&tsv, e->key, n) | bn_buf_putc(&tsv, '\t') | bn_jsonw_u64(&tsv, e->count) |
			       bn_buf_putc(&tsv, '\n');
		}
		if (bad) {
			rc = oom(err);
			goto cleanup;
		}
		bn_sha256_hex(sha[i], txt.data ? txt.data : "", txt.size);
		snprintf(name, sizeof(name), "%s.txt", c->fields[i]);
		rc = write_file(tmp, name, &txt, err);
		if (rc < 0)
			goto cleanup;
		snprintf(name, sizeof(name), "%s.counts.tsv", c->fields[i]);
		rc = write_file(tmp, name, &tsv, err);
		if (rc < 0)
			goto cleanup;
		out->tokens_written += sel[i].kept;
	}
	bn_vcounter_sort_inputs(c);
	rc = write_manifest(&man, c, sel, sha, &opt, opt.rules ? opt.rules : owned);
	if (rc < 0) {
		oom(err);
		goto cleanup;
	}
	rc = write_file(tmp, "manifest.json", &man, err);
	if (rc < 0)
		goto cleanup;
	fsync_path(tmp);
	rc = publish_dir(tmp, dir, opt.force, err);
	if (rc == BN_OK)
		tmp_made = 0;
cleanup:
	if (tmp_made)
		remove_tree(tmp);
	if (linter_ready)
		linter_free(&L);
	bn_rules_free(owned);
	for (size_t i = 0; sel && i < c->nfields; i++)
		free(sel[i].list);
	free(sel);
	free(sha);
	free(tmp);
	free(path);
	bn_buf_free(&txt);
	bn_buf_free(&tsv);
	bn_buf_free(&man);
	return rc;
}

/* ---- diff ---- */

typedef struct loaded {
	bn_buf text;            /* F.txt */
	bn_buf counts_text;     /* F.counts.tsv */
	bn_avro_span *tokens;   /* index i-1 = token with index i */
	uint64_t *counts;       /* parallel to tokens; UINT64_MAX when unknown */
	size_t n;
	bn_vtable index;        /* token -> index */
	bn_vmem mem;
	int index_ready;
	double coverage;        /* from manifest.json, NAN when unknown */
} loaded;

static void loaded_free(loaded *l)
{
	bn_buf_free(&l->text);
	bn_buf_free(&l->counts_text);
	free(l->tokens);
	free(l->counts);
	if (l->index_ready)
		bn_vtable_free(&l->index);
	memset(l, 0, sizeof(*l));
}

/* fields.F.coverage of DIR/manifest.json, NAN when absent. */
static int manifest_coverage(const char *dir, const char *field, double *out, bn_error *err)
{
	const char *keys[3] = { "fields", field, "coverage" };
	char *text = NULL;
	int type, found;
	double v;
	int rc = bn_vocab_manifest_value(&text, &type, &found, dir, keys, 3, err);

	*out = NAN;
	if (rc == BN_OK && found == 2 && type == BN_JSON_NUMBER && bn_json_number_double(text, strlen(text), &v) == 0)
		*out = v;
	free(text);
	return rc;
}

static int load_field(loaded *l, const char *dir, const char *field, bn_error *err)
{
	char name[BN_ERROR_FIELD_MAX + 16];
	char *path = NULL;
	size_t cap = 0;
	int rc;

	memset(l, 0, sizeof(*l));
	snprintf(name, sizeof(name), "%s.txt", field);
	if (!(path = bn_path_join(dir, name)))
		return oom(err);
	rc = bn_file_read_all(&l->text, path, err);
	free(path);
	if (rc < 0)
		return rc;
	rc = bn_vtable_init(&l->index, &l->mem, field, 0, err);
	if (rc < 0)
		return rc;
	l->index_ready = 1;
	for (size_t i = 0; i < l->text.size;) {
		const char *nl = memchr(l->text.data + i, '\n', l->text.size - i);
		size_t end = nl ? (size_t)(nl - l->text.data) : l->text.size;
		if (l->n == cap) {
			cap = cap ? 2 * cap : 1024;
			bn_avro_span *p = realloc(l->tokens, cap * sizeof(*p));
			if (!p)
				return oom(err);
			l->tokens = p;
		}
		l->tokens[l->n].p = l->text.data + i;
		l->tokens[l->n].n = end - i;
		l->n++;
		/* the first occurrence wins, as in a lookup table built line by line */
		if (!bn_vtable_find(&l->index, l->text.data + i, end - i)) {
			rc = bn_vtable_add(&l->index, l->text.data + i, end - i, l->n, 0, err);
			if (rc < 0)
				return rc;
		}
		i = end + 1;
	}
	l->counts = malloc((l->n ? l->n : 1) * sizeof(*l->counts));
	if (!l->counts)
		return oom(err);
	for (size_t i = 0; i < l->n; i++)
		l->counts[i] = UINT64_MAX;
	snprintf(name, sizeof(name), "%s.counts.tsv", field);
	if (!(path = bn_path_join(dir, name)))
		return oom(err);
	rc = bn_file_read_all(&l->counts_text, path, err);
	free(path);
	if (rc == BN_OK) {
		size_t line = 0;
		for (size_t i = 0; i < l->counts_text.size && line < l->n;) {
			const char *s = l->counts_text.data + i;
			const char *nl = memchr(s, '\n', l->counts_text.size - i);
			size_t end = nl ? (size_t)(nl - l->counts_text.data) : l->counts_text.size;
			const char *tab = memrchr(s, '\t', end - i);
			if (tab) {
				char num[24];
				size_t k = (size_t)(l->counts_text.data + end - tab - 1);
				if (k > 0 && k < sizeof(num)) {
					memcpy(num, tab + 1, k);
					num[k] = '\0';
					l->counts[line] = strtoull(num, NULL, 10);
				}
			}
			line++;
			i = end + 1;
		}
	}
	/* a missing counts file only loses the counts in examples */
	bn_error_clear(err);
	return manifest_coverage(dir, field, &l->coverage, err) == BN_ENOMEM ? BN_ENOMEM : BN_OK;
}

typedef struct field_diff {
	uint64_t added, removed, reindexed, overlap, changed;
	size_t ex_added[DIFF_EXAMPLES], ex_removed[DIFF_EXAMPLES], ex_reindexed[DIFF_EXAMPLES];
	size_t n_ex_added, n_ex_removed, n_ex_reindexed;
	double churn;
} field_diff;

static void compare(field_diff *d, const loaded *o, const loaded *n)
{
	memset(d, 0, sizeof(*d));
	for (size_t i = 0; i < o->n; i++) {
		const bn_ventry *e = bn_vtable_find(&n->index, o->tokens[i].p, o->tokens[i].n);
		if (i >= n->n || n->tokens[i].n != o->tokens[i].n || memcmp(n->tokens[i].p, o->tokens[i].p, o->tokens[i].n) != 0)
			d->changed++;
		if (!e) {
			if (d->n_ex_removed < DIFF_EXAMPLES)
				d->ex_removed[d->n_ex_removed++] = i;
			d->removed++;
			continue;
		}
		d->overlap++;
		if (e->count != i + 1) {
			if (d->n_ex_reindexed < DIFF_EXAMPLES)
				d->ex_reindexed[d->n_ex_reindexed++] = i;
			d->reindexed++;
		}
	}
	for (size_t j = 0; j < n->n; j++) {
		if (!bn_vtable_find(&o->index, n->tokens[j].p, n->tokens[j].n)) {
			if (d->n_ex_added < DIFF_EXAMPLES)
				d->ex_added[d->n_ex_added++] = j;
			d->added++;
		}
	}
	d->churn = o->n ? (double)d->changed / (double)o->n : 0.0;
}

static int put_count(bn_buf *b, uint64_t c)
{
	char num[32];
	if (c == UINT64_MAX)
		return bn_jsonw_raw(b, "?");
	snprintf(num, sizeof(num), "%llu", (unsigned long long)c);
	return bn_jsonw_raw(b, num);
}

static int put_fmt(bn_buf *b, const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 2, 3)))
#endif
	;

static int put_fmt(bn_buf *b, const char *fmt, ...)
{
	char tmp[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	return bn_buf_append(b, tmp, n < 0 ? 0 : (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/*
 * "  added: "tok" at 3 (count 5), ..., ...": the example tokens ex[0..nex) of
 * v (0-based), with ", ..." when there are more than those (total); nothing
 * when there is none. q is scratch.
 */
static int put_token_examples(bn_buf *b, bn_buf *q, const char *what, const char *verb, const loaded *v,
			      const size_t *ex, size_t nex, uint64_t total)
{
	int bad = 0;
	if (!nex)
		return 0;
	bad |= put_fmt(b, "  %s:", what);
	for (size_t k = 0; k < nex; k++) {
		size_t i = ex[k];
		q->size = 0;
		quote(q, v->tokens[i].p, v->tokens[i].n);
		bad |= put_fmt(b, "%s %s %s %zu (count ", k ? "," : "", q->data ? q->data : "", verb, i + 1) |
		       put_count(b, v->counts[i]) | bn_jsonw_raw(b, ")");
	}
	return bad | bn_jsonw_raw(b, total > nex ? ", ...\n" : "\n");
}

static int text_field(bn_buf *b, const char *field, const loaded *o, const loaded *n, const field_diff *d)
{
	bn_buf q = { 0 };
	int bad = 0;
	bad |= put_fmt(b, "%s: %zu -> %zu tokens; overlap %llu; added %llu, removed %llu, re-indexed %llu; "
			  "churn %.4f (%llu of %zu indices changed)",
		       field, o->n, n->n, (unsigned long long)d->overlap, (unsigned long long)d->added,
		       (unsigned long long)d->removed, (unsigned long long)d->reindexed, d->churn,
		       (unsigned long long)d->changed, o->n);
	if (!isnan(o->coverage) && !isnan(n->coverage))
		bad |= put_fmt(b, "; coverage %.4f -> %.4f (%+.4f)\n", o->coverage, n->coverage, n->coverage - o->coverage);
	else
		bad |= put_fmt(b, "; coverage unknown\n");
	bad |= put_token_examples(b, &q, "added", "at", n, d->ex_added, d->n_ex_added, d->added);
	bad |= put_token_examples(b, &q, "removed", "was", o, d->ex_removed, d->n_ex_removed, d->removed);
	if (d->n_ex_reindexed) {
		bad |= bn_jsonw_raw(b, "  re-indexed:");
		for (size_t k = 0; k < d->n_ex_reindexed; k++) {
			size_t i = d->ex_reindexed[k];
			const bn_ventry *e = bn_vtable_find(&n->index, o->tokens[i].p, o->tokens[i].n);
			q.size = 0;
			quote(&q, o->tokens[i].p, o->tokens[i].n);
			bad |= put_fmt(b, "%s %s %zu -> %llu (count ", k ? "," : "", q.data ? q.data : "", i + 1,
				       (unsigned long long)e->count) |
			       put_count(b, o->counts[i]) | bn_jsonw_raw(b, " -> ") | put_count(b, n->counts[e->count - 1]) |
			       bn_jsonw_raw(b, ")");
		}
		bad |= bn_jsonw_raw(b, d->reindexed > d->n_ex_reindexed ? ", ...\n" : "\n");
	}
	bn_buf_free(&q);
	return bad;
}

static int json_count(bn_buf *b, uint64_t c)
{
	return c == UINT64_MAX ? bn_jsonw_raw(b, "null") : bn_jsonw_u64(b, c);
}

static int json_cov(bn_buf *b, double v)
{
	return isnan(v) ? bn_jsonw_raw(b, "null") : bn_jsonw_double(b, v);
}

static int json_field(bn_buf *b, const char *field, const loaded *o, const loaded *n, const field_diff *d, int first)
{
	int bad = 0;
	bad |= bn_jsonw_raw(b, first ? "\n    " : ",\n    ") | bn_jsonw_cstr(b, field) | bn_jsonw_raw(b, ": {");
	bad |= bn_jsonw_raw(b, "\"old_size\": ") | bn_jsonw_u64(b, o->n) | bn_jsonw_raw(b, ", \"new_size\": ") |
	       bn_jsonw_u64(b, n->n) | bn_jsonw_raw(b, ", \"overlap\": ") | bn_jsonw_u64(b, d->overlap) |
	       bn_jsonw_raw(b, ", \"changed_indices\": ") | bn_jsonw_u64(b, d->changed) |
	       bn_jsonw_raw(b, ", \"churn\": ") | bn_jsonw_double(b, d->churn);
	bad |= bn_jsonw_raw(b, ", \"coverage_old\": ") | json_cov(b, o->coverage) |
	       bn_jsonw_raw(b, ", \"coverage_new\": ") | json_cov(b, n->coverage) |
	       bn_jsonw_raw(b, ", \"coverage_change\": ") | json_cov(b, n->coverage - o->coverage);
	bad |= bn_jsonw_raw(b, ",\n      \"added\": {\"count\": ") | bn_jsonw_u64(b, d->added) |
	       bn_jsonw_raw(b, ", \"examples\": [");
	for (size_t k = 0; k < d->n_ex_added; k++) {
		size_t j = d->ex_added[k];
		bad |= bn_jsonw_raw(b, k ? ", {\"token\": " : "{\"token\": ") |
		       bn_jsonw_string(b, n->tokens[j].p, n->tokens[j].n) | bn_jsonw_raw(b, ", \"index\": ") |
		       bn_jsonw_u64(b, j + 1) | bn_jsonw_raw(b, ", \"count\": ") | json_count(b, n->counts[j]) |
		       bn_jsonw_raw(b, "}");
	}
	bad |= bn_jsonw_raw(b, "]},\n      \"removed\": {\"count\": ") | bn_jsonw_u64(b, d->removed) |
	       bn_jsonw_raw(b, ", \"examples\": [");
	for (size_t k = 0; k < d->n_ex_removed; k++) {
		size_t i = d->ex_removed[k];
		bad |= bn_jsonw_raw(b, k ? ", {\"token\": " : "{\"token\": ") |
		       bn_jsonw_string(b, o->tokens[i].p, o->tokens[i].n) | bn_jsonw_raw(b, ", \"index\": ") |
		       bn_jsonw_u64(b, i + 1) | bn_jsonw_raw(b, ", \"count\": ") | json_count(b, o->counts[i]) |
		       bn_jsonw_raw(b, "}");
	}
	bad |= bn_jsonw_raw(b, "]},\n      \"reindexed\": {\"count\": ") | bn_jsonw_u64(b, d->reindexed) |
	       bn_jsonw_raw(b, ", \"examples\": [");
	for (size_t k = 0; k < d->n_ex_reindexed; k++) {
		size_t i = d->ex_reindexed[k];
		const bn_ventry *e = bn_vtable_find(&n->index, o->tokens[i].p, o->tokens[i].n);
		bad |= bn_jsonw_raw(b, k ? ", {\"token\": " : "{\"token\": ") |
		       bn_jsonw_string(b, o->tokens[i].p, o->tokens[i].n) | bn_jsonw_raw(b, ", \"old_index\": ") |
		       bn_jsonw_u64(b, i + 1) | bn_jsonw_raw(b, ", \"new_index\": ") | bn_jsonw_u64(b, e->count) |
		       bn_jsonw_raw(b, ", \"old_count\": ") | json_count(b, o->counts[i]) |
		       bn_jsonw_raw(b, ", \"new_count\": ") | json_count(b, n->counts[e->count - 1]) | bn_jsonw_raw(b, "}");
	}
	bad |= bn_jsonw_raw(b, "]}}");
	return bad;
}

static int in_list(char **names, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++) {
		if (strcmp(names[i], s) == 0)
			return 1;
	}
	return 0;
}

int bn_vocab_diff(char **out_text, bn_vocab_diff_summary *sum_out, const char *old_dir, const char *new_dir, int json,
		  bn_error *err)
{
	char **of = NULL, **nf = NULL;
	size_t non = 0, nnn = 0;
	loaded o, n;
	bn_buf b = { 0 };
	bn_vocab_diff_summary sum;
	int rc, bad = 0, first = 1;

	memset(&o, 0, sizeof(o));
	memset(&n, 0, sizeof(n));
	memset(&sum, 0, sizeof(sum));
	sum.max_coverage_drop = -INFINITY;
	rc = bn_vocab_dir_fields(&of, &non, old_dir, err);
	if (rc == BN_OK)
		rc = bn_vocab_dir_fields(&nf, &nnn, new_dir, err);
	if (rc < 0)
		goto cleanup;
	if (json)
		bad |= bn_jsonw_raw(&b, "{\"old\": ") | bn_jsonw_cstr(&b, old_dir) | bn_jsonw_raw(&b, ", \"new\": ") |
		       bn_jsonw_cstr(&b, new_dir) | bn_jsonw_raw(&b, ",\n  \"fields\": {");
	for (size_t i = 0; i < nnn; i++) {
		field_diff d;
		if (!in_list(of, non, nf[i]))
			continue;
		rc = load_field(&o, old_dir, nf[i], err);
		if (rc == BN_OK)
			rc = load_field(&n, new_dir, nf[i], err);
		if (rc < 0)
			goto cleanup;
		compare(&d, &o, &n);
		bad |= json ? json_field(&b, nf[i], &o, &n, &d, first) : text_field(&b, nf[i], &o, &n, &d);
		first = 0;
		if (d.churn > sum.max_churn || !sum.churn_field[0]) {
			sum.max_churn = d.churn;
			snprintf(sum.churn_field, sizeof(sum.churn_field), "%s", nf[i]);
		}
		double drop = isnan(o.coverage) || isnan(n.coverage) ? 0.0 : o.coverage - n.coverage;
		if (drop > sum.max_coverage_drop) {
			sum.max_coverage_drop = drop;
			snprintf(sum.coverage_field, sizeof(sum.coverage_field), "%s", nf[i]);
		}
		loaded_free(&o);
		loaded_free(&n);
	}
	if (isinf(sum.max_coverage_drop))
		sum.max_coverage_drop = 0;
	if (json) {
		bad |= bn_jsonw_raw(&b, first ? "}" : "\n  }");
		bad |= bn_jsonw_raw(&b, ",\n  \"only_old\": [");
		for (size_t i = 0, k = 0; i < non; i++) {
			if (!in_list(nf, nnn, of[i]))
				bad |= bn_jsonw_raw(&b, k++ ? ", " : "") | bn_jsonw_cstr(&b, of[i]);
		}
		bad |= bn_jsonw_raw(&b, "], \"only_new\": [");
		for (size_t i = 0, k = 0; i < nnn; i++) {
			if (!in_list(of, non, nf[i]))
				bad |= bn_jsonw_raw(&b, k++ ? ", " : "") | bn_jsonw_cstr(&b, nf[i]);
		}
		bad |= bn_jsonw_raw(&b, "],\n  \"max_churn\": ") | bn_jsonw_double(&b, sum.max_churn) |
		       bn_jsonw_raw(&b, ", \"max_coverage_drop\": ") | bn_jsonw_double(&b, sum.max_coverage_drop) |
		       bn_jsonw_raw(&b, "}\n");
	} else {
		for (size_t i = 0; i < non; i++) {
			if (!in_list(nf, nnn, of[i]))
				bad |= put_fmt(&b, "%s: only in %s\n", of[i], old_dir);
		}
		for (size_t i = 0; i < nnn; i++) {
			if (!in_list(of, non, nf[i]))
				bad |= put_fmt(&b, "%s: only in %s\n", nf[i], new_dir);
		}
	}
	if (bad || bn_buf_putc(&b, '\0') < 0) {
		rc = oom(err);
		goto cleanup;
	}
	*out_text = b.data;
	b.data = NULL;
	if (sum_out)
		*sum_out = sum;
	rc = BN_OK;
cleanup:
	loaded_free(&o);
	loaded_free(&n);
	bn_vocab_names_free(of, non);
	bn_vocab_names_free(nf, nnn);
	bn_buf_free(&b);
	return rc;
}

/* ---- regen ---- */

static int is_version_name(const char *s)
{
	if (strlen(s) != 16 || s[8] != 'T' || s[15] != 'Z')
		return 0;
	for (int i = 0; i < 15; i++) {
		if (i != 8 && (s[i] < '0' || s[i] > '9'))
			return 0;
	}
	return 1;
}

static int mkdir_p1(const char *path, bn_error *err)
{
	if (mkdir(path, 0777) < 0 && errno != EEXIST) {
		bn_error_locate(err, path, 0, 0);
		return bn_error_set(err, BN_EIO, "cannot create the directory: %s", strerror(errno));
	}
	return BN_OK;
}

/* Remove the oldest version directories of taskdir beyond keep, never `current`'s target or `newest`. */
static void prune(const char *taskdir, unsigned keep, const char *current_target, const char *newest)
{
	char **names = NULL;
	size_t n = 0, cap = 0;
	DIR *d = opendir(taskdir);
	struct dirent *de;
	if (!d)
		return;
	while ((de = readdir(d))) {
		if (!is_version_name(de->d_name))
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 16;
			char **p = realloc(names, cap * sizeof(*p));
			if (!p)
				break;
			names = p;
		}
		if (!(names[n] = strdup(de->d_name)))
			break;
		n++;
	}
	closedir(d);
	if (names)
		qsort(names, n, sizeof(*names), cmp_str);
	for (size_t i = 0; n > keep && i < n - keep; i++) {
		if ((current_target && strcmp(names[i], current_target) == 0) || strcmp(names[i], newest) == 0)
			continue;
		char *p = bn_path_join(taskdir, names[i]);
		if (p)
			remove_tree(p);
		free(p);
	}
	bn_vocab_names_free(names, n);
}

int bn_vocab_regen(bn_vocab_regen_result *out, bn_vocab_counter *c, const bn_vocab_regen_options *opt,
		   bn_vocab_lint_fn on_bad, void *ctx, bn_error *err)
{
	char *taskdir = NULL, *vdir = NULL, *cur = NULL, *tmplink = NULL;
	char target[256];
	bn_vocab_write_options wopt;
	bn_vocab_write_result wres;
	struct stat st;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = bn_vocab_regen_check(opt, err);
	if (rc < 0)
		return rc;
	rc = check_rows(c, err);
	if (rc < 0)
		return rc;
	rc = mkdir_p1(opt->root, err);
	if (rc < 0)
		return rc;
	if (!(taskdir = bn_path_join(opt->root, opt->task)) || !(cur = bn_path_join(taskdir, "current"))) {
		rc = oom(err);
		goto cleanup;
	}
	rc = mkdir_p1(taskdir, err);
	if (rc < 0)
		goto cleanup;

	/* a UTC timestamp, bumped by a second until unused: unique and in creation order */
	time_t t = time(NULL);
	for (;;) {
		struct tm tm;
		gmtime_r(&t, &tm);
		strftime(out->version, sizeof(out->version), "%Y%m%dT%H%M%SZ", &tm);
		free(vdir);
		if (!(vdir = bn_path_join(taskdir, out->version))) {
			rc = oom(err);
			goto cleanup;
		}
		if (lstat(vdir, &st) < 0)
			break;
		t++;
	}
	wopt = opt->write;
	wopt.task = opt->task;
	wopt.force = 0;
	rc = bn_vocab_write(&wres, c, vdir, &wopt, on_bad, ctx, err);
	if (rc < 0)
		goto cleanup;
	out->lint_failures = wres.lint_failures;
	if (wres.lint_failures)
		goto cleanup;

	ssize_t tn = readlink(cur, target, sizeof(target) - 1);
	if (tn >= 0) {
		target[tn] = '\0';
		out->had_current = 1;
		rc = bn_vocab_diff(&out->diff_text, &out->diff, cur, vdir, 0, err);
		if (rc < 0)
			goto cleanup;
		out->refused = out->diff.max_churn > opt->max_churn || out->diff.max_coverage_drop > opt->max_coverage_drop;
	} else if (lstat(cur, &st) == 0) {
		bn_error_locate(err, cur, 0, 0);
		rc = bn_error_set(err, BN_EUSAGE, "exists but is not a symbolic link");
		goto cleanup;
	}
	if (out->refused && !opt->force) {
		prune(taskdir, opt->keep, target, out->version);
		goto cleanup;
	}
	/* a new link under a temporary name, renamed over the old: readers see one or the other */
	size_t ln = strlen(taskdir) + 48;
	if (!(tmplink = malloc(ln))) {
		rc = oom(err);
		goto cleanup;
	}
	snprintf(tmplink, ln, "%s/.current.tmp-%ld", taskdir, (long)getpid());
	unlink(tmplink);
	if (symlink(out->version, tmplink) < 0 || rename(tmplink, cur) < 0) {
		bn_error_locate(err, cur, 0, 0);
		rc = bn_error_set(err, BN_EIO, "cannot switch the link: %s", strerror(errno));
		unlink(tmplink);
		goto cleanup;
	}
	fsync_path(taskdir);
	out->switched = 1;
	prune(taskdir, opt->keep, out->version, out->version);
cleanup:
	free(taskdir);
	free(vdir);
	free(cur);
	free(tmplink);
	return rc;
}

void bn_vocab_regen_result_free(bn_vocab_regen_result *r)
{
	if (!r)
		return;
	free(r->diff_text);
	r->diff_text = NULL;
}
