/* sha256.c - placeholder, being written. */
