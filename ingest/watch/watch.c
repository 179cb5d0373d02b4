/* watch.c - placeholder, being written. */
