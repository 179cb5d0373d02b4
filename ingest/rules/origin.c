/* origin.c - the rules inputs were written with, from what they record (Avro headers; partial counts in vocab/): what --rules means for the commands that read ingest's output. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bidnorm/rules.h"
#include "rules/origin.h"
#include "util/sha256.h"
#include "vocab/avro_reader.h"

static void copy_meta(char *dst, size_t cap, const bn_avro_reader *r, const char *key)
{
	size_t n = 0;
	const char *v = bn_avro_reader_meta(r, key, &n);
	if (!v || memchr(v, '\0', n))
		n = 0;
	if (n >= cap)
		n = cap - 1;
	if (n)
		memcpy(dst, v, n);
	dst[n] = '\0';
}

/* An Avro input's origin: its header, as ingest writes it. */
static int read_header(bn_rules_origin *h, void *ctx, size_t i, bn_error *err)
{
	const char *path = ((const char *const *)ctx)[i];
	bn_avro_reader *r = NULL;
	size_t n = 0;
	int rc = bn_avro_reader_open(&r, path, err);
	if (rc < 0)
		return rc;
	h->input = path;
	h->unnamed = "the header names no rule file";
	/* a value of another length cannot be a rule file's hash: it matches none */
	if (bn_avro_reader_meta(r, "bidnorm.rules.sha256", &n) && n != 2 * BN_SHA256_SIZE)
		snprintf(h->sha, sizeof(h->sha), "not-a-sha256");
	else
		copy_meta(h->sha, sizeof(h->sha), r, "bidnorm.rules.sha256");
	copy_meta(h->source, sizeof(h->source), r, "bidnorm.rules.source");
	copy_meta(h->version, sizeof(h->version), r, "bidnorm.version");
	bn_avro_reader_free(r);
	return BN_OK;
}

/* "<openrtb>, sha256 0123456789ab" (the source when the header has one). */
static const char *describe(char *buf, size_t cap, const bn_rules_origin *h)
{
	snprintf(buf, cap, "%s%ssha256 %.*s", h->source, h->source[0] ? ", " : "", BN_RULES_SHA_SHOWN, h->sha);
	return buf;
}

const char *bn_rules_shipped_with_sha(const char *sha)
{
	const char *name;
	for (size_t i = 0; (name = bn_rules_builtin_name(i)) != NULL; i++) {
		size_t size;
		const char *text = bn_rules_builtin_text(name, &size);
		char hex[2 * BN_SHA256_SIZE + 1];
		bn_sha256_hex(hex, text, size);
		if (strcmp(hex, sha) == 0)
			return name;
	}
	return NULL;
}

/* The shipped set a header source names ("<default>" is bidlog), or NULL when source names a file. */
static const char *shipped_name(char *buf, size_t cap, const char *source)
{
	size_t n = strlen(source);
	if (n < 3 || source[0] != '<' || source[n - 1] != '>')
		return NULL;
	if (strcmp(source, "<default>") == 0)
		return bn_rules_builtin_name(0);
	snprintf(buf, cap, "%.*s", (int)(n - 2), source + 1);
	return buf;
}

/* Load the rules origin h names, when they are here and identical. */
static int resolve(bn_rules **out, const bn_rules_origin *h, bn_error *err)
{
	const char *path = h->input;
	const char *name = bn_rules_shipped_with_sha(h->sha);
	char set[64];
	const char *set_name;
	bn_rules *r = NULL;
	int rc;

	if (name)
		return bn_rules_load_builtin(out, name, err);
	bn_error_clear(err);
	bn_error_locate(err, path, 0, 0);
	if (!h->source[0])
		return bn_error_set(err, BN_EUSAGE,
				    "written with rules that are not a shipped set (sha256 %.*s), and %s: pass --rules FILE "
				    "with the rule file it was written with",
				    BN_RULES_SHA_SHOWN, h->sha, h->unnamed);
	set_name = shipped_name(set, sizeof(set), h->source);
	if (set_name) {
		size_t size;
		const char *text = bn_rules_builtin_text(set_name, &size);
		char hex[2 * BN_SHA256_SIZE + 1];
		if (!text)
			return bn_error_set(err, BN_EUSAGE,
					    "written with the shipped rules %s of bidnorm %s (sha256 %.*s), which this bidnorm "
					    "does not ship: pass --rules FILE with the rules it was written with",
					    h->source, h->version[0] ? h->version : "(unknown)", BN_RULES_SHA_SHOWN, h->sha);
		bn_sha256_hex(hex, text, size);
		return bn_error_set(err, BN_EUSAGE,
				    "written with the shipped rules %s of bidnorm %s (sha256 %.*s), not this bidnorm's "
				    "(sha256 %.*s): ingest it again with this bidnorm, or pass --rules FILE with the rules it "
				    "was written with",
				    h->source, h->version[0] ? h->version : "(unknown)", BN_RULES_SHA_SHOWN, h->sha, BN_RULES_SHA_SHOWN, hex);
	}
	rc = bn_rules_load_file(&r, h->source, err);
	if (rc == BN_EIO) {
		char why[BN_ERROR_MESSAGE_MAX];
		snprintf(why, sizeof(why), "%s", err->message);
		bn_error_clear(err);
		bn_error_locate(err, path, 0, 0);
		return bn_error_set(err, BN_EUSAGE,
				    "written with the rule file '%s' (sha256 %.*s), which cannot be read here (%s): pass "
				    "--rules FILE with that rule file",
				    h->source, BN_RULES_SHA_SHOWN, h->sha, why);
	}
	if (rc < 0)
		return rc;
	if (strcmp(bn_rules_sha256(r), h->sha) != 0) {
		bn_error_locate(err, path, 0, 0);
		rc = bn_error_set(err, BN_EUSAGE,
				  "written with the rule file '%s' (sha256 %.*s), which has changed since (now sha256 "
				  "%.*s): pass --rules FILE with the rule file it was written with",
				  h->source, BN_RULES_SHA_SHOWN, h->sha, BN_RULES_SHA_SHOWN, bn_rules_sha256(r));
		bn_rules_free(r);
		return rc;
	}
	*out = r;
	return BN_OK;
}

int bn_rules_for_origins(bn_rules **out, const char *spec, size_t n, bn_rules_origin_fn next, void *ctx,
			 int allow_mixed, bn_error *err)
{
	bn_rules *r = NULL;
	bn_rules_origin first, h;
	char a[BN_ERROR_SOURCE_MAX + 32], b[BN_ERROR_SOURCE_MAX + 32];
	int rc = BN_OK, have_first = 0;

	bn_error_clear(err);
	if (spec) {
		rc = bn_rules_load(&r, spec, err);
		for (size_t i = 0; rc == BN_OK && !allow_mixed && i < n; i++) {
			memset(&h, 0, sizeof(h));
			rc = next(&h, ctx, i, err);
			if (rc == BN_OK && h.sha[0] && strcmp(h.sha, bn_rules_sha256(r)) != 0) {
				bn_error_locate(err, h.input, 0, 0);
				rc = bn_error_set(err, BN_EUSAGE,
						  "written with other rules (%s) than --rules %s (sha256 %.*s): leave out --rules "
						  "to use the input's own rules (where mixing is allowed, --allow-mixed-rules "
						  "accepts them)",
						  describe(a, sizeof(a), &h), spec, BN_RULES_SHA_SHOWN, bn_rules_sha256(r));
			}
		}
		goto done;
	}
	/* No --rules: the inputs say which, and must agree on it. Inputs not written by ingest say nothing. */
	for (size_t i = 0; i < n; i++) {
		memset(&h, 0, sizeof(h));
		rc = next(&h, ctx, i, err);
		if (rc < 0)
			goto done;
		if (!h.sha[0])
			continue;
		if (!have_first) {
			first = h;
			have_first = 1;
		} else if (strcmp(h.sha, first.sha) != 0) {
			bn_error_locate(err, h.input, 0, 0);
			rc = bn_error_set(err, BN_EUSAGE, "written with other rules (%s) than %s (%s): %s",
					  describe(a, sizeof(a), &h), first.input, describe(b, sizeof(b), &first),
					  allow_mixed ? "name the rules to use with --rules FILE|NAME"
						      : "the inputs must share their rules (where mixing is allowed, pass "
							"--allow-mixed-rules and --rules FILE|NAME)");
			goto done;
		}
	}
	rc = have_first ? resolve(&r, &first, err) : bn_rules_load_default(&r, err);
done:
	if (rc == BN_OK) {
		*out = r;
		r = NULL;
	}
	bn_rules_free(r);
	return rc;
}

int bn_rules_load_for_avro(bn_rules **out, const char *spec, const char *const *paths, size_t npaths,
			   int allow_mixed, bn_error *err)
{
	bn_error_clear(err);
	if (!out || (npaths && !paths))
		return bn_error_set(err, BN_EUSAGE, "bn_rules_load_for_avro: out and paths are required");
	return bn_rules_for_origins(out, spec, npaths, read_header, (void *)paths, allow_mixed, err);
}
