/* timestamp.h - parsing event times: RFC 3339 / ISO-8601 text or epoch numbers, to Unix milliseconds. */
#ifndef BN_RECORD_TIMESTAMP_H
#define BN_RECORD_TIMESTAMP_H

#include <stddef.h>
#include <stdint.h>

/*
 * Text: "YYYY-MM-DDTHH:MM:SS[.fraction]" followed by "Z" or "+HH:MM"/"-HH:MM"
 * ("t"/" " accepted for "T", "z" for "Z", "+HHMM" and "+HH" accepted), a
 * fraction of 1 to 9 digits (truncated to milliseconds, toward negative
 * infinity), calendar checked (month lengths, leap years; second 60 is
 * rejected). Or a numeric string: epoch seconds when |value| < 1e11, else
 * epoch milliseconds; a fraction is allowed ("1700000000.5").
 * Returns 0 and *out_ms, or -1 when the text is neither.
 */
int bn_timestamp_parse_text(const char *s, size_t len, int64_t *out_ms);

/* An epoch number (JSON number token text): seconds below 1e11, else milliseconds. */
int bn_timestamp_from_number(const char *s, size_t len, int64_t *out_ms);

#endif
