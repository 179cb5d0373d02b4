/* encoder.c - placeholder, being written. */
