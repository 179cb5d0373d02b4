/* counted_rules.c - the rules the counted inputs were written with, from the hashes a counter (and so a part) keeps per input: what vocab merge lints against. */
#include <stdio.h>

#include "bidnorm/vocab.h"
#include "rules/origin.h"
#include "vocab/count.h"

/* Input i's origin: a part keeps its rules hash and bidnorm version, not the rule file's name. */
static int counted_origin(bn_rules_origin *o, void *ctx, size_t i, bn_error *err)
{
	const bn_vinput *in = &((const bn_vocab_counter *)ctx)->inputs[i];
	(void)err;
	o->input = in->path;
	o->unnamed = "partial counts do not name rule files";
	snprintf(o->sha, sizeof(o->sha), "%s", in->rules_sha256);
	snprintf(o->version, sizeof(o->version), "%s", in->version);
	return BN_OK;
}

int bn_vocab_counter_load_rules(bn_rules **out, const bn_vocab_counter *c, const char *spec, bn_error *err)
{
	bn_error_clear(err);
	if (!out || !c)
		return bn_error_set(err, BN_EUSAGE, "bn_vocab_counter_load_rules: out and c are required");
	return bn_rules_for_origins(out, spec, c->ninputs, counted_origin, (void *)c, c->allow_mixed_rules, err);
}
