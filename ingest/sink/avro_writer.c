/* avro_writer.c - placeholder, being written. */
