/* count.c - placeholder, being written. */
