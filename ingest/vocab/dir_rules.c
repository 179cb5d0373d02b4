/* dir_rules.c - the rules a vocabulary directory was built from, from what its manifest records: what `vocab lint` checks against without --rules. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bidnorm/vocab.h"
#include "rules/origin.h"
#include "util/file.h"
#include "vocab/dir.h"

/* What a manifest records of its rules, as an origin for rules/origin.c. */
typedef struct manifest_origin {
	const char *path;   /* DIR/manifest.json */
	const char *sha;    /* rules_sha256 */
	const char *source; /* rules_source, or NULL */
	const char *version;
} manifest_origin;

static int manifest_origin_fn(bn_rules_origin *o, void *ctx, size_t i, bn_error *err)
{
	const manifest_origin *m = ctx;
	(void)i;
	(void)err;
	o->input = m->path;
	o->unnamed = "the manifest names no rule file";
	/* a value of another length cannot be a rule file's hash: it matches none */
	snprintf(o->sha, sizeof(o->sha), "%s", strlen(m->sha) == 64 ? m->sha : "not-a-sha256");
	snprintf(o->source, sizeof(o->source), "%s", m->source ? m->source : "");
	snprintf(o->version, sizeof(o->version), "%s", m->version ? m->version : "");
	return BN_OK;
}

int bn_vocab_load_rules(bn_rules **out, const char *dir, const char *spec, bn_error *err)
{
	char *sha = NULL, *source = NULL, *version = NULL, *path = NULL;
	int found = 0, rc;

	bn_error_clear(err);
	if (!out || !dir)
		return bn_error_set(err, BN_EUSAGE, "bn_vocab_load_rules: out and dir are required");
	if (spec)
		return bn_rules_load(out, spec, err);
	rc = bn_vocab_manifest_string(&sha, &found, dir, "rules_sha256", err);
	if (rc == BN_OK && sha)
		rc = bn_vocab_manifest_string(&source, &found, dir, "rules_source", err);
	if (rc == BN_OK && sha)
		rc = bn_vocab_manifest_string(&version, &found, dir, "bidnorm_version", err);
	if (rc < 0)
		goto cleanup;
	/* no manifest, no hash, or inputs not written by ingest: the manifest says nothing */
	if (!sha || !sha[0]) {
		rc = bn_rules_load_default(out, err);
		goto cleanup;
	}
	path = bn_path_join(dir, "manifest.json");
	if (!path) {
		rc = bn_error_set(err, BN_ENOMEM, "out of memory reading the manifest");
		goto cleanup;
	}
	if (strcmp(sha, "mixed") == 0) {
		bn_error_locate(err, path, 0, 0);
		rc = bn_error_set(err, BN_EUSAGE,
				  "built from inputs of several rules (rules_sha256 'mixed'): pass --rules FILE|NAME with "
				  "the rules to lint against");
		goto cleanup;
	}
	manifest_origin m = { path, sha, source, version };
	rc = bn_rules_for_origins(out, NULL, 1, manifest_origin_fn, &m, 0, err);
cleanup:
	free(sha);
	free(source);
	free(version);
	free(path);
	return rc;
}
