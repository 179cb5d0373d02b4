"""End-to-end: the commands that read ingest's Avro take the rules it was written with, vocab lint and parity take
those a vocabulary's manifest records, and serving refuses a vocabulary of other rules or another text repair
version - so a model is never built or served with the wrong rules or repair."""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

from e2e import BIDNORM, SOURCE, FolderTest, read_avro_file as read_avro

OPENRTB_SAMPLE = os.path.join(SOURCE, "samples", "openrtb-2026-11-20T12.jsonl.zst")
BIDLOG_SAMPLE = os.path.join(SOURCE, "samples", "bidlog-2026-11-20T12.jsonl.zst")
SERVE_EXAMPLE = os.path.join(os.path.abspath(os.environ.get("BIDNORM_BUILD", os.path.dirname(BIDNORM))),
                             "serve_example")


def run(*args, cwd=None):
    return subprocess.run([BIDNORM, *args], capture_output=True, cwd=cwd)


class RulesFromTheHeader(FolderTest):
    @classmethod
    def setUpClass(cls):
        cls.shared = tempfile.TemporaryDirectory()
        d = cls.shared.name
        cls.openrtb = os.path.join(d, "o.avro")
        cls.bidlog = os.path.join(d, "b.avro")
        for args in (["--rules", "openrtb", "-o", cls.openrtb, OPENRTB_SAMPLE], ["-o", cls.bidlog, BIDLOG_SAMPLE]):
            p = run("ingest", "-q", *args)
            assert p.returncode == 0, p.stderr.decode()
        cls.openrtb_sha = read_avro(cls.openrtb)[0]["bidnorm.rules.sha256"].decode()
        cls.bidlog_sha = read_avro(cls.bidlog)[0]["bidnorm.rules.sha256"].decode()

    @classmethod
    def tearDownClass(cls):
        cls.shared.cleanup()

    def ingest_with_own_rules(self):
        """m.avro, written with mine.yaml (the shipped bid-log rules plus a comment); its rules hash."""
        with open(os.path.join(SOURCE, "rules", "bidlog.yaml")) as f:
            text = f.read()
        with open(self.path("mine.yaml"), "w") as f:
            f.write(text + "\n# our revision\n")
        self.bidnorm("ingest", "-q", "--rules", "mine.yaml", "-o", "m.avro", BIDLOG_SAMPLE)
        return read_avro(self.path("m.avro"))[0]["bidnorm.rules.sha256"].decode()

    def bidnorm(self, *args, expect=0):
        p = run(*args, cwd=self.dir)
        self.assertEqual(p.returncode, expect, p.stderr.decode())
        return p

    def test_openrtb_output_needs_no_rules_option(self):
        # Before, without --rules openrtb: "no field 'user_segments' in the rules" (vocab), exit 2 (encode).
        self.bidnorm("vocab", "build", "-q", "-o", "v", "--field", "user_segments,country", self.openrtb)
        self.bidnorm("vocab", "build", "-q", "--rules", "openrtb", "-o", "w", "--field", "user_segments,country",
                     self.openrtb)
        for name in ("user_segments.txt", "country.txt", "manifest.json"):
            with open(self.path("v/" + name), "rb") as f, open(self.path("w/" + name), "rb") as g:
                got, want = f.read(), g.read()
            if name == "manifest.json":  # resources (time, memory) differ from run to run
                got, want = ({k: v for k, v in json.loads(x).items() if k != "resources"} for x in (got, want))
            self.assertEqual(got, want, name)
        with open(self.path("v/manifest.json")) as f:
            self.assertEqual(json.load(f)["rules_sha256"], self.openrtb_sha)
        self.bidnorm("encode", "-q", "--vocab", "v", "-o", "e.avro", self.openrtb)
        self.bidnorm("encode", "-q", "--rules", "openrtb", "--vocab", "v", "-o", "f.avro", self.openrtb)
        with open(self.path("e.avro"), "rb") as f, open(self.path("f.avro"), "rb") as g:
            self.assertEqual(f.read(), g.read())
        self.assertEqual(read_avro(self.path("e.avro"))[0]["bidnorm.rules.sha256"].decode(), self.openrtb_sha)
        # count and regen read ingest's output too; --where values go through the openrtb chain
        p = self.bidnorm("vocab", "count", "-o", "p", "--field", "user_segments", "--where", "country=deu",
                         self.openrtb)
        self.assertIn("note: --where 'country=deu' compares with 'DEU'", p.stderr.decode())
        self.bidnorm("vocab", "regen", "-q", "--root", "r", "--task", "t", "--field", "user_segments", self.openrtb)
        self.assertTrue(os.path.exists(self.path("r/t/current/user_segments.txt")))

    def test_rules_given_that_the_header_contradicts_are_refused(self):
        want = ("written with other rules (<openrtb>, sha256 %s) than --rules bidlog (sha256 %s): leave out --rules "
                "to use the input's own rules (where mixing is allowed, --allow-mixed-rules accepts them)\n"
                % (self.openrtb_sha[:12], self.bidlog_sha[:12]))
        for cmd in (["vocab", "build", "-o", "v", "--field", "country"], ["vocab", "count", "-o", "p", "--field",
                    "country"], ["vocab", "regen", "--root", "r", "--task", "t", "--field", "country"]):
            p = self.bidnorm(*cmd, "--rules", "bidlog", self.openrtb, expect=2)
            self.assertEqual(p.stderr.decode(), "bidnorm vocab %s: %s: %s" % (cmd[1], self.openrtb, want))
        self.bidnorm("vocab", "build", "-q", "-o", "v", "--field", "country", self.bidlog)
        p = self.bidnorm("encode", "--rules", "bidlog", "--vocab", "v", "-o", "e.avro", self.openrtb, expect=2)
        self.assertEqual(p.stderr.decode(), "bidnorm encode: %s: %s" % (self.openrtb, want))
        self.assertEqual(sorted(os.listdir(self.dir)), ["v"])
        # a data engineer who means it: --allow-mixed-rules lints against the rules given
        self.bidnorm("vocab", "build", "-q", "--rules", "bidlog", "--allow-mixed-rules", "-o", "w", "--field",
                     "country", self.openrtb)

    def test_inputs_of_different_rules(self):
        p = self.bidnorm("vocab", "build", "-o", "v", "--field", "country", self.openrtb, self.bidlog, expect=2)
        head = ("%s: written with other rules (<default>, sha256 %s) than %s (<openrtb>, sha256 %s): "
                % (self.bidlog, self.bidlog_sha[:12], self.openrtb, self.openrtb_sha[:12]))
        self.assertEqual(p.stderr.decode(), "bidnorm vocab build: " + head + "the inputs must share their rules "
                         "(where mixing is allowed, pass --allow-mixed-rules and --rules FILE|NAME)\n")
        p = self.bidnorm("vocab", "build", "-o", "v", "--allow-mixed-rules", "--field", "country", self.openrtb,
                         self.bidlog, expect=2)
        self.assertEqual(p.stderr.decode(), "bidnorm vocab build: " + head + "name the rules to use with --rules "
                         "FILE|NAME\n")
        self.bidnorm("vocab", "build", "-q", "-o", "v", "--allow-mixed-rules", "--rules", "openrtb", "--field",
                     "country", self.openrtb, self.bidlog)

    def test_merge_takes_the_rules_from_the_hashes_the_parts_keep(self):
        self.bidnorm("vocab", "count", "-q", "-o", "p1", "--field", "user_segments", self.openrtb)
        self.bidnorm("vocab", "merge", "-q", "-o", "v", "p1")
        self.bidnorm("vocab", "build", "-q", "-o", "w", "--field", "user_segments", self.openrtb)
        for name in ("user_segments.txt", "user_segments.counts.tsv"):
            with open(self.path("v/" + name), "rb") as f, open(self.path("w/" + name), "rb") as g:
                self.assertEqual(f.read(), g.read(), name)
        p = self.bidnorm("vocab", "merge", "-o", "x", "--rules", "bidlog", "p1", expect=2)
        self.assertEqual(p.stderr.decode(), "bidnorm vocab merge: %s: written with other rules (sha256 %s) than "
                         "--rules bidlog (sha256 %s): leave out --rules to use the input's own rules (where mixing is "
                         "allowed, --allow-mixed-rules accepts them)\n"
                         % (self.openrtb, self.openrtb_sha[:12], self.bidlog_sha[:12]))
        # parts of a rule file: its hash, not its name, so --rules must name it
        sha = self.ingest_with_own_rules()
        self.bidnorm("vocab", "count", "-q", "-o", "p2", "--field", "country", "m.avro")
        p = self.bidnorm("vocab", "merge", "-o", "x", "p2", expect=2)
        self.assertEqual(p.stderr.decode(), "bidnorm vocab merge: m.avro: written with rules that are not a shipped "
                         "set (sha256 %s), and partial counts do not name rule files: pass --rules FILE with the rule "
                         "file it was written with\n" % sha[:12])
        self.bidnorm("vocab", "merge", "-q", "-o", "x", "--rules", "mine.yaml", "p2")
        # parts of different rules: the merge refuses them, and with --allow-mixed-rules wants --rules
        self.bidnorm("vocab", "count", "-q", "-o", "p3", "--field", "country", self.openrtb)
        self.bidnorm("vocab", "count", "-q", "-o", "p4", "--field", "country", self.bidlog)
        p = self.bidnorm("vocab", "merge", "-o", "y", "p3", "p4", expect=2)
        self.assertIn("(use --allow-mixed-rules to combine them)", p.stderr.decode())
        p = self.bidnorm("vocab", "merge", "-o", "y", "--allow-mixed-rules", "p3", "p4", expect=2)
        self.assertEqual(p.stderr.decode(), "bidnorm vocab merge: %s: written with other rules (sha256 %s) than %s "
                         "(sha256 %s): name the rules to use with --rules FILE|NAME\n"  # inputs sorted by name
                         % (self.bidlog, self.bidlog_sha[:12], self.openrtb, self.openrtb_sha[:12]))
        self.bidnorm("vocab", "merge", "-q", "-o", "y", "--allow-mixed-rules", "--rules", "openrtb", "p3", "p4")

    def test_a_rule_file_the_header_names(self):
        sha = self.ingest_with_own_rules()
        self.bidnorm("vocab", "build", "-q", "-o", "v", "--field", "country", "m.avro")
        with open(self.path("v/manifest.json")) as f:
            self.assertEqual(json.load(f)["rules_sha256"], sha)
        # the file changed since: the data are not what these rules write
        with open(self.path("mine.yaml"), "a") as f:
            f.write("# and another\n")
        with open(self.path("mine.yaml"), "rb") as f:
            now = hashlib.sha256(f.read()).hexdigest()
        p = self.bidnorm("vocab", "build", "-o", "w", "--field", "country", "m.avro", expect=2)
        self.assertEqual(p.stderr.decode(), "bidnorm vocab build: m.avro: written with the rule file 'mine.yaml' "
                         "(sha256 %s), which has changed since (now sha256 %s): pass --rules FILE with the rule file "
                         "it was written with\n" % (sha[:12], now[:12]))
        os.unlink(self.path("mine.yaml"))
        p = self.bidnorm("encode", "--vocab", "v", "-o", "e.avro", "m.avro", expect=2)
        self.assertEqual(p.stderr.decode(), "bidnorm encode: m.avro: written with the rule file 'mine.yaml' (sha256 "
                         "%s), which cannot be read here (cannot open: No such file or directory): pass --rules FILE "
                         "with that rule file\n" % sha[:12])


class RulesAtServing(RulesFromTheHeader):
    """A vocabulary keeps the rules that ingested its data; serving other rules is refused unless allowed."""

    def skew(self, theirs, ours, manifest="v/manifest.json"):
        return ("%s: vocabulary built from data ingested with other rules (%s) than the rules loaded (%s): the same raw "
                "text can give tokens the vocabulary does not hold (training/serving skew, silently out of "
                "vocabulary); load the rules the data were ingested with, or build the vocabulary again from data "
                "ingested with these; if the rules changed deliberately, allow_other_rules (--allow-other-rules) "
                "loads it anyway\n" % (manifest, theirs, ours))

    def test_serving_other_rules_is_refused_unless_allowed(self):
        # country is a field of both rule sets, and its openrtb tokens (DEU) are what lint accepts either way
        self.bidnorm("vocab", "build", "-q", "-o", "v", "--field", "country", self.openrtb)
        with open(self.path("v/manifest.json")) as f:
            m = json.load(f)
        self.assertEqual((m["rules_sha256"], m["rules_source"]), (self.openrtb_sha, "<openrtb>"))
        openrtb, bidlog = "<openrtb>, sha256 " + self.openrtb_sha[:12], "<default>, sha256 " + self.bidlog_sha[:12]
        # encode: bid-log data (the rules from their header) against the openrtb vocabulary
        p = self.bidnorm("encode", "--vocab", "v", "-o", "e.avro", self.bidlog, expect=2)
        self.assertEqual(p.stderr.decode(), "bidnorm encode: " + self.skew(openrtb, bidlog))
        self.assertFalse(os.path.exists(self.path("e.avro")))
        self.bidnorm("encode", "-q", "--allow-other-rules", "--vocab", "v", "-o", "e.avro", self.bidlog)
        # the serving example in C: without --rules, those the manifest records (as parity); --rules is explicit
        raw = subprocess.run(["zstd", "-dc", OPENRTB_SAMPLE], capture_output=True, check=True).stdout
        raw = b"\n".join(raw.splitlines()[:20]) + b"\n"
        p = subprocess.run([SERVE_EXAMPLE, "--vocab", "v", "--rules", "openrtb"], input=raw, capture_output=True,
                           cwd=self.dir)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        served = p.stdout
        self.assertIn(b'"country":', served)
        self.assertIn(b'"row":1,', served)
        p = subprocess.run([SERVE_EXAMPLE, "--vocab", "v"], input=raw, capture_output=True, cwd=self.dir)
        self.assertEqual((p.returncode, p.stderr.decode(), p.stdout), (0, "", served))
        p = subprocess.run([SERVE_EXAMPLE, "--vocab", "v", "--rules", "bidlog"], input=b"", capture_output=True,
                           cwd=self.dir)
        self.assertEqual((p.returncode, p.stderr.decode()), (1, "serve_example: " + self.skew(openrtb, bidlog)))
        p = subprocess.run([SERVE_EXAMPLE, "--vocab", "v", "--rules", "bidlog", "--allow-other-rules"], input=b"",
                           capture_output=True, cwd=self.dir)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        if os.environ.get("BIDNORM_SANITIZED") != "1":  # an uninstrumented python cannot load a sanitized library
            lib = os.environ.get("BIDNORM_LIB") or os.path.join(os.path.dirname(SERVE_EXAMPLE), "libbidnorm.so")
            ctypes_serve = [sys.executable, os.path.join(SOURCE, "tools", "serve_ctypes.py"), "--lib", lib, "--vocab",
                            "v"]
            p = subprocess.run(ctypes_serve, input=raw, capture_output=True, cwd=self.dir)
            self.assertEqual((p.returncode, p.stdout), (0, served), p.stderr.decode())
            p = subprocess.run(ctypes_serve + ["--rules", "openrtb"], input=raw, capture_output=True, cwd=self.dir)
            self.assertEqual((p.returncode, p.stdout), (0, served), p.stderr.decode())
            p = subprocess.run(ctypes_serve + ["--rules", "bidlog"], input=b"", capture_output=True, cwd=self.dir)
            self.assertEqual((p.returncode, p.stderr.decode()), (1, "serve_ctypes.py: " + self.skew(openrtb, bidlog)))
            p = subprocess.run(ctypes_serve + ["--rules", "bidlog", "--allow-other-rules"], input=b"",
                               capture_output=True, cwd=self.dir)
            self.assertEqual(p.returncode, 0, p.stderr.decode())
        # parity takes the manifest's rules; --rules is an explicit choice, held to the same check
        with open(self.path("empty.jsonl"), "w"):
            pass
        self.bidnorm("parity", "--vocab", "v", "empty.jsonl")
        p = self.bidnorm("parity", "--rules", "bidlog", "--vocab", "v", "empty.jsonl", expect=2)
        self.assertEqual(p.stderr.decode(), "bidnorm parity: " + self.skew(openrtb, bidlog))
        self.bidnorm("parity", "--rules", "bidlog", "--allow-other-rules", "--vocab", "v", "empty.jsonl")
        # rules the manifest records but that are not here: the library's message, as parity prints it
        with open(self.path("v/manifest.json")) as f:
            m = json.load(f)
        m["rules_sha256"] = "mixed"
        with open(self.path("v/manifest.json"), "w") as f:
            json.dump(m, f)
        mixed = ("v/manifest.json: built from inputs of several rules (rules_sha256 'mixed'): pass --rules FILE|NAME "
                 "with the rules to lint against\n")
        p = subprocess.run([SERVE_EXAMPLE, "--vocab", "v"], input=b"", capture_output=True, cwd=self.dir)
        self.assertEqual((p.returncode, p.stderr.decode()), (1, "serve_example: " + mixed))
        if os.environ.get("BIDNORM_SANITIZED") != "1":
            p = subprocess.run(ctypes_serve, input=b"", capture_output=True, cwd=self.dir)
            self.assertEqual((p.returncode, p.stderr.decode()), (1, "serve_ctypes.py: " + mixed))

    def test_a_rule_file_revised_since_the_vocabulary(self):
        sha = self.ingest_with_own_rules()
        self.bidnorm("vocab", "build", "-q", "-o", "v", "--field", "app_bundle,country", "m.avro")
        with open(self.path("v/manifest.json")) as f:
            self.assertEqual(json.load(f)["rules_source"], "mine.yaml")
        self.bidnorm("encode", "-q", "--rules", "mine.yaml", "--vocab", "v", "-o", "e.avro", "m.avro")
        # the rules are revised; data ingested with the revision meet the old vocabulary
        with open(self.path("mine.yaml"), "a") as f:
            f.write("# revised: another bundle chain, say\n")
        with open(self.path("mine.yaml"), "rb") as f:
            now = hashlib.sha256(f.read()).hexdigest()
        self.bidnorm("ingest", "-q", "--rules", "mine.yaml", "-o", "n.avro", BIDLOG_SAMPLE)
        p = self.bidnorm("encode", "--vocab", "v", "-o", "f.avro", "n.avro", expect=2)
        self.assertEqual(p.stderr.decode(), "bidnorm encode: " + self.skew("mine.yaml, sha256 " + sha[:12],
                                                                           "mine.yaml, sha256 " + now[:12]))
        self.bidnorm("encode", "-q", "--allow-other-rules", "--vocab", "v", "-o", "f.avro", "n.avro")

    def test_lint_takes_the_rules_from_the_manifest(self):
        # openrtb tokens: before, lint without --rules used the bid-log rules ("no field 'user_segments' ...")
        self.bidnorm("vocab", "build", "-q", "-o", "v", "--field", "user_segments,country", self.openrtb)
        p = self.bidnorm("vocab", "lint", "v")
        self.assertEqual(p.stderr.decode(), "bidnorm vocab lint: ok\n")
        # --rules stays an explicit choice
        p = self.bidnorm("vocab", "lint", "v", "--rules", "bidlog", expect=1)
        self.assertIn("v/user_segments.txt: field 'user_segments' cannot be checked against the rules: no field "
                      "'user_segments' in the rules\n", p.stdout.decode())
        self.bidnorm("vocab", "lint", "-q", "v", "--rules", "openrtb")
        # a rule file of one's own: found again by its name while it is unchanged
        sha = self.ingest_with_own_rules()
        self.bidnorm("vocab", "build", "-q", "-o", "w", "--field", "country", "m.avro")
        self.bidnorm("vocab", "lint", "-q", "w")
        with open(self.path("mine.yaml"), "a") as f:
            f.write("# and another\n")
        with open(self.path("mine.yaml"), "rb") as f:
            now = hashlib.sha256(f.read()).hexdigest()
        p = self.bidnorm("vocab", "lint", "w", expect=2)
        self.assertEqual(p.stderr.decode(), "bidnorm vocab lint: w/manifest.json: written with the rule file "
                         "'mine.yaml' (sha256 %s), which has changed since (now sha256 %s): pass --rules FILE with the "
                         "rule file it was written with\n" % (sha[:12], now[:12]))
        os.unlink(self.path("mine.yaml"))
        p = self.bidnorm("vocab", "lint", "w", expect=2)
        self.assertEqual(p.stderr.decode(), "bidnorm vocab lint: w/manifest.json: written with the rule file "
                         "'mine.yaml' (sha256 %s), which cannot be read here (cannot open: No such file or directory): "
                         "pass --rules FILE with that rule file\n" % sha[:12])
        self.bidnorm("vocab", "lint", "-q", "w", "--rules", "bidlog")
        # a manifest from before rules_source: a shipped set is found by its hash, a rule file is not
        manifest = self.path("w/manifest.json")
        with open(manifest) as f:
            m = json.load(f)
        del m["rules_source"]
        with open(manifest, "w") as f:
            json.dump(m, f)
        p = self.bidnorm("vocab", "lint", "w", expect=2)
        self.assertEqual(p.stderr.decode(), "bidnorm vocab lint: w/manifest.json: written with rules that are not a "
                         "shipped set (sha256 %s), and the manifest names no rule file: pass --rules FILE with the rule "
                         "file it was written with\n" % sha[:12])
        m["rules_sha256"] = self.openrtb_sha
        with open(manifest, "w") as f:
            json.dump(m, f)
        self.bidnorm("vocab", "lint", "-q", "w")
        m["rules_sha256"] = "mixed"
        with open(manifest, "w") as f:
            json.dump(m, f)
        p = self.bidnorm("vocab", "lint", "w", expect=2)
        self.assertEqual(p.stderr.decode(), "bidnorm vocab lint: w/manifest.json: built from inputs of several rules "
                         "(rules_sha256 'mixed'): pass --rules FILE|NAME with the rules to lint against\n")
        # no hash (inputs not written by ingest) or no manifest: the default rules, as before
        m["rules_sha256"] = ""
        with open(manifest, "w") as f:
            json.dump(m, f)
        self.bidnorm("vocab", "lint", "-q", "w")
        os.unlink(manifest)
        self.bidnorm("vocab", "lint", "-q", "w")


    def test_parity_traces_the_source_the_value_came_from(self):
        # site_domain reads [site.domain, site.page]: a request without the domain takes the page's host
        reqs = [{"id": "a", "site": {"page": "https://news.example.com/x?y=1"}, "imp": [{"id": "1"}]},
                {"id": "b", "site": {"domain": "shop.example.org", "page": "https://other.example.net/"},
                 "imp": [{"id": "1"}]}]
        raw = b"".join(json.dumps(r).encode() + b"\n" for r in reqs)
        with open(self.path("req.jsonl"), "wb") as f:
            f.write(raw)
        self.bidnorm("ingest", "-q", "--rules", "openrtb", "-o", "s.avro", "req.jsonl")
        self.bidnorm("vocab", "build", "-q", "-o", "v", "--field", "site_domain", "--min-count", "1", "s.avro")
        p = subprocess.run([SERVE_EXAMPLE, "--vocab", "v"], input=raw, capture_output=True, cwd=self.dir)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        with open(self.path("log.jsonl"), "w") as f:
            for r, line in zip(reqs, p.stdout.splitlines()):
                enc = json.loads(line)
                row = enc.pop("row")
                enc["site_domain"] = 0  # served as out of vocabulary
                f.write(json.dumps({"raw": r, "row": row, "encoded": enc}) + "\n")
        p = self.bidnorm("parity", "--vocab", "v", "--json", "log.jsonl", expect=3)
        f = next(f for f in json.loads(p.stdout)["features"] if f["name"] == "site_domain")
        page, domain = f["examples"]
        self.assertEqual(page["raw"], {"site.domain": None, "site.page": "https://news.example.com/x?y=1"})
        self.assertEqual((page["trace"][0], page["trace"][-1]),
                         ('input        "https://news.example.com/x?y=1"', '=            "news.example.com"'))
        self.assertEqual((domain["trace"][0], domain["trace"][-1]),
                         ('input        "shop.example.org"', '=            "shop.example.org"'))


def patch_header(path, old, new):
    """Replace old by new (same length) once in path's Avro header: the sync marker and blocks stay valid."""
    with open(path, "rb") as f:
        data = f.read()
    at = data.index(old)
    assert len(old) == len(new) and at < 4096
    with open(path, "wb") as f:
        f.write(data[:at] + new + data[at + len(old):])


class TextRepairOfEncodeInputs(unittest.TestCase):
    """encode refuses ingest output of another text repair version, as vocab does: its strings are fixed points
    of this version too, so the encoder would not notice, and the training inputs would differ from serving's."""

    def test_encode_refuses_inputs_of_another_text_repair_version(self):
        with tempfile.TemporaryDirectory() as d:
            clean, vocab, out = os.path.join(d, "b.avro"), os.path.join(d, "v"), os.path.join(d, "e.avro")
            for args in (["ingest", "-q", "-o", clean, BIDLOG_SAMPLE],
                         ["vocab", "build", "-q", "-o", vocab, "--field", "app_bundle", clean]):
                p = run(*args)
                self.assertEqual(p.returncode, 0, p.stderr.decode())
            old = os.path.join(d, "old.avro")
            shutil.copy(clean, old)
            patch_header(old, b"\x26bidnorm.text_repair\x022", b"\x26bidnorm.text_repair\x021")
            self.assertEqual(read_avro(old)[0]["bidnorm.text_repair"], b"1")
            tail = ("but this bidnorm repairs text with version '2': the same raw text gives other tokens "
                    "(training/serving skew); ingest it again with this bidnorm\n")
            # checked before anything is written, even after an input that is fine
            p = run("encode", "--vocab", vocab, "-o", out, clean, old)
            self.assertEqual((p.returncode, p.stderr.decode()),
                             (2, "bidnorm encode: %s: written with text repair version '1', %s" % (old, tail)))
            self.assertEqual([n for n in os.listdir(d) if n.startswith("e.")], [])
            # from before the key was written: version 1
            patch_header(old, b"bidnorm.text_repair", b"bidnorm.text_repaiX")
            p = run("encode", "--vocab", vocab, "-o", out, old)
            self.assertEqual((p.returncode, p.stderr.decode()),
                             (2, "bidnorm encode: %s: written with text repair version '1' (the header has no "
                              "bidnorm.text_repair: written before it was recorded, or not by bidnorm ingest), %s"
                              % (old, tail)))
            p = run("encode", "-q", "--vocab", vocab, "-o", out, clean)
            self.assertEqual(p.returncode, 0, p.stderr.decode())


class TextRepairAtServing(unittest.TestCase):
    """A vocabulary keeps the repair version its tokens came from; serving another is refused."""

    def test_encode_and_the_serving_example_refuse_another_repair_version(self):
        with tempfile.TemporaryDirectory() as d:
            clean, vocab = os.path.join(d, "b.avro"), os.path.join(d, "v")
            for args in (["ingest", "-q", "-o", clean, BIDLOG_SAMPLE],
                         ["vocab", "build", "-q", "-o", vocab, "--field", "app_bundle", clean]):
                p = run(*args)
                self.assertEqual(p.returncode, 0, p.stderr.decode())
            manifest = os.path.join(vocab, "manifest.json")
            with open(manifest) as f:
                m = json.load(f)
            self.assertEqual(m["text_repair"], "2")
            m["text_repair"] = "1"
            with open(manifest, "w") as f:
                json.dump(m, f)
            want = ("%s: vocabulary built with text repair version '1', but this bidnorm repairs text with version "
                    "'2': the same raw text gives other tokens (training/serving skew); build the vocabulary again "
                    "from data ingested with this bidnorm\n" % manifest)
            p = run("encode", "--vocab", vocab, "-o", os.path.join(d, "e.avro"), clean)
            self.assertEqual((p.returncode, p.stderr.decode()), (5, "bidnorm encode: " + want))
            p = subprocess.run([SERVE_EXAMPLE, "--vocab", vocab], input=b"", capture_output=True)
            self.assertNotEqual(p.returncode, 0)
            self.assertEqual(p.stderr.decode(), "serve_example: " + want)
            if os.environ.get("BIDNORM_SANITIZED") != "1":  # an uninstrumented python cannot load a sanitized library
                lib = os.environ.get("BIDNORM_LIB") or os.path.join(os.path.dirname(SERVE_EXAMPLE), "libbidnorm.so")
                p = subprocess.run([sys.executable, os.path.join(SOURCE, "tools", "serve_ctypes.py"), "--lib", lib,
                                    "--vocab", vocab], input=b"", capture_output=True)
                self.assertEqual((p.returncode, p.stderr.decode()), (1, "serve_ctypes.py: " + want))
            # a manifest from before the key: its inputs had version 1
            del m["text_repair"]
            with open(manifest, "w") as f:
                json.dump(m, f)
            p = run("encode", "--vocab", vocab, "-o", os.path.join(d, "e.avro"), clean)
            self.assertEqual(p.returncode, 5)
            self.assertIn("text repair version '1' (the manifest has no text_repair: it predates the key)",
                          p.stderr.decode())
            # no manifest at all: not made by vocab build, taken as it is
            shutil.move(manifest, os.path.join(d, "manifest.json"))
            p = run("encode", "-q", "--vocab", vocab, "-o", os.path.join(d, "e.avro"), clean)
            self.assertEqual(p.returncode, 0, p.stderr.decode())


if __name__ == "__main__":
    unittest.main()
