/* cmd_encode.c - `bidnorm encode`: clean Avro from ingest -> training-ready encoded Avro, a thin client of bn_encode_files. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
	"usage: bidnorm encode --vocab DIR [--rules FILE|NAME] -o OUT.avro [OPTIONS] INPUT.avro...\n"
	"\n"
	"Reads Avro written by 'bidnorm ingest' (all with the same rules) and writes the model\n"
	"inputs serving computes for the same records (the serving API, include/bidnorm/serve.h):\n"
	"categorical fields -> vocabulary index (int, 0 = out of vocabulary or null), lists ->\n"
	"array<int> starting with 0, numeric fields as they are, other strings passed through.\n"
	"\n"
	"  --vocab DIR              vocabulary directory (FIELD.txt, as 'bidnorm vocab build' writes)\n"
	"  -o, --output FILE        encoded Avro ('-' = stdout); written to a temporary name\n"
	"                           and renamed only on success\n"
	"      --rules FILE|NAME    rule file, or a shipped set: bidlog, openrtb; default: the\n"
	"                           rules the inputs' Avro headers name (the shipped set with\n"
	"                           their hash, or the rule file they name if still identical)\n"
	"      --allow-other-rules  use a vocabulary built from data of other rules than these\n"
	"                           (its manifest's rules_sha256): for rules changed deliberately\n"
	"      --codec NAME         zstandard (default), deflate, snappy or null\n"
	"      --level N            codec level (default: zstandard 3, deflate 6)\n"
	"      --block-size BYTES   uncompressed Avro block size (default 1048576)\n"
	"  -q, --quiet              no summary line\n"
	"  -h, --help\n"
	"\n"
	"Exit codes: 0 ok, 1 other failure, 2 usage (also: inputs written with other rules than\n"
	"each other or --rules, or with a rule file that is not here as it was, or with another\n"
	"text repair version; a vocabulary built from data of other rules), 4 rule file\n"
	"invalid, 5 input or output error (also: unreadable rule file, a vocabulary that does\n"
	"not fit the rules or was built with another text repair version).\n";

int cmd_encode(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "vocab", required_argument, NULL, 'v' },
		{ "output", required_argument, NULL, 'o' },
		{ "rules", required_argument, NULL, 'r' },
		{ "codec", required_argument, NULL, 'c' },
		{ "level", required_argument, NULL, 'l' },
		{ "block-size", required_argument, NULL, 'b' },
		{ "allow-other-rules", no_argument, NULL, 'A' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *cmd = "encode";
	const char *vocab = NULL, *rules_path = NULL;
	bn_rules *rules = NULL;
	bn_model *model = NULL;
	bn_encode_options opt;
	bn_model_options mo;
	bn_encode_summary sum;
	bn_error err;
	int c, rc, quiet = 0, exit_code = BN_EXIT_OK;

	bn_encode_options_init(&opt);
	bn_model_options_init(&mo);
	bn_error_clear(&err);
	optind = 1;
	while ((c = getopt_long(argc, argv, "o:qh", longopts, NULL)) != -1) {
		switch (c) {
		case 'v': vocab = optarg; break;
		case 'o': opt.output = optarg; break;
		case 'r': rules_path = optarg; break;
		case 'q': quiet = 1; break;
		case 'A': mo.allow_other_rules = 1; break;
		case 'h': fputs(usage, stdout); return BN_EXIT_OK;
		case 'c':
		case 'l':
		case 'b':
			if (cli_avro_option(cmd, c, optarg, &opt.codec, &opt.codec_level, &opt.block_bytes) != BN_EXIT_OK)
				return BN_EXIT_USAGE;
			break;
		default:
			fprintf(stderr, "Try 'bidnorm encode --help'.\n");
			return BN_EXIT_USAGE;
		}
	}
	if (cli_avro_check(cmd, opt.codec, opt.codec_level) != BN_EXIT_OK)
		return BN_EXIT_USAGE;
	if (!vocab)
		return cli_usage_error(cmd, "--vocab DIR is required");
	if (!opt.output)
		return cli_usage_error(cmd, "-o OUT.avro is required");
	if (optind == argc)
		return cli_usage_error(cmd, "no input given");
	exit_code = cli_load_rules_for_avro(cmd, rules_path, (const char *const *)argv + optind, (size_t)(argc - optind),
					    0, &rules);
	if (exit_code != BN_EXIT_OK)
		goto cleanup;
	rc = bn_model_load_ext(&model, rules, vocab, &mo, &err);
	if (rc == BN_OK) {
		opt.model = model;
		opt.inputs = (const char *const *)argv + optind;
		opt.ninputs = (size_t)(argc - optind);
		rc = bn_encode_files(&sum, &opt, &err);
	}
	if (rc < 0) {
		cli_print_error(cmd, &err);
		exit_code = cli_exit_code(rc);
		goto cleanup;
	}
	if (!quiet)
		fprintf(stderr, "bidnorm encode: done: %llu records, %.1f MB -> %s\n", (unsigned long long)sum.records,
			(double)sum.bytes_written / 1e6, opt.output);
cleanup:
	bn_model_free(model);
	bn_rules_free(rules);
	return exit_code;
}
