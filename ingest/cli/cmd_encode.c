/* cmd_encode.c - placeholder, being written. */
#include <stdio.h>

#include "cli.h"

int cmd_encode(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "bidnorm encode: not implemented yet\n");
	return BN_EXIT_FAILURE;
}
