"""End-to-end tests of `bidnorm watch`: the real binary on a real inbox, killed, stopped and starved of disk."""
import glob
import json
import os
import random
import resource
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
import time
import unittest

import avro.datafile
import avro.io
import zstandard

from e2e import BIDNORM, SOURCE

SETTLE = "0.2"


def record(event_id):
    return {"event_id": event_id, "ts": "2026-11-20T12:00:01Z", "exchange": "unity",
            "app": {"bundle": "com.a.b"}, "device": {"os": "android", "clicks": 1, "impressions": 9}}


def jsonl(ids):
    return b"".join(json.dumps(record(i)).encode() + b"\n" for i in ids)


def avro_ids(path):
    with open(path, "rb") as f:
        reader = avro.datafile.DataFileReader(f, avro.io.DatumReader())
        ids = [r["event_id"] for r in reader]
        reader.close()
    return ids


def read_text(path):
    with open(path) as f:
        return f.read()


def read_json(path):
    return json.loads(read_text(path))


def wait_until(pred, timeout=10.0, step=0.02):
    """Poll pred until it is true; fail after timeout seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    raise AssertionError("timed out after %.1fs" % timeout)


class Watcher:
    """One `bidnorm watch` process; stderr goes to a file so it can never block."""

    def __init__(self, test, *args, preexec_fn=None):
        self.log_path = os.path.join(test.dir, "watch-%d.log" % len(test.watchers))
        self.log_file = open(self.log_path, "wb")
        self.proc = subprocess.Popen([BIDNORM, "watch", *test.base_args(), *args], stdout=subprocess.DEVNULL,
                                     stderr=self.log_file, preexec_fn=preexec_fn)
        test.watchers.append(self)

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def events(self):
        out = []
        for ln in self.log().splitlines():
            if ln.startswith("{"):
                out.append(json.loads(ln))
        return out

    def wait_log(self, text, timeout=10.0):
        wait_until(lambda: text in self.log(), timeout)

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            self.close()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)
        self.close()

    def close(self):
        if not self.log_file.closed:
            self.log_file.close()


class Watch(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name
        self.inbox = self.path("in")
        self.outbox = self.path("out")
        self.done = self.path("done")
        os.mkdir(self.inbox)
        self.watchers = []
        self.after = ["--done", self.done]

    def tearDown(self):
        for w in self.watchers:
            w.kill()
        self.tmp.cleanup()

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def base_args(self):
        return ["--inbox", self.inbox, "--outbox", self.outbox, *self.after, "--settle", SETTLE,
                "--log-format", "json"]

    def drop(self, name, data, mtime=None):
        """Deliver a file the recommended way: write under a temporary name, then rename into the inbox."""
        tmp = os.path.join(self.inbox, "." + name + ".part")
        with open(tmp, "wb") as f:
            f.write(data)
        if mtime is not None:
            os.utime(tmp, (mtime, mtime))
        os.rename(tmp, os.path.join(self.inbox, name))

    def once(self, *args, expect=0):
        p = subprocess.run([BIDNORM, "watch", *self.base_args(), "--once", *args], capture_output=True,
                           timeout=60)
        self.assertEqual(p.returncode, expect, p.stderr.decode())
        return p

    def outputs_done(self, stem):
        return os.path.exists(os.path.join(self.outbox, stem + ".stats.json"))

    def all_ids(self):
        ids = []
        for p in sorted(glob.glob(os.path.join(self.outbox, "*.avro"))):
            ids.extend(avro_ids(p))
        return ids

    def inbox_files(self):
        return sorted(n for n in os.listdir(self.inbox) if not n.startswith("."))

    def assert_no_temporaries(self):
        left = []
        for root, _, files in os.walk(self.outbox):
            left.extend(os.path.join(root, n) for n in files if ".tmp-" in n)
        left.extend(os.listdir(os.path.join(self.outbox, ".bidnorm-watch", "staging")))
        self.assertEqual(left, [])

    # --- arrival -------------------------------------------------------------

    def test_file_renamed_into_the_inbox_is_processed_and_moved_to_done(self):
        w = Watcher(self)
        w.wait_log('"event":"started"')
        self.drop("a.jsonl", jsonl(["a1", "a2"]))
        self.drop("b.jsonl.zst", zstandard.ZstdCompressor().compress(jsonl(["b1"])))
        wait_until(lambda: self.outputs_done("a") and self.outputs_done("b"))
        self.assertEqual(avro_ids(os.path.join(self.outbox, "a.avro")), ["a1", "a2"])
        self.assertEqual(avro_ids(os.path.join(self.outbox, "b.avro")), ["b1"])
        wait_until(lambda: sorted(os.listdir(self.done)) == ["a.jsonl", "b.jsonl.zst"])
        self.assertEqual(self.inbox_files(), [])
        stats = read_json(os.path.join(self.outbox, "a.stats.json"))
        self.assertEqual(stats["output"], os.path.join(self.outbox, "a.avro"))
        self.assertEqual(w.stop(), 0)
        done = [e for e in w.events() if e["event"] == "file_done"]
        self.assertEqual(sorted(e["file"] for e in done), ["a.jsonl", "b.jsonl.zst"])
        a = [e for e in done if e["file"] == "a.jsonl"][0]
        self.assertEqual((a["level"], a["records_written"], a["records_rejected"]), ("info", 2, 0))
        self.assertIn('"event":"stopped"', w.log())
        self.assert_no_temporaries()

    def test_slow_writer_partial_content_is_never_processed(self):
        # A rescan every 0.1 s sees the half-written file many times; it must wait for the close.
        w = Watcher(self, "--rescan", "0.1")
        w.wait_log('"event":"started"')
        data = jsonl(["s%d" % i for i in range(40)])
        cut = len(data) // 2 + 5   # inside a line
        with open(os.path.join(self.inbox, "slow.jsonl"), "wb") as f:
            f.write(data[:cut])
            f.flush()
            time.sleep(1.0)
            self.assertFalse(os.path.exists(os.path.join(self.outbox, "slow.avro")))
            f.write(data[cut:])
        wait_until(lambda: self.outputs_done("slow"))
        self.assertEqual(avro_ids(os.path.join(self.outbox, "slow.avro")), ["s%d" % i for i in range(40)])
        self.assertEqual(os.path.getsize(os.path.join(self.outbox, "slow.rejects.jsonl")), 0)
        self.assertEqual(w.stop(), 0)
        self.assertEqual([e["event"] for e in w.events() if e.get("file") == "slow.jsonl"], ["file_started", "file_done"])

    def test_backlog_is_processed_oldest_first_and_names_break_ties(self):
        now = time.time()
        for name, age in [("c.jsonl", 300), ("a.jsonl", 100), ("b.jsonl", 300), ("d.jsonl", 200)]:
            self.drop(name, jsonl([name]), mtime=now - age)
        self.drop(".hidden.jsonl", jsonl(["h"]))
        self.drop("x.tmp", jsonl(["t"]))
        self.drop("notes.txt", b"hello\n")
        p = self.once()
        order = [json.loads(ln)["file"] for ln in p.stderr.decode().splitlines()
                 if '"event":"file_done"' in ln]
        self.assertEqual(order, ["b.jsonl", "c.jsonl", "d.jsonl", "a.jsonl"])
        self.assertEqual(sorted(os.listdir(self.inbox)), [".hidden.jsonl", ".quarantine", "notes.txt", "x.tmp"])

    def test_many_files_with_three_workers(self):
        w = Watcher(self, "--workers", "3")
        w.wait_log('"event":"started"')
        expected = []
        for f in range(30):
            ids = ["m%d_%d" % (f, i) for i in range(20)]
            expected.extend(ids)
            self.drop("m%02d.jsonl" % f, jsonl(ids))
        wait_until(lambda: len(os.listdir(self.done)) == 30 if os.path.isdir(self.done) else False, 20)
        self.assertEqual(w.stop(), 0)
        self.assertEqual(sorted(self.all_ids()), sorted(expected))
        self.assert_no_temporaries()

    def test_a_thousand_files_leak_no_descriptor_and_no_thread(self):
        # Over its lifetime the watcher opens inputs, outputs, staging files, the journal and
        # quarantine notes, and runs worker threads per file. After 1,000 files - good ones, files
        # with rejects, corrupt ones that are quarantined, resends the journal skips - it holds
        # exactly the descriptors and threads it held after the first 20.
        self.after = ["--delete"]
        w = Watcher(self, "--workers", "2", "--max-reject-rate", "0.6")
        w.wait_log('"event":"started"')
        bad = zstandard.ZstdCompressor().compress(jsonl(["z%d" % i for i in range(50)]))[:60]

        def settled(n):
            wait_until(lambda: self.inbox_files() == [], 120)
            # a file leaves the inbox before its worker is done with it: wait for the log lines
            wait_until(lambda: sum(1 for e in w.events() if e["event"] in
                                   ("file_done", "file_quarantined", "file_duplicate")) == n, 60)

        def deliver(first, last):
            for f in range(first, last):
                kind = f % 10
                if kind == 7:
                    self.drop("f%04d.jsonl.zst" % f, bad)
                elif kind == 8:
                    self.drop("f%04d.jsonl" % f, jsonl(["f%d" % f]) + b"{not json\n")
                elif kind != 9:
                    self.drop("f%04d.jsonl" % f, jsonl(["f%d_%d" % (f, i) for i in range(5)]))
            settled(last - (last - first) // 10)
            for f in range(first + 9, last, 10):  # resend the kind-0 file of each ten, done by now
                self.drop("f%04d.jsonl" % (f - 9), jsonl(["f%d_%d" % (f - 9, i) for i in range(5)]))
            settled(last)

        def held():
            proc = "/proc/%d" % w.proc.pid
            fds = sorted(os.readlink(os.path.join(proc, "fd", fd)) for fd in os.listdir(proc + "/fd"))
            return fds, len(os.listdir(proc + "/task"))

        deliver(0, 20)
        before = held()
        deliver(20, 1000)
        self.assertEqual(held(), before)
        counts = {}
        for e in w.events():
            counts[e["event"]] = counts.get(e["event"], 0) + 1
        self.assertEqual((counts["file_done"], counts["file_duplicate"], counts["file_quarantined"]), (800, 100, 100))
        self.assertEqual(len(glob.glob(os.path.join(self.inbox, ".quarantine", "*.error.json"))), 100)
        self.assertEqual(len(glob.glob(os.path.join(self.outbox, "*.avro"))), 800)
        self.assertEqual(w.stop(), 0)
        self.assert_no_temporaries()

    # --- bad files -----------------------------------------------------------

    def test_corrupt_zstd_is_quarantined_with_its_reason_and_the_watcher_goes_on(self):
        w = Watcher(self)
        w.wait_log('"event":"started"')
        good = zstandard.ZstdCompressor().compress(jsonl(["g%d" % i for i in range(100)]))
        self.drop("bad.jsonl.zst", good[:len(good) // 2])
        self.drop("good.jsonl", jsonl(["ok"]))
        q = os.path.join(self.inbox, ".quarantine")
        wait_until(lambda: os.path.exists(os.path.join(q, "bad.jsonl.zst")) and self.outputs_done("good"))
        err = read_json(os.path.join(q, "bad.jsonl.zst.error.json"))
        self.assertEqual((err["file"], err["status"], err["code"], err["exit_code"]),
                         ("bad.jsonl.zst", "corrupt", -4, 5))
        self.assertEqual(err["message"], "bad.jsonl.zst: truncated zstd input: ends at byte offset %d inside the frame "
                         "starting at byte offset 0" % (len(good) // 2))
        self.assertRegex(err["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertFalse(os.path.exists(os.path.join(self.outbox, "bad.avro")))
        self.assertFalse(os.path.exists(os.path.join(self.outbox, "bad.stats.json")))
        self.assertTrue(os.path.exists(os.path.join(q, "bad.jsonl.zst.stats.json")))
        self.assertEqual(w.stop(), 0)
        ev = [e for e in w.events() if e["event"] == "file_quarantined"][0]
        self.assertEqual((ev["file"], ev["level"], ev["code"]), ("bad.jsonl.zst", "warn", -4))
        self.assertEqual(ev["error"], err["message"])

    def test_reject_rate_over_the_limit_is_quarantined(self):
        self.drop("dirty.jsonl", jsonl(["d1"]) + b"{not json\n" * 3)
        self.once("--max-reject-rate", "0.5")
        q = os.path.join(self.inbox, ".quarantine")
        err = read_json(os.path.join(q, "dirty.jsonl.error.json"))
        self.assertEqual((err["status"], err["exit_code"], err["records_read"], err["records_rejected"]),
                         ("reject_rate", 3, 4, 3))
        self.assertEqual(err["message"], "rejected 3 of 4 records (75.00%), above the limit of 50.00% "
                         "(--max-reject-rate 0.5); no output published")
        self.assertEqual(len(read_text(os.path.join(q, "dirty.jsonl.rejects.jsonl")).splitlines()), 3)
        self.assertEqual(os.listdir(self.outbox), [".bidnorm-watch"])

    def test_resent_file_identical_is_not_processed_again_but_new_content_is(self):
        self.drop("r.jsonl", jsonl(["r1"]))
        self.once()
        self.drop("r.jsonl", jsonl(["r1"]))
        p = self.once()
        self.assertIn('"event":"file_duplicate"', p.stderr.decode())
        self.assertEqual(sorted(os.listdir(self.done)), ["r.jsonl", "r.jsonl.1"])
        self.drop("r.jsonl", jsonl(["r1", "r2"]))
        p = self.once()
        self.assertIn('"event":"file_done"', p.stderr.decode())
        self.assertEqual(avro_ids(os.path.join(self.outbox, "r.avro")), ["r1", "r2"])

    def test_two_inputs_with_the_same_stem_do_not_overwrite_each_other(self):
        self.drop("s.jsonl", jsonl(["s1"]))
        self.once()
        self.drop("s.jsonl.zst", zstandard.ZstdCompressor().compress(jsonl(["s2"])))
        self.once()
        err = read_json(os.path.join(self.inbox, ".quarantine", "s.jsonl.zst.error.json"))
        self.assertEqual(err["message"], "s.jsonl.zst: its outputs s.avro/.rejects.jsonl/.stats.json "
                         "belong to 's.jsonl'")
        self.assertEqual(avro_ids(os.path.join(self.outbox, "s.avro")), ["s1"])

    # --- recovery ------------------------------------------------------------

    def test_restart_finishes_a_file_published_before_the_crash_and_removes_temporaries(self):
        data = jsonl(["p1", "p2"])
        self.drop("p.jsonl", data)
        self.once()
        # Rewind to the moment after publication, before the input was moved: journal says "published".
        jpath = os.path.join(self.outbox, ".bidnorm-watch", "journal.jsonl")
        lines = read_text(jpath).splitlines()
        self.assertEqual([json.loads(x)["status"] for x in lines], ["published", "done"])
        with open(jpath, "w") as f:
            f.write(lines[0] + "\n" + lines[1][:40])   # and a torn last line
        os.rename(os.path.join(self.done, "p.jsonl"), os.path.join(self.inbox, "p.jsonl"))
        os.utime(os.path.join(self.outbox, "p.avro"), (1, 1))
        stale = [os.path.join(self.outbox, ".p.avro.tmp-AbC123"),
                 os.path.join(self.outbox, ".bidnorm-watch", "staging", "q.avro")]
        for s in stale:
            with open(s, "wb") as f:
                f.write(b"half")
        p = self.once()
        self.assertIn('"event":"recovered","file":"p.jsonl"', p.stderr.decode())
        self.assertEqual(os.stat(os.path.join(self.outbox, "p.avro")).st_mtime, 1)   # not made again
        self.assertEqual(os.listdir(self.done), ["p.jsonl"])
        self.assertEqual([json.loads(x)["status"] for x in read_text(jpath).splitlines() if x.startswith("{")
                          and x.endswith("}")], ["published", "done"])
        self.assert_no_temporaries()

    # --- signals -------------------------------------------------------------

    def test_sigterm_mid_stream_exits_0_and_loses_nothing(self):
        w = Watcher(self, "--workers", "2")
        w.wait_log('"event":"started"')
        expected = []
        for f in range(40):
            ids = ["t%d_%d" % (f, i) for i in range(200)]
            expected.extend(ids)
            self.drop("t%02d.jsonl" % f, jsonl(ids))
            if f == 20:
                w.proc.send_signal(signal.SIGTERM)
        self.assertEqual(w.stop(), 0)
        self.assertIn('"event":"stopping"', w.log())
        # Every file is either done (outputs complete) or still in the inbox, untouched.
        self.once()
        self.assertEqual(sorted(self.all_ids()), sorted(expected))
        self.assertEqual(self.inbox_files(), [])
        self.assert_no_temporaries()

    def test_stop_timeout_cancels_a_long_file_which_stays_in_the_inbox(self):
        w = Watcher(self, "--stop-timeout", "0")
        w.wait_log('"event":"started"')
        line = json.dumps(record("e%09d")).encode() + b"\n"
        data = b"".join(line % i for i in range(600000))
        self.drop("long.jsonl", data)
        w.wait_log('"event":"file_started","file":"long.jsonl"')
        t0 = time.monotonic()
        self.assertEqual(w.stop(), 0)
        self.assertLess(time.monotonic() - t0, 5)
        log = w.log()
        self.assertIn('"event":"stop_timeout"', log)
        self.assertIn('"event":"file_cancelled","file":"long.jsonl"', log)
        self.assertEqual(self.inbox_files(), ["long.jsonl"])
        self.assertEqual(os.listdir(self.outbox), [".bidnorm-watch"])
        self.assert_no_temporaries()

    def test_sighup_with_a_bad_rule_file_keeps_the_old_rules_and_runs_on(self):
        rules = self.path("rules.yaml")
        shutil.copy(os.path.join(SOURCE, "rules", "bidlog.yaml"), rules)
        w = Watcher(self, "--rules", rules)
        w.wait_log('"event":"started"')
        with open(rules, "w") as f:
            f.write("version: [\n")
        w.proc.send_signal(signal.SIGHUP)
        w.wait_log('"event":"rules_reload_failed"')
        ev = [e for e in w.events() if e["event"] == "rules_reload_failed"][0]
        self.assertEqual(ev["level"], "error")
        self.assertTrue(ev["error"].startswith(rules + ":"), ev["error"])
        self.drop("h.jsonl", jsonl(["h1"]))
        wait_until(lambda: self.outputs_done("h"))
        self.assertEqual(avro_ids(os.path.join(self.outbox, "h.avro")), ["h1"])
        shutil.copy(os.path.join(SOURCE, "rules", "bidlog.yaml"), rules)
        w.proc.send_signal(signal.SIGHUP)
        w.wait_log('"event":"rules_reloaded"')
        self.assertIsNone(w.proc.poll())
        self.assertEqual(w.stop(), 0)

    # --- crashes and full disks ----------------------------------------------

    def test_crash_loop_kill_9_at_random_moments_every_record_exactly_once(self):
        rng = random.Random(20261120)
        expected = set()
        names = []
        for f in range(220):
            ids = ["k%d_%d" % (f, i) for i in range(rng.randint(1, 30))]
            expected.update(ids)
            names.append(("k%03d.jsonl" % f, jsonl(ids)))
        fed = threading.Event()
        self.after = ["--delete"]

        def feed():
            for name, data in names:
                self.drop(name, data)
                time.sleep(rng.random() * 0.004)
            fed.set()

        t = threading.Thread(target=feed)
        t.start()
        kills = 0
        try:
            while not fed.is_set() or kills < 15:
                w = Watcher(self, "--workers", "2")
                time.sleep(rng.uniform(0.02, 0.3))
                w.kill()
                kills += 1
        finally:
            t.join()
        self.assertTrue(glob.glob(os.path.join(self.outbox, "*.stats.json")))   # progress between the kills
        self.once()
        ids = self.all_ids()
        self.assertEqual(len(ids), len(expected))
        self.assertEqual(set(ids), expected)
        self.assertEqual(self.inbox_files(), [])
        self.assertEqual(sorted(glob.glob(os.path.join(self.outbox, "*.stats.json"))),
                         sorted(os.path.join(self.outbox, n[:-6] + ".stats.json") for n, _ in names))
        self.assert_no_temporaries()

    def test_disk_full_leaves_the_file_in_the_inbox_and_retries(self):
        limit = 48 * 1024

        def small_disk():
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

        rng = random.Random(7)
        big_ids = ["%032x" % rng.getrandbits(128) for _ in range(4000)]
        self.drop("big.jsonl", jsonl(big_ids))
        self.drop("small.jsonl", jsonl(["x1"]))
        w = Watcher(self, "--metrics", self.path("metrics.prom"), preexec_fn=small_disk)
        wait_until(lambda: '"event":"file_retry","file":"big.jsonl"' in w.log() and self.outputs_done("small"))
        ev = [e for e in w.events() if e["event"] == "file_retry"][0]
        self.assertEqual((ev["level"], ev["retry_in"]), ("error", 1))
        self.assertIn("File too large", ev["error"])
        self.assertIn("big.jsonl", self.inbox_files())
        self.assertFalse(os.path.exists(os.path.join(self.outbox, "big.avro")))
        self.assert_no_temporaries()
        w.wait_log('"retry_in":2', timeout=5)   # retried, with a longer wait
        self.assertEqual(w.stop(), 0)
        self.once()   # room again
        self.assertEqual(avro_ids(os.path.join(self.outbox, "big.avro")), big_ids)
        self.assertEqual(self.inbox_files(), [])

    # --- metrics and usage ---------------------------------------------------

    def test_metrics_file_in_prometheus_text_format(self):
        self.drop("a.jsonl", jsonl(["a1", "a2"]) + b"[]\n")
        self.drop("bad.zst", b"\x28\xb5\x2f\xfd" + b"\x00" * 20)
        metrics = self.path("m", "metrics.prom")
        os.mkdir(self.path("m"))
        self.once("--metrics", metrics, "--max-reject-rate", "0.5")
        text = read_text(metrics)
        for want in ['bidnorm_watch_files_total{status="done"} 1',
                     'bidnorm_watch_files_total{status="quarantined"} 1',
                     'bidnorm_watch_files_total{status="retried"} 0',
                     'bidnorm_watch_records_total{outcome="written"} 2',
                     'bidnorm_watch_records_total{outcome="rejected"} 1',
                     'bidnorm_watch_backlog_files 0',
                     'bidnorm_watch_file_seconds_count 1',
                     '# TYPE bidnorm_watch_file_seconds histogram']:
            self.assertIn(want + "\n", text)
        self.assertRegex(text, r"bidnorm_watch_last_success_timestamp_seconds 1\d{9}\.\d{3}\n")
        self.assertEqual(os.listdir(self.path("m")), ["metrics.prom"])

    def test_text_log_lines(self):
        self.drop("a.jsonl", jsonl(["a1"]))
        args = [a for a in self.base_args() if a not in ("--log-format", "json")]
        p = subprocess.run([BIDNORM, "watch", *args, "--once"], capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 0)
        lines = p.stderr.decode().splitlines()
        self.assertRegex(lines[1], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z info file_started a\.jsonl$")
        self.assertRegex(lines[2], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z info file_done a\.jsonl written=1 "
                         r"rejected=0 bytes=\d+ seconds=\d+\.\d{3}: a\.avro$")

    # --- a hostile producer ------------------------------------------------

    def as_producer(self):
        """A preexec_fn that runs a command as nobody, the producer who may write the inbox and nothing else
        (when the tests run as root); None otherwise. Only system tools run so: nothing from the checkout."""
        if os.geteuid() != 0:
            return None
        os.chmod(self.dir, 0o755)
        os.chmod(self.inbox, 0o777)

        def drop():
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
        return drop

    def quarantined(self, name):
        return read_json(os.path.join(self.inbox, ".quarantine", name + ".error.json"))

    def assert_nowhere(self, secret, inputs=()):
        """secret is in no file the watcher wrote or moved, but the inputs named (links not followed)."""
        for top in (self.outbox, self.done, os.path.join(self.inbox, ".quarantine")):
            for root, _, files in os.walk(top):
                for n in files:
                    p = os.path.join(root, n)
                    if os.path.islink(p) or n in inputs:
                        continue
                    with open(p, "rb") as f:
                        self.assertNotIn(secret, f.read(), p)

    def test_symlink_to_a_file_the_producer_cannot_read_is_quarantined_unread(self):
        """Regression: the watcher followed a link in the inbox and copied its target into a world-readable
        reject file."""
        secret_dir = self.path("private")
        os.mkdir(secret_dir, 0o700)
        secret = os.path.join(secret_dir, "shadow")
        with open(secret, "wb") as f:
            f.write(b"root:SECRETHASH:19000:0:99999:7:::\n")
        os.chmod(secret, 0o600)
        producer = self.as_producer()
        if producer:
            # The producer really cannot read it ...
            p = subprocess.run(["cat", secret], capture_output=True, preexec_fn=producer, timeout=10)
            self.assertNotEqual(p.returncode, 0)
        # ... but can make a link to it in the inbox.
        subprocess.run(["ln", "-s", secret, os.path.join(self.inbox, "evil.jsonl")], check=True,
                       preexec_fn=producer, timeout=10)
        self.drop("good.jsonl", jsonl(["g1"]))
        p = self.once("--max-reject-rate", "1")
        q = os.path.join(self.inbox, ".quarantine")
        self.assertTrue(os.path.islink(os.path.join(q, "evil.jsonl")))
        self.assertEqual(os.readlink(os.path.join(q, "evil.jsonl")), secret)
        err = self.quarantined("evil.jsonl")
        self.assertEqual((err["status"], err["code"], err["exit_code"], err["records_read"], err["reject_raw"]),
                         ("not_regular_file", -3, 5, 0, "full"))
        self.assertEqual(err["message"], "evil.jsonl: is a symbolic link; links in the inbox are never followed")
        self.assertNotIn("evil", " ".join(os.listdir(self.outbox)))
        self.assertEqual(os.listdir(self.done), ["good.jsonl"])
        self.assert_nowhere(b"SECRETHASH")
        ev = [json.loads(x) for x in p.stderr.decode().splitlines() if '"file_quarantined"' in x]
        self.assertEqual([(e["file"], e["error"]) for e in ev], [("evil.jsonl", err["message"])])

    def test_symlink_to_a_folder_and_a_dangling_one_are_quarantined_too(self):
        os.symlink(self.dir, os.path.join(self.inbox, "dir.jsonl"))
        os.symlink(self.path("nowhere"), os.path.join(self.inbox, "dangling.jsonl"))
        self.once()
        for name in ("dir.jsonl", "dangling.jsonl"):
            self.assertEqual(self.quarantined(name)["message"],
                             name + ": is a symbolic link; links in the inbox are never followed")
        self.assertEqual(self.inbox_files(), [])

    def test_fifo_in_the_inbox_never_blocks_and_is_quarantined(self):
        producer = self.as_producer()
        subprocess.run(["mkfifo", os.path.join(self.inbox, "pipe.jsonl")], check=True, preexec_fn=producer,
                       timeout=10)
        self.drop("after.jsonl", jsonl(["a1"]))
        t0 = time.monotonic()
        self.once()  # subprocess.run's timeout fails the test if a FIFO blocks the watcher
        self.assertLess(time.monotonic() - t0, 30)
        self.assertEqual(self.quarantined("pipe.jsonl")["message"],
                         "pipe.jsonl: is a named pipe (FIFO), not a regular file; it was not read")
        self.assertTrue(stat.S_ISFIFO(os.lstat(os.path.join(self.inbox, ".quarantine", "pipe.jsonl")).st_mode))
        self.assertEqual(avro_ids(os.path.join(self.outbox, "after.avro")), ["a1"])

    def test_socket_in_the_inbox_is_quarantined_unread(self):
        import socket
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(sock.close)
        sock.bind(os.path.join(self.inbox, "s.jsonl"))
        self.once()
        self.assertEqual(self.quarantined("s.jsonl")["message"],
                         "s.jsonl: is a socket, not a regular file; it was not read")

    def test_fifo_appearing_while_watching_does_not_block_the_others(self):
        w = Watcher(self)
        w.wait_log('"event":"started"')
        os.mkfifo(os.path.join(self.inbox, "p.jsonl"))
        self.drop("x.jsonl", jsonl(["x1"]))
        wait_until(lambda: self.outputs_done("x") and
                   os.path.exists(os.path.join(self.inbox, ".quarantine", "p.jsonl.error.json")))
        self.assertEqual(w.stop(), 0)

    def test_link_with_the_quarantine_on_another_file_system_is_removed(self):
        if not os.path.isdir("/dev/shm") or os.stat("/dev/shm").st_dev == os.stat(self.dir).st_dev:
            self.skipTest("no second file system at /dev/shm")
        q = tempfile.mkdtemp(dir="/dev/shm")
        self.addCleanup(shutil.rmtree, q)
        os.symlink("/etc/passwd", os.path.join(self.inbox, "l.jsonl"))
        self.drop("x.jsonl", b"{bad\n")
        os.chmod(os.path.join(self.inbox, "x.jsonl"), 0o600)
        self.once("--quarantine", q)
        err = read_json(os.path.join(q, "l.jsonl.error.json"))
        self.assertEqual((err["quarantined_as"], err["status"]), (None, "not_regular_file"))
        self.assertEqual(self.inbox_files(), [])
        # A regular file is copied, as before, and no more readable than it was.
        self.assertEqual(read_json(os.path.join(q, "x.jsonl.error.json"))["quarantined_as"], "x.jsonl")
        self.assertEqual(read_text(os.path.join(q, "x.jsonl")), "{bad\n")
        self.assertEqual(stat.S_IMODE(os.stat(os.path.join(q, "x.jsonl")).st_mode), 0o600)

    def test_owner_filter_reads_only_files_of_allowed_users_or_groups(self):
        if os.geteuid() != 0:
            self.skipTest("needs root to give files other owners")
        self.drop("theirs.jsonl", jsonl(["t1"]))
        os.chown(os.path.join(self.inbox, "theirs.jsonl"), 65534, 65534)
        self.drop("grouped.jsonl", jsonl(["g1"]))
        os.chown(os.path.join(self.inbox, "grouped.jsonl"), 0, 65534)
        self.drop("mine.jsonl", jsonl(["m1"]))
        self.once("--allow-owner", "nobody", "--allow-group", "65534")
        self.assertEqual(sorted(os.listdir(self.done)), ["grouped.jsonl", "theirs.jsonl"])
        err = self.quarantined("mine.jsonl")
        self.assertEqual(err["status"], "owner_not_allowed")
        self.assertEqual(err["message"], "mine.jsonl: owned by user 0 and group 0, neither of them allowed "
                         "(--allow-owner, --allow-group); it was not read")
        self.assertFalse(os.path.exists(os.path.join(self.outbox, "mine.avro")))
        # By number, and an owner alone.
        self.drop("again.jsonl", jsonl(["a1"]))
        self.once("--allow-owner", "0")
        self.assertIn("again.jsonl", os.listdir(self.done))

    def test_hard_link_to_another_users_file_is_quarantined_unread(self):
        """A hard link keeps its target's owner and mode: where fs.protected_hardlinks is off, a producer can link
        a file it does not own into the inbox. Made here by root, as such a producer could."""
        secret_dir = self.path("private")
        os.mkdir(secret_dir, 0o700)
        secret = os.path.join(secret_dir, "data.jsonl")
        with open(secret, "wb") as f:
            f.write(jsonl(["SECRETID"]))
        os.chmod(secret, 0o600)
        os.utime(secret, (1, 1))
        os.link(secret, os.path.join(self.inbox, "evil.jsonl"))
        self.drop("good.jsonl", jsonl(["g1"]))
        self.once()
        err = self.quarantined("evil.jsonl")
        self.assertEqual((err["status"], err["code"], err["exit_code"], err["records_read"], err["quarantined_as"]),
                         ("hard_linked", -3, 5, 0, "evil.jsonl"))
        self.assertEqual(err["message"], "evil.jsonl: has 2 hard links, so it may be a link to a file its writer "
                         "does not own; it was not read (--allow-hard-links reads such files)")
        self.assertEqual(os.listdir(self.done), ["good.jsonl"])
        self.assertNotIn("evil", " ".join(os.listdir(self.outbox)))
        self.assert_nowhere(b"SECRETID", inputs=("evil.jsonl",))
        # The other name is untouched.
        self.assertEqual(read_text(secret), jsonl(["SECRETID"]).decode())

    def test_allow_hard_links_reads_a_file_with_several_links(self):
        other = self.path("elsewhere.jsonl")
        with open(other, "wb") as f:
            f.write(jsonl(["l1"]))
        os.utime(other, (1, 1))
        os.link(other, os.path.join(self.inbox, "linked.jsonl"))
        self.once("--allow-hard-links")
        self.assertEqual(avro_ids(os.path.join(self.outbox, "linked.avro")), ["l1"])
        self.assertEqual(os.listdir(self.done), ["linked.jsonl"])
        self.assertTrue(os.path.exists(other))

    def test_publish_by_link_then_unlink_is_not_caught_in_between(self):
        """Some shippers publish with link(tmp, inbox/NAME) then unlink(tmp): for a moment the file has two links.
        It is given --settle seconds to lose the second one, and is read once it has."""
        w = Watcher(self, "--settle", "3")
        w.wait_log('"event":"started"')
        tmp = self.path("ship.tmp")
        with open(tmp, "wb") as f:
            f.write(jsonl(["s1"]))
        os.utime(tmp, (1, 1))  # old: complete as soon as seen, but for its links
        os.link(tmp, os.path.join(self.inbox, "shipped.jsonl"))
        time.sleep(0.3)
        self.assertFalse(os.path.exists(os.path.join(self.inbox, ".quarantine", "shipped.jsonl.error.json")))
        self.assertEqual(self.inbox_files(), ["shipped.jsonl"])
        os.unlink(tmp)
        wait_until(lambda: self.outputs_done("shipped"))
        self.assertEqual(w.stop(), 0)
        self.assertEqual(avro_ids(os.path.join(self.outbox, "shipped.avro")), ["s1"])
        self.assertEqual(os.listdir(os.path.join(self.inbox, ".quarantine")), [])

    def test_quarantine_in_the_inbox_replaced_by_a_link_is_refused(self):
        elsewhere = self.path("elsewhere")
        os.mkdir(elsewhere)
        q = os.path.join(self.inbox, ".quarantine")
        os.symlink(elsewhere, q)
        p = self.once(expect=5)
        self.assertEqual(p.stderr.decode().splitlines()[-1],
                         "bidnorm watch: %s: a folder in the inbox must be the watcher's own folder, not a link or "
                         "another user's (whoever writes the inbox could aim the watcher's writes elsewhere)" % q)
        # Swapped while the watcher runs (a producer may rename entries of an inbox that is not sticky).
        os.unlink(q)
        w = Watcher(self)
        w.wait_log('"event":"started"')
        os.rename(q, self.path("old-quarantine"))
        os.symlink(elsewhere, q)
        os.mkfifo(os.path.join(self.inbox, "p.jsonl"))
        w.wait_log('"event":"file_retry"')
        self.assertEqual(w.stop(), 0)
        ev = [e for e in w.events() if e["event"] == "file_retry"][0]
        self.assertEqual(ev["error"], "%s: a folder in the inbox must be the watcher's own folder, not a link or "
                         "another user's (whoever writes the inbox could aim the watcher's writes elsewhere)" % q)
        self.assertEqual(os.listdir(elsewhere), [])
        self.assertEqual(self.inbox_files(), ["p.jsonl"])

    def test_outputs_are_no_more_readable_than_the_input(self):
        self.drop("private.jsonl", jsonl(["p1"]) + b"{bad\n")
        os.chmod(os.path.join(self.inbox, "private.jsonl"), 0o600)
        self.drop("public.jsonl", jsonl(["o1"]) + b"{bad\n")
        os.chmod(os.path.join(self.inbox, "public.jsonl"), 0o644)
        self.drop("quar.jsonl", b"{bad\n")
        os.chmod(os.path.join(self.inbox, "quar.jsonl"), 0o600)
        p = subprocess.run([BIDNORM, "watch", *self.base_args(), "--once", "--max-reject-rate", "0.5"],
                           capture_output=True, timeout=60, preexec_fn=lambda: os.umask(0o022))
        self.assertEqual(p.returncode, 0, p.stderr.decode())

        def mode(*parts):
            return stat.S_IMODE(os.stat(os.path.join(*parts)).st_mode)
        for ext in (".avro", ".rejects.jsonl", ".stats.json"):
            self.assertEqual(mode(self.outbox, "private" + ext), 0o600, ext)
            self.assertEqual(mode(self.outbox, "public" + ext), 0o644, ext)
        q = os.path.join(self.inbox, ".quarantine")
        for ext in (".error.json", ".rejects.jsonl", ".stats.json"):
            self.assertEqual(mode(q, "quar.jsonl" + ext), 0o600, ext)

    def test_reject_raw_none_and_truncate_reach_the_outbox_and_the_quarantine(self):
        bad = b'{"event_id":"x","ts":"yesterday SECRET"}'
        self.drop("d.jsonl", jsonl(["d1"]) + bad + b"\n")
        self.drop("q.jsonl", bad + b"\n")
        self.once("--reject-raw", "none", "--max-reject-rate", "0.5")
        rej = [json.loads(x) for x in read_text(os.path.join(self.outbox, "d.rejects.jsonl")).splitlines()]
        self.assertEqual([(r["raw"], r["raw_size"], r["message"]) for r in rej],
                         [(None, len(bad), 'not an ISO-8601 time or epoch number: "..."')])
        self.assertEqual(read_json(os.path.join(self.outbox, "d.stats.json"))["reject_raw"], "none")
        err = self.quarantined("q.jsonl")
        self.assertEqual(err["reject_raw"], "none")
        self.assert_nowhere(b"SECRET", inputs=("d.jsonl", "q.jsonl"))
        self.drop("t.jsonl", b'{"event_id":"x","ts":"yesterday SECRET"}\n')
        self.once("--reject-raw", "truncate:12")
        q = os.path.join(self.inbox, ".quarantine")
        rej = [json.loads(x) for x in read_text(os.path.join(q, "t.jsonl.rejects.jsonl")).splitlines()]
        self.assertEqual([(r["raw"], r["raw_truncated"], r["raw_size"]) for r in rej],
                         [('{"event_id":', True, len(bad))])
        self.assertEqual(self.quarantined("t.jsonl")["reject_raw"], "truncate:12")
        self.assertEqual(read_json(os.path.join(q, "t.jsonl.stats.json"))["reject_raw"], "truncate:12")

    def test_usage_errors(self):
        cases = [
            ([], "bidnorm watch: --inbox is required"),
            (["--inbox", self.inbox], "bidnorm watch: --outbox is required"),
            (["--inbox", self.inbox, "--outbox", self.outbox],
             "bidnorm watch: give --done DIR or --delete (what happens to a processed input)"),
            (["--inbox", self.inbox, "--outbox", self.outbox, "--done", self.done, "--delete"],
             "bidnorm watch: --done and --delete exclude each other"),
            (["--log-format", "xml"], "bidnorm watch: --log-format must be text or json, not 'xml'"),
            (["--workers", "0"], "bidnorm watch: --workers must be an integer from 1 to 64, not '0'"),
            (["--settle", "-1"], "bidnorm watch: --settle must be a number of seconds from 0 to 86400, not '-1'"),
            (["extra"], "bidnorm watch: unexpected argument 'extra'"),
            (["--reject-raw", "some"],
             "bidnorm watch: --reject-raw must be full, none or truncate:BYTES (0 to 1048576), not 'some'"),
            (["--allow-owner", "no-such-user-x"],
             "bidnorm watch: --allow-owner: no user 'no-such-user-x' (give a user name or number)"),
            (["--allow-group", "no-such-group-x"],
             "bidnorm watch: --allow-group: no group 'no-such-group-x' (give a group name or number)"),
        ]
        for args, msg in cases:
            p = subprocess.run([BIDNORM, "watch", *args], capture_output=True, timeout=10)
            self.assertEqual(p.returncode, 2, args)
            self.assertEqual(p.stderr.decode().splitlines()[0], msg)

    def test_missing_inbox_and_bad_rules_fail_at_start(self):
        p = subprocess.run([BIDNORM, "watch", "--inbox", self.path("nope"), "--outbox", self.outbox, "--delete"],
                           capture_output=True, timeout=10)
        self.assertEqual(p.returncode, 5)
        self.assertEqual(p.stderr.decode(), "bidnorm watch: %s: cannot watch the inbox: No such file or directory\n"
                         % self.path("nope"))
        p = subprocess.run([BIDNORM, "watch", *self.base_args(), "--rules", self.path("none.yaml")],
                           capture_output=True, timeout=10)
        # An unreadable rule file is an input error (5), as for every command; an invalid one exits 4.
        self.assertEqual(p.returncode, 5)
        self.assertEqual(p.stderr.decode(), "bidnorm watch: %s: cannot open: No such file or directory\n"
                         % self.path("none.yaml"))


if __name__ == "__main__":
    unittest.main()
