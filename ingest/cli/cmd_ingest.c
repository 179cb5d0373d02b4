/* cmd_ingest.c - placeholder, being written. */
