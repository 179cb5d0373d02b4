/* dir.h - the fields and manifest of a vocabulary directory, shared by `vocab lint`/`diff` and the serving model loader. */
#ifndef BN_VOCAB_DIR_H
#define BN_VOCAB_DIR_H

#include <stddef.h>

#include "bidnorm/error.h"

/*
 * The field names of dir: every F for which dir/F.txt exists (dot files left out), sorted by
 * strcmp. *out is malloc'ed with each name; free with bn_vocab_names_free(*out, *n).
 * Returns BN_OK, BN_EIO ("cannot open the vocabulary directory: ...", err->source = dir), BN_ENOMEM.
 */
int bn_vocab_dir_fields(char ***out, size_t *n, const char *dir, bn_error *err);

/* Free names[0..n) and the array. Accepts NULL. */
void bn_vocab_names_free(char **names, size_t n);

/*
 * The value at keys[0..nkeys) (members of nested objects, outermost first) of dir/manifest.json.
 * *found: 0 when dir has no manifest.json, 1 when it has one without that value, 2 when found;
 * then *type is its bn_json_type and *out a malloc'ed, NUL-terminated copy (a string unescaped,
 * anything else its JSON text; the caller frees it), else *out is NULL. Returns BN_OK, BN_EIO
 * (unreadable), BN_ECORRUPT ("not a JSON object", err->source = the manifest), BN_ENOMEM.
 */
int bn_vocab_manifest_value(char **out, int *type, int *found, const char *dir, const char *const *keys, size_t nkeys,
			    bn_error *err);

/*
 * The string at top-level key of dir/manifest.json, as bn_vocab_manifest_value (*found, *out
 * malloc'ed or NULL when absent); a value that is not a string is BN_ECORRUPT "KEY is not a
 * string" with err->source the manifest.
 */
int bn_vocab_manifest_string(char **out, int *found, const char *dir, const char *key, bn_error *err);

#endif
