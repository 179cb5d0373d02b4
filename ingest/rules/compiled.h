/* compiled.h - the in-memory form of a loaded rule file, shared (read-only) by every stage. */
#ifndef BN_RULES_COMPILED_H
#define BN_RULES_COMPILED_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stddef.h>
#include <stdint.h>

#include "bidnorm/rules.h"

/* Scalar value types of output fields. */
typedef enum bn_type {
	BN_T_STRING = 1,
	BN_T_INT,           /* Avro int (32-bit) */
	BN_T_LONG,          /* Avro long (64-bit) */
	BN_T_DOUBLE,
	BN_T_BOOLEAN,
	BN_T_TIMESTAMP_MS   /* Avro long, logicalType timestamp-millis */
} bn_type;

/* A field is one scalar, an array of scalars, or a map from string to scalar. */
typedef enum bn_shape {
	BN_SHAPE_SCALAR = 0,
	BN_SHAPE_ARRAY,
	BN_SHAPE_MAP
} bn_shape;

typedef enum bn_step_kind {
	BN_STEP_TEXT = 1,    /* Unicode repair (mojibake, NFKC, invisibles, whitespace), then max_bytes */
	BN_STEP_LOWER,
	BN_STEP_UPPER,
	BN_STEP_EXTRACT,     /* when the pattern matches, the value becomes capture group 1 */
	BN_STEP_REPLACE,     /* PCRE2 substitute, all matches */
	BN_STEP_FIRST_MATCH, /* the value becomes the first match of the pattern, or empty */
	BN_STEP_TRIM,        /* strip the given characters at both ends */
	BN_STEP_MAX_BYTES,   /* truncate at a UTF-8 character boundary */
	BN_STEP_VALIDATE,    /* pattern must match; otherwise on_fail */
	BN_STEP_MAP          /* exact-value lookup table; values not in it pass unchanged */
} bn_step_kind;

typedef enum bn_on_fail {
	BN_ON_FAIL_NULL = 0, /* the value becomes null */
	BN_ON_FAIL_REJECT,   /* the record is rejected */
	BN_ON_FAIL_KEEP      /* the value is kept (only counted) */
} bn_on_fail;

typedef struct bn_map_entry {
	char *from;
	size_t from_len;
	char *to;
	size_t to_len;
} bn_map_entry;

typedef struct bn_step {
	bn_step_kind kind;
	uint32_t line, column;      /* where the step is written in the rule file */
	char *pattern;              /* EXTRACT, REPLACE, FIRST_MATCH, VALIDATE */
	pcre2_code *re;             /* compiled with JIT when available; shared, read-only */
	char *replacement;          /* REPLACE */
	size_t replacement_len;
	char *chars;                /* TRIM: the set of bytes to strip (ASCII only) */
	size_t nchars;
	size_t max_bytes;           /* MAX_BYTES; TEXT (0 = limits.max_text_bytes) */
	bn_on_fail on_fail;         /* VALIDATE */
	bn_map_entry *map;          /* MAP, sorted by (from_len, memcmp) */
	size_t nmap;
} bn_step;

typedef struct bn_chain {
	char *name;                 /* chain name, or NULL for an inline chain */
	bn_step *steps;
	size_t nsteps;
} bn_chain;

/* One step of a source path: an object member, an array index, every element, or the current row. */
typedef enum bn_path_kind {
	BN_PATH_KEY = 0,            /* .name */
	BN_PATH_INDEX,              /* [N] */
	BN_PATH_ALL,                /* [*]: every element, in document order */
	BN_PATH_ROW                 /* ROWS[]: the element of the rows array the record is made from */
} bn_path_kind;

typedef struct bn_path_step {
	bn_path_kind kind;
	const char *name;           /* KEY: points into parts */
	size_t len;
	uint32_t index;             /* INDEX */
} bn_path_step;

/*
 * A source path ("device.installed_apps", "imp[].banner.format[0].w", "user.data[*].segment[*].id")
 * as steps. A path that starts at the current row holds one BN_PATH_ROW step first; the rows path
 * and the rule file's root are already resolved into the steps.
 */
typedef struct bn_path {
	char *text;                 /* the path as written */
	char **parts;               /* the member names, in order (what serving_invalid checks) */
	size_t nparts;
	bn_path_step *steps;
	size_t nsteps;
	int wildcard;               /* has a [*] step: collects several values */
	int row;                    /* starts at the current row element */
	int absolute;               /* written with a leading '/': starts at the line's object, not 'root' */
	uint32_t line, column;      /* where it is written */
} bn_path;

typedef struct bn_default {
	int present;
	int64_t i;                  /* INT, LONG, TIMESTAMP_MS, BOOLEAN (0/1) */
	double d;                   /* DOUBLE */
	char *s;                    /* STRING */
	size_t s_len;
} bn_default;

/*
 * same_source_as: the fields of a group take their sources at one position of their lists, the first where
 * every member has a value (none: all are missing). A field's members are group_members[first .. first + count).
 */
typedef struct bn_group_span {
	uint32_t first;
	uint32_t count;             /* 0 = in no group */
} bn_group_span;

typedef struct bn_field {
	char *name;
	char *doc;                  /* may be NULL */
	uint32_t line, column;      /* where the field entry starts */
	bn_type type;               /* scalar type, or element/value type of arrays and maps */
	bn_shape shape;
	int required;               /* missing or invalid -> the record is rejected */
	int chooses;                /* the source is chosen per record: a list of sources, or a same_source_as group */
	bn_default def;             /* missing or invalid -> this value (Avro type is non-null) */
	bn_path source;             /* nsteps == 0 for ratio and row_index fields */
	bn_path *alt;               /* fallbacks: the first of source, alt[0], ... present, not null and not "" wins */
	size_t nalt;
	int presence;               /* array<string> of the last names of the paths (source, alt) holding an object */
	int row_index;              /* the position of the current row in the rows array */
	int reads_row;              /* some path of the field starts at the current row */
	const bn_chain *chain;      /* per value (per element for arrays/maps); NULL = none */
	/* ratio fields (type double, scalar): numerator / denominator */
	int is_ratio;
	bn_path numerator, denominator;
	double ratio_invalid;       /* value when the ratio is undefined */
	/* arrays */
	size_t max_items;           /* 0 = unlimited */
	int unique;                 /* drop duplicates, keeping the first */
	/* maps */
	int strip_serving_invalid;  /* drop keys matching serving_invalid patterns */
	/* range: [MIN, MAX] of int, long and double values (each element/value of arrays and maps) */
	int has_range;
	int64_t range_min_i, range_max_i;
	double range_min_d, range_max_d;
} bn_field;

/* Whether a value (i for int and long, d for double) is inside the field's range (always without one). */
static inline int bn_field_in_range(const bn_field *f, int64_t i, double d)
{
	if (!f->has_range)
		return 1;
	if (f->type == BN_T_DOUBLE)
		return d >= f->range_min_d && d <= f->range_max_d;
	return i >= f->range_min_i && i <= f->range_max_i;
}

/*
 * Nullability in Avro, derived once: required or with a default -> plain
 * type; otherwise ["null", type] with default null. Arrays, maps and ratios
 * are never null (missing -> empty / ratio_invalid).
 */
static inline int bn_field_nullable(const bn_field *f)
{
	return f->shape == BN_SHAPE_SCALAR && !f->required && !f->def.present && !f->is_ratio;
}

typedef struct bn_invalid_rule {
	char *pattern;
	pcre2_code *re;
	char *reason;               /* "relative-time", "feedback", ... */
	uint32_t line, column;
} bn_invalid_rule;

typedef struct bn_allow {
	char *name;                 /* an exact output field name or source path */
	char *justification;
} bn_allow;

struct bn_rules {
	char *source_name;          /* path or "<default>" */
	char *text;                 /* the rule file bytes (NUL-terminated copy) */
	size_t text_len;
	char sha256[65];
	char *schema_name;          /* record name, e.g. "Impression" */
	char *schema_namespace;     /* e.g. "ads.bidlog" */
	char *schema_doc;           /* may be NULL */
	bn_field *fields;
	size_t nfields;
	bn_chain *chains;           /* named chains; fields point into this array */
	size_t nchains;
	bn_chain *inline_chains;    /* chains written inline in fields */
	size_t ninline_chains;
	bn_invalid_rule *invalid;
	size_t ninvalid;
	bn_allow *allow;
	size_t nallow;
	bn_group_span *groups;      /* per field; NULL when no field has same_source_as */
	size_t *group_members;      /* field indexes, group after group, each group's first field first */
	bn_path rows;               /* nsteps == 0: one record per line; else the array whose elements are records */
	bn_path root;               /* nsteps == 0: paths start at the line's object; else at this member */
	size_t max_rows;            /* limits.max_rows: more elements in the rows array reject the line */
	size_t max_line_bytes;      /* limits.max_line_bytes, default 1 MiB */
	size_t max_text_bytes;      /* limits.max_text_bytes, default 256 */
	uint32_t regex_match_limit; /* limits.regex_match_limit, default 100000 */
	uint32_t regex_depth_limit; /* limits.regex_depth_limit, default 1000 */
	char *schema_json;          /* generated Avro schema */
};

#endif
