/*
 * hash.h - the one keyed hash of every in-memory table that untrusted bytes fill: the map-key and
 * list-item de-duplication and the serving_invalid key memo (record/extract.c), the chain-result
 * cache (normalize/cache.c), the vocab counter (vocab/count.c) and the serving vocab lookup
 * (serve/model.h).
 *
 * Those tables use open addressing, so inputs that share low hash bits make every lookup walk
 * one long cluster: with an unkeyed hash (FNV-1a, or a fixed multiply) an exchange, or anyone
 * who writes into its logs, can precompute such inputs and turn O(n) into O(n^2) - 100,000
 * crafted keys on one line, or a day of bundles that all probe the same slot. The key here is
 * 128 random bits drawn once per process (getrandom), so such inputs cannot be computed ahead,
 * which is what Go's and Abseil's hash tables do; SipHash (Rust, Python) would be slower per
 * call for the same protection against blind attackers. Nothing bidnorm writes depends on the
 * key: every table is sorted, or only looked up, before it reaches an output.
 *
 * The function: 16 bytes at a time, two words masked with the secret and the state and folded
 * with a 64x64->128-bit multiply (high xor low half), then the tail and length and a final fold
 * (the scheme of wyhash).
 */
#ifndef BN_UTIL_HASH_H
#define BN_UTIL_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct bn_hash_key {
	uint64_t k0, k1;
} bn_hash_key;

/*
 * Fill out[0..n) with random bytes (getrandom). Where the kernel has none to give (early boot, a
 * sandbox that filters the call) falls back to the clock, the pid and salt (any address that differs
 * between callers): never fails, but then the bytes are only unlikely to repeat, not secret.
 */
void bn_random_bytes(void *out, size_t n, const void *salt);

/* The process's key: random, drawn on first use (thread-safe), the same for every later call. */
bn_hash_key bn_hash_process_key(void);

static inline uint64_t bn_hash_fold(uint64_t a, uint64_t b)
{
	__uint128_t r = (__uint128_t)a * b;
	return (uint64_t)r ^ (uint64_t)(r >> 64);
}

/* Keyed 64-bit hash of s[0..n). In-memory only: the value depends on the key and the byte order. */
static inline uint64_t bn_hash(bn_hash_key key, const void *s, size_t n)
{
	const unsigned char *p = s;
	uint64_t h = key.k0 ^ (n * 0x9e3779b97f4a7c15ull), a, b;
	size_t left = n;
	/* 16 bytes per fold, as two words (the wyhash scheme); the last 1..16 bytes below. */
	while (left > 16) {
		memcpy(&a, p, 8);
		memcpy(&b, p + 8, 8);
		h = bn_hash_fold(a ^ key.k1, b ^ h ^ 0xa0761d6478bd642full);
		p += 16;
		left -= 16;
	}
	/* The tail with fixed-size loads (a memcpy of variable length is a call): the last 16 bytes
	 * of a longer string (overlapping the words before), two words that overlap for 8..16 bytes,
	 * else two 4-byte or three single-byte reads that together cover every byte. */
	if (n > 16) {
		memcpy(&a, (const unsigned char *)s + n - 16, 8);
		memcpy(&b, (const unsigned char *)s + n - 8, 8);
	} else if (left >= 8) {
		memcpy(&a, p, 8);
		memcpy(&b, p + left - 8, 8);
	} else if (left >= 4) {
		uint32_t lo, hi;
		memcpy(&lo, p, 4);
		memcpy(&hi, p + left - 4, 4);
		a = (uint64_t)lo | (uint64_t)hi << 32;
		b = 0;
	} else if (left) {
		a = (uint64_t)p[0] | (uint64_t)p[left / 2] << 8 | (uint64_t)p[left - 1] << 16;
		b = 0;
	} else {
		a = b = 0;
	}
	h = bn_hash_fold(a ^ key.k1 ^ ((uint64_t)left << 56), b ^ h ^ 0xe7037ed1a0b428dbull);
	return bn_hash_fold(h ^ key.k0, 0x8ebc6af09c88c6e3ull ^ key.k1);
}

/* Keyed hash of one 64-bit value (integers, the bits of a double). */
static inline uint64_t bn_hash_u64(bn_hash_key key, uint64_t v)
{
	return bn_hash_fold(bn_hash_fold(v ^ key.k1, key.k0 ^ 0xa0761d6478bd642full), 0x8ebc6af09c88c6e3ull ^ key.k1);
}

/*
 * a[0..n) == b[0..n), for the probes of these tables: their keys are mostly
 * short, which a few word compares settle inline (the first and last words
 * overlap) where a call to memcmp costs more than the compare. Reads only
 * a[0..n) and b[0..n).
 */
static inline int bn_bytes_equal(const void *a, const void *b, size_t n)
{
	const unsigned char *x = a, *y = b;
	if (n >= 8) {
		uint64_t u, v, s, t;
		memcpy(&u, x + n - 8, 8);
		memcpy(&v, y + n - 8, 8);
		for (size_t i = 0; i + 8 < n; i += 8) {
			memcpy(&s, x + i, 8);
			memcpy(&t, y + i, 8);
			if (s != t)
				return 0;
		}
		return u == v;
	}
	if (n >= 4) {
		uint32_t u, v, s, t;
		memcpy(&u, x, 4);
		memcpy(&v, y, 4);
		memcpy(&s, x + n - 4, 4);
		memcpy(&t, y + n - 4, 4);
		return ((u ^ v) | (s ^ t)) == 0;
	}
	for (size_t i = 0; i < n; i++)
		if (x[i] != y[i])
			return 0;
	return 1;
}

#endif
