/* cmd_normalize.c - placeholder, being written. */
