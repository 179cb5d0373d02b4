"""bidnorm.distributed on a real Dask cluster: a scheduler and 2 worker processes (with their nannies)
on 127.0.0.1, every listener on loopback. Ingest with one worker killed (SIGKILL) while its bidnorm
runs, a corrupt input, a rerun that resumes; vocab as a tree of merges equal to one build."""
import fcntl
import importlib.util
import json
import os
import pty
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

from common import BIDNORM, SAMPLE_12, SAMPLE_13, SOURCE, bidnorm, read_bytes

HAVE_DASK = importlib.util.find_spec("distributed") is not None

if HAVE_DASK:
    import avro.datafile
    import avro.io
    from distributed import Client

    from bidnorm import distributed as bd
    from bidnorm.distributed import unit

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "e2e"))
from e2e import read_avro_file, read_records  # noqa: E402  pylint: disable=wrong-import-position

COPIES = 6        # sample copies per input: each ingest runs long enough to be killed in the middle


def all_files(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


def children(pid):
    """Direct children of pid (from /proc)."""
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(p))
            except (OSError, IndexError):
                pass
    return out


def descendants(pid):
    todo, seen = [pid], []
    while todo:
        p = todo.pop()
        seen.append(p)
        todo.extend(children(p))
    return seen


def gone(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def listening_addresses(pids):
    """Local addresses of the TCP sockets the processes listen on, as 'a.b.c.d' or an IPv6 hex string."""
    inodes = set()
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    link = os.readlink(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    continue
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
        except OSError:
            pass
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for row in f.read().splitlines()[1:]:
                cols = row.split()
                if cols[3] == "0A" and cols[9] in inodes:     # LISTEN
                    addr = cols[1].split(":")[0]
                    if len(addr) == 8:
                        addr = ".".join(str(int(addr[i:i + 2], 16)) for i in (6, 4, 2, 0))
                    found.append(addr)
    return found


@unittest.skipUnless(HAVE_DASK, "python3-distributed is not installed (tools/setup installs it on Debian)")
class PartNames(unittest.TestCase):
    """What names a vocabulary part, without a cluster."""

    def test_a_rule_files_content_names_the_parts_however_rules_is_spelled(self):
        from bidnorm.distributed import dask_driver
        with tempfile.TemporaryDirectory() as d:
            rules = os.path.join(d, "rules.yaml")
            shutil.copy(os.path.join(SOURCE, "rules", "openrtb.yaml"), rules)
            spellings = (["--rules", rules], ["--rules=" + rules])
            before = [dask_driver._settings(["country"], [], opts, "v") for opts in spellings]
            self.assertEqual(before[0], before[1])
            with open(rules, "a") as f:       # edited since: a part counted with it is stale
                f.write("# changed\n")
            after = [dask_driver._settings(["country"], [], opts, "v") for opts in spellings]
            self.assertEqual(after[0], after[1])
            self.assertNotEqual(before[1], after[1])


class PartsFolderLock(unittest.TestCase):
    """The end of a vocab run removes its parts folder, lock file and all, without a cluster."""

    def test_a_run_starting_while_the_parts_are_removed_keeps_its_own_lock(self):
        from unittest import mock
        from bidnorm.distributed import dask_driver
        with tempfile.TemporaryDirectory() as d:
            work = os.path.join(d, ".v.parts")
            held = dask_driver._lock(work)     # the run that ends
            self.assertIsNotNone(held)
            started = []
            real_rmtree = shutil.rmtree

            def rmtree_as_another_run_starts(path, *args, **kwargs):
                started.append(dask_driver._lock(work))     # between removal's start and end
                real_rmtree(path, *args, **kwargs)
            with mock.patch.object(dask_driver.shutil, "rmtree", rmtree_as_another_run_starts):
                dask_driver._remove_locked(work)
            os.close(held)
            fd = started[0]
            self.assertIsNotNone(fd, "the new run was refused: it locked the ending run's lock file")
            st, mine = os.stat(os.path.join(work, "lock")), os.fstat(fd)
            self.assertEqual((st.st_dev, st.st_ino), (mine.st_dev, mine.st_ino), "its lock file was removed")
            self.assertEqual(sorted(os.listdir(d)), [".v.parts"])
            with self.assertRaises(BlockingIOError):  # and it still excludes a third run
                fcntl.flock(os.open(os.path.join(work, "lock"), os.O_RDWR), fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.close(fd)


@unittest.skipUnless(HAVE_DASK, "python3-distributed is not installed (tools/setup installs it on Debian)")
class DaskCluster(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        d = cls.tmp.name
        env = dict(os.environ)
        sched_file = os.path.join(d, "scheduler.json")
        cls.procs = [subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
             "--dashboard-address", "127.0.0.1:0", "--scheduler-file", sched_file],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=d)]
        deadline = time.monotonic() + 30
        while not os.path.exists(sched_file) and time.monotonic() < deadline:
            time.sleep(0.05)
        for _ in range(2):
            cls.procs.append(subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_worker", "--scheduler-file", sched_file, "--host",
                 "127.0.0.1", "--nthreads", "1", "--no-dashboard", "--dashboard-address", "127.0.0.1:0"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=d))
        cls.client = Client(scheduler_file=sched_file, timeout=30)
        cls.client.wait_for_workers(2, timeout=30)
        # inputs: each a sample repeated (concatenated zstd frames), and one corrupt file
        cls.inputs = []
        for i in range(4):
            p = os.path.join(d, f"in{i}.jsonl.zst")
            with open(p, "wb") as f:
                f.write(read_bytes(SAMPLE_12 if i % 2 == 0 else SAMPLE_13) * COPIES)
            cls.inputs.append(p)
        cls.bad = os.path.join(d, "bad.jsonl.zst")
        with open(cls.bad, "wb") as f:
            f.write(read_bytes(SAMPLE_12)[:3000])
        cls.lines = {12: 0, 13: 0}
        for k, src in ((12, SAMPLE_12), (13, SAMPLE_13)):
            lines = subprocess.run(["zstd", "-dc", src], capture_output=True, check=True).stdout.splitlines()
            cls.lines[k] = sum(1 for x in lines if x.strip()) * COPIES     # blank lines are not records

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        for p in reversed(cls.procs):
            p.terminate()
        for p in cls.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        cls.tmp.cleanup()

    def cli_ingest(self, *args):
        """python3 -m bidnorm.distributed ingest on this cluster with args; the finished process."""
        cli = [sys.executable, "-m", "bidnorm.distributed", "ingest", "--scheduler", self.client.scheduler.address,
               *args]
        return subprocess.run(cli, capture_output=True, text=True, check=False)

    def test_0_every_listener_is_on_loopback(self):
        pids = [q for p in self.procs for q in descendants(p.pid)]
        addrs = listening_addresses(pids)
        self.assertGreaterEqual(len(addrs), 4, addrs)     # scheduler, its HTTP server, 2 workers, 2 nannies
        self.assertEqual(set(addrs), {"127.0.0.1"})

    def test_ingest_survives_a_killed_worker_and_commits_every_input_once(self):
        out = os.path.join(self.tmp.name, "out")
        killed = []

        def kill_a_worker_mid_ingest():
            # the worker CLI runs a nanny, whose child process is the worker, whose child is bidnorm
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                for child in (q for p in self.procs[1:] for q in descendants(p.pid)):
                    try:
                        cmd = read_bytes(f"/proc/{child}/cmdline").split(b"\0")
                        with open(f"/proc/{child}/stat") as f:
                            worker = int(f.read().rsplit(")", 1)[1].split()[1])
                    except (OSError, IndexError, ValueError):
                        continue
                    if cmd[0] == BIDNORM.encode() and cmd[1] == b"ingest":
                        time.sleep(0.1)     # well inside its work
                        os.kill(worker, signal.SIGKILL)
                        killed.append((worker, child))
                        return
                time.sleep(0.01)
        killer = threading.Thread(target=kill_a_worker_mid_ingest)
        killer.start()
        report = bd.ingest(self.client, [*self.inputs, self.bad], out)
        killer.join()
        self.assertTrue(killed, "no worker was caught running bidnorm")
        worker, child = killed[0]
        deadline = time.monotonic() + 5
        while not gone(child) and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertTrue(gone(child), "the killed worker's bidnorm kept running")

        # the corrupt input failed for good, with the CLI's exit code; every other one is committed once
        self.assertEqual(report.exit_code, 5)
        self.assertEqual([(os.path.basename(r["input"]), r["exit_code"]) for r in report.failed],
                         [("bad.jsonl.zst", 5)])
        self.assertEqual(report.lost, [])
        self.assertEqual(sorted(r["stem"] for r in report.committed), [f"in{i}" for i in range(4)])
        with open(os.path.join(out, "_bidnorm", "journal.jsonl")) as f:
            journal = [json.loads(x) for x in f]
        self.assertEqual(sorted(j["stem"] for j in journal if j["status"] == "committed"),
                         [f"in{i}" for i in range(4)])
        self.assertEqual(sorted(os.listdir(out)), ["_bidnorm", "_rejects", "_stats"] +
                         [f"in{i}.avro" for i in range(4)])
        self.assertFalse(os.path.exists(os.path.join(out, "_SUCCESS")))
        self.assertEqual(os.listdir(os.path.join(out, "_bidnorm", "staging")), [])
        leftovers = [f for _, _, fs in os.walk(out) for f in fs if ".tmp" in f]
        self.assertEqual(leftovers, [])
        # totals reconciled, and against the data itself
        written = 0
        for i in range(4):
            n = len(read_records(os.path.join(out, f"in{i}.avro")))
            with open(os.path.join(out, "_stats", f"in{i}.stats.json")) as f:
                stats = json.load(f)
            self.assertEqual(stats["records_written"], n)
            self.assertEqual(stats["records_read"], self.lines[12 if i % 2 == 0 else 13])
            written += n
        t = report.totals
        self.assertEqual(t["records_written"], written)
        self.assertEqual(t["records_read"], t["records_written"] + t["records_rejected"])
        self.assertEqual(t["records_read"], 2 * self.lines[12] + 2 * self.lines[13])
        self.assertTrue(os.path.exists(os.path.join(out, "_bidnorm", "quarantine", "bad.error.json")))

        # a rerun skips what is committed and reports the quarantined input again without running it
        rerun = bd.ingest(self.client, [*self.inputs, self.bad], out)
        self.assertEqual((rerun.exit_code, len(rerun.skipped), len(rerun.committed)), (5, 4, 0))
        self.assertEqual(rerun.totals, report.totals)
        # without the bad input the run is complete: _SUCCESS
        rerun = bd.ingest(self.client, self.inputs, out)
        self.assertEqual(rerun.exit_code, 0)
        self.assertTrue(os.path.exists(os.path.join(out, "_SUCCESS")))

    def test_a_rerun_tells_changed_inputs_from_committed_ones(self):
        d = os.path.join(self.tmp.name, "changing")
        os.makedirs(d)
        out = os.path.join(d, "out")
        a, b, c = (os.path.join(d, f"{x}.jsonl.zst") for x in "abc")
        shutil.copy(SAMPLE_12, a)
        shutil.copy(SAMPLE_13, b)
        with open(c, "wb") as f:
            f.write(read_bytes(SAMPLE_12)[:3000])
        first = bd.ingest(self.client, [a, b, c], out, show_progress=False)
        self.assertEqual((first.exit_code, len(first.committed), len(first.failed)), (5, 2, 1))
        a_avro = read_bytes(os.path.join(out, "a.avro"))
        # a delivered again with other content, b copied again (same bytes, new time), c corrected
        shutil.copy(SAMPLE_13, a)
        st = os.stat(b)
        os.utime(b, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
        shutil.copy(SAMPLE_12, c)
        p = self.cli_ingest("-o", out, a, b, c)
        self.assertEqual(p.returncode, 2, p.stderr)
        size12, size13 = os.path.getsize(SAMPLE_12), os.path.getsize(SAMPLE_13)
        lines = p.stderr.splitlines()
        self.assertEqual(lines[0], f"bidnorm distributed ingest: FAILED {a} (exit 2): {a}: changed since it was "
                                   f"committed (size {size12} -> {size13} bytes): a.avro and its rejects and stats "
                                   "hold the earlier content; ingest it again with --reingest-changed (in a unit "
                                   "task: \"reingest_changed\": true), which replaces them [the earlier commit stays]")
        self.assertRegex(lines[1], r"^bidnorm distributed ingest: 3 inputs: 2 committed \(1 by an earlier run\), "
                                   r"1 failed, 0 lost; ")
        self.assertEqual(read_bytes(os.path.join(out, "a.avro")), a_avro)
        self.assertEqual(sorted(os.listdir(os.path.join(out, "_bidnorm", "quarantine"))), [])
        self.assertFalse(os.path.exists(os.path.join(out, "_SUCCESS")))
        with open(os.path.join(out, "_bidnorm", "journal.jsonl")) as f:
            journal = [json.loads(x) for x in f]
        self.assertEqual(sorted((os.path.basename(j["input"]), j["status"]) for j in journal[-3:]),
                         [("a.jsonl.zst", "changed"), ("b.jsonl.zst", "committed"), ("c.jsonl.zst", "committed")])
        # b's hash proved its content unchanged: its record now keeps its new time (rewritten whole), so
        # the next run skips it by size and time, without a task that hashes it again
        with open(os.path.join(out, "_bidnorm", "committed", "b.json")) as f:
            record = json.load(f)
        self.assertEqual(record["identity"]["mtime_ns"], os.stat(b).st_mtime_ns)
        self.assertEqual(record["identity"]["sha256"], unit.input_identity(b)["sha256"])
        self.assertEqual(sorted(os.listdir(os.path.join(out, "_bidnorm", "committed"))),
                         ["a.json", "b.json", "c.json"])
        orig = unit._sha256_file
        unit._sha256_file = lambda path: self.fail(f"{path} hashed again")
        try:
            self.assertEqual(bd.run_unit({"op": "ingest", "input": b, "output_dir": out})["attempt"],
                             record["attempt"])
        finally:
            unit._sha256_file = orig
        # asked to, it ingests a again and replaces its outputs; the rest is committed already
        again = bd.ingest(self.client, [a, b, c], out, reingest_changed=True, show_progress=False)
        self.assertEqual((again.exit_code, [r["stem"] for r in again.committed], len(again.skipped)), (0, ["a"], 2))
        self.assertEqual(len(read_records(os.path.join(out, "a.avro"))), again.committed[0]["records_written"])
        self.assertEqual(again.committed[0]["records_read"], self.lines[13] // COPIES)
        self.assertTrue(os.path.exists(os.path.join(out, "_SUCCESS")))
        self.assertEqual(os.listdir(os.path.join(out, "_bidnorm", "staging")), [])
        with open(os.path.join(out, "_bidnorm", "journal.jsonl")) as f:
            journal = [json.loads(x) for x in f]
        self.assertEqual([os.path.basename(j["input"]) for j in journal if j["run"] == journal[-1]["run"]],
                         ["a.jsonl.zst"])
        # the claim of a's replacement is gone once the run is over: nothing can look it up any more
        with open(os.path.join(out, "_bidnorm", "committed", "a.json")) as f:
            self.assertEqual(json.load(f)["attempt"], again.committed[0]["attempt"])
        self.assertEqual(os.listdir(os.path.join(out, "_bidnorm", "replaced")), [])

    def test_another_days_input_with_a_committed_stem_is_refused(self):
        # day 21's files given with day 20's output by mistake: refused, day 20's outputs stay, also when
        # asked to ingest changed inputs again
        d = os.path.join(self.tmp.name, "days")
        day20, day21, out = (os.path.join(d, x) for x in ("2026-11-20", "2026-11-21", "out"))
        os.makedirs(day20)
        os.makedirs(day21)
        a, b = os.path.join(day20, "h12.jsonl.zst"), os.path.join(day21, "h12.jsonl.zst")
        shutil.copy(SAMPLE_12, a)
        shutil.copy(SAMPLE_13, b)
        first = bd.ingest(self.client, [a], out, show_progress=False)
        self.assertEqual(first.exit_code, 0)
        avro = read_bytes(os.path.join(out, "h12.avro"))
        p = self.cli_ingest("-o", out, "--reingest-changed", b)
        self.assertEqual(p.returncode, 2, p.stderr)
        size12, size13 = os.path.getsize(SAMPLE_12), os.path.getsize(SAMPLE_13)
        lines = p.stderr.splitlines()
        self.assertEqual(lines[0], f"bidnorm distributed ingest: FAILED {b} (exit 2): {b}: another input with the "
                                   f"stem h12 is committed in {out}: {a} (size {size12} -> {size13} bytes); two "
                                   "different inputs share the stem: h12.avro and its rejects and stats stay the "
                                   "other input's (--reingest-changed does not replace another input's outputs): "
                                   "write this input to another output, or rename it [the other input's commit stays]")
        self.assertRegex(lines[1], r"^bidnorm distributed ingest: 1 inputs: 0 committed \(0 by an earlier run\), "
                                   r"1 failed, 0 lost; ")
        self.assertEqual(read_bytes(os.path.join(out, "h12.avro")), avro)
        self.assertFalse(os.path.exists(os.path.join(out, "_bidnorm", "quarantine")))
        with open(os.path.join(out, "_bidnorm", "committed", "h12.json")) as f:
            self.assertEqual(json.load(f)["attempt"], first.committed[0]["attempt"])
        # the same file moved: still committed, skipped
        moved = os.path.join(d, "h12.jsonl.zst")
        os.rename(a, moved)
        again = bd.ingest(self.client, [moved], out, show_progress=False)
        self.assertEqual((again.exit_code, len(again.skipped)), (0, 1))
        # a stem readers would skip as hidden: refused before anything is looked at
        hidden = os.path.join(d, "_h13.jsonl.zst")
        shutil.copy(SAMPLE_13, hidden)
        p = self.cli_ingest("-o", os.path.join(d, "hidden-out"), moved, hidden)
        self.assertEqual((p.returncode, p.stderr), (2, f"bidnorm distributed ingest: {hidden}: its outputs would be "
                                                       "named _h13.avro, which readers of the folder (Spark, Hadoop) "
                                                       "skip as hidden (a name starting with '_'): rename the input\n"))
        self.assertFalse(os.path.exists(os.path.join(d, "hidden-out")))

    def test_the_end_of_a_run_finishes_a_commit_a_lost_worker_claimed(self):
        d = os.path.join(self.tmp.name, "claimed")
        out = os.path.join(d, "out")
        os.makedirs(d)
        a, b = os.path.join(d, "a.jsonl.zst"), os.path.join(d, "b.jsonl.zst")
        shutil.copy(SAMPLE_12, a)
        shutil.copy(SAMPLE_13, b)
        # a's worker lost right after claiming, and its task never ran again: the files are in its staging folder
        orig = unit._finish_commit
        unit._finish_commit = lambda record, out: None
        try:
            claimed = bd.run_unit({"op": "ingest", "input": a, "output_dir": out})
        finally:
            unit._finish_commit = orig
        self.assertFalse(os.path.exists(claimed["avro"]))
        # a run over other inputs clears the staging folder: it finishes a's commit first
        report = bd.ingest(self.client, [b], out, show_progress=False)
        self.assertEqual(report.exit_code, 0)
        self.assertEqual(len(read_records(claimed["avro"])), claimed["records_written"])
        self.assertEqual(os.listdir(os.path.join(out, "_bidnorm", "staging")), [])

    def test_the_end_of_a_run_finishes_a_replacement_before_removing_its_claim(self):
        d = os.path.join(self.tmp.name, "replacing")
        out = os.path.join(d, "out")
        os.makedirs(d)
        a, b = os.path.join(d, "a.jsonl.zst"), os.path.join(d, "b.jsonl.zst")
        shutil.copy(SAMPLE_12, a)
        shutil.copy(SAMPLE_13, b)
        first = bd.run_unit({"op": "ingest", "input": a, "output_dir": out})
        shutil.copy(SAMPLE_13, a)
        # the replacement is claimed and its files moved, but its worker is lost before the record is renamed
        orig = unit._install
        unit._install = lambda src, dst: None
        try:
            second = bd.run_unit({"op": "ingest", "input": a, "output_dir": out, "reingest_changed": True})
        finally:
            unit._install = orig
        record = os.path.join(out, "_bidnorm", "committed", "a.json")
        with open(record) as f:
            self.assertEqual(json.load(f)["attempt"], first["attempt"])
        self.assertEqual(os.listdir(os.path.join(out, "_bidnorm", "replaced")), [first["attempt"] + ".json"])
        # a run over another input rolls the replacement forward, then removes the claim
        report = bd.ingest(self.client, [b], out, show_progress=False)
        self.assertEqual(report.exit_code, 0)
        with open(record) as f:
            self.assertEqual(json.load(f)["attempt"], second["attempt"])
        self.assertEqual(os.listdir(os.path.join(out, "_bidnorm", "replaced")), [])
        self.assertEqual(len(read_records(second["avro"])), second["records_written"])
        self.assertEqual(bd.run_unit({"op": "ingest", "input": a, "output_dir": out})["attempt"], second["attempt"])

    def test_vocab_tree_equals_one_build(self):
        d = self.tmp.name
        avros = []
        for i, src in enumerate((SAMPLE_12, SAMPLE_13, SAMPLE_12, SAMPLE_13, SAMPLE_12)):
            a = os.path.join(d, f"v{i}.avro")
            # each its own file: the same sample ingested twice under one name gives identical bytes
            self.assertEqual(bidnorm("ingest", "-q", "--source-name", f"s3://logs/{i}", "-o", a, src).returncode, 0)
            avros.append(a)
        fields = ["app_bundle", "installed_apps", "country"]
        opts = ["--min-count", "3", "--top-k", "500", "--task", "ctr"]
        report = bd.vocab(self.client, avros, os.path.join(d, "tree"), fields=fields, where=["click!=1"],
                          options=opts, fan_in=2)
        self.assertEqual(report.exit_code, 0, report.message)
        self.assertEqual(bidnorm("vocab", "build", "-q", "-o", os.path.join(d, "one"), "--field", ",".join(fields),
                                 "--where", "click!=1", *opts, *avros).returncode, 0)
        names = sorted(os.listdir(os.path.join(d, "one")))
        self.assertEqual(names, sorted(os.listdir(os.path.join(d, "tree"))))
        for n in names:
            a, b = read_bytes(os.path.join(d, "one", n)), read_bytes(os.path.join(d, "tree", n))
            if n == "manifest.json":
                a, b = json.loads(a), json.loads(b)
                del a["resources"], b["resources"]
            self.assertEqual(a, b, n)
        self.assertEqual(report.skipped, [])
        self.assertEqual([x for x in os.listdir(d) if ".parts" in x], [])
        # a corrupt input fails the whole vocabulary with the CLI's code, naming it; the other counts finish
        # and stay for a rerun
        bad = os.path.join(d, "bad.avro")
        with open(bad, "wb") as f:
            f.write(read_bytes(avros[0])[:500])
        inputs = [avros[0], bad, *avros[1:]]
        report = bd.vocab(self.client, inputs, os.path.join(d, "bad"), fields=fields, where=["click!=1"],
                          options=opts, fan_in=2)
        self.assertEqual(report.exit_code, 5)
        self.assertIn(bad, report.message)
        self.assertFalse(os.path.exists(os.path.join(d, "bad")))
        self.assertEqual(report.parts, os.path.join(d, ".bad.parts"))
        parts = sorted(os.listdir(report.parts))
        self.assertEqual(len([p for p in parts if p.startswith("count-")]), 5)
        # other settings never reuse a part
        other = bd.vocab(self.client, inputs, os.path.join(d, "bad"), fields=fields, where=["click=1"], fan_in=2)
        self.assertEqual((other.exit_code, other.skipped), (5, []))
        # the corrupt input delivered again, whole, and v4 touched: only the counts and merges that depend on
        # them run again. The tree (fan-in 2): ((v0 bad) (v1 v2)) ((v3 v4)); reused: v0, v3, (v1 v2).
        os.unlink(bad)
        self.assertEqual(bidnorm("ingest", "-q", "--source-name", "s3://logs/bad", "-o", bad, SAMPLE_13).returncode, 0)
        st = os.stat(avros[4])
        os.utime(avros[4], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
        resumed = bd.vocab(self.client, inputs, os.path.join(d, "bad"), fields=fields, where=["click!=1"],
                           options=opts, fan_in=2)
        self.assertEqual(resumed.exit_code, 0, resumed.message)
        self.assertEqual(sorted(r["op"] for r in resumed.skipped), ["count", "count", "merge"])
        self.assertTrue({r["part"] for r in resumed.skipped if r["op"] == "count"} <=
                        {os.path.join(report.parts, p) for p in parts})
        self.assertFalse(os.path.exists(report.parts))
        self.assertEqual(bidnorm("vocab", "build", "-q", "-o", os.path.join(d, "one-resumed"), "--field",
                                 ",".join(fields), "--where", "click!=1", *opts, *inputs).returncode, 0)
        for n in names:
            a, b = read_bytes(os.path.join(d, "one-resumed", n)), read_bytes(os.path.join(d, "bad", n))
            if n == "manifest.json":
                a, b = json.loads(a), json.loads(b)
                del a["resources"], b["resources"]
            self.assertEqual(a, b, n)

    def assert_same_vocabulary(self, one, tree):
        """The files of two vocabulary directories are byte-identical (the manifest's resources aside)."""
        names = sorted(os.listdir(one))
        self.assertEqual(names, sorted(os.listdir(tree)))
        for n in names:
            a, b = read_bytes(os.path.join(one, n)), read_bytes(os.path.join(tree, n))
            if n == "manifest.json":
                a, b = json.loads(a), json.loads(b)
                del a["resources"], b["resources"]
            self.assertEqual(a, b, n)

    def test_vocab_of_inputs_of_mixed_rules_normalizes_where_with_the_rules_given(self):
        # b.avro is written with rules whose os chain keeps case, a and c with the shipped ones. With
        # --rules bidlog, os=iOS means 'ios' for every input, as in one build; each input's own rules would
        # make it 'iOS' for b, which no row of b holds (the counts passed --rules only to the final merge).
        d = os.path.join(self.tmp.name, "mixed")
        os.makedirs(d)
        with open(os.path.join(SOURCE, "rules", "bidlog.yaml"), encoding="utf-8") as f:
            text = f.read()
        chain = "  - name: os\n    source: device.os\n    type: string\n    chain: token\n"
        self.assertIn(chain, text)
        keep_case = os.path.join(d, "keep-case.yaml")
        with open(keep_case, "w", encoding="utf-8") as f:
            f.write(text.replace(chain, chain.replace("chain: token", "chain: [text]")))
        avros = []
        for name, src, rules in (("a", SAMPLE_12, "bidlog"), ("b", SAMPLE_13, keep_case), ("c", SAMPLE_12, "bidlog")):
            avros.append(os.path.join(d, name + ".avro"))
            p = bidnorm("ingest", "-q", "--rules", rules, "--source-name", name, "-o", avros[-1], src)
            self.assertEqual(p.returncode, 0, p.stderr)
        opts = ["--field", "country,app_bundle", "--where", "os=iOS", "--allow-mixed-rules", "--rules", "bidlog"]
        p = bidnorm("vocab", "build", "-q", "-o", os.path.join(d, "one"), *opts, *avros)
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(os.path.join(d, "one", "manifest.json"), encoding="utf-8") as f:
            matched = {i["path"]: i["rows_matched"] for i in json.load(f)["inputs"]}
        self.assertGreater(matched[avros[1]], 0)
        # fan-in 2: (a b) (c), so a merge --part of parts of two rules runs too
        cli = [sys.executable, "-m", "bidnorm.distributed", "vocab", "--scheduler", self.client.scheduler.address]
        p = subprocess.run([*cli, "-q", "-o", os.path.join(d, "tree"), "--fan-in", "2", *opts, *avros],
                           capture_output=True, text=True, check=False, cwd=d)
        self.assertEqual((p.returncode, p.stderr), (0, ""))
        self.assert_same_vocabulary(os.path.join(d, "one"), os.path.join(d, "tree"))

    def test_vocab_of_inputs_of_another_text_repair(self):
        # written before the text repair version was recorded: version 1, refused unless allowed
        d = os.path.join(self.tmp.name, "repair")
        os.makedirs(d)
        olds = []
        for i, src in enumerate((SAMPLE_12, SAMPLE_13, SAMPLE_12)):
            new = os.path.join(d, f"new{i}.avro")
            self.assertEqual(bidnorm("ingest", "-q", "--source-name", f"h{i}", "-o", new, src).returncode, 0)
            olds.append(os.path.join(d, f"old{i}.avro"))
            with open(new, "rb") as f, open(olds[-1], "wb") as g:
                reader = avro.datafile.DataFileReader(f, avro.io.DatumReader())
                w = avro.datafile.DataFileWriter(g, avro.io.DatumWriter(), reader.datum_reader.writers_schema,
                                                 codec="null")
                for k in ("bidnorm.rules.sha256", "bidnorm.rules.source", "bidnorm.version"):
                    w.set_meta(k, reader.meta[k])
                for r in reader:
                    w.append(r)
                w.close()
                reader.close()
        self.assertNotIn("bidnorm.text_repair", read_avro_file(olds[0])[0])
        cli = [sys.executable, "-m", "bidnorm.distributed", "vocab", "--scheduler", self.client.scheduler.address,
               "-q", "--fan-in", "2", "--field", "country,app_bundle"]
        p = subprocess.run([*cli, "-o", os.path.join(d, "tree"), olds[0]], capture_output=True, text=True,
                           check=False)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertEqual(p.stderr.splitlines()[0],
                         f"bidnorm distributed vocab: bidnorm vocab count: {olds[0]}: written with text repair "
                         "version '1' (the header has no bidnorm.text_repair: written before it was recorded, or not "
                         "by bidnorm ingest), but this bidnorm repairs text with version '2': the same raw text gives "
                         "other tokens (training/serving skew); ingest it again with this bidnorm, or pass "
                         "--allow-other-text-repair to count it anyway (serving refuses such a vocabulary)")
        # allowed, counts, the merge of parts ((old0 old1) (old2)) and the final merge take them, as one build does
        p = subprocess.run([*cli, "--allow-other-text-repair", "-o", os.path.join(d, "tree"), *olds],
                           capture_output=True, text=True, check=False)
        self.assertEqual((p.returncode, p.stderr), (0, ""))
        p = bidnorm("vocab", "build", "-q", "--allow-other-text-repair", "-o", os.path.join(d, "one"), "--field",
                    "country,app_bundle", *olds)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assert_same_vocabulary(os.path.join(d, "one"), os.path.join(d, "tree"))
        with open(os.path.join(d, "tree", "manifest.json"), encoding="utf-8") as f:
            self.assertEqual(json.load(f)["text_repair"], "1")

    def test_two_vocab_runs_into_one_output(self):
        d = os.path.join(self.tmp.name, "locked")
        os.makedirs(d)
        out, parts = os.path.join(d, "v"), os.path.join(d, ".v.parts")
        avro_in = os.path.join(self.tmp.name, "locked-in.avro")
        self.assertEqual(bidnorm("ingest", "-q", "-o", avro_in, SAMPLE_13).returncode, 0)
        vocab = [sys.executable, "-m", "bidnorm.distributed", "vocab", "--scheduler", self.client.scheduler.address,
                 "-o", out, "-f", "country", avro_in]
        # a run in progress holds the lock, as the driver takes it
        os.makedirs(parts)
        held = os.open(os.path.join(parts, "lock"), os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
            p = subprocess.run(vocab, capture_output=True, text=True, check=False)
            self.assertEqual((p.returncode, p.stderr), (1, f"bidnorm distributed vocab: another run is writing {out}: "
                                                           f"it holds the lock {parts}/lock; wait for it to end, or "
                                                           "write to another output\n"))
            self.assertEqual(os.listdir(d), [".v.parts"])
            self.assertEqual(os.listdir(parts), ["lock"])
            report = bd.vocab(self.client, [avro_in], out, fields=["country"])
            self.assertEqual((report.exit_code, report.parts, report.failed), (1, "", []))
        finally:
            os.close(held)
        # once it has ended, a run goes ahead and removes the folder, lock and all
        p = subprocess.run(vocab, capture_output=True, text=True, check=False)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(os.listdir(d), ["v"])

    def test_two_ingest_runs_into_one_output(self):
        # the end of a run removes the staging folders it takes for lost attempts': with two runs at once, the
        # first to end would remove those of the other's attempts still running
        d = os.path.join(self.tmp.name, "ingest-locked")
        out = os.path.join(d, "out")
        os.makedirs(os.path.join(out, "_bidnorm"))
        a = os.path.join(d, "a.jsonl.zst")
        shutil.copy(SAMPLE_12, a)
        lock = os.path.join(out, "_bidnorm", "lock")
        held = os.open(lock, os.O_RDWR | os.O_CREAT)     # a run in progress holds the lock, as the driver takes it
        try:
            fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
            p = self.cli_ingest("-o", out, a)
            self.assertEqual((p.returncode, p.stderr), (1, f"bidnorm distributed ingest: another run is writing {out}: "
                                                           f"it holds the lock {lock}; wait for it to end, or write "
                                                           "to another output\n"))
            report = bd.ingest(self.client, [a], out, show_progress=False)
            self.assertEqual((report.exit_code, report.committed, report.failed, report.lost), (1, [], [], []))
            self.assertEqual(all_files(out), ["_bidnorm/lock"])
        finally:
            os.close(held)
        # once it has ended, a run goes ahead
        p = self.cli_ingest("-o", out, a)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(os.path.exists(os.path.join(out, "a.avro")))
        self.assertTrue(os.path.exists(os.path.join(out, "_SUCCESS")))

    def test_vocab_without_bidnorm_on_the_workers(self):
        d = os.path.join(self.tmp.name, "nobin")
        os.makedirs(d)
        missing = os.path.join(d, "bidnorm")
        setenv = lambda k, v: os.environ.__setitem__(k, v)   # noqa: E731 (by value: the workers' os.environ)
        self.client.run(setenv, "BIDNORM_BIN", missing)
        try:
            report = bd.vocab(self.client, [SAMPLE_12], os.path.join(d, "v"), fields=["country"])
        finally:
            self.client.run(setenv, "BIDNORM_BIN", BIDNORM)
        self.assertEqual((report.exit_code, report.message),
                         (1, f"FileNotFoundError: BIDNORM_BIN={missing}: not an executable file"))
        self.assertEqual(os.listdir(d), [])

    def test_command_line(self):
        d = self.tmp.name
        addr = self.client.scheduler.address
        cli = [sys.executable, "-m", "bidnorm.distributed"]
        out = os.path.join(d, "cli-out")
        p = subprocess.run([*cli, "ingest", "--scheduler", addr, "-o", out, "--codec", "snappy", self.inputs[1],
                            self.bad], capture_output=True, text=True, check=False)
        self.assertEqual(p.returncode, 5, p.stderr)
        lines = p.stderr.splitlines()
        self.assertEqual(lines[0], f"bidnorm distributed ingest: FAILED {self.bad} (exit 5): {self.bad}: truncated "
                                   "zstd input: ends at byte offset 3000 inside the frame starting at byte offset 0 "
                                   "[quarantined]")
        n = self.lines[13]
        self.assertRegex(lines[1], r"^bidnorm distributed ingest: 2 inputs: 1 committed \(0 by an earlier run\), "
                                   rf"1 failed, 0 lost; {n} records read = \d+ written \+ \d+ rejected; [0-9.]+ s -> "
                                   + out + "$")
        self.assertEqual(read_bytes(os.path.join(out, "in1.avro"))[:4], b"Obj\x01")
        self.assertIn(b"snappy", read_bytes(os.path.join(out, "in1.avro"))[:2000])
        # two inputs that would write one output
        other = os.path.join(d, "other")
        os.makedirs(other, exist_ok=True)
        twin = os.path.join(other, "in1.jsonl.zst")
        shutil.copy(self.inputs[1], twin)
        p = subprocess.run([*cli, "ingest", "--scheduler", addr, "-o", out, self.inputs[1], twin],
                           capture_output=True, text=True, check=False)
        self.assertEqual(p.returncode, 2)
        self.assertEqual(p.stderr.splitlines()[0], f"bidnorm distributed ingest: {self.inputs[1]} and {twin} would "
                                                   "both be written as in1.avro: rename one")
        # progress on a terminal: one line, rewritten in place
        master, slave = pty.openpty()
        p = subprocess.run([*cli, "ingest", "--scheduler", addr, "-o", os.path.join(d, "cli-tty"),
                            self.inputs[1]], stderr=slave, stdout=subprocess.DEVNULL, check=False)
        os.close(slave)
        shown = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
        os.close(master)
        self.assertEqual(p.returncode, 0)
        self.assertRegex(shown.decode(), r"^\r\x1b\[Kbidnorm ingest: 1/1 done, 0 failed, \d+ s\r\x1b\[K"
                                         r"bidnorm distributed ingest: 1 inputs: 1 committed ")
        # --local: a cluster of its own, started and stopped by the command
        p = subprocess.run([*cli, "ingest", "--local", "2", "-q", "-o", os.path.join(d, "cli-local"), SAMPLE_13],
                           capture_output=True, text=True, check=False)
        self.assertEqual((p.returncode, p.stderr), (0, ""))
        self.assertEqual(sorted(os.listdir(os.path.join(d, "cli-local"))),
                         ["_SUCCESS", "_bidnorm", "_rejects", "_stats", "bidlog-2026-11-20T13.avro"])
        # vocab: the same files as one build
        avro = os.path.join(out, "in1.avro")
        p = subprocess.run([*cli, "vocab", "--scheduler", addr, "-q", "-o", os.path.join(d, "cli-vocab"), "-f",
                            "country", "--min-count", "2", avro], capture_output=True, text=True, check=False)
        self.assertEqual((p.returncode, p.stderr), (0, ""))
        self.assertEqual(bidnorm("vocab", "build", "-q", "-o", os.path.join(d, "cli-one"), "--field", "country",
                                 "--min-count", "2", avro).returncode, 0)
        self.assertEqual(read_bytes(os.path.join(d, "cli-vocab", "country.txt")),
                         read_bytes(os.path.join(d, "cli-one", "country.txt")))
        # the same again: the final merge fails (the directory exists), the count stays for the rerun
        vocab = [*cli, "vocab", "--scheduler", addr, "-o", os.path.join(d, "cli-vocab"), "-f", "country",
                 "--min-count", "2", avro]
        p = subprocess.run(vocab, capture_output=True, text=True, check=False)
        self.assertEqual(p.returncode, 2, p.stderr)
        parts = os.path.join(d, ".cli-vocab.parts")
        self.assertEqual(p.stderr.splitlines(), [
            f"bidnorm distributed vocab: bidnorm vocab merge: {os.path.join(d, 'cli-vocab')}: exists (use --force to "
            "replace it)",
            f"bidnorm distributed vocab: the parts finished so far stay in {parts}: a rerun with the same output, "
            "inputs and settings reuses them"])
        p = subprocess.run([*vocab, "--force"], capture_output=True, text=True, check=False)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertRegex(p.stderr, r"^bidnorm distributed vocab: 1 inputs, 1 parts reused from an earlier run; "
                                   rf"[0-9.]+ s -> {os.path.join(d, 'cli-vocab')}\n$")
        self.assertFalse(os.path.exists(parts))


if __name__ == "__main__":
    unittest.main()
