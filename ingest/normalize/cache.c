/* cache.c - memo of chain results keyed by (chain, input), emptied only between records so results stay valid. */
#include "normalize/cache.h"

#include <stdlib.h>
#include <string.h>

#include "util/hash.h"

typedef struct entry {
	uint64_t hash;          /* 0 = empty slot */
	uint32_t gen;           /* the slot is in use only when this is the cache's generation */
	const bn_chain *chain;
	uint32_t in_off, in_len;
	uint32_t out_off, out_len;
	uint32_t effects;
	int is_null;
} entry;

struct bn_value_cache {
	entry *slots;
	size_t mask;
	size_t used;
	char *bytes;
	size_t bytes_cap;
	size_t bytes_used;
	uint32_t gen;           /* emptying the cache starts a new generation: O(1), no memset */
	bn_hash_key key;        /* values come from the logs: keyed, so they cannot aim at one slot */
};

int bn_value_cache_new(bn_value_cache **out, size_t entries, size_t storage)
{
	bn_value_cache *c = calloc(1, sizeof(*c));
	size_t n = 64;
	while (n < entries)
		n *= 2;
	if (!c)
		return BN_ENOMEM;
	c->slots = calloc(n, sizeof(*c->slots));
	c->bytes = malloc(storage);
	if (!c->slots || !c->bytes) {
		bn_value_cache_free(c);
		return BN_ENOMEM;
	}
	c->mask = n - 1;
	c->bytes_cap = storage;
	c->gen = 1;
	c->key = bn_hash_process_key();
	*out = c;
	return BN_OK;
}

void bn_value_cache_free(bn_value_cache *c)
{
	if (!c)
		return;
	free(c->slots);
	free(c->bytes);
	free(c);
}

void bn_value_cache_begin_record(bn_value_cache *c)
{
	if (c->used * 4 > c->mask * 3 || c->bytes_used * 4 > c->bytes_cap * 3) {
		/* A serving thread must not stall clearing megabytes: bump the generation instead. */
		if (++c->gen == 0) {
			memset(c->slots, 0, (c->mask + 1) * sizeof(*c->slots));
			c->gen = 1;
		}
		c->used = 0;
		c->bytes_used = 0;
	}
}

/* Keyed hash of the input, mixed with the chain; never 0. */
static uint64_t hash(const bn_value_cache *c, const bn_chain *chain, const char *s, size_t n)
{
	uint64_t h = bn_hash(c->key, s, n) ^ ((uint64_t)(uintptr_t)chain * 0x9e3779b97f4a7c15ull);
	return h ? h : 1;
}

static inline __attribute__((always_inline)) entry *find(bn_value_cache *c, uint64_t h, const bn_chain *chain, const char *in, size_t size)
{
	for (size_t i = h & c->mask;; i = (i + 1) & c->mask) {
		entry *e = &c->slots[i];
		if (!e->hash || e->gen != c->gen)
			return e;
		if (e->hash == h && e->chain == chain && e->in_len == size && bn_bytes_equal(c->bytes + e->in_off, in, size))
			return e;
	}
}

int bn_value_cache_get(bn_value_cache *c, const bn_chain *chain, const char *in, size_t size, bn_chain_result *res)
{
	if (size > BN_VALUE_CACHE_MAX_INPUT)
		return 0;
	entry *e = find(c, hash(c, chain, in, size), chain, in, size);
	if (!e->hash || e->gen != c->gen)
		return 0;
	res->data = c->bytes + e->out_off;
	res->size = e->out_len;
	res->is_null = e->is_null;
	res->effects = e->effects;
	return 1;
}

const char *bn_value_cache_put(bn_value_cache *c, const bn_chain *chain, const char *in, size_t size,
			       const bn_chain_result *res)
{
	size_t need = size + (res->is_null ? 0 : res->size);
	if (size > BN_VALUE_CACHE_MAX_INPUT || c->used * 4 > c->mask * 3 || c->bytes_cap - c->bytes_used < need)
		return NULL;
	uint64_t h = hash(c, chain, in, size);
	entry *e = find(c, h, chain, in, size);
	if (e->hash && e->gen == c->gen)
		return NULL;
	char *p = c->bytes + c->bytes_used;
	memcpy(p, in, size);
	if (!res->is_null && res->size)
		memcpy(p + size, res->data, res->size);
	*e = (entry){ .hash = h, .gen = c->gen, .chain = chain, .in_off = (uint32_t)c->bytes_used, .in_len = (uint32_t)size,
		      .out_off = (uint32_t)(c->bytes_used + size), .out_len = res->is_null ? 0 : (uint32_t)res->size,
		      .effects = res->effects, .is_null = res->is_null };
	c->bytes_used += need;
	c->used++;
	return res->is_null ? NULL : p + size;
}
