"""End-to-end invariants of normalized output: the committed dirty samples through the real binary, read back with python3-avro."""
import datetime
import glob
import json
import math
import os
import re
import subprocess
import tempfile
import unicodedata
import unittest

import zstandard

from e2e import BIDNORM, SOURCE, read_records as read_avro
SAMPLES = sorted(glob.glob(os.path.join(SOURCE, "samples", "bidlog-*.jsonl.zst")))

# The canonical bundle form: the final validate step of the bundle chain in rules/bidlog.yaml.
BUNDLE = re.compile(r"^(?:[a-z][a-z0-9_-]*(?:\.[a-z0-9_-]+)+|[0-9]{6,12})$")
# serving_invalid in rules/bidlog.yaml, written out again so the test does not trust the loader.
SERVING_INVALID = [re.compile(p) for p in (r"_ago$", r"^(seconds|minutes|hours|days|weeks|months)_since_",
                                            r"^clearing_price$")]
TOKEN_FIELDS = ("exchange", "ad_format", "device_ifa", "os", "language", "connection_type")
TEXT_FIELDS = ("event_id", "publisher", "os_version", "device_make", "device_model", "country", "city")
DAY_START = datetime.datetime(2026, 11, 20, tzinfo=datetime.timezone.utc)
DAY_END = DAY_START + datetime.timedelta(days=1)
# Rejected lines: the generator's malformed ts values, as samples/README.md counts them.
BAD_TS = ("yesterday", "now", "2026-11-31T12:00:00Z")




def documented_samples():
    """{file name: (records, malformed lines)} from the table in samples/README.md."""
    table = {}
    with open(os.path.join(SOURCE, "samples", "README.md"), encoding="utf-8") as f:
        for row in f:
            m = re.match(r"^\| `([^`]+\.jsonl\.zst)` \| ([0-9,]+) \|.*\| ([0-9]+) \([0-9.]+ %\) \|$", row.strip())
            if m:
                table[m.group(1)] = (int(m.group(2).replace(",", "")), int(m.group(3)))
    return table


def count_malformed(path):
    """The README's own recipe: lines that are not a JSON object with event_id and a parseable ts."""
    with open(path, "rb") as f:
        data = zstandard.ZstdDecompressor().decompressobj().decompress(f.read())
    bad = 0
    for raw in data.split(b"\n")[:-1]:
        if not raw.strip():
            continue
        try:
            r = json.loads(raw.decode("utf-8", "surrogateescape"))
        except ValueError:
            bad += 1
            continue
        if not isinstance(r, dict) or "event_id" not in r or r.get("ts") in BAD_TS:
            bad += 1
    return bad


def string_problem(s):
    """Why s is not a clean normalized string, or None."""
    for ch in s:
        cat = unicodedata.category(ch)
        if cat in ("Cc", "Cf"):
            return "control/format character U+%04X" % ord(ch)
        if ch == "\ufffd":
            return "U+FFFD"
    if s != s.strip(" "):
        return "leading or trailing space"
    if "  " in s:
        return "double space"
    if s == "":
        return "empty string (should be null)"
    return None


class Samples(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not SAMPLES:
            raise unittest.SkipTest("no samples/bidlog-*.jsonl.zst")
        cls.tmp = tempfile.TemporaryDirectory()
        out = os.path.join(cls.tmp.name, "out.avro")
        p = subprocess.run([BIDNORM, "ingest", "-q", "-o", out, *SAMPLES], capture_output=True)
        if p.returncode != 0:
            raise AssertionError("bidnorm ingest exited %d: %s" % (p.returncode, p.stderr.decode()))
        cls.records = read_avro(out)
        with open(os.path.join(cls.tmp.name, "out.stats.json")) as f:
            cls.stats = json.load(f)
        with open(os.path.join(cls.tmp.name, "out.rejects.jsonl"), "rb") as f:
            cls.rejects = [json.loads(x) for x in f.read().splitlines()]

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def each(self, check):
        """Run check(record) on every record; report the first few failures with the event_id."""
        failures = []
        for r in self.records:
            why = check(r)
            if why:
                failures.append("%s: %s" % (r.get("event_id"), why))
        self.assertEqual(failures[:10], [], "%d records fail" % len(failures))

    def test_records_were_written(self):
        self.assertGreater(len(self.records), 6000)

    def test_app_bundle_is_null_or_canonical(self):
        self.each(lambda r: None if r["app_bundle"] is None or BUNDLE.match(r["app_bundle"])
                  else "app_bundle %r" % r["app_bundle"])
        self.assertTrue(any(r["app_bundle"] is not None for r in self.records))

    def test_installed_apps_are_canonical_unique_and_capped(self):
        def check(r):
            apps = r["installed_apps"]
            if not isinstance(apps, list):
                return "installed_apps is %r" % (apps,)
            bad = [a for a in apps if not isinstance(a, str) or not BUNDLE.match(a)]
            if bad:
                return "installed_apps elements %r" % bad
            if len(set(apps)) != len(apps):
                return "duplicates in %r" % apps
            if len(apps) > 256:
                return "%d installed apps" % len(apps)
            return None
        self.each(check)
        # empty lists stay empty: no placeholder element stands in for "none"
        self.assertTrue(any(r["installed_apps"] == [] for r in self.records))

    def test_strings_are_clean(self):
        def check(r):
            for name in TEXT_FIELDS + TOKEN_FIELDS + ("app_bundle",):
                v = r[name]
                if v is not None and string_problem(v):
                    return "%s %r: %s" % (name, v, string_problem(v))
            for a in r["installed_apps"]:
                if string_problem(a):
                    return "installed_apps %r: %s" % (a, string_problem(a))
            for k in r["features"]:
                if string_problem(k):
                    return "features key %r: %s" % (k, string_problem(k))
            return None
        self.each(check)

    def test_text_repair_happened(self):
        cities = {r["city"] for r in self.records}
        self.assertIn("São Paulo", cities)
        self.assertIn("Zürich", cities)
        self.assertFalse(any(c and "Ã" in c for c in cities), [c for c in cities if c and "Ã" in c])

    def test_country_is_upper_case_and_tokens_lower_case(self):
        def check(r):
            c = r["country"]
            if c is not None and c != c.upper():
                return "country %r" % c
            for name in TOKEN_FIELDS:
                v = r[name]
                if v is not None and (v != v.lower() or len(v.encode()) > 64):
                    return "%s %r" % (name, v)
            return None
        self.each(check)

    def test_device_ctr_is_minus_one_or_a_finite_rate(self):
        def check(r):
            v = r["device_ctr"]
            if v == -1 or (math.isfinite(v) and v >= 0):
                return None
            return "device_ctr %r" % v
        self.each(check)
        values = [r["device_ctr"] for r in self.records]
        self.assertIn(-1, values)
        self.assertTrue(any(v > 0 for v in values))

    def test_features_hold_no_serving_invalid_key(self):
        def check(r):
            bad = [k for k in r["features"] if any(p.search(k) for p in SERVING_INVALID)]
            return "features %r" % bad if bad else None
        self.each(check)
        self.assertTrue(any("session_depth" in r["features"] for r in self.records))

    def test_serving_invalid_top_level_keys_are_not_in_the_output(self):
        self.each(lambda r: "has %r" % [k for k in r if any(p.search(k) for p in SERVING_INVALID)]
                  if any(any(p.search(k) for p in SERVING_INVALID) for k in r) else None)

    def test_ts_is_within_the_day(self):
        def check(r):
            ts = r["ts"]
            if not isinstance(ts, datetime.datetime):
                return "ts %r" % (ts,)
            if ts.tzinfo is None:
                ts = ts.replace(tzinfo=datetime.timezone.utc)
            return None if DAY_START <= ts < DAY_END else "ts %s" % ts.isoformat()
        self.each(check)

    def test_event_ids_are_present(self):
        self.each(lambda r: None if isinstance(r["event_id"], str) and r["event_id"] else "event_id %r" % r["event_id"])

    def test_stats_reconcile(self):
        s = self.stats
        self.assertEqual(s["status"], "ok")
        self.assertEqual(s["records_read"], s["records_written"] + s["records_rejected"])
        self.assertEqual(s["records_written"], len(self.records))
        self.assertEqual(s["records_rejected"], len(self.rejects))
        self.assertEqual(sum(s["rejected_by_reason"].values()), s["records_rejected"])
        self.assertEqual([i["name"] for i in s["inputs"]], SAMPLES)
        for key in ("records_read", "records_written", "records_rejected"):
            self.assertEqual(sum(i[key] for i in s["inputs"]), s[key], key)
        for i in s["inputs"]:
            with self.subTest(input=os.path.basename(i["name"])):
                self.assertTrue(i["complete"])
                self.assertEqual(i["records_read"], i["records_written"] + i["records_rejected"])
                self.assertEqual(sum(i["rejected_by_reason"].values()), i["records_rejected"])
                self.assertEqual(i["records_rejected"], sum(1 for r in self.rejects if r["source"] == i["name"]))

    def test_rejects_are_the_documented_malformed_lines(self):
        documented = documented_samples()
        self.assertEqual(sorted(documented), sorted(os.path.basename(p) for p in SAMPLES))
        for i in self.stats["inputs"]:
            name = os.path.basename(i["name"])
            records, malformed = documented[name]
            with self.subTest(input=name):
                self.assertEqual(i["records_rejected"], malformed)
                self.assertEqual(i["records_read"], records)
                self.assertEqual(count_malformed(i["name"]), malformed)

    def test_serving_invalid_keys_are_listed_in_the_stats(self):
        keys = self.stats["serving_invalid_keys"]
        for name, reason in (("weeks_ago", "relative-time"), ("clearing_price", "feedback"),
                             ("days_since_install", "relative-time")):
            with self.subTest(key=name):
                self.assertIn(name, keys)
                self.assertEqual(keys[name]["reason"], reason)
                self.assertGreater(keys[name]["count"], 0)
        self.assertGreater(self.stats["fields"]["features"]["serving_invalid_keys_dropped"], 0)


class NormalizeCommand(unittest.TestCase):
    def test_trace_shows_every_step_of_the_bundle_chain(self):
        p = subprocess.run([BIDNORM, "normalize", "--field", "app_bundle", "--trace", "com.foo$hl=en"],
                           capture_output=True)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertEqual(p.stdout.decode().splitlines(), [
            "com.foo$hl=en",
            '  input        "com.foo$hl=en"',
            '  text         "com.foo$hl=en"',
            '  lower        "com.foo$hl=en"',
            '  extract      "com.foo$hl=en"',
            '  extract      "com.foo$hl=en"',
            '  extract      "com.foo$hl=en"',
            '  extract      "com.foo$hl=en"',
            '  extract      "com.foo$hl=en"',
            '  extract      "com.foo$hl=en"',
            '  first_match  "com.foo"',
            '  trim         "com.foo"',
            '  max_bytes    "com.foo"',
            '  trim         "com.foo"',
            '  validate     "com.foo"',
            "  =            com.foo",
        ])

    def test_trace_of_a_value_that_becomes_null(self):
        p = subprocess.run([BIDNORM, "normalize", "--field", "installed_apps", "--trace", "Foo"], capture_output=True)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        lines = p.stdout.decode().splitlines()
        self.assertEqual(lines[0], "Foo")
        self.assertEqual(lines[1], '  input        "Foo"')
        self.assertEqual(lines[-2], "  validate     null")
        self.assertEqual(lines[-1], "  =            null")


if __name__ == "__main__":
    unittest.main()
