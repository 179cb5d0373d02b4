/* model.h - the in-memory serving model (features, vocabulary hash tables, encoded schema), shared read-only by encoders. */
#ifndef BN_SERVE_MODEL_H
#define BN_SERVE_MODEL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "bidnorm/serve.h"
#include "rules/compiled.h"

/* One vocabulary: token -> index (1..ntokens), open addressing, immutable after load. */
typedef struct bn_vocab_table {
	char *text;            /* the file's bytes; each token NUL-terminated in place */
	const char **tokens;   /* tokens[k] = token of index k (tokens[0] unused) */
	uint32_t *lens;        /* its length */
	uint32_t *slots;       /* index, 0 = empty; size mask + 1 */
	size_t mask;
	size_t ntokens;
} bn_vocab_table;

typedef struct bn_feature {
	const bn_field *field;     /* the rules' output field */
	size_t field_index;        /* its index in rules->fields */
	bn_feature_kind kind;
	bn_number_type number_type;
	int nullable;
	bn_vocab_table vocab;      /* categorical kinds only */
} bn_feature;

struct bn_model {
	const bn_rules *rules;
	bn_feature *features;
	size_t nfeatures;
	char *schema_json;
	char vocab_sha256[65];
};

/* FNV-1a of s[0..n): the vocabulary tables' hash. */
static inline uint64_t bn_vocab_hash(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
	return h;
}

/* The index of s[0..n) in t, 0 when absent. */
static inline uint32_t bn_vocab_table_find(const bn_vocab_table *t, const char *s, size_t n)
{
	if (!t->slots)
		return 0;
	for (size_t h = (size_t)bn_vocab_hash(s, n) & t->mask; t->slots[h]; h = (h + 1) & t->mask) {
		uint32_t k = t->slots[h];
		if (t->lens[k] == n && memcmp(t->tokens[k], s, n) == 0)
			return k;
	}
	return 0;
}

#endif
