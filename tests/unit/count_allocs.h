/* count_allocs.h - a counting malloc for "no allocation after warm-up" tests; include in exactly one test file per binary. */
#ifndef BN_TEST_COUNT_ALLOCS_H
#define BN_TEST_COUNT_ALLOCS_H

#include <stddef.h>

/*
 * The test binary's malloc family takes precedence over libc's and forwards
 * to it, counting while `counting` is set. glibc only, and not under
 * AddressSanitizer, which owns malloc itself: tests check COUNT_ALLOCS.
 */
#if defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__)
#define COUNT_ALLOCS 1
extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t size);
static volatile int counting;
static volatile long allocations;

void *malloc(size_t size)
{
	if (counting)
		allocations++;
	return __libc_malloc(size);
}

void *calloc(size_t n, size_t size)
{
	if (counting)
		allocations++;
	return __libc_calloc(n, size);
}

void *realloc(void *p, size_t size)
{
	if (counting)
		allocations++;
	return __libc_realloc(p, size);
}
#endif

#endif
