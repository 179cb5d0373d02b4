/* fuzz_rules.c - libFuzzer target: arbitrary YAML through bn_rules_load_buffer; loaded rules also get a normalizer. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "bidnorm/bidnorm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	bn_rules *rules = NULL;
	bn_normalizer *norm = NULL;
	bn_error err;
	int rc;

	bn_error_clear(&err);
	rc = bn_rules_load_buffer(&rules, (const char *)data, size, "fuzz.yaml", &err);
	if (rc < 0) {
		if (rules || (rc != BN_ERULES && rc != BN_ENOMEM) || !err.message[0]) {
			fprintf(stderr, "fuzz_rules: bad failure: status %d, message '%s'\n", rc, err.message);
			abort();
		}
		return 0;
	}
	/* Rules that load must be usable: schema, hash, and a normalizer. */
	if (!bn_rules_schema_json(rules) || !bn_rules_sha256(rules)) {
		fprintf(stderr, "fuzz_rules: loaded rules without schema or hash\n");
		abort();
	}
	if (bn_normalizer_new(&norm, rules, &err) < 0) {
		fprintf(stderr, "fuzz_rules: normalizer for loaded rules failed: %s\n", err.message);
		abort();
	}
	bn_normalizer_free(norm);
	bn_rules_free(rules);
	return 0;
}
