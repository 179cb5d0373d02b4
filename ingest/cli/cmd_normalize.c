/* cmd_normalize.c - `bidnorm normalize`: what the rules make of one value, optionally after every step. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
	"usage: bidnorm normalize [--rules FILE|NAME] --field NAME [--trace] [--json] VALUE...\n"
	"\n"
	"Prints, one per line, each VALUE as output field NAME would hold it (for an\n"
	"array or map field, as one element or value). For a string field VALUE is the\n"
	"raw text and runs through the field's chain; a value the chain turns into null\n"
	"prints as 'null', values print as JSON strings with --json. For any other field\n"
	"VALUE is read as the JSON source value would be (1763640000, \"0.35\", true; text\n"
	"that is not JSON, like 2026-11-20T12:00:00Z, as a JSON string) and prints as\n"
	"JSON (a timestamp as epoch milliseconds); a value that cannot be converted is\n"
	"reported with the reason, as ingest would.\n"
	"\n"
	"  --field NAME   output field (e.g. app_bundle, ts, bid_floor)\n"
	"  --trace        also print the value after every step (string fields)\n"
	"  --json         print string values as JSON strings\n"
	"  --rules FILE|NAME  rule file, or a shipped set: bidlog (the default), openrtb\n"
	"\n"
	"Exit codes: 0 ok, 1 a value was rejected or could not be converted, 2 usage,\n"
	"4 rule file invalid, 5 rule file unreadable.\n";

typedef struct printer {
	int json;
} printer;

static void print_value(const printer *p, const char *s, size_t n, int is_null)
{
	if (is_null) {
		fputs("null", stdout);
		return;
	}
	if (!p->json) {
		fwrite(s, 1, n, stdout);
		return;
	}
	putchar('"');
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static void trace_step(void *ctx, const char *step, const char *value, size_t size, int is_null)
{
	printf("  %-12s ", step);
	print_value(&(printer){ 1 }, value, size, is_null);
	(void)ctx;
	putchar('\n');
}

int cmd_normalize(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "rules", required_argument, NULL, 'r' },
		{ "field", required_argument, NULL, 'f' },
		{ "trace", no_argument, NULL, 't' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *rules_path = NULL, *field = NULL;
	bn_rules *rules = NULL;
	bn_normalizer *norm = NULL;
	bn_error err;
	printer pr = { 0 };
	int trace = 0, c, rc;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'r': rules_path = optarg; break;
		case 'f': field = optarg; break;
		case 't': trace = 1; break;
		case 'j': pr.json = 1; break;
		case 'h': fputs(usage, stdout); return BN_EXIT_OK;
		default: fprintf(stderr, "Try 'bidnorm normalize --help'.\n"); return BN_EXIT_USAGE;
		}
	}
	if (!field)
		return cli_usage_error("normalize", "--field NAME is required");
	if (optind == argc)
		return cli_usage_error("normalize", "no VALUE given");
	rc = cli_load_rules("normalize", rules_path, &rules);
	if (rc != BN_EXIT_OK)
		return rc;
	bn_error_clear(&err);
	if (bn_normalizer_new(&norm, rules, &err) < 0) {
		cli_print_error("normalize", &err);
		rc = BN_EXIT_FAILURE;
		goto cleanup;
	}
	int is_string = 1;
	for (size_t f = 0; f < bn_rules_field_count(rules); f++)
		if (strcmp(bn_rules_field_name(rules, f), field) == 0)
			is_string = bn_rules_field_is_string(rules, f);
	for (int i = optind; i < argc; i++) {
		const char *out;
		size_t out_size;
		int is_null = 0, st;
		if (trace && is_string) {
			printf("%s\n  %-12s ", argv[i], "input");
			print_value(&(printer){ 1 }, argv[i], strlen(argv[i]), 0);
			putchar('\n');
		}
		if (is_string)
			st = bn_normalize_value(norm, field, argv[i], strlen(argv[i]), &out, &out_size, &is_null,
						trace ? trace_step : NULL, NULL, &err);
		else /* Numbers, times, booleans: read as ingest reads the source value, printed as JSON. */
			st = bn_normalize_json_value(norm, field, argv[i], strlen(argv[i]), &out, &out_size, &err);
		if (st < 0) {
			cli_print_error("normalize", &err);
			rc = st == BN_EUSAGE ? BN_EXIT_USAGE : BN_EXIT_FAILURE;
			if (st != BN_EREJECT)
				goto cleanup;
			continue;
		}
		if (trace)
			printf("%s%s  %-12s ", is_string ? "" : argv[i], is_string ? "" : "\n", "=");
		if (is_string)
			print_value(&pr, out, out_size, is_null);
		else
			fputs(out, stdout);
		putchar('\n');
	}
cleanup:
	bn_normalizer_free(norm);
	bn_rules_free(rules);
	return rc;
}
