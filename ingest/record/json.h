/* json.h - a strict, allocation-free JSON tokenizer for one line, behind the one interface the record stage uses. */
#ifndef BN_RECORD_JSON_H
#define BN_RECORD_JSON_H

#include <stddef.h>
#include <stdint.h>

/*
 * bn_json_parse() checks one JSON text against RFC 8259 (strictly: no
 * trailing commas, no comments, no leading zeros, no raw control characters
 * in strings, valid escapes, exactly one value with only whitespace around
 * it) and fills a flat token array in document order:
 *
 *     {"a":1,"b":[true,"x"]}
 *     0 OBJECT size=2   1 STRING a   2 NUMBER 1   3 STRING b
 *     4 ARRAY size=2    5 TRUE       6 STRING x
 *
 * An object's tokens are key, value, key, value...; tokens[i].next is the
 * index just past token i and everything inside it, so a value is skipped
 * in O(1). Nothing is unescaped or converted during parsing: callers decode
 * only the strings and numbers they need (bn_json_unescape,
 * bn_json_number_*). The token array belongs to the parser and grows (never
 * shrinks) to the largest document seen, so steady state allocates nothing.
 */

typedef enum bn_json_type {
	BN_JSON_OBJECT = 1,
	BN_JSON_ARRAY,
	BN_JSON_STRING,
	BN_JSON_NUMBER,
	BN_JSON_TRUE,
	BN_JSON_FALSE,
	BN_JSON_NULL
} bn_json_type;

typedef struct bn_json_token {
	uint8_t type;        /* bn_json_type */
	uint8_t escaped;     /* STRING: contains at least one backslash escape */
	uint8_t ascii;       /* STRING: every byte < 0x80 (and no \u escape above 0x7F) */
	uint32_t start;      /* STRING: first byte after the opening quote; others: first byte */
	uint32_t len;        /* STRING: bytes between the quotes (raw, still escaped); NUMBER/literals: text length;
	                        OBJECT/ARRAY: bytes from the opening to the closing bracket inclusive */
	uint32_t size;       /* OBJECT: number of members; ARRAY: number of elements */
	uint32_t next;       /* index of the first token after this value (children included) */
} bn_json_token;

typedef struct bn_json_parser bn_json_parser;

/* max_depth: deepest nesting accepted (0 = 512). Returns 0 or -1 (out of memory). */
int bn_json_parser_new(bn_json_parser **out, unsigned max_depth);
void bn_json_parser_free(bn_json_parser *p);

/*
 * Strings are scanned 16 bytes at a time with SSE2 where the compiler targets
 * it (baseline on x86_64), else 8 at a time in a 64-bit word. on != 0 makes
 * p take the portable word scan everywhere: the tests and the fuzz target
 * compare the two, which must agree on every token, column and message.
 */
void bn_json_parser_set_portable(bn_json_parser *p, int on);

typedef enum bn_json_status {
	BN_JSON_OK = 0,
	BN_JSON_EINVAL = -1, /* not valid JSON: column and message say where and why */
	BN_JSON_EDEPTH = -2, /* nested deeper than max_depth */
	BN_JSON_ENOMEM = -3
} bn_json_status;

typedef struct bn_json_result {
	const bn_json_token *tokens; /* owned by the parser, valid until the next parse */
	size_t count;
	uint32_t column;             /* on error: 1-based byte column of the offending byte */
	const char *message;         /* on error: e.g. "expected ':' after object key"; static or owned
	                                by the parser ("unexpected character 'x'"), valid until the next parse */
} bn_json_result;

/*
 * Parse text[0..len). Returns a bn_json_status; fills *res either way (count
 * is 0 on error). len must be below UINT32_MAX ("document too large",
 * column 0), so that every column, len+1 included, fits in 32 bits.
 */
int bn_json_parse(bn_json_parser *p, const char *text, size_t len, bn_json_result *res);

/*
 * Decode the escapes of a STRING token's raw bytes src[0..len) into out
 * (which must hold at least len bytes; the result is never longer). \uXXXX
 * becomes UTF-8, surrogate pairs combine, a lone surrogate becomes U+FFFD,
 * \u0000 becomes the byte 0. Returns the decoded length.
 */
size_t bn_json_unescape(const char *src, size_t len, char *out);

/* A number split into its parts, so that conversions can stay exact (no rounding through double). */
typedef struct bn_json_number {
	int negative;
	const char *int_digits;   /* the integer part's digits (at least one) */
	size_t n_int;
	const char *frac_digits;  /* the fraction's digits (n_frac may be 0) */
	size_t n_frac;
	int64_t exp;              /* the exponent, saturated at +-100000000 */
} bn_json_number;

/*
 * Split text[0..len) by the RFC 8259 number grammar
 * (-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?). Returns 0, or -1 when the
 * text is not exactly one number. The parts point into text.
 */
int bn_json_number_split(bn_json_number *out, const char *text, size_t len);

/* Digit k (0-based) of num's integer digits followed by its fraction digits. */
static inline int bn_json_number_digit(const bn_json_number *num, size_t k)
{
	return k < num->n_int ? num->int_digits[k] - '0' : num->frac_digits[k - num->n_int] - '0';
}

/*
 * The significant digits of num: *first and *last index its first and last
 * nonzero digit, and |value| = digits[first..last] * 10^(*scale). Returns 0
 * when the value is zero (outputs unset), 1 otherwise.
 */
int bn_json_number_significant(const bn_json_number *num, size_t *first, size_t *last, int64_t *scale);

/*
 * NUMBER token text to a value. _int64 succeeds (returns 0) only for an
 * integral value within int64 range, including forms like 1.0, 1e3 and -0;
 * otherwise returns -1. _double returns 0 and the nearest double, or -1 when
 * the value is not finite (1e999) or, rarely, when a number of 128 bytes or
 * more needs the slow path (more than 15 significant digits or an exponent
 * beyond +-22). Neither reads past len nor depends on the C locale; *out is
 * written only on success.
 */
int bn_json_number_int64(const char *text, size_t len, int64_t *out);
int bn_json_number_double(const char *text, size_t len, double *out);

#endif
