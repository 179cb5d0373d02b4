/* dir.h - the fields of a vocabulary directory, shared by `vocab lint`/`diff` and the serving model loader. */
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

#endif
