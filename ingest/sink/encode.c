/* encode.c - placeholder, being written. */
