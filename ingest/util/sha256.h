/* sha256.h - SHA-256 (FIPS 180-4) of a byte stream: the rules hash recorded in every output's lineage. */
#ifndef BN_UTIL_SHA256_H
#define BN_UTIL_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define BN_SHA256_SIZE 32

/* Streaming state; initialise with bn_sha256_init, feed with bn_sha256_update. */
typedef struct bn_sha256 {
	uint32_t h[8];
	uint64_t nbytes;            /* total message length so far */
	unsigned char block[64];    /* the partial block not yet compressed */
	size_t nblock;
} bn_sha256;

void bn_sha256_init(bn_sha256 *c);
void bn_sha256_update(bn_sha256 *c, const void *data, size_t size);

/* Finish: the 32-byte digest into out. c must be re-initialised before reuse. */
void bn_sha256_final(unsigned char out[BN_SHA256_SIZE], bn_sha256 *c);

/* One-shot: the digest of data[0..size) as 64 lower-case hex digits plus NUL. */
void bn_sha256_hex(char out[2 * BN_SHA256_SIZE + 1], const void *data, size_t size);

#endif
