/* cmd_rules.c - `bidnorm rules` (print the default rules, check a rule file) and `bidnorm schema`. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char rules_usage[] =
	"usage: bidnorm rules --print-default\n"
	"       bidnorm rules --print NAME\n"
	"       bidnorm rules --check FILE\n"
	"\n"
	"  --print-default   print the embedded default rule file (rules/bidlog.yaml)\n"
	"  --print NAME      print a shipped rule file: bidlog or openrtb\n"
	"  --check FILE      load FILE and report the first problem as FILE:LINE:COLUMN;\n"
	"                    exit 0 when it is valid, 4 when not, 5 when it cannot be read\n";

int cmd_rules(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "print-default", no_argument, NULL, 'p' },
		{ "print", required_argument, NULL, 'P' },
		{ "check", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *check = NULL, *name = NULL;
	int print = 0, c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'p': print = 1; name = "bidlog"; break;
		case 'P': print = 1; name = optarg; break;
		case 'c': check = optarg; break;
		case 'h': fputs(rules_usage, stdout); return BN_EXIT_OK;
		default: fprintf(stderr, "Try 'bidnorm rules --help'.\n"); return BN_EXIT_USAGE;
		}
	}
	if (optind < argc)
		return cli_usage_error("rules", "unexpected argument '%s'", argv[optind]);
	if (print == !!check)
		return cli_usage_error("rules", "give exactly one of --print-default, --print NAME or --check FILE");
	if (print) {
		size_t size;
		const char *text = bn_rules_builtin_text(name, &size);
		if (!text)
			return cli_usage_error("rules", "no shipped rule set named '%s' (expected bidlog or openrtb)", name);
		fwrite(text, 1, size, stdout);
		return BN_EXIT_OK;
	}
	bn_rules *rules = NULL;
	int rc = cli_load_rules("rules", check, &rules);
	if (rc == BN_EXIT_OK)
		printf("%s: ok: %zu fields, rules sha256 %s\n", check, bn_rules_field_count(rules),
		       bn_rules_sha256(rules));
	bn_rules_free(rules);
	return rc;
}

static const char schema_usage[] =
	"usage: bidnorm schema [--rules FILE|NAME]\n"
	"\n"
	"Print the Avro schema (JSON) that the rules produce: a rule file, or a shipped\n"
	"set (bidlog, openrtb); without --rules, the\n"
	"embedded default rules.\n";

int cmd_schema(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "rules", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *rules_path = NULL;
	bn_rules *rules = NULL;
	int c, rc;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'r': rules_path = optarg; break;
		case 'h': fputs(schema_usage, stdout); return BN_EXIT_OK;
		default: fprintf(stderr, "Try 'bidnorm schema --help'.\n"); return BN_EXIT_USAGE;
		}
	}
	if (optind < argc)
		return cli_usage_error("schema", "unexpected argument '%s'", argv[optind]);
	rc = cli_load_rules("schema", rules_path, &rules);
	if (rc == BN_EXIT_OK)
		printf("%s\n", bn_rules_schema_json(rules));
	bn_rules_free(rules);
	return rc;
}
