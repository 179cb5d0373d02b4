"""End-to-end tests of what a cluster job needs from the CLI: merges into parts, part identity,
order-independent outputs, --source-name, --die-with-parent, SIGPIPE on diagnostics, stats last."""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest

import zstandard

from common import BIDNORM, SOURCE

sys.path.insert(0, os.path.join(SOURCE, "tests", "e2e"))
from e2e import read_avro_file as read_avro, read_jsonl  # noqa: E402  pylint: disable=wrong-import-position

SAMPLE_12 = os.path.join(SOURCE, "samples", "bidlog-2026-11-20T12.jsonl.zst")
SAMPLE_13 = os.path.join(SOURCE, "samples", "bidlog-2026-11-20T13.jsonl.zst")
FIELDS = ["--field", "app_bundle,installed_apps,country"]


def run(*args, cwd=None, stdin=None):
    return subprocess.run([BIDNORM, *args], capture_output=True, cwd=cwd, stdin=stdin)


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def process_state(pid):
    """'R', 'S', 'Z'... from /proc, or None when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return None


def kill_parent_and_see(parent, pid):
    """SIGKILL parent (a Popen); is its child pid still running 2 s later? (It is killed then if so.)"""
    parent.kill()
    parent.wait()
    parent.stdout.close()
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and process_state(pid) not in (None, "Z"):
        time.sleep(0.02)
    alive = process_state(pid) not in (None, "Z")
    if alive:
        os.kill(pid, signal.SIGKILL)
    return alive


class ClusterCli(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.shared = tempfile.TemporaryDirectory()
        d = cls.shared.name
        # a small dirty log: 400 sample lines and some that are rejected
        global DIRTY  # pylint: disable=global-statement
        DIRTY = os.path.join(d, "dirty.jsonl")
        with open(SAMPLE_12, "rb") as f, open(DIRTY, "wb") as out:
            lines = zstandard.ZstdDecompressor().stream_reader(f).read().splitlines(keepends=True)[:400]
            for i, line in enumerate(lines):
                out.write(line if i % 40 else b'{"event_id": "broken", \n')
        cls.avros = []
        # three Avro files: the two samples, and the first again with another codec
        for i, src in enumerate((SAMPLE_12, SAMPLE_13, SAMPLE_12)):
            out = os.path.join(d, f"h{i}.avro")
            p = run("ingest", "-q", "-o", out, *(["--codec", "deflate"] if i == 2 else []), src)
            assert p.returncode == 0, p.stderr.decode()
            cls.avros.append(out)

    @classmethod
    def tearDownClass(cls):
        cls.shared.cleanup()

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def path(self, name):
        return os.path.join(self.dir, name)

    def bidnorm(self, *args, expect=0, stdin=None):
        p = run(*args, cwd=self.dir, stdin=stdin)
        self.assertEqual(p.returncode, expect, p.stderr.decode() + p.stdout.decode())
        return p

    def assert_same_dir(self, a, b):
        names = sorted(os.listdir(self.path(a)))
        self.assertEqual(names, sorted(os.listdir(self.path(b))))
        for name in names:
            x, y = read_bytes(self.path(f"{a}/{name}")), read_bytes(self.path(f"{b}/{name}"))
            if name == "manifest.json":
                x, y = json.loads(x), json.loads(y)
                del x["resources"], y["resources"]
            self.assertEqual(x, y, name)

    # --- vocab parts ---------------------------------------------------------

    def test_a_tree_of_part_merges_equals_one_build_in_any_order(self):
        a, b, c = self.avros
        self.bidnorm("vocab", "build", "-q", "-o", "single", *FIELDS, "--min-count", "2", a, b, c)
        for i, x in enumerate(self.avros):
            self.bidnorm("vocab", "count", "-q", "-o", f"p{i}.part", *FIELDS, x)
        self.bidnorm("vocab", "merge", "--part", "-q", "-o", "p01.part", "p0.part", "p1.part")
        self.bidnorm("vocab", "merge", "--part", "-q", "-o", "p10.part", "p1.part", "p0.part")
        self.assertEqual(read_bytes(self.path("p01.part")), read_bytes(self.path("p10.part")))
        self.bidnorm("vocab", "merge", "-q", "-o", "tree", "--min-count", "2", "p2.part", "p01.part")
        self.assert_same_dir("single", "tree")
        # the build lists its inputs sorted whatever their order on the command line
        self.bidnorm("vocab", "build", "-q", "-o", "reversed", *FIELDS, "--min-count", "2", c, b, a)
        self.assert_same_dir("single", "reversed")
        with open(self.path("single/manifest.json")) as f:
            self.assertEqual([i["path"] for i in json.load(f)["inputs"]], sorted([a, b, c]))

    def test_the_same_input_twice_is_refused(self):
        a, b, _ = self.avros
        self.bidnorm("vocab", "count", "-q", "-o", "p0.part", *FIELDS, a)
        self.bidnorm("vocab", "count", "-q", "-o", "p1.part", *FIELDS, b)
        want = (f"input '{a}' is already counted (the same Avro file as '{a}', by size and content): a file given "
                "twice, a part merged twice or parts sharing an input would count it twice\n")
        p = self.bidnorm("vocab", "merge", "-o", "v", "p0.part", "p0.part", expect=2)
        self.assertEqual(p.stderr.decode(), "bidnorm vocab merge: p0.part: " + want)
        # overlapping subtrees: (p0 p1) and p0
        self.bidnorm("vocab", "merge", "--part", "-q", "-o", "p01.part", "p0.part", "p1.part")
        p = self.bidnorm("vocab", "merge", "--part", "-o", "x.part", "p01.part", "p0.part", expect=2)
        self.assertEqual(p.stderr.decode(), "bidnorm vocab merge: p0.part: " + want)
        self.assertFalse(os.path.exists(self.path("x.part")))
        # the same file under two names
        os.symlink(a, self.path("alias.avro"))
        p = self.bidnorm("vocab", "build", "-o", "v", *FIELDS, a, "alias.avro", expect=2)
        self.assertEqual(p.stderr.decode(), "bidnorm vocab build: alias.avro: input 'alias.avro' is already counted "
                         f"(the same Avro file as '{a}', by size and content): a file given twice, a part merged twice "
                         "or parts sharing an input would count it twice\n")
        self.assertFalse(os.path.exists(self.path("v")))
        # two different files that share their header (both read from standard input) are two inputs
        for name, src in (("s12.avro", SAMPLE_12), ("s13.avro", SAMPLE_13)):
            with open(src, "rb") as f:
                self.bidnorm("ingest", "-q", "-o", name, "-", stdin=f)
        self.bidnorm("vocab", "build", "-q", "-o", "v", *FIELDS, "s12.avro", "s13.avro")

    def test_a_part_name_never_becomes_a_directory(self):
        a = self.avros[0]
        self.bidnorm("vocab", "count", "-q", "-o", "p0.part", *FIELDS, a)
        p = self.bidnorm("vocab", "merge", "-o", "X.part", "p0.part", expect=2)
        self.assertEqual(p.stderr.decode(), "bidnorm vocab merge: -o X.part ends in .part but would become a "
                         "vocabulary directory: merge into a part with --part, or name the directory otherwise\n"
                         "Try 'bidnorm vocab merge --help'.\n")
        p = self.bidnorm("vocab", "build", "-o", "v.part/", *FIELDS, a, expect=2)
        self.assertEqual(p.stderr.decode(), "bidnorm vocab build: -o v.part/ ends in .part but would become a "
                         "vocabulary directory: write a part with 'vocab count', or name the directory otherwise\n"
                         "Try 'bidnorm vocab build --help'.\n")
        p = self.bidnorm("vocab", "merge", "--part", "--top-k", "3", "-o", "m.part", "p0.part", expect=2)
        self.assertEqual(p.stderr.decode(), "bidnorm vocab merge: --top-k does not apply to 'vocab merge --part' "
                         "(a part keeps every count)\nTry 'bidnorm vocab merge --help'.\n")
        p = self.bidnorm("vocab", "build", "--part", "-o", "m.part", *FIELDS, a, expect=2)
        self.assertEqual(p.stderr.decode(), "bidnorm vocab build: --part does not apply to 'vocab build'\n"
                         "Try 'bidnorm vocab build --help'.\n")
        self.assertEqual(sorted(os.listdir(self.dir)), ["p0.part"])
        # a merged part is a part: it merges on, and into a directory
        self.bidnorm("vocab", "merge", "--part", "-q", "-o", "m.part", "p0.part")
        self.assertTrue(os.path.isfile(self.path("m.part")))
        self.bidnorm("vocab", "merge", "-q", "-o", "v", "m.part")
        self.assertTrue(os.path.isfile(self.path("v/country.txt")))

    def test_count_records_the_source_name(self):
        a = self.avros[0]
        self.bidnorm("vocab", "count", "-q", "-o", "p.part", "--source-name", "s3://logs/h12.avro", *FIELDS, a)
        self.bidnorm("vocab", "merge", "-q", "-o", "v", "p.part")
        with open(self.path("v/manifest.json")) as f:
            self.assertEqual([i["path"] for i in json.load(f)["inputs"]], ["s3://logs/h12.avro"])
        p = self.bidnorm("vocab", "count", "-o", "p.part", "--source-name", "x", *FIELDS, a, a, expect=2)
        self.assertEqual(p.stderr.decode(), "bidnorm vocab count: --source-name names one input; 2 given\n"
                         "Try 'bidnorm vocab count --help'.\n")
        p = self.bidnorm("vocab", "count", "-o", "p.part", "--source-name", "", *FIELDS, a, expect=2)
        self.assertEqual(p.stderr.decode(), "bidnorm vocab count: --source-name must not be empty\n"
                         "Try 'bidnorm vocab count --help'.\n")
        p = self.bidnorm("vocab", "build", "-o", "v2", "--source-name", "x", *FIELDS, a, expect=2)
        self.assertEqual(p.stderr.decode(), "bidnorm vocab build: --source-name does not apply to 'vocab build'\n"
                         "Try 'bidnorm vocab build --help'.\n")

    # --- ingest ----------------------------------------------------------------

    def test_ingest_source_name_replaces_stdin_everywhere(self):
        name = "s3://bucket/logs/dirty.jsonl"
        with open(DIRTY, "rb") as f:
            self.bidnorm("ingest", "-q", "-o", "out.avro", "--max-reject-rate", "1", "--source-name", name, "-",
                         stdin=f)
        meta, _ = read_avro(self.path("out.avro"))
        self.assertEqual(json.loads(meta["bidnorm.sources"]), [name])
        rejects = read_jsonl(self.path("out.rejects.jsonl"))
        self.assertTrue(rejects)
        self.assertEqual({r["source"] for r in rejects}, {name})
        with open(self.path("out.stats.json")) as f:
            self.assertEqual([i["name"] for i in json.load(f)["inputs"]], [name])
        # errors about the input name it too
        with open(self.path("trunc.zst"), "wb") as f:
            f.write(read_bytes(SAMPLE_12)[:3000])
        p = self.bidnorm("ingest", "-q", "-o", "t.avro", "--source-name", "s3://b/h12.zst", "trunc.zst", expect=5)
        self.assertEqual(p.stderr.decode().splitlines()[0], "bidnorm ingest: s3://b/h12.zst: truncated zstd input: "
                         "ends at byte offset 3000 inside the frame starting at byte offset 0")
        p = self.bidnorm("ingest", "-o", "t.avro", "--source-name", "x", DIRTY, DIRTY, expect=2)
        self.assertEqual(p.stderr.decode(), "bidnorm ingest: --source-name names one input; 2 given\n"
                         "Try 'bidnorm ingest --help'.\n")
        p = self.bidnorm("ingest", "-o", "t.avro", "--source-name", "", DIRTY, expect=2)
        self.assertEqual(p.stderr.decode(), "bidnorm ingest: --source-name must not be empty\n"
                         "Try 'bidnorm ingest --help'.\n")

    def test_ingest_survives_a_reader_of_stderr_that_goes_away(self):
        # every reject goes to stderr (-o - without --rejects); nobody reads it
        r, w = os.pipe()
        os.close(r)
        with open(DIRTY, "rb") as f, open(self.path("out.avro"), "wb") as out:
            p = subprocess.run([BIDNORM, "ingest", "-o", "-", "--max-reject-rate", "1", "-"], stdin=f, stdout=out,
                               stderr=w)
        os.close(w)
        self.assertEqual(p.returncode, 0)
        _, records = read_avro(self.path("out.avro"))
        self.assertTrue(records)
        # and with files: everything published, no temporary file left
        r, w = os.pipe()
        os.close(r)
        p = subprocess.run([BIDNORM, "ingest", "-o", self.path("f.avro"), "--max-reject-rate", "1", DIRTY],
                           stderr=w)
        os.close(w)
        self.assertEqual(p.returncode, 0)
        self.assertEqual(sorted(os.listdir(self.dir)), ["f.avro", "f.rejects.jsonl", "f.stats.json", "out.avro"])

    def test_stats_say_ok_only_once_the_avro_is_in_place(self):
        # the stats file cannot be renamed into place (a directory is in the way): no Avro stays published
        os.makedirs(self.path("s.json/x"))
        p = self.bidnorm("ingest", "-q", "-o", "out.avro", "--stats", "s.json", DIRTY, "--max-reject-rate", "1",
                         expect=5)
        self.assertEqual(p.stderr.decode().splitlines()[0],
                         "bidnorm ingest: s.json: cannot rename the temporary file into place: Is a directory")
        self.assertEqual(sorted(os.listdir(self.dir)), ["out.rejects.jsonl", "s.json"])
        # the Avro cannot be renamed into place: the stats file says so
        os.makedirs(self.path("out.avro/x"))
        p = self.bidnorm("ingest", "-q", "-o", "out.avro", DIRTY, "--max-reject-rate", "1", expect=5)
        with open(self.path("out.stats.json")) as f:
            stats = json.load(f)
        self.assertEqual(stats["status"], "failed")
        self.assertTrue(stats["error"].startswith("out.avro: cannot rename the temporary file into place"),
                        stats["error"])

    def die_with_parent_case(self, flag):
        """A parent that starts ingest on a pipe that never ends, then is killed: is ingest still running?"""
        r, w = os.pipe()
        child = ("import subprocess, sys, time\n"
                 f"p = subprocess.Popen([{BIDNORM!r}, 'ingest', *sys.argv[1:], '-q', '-o', 'out.avro', '-'],"
                 f" stdin={r})\n"
                 "print(p.pid, flush=True)\n"
                 "time.sleep(60)\n")
        parent = subprocess.Popen([sys.executable, "-c", child, *flag], stdout=subprocess.PIPE, pass_fds=(r,),
                                  cwd=self.dir)
        os.close(r)
        pid = int(parent.stdout.readline())
        os.write(w, read_bytes(DIRTY)[:2000])
        # kill the parent once ingest runs (its output file is open), not while it is still starting
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(".tmp-" in n for n in os.listdir(self.dir)):
            time.sleep(0.01)
        alive = kill_parent_and_see(parent, pid)
        os.close(w)
        return alive

    def test_die_with_parent_leaves_no_orphan(self):
        self.assertFalse(self.die_with_parent_case(["--die-with-parent"]))
        # the control: without the flag the orphan keeps running
        self.assertTrue(self.die_with_parent_case([]))

    def vocab_orphan_case(self, flag):
        """A parent that starts vocab count on a FIFO nobody writes, then is killed: is count still running?"""
        fifo = self.path("stuck.avro")
        if not os.path.exists(fifo):
            os.mkfifo(fifo)
        child = ("import subprocess, sys, time\n"
                 f"p = subprocess.Popen([{BIDNORM!r}, 'vocab', 'count', *sys.argv[1:], '-q', '-o', 'p.part',"
                 f" '--field', 'country', {fifo!r}])\n"
                 "print(p.pid, flush=True)\n"
                 "time.sleep(60)\n")
        parent = subprocess.Popen([sys.executable, "-c", child, *flag], stdout=subprocess.PIPE, cwd=self.dir)
        pid = int(parent.stdout.readline())
        time.sleep(0.3)
        return kill_parent_and_see(parent, pid)

    def test_vocab_die_with_parent_leaves_no_orphan(self):
        self.assertFalse(self.vocab_orphan_case(["--die-with-parent"]))
        self.assertTrue(self.vocab_orphan_case([]))
        p = self.bidnorm("vocab", "diff", "--die-with-parent", "a", "b", expect=2)
        self.assertEqual(p.stderr.decode(), "bidnorm vocab diff: --die-with-parent does not apply to 'vocab diff'\n"
                         "Try 'bidnorm vocab diff --help'.\n")


if __name__ == "__main__":
    unittest.main()
