"""Stands in for the fix of python-snappy 0.6: Debian 12's python3-snappy 0.5.3 fails on the framing format's
checksums under Python 3.10+ ("SystemError: PY_SSIZE_T_CLEAN macro must be defined for '#' formats" from its C
CRC-32C). Put on PYTHONPATH, this gives it a CRC-32C in Python, so `python3 -m snappy -c/-d` run unchanged."""
try:
    import snappy.snappy as _snappy_module
except ImportError:
    _snappy_module = None


def _table():
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _table()


def crc32c(data):
    """CRC-32C (Castagnoli), as RFC 3720 defines it: crc32c(b"123456789") == 0xE3069283."""
    crc = 0xFFFFFFFF
    for b in data:
        crc = _TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283
if _snappy_module is not None:
    _snappy_module._crc32c = crc32c
