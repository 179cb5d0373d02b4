/* origin.h - the rules inputs were written with, decided from what each input records (an Avro header, an entry of a partial counts file). */
#ifndef BN_RULES_ORIGIN_H
#define BN_RULES_ORIGIN_H

#include <stddef.h>

#include "bidnorm/error.h"
#include "bidnorm/rules.h"

/* Hex digits of a rules hash shown in messages: enough to tell rule files apart, short enough to read. */
#define BN_RULES_SHA_SHOWN 12

/* What one input records about its rules. */
typedef struct bn_rules_origin {
	const char *input;                 /* the input's name, for messages (owned by the caller) */
	char sha[65];                      /* rules sha256 (the identity); "" when not recorded (not written by ingest) */
	char source[BN_ERROR_SOURCE_MAX];  /* "<default>", "<openrtb>" or a rule file's path; "" when not recorded */
	char version[32];                  /* the bidnorm version that wrote it; "" when not recorded */
	const char *unnamed;               /* why source may be empty, for messages: "the header names no rule file" */
} bn_rules_origin;

/* Fill *o (zeroed by the caller) with input i's origin. Returns BN_OK or a bn_status with err set. */
typedef int (*bn_rules_origin_fn)(bn_rules_origin *o, void *ctx, size_t i, bn_error *err);

/* The shipped set ("bidlog", "openrtb") whose text hashes to sha (lower-case hex), or NULL. */
const char *bn_rules_shipped_with_sha(const char *sha);

/*
 * The rules of inputs 0..n-1 (origins from next), as bn_rules_load_for_avro documents: spec given,
 * loaded and checked against every recorded hash unless allow_mixed (then next is not called);
 * otherwise the recorded hashes must agree and name a shipped set or a rule file still here.
 */
int bn_rules_for_origins(bn_rules **out, const char *spec, size_t n, bn_rules_origin_fn next, void *ctx,
			 int allow_mixed, bn_error *err);

#endif
