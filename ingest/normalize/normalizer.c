/* normalizer.c - the per-thread normalizer handle: the path plan built from the rules, scratch state, single-value normalization. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "normalize/record.h"
#include "record/json.h"
#include "source/utf8_repair.h"

/* Find or add the child of parent for path step st. Returns its index, or -1 when out of memory. */
static int32_t plan_child(bn_normalizer *n, int32_t parent, const bn_path_step *st, size_t *cap)
{
	int32_t c = n->nodes[parent].first_child;
	for (; c >= 0; c = n->nodes[c].next_sibling) {
		const bn_plan_node *x = &n->nodes[c];
		if (x->kind == st->kind && (st->kind != BN_PATH_KEY || (x->len == st->len && !memcmp(x->name, st->name, st->len))) &&
		    (st->kind != BN_PATH_INDEX || x->index == st->index))
			return c;
	}
	if (n->nnodes == *cap) {
		size_t ncap = *cap * 2;
		bn_plan_node *p = realloc(n->nodes, ncap * sizeof(*p));
		if (!p)
			return -1;
		n->nodes = p;
		*cap = ncap;
	}
	c = (int32_t)n->nnodes++;
	n->nodes[c] = (bn_plan_node){ .name = st->kind == BN_PATH_KEY ? st->name : "", .len = st->len,
				      .prefix = st->kind == BN_PATH_KEY ? bn_key_prefix(st->name, st->len) : 0,
				      .suffix = st->kind == BN_PATH_KEY ? bn_key_suffix(st->name, st->len) : 0,
				      .index = st->index, .kind = (uint8_t)st->kind,
				      .multi = n->nodes[parent].multi || st->kind == BN_PATH_ALL,
				      .parent = parent, .first_child = -1, .next_sibling = -1, .slot = -1 };
	if (st->kind == BN_PATH_KEY)
		n->nodes[parent].has_keys = 1;
	else
		n->nodes[parent].has_elems = 1;
	/* Append, so members are tried in rule-file order. */
	if (n->nodes[parent].first_child < 0) {
		n->nodes[parent].first_child = c;
	} else {
		int32_t s = n->nodes[parent].first_child;
		while (n->nodes[s].next_sibling >= 0)
			s = n->nodes[s].next_sibling;
		n->nodes[s].next_sibling = c;
	}
	return c;
}

/*
 * Add a path to the plan (only those of the pass: line paths first, then row
 * paths, so that row slots form the tail); *slot_out gets its slot.
 */
static int plan_add(bn_normalizer *n, const bn_path *path, int row_pass, size_t *cap, int32_t *slot_out)
{
	int32_t node = path->row ? ROW_ROOT : 0;
	if (path->row != row_pass)
		return BN_OK;
	for (size_t i = path->row; i < path->nsteps; i++) {
		node = plan_child(n, node, &path->steps[i], cap);
		if (node < 0)
			return BN_ENOMEM;
	}
	if (n->nodes[node].slot < 0)
		n->nodes[node].slot = (int32_t)n->nslots++;
	*slot_out = n->nodes[node].slot;
	return BN_OK;
}

/*
 * Per node with KEY children, an open-addressing table of them at least twice
 * their number, so that the walk finds a member with one probe instead of
 * comparing its name with every child's. The table never changes, so a key
 * (even a hostile one) probes at most the table's size.
 */
static int keytab_build(bn_normalizer *n)
{
	size_t total = 0;
	for (size_t i = 0; i < n->nnodes; i++) {
		uint32_t nkeys = 0, size = 4;
		for (int32_t c = n->nodes[i].first_child; c >= 0; c = n->nodes[c].next_sibling)
			nkeys += n->nodes[c].kind == BN_PATH_KEY;
		while (size < 2 * nkeys)
			size *= 2;
		n->nodes[i].keytab = (uint32_t)total;
		n->nodes[i].keytab_mask = nkeys ? size - 1 : 0;
		total += nkeys ? size : 1;
	}
	n->keytab = malloc(total * sizeof(*n->keytab));
	if (!n->keytab)
		return BN_ENOMEM;
	for (size_t i = 0; i < total; i++)
		n->keytab[i] = -1;
	for (size_t i = 0; i < n->nnodes; i++) {
		const bn_plan_node *x = &n->nodes[i];
		for (int32_t c = x->first_child; c >= 0; c = n->nodes[c].next_sibling) {
			if (n->nodes[c].kind != BN_PATH_KEY)
				continue;
			uint32_t h = bn_key_slot(n->nodes[c].prefix, n->nodes[c].len, x->keytab_mask);
			while (n->keytab[x->keytab + h] >= 0)
				h = (h + 1) & x->keytab_mask;
			n->keytab[x->keytab + h] = c;
		}
	}
	return BN_OK;
}

static int plan_build(bn_normalizer *n)
{
	const bn_rules *r = n->rules;
	size_t cap = 16, nsrc = 0;
	for (size_t f = 0; f < r->nfields; f++)
		nsrc += 1 + r->fields[f].nalt;
	n->nodes = malloc(cap * sizeof(*n->nodes));
	n->field_slot = malloc((r->nfields + 1) * sizeof(int32_t));
	n->den_slot = malloc((r->nfields + 1) * sizeof(int32_t));
	n->src_first = malloc((r->nfields + 1) * sizeof(int32_t));
	n->src_count = malloc((r->nfields + 1) * sizeof(int32_t));
	n->src_slot = malloc((nsrc + 1) * sizeof(int32_t));
	if (!n->nodes || !n->field_slot || !n->den_slot || !n->src_first || !n->src_count ||
	    !n->src_slot)
		return BN_ENOMEM;
	for (int32_t i = 0; i < 2; i++)
		n->nodes[i] = (bn_plan_node){ .name = "", .len = 0, .parent = -1, .first_child = -1,
					      .next_sibling = -1, .slot = -1 };
	n->nnodes = 2;
	n->rows_slot = -1;
	for (int pass = 0; pass < 2; pass++) {
		size_t k = 0;
		if (pass == 1) {
			n->row_slot_first = n->nslots;
		} else if (r->rows.nsteps && plan_add(n, &r->rows, 0, &cap, &n->rows_slot) < 0) {
			return BN_ENOMEM;
		}
		for (size_t f = 0; f < r->nfields; f++) {
			const bn_field *fd = &r->fields[f];
			const bn_path *src = fd->is_ratio ? &fd->numerator : &fd->source;
			if (pass == 0) {
				n->den_slot[f] = -1;
				n->field_slot[f] = -1;
				n->src_first[f] = (int32_t)k;
				n->src_count[f] = fd->is_ratio || fd->row_index ? 0 : (int32_t)(1 + fd->nalt);
			}
			if (src->nsteps && plan_add(n, src, pass, &cap, &n->field_slot[f]) < 0)
				return BN_ENOMEM;
			if (fd->is_ratio && plan_add(n, &fd->denominator, pass, &cap, &n->den_slot[f]) < 0)
				return BN_ENOMEM;
			for (int32_t j = 0; j < n->src_count[f]; j++) {
				const bn_path *p = j ? &fd->alt[j - 1] : &fd->source;
				if (plan_add(n, p, pass, &cap, &n->src_slot[k + (size_t)j]) < 0)
					return BN_ENOMEM;
			}
			k += (size_t)n->src_count[f];
		}
	}
	n->slots = calloc(n->nslots + 1, sizeof(uint32_t));
	n->lists = calloc(n->nslots + 1, sizeof(*n->lists));
	n->slot_node = malloc((n->nslots + 1) * sizeof(int32_t));
	n->node_obj = calloc(n->nnodes, sizeof(uint32_t));
	n->node_val = calloc(n->nnodes, sizeof(uint32_t));
	if (!n->slots || !n->lists || !n->slot_node || !n->node_obj || !n->node_val)
		return BN_ENOMEM;
	for (size_t i = 0; i < n->nnodes; i++)
		if (n->nodes[i].slot >= 0)
			n->slot_node[n->nodes[i].slot] = (int32_t)i;
	return keytab_build(n);
}

int bn_normalizer_new(bn_normalizer **out, const bn_rules *rules, bn_error *err)
{
	bn_normalizer *n = NULL;
	int rc = BN_ENOMEM;

	if (!out || !rules)
		return bn_error_set(err, BN_EUSAGE, "bn_normalizer_new: rules must not be NULL");
	n = calloc(1, sizeof(*n));
	if (!n)
		goto cleanup;
	n->rules = rules;
	bn_arena_init(&n->rec.arena, 0);
	if (bn_json_parser_new(&n->json, 0) < 0)
		goto cleanup;
	rc = bn_chain_scratch_new(&n->chain, rules, err);
	if (rc < 0)
		goto cleanup;
	rc = plan_build(n);
	if (rc < 0)
		goto cleanup;
	rc = BN_ENOMEM;
	n->rec.fields = calloc(rules->nfields + 1, sizeof(*n->rec.fields));
	n->stats = calloc(rules->nfields + 1, sizeof(*n->stats));
	n->cache_tries = calloc(rules->nfields + 1, sizeof(uint64_t));
	n->cache_hits = calloc(rules->nfields + 1, sizeof(uint64_t));
	if (!n->cache_tries || !n->cache_hits || bn_value_cache_new(&n->cache, 131072, 8 << 20) < 0)
		goto cleanup;
	n->match = pcre2_match_data_create(1, NULL);
	n->match_ctx = pcre2_match_context_create(NULL);
	if (!n->match || !n->match_ctx)
		goto cleanup;
	pcre2_set_match_limit(n->match_ctx, rules->regex_match_limit);
	pcre2_set_depth_limit(n->match_ctx, rules->regex_depth_limit);
	n->hkey = bn_hash_process_key();
	n->seen_cap = 256;
	n->seen = calloc(n->seen_cap, sizeof(*n->seen));
	if (!n->rec.fields || !n->stats || !n->seen)
		goto cleanup;
	*out = n;
	return BN_OK;
cleanup:
	bn_normalizer_free(n);
	if (rc == BN_ENOMEM)
		bn_error_set(err, BN_ENOMEM, "out of memory creating the normalizer");
	return rc;
}

void bn_normalizer_free(bn_normalizer *n)
{
	if (!n)
		return;
	bn_json_parser_free(n->json);
	bn_chain_scratch_free(n->chain);
	free(n->nodes);
	free(n->keytab);
	free(n->slots);
	if (n->lists)
		for (size_t i = 0; i < n->nslots; i++)
			free(n->lists[i].v);
	free(n->lists);
	free(n->node_obj);
	free(n->node_val);
	free(n->src_first);
	free(n->src_count);
	free(n->src_slot);
	free(n->row_toks.v);
	free(n->field_slot);
	free(n->den_slot);
	free(n->slot_node);
	free(n->rec.fields);
	free(n->rec.items);
	free(n->rec.keys);
	bn_arena_free(&n->rec.arena);
	bn_buf_free(&n->tmp);
	free(n->stats);
	bn_value_cache_free(n->cache);
	free(n->cache_tries);
	free(n->cache_hits);
	if (n->seen)
		for (size_t i = 0; i < n->seen_cap; i++)
			free(n->seen[i].key);
	free(n->seen);
	pcre2_match_data_free(n->match);
	pcre2_match_context_free(n->match_ctx);
	free(n->value_out);
	bn_buf_free(&n->out_json);
	free(n);
}

void bn_plan_node_path(const bn_normalizer *n, int32_t node, bn_buf *out)
{
	int32_t chain[64];
	int depth = 0;
	bn_buf_reset(out);
	for (; node > ROW_ROOT && depth < 64; node = n->nodes[node].parent)
		chain[depth++] = node;
	if (node == ROW_ROOT && n->rules->rows.text) {
		bn_buf_append(out, n->rules->rows.text, strlen(n->rules->rows.text));
		bn_buf_append(out, "[]", 2);
	}
	while (depth-- > 0) {
		const bn_plan_node *x = &n->nodes[chain[depth]];
		char ix[16];
		if (x->kind == BN_PATH_KEY) {
			if (out->size)
				bn_buf_putc(out, '.');
			bn_buf_append(out, x->name, x->len);
		} else if (x->kind == BN_PATH_ALL) {
			bn_buf_append(out, "[*]", 3);
		} else {
			bn_buf_append(out, ix, (size_t)snprintf(ix, sizeof(ix), "[%u]", x->index));
		}
	}
}

typedef struct trace_adapter {
	bn_trace_fn fn;
	void *ctx;
	const bn_chain_scratch *chain;
} trace_adapter;

static void trace_step(void *ctx, const bn_step *step, const char *data, size_t size, int is_null)
{
	trace_adapter *t = ctx;
	const char *why;
	t->fn(t->ctx, bn_step_kind_name(step->kind), data, size, is_null);
	if (step->kind != BN_STEP_TEXT)
		return;
	why = bn_chain_text_explanation(t->chain);
	if (*why)
		t->fn(t->ctx, "text.why", why, strlen(why), 0);
}

int bn_normalize_value(bn_normalizer *n, const char *field, const char *in, size_t size,
		       const char **out, size_t *out_size, int *is_null,
		       bn_trace_fn trace, void *trace_ctx, bn_error *err)
{
	const bn_field *fd = NULL;
	bn_chain_result res;
	trace_adapter ta = { trace, trace_ctx, n->chain };
	int rc;

	for (size_t f = 0; f < n->rules->nfields && field; f++)
		if (strcmp(n->rules->fields[f].name, field) == 0)
			fd = &n->rules->fields[f];
	if (!fd) {
		bn_error_set(err, BN_EUSAGE, "no field '%s' in the rules", field ? field : "(null)");
		return BN_EUSAGE;
	}
	if (fd->type != BN_T_STRING || fd->is_ratio) {
		bn_error_field(err, field);
		return bn_error_set(err, BN_EUSAGE, "not a string field: only string fields have normalizer chains");
	}
	/* Callers (serving, the CLI) may pass any bytes; chains need valid UTF-8, so repair as the source does. */
	if (bn_utf8_valid_prefix(in, size) != size) {
		bn_buf_reset(&n->tmp);
		if (size > SIZE_MAX / 3 || bn_buf_reserve(&n->tmp, BN_UTF8_REPAIR_MAX(size)) < 0)
			return bn_error_set(err, BN_ENOMEM, "out of memory");
		n->tmp.size = bn_utf8_repair(n->tmp.data, NULL, in, size);
		in = n->tmp.data;
		size = n->tmp.size;
	}
	rc = bn_chain_apply(n->chain, fd->chain, in, size, &res, trace ? trace_step : NULL, &ta, err);
	if (rc < 0) {
		bn_error_field(err, field);
		return rc;
	}
	if (res.size + 1 > n->value_out_cap) {
		char *p = realloc(n->value_out, res.size + 1);
		if (!p)
			return bn_error_set(err, BN_ENOMEM, "out of memory");
		n->value_out = p;
		n->value_out_cap = res.size + 1;
	}
	if (res.size)
		memcpy(n->value_out, res.data, res.size);
	n->value_out[res.size] = '\0';
	*out = n->value_out;
	*out_size = res.size;
	*is_null = res.is_null;
	return BN_OK;
}
