/* fuzz_part.c - libFuzzer target: arbitrary bytes as a partial counts file ('vocab count' output) through 'vocab merge' and its text repair check. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bidnorm/error.h"
#include "bidnorm/vocab.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_status(int rc, const bn_error *err)
{
	if (rc == BN_OK)
		return;
	if ((rc != BN_ECORRUPT && rc != BN_EUSAGE && rc != BN_ENOMEM) || !err->message[0]) {
		fprintf(stderr, "fuzz_part: unexpected status %d: '%s'\n", rc, err->message);
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	static char path[64];
	bn_vocab_counter *c = NULL;
	bn_error err;

	/* merge_part reads a path: give it an in-memory file, rewritten for every input */
	if (fd < 0) {
		fd = memfd_create("fuzz.part", 0);
		if (fd < 0)
			abort();
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	}
	if (ftruncate(fd, 0) < 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
		abort();
	/* the text repair check before a merge reads the same header */
	const char *paths[] = { path };
	check_status(bn_vocab_check_parts_text_repair(paths, 1, &err), &err);
	if (bn_vocab_counter_new(&c, NULL, 0, NULL, 0, 64 << 20, 1, &err) != BN_OK)
		abort();
	int rc = bn_vocab_counter_merge_part(c, path, &err);
	check_status(rc, &err);
	if (rc == BN_OK) {
		/*
		 * The same part again: refused when its inputs carry identities (version 2: they are
		 * already counted); otherwise (same fields and filters) it must merge, and every
		 * count doubles.
		 */
		size_t n = bn_vocab_counter_field_count(c);
		uint64_t *occ = calloc(n + 1, sizeof(*occ)), *distinct = calloc(n + 1, sizeof(*distinct));
		if (!occ || !distinct)
			abort();
		for (size_t i = 0; i < n; i++) {
			occ[i] = bn_vocab_counter_occurrences(c, i);
			distinct[i] = bn_vocab_counter_distinct(c, i);
		}
		uint64_t rows = bn_vocab_counter_rows_scanned(c);
		rc = bn_vocab_counter_merge_part(c, path, &err);
		check_status(rc, &err);
		if (rc == BN_EUSAGE && !strstr(err.message, "is already counted")) {
			fprintf(stderr, "fuzz_part: merging a part twice failed otherwise: '%s'\n", err.message);
			abort();
		}
		if (rc == BN_OK) {
			for (size_t i = 0; i < n; i++)
				if (bn_vocab_counter_occurrences(c, i) != 2 * occ[i] ||
				    bn_vocab_counter_distinct(c, i) != distinct[i]) {
					fprintf(stderr, "fuzz_part: merging a part twice did not double field %zu\n", i);
					abort();
				}
			if (bn_vocab_counter_rows_scanned(c) != 2 * rows) {
				fprintf(stderr, "fuzz_part: rows scanned did not double\n");
				abort();
			}
		}
		free(occ);
		free(distinct);
	}
	bn_vocab_counter_free(c);
	return 0;
}
