/* count.h - internals of vocabulary counting: the arena-backed token hash table, --where filters, counter state. */
#ifndef BN_VOCAB_COUNT_H
#define BN_VOCAB_COUNT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "bidnorm/error.h"
#include "bidnorm/vocab.h"
#include "util/arena.h"
#include "util/hash.h"
#include "vocab/avro_reader.h"

/*
 * Bytes the tables may use, shared by all tables of a counter. With a spill folder, a table that
 * would pass the limit sets spill_due instead of failing (and stops growing; its keys may pass the
 * limit by one arena chunk): at the end of the record every table is written to disk as a sorted
 * run and emptied (spill.c).
 */
typedef struct bn_vmem {
	size_t used;
	size_t peak;
	size_t limit;       /* 0 = unlimited */
	char *spill_base;   /* where the spill folder goes; NULL = no spilling: passing the limit fails */
	char *spill_dir;    /* spill_base/bidnorm-vocab-spill.XXXXXX, made on the first spill */
	int spill_due;      /* a table passed the limit: spill at the end of the record */
	int no_spill;       /* set while merging runs back: the limit is hard again */
	uint64_t runs;      /* run files written */
} bn_vmem;

/*
 * One slot: 24 bytes. key == NULL marks an empty slot. The key's length is
 * stored in the 4 bytes before it in the arena, and 32 bits of its hash in
 * the slot: probing compares hashes and touches a key (a cache miss) only
 * when they match, and growing never reads keys.
 */
typedef struct bn_ventry {
	const char *key;    /* in the table's arena, not NUL-terminated */
	uint64_t count;
	uint32_t hash;      /* low 32 bits of the table's bn_hash (the slot index comes from them) */
	uint32_t stamp;     /* last record that counted this token (array fields count once per record) */
} bn_ventry;

/* The length of a key in a table's arena (stored in the 4 bytes before it). */
static inline size_t bn_vkey_len(const char *key)
{
	uint32_t n;
	memcpy(&n, key - sizeof(n), sizeof(n));
	return n;
}

/* The length of an entry's key. */
static inline size_t bn_ventry_len(const bn_ventry *e)
{
	return bn_vkey_len(e->key);
}

/*
 * Open addressing with linear probing, power-of-two capacity, grown (by
 * rehash into a table twice the size) at 3/4 load; at most 2^32 slots. Keys are copied once, on
 * first sight, into the arena: counting a token seen before allocates
 * nothing.
 */
typedef struct bn_vtable {
	bn_ventry *slots;
	size_t cap;
	size_t n;
	uint64_t occurrences;   /* sum of counts */
	size_t key_bytes;       /* bytes of keys in the arena */
	bn_arena arena;
	bn_vmem *mem;
	const char *name;       /* field name for messages */
	bn_hash_key key;        /* tokens come from the logs: keyed hash (util/hash.h) */
	char **runs;            /* spilled runs: files of (token, count) sorted by token bytes */
	size_t nruns;
	uint64_t distinct_all;  /* distinct tokens over all runs, once they were merged */
	int unspilled;          /* runs merged (into the table, keeping only tokens with count >= min_count, or
				   into a count file, leaving the table empty): distinct_all is the count */
} bn_vtable;

/* Distinct tokens counted: the table's, or over all runs once they were merged back. */
static inline uint64_t bn_vtable_distinct(const bn_vtable *t)
{
	return t->unspilled ? t->distinct_all : t->n;
}

/* Byte order of two entries' tokens (memcmp, then shorter first): the order of runs and count files. */
static inline int bn_vtoken_cmp(const char *a, size_t an, const char *b, size_t bn)
{
	int c = memcmp(a, b, an < bn ? an : bn);
	return c ? c : (an > bn) - (an < bn);
}

/* Initial capacity 0 = 1024 slots. */
int bn_vtable_init(bn_vtable *t, bn_vmem *mem, const char *name, size_t initial_cap, bn_error *err);

/*
 * Add count to key. stamp != 0: skip when the token already has this stamp
 * (counted in this record), else set it. Returns BN_OK, BN_EUSAGE (token
 * of 4 GiB or more), BN_ENOMEM (out of memory, or over mem->limit: the
 * --max-memory message).
 */
int bn_vtable_add(bn_vtable *t, const char *key, size_t len, uint64_t count, uint32_t stamp, bn_error *err);

/* Add 1 to each of tokens[0..n) with stamp, hashing and prefetching a group of them before the lookups. */
int bn_vtable_add_batch(bn_vtable *t, const bn_avro_span *tokens, size_t n, uint32_t stamp, bn_error *err);

/* The entry of key, or NULL. */
const bn_ventry *bn_vtable_find(const bn_vtable *t, const char *key, size_t len);

/* Empty the table, giving its token storage back (its slots stay). */
void bn_vtable_reset(bn_vtable *t);

/* Reset every stamp to 0 (when the stamp counter wraps). */
void bn_vtable_clear_stamps(bn_vtable *t);

void bn_vtable_free(bn_vtable *t);

/* ---- sorting entries (vsort.c) ---- */

/*
 * An entry copied out of its slot with its sort key inline: major, then the token's first 16 bytes
 * (big-endian, zero-padded). Sorting and the loops after it then never touch the scattered slots.
 */
typedef struct bn_vsort_item {
	uint64_t k[3];
	const char *key;    /* in the table's arena: bn_vkey_len(key) bytes */
	uint64_t count;
} bn_vsort_item;

/* Fill it for e: major 0 sorts by token bytes alone; UINT64_MAX - count puts higher counts first. */
void bn_vsort_item_set(bn_vsort_item *it, uint64_t major, const bn_ventry *e);

/* Sort a[0..n) by major, then by token bytes (bn_vtoken_cmp). O(n log n) worst case. */
void bn_vsort(bn_vsort_item *a, size_t n);

/* ---- spilling (spill.c) ---- */

/* Write every non-empty table of tables[0..n) to a new run and empty it; clears m->spill_due. BN_EIO, BN_ENOMEM. */
int bn_vmem_spill(bn_vmem *m, bn_vtable *tables, size_t n, bn_error *err);

/*
 * Merge t's runs (and what the table holds) back into t, keeping only tokens counted at least
 * min_count times (the rest cannot be in a vocabulary) and noting distinct_all. With no runs,
 * nothing happens. BN_ENOMEM with the --max-memory message when the kept tokens alone pass the
 * limit; BN_EIO, BN_ECORRUPT (a run file changed under us).
 */
int bn_vtable_unspill(bn_vtable *t, uint64_t min_count, bn_error *err);

/* Streams the union of t's runs and its table in token order, counts summed (for count files). */
typedef struct bn_vrun_merge bn_vrun_merge;

/* Spills what t still holds, then opens its runs. *out NULL and BN_OK when t has no runs. */
int bn_vrun_merge_open(bn_vrun_merge **out, bn_vtable *t, bn_vmem *m, bn_error *err);

/* The next token: 1 (token valid until the next call), 0 at the end, or < 0 (BN_EIO, BN_ECORRUPT, BN_ENOMEM). */
int bn_vrun_merge_next(bn_vrun_merge *g, const char **token, size_t *len, uint64_t *count, bn_error *err);

/* Start again from the first token. BN_OK or BN_EIO. */
int bn_vrun_merge_rewind(bn_vrun_merge *g, bn_error *err);

void bn_vrun_merge_free(bn_vrun_merge *g);

/* Delete t's run files. */
void bn_vtable_drop_runs(bn_vtable *t);

/* Remove the spill folder (after every table dropped its runs) and free the spill settings. */
void bn_vmem_free(bn_vmem *m);


/* ---- --where ---- */

typedef enum bn_where_op {
	BN_WHERE_EQ, BN_WHERE_NE, BN_WHERE_NOTNULL,
	BN_WHERE_LT, BN_WHERE_LE, BN_WHERE_GT, BN_WHERE_GE  /* ordering: numbers only (int, long, timestamp-millis) */
} bn_where_op;

typedef struct bn_where {
	char *text;        /* as given */
	char *field;
	const char *given; /* the value as given: points into text */
	char *value;       /* the value compared with (after bn_vocab_counter_resolve_where, the field's form) */
	size_t value_len;
	int64_t num;       /* value as a decimal integer, when has_num */
	int has_num;
	bn_where_op op;
} bn_where;

/* Whether op orders (<, <=, >, >=): such filters need an integer value and an int, long or timestamp field. */
int bn_where_orders(bn_where_op op);

/*
 * Parse "F=V", "F!=V", "F<V", "F<=V", "F>V", "F>=V" or "F". BN_EUSAGE
 * "--where 'x': expected FIELD, or FIELD then =, !=, <, <=, > or >= and a VALUE", BN_ENOMEM.
 */
int bn_where_parse(bn_where *out, const char *text, bn_error *err);

/* Does v (of kind) satisfy w? */
int bn_where_match(const bn_where *w, bn_avro_kind kind, const bn_avro_value *v);

void bn_where_free(bn_where *w);

/* ---- the counter (shared with vocab.c) ---- */

/* An Avro file's identity (bn_avro_reader_identity): equal only for byte-identical files. */
#define BN_VINPUT_ID_SIZE BN_AVRO_IDENTITY_SIZE

typedef struct bn_vinput {
	char *path;                /* the name recorded: the path given, or --source-name */
	unsigned char id[BN_VINPUT_ID_SIZE];
	int has_id;                /* 0 for inputs of a version-1 part, which carried no identity */
	char *rules_sha256;
	char *version;
	char *text_repair;      /* the text step's repair version (bidnorm.text_repair; "1" before it was recorded) */
	uint64_t rows_scanned;
	uint64_t rows_matched;
} bn_vinput;

struct bn_vocab_counter {
	size_t nfields;
	char **fields;
	bn_vtable *tables;
	size_t nwhere;
	bn_where *where;
	bn_vmem mem;
	uint64_t rows_scanned;
	uint64_t rows_matched;
	uint32_t stamp;
	int allow_mixed_rules;
	bn_vinput *inputs;
	size_t ninputs, cap_inputs;
};

/* Sort the inputs by name, then identity: parts and manifests list them so, whatever the order of counting. */
void bn_vcounter_sort_inputs(bn_vocab_counter *c);

#endif
