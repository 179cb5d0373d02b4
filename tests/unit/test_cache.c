/* test_cache.c - the per-thread memo of chain results: hits, misses, generations, limits. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "normalize/cache.h"

/* The cache only compares chain pointers: two distinct objects stand for two chains. */
static const bn_chain chain_a, chain_b;

static bn_chain_result result(const char *data, int is_null, uint32_t effects)
{
	bn_chain_result r = { data, data ? strlen(data) : 0, is_null, effects };
	return r;
}

static void put(bn_value_cache *c, const bn_chain *chain, const char *in, bn_chain_result r)
{
	bn_value_cache_put(c, chain, in, strlen(in), &r);
}

static int get(bn_value_cache *c, const bn_chain *chain, const char *in, bn_chain_result *r)
{
	return bn_value_cache_get(c, chain, in, strlen(in), r);
}

static void expect_hit(bn_value_cache *c, const bn_chain *chain, const char *in, const char *want, uint32_t effects)
{
	bn_chain_result r;
	cr_assert(get(c, chain, in, &r), "\"%s\": a miss", in);
	cr_expect(!r.is_null && r.size == strlen(want) && memcmp(r.data, want, r.size) == 0,
		  "\"%s\" -> \"%.*s\", want \"%s\"", in, (int)r.size, r.data, want);
	cr_expect_eq(r.effects, effects);
}

Test(cache, results_by_chain_and_input)
{
	bn_value_cache *c;
	bn_chain_result r;
	cr_assert_eq(bn_value_cache_new(&c, 64, 4096), BN_OK);
	char in[] = "com.foo";
	put(c, &chain_a, in, result(in, 0, 0));                   /* the result is the input */
	put(c, &chain_a, "Com.Bar", result("com.bar", 0, 4));     /* a result of its own */
	put(c, &chain_b, "com.foo", result("other", 0, 1));       /* the same input, another chain */
	put(c, &chain_a, "???", result(NULL, 1, 2));              /* a null result */
	put(c, &chain_a, "  ", result("", 0, 8));                 /* an empty one */

	in[0] = 'X'; /* the cache keeps its own copy of the input */
	expect_hit(c, &chain_a, "com.foo", "com.foo", 0);
	expect_hit(c, &chain_a, "Com.Bar", "com.bar", 4);
	expect_hit(c, &chain_b, "com.foo", "other", 1);
	expect_hit(c, &chain_a, "  ", "", 8);
	cr_assert(get(c, &chain_a, "???", &r));
	cr_expect(r.is_null && r.effects == 2);
	cr_expect(!get(c, &chain_b, "Com.Bar", &r), "no entry for this chain");
	cr_expect(!get(c, &chain_a, "com.fo", &r), "a prefix is another input");
	cr_expect(!get(c, &chain_a, "com.foo ", &r), "so is a longer one");

	/* The two-step lookup finds the same, and prefetching changes nothing. */
	uint64_t h = bn_value_cache_hash(c, &chain_a, "Com.Bar", 7);
	bn_value_cache_prefetch_slot(c, h);
	bn_value_cache_prefetch_entry(c, h);
	cr_assert(bn_value_cache_get_hashed(c, h, &chain_a, "Com.Bar", 7, &r));
	cr_expect(r.size == 7 && memcmp(r.data, "com.bar", 7) == 0);
	bn_value_cache_free(c);
}

Test(cache, put_returns_the_kept_copy_and_refuses_twice)
{
	bn_value_cache *c;
	cr_assert_eq(bn_value_cache_new(&c, 64, 4096), BN_OK);
	bn_chain_result r = result("b", 0, 0), n = result(NULL, 1, 0);
	const char *kept = bn_value_cache_put(c, &chain_a, "a", 1, &r);
	cr_assert(kept && kept != r.data && memcmp(kept, "b", 1) == 0);
	cr_expect_null(bn_value_cache_put(c, &chain_a, "a", 1, &r), "already there");
	cr_expect_null(bn_value_cache_put(c, &chain_a, "x", 1, &n), "a null result has no copy");
	char big[BN_VALUE_CACHE_MAX_INPUT + 2];
	memset(big, 'x', sizeof(big));
	r = result("y", 0, 0);
	cr_expect_null(bn_value_cache_put(c, &chain_a, big, sizeof(big), &r), "longer than the cache takes");
	cr_expect(!bn_value_cache_get(c, &chain_a, big, sizeof(big), &r));
	bn_value_cache_free(c);
}

/* Full: inserts stop; the next record starts a new generation and nothing old is found. */
Test(cache, generations_empty_the_table_without_clearing_it)
{
	bn_value_cache *c;
	bn_chain_result r;
	char key[32];
	cr_assert_eq(bn_value_cache_new(&c, 64, 1 << 16), BN_OK);
	/* 300 generations: the 8-bit generation wraps (and the table is cleared) once. */
	for (int g = 0; g < 300; g++) {
		int stored = 0;
		for (int i = 0; i < 64; i++) {
			snprintf(key, sizeof(key), "g%d-v%d", g, i);
			bn_chain_result v = result(key, 0, (uint32_t)i);
			if (bn_value_cache_put(c, &chain_a, key, strlen(key), &v))
				stored++;
		}
		cr_assert_eq(stored, 48, "generation %d: %d stored, want 48 (3/4 of 64 slots, then full)", g, stored);
		for (int i = 0; i < 64; i++) {
			snprintf(key, sizeof(key), "g%d-v%d", g, i);
			cr_assert_eq(get(c, &chain_a, key, &r), i < 48, "generation %d value %d", g, i);
		}
		if (g > 0) {
			snprintf(key, sizeof(key), "g%d-v0", g - 1);
			cr_assert(!get(c, &chain_a, key, &r), "generation %d still finds %s", g, key);
		}
		bn_value_cache_begin_record(c);
		snprintf(key, sizeof(key), "g%d-v0", g);
		cr_assert(!get(c, &chain_a, key, &r), "generation %d: found after emptying", g);
	}
	bn_value_cache_free(c);
}

Test(cache, storage_limit)
{
	bn_value_cache *c;
	bn_chain_result r;
	cr_assert_eq(bn_value_cache_new(&c, 1024, 256), BN_OK);
	char key[BN_VALUE_CACHE_MAX_INPUT];
	int stored = 0;
	for (int i = 0; i < 16; i++) {
		memset(key, 'a' + i, sizeof(key));
		bn_chain_result v = { key, 40, 0, 0 };
		if (bn_value_cache_put(c, &chain_a, key, 40, &v))
			stored++;
	}
	cr_expect(stored > 0 && stored < 16, "%d of 16 stored in 256 bytes", stored);
	memset(key, 'a', sizeof(key));
	cr_expect(bn_value_cache_get(c, &chain_a, key, 40, &r));
	bn_value_cache_begin_record(c); /* storage more than 3/4 used: emptied */
	cr_expect(!bn_value_cache_get(c, &chain_a, key, 40, &r));
	bn_value_cache_free(c);
}
