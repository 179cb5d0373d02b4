/* main.c - the bidnorm command: dispatches to one subcommand per file, each a thin client of libbidnorm. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
	"usage: bidnorm COMMAND [OPTIONS] [ARGS]\n"
	"\n"
	"Normalizes raw ad-impression logs (JSON Lines, plain or zstd) into clean Avro.\n"
	"\n"
	"commands:\n"
	"  ingest      raw logs -> one Avro file, a reject file and a stats file\n"
	"  normalize   show what the rules make of one value (--trace: after every step)\n"
	"  schema      print the Avro schema a rule file produces\n"
	"  rules       print the default rules, or check a rule file\n"
	"  watch       process every log file that lands in a folder, exactly once\n"
	"  vocab       build, merge, lint, diff and regenerate vocabularies\n"
	"  encode      clean Avro -> model inputs (vocab indices), as serving computes them\n"
	"  parity      check logged serving tensors against what the rules compute\n"
	"  version     print the version\n"
	"\n"
	"'bidnorm COMMAND --help' describes a command. Exit codes: 0 ok, 1 other failure,\n"
	"2 usage, 3 a guardrail withheld the output, 4 rule file invalid, 5 input or output\n"
	"error.\n";

int main(int argc, char **argv)
{
	if (argc < 2) {
		fputs(usage, stderr);
		return BN_EXIT_USAGE;
	}
	const char *cmd = argv[1];
	/* A file size limit (ulimit -f) must fail the write with EFBIG, reported and cleaned up,
	 * not kill the process and leave temporary files behind. */
	signal(SIGXFSZ, SIG_IGN);
	if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
		fputs(usage, stdout);
		return BN_EXIT_OK;
	}
	if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
		printf("bidnorm %s\n", bn_version());
		return BN_EXIT_OK;
	}
	if (strcmp(cmd, "ingest") == 0)
		return cmd_ingest(argc - 1, argv + 1);
	if (strcmp(cmd, "normalize") == 0)
		return cmd_normalize(argc - 1, argv + 1);
	if (strcmp(cmd, "schema") == 0)
		return cmd_schema(argc - 1, argv + 1);
	if (strcmp(cmd, "encode") == 0)
		return cmd_encode(argc - 1, argv + 1);
	if (strcmp(cmd, "parity") == 0)
		return cmd_parity(argc - 1, argv + 1);
	if (strcmp(cmd, "watch") == 0)
		return cmd_watch(argc - 1, argv + 1);
	if (strcmp(cmd, "vocab") == 0)
		return cmd_vocab(argc - 1, argv + 1);
	if (strcmp(cmd, "rules") == 0)
		return cmd_rules(argc - 1, argv + 1);
	fprintf(stderr, "bidnorm: unknown command '%s'\n\n%s", cmd, usage);
	return BN_EXIT_USAGE;
}
