"""Hostile inputs for `bidnorm ingest`: each must end in a clean exit code, an exact reason, reconciled stats and no debris."""
import json
import os
import resource
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

import zstandard

from e2e import BIDNORM, FolderTest, as_nobody, reachable_tempdir, read_jsonl, read_records as read_avro

MB = 1 << 20
TS = 1795176001  # 2026-11-20T12:00:01Z


def rec(event_id, **extra):
    """A small valid bid-log v1 record as a dict."""
    r = {"event_id": event_id, "ts": TS, "exchange": "unity", "app": {"bundle": "com.a.b"},
         "device": {"os": "android", "city": "Paris", "clicks": 1, "impressions": 4}}
    r.update(extra)
    return r


def line(r):
    return json.dumps(r, ensure_ascii=False).encode()


class Run:
    """The outcome of one bidnorm process: exit code (negative = killed by that signal), output, peak RSS."""

    def __init__(self, returncode, stdout, stderr, maxrss_kb, seconds):
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.maxrss_kb = maxrss_kb
        self.seconds = seconds


GNU_TIME = "/usr/bin/time"


def run_bidnorm(args, cwd, stdin=subprocess.DEVNULL, feed=None, preexec_fn=None, timeout=120, binary=BIDNORM):
    """Run bidnorm with args; feed (an iterable of bytes) is written to its stdin. Returns a Run.

    The peak RSS is GNU time's report for bidnorm alone: a child forked from this test process
    starts its ru_maxrss from this process's size, which grows as the suite runs."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile("r") as rss:
        start = time.monotonic()
        cmd = [binary, *args]
        if os.path.exists(GNU_TIME):
            os.chmod(rss.name, 0o666)  # written by the child, which may run as another user
            cmd = [GNU_TIME, "-f", "%M", "-o", rss.name] + cmd
        p = subprocess.Popen(cmd, cwd=cwd, stdin=subprocess.PIPE if feed is not None else stdin,
                             stdout=out, stderr=err, preexec_fn=preexec_fn)
        if feed is not None:
            try:
                for chunk in feed:
                    p.stdin.write(chunk)
            except BrokenPipeError:
                pass
            finally:
                try:
                    p.stdin.close()
                except BrokenPipeError:
                    pass
        deadline = start + timeout
        while True:
            pid, status, usage = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                p.kill()
                os.wait4(p.pid, 0)
                raise AssertionError("bidnorm %s did not finish within %d s" % (" ".join(args), timeout))
            time.sleep(0.01)
        p.returncode = os.waitstatus_to_exitcode(status)
        maxrss = usage.ru_maxrss
        if cmd[0] == GNU_TIME:
            report = rss.read().splitlines()
            signal_line = [x for x in report if x.startswith("Command terminated by signal ")]
            if signal_line:
                p.returncode = -int(signal_line[0].rsplit(" ", 1)[1])
            if report and report[-1].strip().isdigit():
                maxrss = int(report[-1])
        seconds = time.monotonic() - start
        out.seek(0)
        err.seek(0)
        return Run(p.returncode, out.read(), err.read(), maxrss, seconds)






class Hostile(FolderTest):
    """In a folder every user can reach (FolderTest's path and write, not its temporary folder)."""

    def setUp(self):
        self.dir = reachable_tempdir()

    def tearDown(self):
        for root, dirs, _ in os.walk(self.dir):
            for d in dirs:
                os.chmod(os.path.join(root, d), 0o755)
        shutil.rmtree(self.dir)

    def ingest(self, *inputs, extra=(), expect=0, **kw):
        r = run_bidnorm(["ingest", "-q", "-o", self.path("out.avro"), *extra, *inputs], self.dir, **kw)
        self.assertGreaterEqual(r.returncode, 0, "killed by signal %d: %s" % (-r.returncode, r.stderr.decode()))
        self.assertEqual(r.returncode, expect, r.stderr.decode())
        return r

    def unprivileged(self):
        """run_bidnorm arguments that run bidnorm as nobody on this test's folder (see e2e.as_nobody)."""
        return as_nobody(self.dir)

    def assert_no_temp_files(self, folder=None):
        folder = folder or self.dir
        self.assertEqual([n for n in os.listdir(folder) if ".tmp" in n], [])

    def outputs(self, published=True):
        """Records (None when unpublished), rejects and stats, checked against each other."""
        with open(self.path("out.stats.json")) as f:
            stats = json.load(f)
        rejects = read_jsonl(self.path("out.rejects.jsonl"))
        self.assertEqual(stats["records_read"], stats["records_written"] + stats["records_rejected"])
        self.assertEqual(stats["records_rejected"], len(rejects))
        self.assertEqual(sum(stats["rejected_by_reason"].values()), len(rejects))
        self.assert_no_temp_files()
        if not published:
            self.assertFalse(os.path.exists(self.path("out.avro")))
            return None, rejects, stats
        records = read_avro(self.path("out.avro"))
        self.assertEqual(stats["records_written"], len(records))
        self.assertEqual(stats["status"], "ok")
        return records, rejects, stats

    # --- empty and blank ------------------------------------------------------

    def test_empty_file(self):
        self.ingest(self.write("empty.jsonl", b""))
        records, rejects, stats = self.outputs()
        self.assertEqual((records, rejects, stats["records_read"]), ([], [], 0))

    def test_only_blank_lines(self):
        self.ingest(self.write("blank.jsonl", b"\n \n\t\r\n\r\n  \t \n" * 1000))
        records, rejects, stats = self.outputs()
        self.assertEqual((records, rejects, stats["records_read"]), ([], [], 0))
        self.assertEqual(stats["inputs"][0]["blank_lines"], 5000)

    # --- oversize ------------------------------------------------------------

    def test_100_mb_line_is_rejected_in_bounded_memory(self):
        size = 100 * MB
        p = self.path("huge.jsonl")
        with open(p, "wb") as f:
            f.write(line(rec("e1")) + b"\n")
            head = b'{"event_id":"big","ts":%d,"city":"' % TS
            f.write(head)
            chunk = b"x" * MB
            left = size - len(head) - 2
            while left > 0:
                f.write(chunk[:left])
                left -= len(chunk)
            f.write(b'"}\n')
            f.write(line(rec("e3")) + b"\n")
        r = self.ingest(p, extra=("--max-reject-rate", "0.5"))
        records, rejects, stats = self.outputs()
        self.assertEqual([x["event_id"] for x in records], ["e1", "e3"])
        self.assertEqual(len(rejects), 1)
        self.assertEqual(rejects[0]["reason"], "line_too_long")
        self.assertEqual(rejects[0]["raw_size"], size)
        self.assertEqual(rejects[0]["message"], "line of %d bytes exceeds limits.max_line_bytes (1048576)" % size)
        self.assertEqual(rejects[0]["raw"], (head + b"x" * (1024 - len(head))).decode())
        self.assertEqual(stats["inputs"][0]["too_long_lines"], 1)
        self.assertLess(r.maxrss_kb, 64 * 1024, "peak RSS %d KiB" % r.maxrss_kb)

    # --- bytes ---------------------------------------------------------------

    def test_nul_bytes_in_lines_are_rejected_as_invalid_json(self):
        inp = self.write("nul.jsonl", b'{"event_id":"a\x00b","ts":%d}\n' % TS + line(rec("ok")) + b"\x00\n\x00\n"
                         + line(rec("e4")) + b"\n")
        self.ingest(inp, extra=("--max-reject-rate", "1"))
        records, rejects, _ = self.outputs()
        self.assertEqual([x["event_id"] for x in records], ["e4"])
        self.assertEqual([(x["line"], x["reason"], x["column"], x["message"]) for x in rejects], [
            (1, "invalid_json", 15, "invalid JSON: control character in string"),
            (2, "invalid_json", len(line(rec("ok"))) + 1, "invalid JSON: trailing characters after the JSON value"),
            (3, "invalid_json", 1, "invalid JSON: unexpected byte 0x00")])
        self.assertEqual(rejects[0]["raw"], '{"event_id":"a\x00b","ts":%d}' % TS)

    def test_every_class_of_invalid_utf8_is_repaired_and_counted(self):
        # overlong C1 BF, UTF-8-encoded surrogate ED A0 80, truncated E2 82, above U+10FFFF F4 90 80 80,
        # FE and FF, a lone continuation byte 80: 14 bytes, each read as Windows-1252.
        bad = b"a\xc1\xbfb\xed\xa0\x80c\xe2\x82d\xf4\x90\x80\x80e\xfe\xffg\x80"
        raw = line(rec("u1", device={"city": "CITY"})).replace(b"CITY", bad)
        self.ingest(self.write("bad-utf8.jsonl", raw + b"\n"))
        records, rejects, stats = self.outputs()
        # NBSP (from A0) becomes a space under NFKC; U+0090 (from 90) is a control character and goes.
        self.assertEqual(records[0]["city"], "a\u00c1\u00bfb\u00ed \u20acc\u00e2\u201ad\u00f4\u20ac\u20ace\u00fe\u00ffg\u20ac")
        self.assertEqual(stats["inputs"][0]["repaired_bytes"], 14)

    # --- JSON structure ------------------------------------------------------

    def test_json_nested_10000_deep_is_too_complex(self):
        prefix = b'{"event_id":"d","ts":%d,"x":' % TS
        deep_arrays = prefix + b"[" * 10000 + b"]" * 10000 + b"}"
        deep_objects = prefix + b'{"a":' * 10000 + b"1" + b"}" * 10000 + b"}"
        inp = self.write("deep.jsonl", deep_arrays + b"\n" + deep_objects + b"\n" + line(rec("ok")) + b"\n")
        r = self.ingest(inp, extra=("--max-reject-rate", "1"))
        records, rejects, stats = self.outputs()
        self.assertEqual([x["event_id"] for x in records], ["ok"])
        self.assertEqual([(x["reason"], x["message"]) for x in rejects],
                         [("too_complex", "invalid JSON: nesting deeper than 512 levels")] * 2)
        # the object is level 1: the 512th '[' opens level 513
        self.assertEqual(rejects[0]["column"], len(prefix) + 512)
        self.assertEqual(stats["rejected_by_reason"]["too_complex"], 2)
        self.assertLess(r.seconds, 10)

    def test_100000_keys_in_one_object(self):
        digits = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
        keys = [digits[i // 3844] + digits[i // 62 % 62] + digits[i % 62] for i in range(100000)]
        feats = ",".join('"%s":%d' % (k, i % 10) for i, k in enumerate(keys))
        big = ('{"event_id":"k","ts":%d,"features":{%s}}' % (TS, feats)).encode()
        self.assertLess(len(big), MB)
        r = self.ingest(self.write("keys.jsonl", big + b"\n"))
        records, _, stats = self.outputs()
        self.assertEqual(len(records[0]["features"]), 100000)
        self.assertEqual(records[0]["features"][keys[-1]], 9.0)
        self.assertEqual(stats["fields"]["features"]["elements"], 100000)
        self.assertLess(r.seconds, 10)

    def test_repeated_keys_and_elements_beyond_the_linear_scan(self):
        # Regression (maps with many keys took O(n^2): 100,000 keys, 20-40 s): past 16 entries duplicates are
        # found by a hash index; last wins, a null or invalid last value removes the key, a later value revives it.
        pairs = [("k%d" % i, i) for i in range(40)]
        pairs += [("k3", 33), ("k5", None), ("k7", "x"), ("k5", 55), ("k9", None), ("k39", 3939), ("k0", -0.0)]
        model = {}
        for k, v in pairs:
            if isinstance(v, (int, float)):
                model[k] = float(v)
            else:
                model.pop(k, None)
        feats = ",".join("%s:%s" % (json.dumps(k), json.dumps(v)) for k, v in pairs)
        apps = ["com.app.n%d" % (i % 25) for i in range(60)] + ["bad bundle", None, "com.app.n3", "com.last.one"]
        raw = ('{"event_id":"m","ts":%d,"features":{%s},"device":{"installed_apps":%s}}'
               % (TS, feats, json.dumps(apps))).encode()
        self.ingest(self.write("many.jsonl", raw + b"\n"))
        records, _, stats = self.outputs()
        self.assertEqual(records[0]["features"], model)
        self.assertEqual(records[0]["installed_apps"], ["com.app.n%d" % i for i in range(25)] + ["com.last.one"])
        f = stats["fields"]["features"]
        self.assertEqual((f["elements"], f["elements_dropped"]), (47, 6))

    def test_duplicate_keys_last_wins_and_objects_are_replaced_whole(self):
        raw = (b'{"event_id":"first","event_id":"second","ts":1,"ts":%d,'
               b'"device":{"os":"ios","country":"fr"},"device":{"os":"android"},'
               b'"features":{"a":1,"a":2}}' % TS)
        self.ingest(self.write("dup.jsonl", raw + b"\n"))
        records, _, _ = self.outputs()
        r = records[0]
        self.assertEqual((r["event_id"], r["ts"].timestamp(), r["os"], r["country"], r["features"]),
                         ("second", float(TS), "android", None, {"a": 2.0}))

    def test_huge_and_negative_zero_numbers(self):
        lines = [
            b'{"event_id":"n1","ts":%d,"bid_floor":1e999,"label":{"click":1e999,"install":-0}}' % TS,
            b'{"event_id":"n2","ts":%d,"bid_floor":-0,"label":{"click":18446744073709551616,"install":-0.0},'
            b'"features":{"a":1e999,"b":18446744073709551616,"c":-0}}' % TS,
            b'{"event_id":"n3","ts":18446744073709551616}',
            b'{"event_id":"n4","ts":1e999}',
        ]
        self.ingest(self.write("num.jsonl", b"\n".join(lines) + b"\n"), extra=("--max-reject-rate", "1"))
        records, rejects, stats = self.outputs()
        n1, n2 = records
        self.assertEqual((n1["bid_floor"], n1["click"], n1["install"]), (None, None, 0))
        self.assertEqual((n2["bid_floor"], n2["click"], n2["install"]), (-0.0, None, 0))
        self.assertEqual(str(n2["bid_floor"]), "-0.0")
        self.assertEqual(n2["features"], {"b": 18446744073709551616.0, "c": 0.0})
        self.assertEqual([(x["field"], x["reason"], x["message"]) for x in rejects], [
            ("ts", "invalid_value", 'not an ISO-8601 time or epoch number: "18446744073709551616"'),
            ("ts", "invalid_value", 'not an ISO-8601 time or epoch number: "1e999"')])
        self.assertEqual(stats["fields"]["bid_floor"]["coercion_failures"], 1)
        self.assertEqual(stats["fields"]["click"]["coercion_failures"], 2)

    def test_escaped_nul_in_strings_and_keys(self):
        raw = (b'{"event_id":"a\\u0000b","ts":%d,"device\\u0000":{"os":"ios"},'
               b'"app":{"bundle":"com.foo\\u0000.bar"}}' % TS)
        self.ingest(self.write("u0.jsonl", raw + b"\n"))
        records, _, _ = self.outputs()
        r = records[0]
        self.assertEqual((r["event_id"], r["app_bundle"], r["os"]), ("ab", "com.foo.bar", None))

    # --- compression ---------------------------------------------------------

    def test_zstd_cut_mid_frame(self):
        data = b"".join(line(rec("e%d" % i)) + b"\n" for i in range(300))
        z = zstandard.ZstdCompressor().compress(data)
        cut = len(z) // 2
        r = self.ingest(self.write("cut.jsonl.zst", z + z[:cut]), expect=5)
        self.assertIn("cut.jsonl.zst: truncated zstd input: ends at byte offset %d inside the frame starting at "
                      "byte offset %d" % (len(z) + cut, len(z)), r.stderr.decode())
        _, _, stats = self.outputs(published=False)
        self.assertEqual(stats["status"], "failed")
        self.assertFalse(stats["inputs"][0]["complete"])

    def test_zstd_frame_with_a_bad_checksum(self):
        data = b"".join(line(rec("e%d" % i)) + b"\n" for i in range(50))
        good = zstandard.ZstdCompressor(write_checksum=True).compress(data)
        z = bytearray(good + good)
        z[-1] ^= 0xFF  # the last 4 bytes of a frame are its checksum
        r = self.ingest(self.write("sum.jsonl.zst", bytes(z)), expect=5)
        self.assertIn("sum.jsonl.zst: corrupt zstd input in the frame starting at byte offset %d: Restored data "
                      "doesn't match checksum" % len(good), r.stderr.decode())
        _, _, stats = self.outputs(published=False)
        self.assertEqual(stats["status"], "failed")

    def test_plain_text_named_zst_is_read_as_plain(self):
        self.ingest(self.write("plain.jsonl.zst", line(rec("p1")) + b"\n"))
        records, _, stats = self.outputs()
        self.assertEqual(records[0]["event_id"], "p1")
        self.assertEqual(stats["inputs"][0]["compression"], "none")

    def test_garbage_named_zst_gives_rejected_lines(self):
        garbage = bytes((i * 73 + 41) % 256 for i in range(4000)).replace(b"\x28\xb5", b"xx")
        r = self.ingest(self.write("garbage.zst", garbage), expect=3)
        self.assertIn("no output published", r.stderr.decode())
        _, rejects, stats = self.outputs(published=False)
        self.assertGreater(len(rejects), 0)
        self.assertEqual({x["reason"] for x in rejects}, {"invalid_json"})
        self.assertEqual(stats["inputs"][0]["compression"], "none")
        self.assertGreater(stats["inputs"][0]["repaired_bytes"], 0)

    # --- rules ---------------------------------------------------------------

    def test_catastrophic_regex_is_bounded(self):
        rules = self.write("cat.yaml", b"""version: 1
schema: {name: R, namespace: t}
fields:
  - {name: id, source: id, type: string, required: true}
  - {name: v, source: v, type: string, chain: [{validate: {pattern: '(a+)+$', on_fail: null}}]}
  - {name: w, source: w, type: string, chain: [{validate: {pattern: '(a+)+$', on_fail: reject}}]}
""")
        evil = "a" * 20000 + "!"
        inp = self.write("cat.jsonl", b"\n".join([line({"id": "1", "v": evil}), line({"id": "2", "w": evil}),
                                                 line({"id": "3", "v": "aaa", "w": "aa"})]) + b"\n")
        r = self.ingest(inp, extra=("--rules", rules, "--max-reject-rate", "1"))
        self.assertLess(r.seconds, 10)
        records, rejects, stats = self.outputs()
        self.assertEqual([(x["id"], x["v"], x["w"]) for x in records], [("1", None, None), ("3", "aaa", "aa")])
        self.assertEqual([(x["line"], x["reason"], x["field"]) for x in rejects], [(2, "validation_failed", "w")])
        self.assertEqual(rejects[0]["message"], 'value "%s" could not be checked against pattern \'(a+)+$\': '
                         'the regex hit limits.regex_match_limit or regex_depth_limit' % ("a" * 64))
        self.assertEqual(stats["fields"]["v"]["changed_by"]["regex_limit"], 1)
        self.assertEqual(stats["fields"]["v"]["changed_by"]["validation_failed"], 1)
        # the rejecting field counts too, though its record is not written
        self.assertEqual(stats["fields"]["w"]["changed_by"]["regex_limit"], 1)
        self.assertEqual(stats["fields"]["w"]["changed_by"]["validation_failed"], 1)

    # --- files ---------------------------------------------------------------

    def test_unreadable_input(self):
        inp = self.write("secret.jsonl", line(rec("e1")) + b"\n")
        os.chmod(inp, 0)
        r = self.ingest(inp, expect=5, **self.unprivileged())
        self.assertIn("secret.jsonl: cannot open: Permission denied", r.stderr.decode())
        self.outputs(published=False)

    def test_directory_as_input(self):
        os.mkdir(self.path("adir"))
        r = self.ingest(self.path("adir"), expect=5)
        self.assertIn("bidnorm ingest: %s: cannot read: Is a directory" % self.path("adir"), r.stderr.decode())
        _, _, stats = self.outputs(published=False)
        self.assertEqual(stats["status"], "failed")

    def test_output_folder_not_a_folder(self):
        inp = self.write("a.jsonl", line(rec("e1")) + b"\n")
        self.write("afile", b"")
        for folder in ("afile", "afile/deeper"):
            with self.subTest(folder=folder):
                out = self.path(folder + "/out.avro")
                r = run_bidnorm(["ingest", "-q", "-o", out, inp], self.dir)
                self.assertEqual(r.returncode, 5, r.stderr.decode())
                self.assertIn("bidnorm ingest: %s: cannot create output in '%s': Not a directory" % (out, self.path(folder)),
                              r.stderr.decode())
                self.assert_no_temp_files()
                self.assertEqual(sorted(os.listdir(self.dir)), ["a.jsonl", "afile"])

    def test_output_folder_read_only(self):
        inp = self.write("a.jsonl", line(rec("e1")) + b"\n")
        os.mkdir(self.path("ro"))
        os.chmod(self.path("ro"), 0o555)
        out = self.path("ro/out.avro")
        r = run_bidnorm(["ingest", "-q", "-o", out, inp], self.dir, **self.unprivileged())
        self.assertEqual(r.returncode, 5, r.stderr.decode())
        self.assertIn("cannot create output in '%s': Permission denied" % self.path("ro"), r.stderr.decode())
        self.assertEqual(os.listdir(self.path("ro")), [])
        # A missing folder is created, unless its parent forbids it.
        out = self.path("ro/new/out.avro")
        r = run_bidnorm(["ingest", "-q", "-o", out, inp], self.dir, **self.unprivileged())
        self.assertEqual(r.returncode, 5, r.stderr.decode())
        self.assertEqual(r.stderr.decode().splitlines()[0],
                         "bidnorm ingest: %s: cannot create folder '%s': Permission denied" % (out, self.path("ro/new")))
        self.assertEqual(os.listdir(self.path("ro")), [])

    def test_unwritable_stats_file_fails_the_step_and_publishes_no_avro(self):
        # Regression: the Avro was renamed into place before the reject and stats files were written,
        # so a failure writing them gave exit 5 with the output published anyway.
        inp = self.write("a.jsonl", line(rec("e1")) + b"\n")
        self.write("afile", b"")
        r = run_bidnorm(["ingest", "-q", "-o", self.path("out.avro"), "--stats", self.path("afile/s.json"), inp],
                        self.dir)
        self.assertEqual(r.returncode, 5, r.stderr.decode())
        self.assertIn("cannot create output in '%s': Not a directory" % self.path("afile"),
                      r.stderr.decode())
        self.assertFalse(os.path.exists(self.path("out.avro")))
        self.assertEqual(read_jsonl(self.path("out.rejects.jsonl")), [])
        self.assert_no_temp_files()

    def test_disk_full_dev_full(self):
        if not os.path.exists("/dev/full"):
            self.skipTest("no /dev/full")
        inp = self.write("a.jsonl", line(rec("e1")) + b"\n")
        r = run_bidnorm(["ingest", "-q", "-o", "/dev/full", "--rejects", self.path("r.jsonl"),
                         "--stats", self.path("s.json"), inp], self.dir)
        self.assertEqual(r.returncode, 5, r.stderr.decode())
        self.assertIn("bidnorm ingest: /dev/full: write failed: No space left on device", r.stderr.decode())
        self.assert_no_temp_files()

    def test_file_size_limit_fails_the_write_instead_of_killing(self):
        # Regression: SIGXFSZ (default action: die) killed bidnorm mid-write and left temporary files.
        def limit():
            signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
            resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        inp = self.write("a.jsonl", b"".join(line(rec("e%d" % i)) + b"\n" for i in range(200)))
        r = self.ingest(inp, extra=("--codec", "null"), expect=5, preexec_fn=limit)
        self.assertIn("write failed: File too large", r.stderr.decode())
        self.assertFalse(os.path.exists(self.path("out.avro")))
        self.assert_no_temp_files()


    # --- who may read the outputs ---------------------------------------------

    def modes(self, stem="out"):
        return [os.stat(self.path(stem + ext)).st_mode & 0o777 for ext in (".avro", ".rejects.jsonl", ".stats.json")]

    def test_outputs_are_no_more_readable_than_the_inputs(self):
        # Regression: rejects carry raw lines, yet a 0600 input gave 0644 outputs.
        data = line(rec("e1")) + b"\n{bad\n"
        cases = [((0o600,), 0o022, 0o600), ((0o640,), 0o022, 0o640), ((0o644,), 0o022, 0o644),
                 ((0o644, 0o600), 0o022, 0o600), ((0o644, 0o604), 0o022, 0o604), ((0o644,), 0o077, 0o600)]
        for modes, umask, want in cases:
            with self.subTest(modes=modes, umask=umask):
                inputs = []
                for i, m in enumerate(modes):
                    inputs.append(self.write("in%d.jsonl" % i, data))
                    os.chmod(inputs[-1], m)
                self.ingest(*inputs, extra=("--max-reject-rate", "1"), preexec_fn=lambda u=umask: os.umask(u))
                self.assertEqual(self.modes(), [want] * 3)

    def test_group_bits_of_an_input_count_only_for_the_same_group(self):
        if os.geteuid() != 0:
            self.skipTest("needs root to give the input another group")
        inp = self.write("a.jsonl", line(rec("e1")) + b"\n")
        os.chmod(inp, 0o640)
        os.chown(inp, 0, 65534)
        self.ingest(inp, preexec_fn=lambda: os.umask(0o022))
        self.assertEqual(self.modes(), [0o600] * 3)

    def test_stdin_outputs_follow_the_umask_only(self):
        r = run_bidnorm(["ingest", "-q", "-o", self.path("out.avro")], self.dir, feed=[line(rec("e1")) + b"\n"],
                        preexec_fn=lambda: os.umask(0o027))
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertEqual(self.modes(), [0o640] * 3)

    def test_reject_raw_none_and_truncate(self):
        bad = line(rec("e2", ts="yesterday 10.1.2.3"))
        inp = self.write("a.jsonl", line(rec("e1")) + b"\n" + bad + b"\n{\"x\":\n")
        r = run_bidnorm(["ingest", "-o", self.path("out.avro"), "--reject-raw", "none", "--max-reject-rate", "1",
                         inp], self.dir)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertIn("bidnorm ingest: rejected: %s:2: field 'ts': not an ISO-8601 time or epoch number: \"...\" "
                      "(invalid_value)\n" % inp, r.stderr.decode())
        self.assertNotIn("10.1.2.3", r.stderr.decode())
        _, rejects, stats = self.outputs()
        self.assertEqual([(x["line"], x["raw"], x["raw_size"], "raw_truncated" in x) for x in rejects],
                         [(2, None, len(bad), False), (3, None, 5, False)])
        self.assertEqual(rejects[0]["message"], 'not an ISO-8601 time or epoch number: "..."')
        self.assertEqual(rejects[1]["message"], "invalid JSON: unexpected end of input")
        self.assertEqual(stats["reject_raw"], "none")
        with open(self.path("out.rejects.jsonl"), "rb") as f:
            self.assertNotIn(b"10.1.2.3", f.read())

        self.ingest(inp, extra=("--reject-raw", "truncate:10", "--max-reject-rate", "1"))
        _, rejects, stats = self.outputs()
        self.assertEqual([(x["raw"], x.get("raw_truncated"), x.get("raw_size")) for x in rejects],
                         [(bad[:10].decode(), True, len(bad)), ('{"x":', None, None)])
        self.assertEqual(stats["reject_raw"], "truncate:10")
        self.ingest(inp, extra=("--reject-raw", "full", "--max-reject-rate", "1"))
        _, rejects, stats = self.outputs()
        self.assertEqual(rejects[0]["raw"], bad.decode())
        self.assertEqual(stats["reject_raw"], "full")

    def test_reject_raw_usage_error(self):
        r = self.ingest(self.write("a.jsonl", b""), extra=("--reject-raw", "truncate:x"), expect=2)
        self.assertEqual(r.stderr.decode().splitlines()[0],
                         "bidnorm ingest: --reject-raw must be full, none or truncate:BYTES (0 to 1048576), "
                         "not 'truncate:x'")


class Bounds(FolderTest):
    """Memory is bounded by configuration (line limit, block size), not by the size of the input."""

    def stream(self, total):
        """Ingest total bytes of generated records from stdin; returns the Run."""
        block = b"".join(line(rec("e%06d" % i, bid_floor=i / 100, device={"city": "c%d" % (i % 977)})) + b"\n"
                         for i in range(5000))

        def feed():
            left = total
            while left > 0:
                yield block
                left -= len(block)
        r = run_bidnorm(["ingest", "-q", "-o", "/dev/null", "--rejects", os.path.join(self.dir, "r.jsonl"),
                         "--stats", os.path.join(self.dir, "s.json"), "-"], self.dir, feed=feed(), timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        with open(os.path.join(self.dir, "s.json")) as f:
            stats = json.load(f)
        self.assertEqual(stats["records_rejected"], 0)
        self.assertGreaterEqual(stats["inputs"][0]["bytes_decoded"], total)
        return r

    def test_peak_rss_does_not_grow_with_the_input(self):
        total = int(os.environ.get("BIDNORM_STREAM_MB", "1024")) * MB
        small = self.stream(10 * MB)
        big = self.stream(total)
        # a few MiB of slack for allocator noise; a leak per record would add hundreds of MiB
        self.assertLess(big.maxrss_kb, small.maxrss_kb + 8 * 1024,
                        "10 MB in: %d KiB; %d MB in: %d KiB (%.1f s)" % (small.maxrss_kb, total // MB,
                                                                         big.maxrss_kb, big.seconds))


if __name__ == "__main__":
    unittest.main()
