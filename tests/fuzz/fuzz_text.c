/* fuzz_text.c - libFuzzer target: arbitrary bytes -> UTF-8 repair -> the text step and the shipped bundle chain; checks output invariants and idempotence. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "bidnorm/bidnorm.h"
#include "normalize/chain.h"
#include "normalize/text.h"
#include "source/utf8_repair.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_BYTES 256
#define NFKC_OPTIONS (UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT)

static bn_text_scratch *text;
static bn_text_scratch *text2;
static bn_chain_scratch *chain;
static bn_chain_scratch *chain2;
static bn_rules *rules;
static const bn_chain *bundle;

static void die(const char *what, const char *in, size_t in_size, const char *out, size_t out_size)
{
	fprintf(stderr, "fuzz_text: %s\n  in  (%zu): ", what, in_size);
	for (size_t i = 0; i < in_size; i++)
		fprintf(stderr, "%02x", (unsigned char)in[i]);
	fprintf(stderr, "\n  out (%zu): ", out_size);
	for (size_t i = 0; i < out_size; i++)
		fprintf(stderr, "%02x", (unsigned char)out[i]);
	fputc('\n', stderr);
	abort();
}

static void setup(void)
{
	bn_error err;
	if (bn_text_scratch_new(&text) < 0 || bn_text_scratch_new(&text2) < 0 ||
	    bn_rules_load_default(&rules, &err) < 0 || bn_chain_scratch_new(&chain, rules, &err) < 0 ||
	    bn_chain_scratch_new(&chain2, rules, &err) < 0)
		abort();
	/* The second repair also explains itself: the same result, with the explanation built. */
	bn_text_explain(text2, 1);
	for (size_t i = 0; i < rules->nchains; i++)
		if (rules->chains[i].name && strcmp(rules->chains[i].name, "bundle") == 0)
			bundle = &rules->chains[i];
	if (!bundle)
		abort();
}

/* Valid UTF-8, NFKC-stable, no Cc/Cf, only U+0020 as whitespace, single and not at the ends. */
static void check_text(const char *in, size_t in_size, const char *out, size_t size)
{
	utf8proc_uint8_t *nfkc = NULL;
	utf8proc_ssize_t n;
	utf8proc_int32_t cp;
	size_t i = 0;
	int prev_space = 1;

	if (bn_utf8_valid_prefix(out, size) != size)
		die("output is not valid UTF-8", in, in_size, out, size);
	while (i < size) {
		n = utf8proc_iterate((const utf8proc_uint8_t *)out + i, (utf8proc_ssize_t)(size - i), &cp);
		if (n <= 0)
			die("utf8proc cannot decode the output", in, in_size, out, size);
		utf8proc_category_t cat = utf8proc_category(cp);
		if (cat == UTF8PROC_CATEGORY_CC || cat == UTF8PROC_CATEGORY_CF)
			die("control or format character in the output", in, in_size, out, size);
		if (cat == UTF8PROC_CATEGORY_ZL || cat == UTF8PROC_CATEGORY_ZP ||
		    (cat == UTF8PROC_CATEGORY_ZS && cp != ' '))
			die("whitespace other than U+0020 in the output", in, in_size, out, size);
		if (cp == ' ' && prev_space)
			die("leading or doubled space in the output", in, in_size, out, size);
		prev_space = cp == ' ';
		i += (size_t)n;
	}
	if (size && prev_space)
		die("trailing space in the output", in, in_size, out, size);
	n = utf8proc_map((const utf8proc_uint8_t *)out, (utf8proc_ssize_t)size, &nfkc, NFKC_OPTIONS);
	if (n < 0)
		die("utf8proc_map failed on the output", in, in_size, out, size);
	if ((size_t)n != size || memcmp(nfkc, out, size) != 0)
		die("output is not NFKC-stable", in, in_size, out, size);
	free(nfkc);
}

static void run_text(const char *in, size_t size, size_t max_bytes)
{
	const char *out, *again;
	size_t out_size, again_size;
	uint32_t effects;

	if (bn_text_repair(text, in, size, max_bytes, &out, &out_size, &effects) < 0)
		abort();
	if (max_bytes && out_size > max_bytes)
		die("output longer than max_bytes", in, size, out, out_size);
	check_text(in, size, out, out_size);
	if (bn_text_repair(text2, out, out_size, max_bytes, &again, &again_size, &effects) < 0)
		abort();
	if (again_size != out_size || memcmp(again, out, out_size) != 0)
		die("text repair is not idempotent", in, size, again, again_size);
	if (strlen(bn_text_explanation(text2)) > 4096)
		die("explanation unbounded", in, size, out, out_size);
}

static void run_bundle(const char *in, size_t size)
{
	bn_chain_result r, r2;
	bn_error err;

	if (bn_chain_apply(chain, bundle, in, size, &r, NULL, NULL, &err) != BN_OK)
		die("bundle chain failed", in, size, err.message, strlen(err.message));
	if (r.is_null)
		return;
	if (r.size == 0 || bn_utf8_valid_prefix(r.data, r.size) != r.size)
		die("bundle chain output empty or not valid UTF-8", in, size, r.data, r.size);
	if (bn_chain_apply(chain2, bundle, r.data, r.size, &r2, NULL, NULL, &err) != BN_OK || r2.is_null ||
	    r2.size != r.size || memcmp(r2.data, r.data, r.size) != 0)
		die("bundle chain is not idempotent", in, size, r.data, r.size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char *buf;
	static size_t cap;
	size_t n;

	if (!text)
		setup();
	if (size > 1 << 16)
		return 0;
	if (BN_UTF8_REPAIR_MAX(size) + 1 > cap) {
		free(buf);
		cap = BN_UTF8_REPAIR_MAX(size) + 1;
		buf = malloc(cap);
		if (!buf)
			abort();
	}
	n = bn_utf8_repair(buf, NULL, (const char *)data, size);
	run_text(buf, n, 0);
	run_text(buf, n, MAX_BYTES);
	run_bundle(buf, n);
	return 0;
}
