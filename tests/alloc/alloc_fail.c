/* alloc_fail.c - LD_PRELOAD shim that makes the N-th heap allocation fail (BN_FAIL_ALLOC_AT=N), to test out-of-memory paths. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * glibc routes its own allocations (strdup, fopen, qsort...) through the
 * public malloc/calloc/realloc, and exports the real ones as __libc_*, so
 * interposing these three (and posix_memalign, which bidnorm uses for
 * huge-page-aligned tables) covers every heap allocation without dlsym
 * (which itself allocates). Only the N-th call fails - later ones succeed,
 * as after a transient shortage - so a sweep over N reaches every path.
 *
 * BN_FAIL_ALLOC_AT=N   fail the N-th call (1-based); unset or 0 = only count
 * BN_FAIL_ALLOC_LOG=F  append "failed allocation N in LIBRARY\n" to F when it
 *                      happens (LIBRARY: the file of the caller, so a leak
 *                      inside a dependency can be told from one of ours),
 *                      and at exit "allocations T\n" (calls counted) and
 *                      "live L\n" (blocks allocated and not freed since the
 *                      constructor: compared with a run without failure, a
 *                      higher number means a leak on the failure path)
 */

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t size);
extern void *__libc_memalign(size_t align, size_t size);
extern void __libc_free(void *p);

static unsigned long fail_at;
static unsigned long calls;
static long live;
static const char *log_path;
static int ready;

static void say(const char *what, unsigned long n, const char *where)
{
	char line[512];
	int len, fd;

	if (!log_path)
		return;
	len = snprintf(line, sizeof(line), where ? "%s %lu in %s\n" : "%s %lu\n", what, n, where);
	fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	if (write(fd, line, (size_t)len) < 0)
		errno = 0;
	close(fd);
}

__attribute__((constructor)) static void setup(void)
{
	const char *at = getenv("BN_FAIL_ALLOC_AT");
	fail_at = at ? strtoul(at, NULL, 10) : 0;
	log_path = getenv("BN_FAIL_ALLOC_LOG");
	/* Calls made before this constructor (the loader, earlier constructors) are not counted. */
	calls = 0;
	ready = 1;
}

__attribute__((destructor)) static void report(void)
{
	say("allocations", __atomic_load_n(&calls, __ATOMIC_SEQ_CST), NULL);
	say("live", (unsigned long)__atomic_load_n(&live, __ATOMIC_SEQ_CST), NULL);
}

/* 1 when this call is the one to fail; caller is the allocating code's return address. */
static int should_fail(void *caller)
{
	unsigned long n;
	Dl_info info;
	if (!ready)
		return 0;
	n = __atomic_add_fetch(&calls, 1, __ATOMIC_SEQ_CST);
	if (!fail_at || n != fail_at)
		return 0;
	say("failed allocation", n, dladdr(caller, &info) && info.dli_fname ? info.dli_fname : "?");
	errno = ENOMEM;
	return 1;
}

static void *counted(void *p)
{
	if (p && ready)
		__atomic_add_fetch(&live, 1, __ATOMIC_SEQ_CST);
	return p;
}

void *malloc(size_t size)
{
	return should_fail(__builtin_return_address(0)) ? NULL : counted(__libc_malloc(size));
}

void *calloc(size_t n, size_t size)
{
	return should_fail(__builtin_return_address(0)) ? NULL : counted(__libc_calloc(n, size));
}

void *realloc(void *p, size_t size)
{
	void *q;
	if (should_fail(__builtin_return_address(0)))
		return NULL;
	q = __libc_realloc(p, size);
	if (!p)
		return counted(q);
	if (!q && size == 0 && ready)
		__atomic_sub_fetch(&live, 1, __ATOMIC_SEQ_CST);
	return q;
}

int posix_memalign(void **out, size_t align, size_t size)
{
	void *p;
	if (should_fail(__builtin_return_address(0)))
		return ENOMEM;
	p = counted(__libc_memalign(align, size));
	if (!p)
		return ENOMEM;
	*out = p;
	return 0;
}

void free(void *p)
{
	if (p && ready)
		__atomic_sub_fetch(&live, 1, __ATOMIC_SEQ_CST);
	__libc_free(p);
}
