/* chain.c - placeholder, being written. */
