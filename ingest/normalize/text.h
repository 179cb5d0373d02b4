/* text.h - the `text` step: Unicode repair of one value (mojibake, NFKC, invisibles, whitespace, max bytes). */
#ifndef BN_NORMALIZE_TEXT_H
#define BN_NORMALIZE_TEXT_H

#include <stddef.h>
#include <stdint.h>

/*
 * In order: (1) mojibake repair on evidence (text_mojibake.h: UTF-8 read
 * with one of eight code pages, whole or in stretches, several layers, and
 * C1 controls for Windows-1252 punctuation); (2) NFKC (utf8proc);
 * (3) remove Cc other than whitespace and every Cf; (4) every White_Space
 * character becomes a space, runs collapse, ends trimmed; (5) truncate to
 * max_bytes at a character boundary (0 = no limit) and drop a space the cut
 * exposes. Pure-ASCII input skips (1)-(3) except removing control bytes.
 * Because a later stage can make an earlier one apply again (removing a ZWSP
 * exposes mojibake or lets NFKC compose), the stages repeat until nothing
 * changes, so repair(repair(x)) == repair(x) for every x.
 */
typedef struct bn_text_scratch bn_text_scratch;

/*
 * bn_text_repair_version() (bidnorm/normalize.h): 1 was "every character in
 * Windows-1252 and the bytes are UTF-8"; 2 is the evidence-based repair.
 * Change it with anything that changes an output of bn_text_repair.
 */
#define BN_TEXT_REPAIR_VERSION "2"

int bn_text_scratch_new(bn_text_scratch **out);
void bn_text_scratch_free(bn_text_scratch *s);

/*
 * Repair in[0..size) (valid UTF-8). *out points into in (when nothing had to
 * change) or into the scratch (valid until the next call). *effects gets
 * BN_EFFECT_* bits (chain.h). Returns 0, or -1 when out of memory.
 */
int bn_text_repair(bn_text_scratch *s, const char *in, size_t size, size_t max_bytes,
		   const char **out, size_t *out_size, uint32_t *effects);

/*
 * When on, bn_text_repair records why it repaired mojibake as it did, or left
 * the value as it was (for `normalize --trace`); off by default, it costs time.
 */
void bn_text_explain(bn_text_scratch *s, int on);

/*
 * Why the last bn_text_repair did what it did about mojibake: the readings
 * taken with the badness before and after, "left as is: ..." with the reason,
 * or "no sign of mojibake"; "" for ASCII values (never looked at) or when
 * explaining is off. Owned by s, valid until the next call.
 */
const char *bn_text_explanation(const bn_text_scratch *s);

/* Length of the longest prefix of s[0..size) of at most max bytes that ends on a UTF-8 character boundary. */
size_t bn_utf8_truncate(const char *s, size_t size, size_t max);

#endif
