"""End-to-end tests of `bidnorm ingest`: the real binary on real files, Avro read back with python3-avro."""
import json
import os
import subprocess
import tempfile
import unittest

import avro.datafile
import avro.io
import avro.schema
import zstandard

from e2e import BIDNORM, FolderTest, read_avro_file as read_avro, read_jsonl, SOURCE


def rec(event_id, **extra):
    """A valid bid-log v1 record as a dict."""
    r = {
        "event_id": event_id,
        "ts": "2026-11-20T12:00:01.123Z",
        "exchange": "unity",
        "app": {"bundle": "com.dreamgames.royalmatch$hl=en_US", "publisher": "Dream Games"},
        "device": {"ifa": "9a5b", "os": "android", "country": "us", "city": "São Paulo",
                   "installed_apps": ["com.a.b", "com.c.d"], "clicks": 3, "impressions": 120},
        "ad_format": "rewarded_video",
        "bid_floor": 0.35,
        "clearing_price": 1.2,
        "weeks_ago": 2,
        "features": {"session_depth": 3, "days_since_last_click": 2},
        "label": {"click": 0, "install": 1},
    }
    r.update(extra)
    return r


def line(r):
    return json.dumps(r, ensure_ascii=False).encode()






class Ingest(FolderTest):

    def run_bidnorm(self, *args, stdin=None):
        return subprocess.run([BIDNORM, *args], input=stdin, capture_output=True, cwd=self.dir)

    def ingest(self, *inputs, extra=(), expect=0):
        out = self.path("out.avro")
        p = self.run_bidnorm("ingest", "-o", out, *extra, *inputs)
        self.assertEqual(p.returncode, expect, p.stderr.decode())
        return p

    def outputs(self):
        meta, records = read_avro(self.path("out.avro"))
        rejects = read_jsonl(self.path("out.rejects.jsonl"))
        with open(self.path("out.stats.json")) as f:
            stats = json.load(f)
        self.assertEqual(stats["records_read"], stats["records_written"] + stats["records_rejected"])
        self.assertEqual(stats["records_written"], len(records))
        self.assertEqual(stats["records_rejected"], len(rejects))
        return meta, records, rejects, stats

    def assert_no_temp_files(self):
        left = [n for n in os.listdir(self.dir) if ".tmp" in n]
        self.assertEqual(left, [])

    # --- inputs -------------------------------------------------------------

    def test_byte_order_marks_of_files_saved_by_windows_tools_are_dropped(self):
        """Two files each saved with a byte order mark, gzipped and concatenated, read as the same text without:
        the bid-log sample and a real OpenRTB request from Prebid Server's tests."""
        bom = b"\xef\xbb\xbf"
        text = subprocess.run(["zstd", "-dc", os.path.join(SOURCE, "samples", "bidlog-2026-11-20T12.jsonl.zst")],
                              capture_output=True, check=True).stdout.splitlines(keepends=True)[:100]
        halves = (b"".join(text[:50]), b"".join(text[50:]))
        plain = self.write("plain.jsonl", b"".join(halves))
        gz = b"".join(subprocess.run(["gzip", "-c"], input=bom + h, capture_output=True, check=True).stdout
                      for h in halves)
        marked = self.write("marked.jsonl.gz", gz)
        self.ingest(plain)
        want = self.outputs()[1:]
        self.ingest(marked)
        _, records, rejects, stats = self.outputs()
        self.assertEqual((records, [r["line"] for r in rejects]), (want[0], [r["line"] for r in want[1]]))
        self.assertEqual(stats["records_read"], 100)
        with open(os.path.join(SOURCE, "tests", "data", "openrtb", "prebid-server", "amx-app-simple.json"), "rb") as f:
            request = json.dumps(json.loads(f.read())).encode()
        for name, data in (("o.jsonl", request + b"\n"), ("ob.jsonl", bom + request + b"\n")):
            self.ingest(self.write(name, data), extra=("--rules", "openrtb"))
            got = self.outputs()
            self.assertEqual((got[3]["records_written"], got[3]["records_rejected"]), (1, 0), name)
            if name == "o.jsonl":
                want = got[1]
        self.assertEqual(got[1], want)

    def test_plain_input_normalizes_and_reads_back(self):
        inp = self.write("a.jsonl", line(rec("e1")) + b"\n" + line(rec("e2")) + b"\n")
        self.ingest(inp)
        meta, records, rejects, stats = self.outputs()
        self.assertEqual([r["event_id"] for r in records], ["e1", "e2"])
        r = records[0]
        self.assertEqual(r["app_bundle"], "com.dreamgames.royalmatch")
        self.assertEqual(r["country"], "US")
        self.assertEqual(r["installed_apps"], ["com.a.b", "com.c.d"])
        self.assertEqual(r["features"], {"session_depth": 3.0})
        self.assertAlmostEqual(r["device_ctr"], 3 / 120)
        self.assertEqual(r["ts"].timestamp(), 1795176001.123)
        self.assertNotIn("clearing_price", r)
        self.assertNotIn("weeks_ago", r)
        self.assertEqual(rejects, [])
        self.assertEqual(meta["avro.codec"], b"zstandard")
        self.assertEqual(json.loads(meta["bidnorm.sources"]), [inp])
        self.assertEqual(len(meta["bidnorm.rules.sha256"]), 64)
        self.assertEqual(stats["serving_invalid_keys"]["weeks_ago"], {"reason": "relative-time", "count": 2})
        self.assertEqual(stats["serving_invalid_keys"]["clearing_price"], {"reason": "feedback", "count": 2})
        self.assertEqual(stats["serving_invalid_keys"]["features.days_since_last_click"]["count"], 2)
        self.assert_no_temp_files()

    def test_multi_frame_zstd_with_a_line_split_across_frames(self):
        data = b"".join(line(rec("e%d" % i)) + b"\n" for i in range(50))
        cut = len(data) // 2 + 7  # inside a line
        c = zstandard.ZstdCompressor(level=3)
        skippable = b"\x50\x2a\x4d\x18" + (4).to_bytes(4, "little") + b"skip"
        inp = self.write("a.jsonl.zst", c.compress(data[:cut]) + skippable + c.compress(data[cut:]))
        self.ingest(inp)
        _, records, _, stats = self.outputs()
        self.assertEqual([r["event_id"] for r in records], ["e%d" % i for i in range(50)])
        self.assertEqual(stats["inputs"][0]["compression"], "zstd")
        self.assertEqual(stats["inputs"][0]["bytes_decoded"], len(data))

    def test_zstd_is_detected_by_content_not_name(self):
        data = line(rec("z1")) + b"\n"
        inp = self.write("no-extension", zstandard.ZstdCompressor().compress(data))
        self.ingest(inp)
        _, records, _, _ = self.outputs()
        self.assertEqual(records[0]["event_id"], "z1")

    def test_crlf_no_final_newline_and_blank_lines(self):
        inp = self.write("a.jsonl", line(rec("e1")) + b"\r\n\r\n  \n" + line(rec("e2")) + b"\r\n" + line(rec("e3")))
        self.ingest(inp)
        _, records, _, stats = self.outputs()
        self.assertEqual([r["event_id"] for r in records], ["e1", "e2", "e3"])
        self.assertEqual(stats["inputs"][0]["blank_lines"], 2)
        self.assertEqual(stats["records_read"], 3)

    def test_oversize_line_is_rejected_with_a_prefix_and_the_rest_goes_on(self):
        big = line(rec("big", publisher="x" * (2 * 1024 * 1024)))
        inp = self.write("a.jsonl", line(rec("e1")) + b"\n" + big + b"\n" + line(rec("e3")) + b"\n")
        self.ingest(inp, extra=("--max-reject-rate", "0.5"))
        _, records, rejects, stats = self.outputs()
        self.assertEqual([r["event_id"] for r in records], ["e1", "e3"])
        self.assertEqual(len(rejects), 1)
        rj = rejects[0]
        self.assertEqual(rj["reason"], "line_too_long")
        self.assertEqual(rj["line"], 2)
        self.assertTrue(rj["raw_truncated"])
        self.assertEqual(rj["raw_size"], len(big))
        self.assertLess(len(rj["raw"]), 4096)
        self.assertEqual(rj["message"], "line of %d bytes exceeds limits.max_line_bytes (1048576)" % len(big))
        self.assertEqual(stats["rejected_by_reason"]["line_too_long"], 1)

    def test_invalid_utf8_bytes_are_repaired_as_windows_1252(self):
        raw = line(rec("e1")).replace("São Paulo".encode(), b"S\xe3o Paulo \x93quoted\x94")
        inp = self.write("a.jsonl", raw + b"\n")
        self.ingest(inp)
        _, records, _, stats = self.outputs()
        self.assertEqual(records[0]["city"], "São Paulo \u201cquoted\u201d")
        self.assertEqual(stats["inputs"][0]["repaired_bytes"], 3)

    def test_truncated_zstd_fails_with_the_offset_and_publishes_nothing(self):
        data = b"".join(line(rec("e%d" % i)) + b"\n" for i in range(200))
        z = zstandard.ZstdCompressor().compress(data)
        inp = self.write("cut.jsonl.zst", z[: len(z) - 10])
        p = self.ingest(inp, expect=5)
        err = p.stderr.decode()
        self.assertIn("cut.jsonl.zst: truncated zstd input: ends at byte offset %d inside the frame starting at byte offset 0"
                      % (len(z) - 10), err)
        self.assertFalse(os.path.exists(self.path("out.avro")))
        with open(self.path("out.stats.json")) as f:
            stats = json.load(f)
        self.assertEqual(stats["status"], "failed")
        self.assertFalse(stats["inputs"][0]["complete"])
        self.assert_no_temp_files()

    def test_malformed_json_is_rejected_with_reason_column_and_raw_line(self):
        lines = [line(rec("e1")), b'{"event_id": "e2", "ts": }', b'["not", "an", "object"]',
                 line(rec("e4", ts="yesterday")), json.dumps({"ts": "2026-11-20T12:00:00Z"}).encode()]
        inp = self.write("m.jsonl", b"\n".join(lines) + b"\n")
        p = self.ingest(inp, extra=("--max-reject-rate", "1"))
        _, records, rejects, stats = self.outputs()
        self.assertEqual([r["event_id"] for r in records], ["e1"])
        self.assertEqual([(r["line"], r["reason"], r["field"]) for r in rejects],
                         [(2, "invalid_json", None), (3, "not_object", None), (4, "invalid_value", "ts"),
                          (5, "missing_required", "event_id")])
        self.assertEqual(rejects[0]["column"], 26)
        self.assertEqual(rejects[0]["message"], "invalid JSON: unexpected character '}'")
        self.assertEqual(rejects[0]["raw"], lines[1].decode())
        self.assertEqual(rejects[0]["offset"], len(lines[0]) + 1)
        self.assertEqual(rejects[2]["message"], 'not an ISO-8601 time or epoch number: "yesterday"')
        self.assertIn('m.jsonl:4: field \'ts\': not an ISO-8601 time or epoch number: "yesterday"', p.stderr.decode())
        self.assertEqual(stats["rejected_by_reason"]["invalid_json"], 1)
        self.assertEqual(stats["inputs"][0]["rejected_by_reason"]["missing_required"], 1)

    def test_several_inputs_and_stdin(self):
        a = self.write("a.jsonl", line(rec("a1")) + b"\n")
        b = self.write("b.jsonl.zst", zstandard.ZstdCompressor().compress(line(rec("b1")) + b"\n"))
        out = self.path("out.avro")
        p = self.run_bidnorm("ingest", "-q", "-o", out, a, "-", b, stdin=line(rec("s1")) + b"\n")
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        meta, records, _, stats = self.outputs()
        self.assertEqual([r["event_id"] for r in records], ["a1", "s1", "b1"])
        self.assertEqual([i["name"] for i in stats["inputs"]], [a, "<stdin>", b])
        self.assertEqual(json.loads(meta["bidnorm.sources"]), [a, "<stdin>", b])

    def test_output_to_stdout(self):
        inp = self.write("a.jsonl", line(rec("e1")) + b"\n")
        p = self.run_bidnorm("ingest", "-q", "-o", "-", inp)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        out = self.write("piped.avro", p.stdout)
        _, records = read_avro(out)
        self.assertEqual(records[0]["event_id"], "e1")

    def test_every_codec_reads_back(self):
        inp = self.write("a.jsonl", b"".join(line(rec("e%d" % i)) + b"\n" for i in range(300)))
        for codec in ("zstandard", "deflate", "snappy", "null"):
            with self.subTest(codec=codec):
                self.ingest(inp, extra=("--codec", codec, "--block-size", "4096"))
                meta, records, _, _ = self.outputs()
                self.assertEqual(meta["avro.codec"], codec.encode())
                self.assertEqual(len(records), 300)
                self.assertEqual(records[299]["event_id"], "e299")

    def test_threads_give_the_same_records_rejects_and_stats(self):
        lines = []
        for i in range(3000):
            lines.append(b"not json %d" % i if i % 97 == 0 else line(rec("e%d" % i, bid_floor=i / 100)))
        inp = self.write("a.jsonl", b"\n".join(lines) + b"\n")
        results = []
        for threads in ("1", "2", "3"):
            self.ingest(inp, extra=("--threads", threads, "--block-size", "8192", "--max-reject-rate", "0.5"))
            _, records, rejects, stats = self.outputs()
            for key in ("elapsed_seconds",):
                stats.pop(key)
            for r in records:
                r["ts"] = r["ts"].isoformat()
            results.append((records, rejects, stats))
        self.assertEqual(len(results[0][0]), 3000 - 31)
        self.assertEqual(results[0], results[1])
        self.assertEqual(results[0], results[2])

    def test_empty_input_gives_a_valid_empty_container(self):
        inp = self.write("empty.jsonl", b"")
        self.ingest(inp)
        _, records, rejects, stats = self.outputs()
        self.assertEqual((records, rejects, stats["records_read"]), ([], [], 0))

    # --- failures and exit codes -------------------------------------------

    def test_reject_rate_above_limit_exits_3_and_publishes_no_avro(self):
        inp = self.write("a.jsonl", line(rec("e1")) + b"\nnot json\n")
        p = self.ingest(inp, expect=3)
        self.assertIn("rejected 1 of 2 records (50.00%), above the limit of 1.00% (--max-reject-rate 0.01); "
                      "no output published", p.stderr.decode())
        self.assertFalse(os.path.exists(self.path("out.avro")))
        self.assertEqual(len(read_jsonl(self.path("out.rejects.jsonl"))), 1)
        self.assert_no_temp_files()

    def test_previous_output_survives_a_failed_run(self):
        good = self.write("good.jsonl", line(rec("e1")) + b"\n")
        self.ingest(good)
        bad = self.write("bad.jsonl", b"garbage\n")
        self.ingest(bad, expect=3)
        _, records = read_avro(self.path("out.avro"))
        self.assertEqual(records[0]["event_id"], "e1")

    def test_unreadable_input_exits_5(self):
        p = self.ingest(self.path("missing.jsonl"), expect=5)
        self.assertIn("missing.jsonl: cannot open: No such file or directory", p.stderr.decode())
        self.assertFalse(os.path.exists(self.path("out.avro")))

    def test_output_folder_missing_is_created(self):
        # Regression: the README's first example (-o out/...) failed with exit 5 unless out/ existed.
        inp = self.write("a.jsonl", line(rec("e1")) + b"\n")
        p = self.run_bidnorm("ingest", "-q", "-o", self.path("new/deeper/out.avro"), inp)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertEqual(sorted(os.listdir(self.path("new/deeper"))),
                         ["out.avro", "out.rejects.jsonl", "out.stats.json"])

    def test_disk_full_exits_5(self):
        if not os.path.exists("/dev/full"):
            self.skipTest("no /dev/full")
        inp = self.write("a.jsonl", line(rec("e1")) + b"\n")
        p = self.run_bidnorm("ingest", "-q", "-o", "/dev/full", "--rejects", self.path("r.jsonl"),
                             "--stats", self.path("s.json"), inp)
        self.assertEqual(p.returncode, 5, p.stderr.decode())

    def test_invalid_rules_exit_4_with_location(self):
        rules = self.write("bad.yaml", b"version: 1\nschema: {name: R, namespace: t}\nfields:\n  - name: x\n    source: x\n    type: strng\n")
        inp = self.write("a.jsonl", line(rec("e1")) + b"\n")
        p = self.run_bidnorm("ingest", "-o", self.path("out.avro"), "--rules", rules, inp)
        self.assertEqual(p.returncode, 4)
        self.assertIn("bad.yaml:6:11: field 'x': unknown type 'strng'", p.stderr.decode())

    def test_usage_errors_exit_2(self):
        for args, msg in [(("--codec", "lz4"), "unknown codec 'lz4' (expected zstandard, deflate, snappy or null)"),
                          (("--max-reject-rate", "2"), "--max-reject-rate must be a number from 0 to 1, not '2'"),
                          (("--threads", "0"), "--threads must be an integer from 1 to 256, not '0'"),
                          (("--bogus",), "unrecognized option")]:
            with self.subTest(args=args):
                p = self.run_bidnorm("ingest", "-o", self.path("o.avro"), *args)
                self.assertEqual(p.returncode, 2)
                self.assertIn(msg, p.stderr.decode())


class Commands(unittest.TestCase):
    def run_bidnorm(self, *args):
        return subprocess.run([BIDNORM, *args], capture_output=True)

    def test_print_default_rules_is_the_shipped_file(self):
        p = self.run_bidnorm("rules", "--print-default")
        self.assertEqual(p.returncode, 0)
        with open(os.path.join(SOURCE, "rules", "bidlog.yaml"), "rb") as f:
            self.assertEqual(p.stdout, f.read())

    def test_schema_parses_with_python_avro(self):
        p = self.run_bidnorm("schema")
        self.assertEqual(p.returncode, 0)
        schema = avro.schema.parse(p.stdout.decode())
        self.assertEqual(schema.fullname, "ads.bidlog.Impression")
        self.assertEqual([f.name for f in schema.fields][:3], ["event_id", "ts", "exchange"])

    def test_normalize_a_bundle(self):
        p = self.run_bidnorm("normalize", "--field", "app_bundle", "com.foo$hl=en", "https://apps.apple.com/us/app/x/id1482155847")
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertEqual(p.stdout.decode().splitlines(), ["com.foo", "1482155847"])

    def test_normalize_repairs_invalid_utf8_arguments(self):
        p = subprocess.run([BIDNORM, "normalize", "--field", "city", b"S\xe3o Paulo"], capture_output=True)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertEqual(p.stdout.decode(), "São Paulo\n")

    def test_normalize_unknown_field_is_a_usage_error(self):
        p = self.run_bidnorm("normalize", "--field", "nope", "x")
        self.assertEqual(p.returncode, 2)
        self.assertIn("no field 'nope' in the rules", p.stderr.decode())

    def test_unknown_command(self):
        p = self.run_bidnorm("frobnicate")
        self.assertEqual(p.returncode, 2)
        self.assertIn("unknown command 'frobnicate'", p.stderr.decode())


if __name__ == "__main__":
    unittest.main()
