/* arena.h - a chunked bump allocator for per-record strings: pointers stay valid until reset, chunks are reused. */
#ifndef BN_UTIL_ARENA_H
#define BN_UTIL_ARENA_H

#include <stddef.h>

typedef struct bn_arena_chunk bn_arena_chunk;

typedef struct bn_arena {
	bn_arena_chunk *head;    /* chunks in use, newest first */
	bn_arena_chunk *spare;   /* chunks kept from earlier resets */
	size_t chunk_size;       /* default chunk size (bytes) */
} bn_arena;

/* chunk_size 0 = 64 KiB. */
void bn_arena_init(bn_arena *a, size_t chunk_size);

/* size bytes, not aligned (strings). NULL when out of memory. */
char *bn_arena_alloc(bn_arena *a, size_t size);

/* Copy src[0..size) into the arena. NULL when out of memory. */
char *bn_arena_dup(bn_arena *a, const char *src, size_t size);

/* Forget every allocation; keep the chunks for reuse. */
void bn_arena_reset(bn_arena *a);

void bn_arena_free(bn_arena *a);

#endif
