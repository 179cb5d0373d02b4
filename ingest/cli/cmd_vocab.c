/* cmd_vocab.c - `bidnorm vocab build|count|merge|lint|diff|regen`: vocabularies from clean Avro, a thin client of bidnorm/vocab.h. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bidnorm/vocab.h"
#include "cli.h"

enum { SUB_BUILD = 1, SUB_COUNT = 2, SUB_MERGE = 4, SUB_LINT = 8, SUB_DIFF = 16, SUB_REGEN = 32 };

/* One line per subcommand: its synopsis, and what it does. */
static const struct {
	const char *name;
	int bit;
	const char *synopsis;
	const char *what;
} subs[] = {
	{ "build", SUB_BUILD, "vocab build -o DIR --field F [OPTIONS] INPUT.avro...",
	  "Counts the fields' tokens in the Avro that 'bidnorm ingest' writes and writes the\n"
	  "vocabulary directory DIR.\n" },
	{ "count", SUB_COUNT, "vocab count -o PART --field F [--where EXPR]... [--source-name NAME] INPUT.avro...",
	  "Counts one shard of the inputs into a partial counts file PART, for 'vocab merge'.\n" },
	{ "merge", SUB_MERGE, "vocab merge -o DIR [OPTIONS] PART...  |  vocab merge --part -o PART PART...",
	  "Merges the partial counts of 'vocab count' into the vocabulary directory DIR;\n"
	  "the token files are byte-identical to one 'vocab build' over all the inputs.\n"
	  "With --part, into a part again, so merges can form a tree. An input counted\n"
	  "twice (a part merged twice, parts that share an input) is refused.\n" },
	{ "lint", SUB_LINT, "vocab lint DIR [--rules FILE|NAME]",
	  "Checks that every token of DIR is a fixed point of its field's normalizer chain: of\n"
	  "the rules DIR/manifest.json records (the shipped set with its rules_sha256, else the\n"
	  "rule file its rules_source names, if still identical), or --rules.\n" },
	{ "diff", SUB_DIFF, "vocab diff OLD NEW [--json]",
	  "Added, removed and re-indexed tokens, overlap and coverage change per field.\n" },
	{ "regen", SUB_REGEN, "vocab regen --root ROOT --task NAME --field F [OPTIONS] INPUT.avro...",
	  "Builds ROOT/NAME/<UTC time>/, diffs it against ROOT/NAME/current and switches\n"
	  "current to it unless a guardrail (--max-churn, --max-coverage-drop) refuses.\n" },
};

static const char about[] =
	"DIR gets FIELD.txt (one token per line; line k = index k; index 0 is reserved for\n"
	"out-of-vocabulary values and is not in the file, as Keras StringLookup(vocabulary=\n"
	"FILE, num_oov_indices=1, mask_token=None) expects), FIELD.counts.tsv (token TAB\n"
	"count) and manifest.json. Tokens are ordered by count (descending), then by their\n"
	"bytes. Every token is linted before anything is written: it must be a fixed point\n"
	"of its field's normalizer chain. The parent folder of DIR is created if missing.\n";

static const char exit_codes[] =
	"Exit codes: 0 ok, 1 lint failure, out of memory (also past --max-memory) or other\n"
	"failure, 2 usage (also a --where value the field cannot hold, inputs whose rules disagree\n"
	"with each other or --rules, or whose rule file is not here as it was, inputs of another\n"
	"text repair version; lint: rules the manifest records that are not here as they were),\n"
	"3 nothing published: no row matched (a vocabulary from zero rows) or the regen guardrail\n"
	"refused the switch, 4 rule file invalid, 5 input or output error (unreadable or corrupt\n"
	"Avro or part file, unreadable rule file).\n";

enum {
	OPT_MIN_COUNT = 256, OPT_TOP_K, OPT_TASK, OPT_MAX_MEMORY, OPT_MIXED, OPT_RULES, OPT_FORCE, OPT_JSON,
	OPT_ROOT, OPT_MAX_CHURN, OPT_MAX_COV, OPT_KEEP, OPT_SPILL_DIR, OPT_PART, OPT_SOURCE_NAME, OPT_DIE_WITH_PARENT,
	OPT_OTHER_REPAIR
};

/* Which subcommands take each option (by getopt value), and its help text: one table drives both. */
static const struct {
	int val;
	const char *name;
	int subs;
	const char *help;
} option_scope[] = {
	{ 'o', "--output", SUB_BUILD | SUB_COUNT | SUB_MERGE,
	  "  -o, --output PATH          the vocabulary directory (build, merge) or part file (count,\n"
	  "                             merge --part); a directory may not end in .part\n" },
	{ 'f', "--field", SUB_BUILD | SUB_COUNT | SUB_REGEN,
	  "  -f, --field F[,F...]       a string, [\"null\",\"string\"] or array<string> field (repeatable)\n" },
	{ 'w', "--where", SUB_BUILD | SUB_COUNT | SUB_REGEN,
	  "  -w, --where EXPR           count only records where FIELD=VALUE, FIELD!=VALUE (null\n"
	  "                             counts as different), FIELD<VALUE (also <=, >, >=: int,\n"
	  "                             long and timestamp fields) or FIELD (not null); repeatable,\n"
	  "                             ANDed; VALUE is normalized as the field is (a string through\n"
	  "                             its chain: os=iOS means os=ios); an int or long field takes\n"
	  "                             a decimal integer, a timestamp a date (2026-11-01, midnight\n"
	  "                             UTC), an ISO-8601 time with its zone or epoch milliseconds,\n"
	  "                             a boolean true or false\n" },
	{ OPT_MIN_COUNT, "--min-count", SUB_BUILD | SUB_MERGE | SUB_REGEN,
	  "      --min-count M          keep tokens seen at least M times (default 1)\n" },
	{ OPT_TOP_K, "--top-k", SUB_BUILD | SUB_MERGE | SUB_REGEN,
	  "      --top-k N              keep at most N tokens per field (default: all)\n" },
	{ OPT_TASK, "--task", SUB_BUILD | SUB_MERGE | SUB_REGEN,
	  "      --task NAME            model/task name, recorded in the manifest\n" },
	{ OPT_MAX_MEMORY, "--max-memory", SUB_BUILD | SUB_COUNT | SUB_MERGE | SUB_REGEN,
	  "      --max-memory BYTES     memory for counting (suffix K, M, G); past it, counts spill\n"
	  "                             to disk in sorted runs, merged at the end (output unchanged)\n" },
	{ OPT_SPILL_DIR, "--spill-dir", SUB_BUILD | SUB_COUNT | SUB_MERGE | SUB_REGEN,
	  "      --spill-dir DIR        where spilled runs go (default $TMPDIR, else /tmp)\n" },
	{ OPT_MIXED, "--allow-mixed-rules", SUB_BUILD | SUB_COUNT | SUB_MERGE | SUB_REGEN,
	  "      --allow-mixed-rules    accept inputs written with other rules than --rules, or than\n"
	  "                             each other (then --rules names the rules to use)\n" },
	{ OPT_RULES, "--rules", SUB_BUILD | SUB_COUNT | SUB_MERGE | SUB_LINT | SUB_REGEN,
	  "      --rules FILE|NAME      rules (a file, or bidlog, openrtb) to lint against and\n"
	  "                             normalize --where values with; default: those the inputs'\n"
	  "                             Avro headers name (merge: the shipped set of the parts' rules\n"
	  "                             hash; lint: those DIR/manifest.json names). Inputs written\n"
	  "                             with other rules are refused unless --allow-mixed-rules\n" },
	{ OPT_OTHER_REPAIR, "--allow-other-text-repair", SUB_BUILD | SUB_COUNT | SUB_MERGE | SUB_REGEN,
	  "      --allow-other-text-repair\n"
	  "                             count inputs (merge: parts of inputs) written with another\n"
	  "                             text repair version than this bidnorm's (refused by default:\n"
	  "                             serving refuses such a vocabulary; re-ingest them instead)\n" },
	{ OPT_FORCE, "--force", SUB_BUILD | SUB_MERGE | SUB_REGEN,
	  "      --force                replace an existing DIR (build, merge); switch even when a\n"
	  "                             guardrail refuses (regen)\n" },
	{ OPT_JSON, "--json", SUB_DIFF,
	  "      --json                 diff as JSON\n" },
	{ OPT_ROOT, "--root", SUB_REGEN,
	  "      --root ROOT            regen: versions go to ROOT/NAME/<UTC time>/, ROOT/NAME/current\n"
	  "                             links the one in use\n" },
	{ OPT_MAX_CHURN, "--max-churn", SUB_REGEN,
	  "      --max-churn X          regen: refuse when more than this share of the old indices\n"
	  "                             change token (default 0.2)\n" },
	{ OPT_MAX_COV, "--max-coverage-drop", SUB_REGEN,
	  "      --max-coverage-drop X  regen: refuse when a field's coverage drops more (default 0.05)\n" },
	{ OPT_KEEP, "--keep", SUB_REGEN,
	  "      --keep K               regen: versions kept (default 5)\n" },
	{ OPT_PART, "--part", SUB_MERGE,
	  "      --part                 merge: write the merged counts as a part, for a tree of merges\n" },
	{ OPT_SOURCE_NAME, "--source-name", SUB_COUNT,
	  "      --source-name NAME     count: record the one input as NAME (e.g. the URL it was\n"
	  "                             fetched from) instead of its path\n" },
	{ OPT_DIE_WITH_PARENT, "--die-with-parent", SUB_BUILD | SUB_COUNT | SUB_MERGE,
	  "      --die-with-parent      be killed (SIGKILL) when the parent process dies (a lost\n"
	  "                             cluster worker leaves no orphan)\n" },
	{ 'q', "--quiet", SUB_BUILD | SUB_COUNT | SUB_MERGE | SUB_LINT | SUB_DIFF | SUB_REGEN,
	  "  -q, --quiet                no summary\n" },
	{ 'h', "--help", SUB_BUILD | SUB_COUNT | SUB_MERGE | SUB_LINT | SUB_DIFF | SUB_REGEN,
	  "  -h, --help\n" },
};

/* Help for one subcommand (bit), or for all of them (bit 0). */
static void print_help(FILE *out, int bit)
{
	int first = 1;
	for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
		if (bit && subs[i].bit != bit)
			continue;
		fprintf(out, "%s bidnorm %s\n", first ? "usage:" : "      ", subs[i].synopsis);
		first = 0;
	}
	fputc('\n', out);
	for (size_t i = 0; bit && i < sizeof(subs) / sizeof(subs[0]); i++)
		if (subs[i].bit == bit)
			fprintf(out, "%s\n", subs[i].what);
	if (!bit || bit & (SUB_BUILD | SUB_MERGE | SUB_REGEN))
		fprintf(out, "%s\n", about);
	for (size_t i = 0; i < sizeof(option_scope) / sizeof(option_scope[0]); i++)
		if (!bit || option_scope[i].subs & bit)
			fputs(option_scope[i].help, out);
	fputc('\n', out);
	fputs(exit_codes, out);
}

typedef struct args {
	const char *sub;
	int subbit;
	const char *output, *task, *rules_path, *root, *spill_dir, *source_name;
	const char **fields;
	size_t nfields;
	const char **where;
	size_t nwhere;
	char **owned;          /* copies of comma-separated field lists */
	size_t nowned;
	unsigned long long min_count, top_k, max_memory, keep;
	double max_churn, max_cov;
	int mixed, force, json, quiet, part, die_with_parent, other_repair;
	char cmd[32];
	pid_t parent;            /* getppid() when the command started, for --die-with-parent */
} args;

/* "512M" -> bytes; 0 on success. */
static int parse_bytes(const char *s, unsigned long long *out)
{
	char *end;
	unsigned long long v, mul = 1;
	if (*s < '0' || *s > '9')
		return -1;
	v = strtoull(s, &end, 10);
	if (*end == 'K' || *end == 'k')
		mul = 1ull << 10;
	else if (*end == 'M' || *end == 'm')
		mul = 1ull << 20;
	else if (*end == 'G' || *end == 'g')
		mul = 1ull << 30;
	else if (*end)
		return -1;
	if (mul > 1 && end[1])
		return -1;
	if (v > ~0ull / mul)
		return -1;
	*out = v * mul;
	return 0;
}

static int add_fields(args *a, const char *list)
{
	char *copy = strdup(list), *save = NULL;
	if (!copy)
		return -1;
	a->owned[a->nowned++] = copy;
	for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
		a->fields[a->nfields++] = tok;
	return 0;
}

static int parse_args(args *a, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "field", required_argument, NULL, 'f' },
		{ "where", required_argument, NULL, 'w' },
		{ "min-count", required_argument, NULL, OPT_MIN_COUNT },
		{ "top-k", required_argument, NULL, OPT_TOP_K },
		{ "task", required_argument, NULL, OPT_TASK },
		{ "max-memory", required_argument, NULL, OPT_MAX_MEMORY },
		{ "allow-mixed-rules", no_argument, NULL, OPT_MIXED },
		{ "rules", required_argument, NULL, OPT_RULES },
		{ "force", no_argument, NULL, OPT_FORCE },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "root", required_argument, NULL, OPT_ROOT },
		{ "max-churn", required_argument, NULL, OPT_MAX_CHURN },
		{ "max-coverage-drop", required_argument, NULL, OPT_MAX_COV },
		{ "keep", required_argument, NULL, OPT_KEEP },
		{ "spill-dir", required_argument, NULL, OPT_SPILL_DIR },
		{ "part", no_argument, NULL, OPT_PART },
		{ "source-name", required_argument, NULL, OPT_SOURCE_NAME },
		{ "die-with-parent", no_argument, NULL, OPT_DIE_WITH_PARENT },
		{ "allow-other-text-repair", no_argument, NULL, OPT_OTHER_REPAIR },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "o:f:w:qh", longopts, NULL)) != -1) {
		if (c == 'h') {
			print_help(stdout, a->subbit);
			return -1;
		}
		for (size_t i = 0; i < sizeof(option_scope) / sizeof(option_scope[0]); i++) {
			if (option_scope[i].val == c && !(option_scope[i].subs & a->subbit)) {
				cli_usage_error(a->cmd, "%s does not apply to 'vocab %s'", option_scope[i].name, a->sub);
				return BN_EXIT_USAGE;
			}
		}
		switch (c) {
		case 'o': a->output = optarg; break;
		case 'f':
			if (add_fields(a, optarg) < 0) {
				fprintf(stderr, "bidnorm %s: out of memory\n", a->cmd);
				return BN_EXIT_FAILURE;
			}
			break;
		case 'w': a->where[a->nwhere++] = optarg; break;
		case 'q': a->quiet = 1; break;
		case OPT_MIN_COUNT:
			if (cli_parse_uint(optarg, ~0ull, &a->min_count) < 0 || a->min_count == 0) {
				cli_usage_error(a->cmd, "--min-count must be an integer of at least 1, not '%s'", optarg);
				return BN_EXIT_USAGE;
			}
			break;
		case OPT_TOP_K:
			if (cli_parse_uint(optarg, ~0ull, &a->top_k) < 0 || a->top_k == 0) {
				cli_usage_error(a->cmd, "--top-k must be an integer of at least 1, not '%s'", optarg);
				return BN_EXIT_USAGE;
			}
			break;
		case OPT_TASK: a->task = optarg; break;
		case OPT_MAX_MEMORY:
			if (parse_bytes(optarg, &a->max_memory) < 0 || a->max_memory == 0) {
				cli_usage_error(a->cmd, "--max-memory must be a byte count like 1073741824 or 512M, not '%s'",
						optarg);
				return BN_EXIT_USAGE;
			}
			break;
		case OPT_MIXED: a->mixed = 1; break;
		case OPT_RULES: a->rules_path = optarg; break;
		case OPT_FORCE: a->force = 1; break;
		case OPT_JSON: a->json = 1; break;
		case OPT_ROOT: a->root = optarg; break;
		case OPT_MAX_CHURN:
		case OPT_MAX_COV: {
			double v;
			if (cli_parse_double(optarg, &v) < 0 || v > 1) {
				cli_usage_error(a->cmd, "%s must be a number from 0 to 1, not '%s'",
						c == OPT_MAX_CHURN ? "--max-churn" : "--max-coverage-drop", optarg);
				return BN_EXIT_USAGE;
			}
			*(c == OPT_MAX_CHURN ? &a->max_churn : &a->max_cov) = v;
			break;
		}
		case OPT_SPILL_DIR:
			a->spill_dir = optarg;
			break;
		case OPT_PART: a->part = 1; break;
		case OPT_DIE_WITH_PARENT: a->die_with_parent = 1; break;
		case OPT_OTHER_REPAIR: a->other_repair = 1; break;
		case OPT_SOURCE_NAME:
			if (!*optarg) {
				cli_usage_error(a->cmd, "--source-name must not be empty");
				return BN_EXIT_USAGE;
			}
			a->source_name = optarg;
			break;
		case OPT_KEEP:
			if (cli_parse_uint(optarg, 1000000, &a->keep) < 0 || a->keep == 0) {
				cli_usage_error(a->cmd, "--keep must be an integer of at least 1, not '%s'", optarg);
				return BN_EXIT_USAGE;
			}
			break;
		default:
			fprintf(stderr, "Try 'bidnorm %s --help'.\n", a->cmd);
			return BN_EXIT_USAGE;
		}
	}
	return BN_EXIT_OK;
}

static void print_bad_token(void *ctx, const bn_error *e)
{
	char msg[2048];
	bn_error_format(e, msg, sizeof(msg));
	fprintf(ctx, "%s\n", msg);
}

static int ends_with_part(const char *path)
{
	size_t n = strlen(path);
	while (n > 1 && path[n - 1] == '/')
		n--;
	return n >= 5 && strncmp(path + n - 5, ".part", 5) == 0;
}

static int fail(const char *cmd, const bn_error *err, int rc)
{
	cli_print_error(cmd, err);
	return cli_exit_code(rc);
}

static void print_summary(const char *cmd, const bn_vocab_counter *c, const char *dest)
{
	fprintf(stderr, "bidnorm %s: %llu rows scanned, %llu matched", cmd,
		(unsigned long long)bn_vocab_counter_rows_scanned(c), (unsigned long long)bn_vocab_counter_rows_matched(c));
	for (size_t i = 0; i < bn_vocab_counter_field_count(c); i++)
		fprintf(stderr, "; %s: %llu distinct", bn_vocab_counter_field_name(c, i),
			(unsigned long long)bn_vocab_counter_distinct(c, i));
	fprintf(stderr, "; %.1f MB counting memory", (double)bn_vocab_counter_peak_memory(c) / 1e6);
	if (bn_vocab_counter_spilled_runs(c))
		fprintf(stderr, ", %llu runs spilled to disk", (unsigned long long)bn_vocab_counter_spilled_runs(c));
	fprintf(stderr, " -> %s\n", dest);
}

/* Warn when the inputs were written with other rules than those the tokens are linted against. */
static void note_rules(const char *cmd, const bn_rules *rules, const char *dir)
{
	char *path = malloc(strlen(dir) + 32);
	char buf[4096];
	if (!path)
		return;
	sprintf(path, "%s/manifest.json", dir);
	FILE *f = fopen(path, "r");
	free(path);
	if (!f)
		return;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	const char *p = strstr(buf, "\"rules_sha256\": \"");
	if (!p)
		return;
	const char *v = p + 17;
	size_t len = strcspn(v, "\"");
	if (len == 5 && strncmp(v, "mixed", 5) == 0)
		fprintf(stderr, "bidnorm %s: note: the inputs were written with several rules; the tokens were linted "
			"against %s (%.12s...)\n", cmd, bn_rules_source_name(rules), bn_rules_sha256(rules));
	else if (len && (len != 64 || strncmp(v, bn_rules_sha256(rules), 64) != 0))
		fprintf(stderr, "bidnorm %s: note: the inputs were written with other rules (%.*s...) than %s (%.12s...)\n",
			cmd, (int)(len < 12 ? len : 12), v, bn_rules_source_name(rules), bn_rules_sha256(rules));
}

static int run(args *a, int argc, char **argv)
{
	bn_vocab_counter *c = NULL;
	bn_rules *rules = NULL;
	bn_error err;
	int rc, exit_code = BN_EXIT_OK;
	char **inputs = argv + optind;
	size_t ninputs = (size_t)(argc - optind);
	const char *cmd = a->cmd;

	bn_error_clear(&err);
	if (a->subbit == SUB_LINT) {
		uint64_t bad = 0;
		if (ninputs != 1)
			return cli_usage_error(cmd, "expected one vocabulary directory");
		exit_code = cli_load_rules_for_vocab(cmd, inputs[0], a->rules_path, &rules);
		if (exit_code != BN_EXIT_OK)
			return exit_code;
		rc = bn_vocab_lint(&bad, inputs[0], rules, print_bad_token, stdout, &err);
		if (rc < 0)
			exit_code = fail(cmd, &err, rc);
		else if (bad) {
			fprintf(stderr, "bidnorm %s: %llu bad tokens\n", cmd, (unsigned long long)bad);
			exit_code = BN_EXIT_FAILURE;
		} else if (!a->quiet) {
			fprintf(stderr, "bidnorm %s: ok\n", cmd);
		}
		goto cleanup;
	}
	if (a->subbit == SUB_DIFF) {
		char *text = NULL;
		if (ninputs != 2)
			return cli_usage_error(cmd, "expected OLD and NEW vocabulary directories");
		rc = bn_vocab_diff(&text, NULL, inputs[0], inputs[1], a->json, &err);
		if (rc < 0)
			return fail(cmd, &err, rc);
		fputs(text, stdout);
		free(text);
		return BN_EXIT_OK;
	}

	if (a->subbit != SUB_MERGE && a->nfields == 0)
		return cli_usage_error(cmd, "no field given: use --field NAME");
	if ((a->subbit & (SUB_BUILD | SUB_COUNT | SUB_MERGE)) && !a->output)
		return cli_usage_error(cmd, "no output given: use -o %s", a->subbit == SUB_COUNT ? "PART" : "DIR");
	if (a->part) {
		/* a part keeps every count: selection and the directory's options come at the last merge */
		const char *not_part = a->min_count ? "--min-count" : a->top_k ? "--top-k" : a->task ? "--task"
				       : a->rules_path ? "--rules" : a->force ? "--force" : NULL;
		if (not_part)
			return cli_usage_error(cmd, "%s does not apply to 'vocab merge --part' (a part keeps every count)",
					       not_part);
	} else if ((a->subbit & (SUB_BUILD | SUB_MERGE)) && a->output && ends_with_part(a->output)) {
		return cli_usage_error(cmd, "-o %s ends in .part but would become a vocabulary directory: %s", a->output,
				       a->subbit == SUB_MERGE ? "merge into a part with --part, or name the directory otherwise"
							      : "write a part with 'vocab count', or name the directory otherwise");
	}
	if (a->die_with_parent && cli_die_with_parent(cmd, a->parent) != BN_EXIT_OK)
		return BN_EXIT_FAILURE;
	if (a->source_name && ninputs != 1)
		return cli_usage_error(cmd, "--source-name names one input; %zu given", ninputs);
	if (a->subbit == SUB_REGEN && (!a->root || !a->task))
		return cli_usage_error(cmd, "regen needs --root ROOT and --task NAME");
	if (ninputs == 0)
		return cli_usage_error(cmd, "no input given: name %s", a->subbit == SUB_MERGE ? "PART files" : "Avro files");

	/* Every check that needs no counts runs before any input is read. */
	bn_vocab_write_options wo;
	bn_vocab_regen_options ro;
	bn_vocab_write_options_init(&wo);
	wo.min_count = a->min_count ? a->min_count : 1;
	wo.top_k = a->top_k;
	wo.task = a->task;
	wo.force = a->force;
	bn_vocab_regen_options_init(&ro);
	ro.root = a->root;
	ro.task = a->task;
	ro.write = wo;
	ro.write.task = NULL;
	ro.write.force = 0;
	if (!isnan(a->max_churn))
		ro.max_churn = a->max_churn;
	if (!isnan(a->max_cov))
		ro.max_coverage_drop = a->max_cov;
	if (a->keep)
		ro.keep = (unsigned)a->keep;
	ro.force = a->force;
	rc = BN_OK;
	if ((a->subbit & (SUB_BUILD | SUB_MERGE)) && !a->part)
		rc = bn_vocab_write_check(a->output, &wo, &err);
	else if (a->subbit == SUB_REGEN)
		rc = bn_vocab_regen_check(&ro, &err);
	if (rc < 0) {
		exit_code = fail(cmd, &err, rc);
		goto cleanup;
	}
	/*
	 * Avro inputs name their rules in their headers; parts only by hash, known once they are
	 * merged (a --rules that cannot load still fails here, before any part is read).
	 */
	if (a->subbit != SUB_MERGE)
		exit_code = cli_load_rules_for_avro(cmd, a->rules_path, (const char *const *)inputs, ninputs, a->mixed,
						    &rules);
	else if (a->rules_path)
		exit_code = cli_load_rules(cmd, a->rules_path, &rules);
	if (exit_code != BN_EXIT_OK)
		goto cleanup;
	/* Tokens of another text repair make a vocabulary serving refuses: say so before counting for hours. */
	if (!a->other_repair) {
		rc = a->subbit == SUB_MERGE ? bn_vocab_check_parts_text_repair((const char *const *)inputs, ninputs, &err)
					    : bn_vocab_check_text_repair((const char *const *)inputs, ninputs, &err);
		if (rc < 0) {
			exit_code = fail(cmd, &err, rc);
			goto cleanup;
		}
	}

	rc = bn_vocab_counter_new(&c, a->fields, a->nfields, a->where, a->nwhere, (size_t)a->max_memory, a->mixed, &err);
	if (rc == BN_OK && (a->max_memory || a->spill_dir))
		rc = bn_vocab_counter_spill_to(c, a->spill_dir, &err);
	/* Filters mean what the user meant (os=iOS is os=ios in the Avro), and a value no row can hold is refused. */
	if (rc == BN_OK && a->subbit != SUB_MERGE) /* merge takes its filters, already resolved, from the parts */
		rc = bn_vocab_counter_resolve_where(c, rules, &err);
	if (rc < 0) {
		exit_code = rc == BN_EUSAGE ? cli_usage_error(cmd, "%s", err.message) : fail(cmd, &err, rc);
		goto cleanup;
	}
	for (size_t i = 0; !a->quiet && i < bn_vocab_counter_where_count(c); i++) {
		const char *text = bn_vocab_counter_where_text(c, i), *value = bn_vocab_counter_where_value(c, i);
		const char *given = bn_vocab_counter_where_given(c, i);
		if (value && strcmp(given, value) != 0)
			fprintf(stderr, "bidnorm %s: note: --where '%s' compares with '%s', the value normalized as the field is\n",
				cmd, text, value);
	}
	for (size_t i = 0; i < ninputs; i++) {
		rc = a->subbit == SUB_MERGE ? bn_vocab_counter_merge_part(c, inputs[i], &err)
					    : bn_vocab_counter_add_avro_named(c, inputs[i], a->source_name, &err);
		if (rc < 0) {
			exit_code = fail(cmd, &err, rc);
			goto cleanup;
		}
	}

	if (a->subbit == SUB_MERGE && !a->part) {
		bn_rules_free(rules);
		rules = NULL;
		rc = bn_vocab_counter_load_rules(&rules, c, a->rules_path, &err);
		if (rc < 0) {
			exit_code = fail(cmd, &err, rc);
			goto cleanup;
		}
	}
	wo.rules = rules;
	ro.write.rules = rules;

	if (a->subbit == SUB_COUNT || a->part) {
		rc = bn_vocab_counter_write_part(c, a->output, &err);
		if (rc < 0)
			exit_code = fail(cmd, &err, rc);
		else if (!a->quiet)
			print_summary(cmd, c, a->output);
		goto cleanup;
	}

	if (a->subbit == SUB_REGEN) {
		bn_vocab_regen_result res;
		rc = bn_vocab_regen(&res, c, &ro, print_bad_token, stderr, &err);
		if (rc < 0) {
			exit_code = fail(cmd, &err, rc);
		} else if (res.lint_failures) {
			fprintf(stderr, "bidnorm %s: lint failed: %llu bad tokens; nothing written\n", cmd,
				(unsigned long long)res.lint_failures);
			exit_code = BN_EXIT_FAILURE;
		} else {
			if (res.diff_text && (res.refused || !a->quiet))
				fputs(res.diff_text, stdout);
			if (res.refused && !res.switched) {
				fprintf(stderr,
					"bidnorm %s: refused to switch %s/%s/current to %s: churn %.4f (%s; limit %.4f), "
					"coverage drop %.4f (%s; limit %.4f); the new version stays for inspection, "
					"--force switches anyway\n",
					cmd, a->root, a->task, res.version, res.diff.max_churn, res.diff.churn_field,
					ro.max_churn, res.diff.max_coverage_drop, res.diff.coverage_field[0] ? res.diff.coverage_field : "-",
					ro.max_coverage_drop);
				exit_code = BN_EXIT_REJECTS;
			} else if (!a->quiet) {
				fprintf(stderr, "bidnorm %s: %s/%s/current -> %s%s\n", cmd, a->root, a->task, res.version,
					res.refused ? " (guardrail overridden by --force)" : "");
			}
		}
		bn_vocab_regen_result_free(&res);
		goto cleanup;
	}

	bn_vocab_write_result wr;
	rc = bn_vocab_write(&wr, c, a->output, &wo, print_bad_token, stderr, &err);
	if (rc < 0) {
		exit_code = fail(cmd, &err, rc);
	} else if (wr.lint_failures) {
		fprintf(stderr, "bidnorm %s: lint failed: %llu bad tokens; nothing written\n", cmd,
			(unsigned long long)wr.lint_failures);
		exit_code = BN_EXIT_FAILURE;
	} else if (!a->quiet) {
		note_rules(cmd, rules, a->output);
		print_summary(cmd, c, a->output);
	}
cleanup:
	bn_vocab_counter_free(c);
	bn_rules_free(rules);
	return exit_code;
}

int cmd_vocab(int argc, char **argv)
{
	args a;
	int exit_code;

	memset(&a, 0, sizeof(a));
	a.parent = getppid();
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		print_help(argc < 2 ? stderr : stdout, 0);
		return argc < 2 ? BN_EXIT_USAGE : BN_EXIT_OK;
	}
	for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
		if (strcmp(argv[1], subs[i].name) == 0) {
			a.sub = subs[i].name;
			a.subbit = subs[i].bit;
		}
	}
	if (!a.sub)
		return cli_usage_error("vocab", "unknown subcommand '%s' (build, count, merge, lint, diff or regen)", argv[1]);
	snprintf(a.cmd, sizeof(a.cmd), "vocab %s", a.sub);
	a.max_churn = NAN;
	a.max_cov = NAN;
	/* room for every argument as a field or filter, and every comma as one more field */
	size_t slots = (size_t)argc;
	for (int i = 0; i < argc; i++) {
		for (const char *p = argv[i]; *p; p++)
			slots += *p == ',';
	}
	a.fields = calloc(slots, sizeof(*a.fields));
	a.where = calloc((size_t)argc, sizeof(*a.where));
	a.owned = calloc((size_t)argc, sizeof(*a.owned));
	if (!a.fields || !a.where || !a.owned) {
		fprintf(stderr, "bidnorm vocab: out of memory\n");
		exit_code = BN_EXIT_FAILURE;
		goto cleanup;
	}
	exit_code = parse_args(&a, argc - 1, argv + 1);
	if (exit_code < 0) {
		exit_code = BN_EXIT_OK;
		goto cleanup;
	}
	if (exit_code == BN_EXIT_OK)
		exit_code = run(&a, argc - 1, argv + 1);
cleanup:
	for (size_t i = 0; i < a.nowned; i++)
		free(a.owned[i]);
	free(a.owned);
	free(a.fields);
	free(a.where);
	return exit_code;
}
