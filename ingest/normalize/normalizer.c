/* normalizer.c - placeholder, being written. */
