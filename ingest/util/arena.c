/* arena.c - chunked bump allocator: per-record strings without per-record malloc. */
#include "util/arena.h"

#include <stdlib.h>
#include <string.h>

struct bn_arena_chunk {
	bn_arena_chunk *next;
	size_t cap;
	size_t used;
	char data[];
};

void bn_arena_init(bn_arena *a, size_t chunk_size)
{
	a->head = NULL;
	a->spare = NULL;
	a->chunk_size = chunk_size ? chunk_size : 64 * 1024;
}

char *bn_arena_alloc(bn_arena *a, size_t size)
{
	bn_arena_chunk *c = a->head;
	if (c && c->cap - c->used >= size) {
		char *p = c->data + c->used;
		c->used += size;
		return p;
	}
	/* Reuse a spare chunk that is large enough; oversized requests get their own chunk. */
	bn_arena_chunk **pp = &a->spare;
	while (*pp && (*pp)->cap < size)
		pp = &(*pp)->next;
	c = *pp;
	if (c) {
		*pp = c->next;
	} else {
		size_t cap = size > a->chunk_size ? size : a->chunk_size;
		c = malloc(sizeof(*c) + cap);
		if (!c)
			return NULL;
		c->cap = cap;
	}
	c->used = size;
	c->next = a->head;
	a->head = c;
	return c->data;
}

char *bn_arena_dup(bn_arena *a, const char *src, size_t size)
{
	char *p = bn_arena_alloc(a, size ? size : 1);
	if (p && size)
		memcpy(p, src, size);
	return p;
}

void bn_arena_reset(bn_arena *a)
{
	while (a->head) {
		bn_arena_chunk *c = a->head;
		a->head = c->next;
		c->used = 0;
		c->next = a->spare;
		a->spare = c;
	}
}

void bn_arena_free(bn_arena *a)
{
	bn_arena_reset(a);
	while (a->spare) {
		bn_arena_chunk *c = a->spare;
		a->spare = c->next;
		free(c);
	}
}
