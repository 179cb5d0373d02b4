/* rejects.c - placeholder, being written. */
