/* cli.h - what the subcommands of the bidnorm command share: exit codes, messages, rule loading. */
#ifndef BN_CLI_H
#define BN_CLI_H

#include <sys/types.h>

#include "bidnorm/bidnorm.h"

/* Exit codes of the bidnorm command (documented in the README; never renumbered). */
enum {
	BN_EXIT_OK = 0,
	BN_EXIT_FAILURE = 1,     /* anything else: out of memory, internal error */
	BN_EXIT_USAGE = 2,       /* invalid command line */
	BN_EXIT_REJECTS = 3,     /* reject rate above --max-reject-rate */
	BN_EXIT_RULES = 4,       /* rule file invalid */
	BN_EXIT_IO = 5           /* input or output error: unreadable, corrupt, disk full */
};

/* The exit code for a bn_status. */
int cli_exit_code(int status);

/* Print "bidnorm: <formatted err>" on stderr. */
void cli_print_error(const char *cmd, const bn_error *err);

/* Print "bidnorm CMD: message" on stderr and return BN_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 2, 3)))
#endif
	;

/* Load --rules FILE, or the embedded default when path is NULL. Prints the error. */
int cli_load_rules(const char *cmd, const char *path, bn_rules **out);

/*
 * --rules for a command that reads ingest's Avro (bn_rules_load_for_avro): spec NULL takes the
 * rules from the inputs' headers; given, it must agree with them unless allow_mixed. Prints the error.
 */
int cli_load_rules_for_avro(const char *cmd, const char *spec, const char *const *inputs, size_t ninputs,
			    int allow_mixed, bn_rules **out);

/*
 * --rules for a command that reads a vocabulary directory (vocab lint, parity; bn_vocab_load_rules):
 * spec NULL takes the rules dir's manifest records, else spec. Prints the error.
 */
int cli_load_rules_for_vocab(const char *cmd, const char *dir, const char *spec, bn_rules **out);

/* Parse a non-negative number / integer option value; 0 on success. */
int cli_parse_double(const char *s, double *out);
int cli_parse_uint(const char *s, unsigned long long max, unsigned long long *out);

/*
 * The Avro output options ingest and encode share, by their getopt codes:
 * 'c' --codec, 'l' --level, 'b' --block-size. Returns BN_EXIT_OK, or
 * BN_EXIT_USAGE after printing why.
 */
int cli_avro_option(const char *cmd, int c, const char *arg, bn_codec *codec, int *level, size_t *block_bytes);

/* After every option is parsed: --level must suit --codec. BN_EXIT_OK, or BN_EXIT_USAGE after printing why. */
int cli_avro_check(const char *cmd, bn_codec codec, int level);
/*
 * --die-with-parent: be killed (SIGKILL) when the parent process dies, so a lost cluster worker
 * leaves no orphan writing outputs. parent: getppid() when the command started; if it changed by
 * now, the parent died while we were starting and the signal would never come. Returns
 * BN_EXIT_OK, or BN_EXIT_FAILURE after printing "CMD: --die-with-parent: the parent process is
 * gone; nothing done".
 */
int cli_die_with_parent(const char *cmd, pid_t parent);

int cmd_ingest(int argc, char **argv);
int cmd_rules(int argc, char **argv);
int cmd_schema(int argc, char **argv);
int cmd_normalize(int argc, char **argv);
int cmd_vocab(int argc, char **argv);
int cmd_watch(int argc, char **argv);
int cmd_encode(int argc, char **argv);
int cmd_parity(int argc, char **argv);

#endif
