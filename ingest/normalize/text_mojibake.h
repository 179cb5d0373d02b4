/* text_mojibake.h - evidence-based mojibake repair: UTF-8 that was read with a single-byte code page, whole or in stretches. */
#ifndef BN_NORMALIZE_TEXT_MOJIBAKE_H
#define BN_NORMALIZE_TEXT_MOJIBAKE_H

#include <stddef.h>
#include <stdint.h>

/*
 * A value is changed only when it shows signs of mojibake (its "badness":
 * the number of character sequences that real text in any language almost
 * never contains and mojibake almost always does, such as an accented small
 * letter followed by a currency sign, or a C1 control) and a reading of it
 * lowers that badness. Readings tried, in order, each repeated while it
 * applies (several layers):
 *   1. the whole value as UTF-8 that a code page decoded: Latin-1,
 *      Windows-1252, -1251, -1250, -1257 (sloppy: undefined bytes kept as C1
 *      controls), ISO-8859-2, MacRoman, cp437; with no-break spaces that
 *      became spaces restored where only they make the UTF-8 valid, and
 *      sequences that lost a byte (to U+FFFD or '?') marked as U+FFFD;
 *   2. stretches of such mojibake inside otherwise correct text, each
 *      repaired on its own when it shows badness by itself;
 *   3. C1 controls standing for the Windows-1252 punctuation of the same
 *      byte (U+0084 -> „).
 * One bn_mojibake per thread; nothing is allocated once its buffers have
 * grown to the longest value.
 */
typedef struct bn_mojibake bn_mojibake;

/* Returns 0 or -1 (out of memory). */
int bn_mojibake_new(bn_mojibake **out);

/* Accepts NULL. */
void bn_mojibake_free(bn_mojibake *m);

/*
 * Repair in[0..size) (valid UTF-8). Returns 1 when it changed (*out / *out_size
 * then point into m, valid until the next call), 0 when it is left as it is,
 * -1 when out of memory.
 */
int bn_mojibake_fix(bn_mojibake *m, const char *in, size_t size, const char **out, size_t *out_size);

/*
 * When on, bn_mojibake_fix appends to m's explanation why it chose what it did
 * (the reading and the badness before and after, or why it left the value).
 * Off by default: the explanation costs time.
 */
void bn_mojibake_explain(bn_mojibake *m, int on);

/* Start a new, empty explanation. */
void bn_mojibake_explain_reset(bn_mojibake *m);

/* The explanation so far, NUL-terminated ("" when none); owned by m. */
const char *bn_mojibake_explanation(const bn_mojibake *m);

/* The badness of in[0..size) (valid UTF-8): 0 for text with no sign of mojibake. Returns -1 when out of memory. */
long bn_mojibake_badness(bn_mojibake *m, const char *in, size_t size);

/*
 * Decode one strict UTF-8 character at s[*i]; returns it and advances *i, or
 * returns -1 and advances by one byte when the bytes are not valid UTF-8
 * (overlong forms, surrogates and values above U+10FFFF included).
 */
int32_t bn_utf8_next(const unsigned char *s, size_t n, size_t *i);

#endif
