/* utf8_repair.c - placeholder, being written. */
