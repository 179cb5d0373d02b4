/* cache.h - a per-thread memo of chain results: bundles and tokens repeat in nearly every record, so each distinct value is normalized once. */
#ifndef BN_NORMALIZE_CACHE_H
#define BN_NORMALIZE_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "normalize/chain.h"

/*
 * A fixed-size open-addressing table from (chain, input bytes) to the chain's
 * result (value, null flag and effect bits, so counters stay exact). Entries
 * and their bytes live in storage owned by the cache. The cache is emptied
 * only by bn_value_cache_begin_record(), so a result returned during a record
 * stays valid until the next record starts; when the table or its storage is
 * full, further inserts are skipped until then. Results that reject the
 * record are never cached. The caller decides what is worth caching.
 */
typedef struct bn_value_cache bn_value_cache;

/* entries: table slots (rounded up to a power of two); storage: bytes for keys and values (under 4 GiB: entries are found by 32-bit offsets). */
int bn_value_cache_new(bn_value_cache **out, size_t entries, size_t storage);
void bn_value_cache_free(bn_value_cache *c);

/* Call at the start of every record: empties the cache if it is more than 3/4 full. */
void bn_value_cache_begin_record(bn_value_cache *c);

/* Longest input the cache takes. */
#define BN_VALUE_CACHE_MAX_INPUT 256

/* 1 and *res on a hit, 0 on a miss. */
int bn_value_cache_get(bn_value_cache *c, const bn_chain *chain, const char *in, size_t size, bn_chain_result *res);

/*
 * The same in two steps, so a caller can look many values up at once: the
 * hash of (chain, in) first, a prefetch of its slot (and, once the slot has
 * arrived, of its entry) for each, then the lookups - whose cache misses then
 * overlap instead of following one another. h must be
 * bn_value_cache_hash(c, chain, in, size); the prefetches change nothing.
 */
uint64_t bn_value_cache_hash(const bn_value_cache *c, const bn_chain *chain, const char *in, size_t size);
/* Entries stored since the cache was last emptied: how far its lookups range over memory. */
size_t bn_value_cache_entries(const bn_value_cache *c);
void bn_value_cache_prefetch_slot(const bn_value_cache *c, uint64_t h);
void bn_value_cache_prefetch_entry(const bn_value_cache *c, uint64_t h);
int bn_value_cache_get_hashed(bn_value_cache *c, uint64_t h, const bn_chain *chain, const char *in, size_t size,
			      bn_chain_result *res);

/*
 * Remember res as the result of chain on in[0..size). Returns the cache's copy of res->data (valid,
 * like a hit's, until the next record starts), or NULL when nothing was stored (full, too long,
 * already there, or a null result).
 */
const char *bn_value_cache_put(bn_value_cache *c, const bn_chain *chain, const char *in, size_t size,
			       const bn_chain_result *res);

#endif
