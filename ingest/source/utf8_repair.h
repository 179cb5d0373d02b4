/* utf8_repair.h - validating UTF-8 and repairing invalid bytes as Windows-1252 (internal to the source module). */
#ifndef BN_SOURCE_UTF8_REPAIR_H
#define BN_SOURCE_UTF8_REPAIR_H

#include <stddef.h>
#include <string.h>

/* Output bytes bn_utf8_repair may need for n input bytes (0x80 becomes U+20AC, 3 bytes). */
#define BN_UTF8_REPAIR_MAX(n) ((n) * 3)

/*
 * Length of the longest prefix of s[0..n) that is well-formed UTF-8 as in
 * Unicode Table 3-7; n when all of it is. Pure ASCII takes a fast path.
 */
size_t bn_utf8_valid_prefix(const char *s, size_t n);

/*
 * Copy s[0..n) to out, replacing each byte that is not part of a well-formed
 * UTF-8 sequence by the Windows-1252 character of that byte, UTF-8-encoded
 * (0x81, 0x8D, 0x8F, 0x90, 0x9D become U+0081...). out must have room for
 * BN_UTF8_REPAIR_MAX(n) bytes and must not overlap s. Stores the number of
 * replaced bytes in *out_replaced (may be NULL) and returns the bytes written.
 */
size_t bn_utf8_repair(char *out, size_t *out_replaced, const char *s, size_t n);

/*
 * 3 when the n bytes at s start with a UTF-8 byte order mark, else 0. A line's mark - a file
 * saved by a Windows tool, or one of several such files concatenated - is not part of its JSON
 * text (RFC 8259, 8.1, lets a parser ignore it): ingest and serving both drop it, and neither
 * counts it against limits.max_line_bytes.
 */
static inline size_t bn_utf8_bom_size(const char *s, size_t n)
{
	return n >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
}

#endif
