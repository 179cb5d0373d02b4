/* inbox.c - placeholder, being written. */
