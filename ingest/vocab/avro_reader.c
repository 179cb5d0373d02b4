/* avro_reader.c - placeholder, being written. */
