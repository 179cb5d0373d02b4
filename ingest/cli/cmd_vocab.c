/* cmd_vocab.c - placeholder, being written. */
#include <stdio.h>

#include "cli.h"

int cmd_vocab(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "bidnorm vocab: not implemented yet\n");
	return BN_EXIT_FAILURE;
}
