/* hash.c - random bytes, and the process's random hash key (see hash.h). */
#include "util/hash.h"

#include <pthread.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static bn_hash_key process_key;
static pthread_once_t process_key_once = PTHREAD_ONCE_INIT;

/* splitmix64: spreads a weak fallback seed over all 64 bits */
static uint64_t splitmix(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

void bn_random_bytes(void *out, size_t n, const void *salt)
{
	if (getrandom(out, n, GRND_NONBLOCK) == (ssize_t)n)
		return;
	/* No entropy yet (early boot) or getrandom filtered: the clock, the pid and the salt, spread. */
	struct timespec ts = { 0, 0 };
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t state = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	state ^= (uint64_t)getpid() << 32;
	state ^= (uint64_t)(uintptr_t)salt;
	for (size_t i = 0; i < n; i += 8) {
		uint64_t v = splitmix(&state);
		memcpy((char *)out + i, &v, n - i < 8 ? n - i : 8);
	}
}

static void draw_key(void)
{
	uint64_t k[2];
	bn_random_bytes(k, sizeof(k), &process_key);
	process_key.k0 = k[0];
	process_key.k1 = k[1] | 1; /* never all zero */
}

bn_hash_key bn_hash_process_key(void)
{
	pthread_once(&process_key_once, draw_key);
	return process_key;
}
