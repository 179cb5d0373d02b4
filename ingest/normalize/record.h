/* record.h - one normalized record as typed values, the per-thread normalizer internals and its counters. */
#ifndef BN_NORMALIZE_RECORD_H
#define BN_NORMALIZE_RECORD_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "bidnorm/error.h"
#include "bidnorm/normalize.h"
#include "normalize/cache.h"
#include "normalize/chain.h"
#include "record/json.h"
#include "rules/compiled.h"
#include "util/arena.h"
#include "util/buf.h"
#include "util/hash.h"

/* One scalar value. Strings are valid UTF-8 and live in the line or the record arena. */
typedef struct bn_val {
	int is_null;
	int64_t i;          /* INT, LONG, TIMESTAMP_MS, BOOLEAN */
	double d;           /* DOUBLE */
	const char *s;      /* STRING */
	size_t n;
} bn_val;

/* The value of one output field: a scalar, or a range of rec->items (and rec->keys for maps). */
typedef struct bn_fieldval {
	bn_val v;
	size_t first;
	size_t count;
} bn_fieldval;

typedef struct bn_record {
	bn_fieldval *fields;    /* one per rules->fields, in schema order */
	bn_val *items;          /* elements of arrays and values of maps */
	bn_val *keys;           /* map keys, parallel to items (unused for arrays) */
	size_t nitems;
	size_t cap_items;
	bn_arena arena;         /* strings that are not in the line */
} bn_record;

/* Counters for one output field, summed over records. */
typedef struct bn_field_stats {
	uint64_t present;        /* the source value was there and not JSON null */
	uint64_t nulls;          /* written as null (optional scalars) */
	uint64_t coerced;        /* converted from another JSON type (e.g. "0.35" -> 0.35) */
	uint64_t failures;       /* value could not be coerced (-> null, default, dropped or reject) */
	uint64_t out_of_range;   /* of those, values outside the field's range */
	uint64_t defaulted;      /* the default value (or ratio invalid value) was used */
	uint64_t items_in;       /* array/map: elements seen */
	uint64_t items_dropped;  /* array/map: elements dropped (null, invalid, duplicate) */
	uint64_t items_truncated;/* array: elements beyond max_items */
	uint64_t keys_stripped;  /* map: serving-invalid keys dropped */
	uint64_t effects[BN_EFFECT_KINDS];
} bn_field_stats;

/* A serving-invalid key seen in the input: where (parent path node), which key, which rule, how often. */
typedef struct bn_invalid_seen {
	uint32_t node;          /* plan node of the object holding the key */
	uint32_t rule;          /* index into rules->invalid, or UINT32_MAX = not serving-invalid */
	uint64_t count;
	uint64_t hash;
	char *key;
	size_t key_len;
} bn_invalid_seen;

/*
 * Node of the path trie built from every source path the rules read. Node 0
 * is the line's object, node 1 the current row's element (rules with rows).
 * A child is an object member (KEY), one array element (INDEX) or every
 * element (ALL).
 */
typedef struct bn_plan_node {
	const char *name;       /* KEY */
	size_t len;
	uint32_t index;         /* INDEX */
	uint8_t kind;           /* bn_path_kind: KEY, INDEX or ALL */
	uint8_t multi;          /* below an ALL node: its slot is a list of matches */
	uint8_t has_keys;       /* some child is a KEY: look into objects */
	uint8_t has_elems;      /* some child is an INDEX or ALL: look into arrays */
	int32_t parent;
	int32_t first_child;
	int32_t next_sibling;
	int32_t slot;           /* index into the slot array when a path ends here, else -1 */
	uint64_t prefix;        /* KEY: bn_key_prefix of the name */
	uint64_t suffix;        /* KEY longer than 8 bytes: its last 8 bytes */
	uint32_t keytab;        /* has_keys: its KEY children's table starts at n->keytab[keytab] */
	uint32_t keytab_mask;   /* has_keys: table size - 1 (a power of two) */
} bn_plan_node;

/*
 * The first 8 bytes of a key, zero-padded, as one word: nearly every key the
 * rules read differs from the others there, so a lookup compares a word and a
 * length, and only longer keys compare their tail. Reads s[0..len) only.
 */
static inline uint64_t bn_key_prefix(const char *s, size_t len)
{
	uint64_t a = 0, b = 0;
	if (len >= 8) {
		memcpy(&a, s, 8);
		return a;
	}
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	if (len >= 4) {
		uint32_t lo, hi;
		memcpy(&lo, s, 4);
		memcpy(&hi, s + len - 4, 4);
		/* the overlapping bytes are equal, so OR joins the two halves */
		a = lo;
		b = (uint64_t)hi << (8 * (len - 4));
		return a | b;
	}
#endif
	(void)b;
	for (size_t i = 0; i < len; i++)
		a |= (uint64_t)(unsigned char)s[i] << (8 * i);
	return a;
}

/* The last 8 bytes of a key longer than 8 bytes, else 0. */
static inline uint64_t bn_key_suffix(const char *s, size_t len)
{
	uint64_t w = 0;
	if (len > 8)
		memcpy(&w, s + len - 8, 8);
	return w;
}

/* Slot of a key in a node's table (mask = table size - 1); the table is fixed, so probes are bounded by its size. */
static inline uint32_t bn_key_slot(uint64_t prefix, size_t len, uint32_t mask)
{
	uint64_t h = (prefix ^ ((uint64_t)len << 56)) * 0x9E3779B97F4A7C15ULL;
	return (uint32_t)(h >> 40) & mask;
}

/* The plan node a row path starts from (node 0 is the line's object). */
#define ROW_ROOT 1

/* The matches of a wildcard path, as token indexes, in document order. */
typedef struct bn_toklist {
	uint32_t *v;
	size_t n, cap;
} bn_toklist;

/* Cache lookups of one row prefetched together; a row with more looks the rest up one by one. */
#define BN_PREFETCH_MAX 64

struct bn_normalizer {
	const bn_rules *rules;
	struct bn_json_parser *json;
	bn_chain_scratch *chain;
	bn_plan_node *nodes;
	size_t nnodes;
	int32_t *keytab;         /* per node with KEY children: open-addressing table of them (-1 = empty) */
	uint32_t *slots;         /* per slot: token index + 1 of the value found, 0 = absent */
	bn_toklist *lists;       /* per slot: the matches of a wildcard path (multi nodes only) */
	size_t nslots;
	size_t row_slot_first;   /* slots from here on belong to row paths: cleared for every row */
	uint32_t *node_obj;      /* per node: 1 + token of the object it was last matched in (duplicate keys) */
	uint32_t *node_val;      /* per node: token of the value it last matched */
	int32_t rows_slot;       /* slot of the rows array, or -1 */
	int32_t *src_first;      /* per field: its sources' slots are src_slot[src_first[f] ..] */
	int32_t *src_count;
	int32_t *src_slot;
	int32_t *field_slot;     /* per field: slot of source (or numerator for ratios) */
	int32_t *den_slot;       /* per field: slot of the ratio denominator, or -1 */
	int32_t *slot_node;      /* per slot: the plan node whose value it holds (map keys are counted by node) */
	bn_record rec;
	/* the line being normalized (bn_normalize_parse), which its rows read */
	const char *line;
	const bn_json_token *toks;
	bn_toklist row_toks;     /* token of each row element */
	size_t row;              /* the current row */
	int oom;                 /* a wildcard list could not grow during the walk */
	bn_buf tmp;              /* small scratch: key unescaping, number text */
	bn_field_stats *stats;   /* per field */
	bn_invalid_seen *seen;   /* open-addressing table of keys checked against serving_invalid */
	size_t seen_cap;
	size_t seen_count;
	bn_hash_key hkey;        /* keys the seen table and the per-record de-duplication (util/hash.h) */
	bn_value_cache *cache;   /* chain results of repeating values */
	uint64_t *cache_tries;   /* per field: cache lookups */
	uint64_t *cache_hits;    /* per field: cache hits */
	/* The cache lookups of the current row, hashed and prefetched before the fields are
	 * read (extract.c: prefetch_values); a lookup takes its hash from here by pointer. */
	struct { const char *s; const bn_chain *chain; uint64_t h; } ahead[BN_PREFETCH_MAX];
	size_t nahead, next_ahead;
	pcre2_match_data *match; /* for serving_invalid key patterns */
	pcre2_match_context *match_ctx;
	bn_buf out_json;         /* bn_normalize_json_value result */
	char *value_out;         /* bn_normalize_value result copy */
	size_t value_out_cap;
};

/*
 * Parse one JSON line and find the values the rules read; *nrows = the number
 * of records it makes (1 for rules without 'rows'). The line must stay valid
 * while its rows are normalized. Returns BN_OK, BN_EREJECT for the whole line
 * (err has reason, column and message; line/source are the caller's to set),
 * or BN_ENOMEM.
 */
int bn_normalize_parse(bn_normalizer *n, const char *line, size_t size, size_t *nrows, bn_error *err);

/*
 * Normalize row `row` (< *nrows) of the line last parsed into n->rec.
 * Returns BN_OK, BN_EREJECT (err has reason, field and message) or BN_ENOMEM.
 */
int bn_normalize_row(bn_normalizer *n, size_t row, bn_error *err);

/* bn_normalize_parse, then bn_normalize_row(0): the one record of rules without 'rows'. */
int bn_normalize_line(bn_normalizer *n, const char *line, size_t size, bn_error *err);

/* Make room for one more element in rec->items and rec->keys. BN_OK or BN_ENOMEM. */
int bn_record_grow_items(bn_record *rec);

/* Append the Avro binary encoding of n->rec to out. Returns BN_OK or BN_ENOMEM. */
int bn_record_encode(const bn_normalizer *n, bn_buf *out);

/* The dotted path of plan node i ("" for the root) into out. */
void bn_plan_node_path(const bn_normalizer *n, int32_t node, bn_buf *out);

#endif
