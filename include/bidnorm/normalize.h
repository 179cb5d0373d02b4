/* bidnorm/normalize.h - the normalizer: raw JSON lines or single values through the rules, per thread. */
#ifndef BIDNORM_NORMALIZE_H
#define BIDNORM_NORMALIZE_H

#include <stddef.h>

#include "bidnorm/error.h"
#include "bidnorm/rules.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * A bn_normalizer is the per-thread scratch state for one bn_rules: parser
 * tokens, regex match data, work buffers. It is not shared between threads;
 * the rules it points to are (and must outlive it). After warm-up no call
 * allocates.
 */
typedef struct bn_normalizer bn_normalizer;

/* Returns BN_OK or BN_ENOMEM. *out is owned by the caller. */
int bn_normalizer_new(bn_normalizer **out, const bn_rules *rules, bn_error *err);

/* Accepts NULL. */
void bn_normalizer_free(bn_normalizer *n);

/*
 * The version of the `text` step's repair (mojibake, NFKC, invisibles,
 * whitespace): it changes whenever the same input can give another value,
 * even with the same rule file. Ingest writes it into the Avro header as
 * "bidnorm.text_repair" and `vocab` refuses to mix inputs of different
 * versions; files without the key were written by version "1". The vocab
 * manifest records it, and bn_model_load refuses a vocabulary of another
 * version.
 */
const char *bn_text_repair_version(void);

/*
 * Called after each step of a chain by bn_normalize_value when tracing; after
 * a `text` step of a value that is not ASCII, once more with step "text.why"
 * and, as the value, why the step repaired mojibake as it did or left the
 * value alone (the reading chosen and the badness before and after).
 */
typedef void (*bn_trace_fn)(void *ctx, const char *step, const char *value, size_t size, int is_null);

/*
 * Normalize one string value as output field `field` would be (for array
 * fields: one element). *out / *out_size: the result, owned by n, valid
 * until the next call; *is_null set when the chain yields null.
 * trace may be NULL. Returns BN_OK, BN_EUSAGE (no such field, or not a
 * string field), BN_EREJECT (a validate step rejects it), BN_ENOMEM.
 */
int bn_normalize_value(bn_normalizer *n, const char *field, const char *in, size_t size,
		       const char **out, size_t *out_size, int *is_null,
		       bn_trace_fn trace, void *trace_ctx, bn_error *err);

/*
 * Read one source value as field `field` would read it in a record, for any
 * field but ratios (for array and map fields: one element or value), and
 * give the result as JSON text: a string, a number (timestamp-millis as epoch
 * milliseconds), true/false, or null. in[0..size) is read as JSON when it is
 * a JSON scalar (1763640000, true, "x", null), otherwise as the text of a
 * string (2026-11-20T12:00:00Z), so time and number parsing can be tried.
 * *out (NUL-terminated) is owned by n, valid until the next call. Returns
 * BN_OK; BN_EREJECT (the value cannot be converted, or is outside the
 * field's range: a record would get null, the default or be rejected;
 * err->message says why, err->field names the field); BN_EUSAGE ("no field
 * 'x' in the rules", "a ratio field is computed from two source values, not
 * one"); BN_ENOMEM. String values go through the field's chain; use
 * bn_normalize_value to trace it.
 */
int bn_normalize_json_value(bn_normalizer *n, const char *field, const char *in, size_t size, const char **out,
			    size_t *out_size, bn_error *err);

#ifdef __cplusplus
}
#endif
#endif
