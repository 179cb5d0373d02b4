/* text_repair.c - runs the `text` step over lines of stdin, for the corpus tests and the text micro-benchmark. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "normalize/text.h"
#include "source/utf8_repair.h"

static const char usage[] =
	"usage: text_repair [--bench ROUNDS] [--max-bytes N] < VALUES\n"
	"\n"
	"Reads one value per line (invalid UTF-8 repaired as the source step does) and\n"
	"writes, per line, the effect bits in hex, a tab and the repaired value. With\n"
	"--bench, repairs every value ROUNDS times instead and prints the mean cost per\n"
	"value in nanoseconds (after one warm-up round).\n";

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
	bn_text_scratch *s = NULL;
	char *line = NULL, *all = NULL, *fixed = NULL;
	size_t cap = 0, all_size = 0, fixed_cap = 0, nvalues = 0, *offs = NULL, offs_cap = 0;
	long rounds = 0, max_bytes = 0;
	ssize_t n;
	int rc = 1, i;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--bench") == 0 && i + 1 < argc)
			rounds = strtol(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--max-bytes") == 0 && i + 1 < argc)
			max_bytes = strtol(argv[++i], NULL, 10);
		else {
			fputs(usage, stderr);
			return 2;
		}
	}
	if (bn_text_scratch_new(&s) < 0)
		goto cleanup;
	while ((n = getline(&line, &cap, stdin)) >= 0) {
		const char *out;
		size_t out_size, len = (size_t)n;
		uint32_t eff;
		if (len && line[len - 1] == '\n')
			len--;
		if (BN_UTF8_REPAIR_MAX(len) + 1 > fixed_cap) {
			fixed_cap = BN_UTF8_REPAIR_MAX(len) + 1;
			free(fixed);
			if (!(fixed = malloc(fixed_cap)))
				goto cleanup;
		}
		len = bn_utf8_repair(fixed, NULL, line, len);
		if (rounds > 0) {
			/* Keep the values, each after its offset, for the timed rounds. */
			char *p = realloc(all, all_size + len);
			if (!p || (nvalues + 2 > offs_cap && !(offs = realloc(offs, (offs_cap = 2 * offs_cap + 64) * sizeof(*offs)))))
				goto cleanup;
			all = p;
			memcpy(all + all_size, fixed, len);
			offs[nvalues++] = all_size;
			all_size += len;
			offs[nvalues] = all_size;
			continue;
		}
		if (bn_text_repair(s, fixed, len, (size_t)max_bytes, &out, &out_size, &eff) < 0)
			goto cleanup;
		printf("%x\t%.*s\n", (unsigned)eff, (int)out_size, out);
	}
	if (rounds > 0 && nvalues > 0) {
		double t0 = 0;
		long r;
		for (r = -1; r < rounds; r++) {
			size_t v;
			if (r == 0)
				t0 = now_ns();
			for (v = 0; v < nvalues; v++) {
				const char *out;
				size_t out_size;
				uint32_t eff;
				if (bn_text_repair(s, all + offs[v], offs[v + 1] - offs[v], (size_t)max_bytes, &out,
						   &out_size, &eff) < 0)
					goto cleanup;
			}
		}
		printf("%.1f ns/value over %zu values x %ld rounds\n", (now_ns() - t0) / ((double)nvalues * (double)rounds),
		       nvalues, rounds);
	}
	rc = 0;
cleanup:
	if (rc)
		fputs("text_repair: out of memory\n", stderr);
	bn_text_scratch_free(s);
	free(line);
	free(all);
	free(fixed);
	free(offs);
	return rc;
}
