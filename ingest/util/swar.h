/*
 * Eight bytes at a time in a plain 64-bit word ("SWAR"): the portable scans
 * of ASCII text. Every function is exact per byte, so a caller can find the
 * first interesting byte with bn_swar_first().
 */
#ifndef BN_UTIL_SWAR_H
#define BN_UTIL_SWAR_H

#include <stdint.h>
#include <string.h>

#define BN_SWAR_ONES UINT64_C(0x0101010101010101)
#define BN_SWAR_HIGHS UINT64_C(0x8080808080808080)

static inline uint64_t bn_load64(const void *p)
{
	uint64_t w;
	memcpy(&w, p, sizeof(w));
	return w;
}

/*
 * The high bit of each byte of w that lies in [lo, hi], for a word whose
 * bytes are all below 0x80 (test w & BN_SWAR_HIGHS first); lo <= 0x80 and
 * hi <= 0x7F, so no sum carries into the next byte.
 */
static inline uint64_t bn_swar_in_range(uint64_t w, unsigned lo, unsigned hi)
{
	uint64_t ge_lo = w + BN_SWAR_ONES * (0x80 - lo);
	uint64_t gt_hi = w + BN_SWAR_ONES * (0x7F - hi);
	return ge_lo & ~gt_hi & BN_SWAR_HIGHS;
}

/* Index of the byte (in memory order) of the lowest high bit set in m != 0. */
static inline unsigned bn_swar_first(uint64_t m)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	return (unsigned)__builtin_ctzll(m) / 8;
#else
	return (unsigned)__builtin_clzll(m) / 8;
#endif
}

#endif
