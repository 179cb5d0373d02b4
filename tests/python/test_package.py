"""The bidnorm Python package: serving API (Model, Encoder), normalize(), errors, finding the binary and library."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import unittest

from common import BIDNORM, LIB, SAMPLE_12, SANITIZED, SOURCE, bidnorm

import bidnorm as bn
from bidnorm import _locate


@unittest.skipIf(SANITIZED, "a sanitizer-built library cannot be loaded into an uninstrumented python")
class Serving(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        d = cls.tmp.name
        cls.avro = os.path.join(d, "h12.avro")
        cls.vocab = os.path.join(d, "vocab")
        assert bidnorm("ingest", "-q", "-o", cls.avro, SAMPLE_12).returncode == 0
        assert bidnorm("vocab", "build", "-q", "-o", cls.vocab, "--field", "app_bundle,installed_apps,country",
                       "--min-count", "2", cls.avro).returncode == 0
        cls.raw = subprocess.run(["zstd", "-dc", SAMPLE_12], capture_output=True, check=True).stdout.splitlines()[:300]

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_encoder_gives_what_bidnorm_encode_gives(self):
        # the reference: bidnorm encode over ingest's output of the same lines
        d = self.tmp.name
        raw = os.path.join(d, "raw.jsonl")
        with open(raw, "wb") as f:
            f.write(b"\n".join(self.raw) + b"\n")
        clean, enc = os.path.join(d, "clean.avro"), os.path.join(d, "enc.avro")
        self.assertEqual(bidnorm("ingest", "-q", "--max-reject-rate", "1", "-o", clean, raw).returncode, 0)
        self.assertEqual(bidnorm("encode", "-q", "--vocab", self.vocab, "-o", enc, clean).returncode, 0)
        sys.path.insert(0, os.path.join(SOURCE, "tests", "e2e"))
        from e2e import read_records  # pylint: disable=import-outside-toplevel
        want = read_records(enc)
        with bn.Model(self.vocab) as model, bn.Encoder(model) as encoder:
            got, rejected = [], 0
            for line in self.raw:
                try:
                    got.append(encoder.encode(line))
                except bn.Rejected:
                    rejected += 1
        self.assertEqual(len(got), len(want))
        self.assertEqual(len(got) + rejected, len(self.raw))
        for g, w in zip(got, want):
            w = {k: (int(v.timestamp() * 1000 + 0.5) if hasattr(v, "timestamp") else v) for k, v in w.items()}
            self.assertEqual(g, w)
        self.assertTrue(all(g["installed_apps"][0] == 0 for g in got))

    def test_a_rejected_request_carries_the_reject_fields(self):
        with bn.Model(self.vocab) as model, bn.Encoder(model) as encoder:
            with self.assertRaises(bn.Rejected) as cm:
                encoder.encode(b'{"event_id": "e1"}')
            e = cm.exception
            self.assertEqual((e.code, e.reason, e.field), (-6, "missing_required", "ts"))
            self.assertEqual(e.message, "missing required field")
            with self.assertRaises(bn.Rejected) as cm:
                encoder.encode(b'{"event_id": ')
            self.assertEqual(cm.exception.reason, "invalid_json")
            self.assertIsInstance(cm.exception, bn.BidnormError)

    def test_model_errors_and_threads(self):
        with self.assertRaises(bn.BidnormError) as cm:
            bn.Model(os.path.join(self.tmp.name, "nowhere"))
        self.assertEqual(cm.exception.code, -3)
        self.assertEqual(cm.exception.exit_code, 5)
        self.assertTrue(str(cm.exception).startswith(os.path.join(self.tmp.name, "nowhere")), str(cm.exception))
        with bn.Model(self.vocab) as model:
            self.assertGreater(model.vocab_size("app_bundle"), 10)
            encoder = bn.Encoder(model)
            errors = []
            t = threading.Thread(target=lambda: errors.append(self.assertRaises(bn.BidnormError, encoder.encode,
                                                                                self.raw[0])))
            t.start()
            t.join()
            encoder.close()

    def test_a_vocabulary_of_another_text_repair_version_is_refused_with_the_librarys_message(self):
        # Serving tokens with another repair than the one that made the vocabulary shifts them silently.
        old = os.path.join(self.tmp.name, "vocab-repair1")
        shutil.copytree(self.vocab, old)
        manifest = os.path.join(old, "manifest.json")
        with open(manifest) as f:
            m = json.load(f)
        self.assertEqual(m["text_repair"], "2")
        m["text_repair"] = "1"
        with open(manifest, "w") as f:
            json.dump(m, f)
        with self.assertRaises(bn.BidnormError) as cm:
            bn.Model(old)
        want = ("vocabulary built with text repair version '1', but this bidnorm repairs text with version '2': the "
                "same raw text gives other tokens (training/serving skew); build the vocabulary again from data "
                "ingested with this bidnorm")
        self.assertEqual((cm.exception.code, cm.exception.exit_code), (bn.errors.ECORRUPT, 5))
        self.assertEqual(cm.exception.source, manifest)
        self.assertEqual(cm.exception.message, want)
        self.assertEqual(str(cm.exception), manifest + ": " + want)

    def test_a_vocabulary_of_other_rules_is_refused_unless_allowed(self):
        # Tokens the ingest rules made can be fixed points of other rules too: lint passes, serving misses them.
        with bn.Rules("openrtb") as openrtb, bn.Rules() as default:
            with self.assertRaises(bn.BidnormError) as cm:
                bn.Model(self.vocab, openrtb)
            manifest = os.path.join(self.vocab, "manifest.json")
            want = ("vocabulary built from data ingested with other rules (<default>, sha256 %s) than the rules loaded "
                    "(<openrtb>, sha256 %s): the same raw text can give tokens the vocabulary does not hold "
                    "(training/serving skew, silently out of vocabulary); load the rules the data were ingested with, "
                    "or build the vocabulary again from data ingested with these; if the rules changed deliberately, "
                    "allow_other_rules (--allow-other-rules) loads it anyway" % (default.sha256[:12],
                                                                                openrtb.sha256[:12]))
            self.assertEqual((cm.exception.code, cm.exception.exit_code), (bn.errors.EUSAGE, 2))
            self.assertEqual((cm.exception.source, cm.exception.message), (manifest, want))
            # deliberately: the country vocabulary alone fits the openrtb rules (which have a field of that name)
            country = os.path.join(self.tmp.name, "vocab-country")
            os.mkdir(country)
            for name in ("country.txt", "manifest.json"):
                shutil.copy(os.path.join(self.vocab, name), country)
            with self.assertRaises(bn.BidnormError):
                bn.Model(country, openrtb)
            with bn.Model(country, openrtb, allow_other_rules=True) as model, bn.Model(self.vocab) as own:
                self.assertEqual(model.vocab_size("country"), own.vocab_size("country"))
                self.assertGreater(model.vocab_size("country"), 0)

    def test_rules_of_a_vocabulary_are_those_its_manifest_records(self):
        with bn.Rules(vocab=self.vocab) as rules, bn.Rules() as default, bn.Rules("openrtb") as openrtb:
            self.assertEqual(rules.sha256, default.sha256)
            with bn.Rules("openrtb", vocab=self.vocab) as given:     # --rules stays an explicit choice
                self.assertEqual(given.sha256, openrtb.sha256)
        mixed = os.path.join(self.tmp.name, "vocab-mixed")
        shutil.copytree(self.vocab, mixed)
        manifest = os.path.join(mixed, "manifest.json")
        with open(manifest) as f:
            m = json.load(f)
        m["rules_sha256"] = "mixed"
        with open(manifest, "w") as f:
            json.dump(m, f)
        with self.assertRaises(bn.BidnormError) as cm:
            bn.Rules(vocab=mixed)
        self.assertEqual((cm.exception.code, cm.exception.source, cm.exception.message),
                         (bn.errors.EUSAGE, manifest, "built from inputs of several rules (rules_sha256 'mixed'): "
                          "pass --rules FILE|NAME with the rules to lint against"))

    def test_normalize(self):
        self.assertEqual(bn.normalize("app_bundle", "com.foo$hl=en_US"), "com.foo")
        self.assertEqual(bn.normalize("app_bundle", "https://play.google.com/store/apps/details?id=com.x.y"), "com.x.y")
        self.assertEqual(bn.normalize("city", "SÃ£o Paulo"), "São Paulo")
        self.assertIsNone(bn.normalize("app_bundle", "not a bundle!"))
        # the same as the command line
        p = bidnorm("normalize", "--field", "country", "--json", " fr\u200b")
        self.assertEqual(bn.normalize("country", " fr\u200b"), json.loads(p.stdout))
        with self.assertRaises(bn.BidnormError) as cm:
            bn.normalize("nope", "x")
        self.assertEqual((cm.exception.code, cm.exception.message), (-1, "no field 'nope' in the rules"))
        with bn.Normalizer() as n:
            self.assertEqual([n.normalize("country", c) for c in ("us", "De")], ["US", "DE"])

    def test_rules_file_errors_carry_file_and_line(self):
        bad = os.path.join(self.tmp.name, "bad.yaml")
        with open(bad, "w") as f:
            f.write("fields:\n  - name: x\n    type: nosuchtype\n")
        with self.assertRaises(bn.BidnormError) as cm:
            bn.Rules(bad)
        e = cm.exception
        self.assertEqual((e.code, e.exit_code, e.source), (-5, 4, bad))
        self.assertGreater(e.line, 0)


@unittest.skipIf(SANITIZED, "a sanitizer-built library cannot be loaded into an uninstrumented python")
class Rows(unittest.TestCase):
    def test_rules_with_rows_encode_one_record_per_imp(self):
        sample = os.path.join(SOURCE, "samples", "openrtb-2026-11-20T12.jsonl.zst")
        raw = subprocess.run(["zstd", "-dc", sample], capture_output=True, check=True).stdout.splitlines()
        with tempfile.TemporaryDirectory() as d:
            avro, vocab = os.path.join(d, "o.avro"), os.path.join(d, "v")
            self.assertEqual(bidnorm("ingest", "-q", "--rules", "openrtb", "-o", avro, sample).returncode, 0)
            self.assertEqual(bidnorm("vocab", "build", "-q", "--rules", "openrtb", "-o", vocab, "--field",
                                     "app_bundle", avro).returncode, 0)
            # without rules, the model loads those the vocabulary's manifest records: openrtb
            with bn.Model(vocab) as model, bn.Rules("openrtb") as openrtb, bn.Model(vocab, openrtb) as given:
                self.assertEqual(model.rules.sha256, openrtb.sha256)
                self.assertTrue(model.rules.has_rows)
                def rows_of(encoder):
                    got = []
                    for line in raw[:100]:
                        try:
                            got.append([r if isinstance(r, dict) else r.reason for r in encoder.encode_rows(line)])
                        except bn.Rejected as r:
                            got.append(r.reason)
                    return got
                with bn.Encoder(model) as enc, bn.Encoder(given) as enc_given:
                    served = rows_of(enc)
                    self.assertEqual(served, rows_of(enc_given))
                    self.assertGreater(sum(isinstance(r, list) for r in served), 50)
            # rules given stay the rules used: the default rules are refused for this vocabulary
            with bn.Rules() as default, self.assertRaises(bn.BidnormError) as cm:
                bn.Model(vocab, default)
            self.assertEqual(cm.exception.code, bn.errors.EUSAGE)
            self.assertTrue(cm.exception.message.startswith("vocabulary built from data ingested with other rules "
                                                            "(<openrtb>, sha256 "), cm.exception.message)
            with bn.Rules("openrtb") as rules, bn.Model(vocab, rules) as model, bn.Encoder(model) as enc:
                self.assertTrue(rules.has_rows)
                rows, whole = [], 0
                for line in raw[:200]:
                    try:
                        rows += enc.encode_rows(line)
                    except bn.Rejected:
                        whole += 1                     # the request as a whole (no imp, not JSON)
                self.assertGreater(len(rows) + whole, 200)     # requests with several imps
                first = next(i for i, line in enumerate(raw) if b'"imp"' in line)
                self.assertEqual(enc.encode_rows(raw[first])[0], enc.encode(raw[first]))
                self.assertIn("imp_index", enc.encode(raw[first]))
        with bn.Rules() as rules:
            self.assertFalse(rules.has_rows)


class Locate(unittest.TestCase):
    def test_environment_overrides_and_clear_errors(self):
        self.assertEqual(bn.find_binary(), BIDNORM)
        self.assertEqual(bn.find_library(), LIB)
        old = os.environ["BIDNORM_BIN"], os.environ["BIDNORM_LIB"]
        try:
            os.environ["BIDNORM_BIN"] = "/nonexistent/bidnorm"
            with self.assertRaises(FileNotFoundError) as cm:
                bn.find_binary()
            self.assertEqual(str(cm.exception), "BIDNORM_BIN=/nonexistent/bidnorm: not an executable file")
            os.environ["BIDNORM_LIB"] = "/nonexistent/libbidnorm.so"
            with self.assertRaises(FileNotFoundError) as cm:
                bn.find_library()
            self.assertEqual(str(cm.exception), "BIDNORM_LIB=/nonexistent/libbidnorm.so: no such file")
            # without the variables: the build tree beside the package
            del os.environ["BIDNORM_BIN"], os.environ["BIDNORM_LIB"]
            if os.path.dirname(BIDNORM) == os.path.join(SOURCE, "build"):
                self.assertEqual(_locate.find_binary(), BIDNORM)
                self.assertEqual(_locate.find_library(), LIB)
        finally:
            os.environ["BIDNORM_BIN"], os.environ["BIDNORM_LIB"] = old


if __name__ == "__main__":
    unittest.main()
