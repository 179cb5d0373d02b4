/* extract.c - placeholder, being written. */
