/* cmd_ingest.c - `bidnorm ingest`: the batch pipeline step, a thin client of bn_ingest_run. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

static const char usage[] =
	"usage: bidnorm ingest [OPTIONS] [INPUT...]\n"
	"\n"
	"Reads raw bid logs (JSON Lines; plain, zstd or gzip, detected from the content;\n"
	"'-' or none = stdin), normalizes every record with the rules and writes one Avro\n"
	"file. Every record is either written or rejected with a reason.\n"
	"\n"
	"  -o, --output FILE        Avro output ('-' = stdout); written to a temporary\n"
	"                           name and renamed only on success\n"
	"      --rules FILE|NAME    rule file, or a shipped set: bidlog (the default), openrtb\n"
	"      --rejects FILE       reject file, JSON Lines (default: OUTPUT.rejects.jsonl; with\n"
	"                           -o - or a device, none unless given: rejects go to stderr)\n"
	"      --stats FILE         stats file, JSON (default: OUTPUT.stats.json; with -o - or\n"
	"                           a device, none unless given)\n"
	"      --codec NAME         zstandard (default), deflate, snappy or null\n"
	"      --level N            codec level (default: zstandard 3, deflate 6)\n"
	"      --max-reject-rate R  fail, publishing no output, when more than this share\n"
	"                           of records is rejected (default 0.01; 1 = never)\n"
	"      --threads N          worker threads (default 1)\n"
	"      --block-size BYTES   uncompressed Avro block size (default 1048576)\n"
	"      --source-name NAME   call the one input NAME (e.g. the URL it was fetched\n"
	"                           from) in the Avro header, rejects, stats and messages\n"
	"      --die-with-parent    be killed (SIGKILL) when the parent process dies, so a\n"
	"                           lost cluster worker leaves no orphan writing outputs\n"
	"      --reject-raw full|none|truncate:BYTES\n"
	"                           what reject lines keep of the line (default full)\n"
	"  -q, --quiet              no progress line, no summary, no reject samples\n"
	"  -h, --help\n"
	"\n"
	"OUTPUT.rejects.jsonl and OUTPUT.stats.json drop a trailing '.avro' from OUTPUT.\n"
	"The stats file is published last: when it says \"ok\", the Avro is in place.\n"
	"Outputs are never more readable than the input files (nor than the umask allows).\n"
	"The folders of the outputs are created when missing. Every option is checked\n"
	"before any input is read: a usage error (exit 2) writes nothing.\n"
	"Exit codes: 0 ok, 2 usage, 3 reject rate exceeded, 4 rule file invalid,\n"
	"5 input or output error (unreadable, corrupt or truncated input, unreadable rule\n"
	"file, disk full).\n";

/* How many rejects are echoed on stderr when they also go to a reject file. */
#define REJECT_SAMPLES 5

typedef struct reporter {
	int quiet;
	int tty;
	int progress_shown;
	int all_rejects;         /* no reject file: every reject goes to stderr */
	unsigned long long rejects;
} reporter;

static void on_reject(void *ctx, const bn_error *why)
{
	reporter *rep = ctx;
	char msg[2048];
	rep->rejects++;
	if (rep->quiet && !rep->all_rejects)
		return;
	if (!rep->all_rejects && rep->rejects > REJECT_SAMPLES)
		return;
	if (rep->progress_shown) {
		fputs("\r\033[K", stderr);
		rep->progress_shown = 0;
	}
	bn_error_format(why, msg, sizeof(msg));
	fprintf(stderr, "bidnorm ingest: rejected: %s (%s)\n", msg, bn_reject_reason_name(why->reason));
}

static void on_progress(void *ctx, const bn_ingest_progress *p)
{
	reporter *rep = ctx;
	double mb = (double)p->bytes_decoded / 1e6;
	fprintf(stderr, "\r\033[Kbidnorm ingest: %llu records (%llu rejected), %.0f MB/s",
		(unsigned long long)p->records_read, (unsigned long long)p->records_rejected,
		p->elapsed_seconds > 0 ? mb / p->elapsed_seconds : 0.0);
	rep->progress_shown = 1;
}

/* OUTPUT without a trailing ".avro", plus suffix. */
static char *derived_path(const char *output, const char *suffix)
{
	size_t n = strlen(output);
	if (n > 5 && strcmp(output + n - 5, ".avro") == 0)
		n -= 5;
	char *p = malloc(n + strlen(suffix) + 1);
	if (p) {
		memcpy(p, output, n);
		strcpy(p + n, suffix);
	}
	return p;
}

/*
 * The FAILED line says what was published and what was not: records are
 * counted only once their block was handled, and only files that exist are
 * named.
 */
static void print_failed(const char *output, const char *rejects, const char *stats, const bn_ingest_summary *sum)
{
	const char *sep = "; written: ";
	fputs("bidnorm ingest: FAILED: ", stderr);
	if (sum->records_read)
		fprintf(stderr, "%llu records read (%llu valid, %llu rejected), %.1f MB in %.2f s; ",
			(unsigned long long)sum->records_read, (unsigned long long)sum->records_written,
			(unsigned long long)sum->records_rejected, (double)sum->bytes_decoded / 1e6, sum->elapsed_seconds);
	if (strcmp(output, "-") == 0)
		fputs(sum->bytes_written ? "the Avro already on standard output must not be used" : "no Avro written", stderr);
	else
		fprintf(stderr, "no output published (%s)", output);
	if (sum->rejects_published) {
		fprintf(stderr, "%s%s", sep, rejects);
		sep = ", ";
	}
	if (sum->stats_published)
		fprintf(stderr, "%s%s", sep, stats);
	else if (sep[0] == ';')
		fputs("; nothing else written", stderr);
	fputc('\n', stderr);
}

int cmd_ingest(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "rules", required_argument, NULL, 'r' },
		{ "rejects", required_argument, NULL, 'R' },
		{ "stats", required_argument, NULL, 's' },
		{ "codec", required_argument, NULL, 'c' },
		{ "level", required_argument, NULL, 'l' },
		{ "max-reject-rate", required_argument, NULL, 'm' },
		{ "threads", required_argument, NULL, 't' },
		{ "block-size", required_argument, NULL, 'b' },
		{ "source-name", required_argument, NULL, 'S' },
		{ "die-with-parent", no_argument, NULL, 'P' },
		{ "reject-raw", required_argument, NULL, 'w' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *cmd = "ingest";
	const char *rules_path = NULL, *output = NULL, *rejects = NULL, *stats = NULL, *source_name = NULL;
	int die_with_parent = 0;
	char *rejects_owned = NULL, *stats_owned = NULL;
	bn_rules *rules = NULL;
	bn_ingest_options opt;
	bn_ingest_summary sum;
	bn_error err;
	reporter rep = { 0 };
	unsigned long long u;
	int c, rc, exit_code = BN_EXIT_OK;

	pid_t parent = getppid();

	bn_ingest_options_init(&opt);
	bn_error_clear(&err);
	optind = 1;
	while ((c = getopt_long(argc, argv, "o:qh", longopts, NULL)) != -1) {
		switch (c) {
		case 'o': output = optarg; break;
		case 'r': rules_path = optarg; break;
		case 'R': rejects = optarg; break;
		case 's': stats = optarg; break;
		case 'q': rep.quiet = 1; break;
		case 'S':
			if (!*optarg)
				return cli_usage_error(cmd, "--source-name must not be empty");
			source_name = optarg;
			break;
		case 'P': die_with_parent = 1; break;
		case 'h': fputs(usage, stdout); return BN_EXIT_OK;
		case 'c':
		case 'l':
		case 'b':
			if (cli_avro_option(cmd, c, optarg, &opt.codec, &opt.codec_level, &opt.block_bytes) != BN_EXIT_OK)
				return BN_EXIT_USAGE;
			break;
		case 'm':
			if (cli_parse_double(optarg, &opt.max_reject_rate) < 0 || opt.max_reject_rate > 1)
				return cli_usage_error(cmd, "--max-reject-rate must be a number from 0 to 1, not '%s'",
						       optarg);
			break;
		case 'w':
			if (bn_reject_raw_parse(&opt.reject_raw, &opt.reject_raw_bytes, optarg, &err) < 0)
				return cli_usage_error(cmd, "--reject-raw %s", err.message);
			break;
		case 't':
			if (cli_parse_uint(optarg, 256, &u) < 0 || u == 0)
				return cli_usage_error(cmd, "--threads must be an integer from 1 to 256, not '%s'", optarg);
			opt.threads = (unsigned)u;
			break;
		default:
			fprintf(stderr, "Try 'bidnorm ingest --help'.\n");
			return BN_EXIT_USAGE;
		}
	}
	if (cli_avro_check(cmd, opt.codec, opt.codec_level) != BN_EXIT_OK)
		return BN_EXIT_USAGE;
	if (source_name && argc - optind > 1)
		return cli_usage_error(cmd, "--source-name names one input; %d given", argc - optind);
	if (die_with_parent && cli_die_with_parent(cmd, parent) != BN_EXIT_OK)
		return BN_EXIT_FAILURE;
	/* A reader of our diagnostics that goes away must not kill us before we clean up. */
	signal(SIGPIPE, SIG_IGN);
	if (!output) {
		/* Binary Avro on a terminal helps nobody; in a pipe it is what the user asked for. */
		if (isatty(STDOUT_FILENO))
			return cli_usage_error(cmd, "no output given: use -o FILE (or -o - to write Avro to a pipe)");
		output = "-";
	}
	/* A stream (-o -, a device, a pipe) has no folder to put OUTPUT.rejects.jsonl in: only files asked for. */
	struct stat st;
	int stream = strcmp(output, "-") == 0 || (stat(output, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode));
	if (!stream) {
		if (!rejects)
			rejects = rejects_owned = derived_path(output, ".rejects.jsonl");
		if (!stats)
			stats = stats_owned = derived_path(output, ".stats.json");
		if (!rejects || !stats) {
			fprintf(stderr, "bidnorm ingest: out of memory\n");
			exit_code = BN_EXIT_FAILURE;
			goto cleanup;
		}
	}
	exit_code = cli_load_rules(cmd, rules_path, &rules);
	if (exit_code != BN_EXIT_OK)
		goto cleanup;

	rep.tty = isatty(STDERR_FILENO);
	rep.all_rejects = rejects == NULL;
	opt.rules = rules;
	opt.inputs = (const char *const *)argv + optind;
	opt.ninputs = (size_t)(argc - optind);
	opt.output = output;
	opt.source_name = source_name;
	opt.rejects_path = rejects;
	opt.stats_path = stats;
	opt.on_reject = on_reject;
	opt.on_reject_ctx = &rep;
	if (rep.tty && !rep.quiet) {
		opt.progress = on_progress;
		opt.progress_ctx = &rep;
	}
	rc = bn_ingest_run(&opt, &sum, &err);
	if (rep.progress_shown)
		fputs("\r\033[K", stderr);
	if (!rep.quiet && rep.rejects > REJECT_SAMPLES && !rep.all_rejects)
		fprintf(stderr, "bidnorm ingest: ... %llu more rejected records in %s\n",
			rep.rejects - REJECT_SAMPLES, rejects);
	if (rc < 0) {
		cli_print_error(cmd, &err);
		exit_code = cli_exit_code(rc);
	}
	if (rc < 0) {
		print_failed(output, rejects, stats, &sum);
	} else if (!rep.quiet) {
		char rows[64] = "";
		if (bn_rules_rows(rules))
			snprintf(rows, sizeof(rows), " (%llu rows)", (unsigned long long)sum.rows_written);
		fprintf(stderr, "bidnorm ingest: done: %llu records read, %llu written%s, %llu rejected; %.1f MB in %.2f s -> "
			"%s%s%s\n", (unsigned long long)sum.records_read, (unsigned long long)sum.records_written, rows,
			(unsigned long long)sum.records_rejected, (double)sum.bytes_decoded / 1e6, sum.elapsed_seconds, output,
			rejects ? "; rejects: " : "", rejects ? rejects : "");
	}
cleanup:
	bn_rules_free(rules);
	free(rejects_owned);
	free(stats_owned);
	return exit_code;
}
