/* cli_util.c - exit codes, error printing, option value parsing and rule loading shared by the subcommands. */
#include "cli.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <unistd.h>

int cli_exit_code(int status)
{
	switch (status) {
	case BN_OK: return BN_EXIT_OK;
	case BN_EUSAGE: return BN_EXIT_USAGE;
	case BN_EREJECTRATE: return BN_EXIT_REJECTS;
	case BN_ERULES: return BN_EXIT_RULES;
	case BN_EIO:
	case BN_ECORRUPT: return BN_EXIT_IO;
	default: return BN_EXIT_FAILURE;
	}
}

void cli_print_error(const char *cmd, const bn_error *err)
{
	char msg[2048];
	bn_error_format(err, msg, sizeof(msg));
	fprintf(stderr, "bidnorm %s: %s\n", cmd, msg);
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "bidnorm %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'bidnorm %s --help'.\n", cmd);
	return BN_EXIT_USAGE;
}

/* The exit code of a rules load that returned rc, after printing err when it failed. */
static int rules_loaded(const char *cmd, int rc, const bn_error *err)
{
	if (rc < 0) {
		cli_print_error(cmd, err);
		return cli_exit_code(rc); /* unreadable: 5, like any input; invalid: 4 */
	}
	return BN_EXIT_OK;
}

int cli_load_rules(const char *cmd, const char *path, bn_rules **out)
{
	bn_error err;
	bn_error_clear(&err);
	return rules_loaded(cmd, bn_rules_load(out, path, &err), &err);
}

int cli_load_rules_for_avro(const char *cmd, const char *spec, const char *const *inputs, size_t ninputs,
			    int allow_mixed, bn_rules **out)
{
	bn_error err;
	bn_error_clear(&err);
	return rules_loaded(cmd, bn_rules_load_for_avro(out, spec, inputs, ninputs, allow_mixed, &err), &err);
}

int cli_load_rules_for_vocab(const char *cmd, const char *dir, const char *spec, bn_rules **out)
{
	bn_error err;
	bn_error_clear(&err);
	return rules_loaded(cmd, bn_vocab_load_rules(out, dir, spec, &err), &err);
}

int cli_parse_double(const char *s, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || v < 0)
		return -1;
	*out = v;
	return 0;
}

int cli_parse_uint(const char *s, unsigned long long max, unsigned long long *out)
{
	char *end;
	errno = 0;
	if (*s < '0' || *s > '9')
		return -1;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end || v > max)
		return -1;
	*out = v;
	return 0;
}

int cli_avro_option(const char *cmd, int c, const char *arg, bn_codec *codec, int *level, size_t *block_bytes)
{
	unsigned long long u;
	bn_error err;

	switch (c) {
	case 'c':
		if (bn_codec_parse(codec, arg, &err) < 0)
			return cli_usage_error(cmd, "%s", err.message);
		return BN_EXIT_OK;
	case 'l':
		if (cli_parse_uint(arg, 22, &u) < 0)
			return cli_usage_error(cmd, "--level must be an integer from 0 to 22, not '%s'", arg);
		*level = (int)u;
		return BN_EXIT_OK;
	default:
		if (cli_parse_uint(arg, 1ull << 30, &u) < 0 || u < 1024)
			return cli_usage_error(cmd, "--block-size must be an integer from 1024 to 1073741824, not '%s'", arg);
		*block_bytes = (size_t)u;
		return BN_EXIT_OK;
	}
}

int cli_avro_check(const char *cmd, bn_codec codec, int level)
{
	bn_error err;
	bn_error_clear(&err);
	if (bn_codec_check_level(codec, level, &err) < 0)
		return cli_usage_error(cmd, "%s", err.message);
	return BN_EXIT_OK;
}

int cli_die_with_parent(const char *cmd, pid_t parent)
{
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) {
		fprintf(stderr, "bidnorm %s: --die-with-parent: the parent process is gone; nothing done\n", cmd);
		return BN_EXIT_FAILURE;
	}
	return BN_EXIT_OK;
}
