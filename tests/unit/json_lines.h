/* json_lines.h - test JSON lines written with single quotes for JSON's double quotes, so tables stay readable. */
#ifndef BN_TEST_JSON_LINES_H
#define BN_TEST_JSON_LINES_H

#include <criterion/criterion.h>
#include <stddef.h>

/*
 * s with every single quote made a double quote (a JSON string that needs
 * an apostrophe writes \u0027). Returns a static copy of up to 1 MiB, valid
 * until the next call; *len is its length.
 */
static inline const char *jq(const char *s, size_t *len)
{
	static char line_buf[1 << 20];
	size_t i;
	for (i = 0; s[i]; i++) {
		cr_assert_lt(i, sizeof(line_buf) - 1);
		line_buf[i] = s[i] == '\'' ? '"' : s[i];
	}
	line_buf[i] = '\0';
	*len = i;
	return line_buf;
}

#endif
