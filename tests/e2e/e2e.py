"""e2e.py - what the end-to-end tests share: where the binary and the sources are, and reading its outputs."""
import json
import os

import avro.datafile
import avro.io

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.environ.get("BIDNORM_SOURCE", os.path.dirname(os.path.dirname(HERE)))
BIDNORM = os.path.abspath(os.environ.get("BIDNORM", os.path.join(SOURCE, "build", "bidnorm")))


def read_avro_file(path):
    """(header metadata, records) of an Avro container, read with python3-avro."""
    with open(path, "rb") as f:
        reader = avro.datafile.DataFileReader(f, avro.io.DatumReader())
        meta = dict(reader.meta)
        records = list(reader)
        reader.close()
    return meta, records


def read_records(path):
    """The records of an Avro container."""
    return read_avro_file(path)[1]


def read_jsonl(path):
    """A JSON Lines file (reject files) as a list of objects."""
    with open(path, "rb") as f:
        return [json.loads(x) for x in f.read().splitlines()]
