"""End-to-end tests of `bidnorm vocab`: the real binary on Avro written by `bidnorm ingest` and by python3-avro."""
import collections
import json
import os
import re
import resource
import subprocess
import tempfile
import unittest

import avro.datafile
import avro.io
import avro.schema

from e2e import BIDNORM, SOURCE, FolderTest, read_avro_file as read_avro
SAMPLE_12 = os.path.join(SOURCE, "samples", "bidlog-2026-11-20T12.jsonl.zst")
SAMPLE_13 = os.path.join(SOURCE, "samples", "bidlog-2026-11-20T13.jsonl.zst")


def run(*args, cwd=None):
    return subprocess.run([BIDNORM, *args], capture_output=True, cwd=cwd)




def run_limited(args, cwd, file_size):
    """bidnorm with RLIMIT_FSIZE set (a full disk without a full disk)."""
    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, file_size))
    return subprocess.run([BIDNORM, *args], capture_output=True, cwd=cwd, preexec_fn=limit)


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def keras_vocabulary(path):
    """What Keras StringLookup(vocabulary=path) reads: one token per line, the line end stripped."""
    with open(path, encoding="utf-8", newline="") as f:
        return [line[:-1] if line.endswith("\n") else line for line in f]


def keras_index(vocab, token):
    """num_oov_indices=1, mask_token=None: OOV is 0, the token on line k is k."""
    try:
        return vocab.index(token) + 1
    except ValueError:
        return 0


def expected_order(counter):
    return sorted(counter.items(), key=lambda kv: (-kv[1], kv[0].encode()))


class Vocab(FolderTest):
    @classmethod
    def setUpClass(cls):
        cls.shared = tempfile.TemporaryDirectory()
        d = cls.shared.name
        cls.avro12 = os.path.join(d, "h12.avro")
        cls.avro13 = os.path.join(d, "h13.avro")
        for src, out in ((SAMPLE_12, cls.avro12), (SAMPLE_13, cls.avro13)):
            p = run("ingest", "-q", "-o", out, src)
            assert p.returncode == 0, p.stderr.decode()
        cls.meta12, cls.records12 = read_avro(cls.avro12)
        cls.meta13, cls.records13 = read_avro(cls.avro13)
        cls.schema_json = run("schema").stdout.decode()

    @classmethod
    def tearDownClass(cls):
        cls.shared.cleanup()

    def vocab(self, *args, expect=0):
        p = run("vocab", *args, cwd=self.dir)
        self.assertEqual(p.returncode, expect, p.stderr.decode() + p.stdout.decode())
        return p

    def write_avro(self, name, records, codec="null", meta=None):
        """Records in the schema of `bidnorm schema`, written by python3-avro with bidnorm's header metadata."""
        schema = avro.schema.parse(self.schema_json)
        path = self.path(name)
        with open(path, "wb") as f:
            w = avro.datafile.DataFileWriter(f, avro.io.DatumWriter(), schema, codec=codec)
            for k, v in (meta or {"bidnorm.rules.sha256": self.meta12["bidnorm.rules.sha256"],
                                  "bidnorm.version": self.meta12["bidnorm.version"],
                                  "bidnorm.text_repair": self.meta12["bidnorm.text_repair"]}).items():
                w.set_meta(k, v)
            for r in records:
                w.append(r)
            w.close()
        return path

    def assert_no_temp_files(self, where=None):
        left = [n for n in os.listdir(where or self.dir) if ".tmp" in n]
        self.assertEqual(left, [])

    # --- build -------------------------------------------------------------

    def test_build_matches_an_independent_count_and_keras_indices(self):
        self.vocab("build", "-q", "-o", "v", "--field", "app_bundle,installed_apps", "--field", "country",
                   "--task", "install", self.avro12, self.avro13)
        counts = {f: collections.Counter() for f in ("app_bundle", "installed_apps", "country")}
        for r in self.records12 + self.records13:
            for f in ("app_bundle", "country"):
                if r[f] is not None:
                    counts[f][r[f]] += 1
            for t in set(r["installed_apps"]):
                counts["installed_apps"][t] += 1
        for f, c in counts.items():
            want = expected_order(c)
            self.assertEqual(keras_vocabulary(self.path(f"v/{f}.txt")), [t for t, _ in want], f)
            with open(self.path(f"v/{f}.counts.tsv"), encoding="utf-8") as fh:
                self.assertEqual(fh.read(), "".join(f"{t}\t{n}\n" for t, n in want))
        vocab = keras_vocabulary(self.path("v/app_bundle.txt"))
        top = expected_order(counts["app_bundle"])
        self.assertEqual(keras_index(vocab, top[0][0]), 1)
        self.assertEqual(keras_index(vocab, top[2][0]), 3)
        self.assertEqual(keras_index(vocab, "com.dreamgames.royalmatch"),
                         [t for t, _ in top].index("com.dreamgames.royalmatch") + 1)
        self.assertEqual(keras_index(vocab, "com.dreamgames.royalmatch$hl=en_US"), 0)
        self.assertEqual(keras_index(vocab, "com.not.there"), 0)
        with open(self.path("v/manifest.json")) as fh:
            m = json.load(fh)
        self.assertEqual(m["task"], "install")
        self.assertEqual(m["rules_sha256"], self.meta12["bidnorm.rules.sha256"].decode())
        # the rules the tokens were linted against, which have that hash, name them for vocab lint and serving
        self.assertEqual(m["rules_source"], "<default>")
        # the text step's repair version travels from the Avro header into the manifest
        self.assertEqual(self.meta12["bidnorm.text_repair"], b"2")
        self.assertEqual(m["text_repair"], "2")
        self.assertEqual([i["text_repair"] for i in m["inputs"]], ["2", "2"])
        self.assertEqual(m["rows_scanned"], len(self.records12) + len(self.records13))
        self.assertEqual(m["parameters"]["oov_index"], 0)
        self.assertEqual([i["path"] for i in m["inputs"]], [self.avro12, self.avro13])
        f = m["fields"]["app_bundle"]
        self.assertEqual(f["distinct"], len(counts["app_bundle"]))
        self.assertEqual(f["occurrences"], sum(counts["app_bundle"].values()))
        self.assertEqual(f["coverage"], 1)
        self.assertGreater(m["resources"]["peak_counting_bytes"], 0)
        self.assert_no_temp_files()

    def test_min_count_top_k_where_and_coverage(self):
        self.vocab("build", "-q", "-o", "v", "--field", "app_bundle", "--min-count", "5", "--top-k", "40",
                   "--where", "install=1", "--where", "country!=US", self.avro12)
        c = collections.Counter(r["app_bundle"] for r in self.records12
                                if r["install"] == 1 and r["country"] != "US" and r["app_bundle"] is not None)
        want = [(t, n) for t, n in expected_order(c) if n >= 5][:40]
        self.assertEqual(keras_vocabulary(self.path("v/app_bundle.txt")), [t for t, _ in want])
        with open(self.path("v/manifest.json")) as fh:
            m = json.load(fh)
        self.assertEqual(m["filters"], ["install=1", "country!=US"])
        self.assertEqual(m["rows_matched"], sum(1 for r in self.records12 if r["install"] == 1 and r["country"] != "US"))
        f = m["fields"]["app_bundle"]
        self.assertEqual(f["kept"], len(want))
        self.assertEqual(f["min_kept_count"], want[-1][1] if want else None)
        self.assertAlmostEqual(f["coverage"], sum(n for _, n in want) / sum(c.values()))

    def test_every_codec_is_readable(self):
        outs = []
        for codec in ("null", "deflate", "snappy", "zstandard"):
            a = self.path(f"{codec}.avro")
            p = run("ingest", "-q", "--codec", codec, "-o", a, SAMPLE_13)
            self.assertEqual(p.returncode, 0, p.stderr.decode())
            self.vocab("build", "-q", "-o", f"v-{codec}", "--field", "installed_apps,device_model", a)
            outs.append(read_bytes(self.path(f"v-{codec}/installed_apps.txt")))
        self.assertEqual(len(set(outs)), 1)
        # python3-avro's own deflate container too
        recs = self.records13[:50]
        self.write_avro("py.avro", recs, codec="deflate")
        self.vocab("build", "-q", "-o", "v-py", "--field", "device_model", "py.avro")
        c = collections.Counter(r["device_model"] for r in recs if r["device_model"] is not None)
        self.assertEqual(keras_vocabulary(self.path("v-py/device_model.txt")), [t for t, _ in expected_order(c)])

    def test_existing_output_needs_force(self):
        self.vocab("build", "-q", "-o", "v", "--field", "country", self.avro13)
        p = self.vocab("build", "-q", "-o", "v", "--field", "country", self.avro12, expect=2)
        self.assertEqual(p.stderr.decode(), "bidnorm vocab build: v: exists (use --force to replace it)\n")
        self.vocab("build", "-q", "-o", "v", "--force", "--field", "country", self.avro12)
        with open(self.path("v/manifest.json")) as fh:
            self.assertEqual(json.load(fh)["inputs"][0]["path"], self.avro12)
        self.assert_no_temp_files()

    # --- errors ------------------------------------------------------------

    def test_input_errors_and_exit_codes(self):
        data = read_bytes(self.avro13)
        with open(self.path("cut.avro"), "wb") as f:
            f.write(data[:len(data) // 2])
        p = self.vocab("build", "-o", "v", "--field", "country", "cut.avro", expect=5)
        self.assertRegex(p.stderr.decode(),
                         r"^bidnorm vocab build: cut\.avro: corrupt Avro block at byte offset \d+: block of \d+ bytes "
                         r"runs past the end of the file \(\d+ bytes left\)\n$")
        p = self.vocab("build", "-o", "v", "--field", "nope", self.avro13, expect=2)
        self.assertIn(f"{self.avro13}: no field 'nope' in the schema (fields: event_id, ts, ", p.stderr.decode())
        p = self.vocab("build", "-o", "v", "--field", "bid_floor", self.avro13, expect=2)
        self.assertEqual(p.stderr.decode(), f"bidnorm vocab build: {self.avro13}: field 'bid_floor' is double; "
                                            "vocabularies need string or array of string fields\n")
        p = self.vocab("build", "-o", "v", "--field", "country", "missing.avro", expect=5)
        self.assertEqual(p.stderr.decode(), "bidnorm vocab build: missing.avro: cannot open: No such file or directory\n")
        p = self.vocab("build", "-o", "v", "--field", "country", "--where", "a b", self.avro13, expect=2)
        self.assertEqual(p.stderr.decode(),
                         "bidnorm vocab build: --where 'a b': expected FIELD, or FIELD then =, !=, <, <=, > or >= "
                         "and a VALUE\n"
                         "Try 'bidnorm vocab build --help'.\n")
        p = self.vocab("build", "-o", "v", "--field", "installed_apps", "--max-memory", "1M", self.avro12, expect=2)
        self.assertEqual(p.stderr.decode(), "bidnorm vocab build: --max-memory 1048576 is too small to spill the counts "
                                            "of 1 field: give at least 2146304 bytes\n"
                                            "Try 'bidnorm vocab build --help'.\n")
        p = self.vocab("lint", "v", "--json", expect=2)
        self.assertIn("--json does not apply to 'vocab lint'", p.stderr.decode())
        self.assertFalse(os.path.exists(self.path("v")))
        self.assert_no_temp_files()

    def test_counting_past_max_memory_spills_and_changes_nothing(self):
        # 12,000 records: 5 apps from 1,000 popular ones (one of them twice: an array counts a token once per
        # record) and 5 seen nowhere else, 60,000 in all. 2.1 MiB cannot hold them: tables spill to sorted
        # runs, merged back at the end, where only the popular ones (--min-count 3) return to memory.
        template = dict(self.records12[0])
        recs = []
        for i in range(12000):
            popular = ["com.p%d.app" % ((i * 7 + j * 131) % 1000) for j in range(5)]
            tail = ["com.v%d.app" % (i * 5 + j) for j in range(5)]
            recs.append(dict(template, installed_apps=popular + [popular[0]] + tail, app_bundle=tail[0]))
        src = self.write_avro("many.avro", recs)
        spill = self.path("spill")
        os.mkdir(spill)
        self.vocab("build", "-q", "-o", "plain", "--field", "installed_apps", "--min-count", "3", src)
        p = self.vocab("build", "-o", "spilled", "--field", "installed_apps", "--min-count", "3",
                       "--max-memory", "2146304", "--spill-dir", spill, src)
        self.assertRegex(p.stderr.decode(), r"installed_apps: 61000 distinct; \d\.\d MB counting memory, "
                                            r"\d+ runs spilled to disk -> spilled\n$")
        for name in ("installed_apps.txt", "installed_apps.counts.tsv"):
            self.assertEqual(read_bytes(self.path("spilled/" + name)), read_bytes(self.path("plain/" + name)), name)
        self.assertEqual(len(keras_vocabulary(self.path("spilled/installed_apps.txt"))), 1000)
        with open(self.path("spilled/manifest.json")) as f:
            m = json.load(f)
        with open(self.path("plain/manifest.json")) as f:
            plain = json.load(f)
        self.assertEqual(m["fields"], plain["fields"])
        self.assertGreater(m["resources"]["spilled_runs"], 1)
        self.assertEqual(plain["resources"]["spilled_runs"], 0)
        self.assertLessEqual(m["resources"]["peak_counting_bytes"], 2146304 + (1 << 20))
        # a count file streams every token from the runs: the same bytes as without a limit
        self.vocab("count", "-q", "-o", "plain.part", "--field", "installed_apps", src)
        self.vocab("count", "-q", "-o", "spilled.part", "--field", "installed_apps", "--max-memory", "2146304",
                   "--spill-dir", spill, src)
        self.assertEqual(read_bytes(self.path("spilled.part")), read_bytes(self.path("plain.part")))
        self.assertEqual(os.listdir(spill), [])
        # with --min-count 1 every token must come back: say so instead of being killed
        p = self.vocab("build", "-o", "all", "--field", "installed_apps", "--max-memory", "2146304",
                       "--spill-dir", spill, src, expect=1)
        self.assertRegex(p.stderr.decode(), r"^bidnorm vocab build: field 'installed_apps': the tokens counted at "
                         r"least 1 times \(\d+ so far\) do not fit in --max-memory \(2146304 bytes\), even with "
                         r"the rest spilled to disk; raise --min-count or --max-memory\n$")
        self.assertEqual(os.listdir(spill), [])
        self.assertFalse(os.path.exists(self.path("all")))
        # a full disk while spilling: the run's write fails and says why, nothing is left behind
        p = run_limited(["vocab", "build", "-o", "full", "--field", "installed_apps", "--min-count", "3",
                         "--max-memory", "2146304", "--spill-dir", spill, src], self.dir, file_size=64 << 10)
        self.assertEqual(p.returncode, 5, p.stderr.decode())
        self.assertRegex(p.stderr.decode(), r"^bidnorm vocab build: %s/bidnorm-vocab-spill\.\w+/installed_apps\.0\.run: "
                         r"cannot write spilled counts: File too large\n$" % re.escape(spill))
        self.assertEqual(os.listdir(spill), [])
        self.assertFalse(os.path.exists(self.path("full")))
        p = self.vocab("build", "-o", "x", "--field", "installed_apps", "--max-memory", "4M", "--spill-dir",
                       self.path("spilled/manifest.json"), src, expect=5)
        self.assertEqual(p.stderr.decode(), "bidnorm vocab build: %s: cannot make a folder for spilled counts: "
                         "Not a directory\n" % self.path("spilled/manifest.json"))

    def test_mixed_rules_refused(self):
        meta = {"bidnorm.rules.sha256": b"0" * 64, "bidnorm.version": b"0.1.0", "bidnorm.text_repair": b"2"}
        other = self.write_avro("other.avro", self.records13[:10], meta=meta)
        sha = self.meta13["bidnorm.rules.sha256"].decode()
        p = self.vocab("build", "-o", "v", "--field", "country", self.avro13, other, expect=2)
        self.assertEqual(p.stderr.decode(), "bidnorm vocab build: %s: written with other rules (sha256 000000000000) "
                         "than %s (<default>, sha256 %s): the inputs must share their rules (where mixing is allowed, "
                         "pass --allow-mixed-rules and --rules FILE|NAME)\n" % (other, self.avro13, sha[:12]))
        # mixing, the rules to lint and filter with must be named
        p = self.vocab("build", "-o", "v", "--allow-mixed-rules", "--field", "country", self.avro13, other, expect=2)
        self.assertEqual(p.stderr.decode(), "bidnorm vocab build: %s: written with other rules (sha256 000000000000) "
                         "than %s (<default>, sha256 %s): name the rules to use with --rules FILE|NAME\n"
                         % (other, self.avro13, sha[:12]))
        # --rules one of them disagrees with; --allow-mixed-rules with --rules combines them
        p = self.vocab("build", "-o", "v", "--rules", "bidlog", "--field", "country", self.avro13, other, expect=2)
        self.assertIn("written with other rules (sha256 000000000000) than --rules bidlog", p.stderr.decode())
        self.vocab("build", "-q", "-o", "v", "--allow-mixed-rules", "--rules", "bidlog", "--field", "country",
                   self.avro13, other)
        with open(self.path("v/manifest.json")) as fh:
            m = json.load(fh)
        self.assertEqual(m["rules_sha256"], "mixed")
        self.assertEqual(len(m["rules_sha256_all"]), 2)
        # the summary notes which rules the tokens were linted against (it printed a slice of the manifest)
        p = self.vocab("build", "-o", "w", "--allow-mixed-rules", "--rules", "bidlog", "--field", "country",
                       self.avro13, other)
        self.assertEqual(p.stderr.decode().splitlines()[0], "bidnorm vocab build: note: the inputs were written "
                         "with several rules; the tokens were linted against <default> (%s...)" % sha[:12])
        p = self.vocab("build", "-o", "x", "--allow-mixed-rules", "--rules", "bidlog", "--field", "country", other)
        self.assertEqual(p.stderr.decode().splitlines()[0], "bidnorm vocab build: note: the inputs were written "
                         "with other rules (000000000000...) than <default> (%s...)" % sha[:12])

    def test_outputs_of_another_text_repair_refused(self):
        # Written before the repair version was recorded (no bidnorm.text_repair): version 1. A vocabulary of its
        # tokens would be refused by serving, so build, count and regen refuse it before reading a record.
        meta = {"bidnorm.rules.sha256": self.meta12["bidnorm.rules.sha256"], "bidnorm.version": b"0.1.0"}
        old = self.write_avro("old.avro", self.records13[:10], meta=meta)
        want = ("%s: written with text repair version '1' (the header has no bidnorm.text_repair: written before it "
                "was recorded, or not by bidnorm ingest), but this bidnorm repairs text with version '2': the same raw "
                "text gives other tokens (training/serving skew); ingest it again with this bidnorm, or pass "
                "--allow-other-text-repair to count it anyway (serving refuses such a vocabulary)\n" % old)
        for sub, args in (("build", ["-o", "v"]), ("count", ["-o", "p"]), ("regen", ["--root", "r", "--task", "t"])):
            p = self.vocab(sub, *args, "--field", "country", self.avro13, old, expect=2)
            self.assertEqual(p.stderr.decode(), "bidnorm vocab %s: %s" % (sub, want))
        # a version recorded, but not this bidnorm's
        meta["bidnorm.text_repair"] = b"3"
        newer = self.write_avro("newer.avro", self.records13[:10], meta=meta)
        p = self.vocab("count", "-o", "p", "--field", "country", newer, expect=2)
        self.assertEqual(p.stderr.decode(), "bidnorm vocab count: %s: written with text repair version '3', but this "
                         "bidnorm repairs text with version '2': the same raw text gives other tokens "
                         "(training/serving skew); ingest it again with this bidnorm, or pass "
                         "--allow-other-text-repair to count it anyway (serving refuses such a vocabulary)\n" % newer)
        self.assertEqual(sorted(os.listdir(self.dir)), sorted(["newer.avro", "old.avro"]))
        # counted anyway, it must not mix with this version's inputs unless that is allowed too
        p = self.vocab("build", "-o", "v", "--allow-other-text-repair", "--field", "country", self.avro13, old,
                       expect=2)
        self.assertEqual(p.stderr.decode(), "bidnorm vocab build: %s: text repair version '1' differs from '2' of "
                         "%s: the same text gives other tokens (ingest both again with one bidnorm, or use "
                         "--allow-mixed-rules to combine them)\n" % (old, self.avro13))
        self.vocab("build", "-q", "-o", "v", "--allow-other-text-repair", "--allow-mixed-rules", "--field", "country",
                   self.avro13, old)
        with open(self.path("v/manifest.json")) as fh:
            m = json.load(fh)
        self.assertEqual(m["text_repair"], "mixed")
        # inputs are listed sorted by path: compare by path, not by position
        self.assertEqual({i["path"]: i["text_repair"] for i in m["inputs"]}, {self.avro13: "2", old: "1"})
        self.vocab("build", "-q", "-o", "w", "--allow-other-text-repair", "--field", "country", old)
        with open(self.path("w/manifest.json")) as fh:
            self.assertEqual(json.load(fh)["text_repair"], "1")
        # parts keep each input's version: merge refuses them alike, before writing anything (--part too)
        self.vocab("count", "-q", "-o", "old.part", "--allow-other-text-repair", "--field", "country", old)
        self.vocab("count", "-q", "-o", "new.part", "--field", "country", self.avro13)
        before = sorted(os.listdir(self.dir))
        for args in (["-o", "x"], ["--part", "-o", "x.part"]):
            p = self.vocab("merge", *args, "new.part", "old.part", expect=2)
            self.assertEqual(p.stderr.decode(), "bidnorm vocab merge: old.part: input '%s' was written with text "
                             "repair version '1', but this bidnorm repairs text with version '2': the same raw text "
                             "gives other tokens (training/serving skew); ingest it again with this bidnorm and count "
                             "it again, or pass --allow-other-text-repair to merge it anyway (serving refuses such a "
                             "vocabulary)\n" % old)
        self.assertEqual(sorted(os.listdir(self.dir)), before)
        self.vocab("merge", "-q", "-o", "x", "--allow-other-text-repair", "old.part")
        with open(self.path("x/manifest.json")) as fh:
            self.assertEqual(json.load(fh)["text_repair"], "1")
        with open(self.path("x/country.txt"), "rb") as a, open(self.path("w/country.txt"), "rb") as b:
            self.assertEqual(a.read(), b.read())
        # lint takes no such option
        p = self.vocab("lint", "x", "--allow-other-text-repair", expect=2)
        self.assertIn("--allow-other-text-repair does not apply to 'vocab lint'", p.stderr.decode())

    # --- lint --------------------------------------------------------------

    def test_build_fails_lint_on_a_crafted_bad_token(self):
        recs = [dict(r) for r in self.records13[:30]]
        recs[0]["app_bundle"] = "Com.Foo"
        recs[1]["app_bundle"] = "Com.Foo"
        recs[2]["country"] = "de"
        recs[3]["installed_apps"] = ["com.ok.app", "com.bad.app\u200b"]
        self.write_avro("bad.avro", recs)
        p = self.vocab("build", "-o", "v", "--field", "app_bundle,country,installed_apps", "bad.avro", expect=1)
        err = p.stderr.decode()
        bundles = keras_like_order([r["app_bundle"] for r in recs if r["app_bundle"] is not None])
        line = bundles.index("Com.Foo") + 1
        self.assertIn(f'v/app_bundle.txt:{line}: token "Com.Foo" is not normalized (normalizes to "com.foo")\n', err)
        countries = keras_like_order([r["country"] for r in recs if r["country"] is not None])
        self.assertIn(f'v/country.txt:{countries.index("de") + 1}: token "de" is not normalized '
                      f'(normalizes to "DE")\n', err)
        self.assertIn('token "com.bad.app\\u{200B}" contains U+200B (format character)', err)
        self.assertTrue(err.endswith("bidnorm vocab build: lint failed: 3 bad tokens; nothing written\n"), err)
        self.assertFalse(os.path.exists(self.path("v")))
        self.assert_no_temp_files()

    def test_lint_command(self):
        self.vocab("build", "-q", "-o", "v", "--field", "country,app_bundle", self.avro13)
        p = self.vocab("lint", "v")
        self.assertEqual(p.stdout, b"")
        with open(self.path("v/country.txt"), "a") as f:
            f.write("Fr\n")
        n = len(keras_vocabulary(self.path("v/country.txt")))
        p = self.vocab("lint", "v", expect=1)
        self.assertEqual(p.stdout.decode(), f'v/country.txt:{n}: token "Fr" is not normalized (normalizes to "FR")\n')
        self.assertEqual(p.stderr.decode(), "bidnorm vocab lint: 1 bad tokens\n")

    # --- count / merge -----------------------------------------------------

    def test_merge_of_a_split_equals_a_single_build(self):
        common = ["--field", "app_bundle,installed_apps,device_model", "--where", "click!=1"]
        select = ["--min-count", "2", "--top-k", "300", "--task", "ctr"]
        self.vocab("build", "-q", "-o", "single", *common, *select, self.avro12, self.avro13)
        self.vocab("count", "-q", "-o", "p1", *common, self.avro12)
        self.vocab("count", "-q", "-o", "p2", *common, self.avro13)
        self.vocab("merge", "-q", "-o", "merged", *select, "p1", "p2")
        self.assert_same_vocab("single", "merged")
        # a 3-way split inside one file, written by python3-avro
        recs = self.records12
        thirds = [recs[:1000], recs[1000:1001], recs[1001:]]
        names = [self.write_avro(f"s{i}.avro", part, codec="deflate") for i, part in enumerate(thirds)]
        self.vocab("build", "-q", "-o", "single3", *common, *select, *names)
        for i, n in enumerate(names):
            self.vocab("count", "-q", "-o", f"q{i}", *common, n)
        self.vocab("merge", "-q", "-o", "merged3", *select, "q0", "q1", "q2")
        self.assert_same_vocab("single3", "merged3")
        # and the whole file gives the same counts as its split
        self.vocab("build", "-q", "-o", "whole", *common, *select, self.avro12)
        for f in ("app_bundle", "installed_apps", "device_model"):
            self.assertEqual(read_bytes(self.path(f"whole/{f}.counts.tsv")),
                             read_bytes(self.path(f"single3/{f}.counts.tsv")))

    def assert_same_vocab(self, a, b):
        files = sorted(os.listdir(self.path(a)))
        self.assertEqual(files, sorted(os.listdir(self.path(b))))
        for name in files:
            x = read_bytes(self.path(f"{a}/{name}"))
            y = read_bytes(self.path(f"{b}/{name}"))
            if name == "manifest.json":
                x, y = json.loads(x), json.loads(y)
                del x["resources"], y["resources"]
            self.assertEqual(x, y, name)

    def test_merge_refuses_parts_with_other_fields(self):
        self.vocab("count", "-q", "-o", "p1", "--field", "country", self.avro12)
        self.vocab("count", "-q", "-o", "p2", "--field", "city", self.avro13)
        p = self.vocab("merge", "-o", "m", "p1", "p2", expect=2)
        self.assertIn("p2: counts fields or --where filters differ from the first part's", p.stderr.decode())
        with open(self.path("junk"), "wb") as f:
            f.write(b"not a part")
        p = self.vocab("merge", "-o", "m", "junk", expect=5)
        self.assertEqual(p.stderr.decode(), "bidnorm vocab merge: junk: not a bidnorm partial counts file "
                                            "(written by 'bidnorm vocab count')\n")

    # --- diff --------------------------------------------------------------

    def test_diff(self):
        self.vocab("build", "-q", "-o", "old", "--field", "country,device_model", self.avro12)
        self.vocab("build", "-q", "-o", "new", "--field", "country,device_make", "--top-k", "5", self.avro13)
        p = self.vocab("diff", "old", "new")
        out = p.stdout.decode()
        self.assertRegex(out, r"^country: \d+ -> 5 tokens; overlap 5; added 0, removed \d+, re-indexed \d+; churn ")
        self.assertIn("device_model: only in old\n", out)
        self.assertIn("device_make: only in new\n", out)
        p = self.vocab("diff", "--json", "old", "new")
        d = json.loads(p.stdout)
        old = keras_vocabulary(self.path("old/country.txt"))
        new = keras_vocabulary(self.path("new/country.txt"))
        c = d["fields"]["country"]
        self.assertEqual(c["old_size"], len(old))
        self.assertEqual(c["removed"]["count"], len(set(old) - set(new)))
        changed = sum(1 for i, t in enumerate(old) if i >= len(new) or new[i] != t)
        self.assertAlmostEqual(c["churn"], changed / len(old))
        self.assertLess(c["coverage_new"], c["coverage_old"])
        self.assertEqual(d["only_old"], ["device_model"])
        self.assertEqual(d["only_new"], ["device_make"])

    # --- regen -------------------------------------------------------------

    def test_regen_guardrail_and_atomic_switch(self):
        root = self.path("vocabs")
        base = ["--root", root, "--task", "ctr", "--field", "country,app_bundle"]
        self.vocab("regen", "-q", *base, self.avro12)
        task = os.path.join(root, "ctr")
        first = os.readlink(os.path.join(task, "current"))
        self.assertRegex(first, r"^\d{8}T\d{6}Z$")
        self.assertEqual(keras_vocabulary(os.path.join(task, "current", "country.txt")),
                         keras_vocabulary(os.path.join(task, first, "country.txt")))
        # the same data again: no churn, switches
        self.vocab("regen", "-q", *base, self.avro12)
        second = os.readlink(os.path.join(task, "current"))
        self.assertGreater(second, first)
        # a much smaller vocabulary: refused, current unchanged, diff printed, exit 3
        p = self.vocab("regen", *base, "--top-k", "3", self.avro13, expect=3)
        self.assertEqual(os.readlink(os.path.join(task, "current")), second)
        self.assertIn("app_bundle: ", p.stdout.decode())
        self.assertIn("refused to switch", p.stderr.decode())
        # looser limits let the same change through
        self.vocab("regen", "-q", *base, "--top-k", "3", "--max-churn", "1", "--max-coverage-drop", "1", self.avro13)
        third = os.readlink(os.path.join(task, "current"))
        self.assertNotEqual(third, second)
        # --force overrides; --keep prunes the oldest, never current
        self.vocab("regen", "-q", *base, "--force", "--keep", "2", self.avro12)
        versions = sorted(n for n in os.listdir(task) if n != "current")
        self.assertEqual(len(versions), 2)
        self.assertEqual(os.readlink(os.path.join(task, "current")), versions[-1])
        with open(os.path.join(task, "current", "manifest.json")) as fh:
            self.assertEqual(json.load(fh)["task"], "ctr")
        self.assert_no_temp_files(task)


def keras_like_order(tokens):
    return [t for t, _ in expected_order(collections.Counter(tokens))]


if __name__ == "__main__":
    unittest.main()
