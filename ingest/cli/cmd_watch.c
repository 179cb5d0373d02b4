/* cmd_watch.c - placeholder, being written. */
#include <stdio.h>

#include "cli.h"

int cmd_watch(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "bidnorm watch: not implemented yet\n");
	return BN_EXIT_FAILURE;
}
