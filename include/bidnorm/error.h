/* bidnorm/error.h - status codes and the caller-owned error record every call fills in. */
#ifndef BIDNORM_ERROR_H
#define BIDNORM_ERROR_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Every fallible call returns an int: BN_OK (0) on success, a negative
 * bn_status on failure. Values are stable and never renumbered.
 */
typedef enum bn_status {
	BN_OK = 0,
	BN_EUSAGE = -1,      /* invalid argument or option */
	BN_ENOMEM = -2,      /* allocation failed */
	BN_EIO = -3,         /* reading or writing a file failed (unreadable, disk full) */
	BN_ECORRUPT = -4,    /* corrupt or truncated compressed input */
	BN_ERULES = -5,      /* rule file invalid */
	BN_EREJECT = -6,     /* one record was rejected; bn_error.reason says why */
	BN_EREJECTRATE = -7, /* the share of rejected records exceeded the limit */
	BN_EINTERNAL = -8    /* a bug: an invariant did not hold */
} bn_status;

/* Why a record was rejected (bn_error.reason when code is BN_EREJECT). Stable. */
typedef enum bn_reject_reason {
	BN_REJECT_NONE = 0,
	BN_REJECT_INVALID_JSON = 1,     /* the line is not valid JSON */
	BN_REJECT_NOT_OBJECT = 2,       /* valid JSON, but not an object */
	BN_REJECT_MISSING_REQUIRED = 3, /* a required field is absent or null */
	BN_REJECT_INVALID_VALUE = 4,    /* a required field's value cannot be coerced */
	BN_REJECT_LINE_TOO_LONG = 5,    /* the line exceeds the rules' max_line_bytes */
	BN_REJECT_VALIDATION = 6,       /* a 'validate' step with on_fail: reject failed */
	BN_REJECT_TOO_COMPLEX = 7,      /* too many JSON tokens or nesting too deep */
	BN_REJECT_MISSING_ROWS = 8,     /* the rules' rows array is absent or null */
	BN_REJECT_ROWS_NOT_ARRAY = 9,   /* the rows path holds something other than an array */
	BN_REJECT_EMPTY_ROWS = 10,      /* the rows array is empty: the line makes no record */
	BN_REJECT_ROW_NOT_OBJECT = 11,  /* an element of the rows array is not an object */
	BN_REJECT_TOO_MANY_ROWS = 12,   /* the rows array has more elements than limits.max_rows */
	BN_REJECT_REASON_COUNT = 13
} bn_reject_reason;

/* The stable snake_case name of a reason ("invalid_json", ...), as used in
 * reject files and stats. Never NULL. */
const char *bn_reject_reason_name(int reason);

#define BN_ERROR_SOURCE_MAX 256
#define BN_ERROR_FIELD_MAX 128
#define BN_ERROR_MESSAGE_MAX 512

/*
 * Details of the last failure, filled in by the call that failed. Owned by
 * the caller (usually on its stack); no call keeps a pointer to it. Every
 * call accepts err == NULL when the caller does not want details. The
 * library's entry points clear it first, so it may be passed uninitialised.
 */
typedef struct bn_error {
	int code;                          /* a bn_status */
	int reason;                        /* a bn_reject_reason when code == BN_EREJECT */
	char source[BN_ERROR_SOURCE_MAX];  /* input or rule file name, "" if none */
	uint64_t line;                     /* 1-based line, 0 if not applicable */
	uint32_t column;                   /* 1-based column (bytes), 0 if not applicable */
	uint64_t offset;                   /* byte offset in the (decompressed) input */
	int has_offset;                    /* 1 when offset is meaningful */
	char field[BN_ERROR_FIELD_MAX];    /* field name, "" if none */
	char message[BN_ERROR_MESSAGE_MAX];/* what was wrong, without the location */
} bn_error;

/* Reset err to "no error". Accepts NULL. */
void bn_error_clear(bn_error *err);

/*
 * Record a failure: sets code and message (printf-style) and leaves the
 * location fields as they are. Returns code, so callers can write
 * `return bn_error_set(err, BN_EIO, "...")`. Accepts err == NULL.
 */
int bn_error_set(bn_error *err, int code, const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 3, 4)))
#endif
	;

/* Set the location of err (source may be NULL; line/column 0 = unknown). */
void bn_error_locate(bn_error *err, const char *source, uint64_t line, uint32_t column);

/* Set the field name of err (NULL clears it). */
void bn_error_field(bn_error *err, const char *field);

/*
 * Format err as one line: "source:line:column: field 'f': message".
 * Parts that are unknown are left out. Writes at most size bytes including
 * the NUL; returns the length the full message would have (like snprintf).
 */
size_t bn_error_format(const bn_error *err, char *buf, size_t size);

/* A short static description of a status ("I/O error", ...). Never NULL. */
const char *bn_status_name(int code);

#ifdef __cplusplus
}
#endif
#endif
