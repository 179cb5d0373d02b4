/*
 * test_hash.c - the keyed hash of the in-memory tables (util/hash.h): keys found to collide under one
 * key do not collide under another, the process key is drawn per process, and the function is a function.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/hash.h"

#define BITS 10
#define NKEYS (1u << BITS)
#define MASK (NKEYS - 1)

/* Distinct low-BITS buckets that keys[0..n) fall into under key. */
static unsigned buckets(bn_hash_key key, char (*keys)[12], size_t n)
{
	static unsigned char hit[NKEYS];
	unsigned distinct = 0;
	memset(hit, 0, sizeof(hit));
	for (size_t i = 0; i < n; i++) {
		uint64_t b = bn_hash(key, keys[i], strlen(keys[i])) & MASK;
		distinct += !hit[b];
		hit[b] = 1;
	}
	return distinct;
}

/*
 * What an attacker who knew the key could do: 1,024 keys that all land in one slot of a
 * 1,024-slot table (found by brute force against a known key). Under any other key - the
 * process's is random - they spread like random keys: about 1,024 * (1 - 1/e) = 647 buckets.
 * An unkeyed hash (the FNV-1a the tables used before) would keep them in one bucket.
 */
Test(hash, collisions_found_for_one_key_do_not_carry_over_to_another)
{
	static char keys[NKEYS][12];
	const bn_hash_key known = { 0x0123456789abcdefull, 0xfedcba9876543210ull };
	size_t n = 0;
	for (uint32_t i = 0; n < NKEYS; i++) {
		char s[12];
		snprintf(s, sizeof(s), "k%08x", i);
		if ((bn_hash(known, s, strlen(s)) & MASK) == 0)
			memcpy(keys[n++], s, sizeof(s));
	}
	cr_assert_eq(buckets(known, keys, n), 1);
	unsigned spread = buckets(bn_hash_process_key(), keys, n);
	cr_assert_gt(spread, 560, "crafted keys fell into only %u of %u buckets under the process key", spread, NKEYS);
	const bn_hash_key near = { known.k0 ^ 1, known.k1 };
	spread = buckets(near, keys, n);
	cr_assert_gt(spread, 560, "a one-bit change of the key left the keys in %u buckets", spread);
}

Test(hash, every_process_draws_its_own_key)
{
	int fd[2];
	cr_assert_eq(pipe(fd), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		uint64_t h = bn_hash(bn_hash_process_key(), "com.example.app", 15);
		_exit(write(fd[1], &h, sizeof(h)) == (ssize_t)sizeof(h) ? 0 : 1);
	}
	/* The parent draws after the fork, so the child could not inherit the key. */
	uint64_t child = 0, mine = bn_hash(bn_hash_process_key(), "com.example.app", 15);
	int status;
	cr_assert_eq(read(fd[0], &child, sizeof(child)), (ssize_t)sizeof(child));
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert_neq(child, mine);
	bn_hash_key a = bn_hash_process_key(), b = bn_hash_process_key();
	cr_assert(a.k0 == b.k0 && a.k1 == b.k1, "the key changed within one process");
	cr_assert_neq(a.k0 | a.k1, 0);
}

Test(hash, equal_bytes_equal_hashes_and_every_length_and_byte_counts)
{
	const bn_hash_key k = bn_hash_process_key();
	char a[40], b[40];
	for (size_t i = 0; i < sizeof(a); i++)
		a[i] = b[i] = (char)('a' + i % 26);
	for (size_t n = 0; n <= sizeof(a); n++) {
		cr_assert_eq(bn_hash(k, a, n), bn_hash(k, b, n));
		/* a zero byte more is another key (the tail is zero-padded, so the length must count) */
		char z[41] = { 0 };
		memcpy(z, a, n);
		cr_assert_neq(bn_hash(k, z, n), bn_hash(k, z, n + 1), "length %zu", n);
		for (size_t i = 0; i < n; i++) {
			b[i] ^= 0x01;
			cr_assert_neq(bn_hash(k, a, n), bn_hash(k, b, n), "length %zu, byte %zu", n, i);
			b[i] ^= 0x01;
		}
	}
	cr_assert_neq(bn_hash_u64(k, 0), bn_hash_u64(k, 1));
	cr_assert_eq(bn_hash_u64(k, 42), bn_hash_u64(k, 42));
}

Test(hash, random_bytes_differ_between_calls)
{
	unsigned char x[16] = { 0 }, y[16] = { 0 };
	bn_random_bytes(x, sizeof(x), x);
	bn_random_bytes(y, sizeof(y), y);
	cr_assert_neq(memcmp(x, y, sizeof(x)), 0);
	unsigned char odd[13] = { 0 };
	bn_random_bytes(odd, sizeof(odd), odd); /* not a multiple of 8: no overrun (ASan would tell) */
}

/* bn_bytes_equal: every length around its word boundaries, a difference at every position. */
Test(hash, bytes_equal_sees_a_difference_at_every_position_of_every_length)
{
	char a[40], b[40];
	for (size_t n = 0; n <= sizeof(a); n++) {
		for (size_t i = 0; i < n; i++)
			a[i] = b[i] = (char)('a' + i % 26);
		cr_assert(bn_bytes_equal(a, b, n), "length %zu: equal bytes compare unequal", n);
		for (size_t k = 0; k < n; k++) {
			b[k] ^= 0x20;
			cr_assert(!bn_bytes_equal(a, b, n), "length %zu: a difference at %zu is missed", n, k);
			b[k] ^= 0x20;
		}
	}
}
