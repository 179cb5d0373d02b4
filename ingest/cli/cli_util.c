/* cli_util.c - placeholder, being written. */
