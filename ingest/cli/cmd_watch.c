/* cmd_watch.c - `bidnorm watch`: options, signals and log lines around bn_watch_run, the long-running file watcher. */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bidnorm/watch.h"
#include "cli.h"

static const char usage[] =
	"usage: bidnorm watch --inbox DIR --outbox DIR (--done DIR | --delete) [OPTIONS]\n"
	"\n"
	"Turns every complete log file that lands in DIR into OUTBOX/STEM.avro,\n"
	"STEM.rejects.jsonl and STEM.stats.json, exactly once, through restarts and crashes.\n"
	"A file is complete when it was renamed into the inbox (recommended), or when it\n"
	"was closed and has not changed for --settle seconds.\n"
	"\n"
	"      --inbox DIR             folder to watch (required)\n"
	"      --outbox DIR            folder for the outputs (required)\n"
	"      --done DIR              move processed inputs here ...\n"
	"      --delete                ... or delete them\n"
	"      --quarantine DIR        bad files and NAME.error.json (default INBOX/.quarantine)\n"
	"      --state DIR             the journal (default OUTBOX/.bidnorm-watch)\n"
	"      --rules FILE|NAME       rule file, or bidlog (default), openrtb; SIGHUP reloads it\n"
	"      --include GLOB          take only names matching GLOB (repeatable; default\n"
	"                              *.jsonl *.jsonl.zst *.jsonl.gz *.json *.zst *.gz)\n"
	"      --workers N             files processed in parallel (default 1)\n"
	"      --threads N             ingest threads per file (default 1)\n"
	"      --codec NAME            zstandard (default), deflate, snappy or null\n"
	"      --level N               codec level\n"
	"      --max-reject-rate R     quarantine a file rejecting more than this share (default 0.01)\n"
	"      --reject-raw full|none|truncate:BYTES\n"
	"                              what reject lines keep of the line (default full)\n"
	"      --allow-owner USER|UID  read only files owned by USER (repeatable) ...\n"
	"      --allow-group GROUP|GID ... or with group GROUP (repeatable); other files\n"
	"                              are quarantined unread\n"
	"      --allow-hard-links      read files with more than one hard link (by default\n"
	"                              quarantined unread: they may be links to others' files)\n"
	"      --settle SECONDS        unchanged time before a closed file is taken (default 5)\n"
	"      --rescan SECONDS        safety-net rescan of the inbox (default 30)\n"
	"      --stop-timeout SECONDS  on SIGTERM, running files get this long, then stay in\n"
	"                              the inbox for the next start (default 30)\n"
	"      --metrics FILE          Prometheus text file, rewritten after each file and every 10 s\n"
	"      --log-format text|json  one line per event on stderr (default text)\n"
	"      --once                  process the files present at start, then exit\n"
	"  -h, --help\n"
	"\n"
	"Symbolic links, FIFOs and other entries that are not regular files are never\n"
	"read: they are quarantined, as are files with several hard links. Outputs are\n"
	"never more readable than their input.\n"
	"Signals: SIGTERM/SIGINT stop (exit 0), SIGHUP reloads the rules.\n"
	"Exit codes: 0 ok, 2 usage, 4 rule file invalid, 5 rule file or inbox unreadable, or (--once)\n"
	"files left in the inbox after output errors.\n";

/* The wake-up pipe of the running watcher, for the signal handlers (the only state they touch). */
static volatile sig_atomic_t wake_fd = -1;

static void on_signal(int sig)
{
	int saved = errno;
	char byte = sig == SIGHUP ? BN_WATCH_WAKE_RELOAD : BN_WATCH_WAKE_STOP;
	if (wake_fd >= 0 && write(wake_fd, &byte, 1) < 0) {
		/* The pipe is full: the watcher has wake-ups to read already. */
	}
	errno = saved;
}

typedef struct logger {
	int json;
} logger;

static const char *level_name(int level)
{
	switch (level) {
	case BN_WATCH_DEBUG: return "debug";
	case BN_WATCH_INFO: return "info";
	case BN_WATCH_WARN: return "warn";
	default: return "error";
	}
}

/* Append s as a JSON string literal (control characters escaped; other bytes as they are). */
static void json_str(char *out, size_t size, size_t *at, const char *s)
{
	static const char hexd[] = "0123456789abcdef";
	size_t n = *at;
	if (n + 1 < size)
		out[n++] = '"';
	for (; *s && n + 7 < size; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			out[n++] = '\\';
			out[n++] = (char)c;
		} else if (c < 0x20) {
			out[n++] = '\\';
			out[n++] = 'u';
			out[n++] = '0';
			out[n++] = '0';
			out[n++] = hexd[c >> 4];
			out[n++] = hexd[c & 15];
		} else {
			out[n++] = (char)c;
		}
	}
	if (n + 1 < size)
		out[n++] = '"';
	out[n] = '\0';
	*at = n;
}

static void add(char *out, size_t size, size_t *at, const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 4, 5)))
#endif
	;

static void add(char *out, size_t size, size_t *at, const char *fmt, ...)
{
	va_list ap;
	if (*at >= size)
		return;
	va_start(ap, fmt);
	int n = vsnprintf(out + *at, size - *at, fmt, ap);
	va_end(ap);
	if (n > 0)
		*at = (size_t)n < size - *at ? *at + (size_t)n : size - 1;
}

static int file_event(const bn_watch_event *ev)
{
	return ev->file && strncmp(ev->event, "file_", 5) == 0;
}

/* One line per event, written with one call so lines from several threads never interleave. */
static void on_log(void *ctx, const bn_watch_event *ev)
{
	const logger *lg = ctx;
	char line[4096], ts[40], msg[2048] = "";
	size_t at = 0;
	struct timespec now;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	size_t tn = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts + tn, sizeof(ts) - tn, ".%03ldZ", now.tv_nsec / 1000000);
	if (ev->error)
		bn_error_format(ev->error, msg, sizeof(msg));
	if (lg->json) {
		add(line, sizeof(line), &at, "{\"ts\":\"%s\",\"level\":\"%s\",\"event\":\"%s\"", ts, level_name(ev->level),
		    ev->event);
		if (ev->file) {
			add(line, sizeof(line), &at, ",\"file\":");
			json_str(line, sizeof(line), &at, ev->file);
		}
		if (file_event(ev))
			add(line, sizeof(line), &at,
			    ",\"records_written\":%llu,\"records_rejected\":%llu,\"bytes_in\":%llu,\"seconds\":%.3f",
			    (unsigned long long)ev->records_written, (unsigned long long)ev->records_rejected,
			    (unsigned long long)ev->bytes_in, ev->seconds);
		if (ev->retry_in > 0)
			add(line, sizeof(line), &at, ",\"retry_in\":%g", ev->retry_in);
		if (ev->detail) {
			add(line, sizeof(line), &at, ",\"detail\":");
			json_str(line, sizeof(line), &at, ev->detail);
		}
		if (ev->error) {
			add(line, sizeof(line), &at, ",\"code\":%d,\"error\":", ev->error->code);
			json_str(line, sizeof(line), &at, msg);
		}
		add(line, sizeof(line), &at, "}\n");
	} else {
		add(line, sizeof(line), &at, "%s %s %s", ts, level_name(ev->level), ev->event);
		if (ev->file)
			add(line, sizeof(line), &at, " %s", ev->file);
		if (file_event(ev) && (ev->records_written || ev->records_rejected || ev->seconds > 0))
			add(line, sizeof(line), &at, " written=%llu rejected=%llu bytes=%llu seconds=%.3f",
			    (unsigned long long)ev->records_written, (unsigned long long)ev->records_rejected,
			    (unsigned long long)ev->bytes_in, ev->seconds);
		if (ev->retry_in > 0)
			add(line, sizeof(line), &at, " retry_in=%gs", ev->retry_in);
		if (ev->detail)
			add(line, sizeof(line), &at, ": %s", ev->detail);
		if (ev->error)
			add(line, sizeof(line), &at, ": %s", msg);
		add(line, sizeof(line), &at, "\n");
	}
	fputs(line, stderr);
}

/* A user name or number (getpwnam), into *out. */
static int parse_user(const char *s, uid_t *out)
{
	unsigned long long u;
	struct passwd *pw = getpwnam(s);
	if (pw) {
		*out = pw->pw_uid;
		return 0;
	}
	if (cli_parse_uint(s, (uid_t)-1 - 1, &u) < 0)
		return -1;
	*out = (uid_t)u;
	return 0;
}

static int parse_group(const char *s, gid_t *out)
{
	unsigned long long u;
	struct group *gr = getgrnam(s);
	if (gr) {
		*out = gr->gr_gid;
		return 0;
	}
	if (cli_parse_uint(s, (gid_t)-1 - 1, &u) < 0)
		return -1;
	*out = (gid_t)u;
	return 0;
}

static int parse_seconds(const char *cmd, const char *name, const char *s, double min, double *out)
{
	if (cli_parse_double(s, out) < 0 || *out < min || *out > 86400)
		return cli_usage_error(cmd, "--%s must be a number of seconds from %g to 86400, not '%s'", name, min, s);
	return 0;
}

int cmd_watch(int argc, char **argv)
{
	enum { O_INBOX = 256, O_OUTBOX, O_DONE, O_DELETE, O_QUAR, O_STATE, O_RULES, O_INCLUDE, O_WORKERS,
	       O_THREADS, O_CODEC, O_LEVEL, O_MAXREJ, O_SETTLE, O_RESCAN, O_STOPTO, O_METRICS, O_LOGFMT, O_ONCE,
	       O_REJRAW, O_OWNER, O_GROUP, O_HARDLINKS };
	static const struct option longopts[] = {
		{ "inbox", required_argument, NULL, O_INBOX },
		{ "outbox", required_argument, NULL, O_OUTBOX },
		{ "done", required_argument, NULL, O_DONE },
		{ "delete", no_argument, NULL, O_DELETE },
		{ "quarantine", required_argument, NULL, O_QUAR },
		{ "state", required_argument, NULL, O_STATE },
		{ "rules", required_argument, NULL, O_RULES },
		{ "include", required_argument, NULL, O_INCLUDE },
		{ "workers", required_argument, NULL, O_WORKERS },
		{ "threads", required_argument, NULL, O_THREADS },
		{ "codec", required_argument, NULL, O_CODEC },
		{ "level", required_argument, NULL, O_LEVEL },
		{ "max-reject-rate", required_argument, NULL, O_MAXREJ },
		{ "settle", required_argument, NULL, O_SETTLE },
		{ "rescan", required_argument, NULL, O_RESCAN },
		{ "stop-timeout", required_argument, NULL, O_STOPTO },
		{ "metrics", required_argument, NULL, O_METRICS },
		{ "log-format", required_argument, NULL, O_LOGFMT },
		{ "once", no_argument, NULL, O_ONCE },
		{ "reject-raw", required_argument, NULL, O_REJRAW },
		{ "allow-owner", required_argument, NULL, O_OWNER },
		{ "allow-group", required_argument, NULL, O_GROUP },
		{ "allow-hard-links", no_argument, NULL, O_HARDLINKS },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *cmd = "watch";
	const char **include = NULL;
	size_t ninclude = 0;
	uid_t *uids = NULL;
	gid_t *gids = NULL;
	size_t nuids = 0, ngids = 0;
	bn_watch_options opt;
	bn_watch *w = NULL;
	bn_error err;
	logger lg = { 0 };
	unsigned long long u;
	int c, rc, exit_code = BN_EXIT_OK;
	struct sigaction sa;

	bn_watch_options_init(&opt);
	bn_error_clear(&err);
	include = calloc((size_t)argc + 1, sizeof(*include));
	uids = calloc((size_t)argc + 1, sizeof(*uids));
	gids = calloc((size_t)argc + 1, sizeof(*gids));
	if (!include || !uids || !gids) {
		fprintf(stderr, "bidnorm watch: out of memory\n");
		exit_code = BN_EXIT_FAILURE;
		goto cleanup;
	}
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case O_INBOX: opt.inbox = optarg; break;
		case O_OUTBOX: opt.outbox = optarg; break;
		case O_DONE: opt.done_dir = optarg; break;
		case O_DELETE: opt.delete_done = 1; break;
		case O_QUAR: opt.quarantine_dir = optarg; break;
		case O_STATE: opt.state_dir = optarg; break;
		case O_RULES: opt.rules_path = optarg; break;
		case O_INCLUDE: include[ninclude++] = optarg; break;
		case O_METRICS: opt.metrics_path = optarg; break;
		case O_ONCE: opt.once = 1; break;
		case O_HARDLINKS: opt.allow_hard_links = 1; break;
		case 'h':
			fputs(usage, stdout);
			goto cleanup;
		case O_WORKERS:
			if (cli_parse_uint(optarg, 64, &u) < 0 || u == 0) {
				exit_code = cli_usage_error(cmd, "--workers must be an integer from 1 to 64, not '%s'", optarg);
				goto cleanup;
			}
			opt.workers = (unsigned)u;
			break;
		case O_THREADS:
			if (cli_parse_uint(optarg, 256, &u) < 0 || u == 0) {
				exit_code = cli_usage_error(cmd, "--threads must be an integer from 1 to 256, not '%s'", optarg);
				goto cleanup;
			}
			opt.threads = (unsigned)u;
			break;
		case O_CODEC:
			if (bn_codec_parse(&opt.codec, optarg, &err) < 0) {
				exit_code = cli_usage_error(cmd, "%s", err.message);
				goto cleanup;
			}
			break;
		case O_LEVEL:
			if (cli_parse_uint(optarg, 22, &u) < 0) {
				exit_code = cli_usage_error(cmd, "--level must be an integer from 0 to 22, not '%s'", optarg);
				goto cleanup;
			}
			opt.codec_level = (int)u;
			break;
		case O_MAXREJ:
			if (cli_parse_double(optarg, &opt.max_reject_rate) < 0 || opt.max_reject_rate > 1) {
				exit_code = cli_usage_error(cmd, "--max-reject-rate must be a number from 0 to 1, not '%s'",
							    optarg);
				goto cleanup;
			}
			break;
		case O_SETTLE:
			if ((exit_code = parse_seconds(cmd, "settle", optarg, 0, &opt.settle_seconds)) != 0)
				goto cleanup;
			break;
		case O_RESCAN:
			if ((exit_code = parse_seconds(cmd, "rescan", optarg, 0.01, &opt.rescan_seconds)) != 0)
				goto cleanup;
			break;
		case O_STOPTO:
			if ((exit_code = parse_seconds(cmd, "stop-timeout", optarg, 0, &opt.stop_timeout_seconds)) != 0)
				goto cleanup;
			break;
		case O_REJRAW:
			if (bn_reject_raw_parse(&opt.reject_raw, &opt.reject_raw_bytes, optarg, &err) < 0) {
				exit_code = cli_usage_error(cmd, "--reject-raw %s", err.message);
				goto cleanup;
			}
			break;
		case O_OWNER:
			if (parse_user(optarg, &uids[nuids]) < 0) {
				exit_code = cli_usage_error(cmd, "--allow-owner: no user '%s' (give a user name or number)",
							    optarg);
				goto cleanup;
			}
			nuids++;
			break;
		case O_GROUP:
			if (parse_group(optarg, &gids[ngids]) < 0) {
				exit_code = cli_usage_error(cmd, "--allow-group: no group '%s' (give a group name or number)",
							    optarg);
				goto cleanup;
			}
			ngids++;
			break;
		case O_LOGFMT:
			if (strcmp(optarg, "json") == 0) {
				lg.json = 1;
			} else if (strcmp(optarg, "text") != 0) {
				exit_code = cli_usage_error(cmd, "--log-format must be text or json, not '%s'", optarg);
				goto cleanup;
			}
			break;
		default:
			fprintf(stderr, "Try 'bidnorm watch --help'.\n");
			exit_code = BN_EXIT_USAGE;
			goto cleanup;
		}
	}
	if (optind < argc) {
		exit_code = cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
		goto cleanup;
	}
	if (opt.done_dir && opt.delete_done) {
		exit_code = cli_usage_error(cmd, "--done and --delete exclude each other");
		goto cleanup;
	}
	opt.include = ninclude ? include : NULL;
	opt.ninclude = ninclude;
	opt.allow_uids = uids;
	opt.nallow_uids = nuids;
	opt.allow_gids = gids;
	opt.nallow_gids = ngids;
	opt.log = on_log;
	opt.log_ctx = &lg;

	/* A full disk must show up as EFBIG/ENOSPC from write(), which the watcher retries, not kill it. */
	signal(SIGXFSZ, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	rc = bn_watch_new(&w, &opt, &err);
	if (rc < 0) {
		if (rc == BN_EUSAGE) {
			exit_code = cli_usage_error(cmd, "%s", err.message);
		} else {
			cli_print_error(cmd, &err);
			exit_code = cli_exit_code(rc);
		}
		goto cleanup;
	}
	wake_fd = bn_watch_wake_fd(w);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	rc = bn_watch_run(w, &err);
	if (rc < 0) {
		cli_print_error(cmd, &err);
		exit_code = cli_exit_code(rc);
	}
	/*
	 * The watcher has stopped and only cleanup is left: a repeated stop
	 * request (systemd, a test) must not turn this clean exit into a kill.
	 */
	signal(SIGTERM, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	wake_fd = -1;
cleanup:
	bn_watch_free(w);
	free(include);
	free(uids);
	free(gids);
	return exit_code;
}
