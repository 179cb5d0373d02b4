/* model.h - the in-memory serving model (features, vocabulary hash tables, encoded schema), shared read-only by encoders. */
#ifndef BN_SERVE_MODEL_H
#define BN_SERVE_MODEL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "bidnorm/serve.h"
#include "rules/compiled.h"
#include "util/hash.h"

/* One vocabulary: token -> index (1..ntokens), open addressing, immutable after load. */
typedef struct bn_vocab_table {
	char *text;            /* the file's bytes; each token NUL-terminated in place */
	const char **tokens;   /* tokens[k] = token of index k (tokens[0] unused) */
	uint32_t *lens;        /* its length */
	uint64_t *slots;       /* BN_VOCAB_SLOT(hash, index), 0 = empty; mask + 1 of them */
	size_t mask;
	size_t ntokens;
	bn_hash_key key;       /* requests carry untrusted tokens: keyed hash (util/hash.h) */
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

/* A slot: the token's index in the low 32 bits, the hash's high 32 bits above, so most misses touch no token. */
#define BN_VOCAB_SLOT(h, k) (((h) & 0xffffffff00000000ull) | (uint64_t)(k))

/* The index of s[0..n) in t, 0 when absent. */
static inline uint32_t bn_vocab_table_find(const bn_vocab_table *t, const char *s, size_t n)
{
	if (!t->slots)
		return 0;
	uint64_t h = bn_hash(t->key, s, n);
	for (size_t i = (size_t)h & t->mask; t->slots[i]; i = (i + 1) & t->mask) {
		uint64_t e = t->slots[i];
		uint32_t k = (uint32_t)e;
		if ((e >> 32) == (h >> 32) && t->lens[k] == n && memcmp(t->tokens[k], s, n) == 0)
			return k;
	}
	return 0;
}

#endif
