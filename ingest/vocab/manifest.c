/* manifest.c - reading one value of a vocabulary directory's manifest.json (vocab diff's coverage, the model's text repair version and rules, vocab lint's rules). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "record/json.h"
#include "util/buf.h"
#include "util/file.h"
#include "vocab/dir.h"

int bn_vocab_manifest_value(char **out, int *type, int *found, const char *dir, const char *const *keys, size_t nkeys,
			    bn_error *err)
{
	bn_buf b = { 0 };
	bn_json_parser *p = NULL;
	bn_json_result res;
	char *path = bn_path_join(dir, "manifest.json");
	int rc = BN_OK;

	*out = NULL;
	*type = 0;
	*found = 0;
	if (!path)
		return bn_error_set(err, BN_ENOMEM, "out of memory reading the manifest");
	/* no manifest, or no directory (which the caller reports in its own words) */
	if (access(path, F_OK) != 0 && (errno == ENOENT || errno == ENOTDIR))
		goto cleanup;
	*found = 1;
	rc = bn_file_read_all(&b, path, err);
	if (rc < 0)
		goto cleanup;
	if (bn_json_parser_new(&p, 0) < 0) {
		rc = bn_error_set(err, BN_ENOMEM, "out of memory reading the manifest");
		goto cleanup;
	}
	if (bn_json_parse(p, b.data ? b.data : "", b.size, &res) != BN_JSON_OK || res.tokens[0].type != BN_JSON_OBJECT) {
		bn_error_locate(err, path, 0, 0);
		rc = bn_error_set(err, BN_ECORRUPT, "not a JSON object");
		goto cleanup;
	}
	/* walk: root object -> keys[0] -> ... -> keys[nkeys - 1] */
	const bn_json_token *t = res.tokens;
	size_t at = 0;
	for (size_t level = 0; level < nkeys; level++) {
		size_t k = at + 1, next = 0;
		if (t[at].type != BN_JSON_OBJECT)
			goto cleanup;
		for (uint32_t m = 0; m < t[at].size; m++) {
			if (!t[k].escaped && t[k].len == strlen(keys[level]) &&
			    memcmp(b.data + t[k].start, keys[level], t[k].len) == 0) {
				next = k + 1;
				break;
			}
			k = t[k + 1].next;
		}
		if (!next)
			goto cleanup;
		at = next;
	}
	*out = malloc((size_t)t[at].len + 1);
	if (!*out) {
		rc = bn_error_set(err, BN_ENOMEM, "out of memory reading the manifest");
		goto cleanup;
	}
	if (t[at].type == BN_JSON_STRING) {
		(*out)[bn_json_unescape(b.data + t[at].start, t[at].len, *out)] = '\0';
	} else {
		memcpy(*out, b.data + t[at].start, t[at].len);
		(*out)[t[at].len] = '\0';
	}
	*type = t[at].type;
	*found = 2;
cleanup:
	bn_json_parser_free(p);
	bn_buf_free(&b);
	free(path);
	return rc;
}

int bn_vocab_manifest_string(char **out, int *found, const char *dir, const char *key, bn_error *err)
{
	const char *keys[] = { key };
	char *path;
	int type, rc = bn_vocab_manifest_value(out, &type, found, dir, keys, 1, err);
	if (rc < 0 || *found != 2 || type == BN_JSON_STRING)
		return rc;
	free(*out);
	*out = NULL;
	path = bn_path_join(dir, "manifest.json");
	if (!path)
		return bn_error_set(err, BN_ENOMEM, "out of memory reading the manifest");
	bn_error_locate(err, path, 0, 0);
	free(path);
	return bn_error_set(err, BN_ECORRUPT, "%s is not a string", key);
}
