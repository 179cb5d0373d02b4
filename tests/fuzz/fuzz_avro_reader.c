/* fuzz_avro_reader.c - libFuzzer target: arbitrary bytes as an Avro container through the vocab builder's block reader and record decoder. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bidnorm/error.h"
#include "vocab/avro_reader.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Fields of the default output schema the vocabulary builder reads (string, array of string, int). */
static const char *const names[] = { "app_bundle", "installed_apps", "click", "event_id" };

static void decode_blocks(bn_avro_reader *r, bn_avro_decoder *d, size_t n)
{
	bn_avro_value values[sizeof(names) / sizeof(names[0])];
	const char *block, *p, *end;
	size_t size;
	uint64_t count;
	bn_error err;
	int rc;

	while ((rc = bn_avro_reader_next_block(r, &block, &size, &count, &err)) > 0) {
		if (!d)
			continue;
		p = block;
		end = block + size;
		for (uint64_t i = 0; i < count; i++) {
			memset(values, 0, sizeof(values));
			if (bn_avro_decode_record(d, &p, end, values, &err) != BN_OK)
				break;
			if (p > end) {
				fprintf(stderr, "fuzz_avro_reader: decoder read past the block\n");
				abort();
			}
			for (size_t k = 0; k < n; k++)
				if (bn_avro_decoder_kind(d, k) == BN_AVRO_KIND_STRING && !values[k].is_null &&
				    values[k].str.n && !values[k].str.p) {
					fprintf(stderr, "fuzz_avro_reader: string without data\n");
					abort();
				}
		}
	}
	if (rc < 0 && rc != BN_ECORRUPT && rc != BN_ENOMEM) {
		fprintf(stderr, "fuzz_avro_reader: unexpected status %d: %s\n", rc, err.message);
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	static char path[64];
	bn_avro_reader *r = NULL;
	bn_avro_decoder *d = NULL;
	bn_error err;
	size_t n = sizeof(names) / sizeof(names[0]);

	/* The reader maps a path: give it an in-memory file, rewritten for every input. */
	if (fd < 0) {
		fd = memfd_create("fuzz.avro", 0);
		if (fd < 0)
			abort();
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	}
	if (ftruncate(fd, 0) < 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
		abort();
	if (bn_avro_reader_open(&r, path, &err) < 0)
		return 0;
	if (bn_avro_decoder_new(&d, bn_avro_reader_schema(r), "fuzz.avro", names, n, &err) < 0) {
		n = 1;
		if (bn_avro_decoder_new(&d, bn_avro_reader_schema(r), "fuzz.avro", names, n, &err) < 0)
			d = NULL;
	}
	decode_blocks(r, d, d ? n : 0);
	bn_avro_decoder_free(d);
	bn_avro_reader_free(r);
	return 0;
}
