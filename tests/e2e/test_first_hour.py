"""End-to-end tests of what a new user meets first: option errors caught before any work, vocabulary filters
that mean what they say, byte-identical outputs, what a failed step says it published, and exit codes."""
import datetime
import glob
import json
import os
import re
import subprocess
import tempfile
import unittest

from e2e import BIDNORM, FolderTest, read_records, SOURCE

SAMPLE_12 = os.path.join(SOURCE, "samples", "bidlog-2026-11-20T12.jsonl.zst")
SAMPLE_13 = os.path.join(SOURCE, "samples", "bidlog-2026-11-20T13.jsonl.zst")


class FirstHour(FolderTest):
    @classmethod
    def setUpClass(cls):
        cls.shared = tempfile.TemporaryDirectory()
        cls.clean = os.path.join(cls.shared.name, "clean.avro")
        p = subprocess.run([BIDNORM, "ingest", "-q", "-o", cls.clean, SAMPLE_12], capture_output=True)
        assert p.returncode == 0, p.stderr.decode()
        cls.records = read_records(cls.clean)

    @classmethod
    def tearDownClass(cls):
        cls.shared.cleanup()

    def run_bidnorm(self, *args, expect=0):
        p = subprocess.run([BIDNORM, *args], capture_output=True, cwd=self.dir)
        self.assertEqual(p.returncode, expect, p.stderr.decode())
        return p

    # ---- option errors: exit 2 before any input is read, nothing written ----

    def test_codec_level_errors_write_nothing(self):
        # Regression: these were found after the run started, leaving a failed stats file behind.
        cases = [(("--codec", "deflate", "--level", "10"), "deflate level 10 is out of range (1 to 9)"),
                 (("--codec", "snappy", "--level", "3"), "codec 'snappy' has no compression level"),
                 (("--codec", "null", "--level", "1"), "codec 'null' has no compression level"),
                 (("--level", "3", "--codec", "snappy"), "codec 'snappy' has no compression level")]
        for args, msg in cases:
            for cmd in (["ingest", "-o", "out/x.avro", *args, SAMPLE_12],
                        ["encode", "--vocab", "v", "-o", "out/x.avro", *args, self.clean]):
                with self.subTest(cmd=cmd):
                    p = self.run_bidnorm(*cmd, expect=2)
                    self.assertEqual(p.stderr.decode(), "bidnorm %s: %s\nTry 'bidnorm %s --help'.\n"
                                     % (cmd[0], msg, cmd[0]))
                    self.assertEqual(os.listdir(self.dir), [])
        p = self.run_bidnorm("watch", "--inbox", "in", "--outbox", "out", "--delete", "--once",
                             "--codec", "deflate", "--level", "10", expect=2)
        self.assertEqual(p.stderr.decode(), "bidnorm watch: deflate level 10 is out of range (1 to 9)\n"
                         "Try 'bidnorm watch --help'.\n")
        self.assertEqual(os.listdir(self.dir), [])

    def test_vocab_output_and_task_are_checked_before_any_input(self):
        # Found only after every input was counted, before: a missing input now proves the order.
        os.mkdir(self.path("v"))
        p = self.run_bidnorm("vocab", "build", "-o", "v", "--field", "country", "missing.avro", expect=2)
        self.assertEqual(p.stderr.decode(), "bidnorm vocab build: v: exists (use --force to replace it)\n")
        p = self.run_bidnorm("vocab", "regen", "--root", "r", "--task", "a/b", "--field", "country", "missing.avro",
                             expect=2)
        self.assertEqual(p.stderr.decode(), "bidnorm vocab regen: --task must be a non-empty name without '/' "
                         "that does not start with '.'\n")
        self.assertEqual(os.listdir(self.dir), ["v"])

    # ---- vocab build --where ----

    def test_where_values_are_normalized_like_the_field(self):
        # Regression: os=iOS matched no row (the Avro holds "ios") and exited 0 with empty vocabularies.
        p = self.run_bidnorm("vocab", "build", "-o", "v", "--field", "app_bundle", "--where", "os=iOS", self.clean)
        self.assertTrue(p.stderr.decode().startswith(
            "bidnorm vocab build: note: --where 'os=iOS' compares with 'ios', the value normalized as the field is\n"),
            p.stderr.decode())
        want = len([r for r in self.records if r["os"] == "ios"])
        self.assertGreater(want, 0)
        with open(self.path("v/manifest.json")) as f:
            manifest = json.load(f)
        self.assertEqual(manifest["rows_matched"], want)
        # an integer in another spelling is its decimal form; -q drops the note
        p = self.run_bidnorm("vocab", "build", "-q", "-o", "w", "--field", "app_bundle", "--where", "install=01",
                             self.clean)
        self.assertEqual(p.stderr.decode(), "")
        with open(self.path("w/manifest.json")) as f:
            self.assertEqual(json.load(f)["rows_matched"], len([r for r in self.records if r["install"] == 1]))

    def assert_where_usage_errors(self, cases):
        """Each (where, message): exit 2 from vocab build and count with exactly that message, nothing written."""
        for where, msg in cases:
            for sub in ("build", "count"):
                with self.subTest(where=where, sub=sub):
                    p = self.run_bidnorm("vocab", sub, "-o", "v", "--field", "app_bundle", "--where", where,
                                         self.clean, expect=2)
                    self.assertEqual(p.stderr.decode(), "bidnorm vocab %s: %s\nTry 'bidnorm vocab %s --help'.\n"
                                     % (sub, msg, sub))
                    self.assertEqual(os.listdir(self.dir), [])

    def test_where_values_the_field_cannot_hold_are_usage_errors(self):
        cases = [("click=true", "--where 'click=true': field 'click' is an int, and 'true' is not a 32-bit integer"),
                 ("install=yes", "--where 'install=yes': field 'install' is an int, and 'yes' is not a 32-bit integer"),
                 ("install=4294967296",
                  "--where 'install=4294967296': field 'install' is an int, and '4294967296' is not a 32-bit integer"),
                 ("app_bundle!=???", "--where 'app_bundle!=???': '???' normalizes to null in field 'app_bundle', "
                                     "so no row can hold it (use 'app_bundle' for not null)")]
        self.assert_where_usage_errors(cases)

    def matched(self, folder):
        with open(self.path(folder + "/manifest.json")) as f:
            return json.load(f)["rows_matched"]

    def test_where_on_a_timestamp_takes_dates_iso_times_and_epoch_numbers(self):
        # Regression: 'ts>=2026-11-01' was refused or compared with raw milliseconds only.
        def ms(text):
            return int(datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)

        def count(pred):
            return len([r for r in self.records if pred(int(r["ts"].timestamp() * 1000 + 0.5))])
        noon = ms("2026-11-20T12:00:00Z")
        cases = [(["ts>=2026-11-20T12:00:00Z"], lambda t: t >= noon, noon),
                 (["ts<2026-11-20T14:00:00+02:00"], lambda t: t < noon, noon),
                 (["ts>2026-11-20T06:30:00.5Z", "ts<=%d" % noon],
                  lambda t: ms("2026-11-20T06:30:00.500Z") < t <= noon, ms("2026-11-20T06:30:00.500Z")),
                 (["ts>=2026-11-20"], lambda t: True, ms("2026-11-20T00:00:00Z")),
                 (["ts>=%d" % (noon // 1000)], lambda t: t >= noon, noon)]  # epoch seconds, as the log's
        for n, (where, pred, shown) in enumerate(cases):
            with self.subTest(where=where):
                args = [a for w in where for a in ("--where", w)]
                p = self.run_bidnorm("vocab", "build", "-o", "v%d" % n, "--field", "app_bundle", *args, self.clean)
                want = count(pred)
                self.assertTrue(0 < want, where)
                self.assertEqual(self.matched("v%d" % n), want)
                self.assertIn("bidnorm vocab build: note: --where '%s' compares with '%d', the value normalized as "
                              "the field is\n" % (where[0], shown), p.stderr.decode())
        # Raw milliseconds compare as they are, with no note.
        p = self.run_bidnorm("vocab", "build", "-o", "raw", "--field", "app_bundle", "--where", "ts<%d" % noon,
                             self.clean)
        self.assertNotIn("note:", p.stderr.decode())
        self.assertEqual(self.matched("raw"), count(lambda t: t < noon))
        # The day after the sample: no row.
        self.run_bidnorm("vocab", "build", "-q", "-o", "none", "--field", "app_bundle", "--where", "ts>=2026-11-21",
                         self.clean, expect=3)

    def test_where_timestamp_and_ordering_errors_are_usage_errors(self):
        advice = ("; give a date (2026-11-01, midnight UTC), an ISO-8601 time with its zone (2026-11-01T12:00:00Z) "
                  "or epoch milliseconds")
        cases = [("ts>=yesterday", "--where 'ts>=yesterday': field 'ts' is a timestamp, and 'yesterday' is not one "
                                   "(not an ISO-8601 time or epoch number: \"yesterday\")" + advice),
                 ("ts<2026-02-30", "--where 'ts<2026-02-30': field 'ts' is a timestamp, and '2026-02-30' is not one "
                                   "(not a calendar date)" + advice),
                 ("ts>=2026-11-20T12:00:00", "--where 'ts>=2026-11-20T12:00:00': field 'ts' is a timestamp, and "
                                             "'2026-11-20T12:00:00' is not one (not an ISO-8601 time or epoch "
                                             "number: \"2026-11-20T12:00:00\")" + advice),
                 ("ts=null", "--where 'ts=null': field 'ts' is a timestamp, and 'null' is not one (it reads as null)"
                  + advice),
                 ("os>=ios", "--where 'os>=ios': field 'os' is string; <, <=, > and >= compare numbers (int, long or "
                             "timestamp fields)"),
                 ("install<yes", "--where 'install<yes': field 'install' is an int, and 'yes' is not a 32-bit integer"),
                 ("ts=<1", "--where 'ts=<1': field 'ts' is a timestamp, and '<1' is not one (not an ISO-8601 time or "
                           "epoch number: \"<1\")" + advice)]
        self.assert_where_usage_errors(cases)

    def test_a_vocabulary_of_zero_rows_is_not_published(self):
        p = self.run_bidnorm("vocab", "build", "-q", "-o", "v", "--field", "app_bundle", "--where", "os=symbian",
                             self.clean, expect=3)
        self.assertEqual(p.stderr.decode(), "bidnorm vocab build: no row matched the --where filters (%d rows "
                         "scanned): a vocabulary built from zero rows is not published\n" % len(self.records))
        self.assertEqual(os.listdir(self.dir), [])
        # the same through count and merge, and for regen
        self.run_bidnorm("vocab", "count", "-q", "-o", "p1", "--field", "app_bundle", "--where", "os=symbian",
                         self.clean)
        p = self.run_bidnorm("vocab", "merge", "-q", "-o", "v", "p1", expect=3)
        self.assertIn("a vocabulary built from zero rows is not published", p.stderr.decode())
        p = self.run_bidnorm("vocab", "regen", "-q", "--root", "root", "--task", "t", "--field", "app_bundle",
                             "--where", "os=symbian", self.clean, expect=3)
        self.assertIn("a vocabulary built from zero rows is not published", p.stderr.decode())
        self.assertEqual(sorted(os.listdir(self.dir)), ["p1"])

    def test_vocab_output_folder_is_created(self):
        self.run_bidnorm("vocab", "build", "-q", "-o", "vocab/install", "--field", "country", self.clean)
        self.assertTrue(os.path.isfile(self.path("vocab/install/country.txt")))

    def test_each_vocab_subcommand_has_its_own_help(self):
        seen = set()
        for sub in ("build", "count", "merge", "lint", "diff", "regen"):
            p = self.run_bidnorm("vocab", sub, "--help")
            out = p.stdout.decode()
            self.assertTrue(out.startswith("usage: bidnorm vocab %s " % sub), out)
            self.assertNotIn("usage: bidnorm vocab " + ("count" if sub != "count" else "build"), out)
            seen.add(out)
        self.assertEqual(len(seen), 6)
        lint = self.run_bidnorm("vocab", "lint", "--help").stdout.decode()
        self.assertIn("--rules FILE", lint)
        self.assertNotIn("--min-count", lint)
        self.assertNotIn("-w, --where", self.run_bidnorm("vocab", "diff", "--help").stdout.decode())

    def test_a_stream_output_gets_no_reject_or_stats_file_unless_asked(self):
        with open(self.path("a.jsonl"), "w") as f:
            f.write('{"event_id": "a", "ts": 1}\nx\n')
        for out in ("-", "/dev/null"):
            with self.subTest(out=out):
                p = self.run_bidnorm("ingest", "-q", "-o", out, "--max-reject-rate", "1", "a.jsonl")
                self.assertEqual(p.stderr.decode(), "bidnorm ingest: rejected: a.jsonl:2:1: invalid JSON: "
                                 "unexpected character 'x' (invalid_json)\n")
                self.assertEqual(os.listdir(self.dir), ["a.jsonl"])
                self.assertFalse(os.path.exists(out + ".rejects.jsonl") or os.path.exists(out + ".stats.json"))
        self.run_bidnorm("ingest", "-q", "-o", "-", "--stats", "s.json", "a.jsonl", "--max-reject-rate", "1")
        self.assertEqual(sorted(os.listdir(self.dir)), ["a.jsonl", "s.json"])

    # ---- byte-identical output ----

    def test_output_is_byte_identical_for_identical_input_rules_and_options(self):
        # Regression: the Avro sync marker was random, so two identical runs gave different bytes.
        outs = []
        for name, threads in (("a", "1"), ("b", "1"), ("c", "3")):
            os.mkdir(self.path(name))
            self.run_bidnorm("ingest", "-q", "--threads", threads, "--block-size", "65536", "-o",
                             self.path(name + "/x.avro"), SAMPLE_12)
            with open(self.path(name + "/x.avro"), "rb") as f:
                outs.append(f.read())
            with open(self.path(name + "/x.rejects.jsonl"), "rb") as f:
                outs.append(f.read())
        self.assertEqual(outs[0], outs[2])
        self.assertEqual(outs[0], outs[4])
        self.assertEqual(outs[1], outs[3])
        self.assertEqual(outs[1], outs[5])
        # another input name is another header, so another sync marker
        os.symlink(SAMPLE_12, self.path("other.jsonl.zst"))
        self.run_bidnorm("ingest", "-q", "--block-size", "65536", "-o", "d.avro", "other.jsonl.zst")
        with open(self.path("d.avro"), "rb") as f:
            other = f.read()
        self.assertNotEqual(other[-16:], outs[0][-16:])

    # ---- what a failed step says ----

    def test_failed_summary_says_what_was_published(self):
        # Regression: "FAILED: 5000 records read, 4985 written" when nothing was written, and reject files
        # named that were never created.
        p = self.run_bidnorm("ingest", "-o", "x.avro", "--max-reject-rate", "0.001", SAMPLE_12, expect=3)
        last = re.sub(r" in [0-9.]+ s;", " in T s;", p.stderr.decode().splitlines()[-1])
        self.assertEqual(last, "bidnorm ingest: FAILED: 5000 records read (4985 valid, 15 rejected), 4.1 MB in T s; "
                         "no output published (x.avro); written: x.rejects.jsonl, x.stats.json")
        self.assertEqual(sorted(os.listdir(self.dir)), ["x.rejects.jsonl", "x.stats.json"])
        if os.path.exists("/dev/full"):
            p = self.run_bidnorm("ingest", "-q", "-o", "/dev/full", "--rejects", "r.jsonl", "--stats", "s.json",
                                 SAMPLE_12, expect=5)
            self.assertEqual(p.stderr.decode(), "bidnorm ingest: /dev/full: write failed: No space left on device\n"
                             "bidnorm ingest: FAILED: no output published (/dev/full); written: r.jsonl, s.json\n")

    def test_failed_summary_names_no_file_that_was_not_written(self):
        p = self.run_bidnorm("ingest", "-q", "-o", "x.avro", "--rejects", "nodir/r.jsonl", "--stats", "nodir/s.json",
                             "missing.jsonl", expect=5)
        self.assertEqual(p.stderr.decode(), "bidnorm ingest: missing.jsonl: cannot open: No such file or directory\n"
                         "bidnorm ingest: FAILED: no output published (x.avro); written: nodir/r.jsonl, "
                         "nodir/s.json\n")
        with open(self.path("afile"), "w"):
            pass
        p = self.run_bidnorm("ingest", "-q", "-o", "x.avro", "--rejects", "afile/r.jsonl", "--stats", "afile/s.json",
                             SAMPLE_12, expect=5)
        self.assertEqual(p.stderr.decode().splitlines()[-1],
                         "bidnorm ingest: FAILED: no output published (x.avro); nothing else written")

    # ---- labels: the default rules' 0/1 range ----

    def test_labels_outside_0_1_become_null_and_are_counted(self):
        # Regression: the default rules documented click/install as 0/1 but wrote any int ("install": 2).
        labels = [({"click": 1, "install": 2}, (1, None)), ({"click": True, "install": "0"}, (1, 0)),
                  ({"click": -1, "install": "1"}, (None, 1)), ({"click": 0, "install": False}, (0, 0)),
                  ({"click": 1.0, "install": 7}, (1, None))]
        with open(self.path("l.jsonl"), "w") as f:
            for i, (label, _) in enumerate(labels):
                f.write(json.dumps({"event_id": "e%d" % i, "ts": 1763640000, "label": label}) + "\n")
        self.run_bidnorm("ingest", "-q", "-o", "l.avro", "l.jsonl")
        got = [(r["click"], r["install"]) for r in read_records(self.path("l.avro"))]
        self.assertEqual(got, [want for _, want in labels])
        with open(self.path("l.stats.json")) as f:
            fields = json.load(f)["fields"]
        self.assertEqual((fields["click"]["out_of_range"], fields["click"]["coercion_failures"]), (1, 1))
        self.assertEqual((fields["install"]["out_of_range"], fields["install"]["coercion_failures"]), (2, 2))
        self.assertNotIn("out_of_range", fields["bid_floor"])

    def test_range_on_required_fields_and_array_elements(self):
        with open(self.path("r.yaml"), "w") as f:
            f.write("version: 1\nschema: {name: R}\nfields:\n"
                    "  - {name: n, source: n, type: long, required: true, range: [-5, 5]}\n"
                    "  - {name: xs, source: xs, type: array<double>, range: [0, 1]}\n"
                    "  - {name: k, source: k, type: int}\n")
        with open(self.path("r.jsonl"), "w") as f:
            f.write('{"n": 5, "xs": [0, 0.5, 1.5, -0.1, 1], "k": 2147483647}\n{"n": 6}\n'
                    '{"n": -5, "k": -2147483648}\n{"n": 0, "k": 2147483648}\n')
        p = self.run_bidnorm("ingest", "--rules", "r.yaml", "-o", "r.avro", "--max-reject-rate", "1", "r.jsonl")
        self.assertIn("bidnorm ingest: rejected: r.jsonl:2: field 'n': 6 is outside the range [-5, 5] "
                      "(invalid_value)\n", p.stderr.decode())
        # without a range an int takes all 32 bits, and no more
        self.assertEqual(read_records(self.path("r.avro")), [{"n": 5, "xs": [0.0, 0.5, 1.0], "k": 2147483647},
                                                             {"n": -5, "xs": [], "k": -2147483648},
                                                             {"n": 0, "xs": [], "k": None}])
        with open(self.path("r.stats.json")) as f:
            fields = json.load(f)["fields"]
        self.assertEqual(fields["n"]["out_of_range"], 1)
        self.assertEqual(fields["xs"]["out_of_range"], 2)
        self.assertEqual(fields["xs"]["elements_dropped"], 2)

    # ---- normalize: any field, parity: says what failed ----

    def test_normalize_reads_numbers_times_and_labels_like_ingest(self):
        # Regression: normalize refused every field that is not a string.
        p = self.run_bidnorm("normalize", "--field", "ts", "1763640000", "2025-11-20T12:00:00Z",
                             "2025-11-20T13:00:00+01:00", '"1763640000000"', "null")
        self.assertEqual(p.stdout.decode(), "1763640000000\n" * 4 + "null\n")
        p = self.run_bidnorm("normalize", "--field", "bid_floor", "0.35", '"0.35"', "abc", expect=1)
        self.assertEqual(p.stdout.decode(), "0.35\n0.35\n")
        self.assertEqual(p.stderr.decode(), "bidnorm normalize: field 'bid_floor': not a number: \"abc\"\n")
        p = self.run_bidnorm("normalize", "--field", "install", "1", "true", '"false"', "2", expect=1)
        self.assertEqual(p.stdout.decode(), "1\n1\n0\n")
        self.assertEqual(p.stderr.decode(), "bidnorm normalize: field 'install': 2 is outside the range [0, 1]\n")
        p = self.run_bidnorm("normalize", "--field", "ts", "--trace", "yesterday", expect=1)
        self.assertEqual(p.stderr.decode(),
                         "bidnorm normalize: field 'ts': not an ISO-8601 time or epoch number: \"yesterday\"\n")
        p = self.run_bidnorm("normalize", "--field", "device_ctr", "1", expect=2)
        self.assertEqual(p.stderr.decode(), "bidnorm normalize: field 'device_ctr': a ratio field is computed from "
                         "two source values, not one\n")
        # string fields are unchanged: the raw text through the chain
        self.assertEqual(self.run_bidnorm("normalize", "--field", "os", "iOS").stdout.decode(), "ios\n")

    def test_parity_names_rejected_records_not_mismatches(self):
        # Regression: a log whose raw records the rules reject failed with "mismatch rate above ...".
        self.run_bidnorm("vocab", "build", "-q", "-o", "v", "--field", "country", self.clean)
        with open(self.path("log.jsonl"), "w") as f:
            f.write('{"raw": {"event_id": "a"}, "encoded": {}}\n')
        p = self.run_bidnorm("parity", "--vocab", "v", "log.jsonl", expect=3)
        self.assertEqual(p.stderr.decode(), "bidnorm parity: FAILED: above --max-mismatch-rate (0): records whose "
                         "raw object the rules reject (1 of 1)\n")
        with open(self.path("log.jsonl"), "a") as f:
            f.write('{"raw": {}\n')
        p = self.run_bidnorm("parity", "--vocab", "v", "log.jsonl", expect=3)
        self.assertEqual(p.stderr.decode(), "bidnorm parity: FAILED: above --max-mismatch-rate (0): records whose "
                         "raw object the rules reject (1 of 1), malformed log lines (1)\n")

    # ---- exit codes ----

    def test_unreadable_rule_file_is_an_input_error(self):
        # Regression: it exited 4, the code of an invalid rule file, though it is an I/O error.
        for cmd in (["ingest", "-o", "x.avro", SAMPLE_12], ["schema"], ["normalize", "--field", "os", "x"],
                    ["vocab", "lint", "v"]):
            with self.subTest(cmd=cmd[0]):
                p = self.run_bidnorm(*cmd, "--rules", "none.yaml", expect=5)
                name = cmd[0] if cmd[0] != "vocab" else "vocab lint"
                self.assertEqual(p.stderr.decode(), "bidnorm %s: none.yaml: cannot open: No such file or directory\n"
                                 % name)
        with open(self.path("bad.yaml"), "w") as f:
            f.write("fields: [\n")
        p = self.run_bidnorm("schema", "--rules", "bad.yaml", expect=4)

    def test_a_vocabulary_that_does_not_fit_the_rules_is_an_input_error(self):
        os.mkdir(self.path("v"))
        with open(self.path("v/app_bundle.txt"), "w") as f:
            f.write("com.foo\ncom.foo\n")
        p = self.run_bidnorm("encode", "--vocab", "v", "-o", "e.avro", self.clean, expect=5)
        self.assertEqual(p.stderr.decode(), "bidnorm encode: v/app_bundle.txt:2: token \"com.foo\" duplicates line 1\n")
        with open(self.path("log.jsonl"), "w") as f:
            f.write("{}\n")
        p = self.run_bidnorm("parity", "--vocab", "v", "log.jsonl", expect=5)
        self.assertEqual(p.stderr.decode(), "bidnorm parity: v/app_bundle.txt:2: token \"com.foo\" duplicates line 1\n")


if __name__ == "__main__":
    unittest.main()
