"""e2e.py - what the end-to-end tests share: where the binary and the sources are, and reading its outputs."""
import json
import os
import shutil
import stat
import tempfile
import unittest

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


NOBODY = 65534


def reachable_tempdir():
    """A new temporary folder that every user can reach, wherever the checkout and TMPDIR live.

    Permission tests run bidnorm as nobody; nobody must be able to traverse every folder above
    the files it is given, which a private TMPDIR (or a checkout under root's mode-0700 home)
    does not allow. The first candidate whose every ancestor is searchable by others wins."""
    for base in (tempfile.gettempdir(), "/tmp", "/var/tmp", "/dev/shm"):
        base = os.path.realpath(base)
        parts = [base]
        while os.path.dirname(parts[-1]) != parts[-1]:
            parts.append(os.path.dirname(parts[-1]))
        if all(os.path.isdir(p) and os.stat(p).st_mode & stat.S_IXOTH for p in parts):
            return tempfile.mkdtemp(prefix="bidnorm-test-", dir=base)
    raise RuntimeError("no temporary folder is reachable by other users (tried TMPDIR, /tmp, /var/tmp, /dev/shm)")


def as_nobody(folder):
    """Arguments for running bidnorm as nobody on the files of folder (a reachable_tempdir()), or {}
    when the tests do not run as root (then the caller is already unprivileged).

    Root may read and write whatever the modes say, so permission errors need another user. That
    user runs a copy of the binary placed in folder (the build tree may sit in a private folder),
    the folder is opened to it, and files the test wrote become readable to it whatever the umask;
    files a test made unreadable (mode 0) stay so. Returns {"binary": path, "preexec_fn": fn}."""
    if os.geteuid() != 0:
        return {}
    binary = os.path.join(folder, ".bidnorm-as-nobody")
    shutil.copy(BIDNORM, binary)
    os.chmod(binary, 0o755)
    os.chmod(folder, 0o777)
    for name in os.listdir(folder):
        p = os.path.join(folder, name)
        mode = stat.S_IMODE(os.lstat(p).st_mode)
        if os.path.isfile(p) and not os.path.islink(p) and mode != 0:
            os.chmod(p, mode | 0o044)

    def drop():
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
    return {"binary": binary, "preexec_fn": drop}


class FolderTest(unittest.TestCase):
    """A test case with a fresh temporary folder per test: self.dir, self.path(name), self.write(name, bytes)."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def path(self, name):
        return os.path.join(self.dir, name)

    def write(self, name, data):
        p = self.path(name)
        with open(p, "wb") as f:
            f.write(data)
        return p
