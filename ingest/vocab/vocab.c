/* vocab.c - placeholder, being written. */
