"""End-to-end tests of the serving API, `bidnorm encode` and `bidnorm parity`: the real binaries on the committed samples.

The central check: for every sample line, encode(ingest(raw)) read back with python3-avro equals what the
serving API computes from the raw line, called from C (tools/serve_example) and from Python (tools/serve_ctypes.py).
"""
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

import zstandard

from e2e import BIDNORM, SOURCE, read_avro_file as read_avro
BUILD = os.path.abspath(os.environ.get("BIDNORM_BUILD", os.path.dirname(BIDNORM)))
SERVE_EXAMPLE = os.path.join(BUILD, "serve_example")
SAMPLES = sorted(glob.glob(os.path.join(SOURCE, "samples", "bidlog-*.jsonl.zst")))
VOCAB_FIELDS = "app_bundle,installed_apps,exchange,ad_format,os,country,language,connection_type,device_make"


def run(*args, stdin=None, cwd=None):
    return subprocess.run(list(args), input=stdin, capture_output=True, cwd=cwd)




def raw_lines():
    """The sample lines as ingest reads them: LF or CRLF, blank lines skipped."""
    out = []
    for path in SAMPLES:
        with open(path, "rb") as f:
            data = zstandard.ZstdDecompressor().stream_reader(f, read_across_frames=True).read()
        for line in data.split(b"\n"):
            line = line.rstrip(b"\r")
            if line.strip(b" \t"):
                out.append(line)
    return out


def millis(v):
    """python3-avro gives timestamp-millis as datetime; serving prints milliseconds."""
    if hasattr(v, "timestamp"):
        return round(v.timestamp() * 1000)
    return v


def shared_library():
    """The libbidnorm.so the build made next to the binary, or $BIDNORM_LIB."""
    return os.environ.get("BIDNORM_LIB") or os.path.join(BUILD, "libbidnorm.so")


class Serve(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        d = cls.dir = cls.tmp.name
        cls.clean = os.path.join(d, "clean.avro")
        cls.vocab = os.path.join(d, "vocab")
        cls.encoded = os.path.join(d, "encoded.avro")
        cls.raw = raw_lines()
        cls.raw_path = os.path.join(d, "raw.jsonl")
        with open(cls.raw_path, "wb") as f:
            f.write(b"\n".join(cls.raw) + b"\n")
        for args in (["ingest", "-q", "-o", cls.clean, *SAMPLES],
                     ["vocab", "build", "-o", cls.vocab, "--field", VOCAB_FIELDS, "--min-count", "2", cls.clean],
                     ["encode", "--vocab", cls.vocab, "-o", cls.encoded, cls.clean]):
            p = run(BIDNORM, *args)
            assert p.returncode == 0, p.stderr.decode()
        cls.meta, cls.records = read_avro(cls.encoded)
        p = run(SERVE_EXAMPLE, "--vocab", cls.vocab, stdin=b"\n".join(cls.raw))
        assert p.returncode == 0, p.stderr.decode()
        cls.served_text = p.stdout
        cls.served = [json.loads(x) for x in p.stdout.splitlines()]

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def path(self, name):
        return os.path.join(self.dir, name)

    def bidnorm(self, *args, expect=0, stdin=None):
        p = run(BIDNORM, *args, stdin=stdin, cwd=self.dir)
        self.assertEqual(p.returncode, expect, p.stderr.decode())
        return p

    # ---- encode(ingest(raw)) == serving(raw) ----

    def test_encode_of_ingest_equals_the_serving_api_on_every_sample_line(self):
        accepted = [s for s in self.served if "rejected" not in s]
        rejected = [s for s in self.served if "rejected" in s]
        with open(self.path("clean.rejects.jsonl"), "rb") as f:
            ingest_rejects = [json.loads(x) for x in f.read().splitlines()]
        self.assertEqual(len(self.served), len(self.raw))
        self.assertEqual(len(accepted), len(self.records))
        self.assertGreater(len(self.records), 6000)
        # the same lines are rejected, for the same reasons
        self.assertEqual([(r["reason"], r["field"] or "", r["message"]) for r in ingest_rejects],
                         [(s["rejected"], s["field"], s["message"]) for s in rejected])
        for rec, srv in zip(self.records, accepted):
            got = {k: millis(v) for k, v in rec.items()}
            self.assertEqual(got, srv)
        # lists always start with the padding index 0; some elements and bundles are out of vocabulary
        self.assertTrue(all(r["installed_apps"][0] == 0 for r in self.records))
        self.assertTrue(any(r["installed_apps"] == [0] for r in self.records))
        self.assertTrue(any(0 in r["installed_apps"][1:] for r in self.records))
        self.assertTrue(any(r["app_bundle"] == 0 for r in self.records))
        self.assertTrue(any(r["device_ctr"] == -1 for r in self.records))

    @unittest.skipIf(os.environ.get("BIDNORM_SANITIZED") == "1",
                     "a sanitizer-built library cannot be loaded into an uninstrumented python")
    def test_ctypes_example_prints_what_the_c_example_prints(self):
        lib = shared_library()
        p = run(sys.executable, os.path.join(SOURCE, "tools", "serve_ctypes.py"), "--lib", lib,
                "--vocab", self.vocab, stdin=b"\n".join(self.raw))
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertEqual(p.stdout, self.served_text)

    def test_encoded_schema_and_metadata(self):
        schema = json.loads(self.meta["avro.schema"])
        self.assertEqual((schema["namespace"], schema["name"]), ("ads.bidlog", "ImpressionEncoded"))
        types = {f["name"]: f["type"] for f in schema["fields"]}
        self.assertEqual(types["app_bundle"], "int")
        self.assertEqual(types["installed_apps"], {"type": "array", "items": "int"})
        self.assertEqual(types["event_id"], ["null", "string"])
        self.assertEqual(types["publisher"], ["null", "string"])
        self.assertEqual(types["bid_floor"], ["null", "double"])
        self.assertEqual(types["device_ctr"], "double")
        self.assertEqual(types["ts"], {"type": "long", "logicalType": "timestamp-millis"})
        self.assertEqual(types["features"], {"type": "map", "values": "double"})
        self.assertEqual(types["click"], ["null", "int"])
        self.assertEqual(self.meta["avro.codec"], b"zstandard")
        clean_meta, _ = read_avro(self.clean)
        self.assertEqual(self.meta["bidnorm.rules.sha256"], clean_meta["bidnorm.rules.sha256"])
        self.assertEqual(len(self.meta["bidnorm.vocab.sha256"]), 64)
        self.assertEqual(json.loads(self.meta["bidnorm.sources"]), [self.clean])

    def test_encode_codecs_and_two_inputs(self):
        out = self.path("two.avro")
        self.bidnorm("encode", "-q", "--vocab", self.vocab, "--codec", "deflate", "-o", out, self.clean, self.clean)
        meta, recs = read_avro(out)
        self.assertEqual(meta["avro.codec"], b"deflate")
        self.assertEqual(len(recs), 2 * len(self.records))
        self.assertEqual(recs[len(self.records)], self.records[0])

    def test_encode_errors(self):
        out = self.path("err.avro")
        p = self.bidnorm("encode", "-o", out, self.clean, expect=2)
        self.assertEqual(p.stderr.decode(), "bidnorm encode: --vocab DIR is required\nTry 'bidnorm encode --help'.\n")
        p = self.bidnorm("encode", "--vocab", self.vocab, self.clean, expect=2)
        self.assertEqual(p.stderr.decode(), "bidnorm encode: -o OUT.avro is required\nTry 'bidnorm encode --help'.\n")
        p = self.bidnorm("encode", "--vocab", self.vocab, "-o", out, expect=2)
        self.assertEqual(p.stderr.decode(), "bidnorm encode: no input given\nTry 'bidnorm encode --help'.\n")
        p = self.bidnorm("encode", "--vocab", "nope", "-o", out, self.clean, expect=5)
        self.assertEqual(p.stderr.decode(),
                         "bidnorm encode: nope: cannot open the vocabulary directory: No such file or directory\n")
        p = self.bidnorm("encode", "--vocab", self.vocab, "-o", out, "missing.avro", expect=5)
        self.assertEqual(p.stderr.decode(), "bidnorm encode: missing.avro: cannot open: No such file or directory\n")
        # a vocabulary token that is not normalized: the same check as `bidnorm vocab lint`
        bad = self.path("badvocab")
        shutil.copytree(self.vocab, bad)
        with open(os.path.join(bad, "app_bundle.txt"), "a") as f:
            f.write("Com.Foo\n")
        with open(os.path.join(bad, "app_bundle.txt")) as f:
            n = len(f.read().splitlines())
        # A vocabulary that does not fit the rules is bad input: exit 5, as in the exit-code table.
        p = self.bidnorm("encode", "--vocab", "badvocab", "-o", out, self.clean, expect=5)
        self.assertEqual(p.stderr.decode(), "bidnorm encode: badvocab/app_bundle.txt:%d: token \"Com.Foo\" is not "
                         "normalized (normalizes to \"com.foo\")\n" % n)
        # input written with other rules
        other = self.path("other.avro")
        rules = os.path.join(SOURCE, "rules", "bidlog.yaml")
        with open(rules) as f:
            text = f.read()
        with open(self.path("other.yaml"), "w") as f:
            f.write(text + "\n# another revision\n")
        self.bidnorm("ingest", "-q", "--rules", "other.yaml", "-o", other, SAMPLES[0])
        sha = read_avro(other)[0]["bidnorm.rules.sha256"].decode()
        want = read_avro(self.clean)[0]["bidnorm.rules.sha256"].decode()
        p = self.bidnorm("encode", "--rules", "bidlog", "--vocab", self.vocab, "-o", out, other, expect=2)
        self.assertEqual(p.stderr.decode(), "bidnorm encode: %s: written with other rules (other.yaml, sha256 %s) "
                         "than --rules bidlog (sha256 %s): leave out --rules to use the input's own rules (where "
                         "mixing is allowed, --allow-mixed-rules accepts them)\n" % (other, sha[:12], want[:12]))
        # without --rules, the rule file the header names (still the same bytes) is the one; the vocabulary was
        # built from data of the default rules, so it is refused unless the rules changed deliberately
        p = self.bidnorm("encode", "--vocab", self.vocab, "-o", out, other, expect=2)
        self.assertEqual(p.stderr.decode(), "bidnorm encode: %s/manifest.json: vocabulary built from data ingested "
                         "with other rules (<default>, sha256 %s) than the rules loaded (other.yaml, sha256 %s): the "
                         "same raw text can give tokens the vocabulary does not hold (training/serving skew, silently "
                         "out of vocabulary); load the rules the data were ingested with, or build the vocabulary "
                         "again from data ingested with these; if the rules changed deliberately, allow_other_rules "
                         "(--allow-other-rules) loads it anyway\n" % (self.vocab, want[:12], sha[:12]))
        self.assertFalse(os.path.exists(out))
        self.bidnorm("encode", "-q", "--allow-other-rules", "--vocab", self.vocab, "-o", out, other)
        self.assertEqual(read_avro(out)[0]["bidnorm.rules.sha256"].decode(), sha)
        os.unlink(out)
        p = self.bidnorm("encode", "--vocab", self.vocab, "-o", out, self.clean, other, expect=2)
        self.assertEqual(p.stderr.decode(), "bidnorm encode: %s: written with other rules (other.yaml, sha256 %s) "
                         "than %s (<default>, sha256 %s): the inputs must share their rules (where mixing is allowed, "
                         "pass --allow-mixed-rules and --rules FILE|NAME)\n" % (other, sha[:12], self.clean, want[:12]))
        # a corrupt input: nothing published, no temporary file left
        with open(self.clean, "rb") as f:
            data = bytearray(f.read())
        data[len(data) // 2] ^= 0xFF
        with open(self.path("corrupt.avro"), "wb") as f:
            f.write(data)
        p = self.bidnorm("encode", "--vocab", self.vocab, "-o", out, "corrupt.avro", expect=5)
        self.assertTrue(p.stderr.decode().startswith("bidnorm encode: corrupt.avro: corrupt Avro block at byte offset "),
                        p.stderr.decode())
        self.assertFalse(os.path.exists(out))
        self.assertEqual([x for x in os.listdir(self.dir) if ".tmp-" in x], [])

    # ---- parity ----

    def parity_log(self, name, edit=None):
        """A serving log of the samples: {"raw", "encoded"} per accepted line, edit(raw, encoded) applied."""
        lines, edited = [], 0
        for raw, enc in zip(self.raw, self.served):
            if "rejected" in enc:
                continue
            encoded = json.dumps(enc, ensure_ascii=False).encode()
            if not edit:
                # the raw line as serving received it, invalid UTF-8 and all
                lines.append(b'{"raw": ' + raw + b', "encoded": ' + encoded + b"}")
                continue
            r = json.loads(raw.decode("utf-8", "surrogateescape"))
            enc = dict(enc)
            if edit(r, enc):
                edited += 1
            lines.append(json.dumps({"raw": r, "encoded": enc}, ensure_ascii=False).encode("utf-8", "surrogateescape"))
        with open(self.path(name), "wb") as f:
            f.write(b"\n".join(lines) + b"\n")
        return name, edited, len(lines)

    def parity(self, log, *extra, expect=0):
        p = self.bidnorm("parity", "--vocab", self.vocab, "--json", *extra, log, expect=expect)
        return json.loads(p.stdout)

    def assert_only(self, report, feature, mismatched):
        for f in report["features"]:
            want = mismatched if f["name"] == feature else 0
            self.assertEqual(f["mismatched"], want, f["name"])

    def test_parity_of_the_serving_api_with_itself_is_exact(self):
        log, _, n = self.parity_log("same.jsonl")
        r = self.parity(log)
        self.assertEqual((r["records"], r["rejected"], r["failed"]), (n, 0, False))
        self.assertTrue(all(f["compared"] == n for f in r["features"]), r["features"])
        self.assertEqual(r["not_features"], [])
        p = self.bidnorm("parity", "--vocab", self.vocab, log)
        self.assertIn("app_bundle               categorical             %d          0  0.000000\n" % n,
                      p.stdout.decode())
        self.assertTrue(p.stdout.decode().endswith("\nok: max mismatch rate 0\n"))

    def test_parity_reads_a_gzip_log_like_its_text_and_refuses_xz_with_its_own_advice(self):
        log, _, n = self.parity_log("same-gz.jsonl")
        with open(self.path(log + ".gz"), "wb") as f:
            f.write(run("gzip", "-c", log, cwd=self.dir).stdout)
        self.assertEqual(self.parity(log + ".gz"), self.parity(log))
        self.assertEqual(self.parity(log + ".gz")["records"], n)
        with open(self.path(log + ".xz"), "wb") as f:
            f.write(run("xz", "-c", log, cwd=self.dir).stdout)
        p = self.bidnorm("parity", "--vocab", self.vocab, log + ".xz", expect=5)
        self.assertIn("same-gz.jsonl.xz: xz-compressed input is not supported (decompress it first: "
                      "xz -dc same-gz.jsonl.xz | bidnorm parity --vocab DIR -)", p.stderr.decode())

    def test_parity_incident2_list_padding(self):
        def edit(raw, enc):
            if enc["installed_apps"] != [0]:
                return False
            enc["installed_apps"] = []   # serving sent the empty tensor (or padded with a real app)
            return True
        log, edited, n = self.parity_log("incident2.jsonl", edit)
        self.assertGreater(edited, 10)
        r = self.parity(log, expect=3)
        self.assert_only(r, "installed_apps", edited)
        f = next(f for f in r["features"] if f["name"] == "installed_apps")
        self.assertEqual(f["compared"], n)
        self.assertEqual((f["examples"][0]["served"], f["examples"][0]["expected"]), ([], [0]))

        def unpadded(raw, enc):
            enc["installed_apps"] = enc["installed_apps"][1:] or [0]
            return True
        log, _, n = self.parity_log("incident2b.jsonl", unpadded)
        r = self.parity(log, expect=3)
        self.assert_only(r, "installed_apps", n - edited)
        ex = next(f for f in r["features"] if f["name"] == "installed_apps")["examples"][0]
        self.assertEqual(ex["expected"], [0] + ex["served"])

    def test_parity_incident7_ratio_divide_by_zero(self):
        def edit(raw, enc):
            d = raw.get("device")
            if isinstance(d, dict) and d.get("impressions") == 0:
                enc["device_ctr"] = 0.0   # serving's divide-by-zero policy
                return True
            return False
        log, edited, n = self.parity_log("incident7.jsonl", edit)
        self.assertGreater(edited, 0)
        r = self.parity(log, expect=3)
        self.assert_only(r, "device_ctr", edited)
        f = next(f for f in r["features"] if f["name"] == "device_ctr")
        self.assertEqual((f["examples"][0]["served"], f["examples"][0]["expected"]), (0, -1))
        self.assertEqual(f["kind"], "numeric")
        # under a looser threshold the same log passes
        r = self.parity(log, "--max-mismatch-rate", "0.5")
        self.assertFalse(r["failed"])

    def test_parity_incident8_bundle_suffix_served_as_oov(self):
        def edit(raw, enc):
            app = raw.get("app")
            bundle = app.get("bundle") if isinstance(app, dict) else None
            if enc["app_bundle"] == 0 or not isinstance(bundle, str) or not re.fullmatch(r"[a-z][a-z0-9_]*(\.[a-z0-9_]+)+", bundle):
                return False
            raw["app"]["bundle"] = raw["app"]["bundle"] + "$hl=en_US"  # the dirty value serving saw
            enc["app_bundle"] = 0                                       # ... and looked up as is: OOV
            return True
        log, edited, n = self.parity_log("incident8.jsonl", edit)
        self.assertGreater(edited, 100)
        r = self.parity(log, expect=3)
        self.assert_only(r, "app_bundle", edited)
        f = next(f for f in r["features"] if f["name"] == "app_bundle")
        ex = f["examples"][0]
        self.assertEqual(ex["served"], 0)
        self.assertGreater(ex["expected"], 0)
        self.assertTrue(ex["raw"].endswith("$hl=en_US"))
        self.assertEqual(ex["trace"][0], 'input        "%s"' % ex["raw"])
        self.assertTrue(any(t.startswith("first_match ") for t in ex["trace"]), ex["trace"])
        p = self.bidnorm("parity", "--vocab", self.vocab, log, expect=3)
        self.assertIn("app_bundle: %d of %d mismatched; first examples:\n" % (edited, n), p.stdout.decode())
        self.assertEqual(p.stderr.decode(), "bidnorm parity: FAILED: above --max-mismatch-rate (0): feature mismatches\n")

    def test_parity_errors(self):
        p = self.bidnorm("parity", "x.jsonl", expect=2)
        self.assertEqual(p.stderr.decode(), "bidnorm parity: --vocab DIR is required\nTry 'bidnorm parity --help'.\n")
        p = self.bidnorm("parity", "--vocab", self.vocab, expect=2)
        self.assertEqual(p.stderr.decode(), "bidnorm parity: no LOG given\nTry 'bidnorm parity --help'.\n")
        p = self.bidnorm("parity", "--vocab", self.vocab, "--max-mismatch-rate", "2", "x", expect=2)
        self.assertEqual(p.stderr.decode(), "bidnorm parity: --max-mismatch-rate must be a number from 0 to 1, "
                         "not '2'\nTry 'bidnorm parity --help'.\n")
        p = self.bidnorm("parity", "--vocab", self.vocab, "missing.jsonl", expect=5)
        self.assertEqual(p.stderr.decode(), "bidnorm parity: missing.jsonl: cannot open: No such file or directory\n")
        # a line that is not a parity record is listed and counted, and the check goes on
        with open(self.path("bad.jsonl"), "w") as f:
            f.write('{"raw": {}, "encoded": {}}\n{"raw": {}}\n{"raw": {}, "enc\n{"raw": {}, "encoded": {}}\n')
        p = self.bidnorm("parity", "--vocab", self.vocab, "bad.jsonl", expect=3)
        out = p.stdout.decode()
        self.assertIn("2 records, 2 rejected by the rules, 2 malformed lines (0.500000 of the lines);", out)
        self.assertIn("malformed lines, not parity records (not compared): 2; first examples:\n"
                      "  bad.jsonl:2: expected an object with \"raw\" and \"encoded\" objects\n"
                      "  bad.jsonl:3:17: invalid JSON: unterminated string\n", out)
        p = self.bidnorm("parity", "--vocab", self.vocab, "--json", "--max-mismatch-rate", "1", "bad.jsonl")
        r = json.loads(p.stdout)
        self.assertEqual((r["malformed_lines"], r["malformed_rate"], r["failed"]), (2, 0.5, False))
        self.assertEqual(r["malformed_examples"][1], {"where": "bad.jsonl:3:17", "reason": "invalid JSON: "
                                                      "unterminated string", "line": '{"raw": {}, "enc'})
        # longer than twice the rules' line limit (1 MiB) plus 64 KiB: malformed, not read whole
        long_line = '{"raw": {"x": "%s"}, "encoded": {}}' % ("y" * (3 << 20))
        with open(self.path("long.jsonl"), "w") as f:
            f.write('{"raw": {}, "encoded": {}}\n' + long_line + "\n")
        p = self.bidnorm("parity", "--vocab", self.vocab, "--json", "--max-mismatch-rate", "1", "long.jsonl")
        r = json.loads(p.stdout)
        self.assertEqual((r["records"], r["malformed_lines"]), (1, 1))
        self.assertEqual(r["malformed_examples"][0]["where"], "long.jsonl:2")
        self.assertEqual(r["malformed_examples"][0]["reason"], "line of %d bytes is too long for a parity record"
                         % len(long_line))

    # ---- latency ----

    def test_bench_mode_reports_percentiles(self):
        p = run(SERVE_EXAMPLE, "--vocab", self.vocab, "--bench", "20000", stdin=b"\n".join(self.raw))
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        r = json.loads(p.stdout)
        self.assertEqual(r["calls"], 20000)
        self.assertLessEqual(r["p50_us"], r["p99_us"])
        self.assertLessEqual(r["p99_us"], r["p999_us"])


if __name__ == "__main__":
    unittest.main()


OPENRTB_SAMPLES = sorted(glob.glob(os.path.join(SOURCE, "samples", "openrtb-*.jsonl.zst")))
OPENRTB_VOCAB = "app_bundle,site_domain,device_type,connection_type,country,bcat,user_segments,deal_ids,ad_formats"


class ServeOpenRtb(unittest.TestCase):
    """encode(ingest(raw)) == serve(raw) for every row of the OpenRTB sample: one row per imp, from C and ctypes."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        d = cls.dir = cls.tmp.name
        cls.clean, cls.vocab, cls.encoded = (os.path.join(d, x) for x in ("clean.avro", "vocab", "encoded.avro"))
        cls.raw = []
        for path in OPENRTB_SAMPLES:
            with open(path, "rb") as f:
                data = zstandard.ZstdDecompressor().stream_reader(f, read_across_frames=True).read()
            cls.raw += [x.rstrip(b"\r") for x in data.split(b"\n") if x.strip(b" \t\r")]
        for args in (["ingest", "-q", "--rules", "openrtb", "-o", cls.clean, *OPENRTB_SAMPLES],
                     ["vocab", "build", "--rules", "openrtb", "-o", cls.vocab, "--field", OPENRTB_VOCAB,
                      "--min-count", "2", cls.clean],
                     ["encode", "--rules", "openrtb", "--vocab", cls.vocab, "-o", cls.encoded, cls.clean]):
            p = run(BIDNORM, *args)
            assert p.returncode == 0, p.stderr.decode()
        _, cls.records = read_avro(cls.encoded)
        p = run(SERVE_EXAMPLE, "--rules", "openrtb", "--vocab", cls.vocab, stdin=b"\n".join(cls.raw))
        assert p.returncode == 0, p.stderr.decode()
        cls.served_text = p.stdout
        cls.served = [json.loads(x) for x in p.stdout.splitlines()]

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_every_row_served_equals_encode_of_ingest(self):
        rows = [s for s in self.served if "rejected" not in s]
        rejected = [s for s in self.served if "rejected" in s]
        with open(os.path.join(self.dir, "clean.rejects.jsonl"), "rb") as f:
            ingest_rejects = [json.loads(x) for x in f.read().splitlines()]
        self.assertGreater(len(self.records), len(self.raw))  # more rows than requests
        self.assertEqual(len(rows), len(self.records))
        self.assertEqual([(r["reason"], r["message"]) for r in ingest_rejects],
                         [(s["rejected"], s["message"]) for s in rejected])
        for rec, srv in zip(self.records, rows):
            srv = dict(srv)
            self.assertEqual(srv.pop("row"), rec["imp_index"])
            self.assertEqual({k: millis(v) for k, v in rec.items()}, srv)
        self.assertTrue(any(r["imp_index"] == 2 for r in self.records))
        self.assertTrue(all(r["user_segments"][0] == 0 for r in self.records))

    @unittest.skipIf(os.environ.get("BIDNORM_SANITIZED") == "1",
                     "a sanitizer-built library cannot be loaded into an uninstrumented python")
    def test_ctypes_prints_what_the_c_example_prints(self):
        p = run(sys.executable, os.path.join(SOURCE, "tools", "serve_ctypes.py"), "--lib", shared_library(),
                "--rules", "openrtb", "--vocab", self.vocab, stdin=b"\n".join(self.raw))
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertEqual(p.stdout, self.served_text)

    def test_parity_checks_the_row_each_vector_was_served_for(self):
        served = iter(self.served)
        lines = []
        for raw in self.raw:
            try:
                request = json.loads(raw.decode("utf-8", "surrogateescape"))
            except ValueError:
                next(served)
                continue
            first = next(served)
            if "rejected" in first:  # the request as a whole: one line
                continue
            for k in range(len(request["imp"])):
                s = dict(first if k == 0 else next(served))
                row = s.pop("row")
                if row == 1:  # served the wrong vector for the second imp: row 0's
                    s["imp_index"] = 0
                lines.append(json.dumps({"raw": request, "row": row, "encoded": s}, ensure_ascii=False)
                             .encode("utf-8", "surrogateescape"))
        log = os.path.join(self.dir, "parity.jsonl")
        with open(log, "wb") as f:
            f.write(b"\n".join(lines) + b"\n{\"raw\": {\"id\": \"x\", \"imp\": [{}]}, \"row\": 1, \"encoded\": {}}\n"
                    b"{\"raw\": {\"id\": \"x\", \"imp\": [{}]}, \"row\": -1, \"encoded\": {}}\n")
        p = run(BIDNORM, "parity", "--rules", "openrtb", "--vocab", self.vocab, "--json", "--max-mismatch-rate", "1",
                log)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        report = json.loads(p.stdout)
        feats = {f["name"]: f for f in report["features"]}
        second_rows = sum(1 for x in lines if b'"row": 1,' in x)
        self.assertGreater(second_rows, 100)
        self.assertEqual(feats["imp_index"]["mismatched"], second_rows)
        self.assertEqual(sum(f["mismatched"] for f in report["features"]), second_rows)
        self.assertEqual(report["malformed_lines"], 2)
        self.assertEqual([x["reason"] for x in report["malformed_examples"]],
                         ["\"row\" 1 is past the request's last row (it has 1)",
                          "\"row\" must be a row index (a whole number from 0)"])
