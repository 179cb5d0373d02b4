/* schema.h - generating the Avro schema of loaded rules (internal to the rules module). */
#ifndef BN_RULES_SCHEMA_H
#define BN_RULES_SCHEMA_H

#include "bidnorm/error.h"
#include "rules/compiled.h"

/*
 * Fill rules->schema_json with the Avro record schema (one line of JSON,
 * stable key order) for rules->fields, and check that Avro C accepts it.
 * Returns BN_OK, BN_ENOMEM, or BN_EINTERNAL when Avro C rejects what we
 * generated (a bug here, never a user error: the loader validated names).
 */
int bn_rules_schema_build(bn_rules *rules, bn_error *err);

#endif
