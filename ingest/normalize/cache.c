/* cache.c - memo of chain results keyed by (chain, input), emptied only between records so results stay valid. */
#include "normalize/cache.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "util/hash.h"

/*
 * Layout for the memory, not for the instructions: a lookup runs about twenty
 * times per record against a working set of tens of thousands of values, so
 * its cost is the cache misses. A slot is one 64-bit word - the entry's
 * offset in `bytes`, the generation and 24 bits of the hash - so the table of
 * 131,072 slots is 1 MiB and stays in a core's L2 (the 48-byte slots before
 * took 6 MiB and missed on nearly every probe). An entry's header, input and
 * result sit together in `bytes`: a hit reads one more place, and a result
 * equal to its input (most bundles and tokens) is stored once.
 */
typedef struct entry {
	const bn_chain *chain;
	uint32_t effects;
	uint32_t out_len;
	uint16_t in_len;        /* at most BN_VALUE_CACHE_MAX_INPUT */
	uint8_t is_null;
	uint8_t same;           /* the result is the input: its bytes are stored once */
} entry;                        /* followed by the input bytes, then (unless same) the result's */

#define SLOT_OFF(s) ((uint32_t)((s) >> 32))
#define SLOT_GEN(s) ((uint32_t)((s) >> 24) & 0xFF)
#define SLOT_LOW(tag, gen) ((uint32_t)(tag) | (uint32_t)(gen) << 24)

struct bn_value_cache {
	uint64_t *slots;        /* 0 = empty; a slot of an older generation is empty too */
	size_t mask;
	size_t used;
	char *bytes;            /* entries, 8-byte aligned */
	size_t bytes_cap;
	size_t bytes_used;
	uint32_t gen;           /* 1..255: emptying the cache starts a new generation, no memset */
	bn_hash_key key;        /* values come from the logs: keyed, so they cannot aim at one slot */
};

#define HUGE_PAGE (2u << 20)

/* Memory the kernel may back with huge pages: the table and its entries are read at random. */
static void *huge_alloc(size_t size)
{
	void *p = NULL;
	size = (size + HUGE_PAGE - 1) & ~(size_t)(HUGE_PAGE - 1);
	if (posix_memalign(&p, HUGE_PAGE, size) != 0)
		return NULL;
	madvise(p, size, MADV_HUGEPAGE);
	return p;
}

int bn_value_cache_new(bn_value_cache **out, size_t entries, size_t storage)
{
	bn_value_cache *c = calloc(1, sizeof(*c));
	size_t n = 64;
	while (n < entries)
		n *= 2;
	if (!c)
		return BN_ENOMEM;
	storage &= ~(size_t)7;
	c->slots = huge_alloc(n * sizeof(*c->slots));
	c->bytes = huge_alloc(storage);
	if (!c->slots || !c->bytes) {
		bn_value_cache_free(c);
		return BN_ENOMEM;
	}
	memset(c->slots, 0, n * sizeof(*c->slots));
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
		/* A serving thread must not stall clearing a megabyte each time: bump the
		 * generation instead, and clear only when its eight bits wrap. */
		if (++c->gen > 0xFF) {
			memset(c->slots, 0, (c->mask + 1) * sizeof(*c->slots));
			c->gen = 1;
		}
		c->used = 0;
		c->bytes_used = 0;
	}
}

static inline uint64_t hash(const bn_value_cache *c, const bn_chain *chain, const char *in, size_t size)
{
	return bn_hash(c->key, in, size) ^ ((uint64_t)(uintptr_t)chain * 0x9e3779b97f4a7c15ull);
}

size_t bn_value_cache_entries(const bn_value_cache *c)
{
	return c->used;
}

uint64_t bn_value_cache_hash(const bn_value_cache *c, const bn_chain *chain, const char *in, size_t size)
{
	return hash(c, chain, in, size);
}

void bn_value_cache_prefetch_slot(const bn_value_cache *c, uint64_t h)
{
	__builtin_prefetch(&c->slots[h & c->mask]);
}

void bn_value_cache_prefetch_entry(const bn_value_cache *c, uint64_t h)
{
	uint64_t s = c->slots[h & c->mask];
	if ((uint32_t)s == SLOT_LOW(h >> 40, c->gen))
		__builtin_prefetch(c->bytes + SLOT_OFF(s));
}

/*
 * Probe for (chain, in): the matching entry (*slot = its index), or NULL with
 * *slot = the free slot where it would go.
 */
static inline __attribute__((always_inline)) const entry *find(const bn_value_cache *c, uint64_t h,
							       const bn_chain *chain, const char *in, size_t size,
							       size_t *slot)
{
	uint32_t low = SLOT_LOW(h >> 40, c->gen);
	for (size_t i = h & c->mask;; i = (i + 1) & c->mask) {
		uint64_t s = c->slots[i];
		if (SLOT_GEN(s) != c->gen) {
			*slot = i;
			return NULL;
		}
		if ((uint32_t)s == low) {
			const entry *e = (const entry *)(c->bytes + SLOT_OFF(s));
			if (e->chain == chain && e->in_len == size && bn_bytes_equal(e + 1, in, size)) {
				*slot = i;
				return e;
			}
		}
	}
}

static inline __attribute__((always_inline)) int lookup(bn_value_cache *c, uint64_t h, const bn_chain *chain,
							  const char *in, size_t size, bn_chain_result *res)
{
	size_t i;
	if (size > BN_VALUE_CACHE_MAX_INPUT)
		return 0;
	const entry *e = find(c, h, chain, in, size, &i);
	if (!e)
		return 0;
	const char *input = (const char *)(e + 1);
	res->data = e->same ? input : input + e->in_len;
	res->size = e->out_len;
	res->is_null = e->is_null;
	res->effects = e->effects;
	return 1;
}

int bn_value_cache_get_hashed(bn_value_cache *c, uint64_t h, const bn_chain *chain, const char *in, size_t size,
			      bn_chain_result *res)
{
	return lookup(c, h, chain, in, size, res);
}

int bn_value_cache_get(bn_value_cache *c, const bn_chain *chain, const char *in, size_t size, bn_chain_result *res)
{
	return size <= BN_VALUE_CACHE_MAX_INPUT && lookup(c, hash(c, chain, in, size), chain, in, size, res);
}

const char *bn_value_cache_put(bn_value_cache *c, const bn_chain *chain, const char *in, size_t size,
			       const bn_chain_result *res)
{
	size_t i, out = res->is_null ? 0 : res->size;
	int same = !res->is_null && out == size && (out == 0 || memcmp(res->data, in, size) == 0);
	size_t need = (sizeof(entry) + size + (same ? 0 : out) + 7) & ~(size_t)7;
	if (size > BN_VALUE_CACHE_MAX_INPUT || c->used * 4 > c->mask * 3 || c->bytes_cap - c->bytes_used < need ||
	    out > UINT32_MAX)
		return NULL;
	uint64_t h = hash(c, chain, in, size);
	if (find(c, h, chain, in, size, &i))
		return NULL;
	entry *e = (entry *)(c->bytes + c->bytes_used);
	*e = (entry){ .chain = chain, .effects = res->effects, .out_len = (uint32_t)out, .in_len = (uint16_t)size,
		      .is_null = (uint8_t)(res->is_null != 0), .same = (uint8_t)same };
	char *input = (char *)(e + 1);
	memcpy(input, in, size);
	if (!same && out)
		memcpy(input + size, res->data, out);
	c->slots[i] = (uint64_t)c->bytes_used << 32 | SLOT_LOW(h >> 40, c->gen);
	c->bytes_used += need;
	c->used++;
	return res->is_null ? NULL : same ? input : input + size;
}
