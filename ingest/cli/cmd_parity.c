/* cmd_parity.c - `bidnorm parity`: checks logged serving inputs against the library, a thin client of bn_parity. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
	"usage: bidnorm parity --vocab DIR [--rules FILE|NAME] [--max-mismatch-rate R] [--json] LOG...\n"
	"\n"
	"Each LOG line (JSON Lines, plain, zstd or gzip; '-' = stdin) is one sampled serving request:\n"
	"  {\"raw\": {...bid-log v1 object...}, \"encoded\": {\"app_bundle\": 17, ...}}\n"
	"Every feature in \"encoded\" is recomputed from \"raw\" with the serving API and compared:\n"
	"indices and integers exactly, doubles bitwise (both null is equal). Prints per feature\n"
	"the records compared, mismatched and the mismatch rate, then the first mismatches with\n"
	"the raw value, the served value, the expected value and its normalization trace.\n"
	"\n"
	"  --vocab DIR               vocabulary directory the served model was built with\n"
	"  --rules FILE|NAME         rule file, or a shipped set: bidlog, openrtb; default: the\n"
	"                            rules the vocabulary's manifest names (as 'vocab lint')\n"
	"  --allow-other-rules       use a vocabulary built from data of other rules than --rules\n"
	"                            (for rules changed deliberately)\n"
	"  --max-mismatch-rate R     fail (exit 3) when a feature's mismatch rate, the share of\n"
	"                            raw records the rules reject, or the share of log lines\n"
	"                            that are not parity records (listed with file:line and the\n"
	"                            reason), is above R (default 0)\n"
	"  --examples N              mismatches shown per feature (default 3)\n"
	"  --json                    one JSON object instead of the table (for CI)\n"
	"  -h, --help\n"
	"\n"
	"Exit codes: 0 parity, 1 other failure, 2 usage (also: a vocabulary built from data of\n"
	"other rules than --rules, or whose manifest's rules are not here as they were), 3 a rate\n"
	"above --max-mismatch-rate (feature mismatches, rejected raw records or malformed lines:\n"
	"stderr says which), 4 rule file invalid, 5 unreadable log (missing, corrupt or truncated\n"
	"zstd or gzip, or compressed as bzip2, xz, lz4, zip, snappy or lzop, which are not read),\n"
	"unreadable rule file or a vocabulary that does not fit the rules.\n";

/* Check every line of one log. */
static int check_log(bn_parity *p, const char *path, size_t max_line, bn_error *err)
{
	bn_source *src = NULL;
	bn_source_options so = { .max_line_bytes = max_line, .stdin_command = "bidnorm parity --vocab DIR -" };
	bn_line line;
	int rc = bn_source_open_file(&src, path, &so, err);

	while (rc == BN_OK && (rc = bn_source_next(src, &line, err)) > 0) {
		if (line.too_long) {
			char reason[96];
			snprintf(reason, sizeof(reason), "line of %llu bytes is too long for a parity record",
				 (unsigned long long)line.raw_size);
			rc = bn_parity_add_malformed(p, bn_source_name(src), line.number, 0, reason, line.data, line.size,
						     err);
			continue;
		}
		rc = bn_parity_add(p, bn_source_name(src), line.number, line.data, line.size, err);
	}
	bn_source_free(src);
	return rc;
}

int cmd_parity(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "vocab", required_argument, NULL, 'v' },
		{ "rules", required_argument, NULL, 'r' },
		{ "max-mismatch-rate", required_argument, NULL, 'm' },
		{ "examples", required_argument, NULL, 'e' },
		{ "json", no_argument, NULL, 'j' },
		{ "allow-other-rules", no_argument, NULL, 'A' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *cmd = "parity";
	const char *vocab = NULL, *rules_path = NULL;
	bn_rules *rules = NULL;
	bn_model *model = NULL;
	bn_parity *par = NULL;
	bn_model_options mo;
	char *report = NULL;
	bn_error err;
	double max_rate = 0;
	unsigned long long examples = 3;
	int c, rc, json = 0, failed = 0, exit_code = BN_EXIT_OK;

	bn_error_clear(&err);
	bn_model_options_init(&mo);
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'v': vocab = optarg; break;
		case 'r': rules_path = optarg; break;
		case 'j': json = 1; break;
		case 'A': mo.allow_other_rules = 1; break;
		case 'h': fputs(usage, stdout); return BN_EXIT_OK;
		case 'm':
			if (cli_parse_double(optarg, &max_rate) < 0 || max_rate > 1)
				return cli_usage_error(cmd, "--max-mismatch-rate must be a number from 0 to 1, not '%s'",
						       optarg);
			break;
		case 'e':
			if (cli_parse_uint(optarg, 1000, &examples) < 0)
				return cli_usage_error(cmd, "--examples must be an integer from 0 to 1000, not '%s'", optarg);
			break;
		default:
			fprintf(stderr, "Try 'bidnorm parity --help'.\n");
			return BN_EXIT_USAGE;
		}
	}
	if (!vocab)
		return cli_usage_error(cmd, "--vocab DIR is required");
	if (optind == argc)
		return cli_usage_error(cmd, "no LOG given");
	exit_code = cli_load_rules_for_vocab(cmd, vocab, rules_path, &rules);
	if (exit_code != BN_EXIT_OK)
		goto cleanup;
	rc = bn_model_load_ext(&model, rules, vocab, &mo, &err);
	if (rc == BN_OK)
		rc = bn_parity_new(&par, model, (size_t)examples, &err);
	/* A log line holds a raw record and its encoding: allow twice the rules' line limit. */
	for (int i = optind; rc == BN_OK && i < argc; i++)
		rc = check_log(par, argv[i], 2 * bn_rules_max_line_bytes(rules) + 65536, &err);
	if (rc == BN_OK)
		rc = bn_parity_report(&report, &failed, par, max_rate, json, &err);
	if (rc < 0) {
		cli_print_error(cmd, &err);
		exit_code = cli_exit_code(rc);
		goto cleanup;
	}
	fputs(report, stdout);
	if (failed) {
		/* Name what failed: a log of records the rules reject has no mismatches to blame. */
		const char *sep = "";
		fprintf(stderr, "bidnorm parity: FAILED: above --max-mismatch-rate (%g): ", max_rate);
		if (failed & BN_PARITY_FAILED_MISMATCH) {
			fputs("feature mismatches", stderr);
			sep = ", ";
		}
		if (failed & BN_PARITY_FAILED_REJECTED) {
			fprintf(stderr, "%srecords whose raw object the rules reject (%llu of %llu)", sep,
				(unsigned long long)bn_parity_rejected(par), (unsigned long long)bn_parity_records(par));
			sep = ", ";
		}
		if (failed & BN_PARITY_FAILED_MALFORMED)
			fprintf(stderr, "%smalformed log lines (%llu)", sep, (unsigned long long)bn_parity_malformed(par));
		fputc('\n', stderr);
		exit_code = BN_EXIT_REJECTS;
	}
cleanup:
	free(report);
	bn_parity_free(par);
	bn_model_free(model);
	bn_rules_free(rules);
	return exit_code;
}
