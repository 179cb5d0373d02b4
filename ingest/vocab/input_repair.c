/* input_repair.c - refusing Avro inputs written with another text repair version than this bidnorm's (vocab build/count/regen, encode). */
#include <stdio.h>
#include <string.h>

#include "bidnorm/normalize.h"
#include "bidnorm/vocab.h"
#include "vocab/avro_reader.h"

int bn_avro_check_text_repair(const bn_avro_reader *r, const char *path, const char *fix, bn_error *err)
{
	size_t n = 0;
	const char *v = bn_avro_reader_meta(r, "bidnorm.text_repair", &n);
	const char *ours = bn_text_repair_version();

	if (v && n == strlen(ours) && memcmp(v, ours, n) == 0)
		return BN_OK;
	bn_error_locate(err, path, 0, 0);
	/* Files from before the key was written had version 1 (and the counter records them so). */
	return bn_error_set(err, BN_EUSAGE,
			    "written with text repair version '%.*s'%s, but this bidnorm repairs text with version '%s': "
			    "the same raw text gives other tokens (training/serving skew); %s",
			    v ? (int)(n < 32 ? n : 32) : 1, v ? v : "1",
			    v ? "" : " (the header has no bidnorm.text_repair: written before it was recorded, or not by "
				     "bidnorm ingest)",
			    ours, fix);
}

int bn_vocab_check_text_repair(const char *const *paths, size_t npaths, bn_error *err)
{
	bn_avro_reader *r = NULL;
	int rc = BN_OK;

	bn_error_clear(err);
	if (npaths && !paths)
		return bn_error_set(err, BN_EUSAGE, "bn_vocab_check_text_repair: paths are required");
	for (size_t i = 0; rc == BN_OK && i < npaths; i++) {
		rc = bn_avro_reader_open(&r, paths[i], err);
		if (rc == BN_OK)
			rc = bn_avro_check_text_repair(r, paths[i],
						       "ingest it again with this bidnorm, or pass --allow-other-text-repair "
						       "to count it anyway (serving refuses such a vocabulary)",
						       err);
		bn_avro_reader_free(r);
		r = NULL;
	}
	return rc;
}
