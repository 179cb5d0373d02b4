/* fuzz_source.c - libFuzzer target: arbitrary bytes (plain, zstd frames, gzip members, refused formats) through bn_source, checking every line. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bidnorm/source.h"
#include "source/utf8_repair.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, const bn_line *l)
{
	fprintf(stderr, "fuzz_source: %s (line %llu, offset %llu, size %zu, raw_size %llu, too_long %d)\n", what,
		(unsigned long long)l->number, (unsigned long long)l->offset, l->size,
		(unsigned long long)l->raw_size, l->too_long);
	abort();
}

/* Read everything with one set of limits; abort when an invariant breaks. */
static void read_all(const uint8_t *data, size_t size, size_t max_line, size_t prefix)
{
	bn_source_options opts = { max_line, prefix };
	bn_source *src = NULL;
	bn_error err;
	bn_line l;
	bn_source_stats st;
	uint64_t lines = 0, repaired = 0, too_long = 0, last_no = 0, last_end = 0;
	int first = 1, rc;

	if (bn_source_open_memory(&src, data, size, "fuzz", &opts, &err) < 0)
		return;
	/* 0 means the defaults; the prefix is never longer than the limit. */
	max_line = max_line ? max_line : (size_t)1 << 20;
	prefix = prefix ? prefix : 1024;
	prefix = prefix < max_line ? prefix : max_line;
	while ((rc = bn_source_next(src, &l, &err)) > 0) {
		if (!first && l.number <= last_no)
			fail("line numbers do not increase", &l);
		if (!first && l.offset < last_end)
			fail("line starts before the end of the previous one", &l);
		if (l.too_long) {
			if (l.raw_size <= max_line || l.size > prefix)
				fail("too_long line of the wrong size", &l);
			too_long++;
		} else {
			if (l.raw_size > max_line)
				fail("line over max_line_bytes not marked too_long", &l);
			if (bn_utf8_valid_prefix(l.data, l.size) != l.size)
				fail("line is not valid UTF-8", &l);
			if (l.size < l.raw_size || l.size > BN_UTF8_REPAIR_MAX(l.raw_size))
				fail("repaired size out of range", &l);
		}
		if (l.size && memchr(l.data, '\n', l.size))
			fail("line contains LF", &l);
		first = 0;
		last_no = l.number;
		last_end = l.offset + l.raw_size + 1;
		lines++;
		repaired += l.repaired_bytes;
	}
	bn_source_get_stats(src, &st);
	if (rc == 0) {
		if (st.lines != lines || st.too_long_lines != too_long || st.repaired_bytes != repaired)
			fail("stats do not match the lines handed out", &l);
		if (!st.compressed && st.bytes_decoded != size)
			fail("plain input not decoded whole", &l);
		if (st.compressed != BN_COMPRESSION_GZIP && st.members)
			fail("gzip members counted in other input", &l);
	} else if (rc == BN_ECORRUPT && !st.compressed && lines) {
		/* Plain input fails only when its magic names a refused format: before any line. */
		fail("refused input handed out lines", &l);
	}
	if (rc < 0 && rc != BN_ECORRUPT && rc != BN_EIO && rc != BN_ENOMEM) {
		fprintf(stderr, "fuzz_source: unexpected status %d\n", rc);
		abort();
	}
	bn_source_free(src);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	read_all(data, size, 0, 0);
	/* Tiny limits so over-long lines, prefixes and window refills are exercised. */
	read_all(data, size, 16, 5);
	return 0;
}
