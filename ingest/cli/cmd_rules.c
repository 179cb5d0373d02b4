/* cmd_rules.c - placeholder, being written. */
