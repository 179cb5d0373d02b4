/*
 * spill.c - counting past --max-memory: full tables go to disk as sorted runs and are merged back.
 *
 * A run is one table's (token, count) pairs in token byte order: the number of pairs (a varint),
 * then per pair varint length, the bytes, varint count; a run cut short is found wherever it ends. Runs are written at record boundaries only (an array field counts a token once
 * per record, so a record must never straddle two runs). At the end the runs of a table are merged
 * (a heap over the runs, counts of equal tokens summed): for a vocabulary only tokens counted at
 * least min_count times come back into memory, which is what makes the long tail of a field
 * affordable; for a count file every token streams to disk.
 */
#include "vocab/count.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/buf.h"

#define RUN_BUFFER ((size_t)1 << 16)

static int oom(bn_error *err)
{
	return bn_error_set(err, BN_ENOMEM, "out of memory");
}

/* stdio allocates its buffers on first use: ENOMEM from it is out of memory, not a disk problem. */
static int io_error(const char *path, const char *what, int e, bn_error *err)
{
	if (e == ENOMEM)
		return oom(err);
	bn_error_locate(err, path, 0, 0);
	return bn_error_set(err, BN_EIO, "%s spilled counts: %s", what, strerror(e));
}

static int make_spill_dir(bn_vmem *m, bn_error *err)
{
	if (m->spill_dir)
		return BN_OK;
	size_t n = strlen(m->spill_base) + sizeof("/bidnorm-vocab-spill.XXXXXX");
	char *dir = malloc(n);
	if (!dir)
		return oom(err);
	snprintf(dir, n, "%s/bidnorm-vocab-spill.XXXXXX", m->spill_base);
	if (!mkdtemp(dir)) {
		int e = errno;
		free(dir);
		bn_error_locate(err, m->spill_base, 0, 0);
		return bn_error_set(err, BN_EIO, "cannot make a folder for spilled counts: %s", strerror(e));
	}
	m->spill_dir = dir;
	return BN_OK;
}

static int put_uv(FILE *f, uint64_t v)
{
	while (v >= 0x80) {
		if (putc_unlocked((int)(v & 0x7f) | 0x80, f) == EOF)
			return -1;
		v >>= 7;
	}
	return putc_unlocked((int)v, f) == EOF ? -1 : 0;
}

/* Write t as a new run and empty it. */
static int spill_table(bn_vmem *m, bn_vtable *t, bn_error *err)
{
	bn_vsort_item *list = NULL;
	char *path = NULL;
	char **runs = NULL;
	FILE *f = NULL;
	size_t n = 0, len;
	int rc = make_spill_dir(m, err);

	if (rc < 0)
		return rc;
	len = strlen(m->spill_dir) + strlen(t->name) + 32;
	list = malloc((t->n ? t->n : 1) * sizeof(*list));
	path = malloc(len);
	runs = realloc(t->runs, (t->nruns + 1) * sizeof(*runs));
	if (runs)
		t->runs = runs;
	if (!list || !path || !runs) {
		rc = oom(err);
		goto cleanup;
	}
	for (size_t i = 0; i < t->cap; i++)
		if (t->slots[i].key)
			bn_vsort_item_set(&list[n++], 0, &t->slots[i]);
	bn_vsort(list, n);
	snprintf(path, len, "%s/%s.%zu.run", m->spill_dir, t->name, t->nruns);
	f = fopen(path, "wbx");
	if (!f) {
		rc = io_error(path, "cannot write", errno, err);
		goto cleanup;
	}
	setvbuf(f, NULL, _IOFBF, RUN_BUFFER);
	put_uv(f, n);
	for (size_t k = 0; k < n; k++) {
		size_t kn = bn_vkey_len(list[k].key);
		if (put_uv(f, kn) < 0 || fwrite(list[k].key, 1, kn, f) != kn || put_uv(f, list[k].count) < 0)
			break;
	}
	if (ferror(f) | (fclose(f) != 0)) {
		f = NULL;
		rc = io_error(path, "cannot write", errno ? errno : EIO, err);
		unlink(path);
		goto cleanup;
	}
	f = NULL;
	t->runs[t->nruns++] = path;
	path = NULL;
	m->runs++;
	bn_vtable_reset(t);
	rc = BN_OK;
cleanup:
	if (f)
		fclose(f);
	free(path);
	free(list);
	return rc;
}

int bn_vmem_spill(bn_vmem *m, bn_vtable *tables, size_t n, bn_error *err)
{
	m->spill_due = 0;
	for (size_t i = 0; i < n; i++) {
		if (tables[i].n == 0)
			continue;
		int rc = spill_table(m, &tables[i], err);
		if (rc < 0)
			return rc;
	}
	return BN_OK;
}

/* ---- merging runs ---- */

typedef struct run_in {
	FILE *f;
	const char *path;
	bn_buf tok;
	uint64_t count;
	uint64_t left;     /* pairs not read yet */
} run_in;

struct bn_vrun_merge {
	run_in *in;
	size_t n;
	size_t *heap;      /* indices of runs that have a current token, smallest token on top */
	size_t nheap;
	bn_buf cur;
};

static int get_uv(FILE *f, uint64_t *out, int *eof)
{
	uint64_t v = 0;
	for (unsigned shift = 0; shift < 64; shift += 7) {
		int c = getc_unlocked(f);
		if (c == EOF) {
			*eof = shift == 0;
			return -1;
		}
		v |= (uint64_t)(c & 0x7f) << shift;
		if (!(c & 0x80)) {
			*out = v;
			return 0;
		}
	}
	*eof = 0;
	return -1;
}

static int run_corrupt(run_in *r, bn_error *err)
{
	if (ferror(r->f))
		return io_error(r->path, "cannot read", errno ? errno : EIO, err);
	bn_error_locate(err, r->path, 0, 0);
	return bn_error_set(err, BN_ECORRUPT, "spilled counts file is cut short or longer than written "
			    "(changed while counting?)");
}

/* Read r's next pair: 1, 0 at the end of the run, < 0 on error. */
static int run_read(run_in *r, bn_error *err)
{
	uint64_t len;
	int eof = 0;
	if (r->left == 0)
		return getc_unlocked(r->f) == EOF && !ferror(r->f) ? 0 : run_corrupt(r, err);
	r->left--;
	if (get_uv(r->f, &len, &eof) < 0)
		goto corrupt;
	r->tok.size = 0;
	if (len >= UINT32_MAX) /* tokens are shorter (the table refuses longer ones) */
		goto corrupt;
	if (bn_buf_reserve(&r->tok, (size_t)len) < 0)
		return oom(err);
	if (fread(r->tok.data, 1, (size_t)len, r->f) != (size_t)len || get_uv(r->f, &r->count, &eof) < 0)
		goto corrupt;
	r->tok.size = (size_t)len;
	return 1;
corrupt:
	return run_corrupt(r, err);
}

static int heap_less(const bn_vrun_merge *g, size_t a, size_t b)
{
	const run_in *x = &g->in[g->heap[a]], *y = &g->in[g->heap[b]];
	return bn_vtoken_cmp(x->tok.data, x->tok.size, y->tok.data, y->tok.size) < 0;
}

static void heap_down(bn_vrun_merge *g, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < g->nheap && heap_less(g, l, m))
			m = l;
		if (r < g->nheap && heap_less(g, r, m))
			m = r;
		if (m == i)
			return;
		size_t t = g->heap[i];
		g->heap[i] = g->heap[m];
		g->heap[m] = t;
		i = m;
	}
}

int bn_vrun_merge_rewind(bn_vrun_merge *g, bn_error *err)
{
	g->nheap = 0;
	for (size_t i = 0; i < g->n; i++) {
		int eof;
		if (fseek(g->in[i].f, 0, SEEK_SET) != 0)
			return io_error(g->in[i].path, "cannot read", errno, err);
		if (get_uv(g->in[i].f, &g->in[i].left, &eof) < 0)
			return run_corrupt(&g->in[i], err);
		int rc = run_read(&g->in[i], err);
		if (rc < 0)
			return rc;
		if (rc)
			g->heap[g->nheap++] = i;
	}
	for (size_t i = g->nheap / 2; i-- > 0;)
		heap_down(g, i);
	return BN_OK;
}

int bn_vrun_merge_open(bn_vrun_merge **out, bn_vtable *t, bn_vmem *m, bn_error *err)
{
	*out = NULL;
	if (t->nruns == 0)
		return BN_OK;
	int rc = t->n ? spill_table(m, t, err) : BN_OK;
	if (rc < 0)
		return rc;
	bn_vrun_merge *g = calloc(1, sizeof(*g));
	if (!g)
		return oom(err);
	g->in = calloc(t->nruns, sizeof(*g->in));
	g->heap = calloc(t->nruns, sizeof(*g->heap));
	if (!g->in || !g->heap) {
		bn_vrun_merge_free(g);
		return oom(err);
	}
	for (size_t i = 0; i < t->nruns; i++, g->n++) {
		g->in[i].path = t->runs[i];
		g->in[i].f = fopen(t->runs[i], "rb");
		if (!g->in[i].f) {
			rc = io_error(t->runs[i], "cannot read", errno, err);
			bn_vrun_merge_free(g);
			return rc;
		}
		setvbuf(g->in[i].f, NULL, _IOFBF, RUN_BUFFER);
	}
	rc = bn_vrun_merge_rewind(g, err);
	if (rc < 0) {
		bn_vrun_merge_free(g);
		return rc;
	}
	*out = g;
	return BN_OK;
}

int bn_vrun_merge_next(bn_vrun_merge *g, const char **token, size_t *len, uint64_t *count, bn_error *err)
{
	if (g->nheap == 0)
		return 0;
	run_in *top = &g->in[g->heap[0]];
	g->cur.size = 0;
	if (bn_buf_append(&g->cur, top->tok.data, top->tok.size) < 0)
		return oom(err);
	uint64_t sum = 0;
	while (g->nheap > 0) {
		top = &g->in[g->heap[0]];
		if (bn_vtoken_cmp(top->tok.data, top->tok.size, g->cur.data, g->cur.size) != 0)
			break;
		sum += top->count;
		int rc = run_read(top, err);
		if (rc < 0)
			return rc;
		if (rc == 0)
			g->heap[0] = g->heap[--g->nheap];
		heap_down(g, 0);
	}
	*token = g->cur.data ? g->cur.data : "";
	*len = g->cur.size;
	*count = sum;
	return 1;
}

void bn_vrun_merge_free(bn_vrun_merge *g)
{
	if (!g)
		return;
	for (size_t i = 0; i < g->n; i++) {
		if (g->in[i].f)
			fclose(g->in[i].f);
		bn_buf_free(&g->in[i].tok);
	}
	free(g->in);
	free(g->heap);
	bn_buf_free(&g->cur);
	free(g);
}

int bn_vtable_unspill(bn_vtable *t, uint64_t min_count, bn_error *err)
{
	bn_vrun_merge *g = NULL;
	const char *tok;
	size_t len;
	uint64_t count, distinct = 0, kept = 0, occurrences = t->occurrences;
	int rc = bn_vrun_merge_open(&g, t, t->mem, err);

	if (rc < 0 || !g)
		return rc;
	t->mem->no_spill = 1;
	while ((rc = bn_vrun_merge_next(g, &tok, &len, &count, err)) > 0) {
		distinct++;
		if (count < min_count)
			continue;
		rc = bn_vtable_add(t, tok, len, count, 0, err);
		if (rc == BN_ENOMEM && t->mem->limit)
			rc = bn_error_set(err, BN_ENOMEM,
					  "field '%s': the tokens counted at least %llu times (%llu so far) do not fit in "
					  "--max-memory (%zu bytes), even with the rest spilled to disk; raise --min-count "
					  "or --max-memory", t->name, (unsigned long long)min_count,
					  (unsigned long long)kept, t->mem->limit);
		if (rc < 0)
			break;
		kept++;
	}
	t->mem->no_spill = 0;
	bn_vrun_merge_free(g);
	if (rc < 0)
		return rc;
	t->occurrences = occurrences; /* the adds counted the kept tokens again */
	t->distinct_all = distinct;
	t->unspilled = 1;
	bn_vtable_drop_runs(t);
	return BN_OK;
}

void bn_vtable_drop_runs(bn_vtable *t)
{
	for (size_t i = 0; i < t->nruns; i++) {
		unlink(t->runs[i]);
		free(t->runs[i]);
	}
	free(t->runs);
	t->runs = NULL;
	t->nruns = 0;
}

void bn_vmem_free(bn_vmem *m)
{
	if (m->spill_dir)
		rmdir(m->spill_dir);
	free(m->spill_dir);
	free(m->spill_base);
	m->spill_dir = NULL;
	m->spill_base = NULL;
}
