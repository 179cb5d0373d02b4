/* jsonw.h - writing JSON text (reject lines, stats, header metadata) into a bn_buf. */
#ifndef BN_UTIL_JSONW_H
#define BN_UTIL_JSONW_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

/* A JSON string literal for s[0..n). Bytes that are not valid UTF-8 become U+FFFD. Returns 0 or -1 (no memory). */
int bn_jsonw_string(bn_buf *b, const char *s, size_t n);

/* Same for a NUL-terminated string; NULL writes null. */
int bn_jsonw_cstr(bn_buf *b, const char *s);

int bn_jsonw_u64(bn_buf *b, uint64_t v);

/* A finite double with enough digits to round-trip; non-finite values write null. */
int bn_jsonw_double(bn_buf *b, double v);

/* Raw text (punctuation, keys known to need no escaping). */
int bn_jsonw_raw(bn_buf *b, const char *s);

/* "key": - a key followed by a colon, preceded by a comma unless *first (which it clears). */
int bn_jsonw_key(bn_buf *b, const char *key, int *first);

#endif
