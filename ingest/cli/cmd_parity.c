/* cmd_parity.c - placeholder, being written. */
#include <stdio.h>

#include "cli.h"

int cmd_parity(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "bidnorm parity: not implemented yet\n");
	return BN_EXIT_FAILURE;
}
