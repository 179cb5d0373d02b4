#!/usr/bin/env python3
"""bench-floor - what compressing bidnorm's output costs alone, the part of `ingest` no change can remove.

Usage: bench-floor.py NULL.avro ZSTD.avro [ROUNDS]

NULL.avro and ZSTD.avro are `bidnorm ingest --codec null` and `--codec zstandard` (level 3)
outputs of one input. Compresses every block of NULL.avro with python3-zstandard as bidnorm
does (level 3, content size and checksum in the frame), checks the result is byte for byte
the blocks of ZSTD.avro (so the time measured is exactly the work bidnorm's output needs),
and prints one JSON object: blocks, bytes, identical, and seconds (median of ROUNDS passes,
default 5). Called by tools/bench ingest; needs python3-zstandard.
"""
import json
import sys
import time

import zstandard


def avro_blocks(path):
    """The data of every block of an Avro object container file, in order."""
    with open(path, "rb") as f:
        d = f.read()
    if d[:4] != b"Obj\x01":
        sys.exit(f"bench-floor: {path}: not an Avro object container file")
    pos = 4

    def long():
        nonlocal pos
        n = shift = 0
        while True:
            c = d[pos]
            pos += 1
            n |= (c & 0x7F) << shift
            shift += 7
            if c < 0x80:
                return (n >> 1) ^ -(n & 1)

    while True:  # the header's metadata map, in blocks of entries
        count = long()
        if count == 0:
            break
        if count < 0:
            count = -count
            long()  # the block's size in bytes
        for _ in range(count):
            for _ in range(2):  # key, then value
                size = long()  # (not `pos += long()`: long() moves pos itself)
                pos += size
    pos += 16  # sync marker
    blocks = []
    while pos < len(d):
        long()  # records in the block
        size = long()
        blocks.append(d[pos:pos + size])
        pos += size + 16
    return blocks


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__.strip().splitlines()[2])
    raw, packed = avro_blocks(sys.argv[1]), avro_blocks(sys.argv[2])
    rounds = int(sys.argv[3]) if len(sys.argv) == 4 else 5
    comp = zstandard.ZstdCompressor(level=3, write_checksum=True, write_content_size=True)
    identical = [comp.compress(b) for b in raw] == packed
    times = []
    for _ in range(max(rounds, 1)):
        t0 = time.perf_counter()
        for b in raw:
            comp.compress(b)
        times.append(time.perf_counter() - t0)
    times.sort()
    print(json.dumps({"blocks": len(raw), "bytes": sum(map(len, raw)), "identical": identical,
                      "seconds": times[len(times) // 2], "times": times}))


if __name__ == "__main__":
    main()
