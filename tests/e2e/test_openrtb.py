"""End-to-end tests of the shipped OpenRTB rules (`--rules openrtb`): one BidRequest per line in,
one Avro row per `imp` out. The expected rows come from `expected_rows`, a small reference written
from the row contract below - not from the rule file - and the inputs are the OpenRTB
specification's own example requests (tests/data/openrtb), requests from Prebid Server's tests
(tests/data/openrtb/prebid-server: what real exchanges send, written by others) plus generated
hostile requests."""
import json
import math
import os
import re
import subprocess
import tempfile
import unicodedata
import urllib.parse
import unittest

import zstandard

from e2e import BIDNORM, FolderTest, read_avro_file, read_jsonl, read_records, SOURCE

SPEC_DIR = os.path.join(SOURCE, "tests", "data", "openrtb")
PREBID_DIR = os.path.join(SPEC_DIR, "prebid-server")
SAMPLE = os.path.join(SOURCE, "samples", "openrtb-2026-11-20T12.jsonl.zst")

# The reject `reason` of each way a line can fail to give rows. One table, so a rename is one edit.
REASONS = {
    "missing": "missing_rows",          # no `imp` at all (or `imp` is null: null counts as missing)
    "empty": "empty_rows",              # `imp` is []
    "not_array": "rows_not_array",      # `imp` is an object, a string, a number, true
    "not_object": "row_not_object",     # an element of `imp` is not an object: the whole line goes
    "missing_id": "missing_required",   # no usable `id` (request_id is required)
    "too_deep": "too_complex",
    "too_many": "too_many_rows",        # more elements in `imp` than limits.max_rows          # JSON nested deeper than the parser's limit (512 levels)
}
REQUIRED_FIELD = "request_id"           # the reject's `field` for a line without `id`

# The row contract: output field -> Avro type (as rules/README.md maps a rule field to Avro).
STRING = ["null", "string"]
INT = ["null", "int"]
ARRAY = {"type": "array", "items": "string"}
SCHEMA = {
    "request_id": "string", "imp_id": STRING, "imp_index": "int", "ad_formats": ARRAY,
    "width": INT, "height": INT, "bidfloor": ["null", "double"], "bidfloor_cur": "string",
    "app_bundle": STRING, "site_domain": STRING, "publisher_id": STRING,
    "device_os": STRING, "device_ifa": STRING, "language": STRING,
    "device_make": STRING, "device_model": STRING, "os_version": STRING,
    "device_type": STRING, "connection_type": STRING,
    "country": STRING, "region": STRING, "city": STRING,
    "bcat": ARRAY, "user_segments": ARRAY, "deal_ids": ARRAY,
    "instl": INT, "secure": INT, "tagid": STRING, "lmt": INT, "att": INT,
    "rewarded": INT, "gpid": STRING, "gdpr": INT, "coppa": INT, "us_privacy": STRING,
}
DEVICE_TYPES = {1: "mobile_tablet", 2: "pc", 3: "ctv", 4: "phone", 5: "tablet",
                6: "connected_device", 7: "set_top_box", 8: "dooh"}
CONNECTION_TYPES = {0: "unknown", 1: "ethernet", 2: "wifi", 3: "cellular_unknown", 4: "2g",
                    5: "3g", 6: "4g", 7: "5g"}
AD_FORMATS = ("banner", "video", "native", "audio")
MAX_ITEMS = 256
# app_bundle of the spec's bundles, where the bundle chain has a say: the Mobile example's
# bundle "12345" is five digits (shorter than an App Store id, like a Roku channel id) and its
# storeurl names App Store id 628677149. The contract reads app.bundle: "12345" stays.
SPEC_BUNDLES = {"12345": "12345"}

# ------------------------------------------------------------------ the reference

MISSING = object()


def path(value, *keys):
    """The value at keys (names or list indexes) below value, or MISSING."""
    for k in keys:
        if isinstance(k, int):
            if not isinstance(value, list) or k >= len(value):
                return MISSING
            value = value[k]
        else:
            if not isinstance(value, dict) or k not in value:
                return MISSING
            value = value[k]
    return value


def first(*values):
    """The first value that is present, not null and not "" (a fallback list of sources)."""
    for v in values:
        if v is not MISSING and v is not None and v != "":
            return v
    return MISSING


def text(v, max_bytes=256):
    """The `text` step on a clean value: NFKC, format characters dropped, whitespace collapsed,
    truncated to max_bytes at a character boundary; empty -> null. Numbers keep their JSON text."""
    if v is MISSING or v is None:
        return None
    if isinstance(v, bool):
        v = "true" if v else "false"
    elif isinstance(v, int):
        v = str(v)
    elif not isinstance(v, str):
        return None                      # objects, arrays and fractional numbers: not asserted
    s = unicodedata.normalize("NFKC", v)
    s = "".join(c for c in s if unicodedata.category(c) != "Cf")
    s = " ".join(s.split())
    b = s.encode("utf-8", "surrogatepass")[:max_bytes]     # lone surrogates: raw bytes, not asserted
    s = b.decode("utf-8", "ignore")
    return s or None


def lower(s, max_bytes=None):
    if s is None:
        return None
    s = s.lower()
    if max_bytes is not None:
        s = s.encode("utf-8")[:max_bytes].decode("utf-8", "ignore")
    return s or None


def upper(s):
    return None if s is None else s.upper()


def token(v):
    """device_os, device_ifa: text, lower, 64 bytes."""
    return lower(text(v), 64)


def language(v):
    """language: the primary language subtag, lower case, of an ISO-639-1 code or a BCP-47 tag
    ("en-US" -> "en", "zh-Hant-TW" -> "zh"; subtags after "-" or "_", 1-8 letters or digits each).
    Anything not of that shape, and "und" (undetermined), is null."""
    s = lower(text(v))
    m = re.fullmatch(r"([a-z]{2,3})(?:[-_][a-z0-9]{1,8})*", s or "")
    return m.group(1) if m and m.group(1) != "und" else None


def ifa(v):
    """device_ifa: a token; the all-zero IDFA/AAID (a device that limits tracking) is no identifier."""
    s = token(v)
    return None if s is None or set(s) <= set("0-") else s


def host(v):
    """site_domain: the host name of site.domain as sent, or of the page URL (with or without a
    scheme; user info, port, path, query and fragment dropped), lower case, outer dots dropped; null
    unless it has two labels or more and no whitespace (no "localhost", no "about:blank")."""
    s = lower(text(v))
    if s is None:
        return None
    if not re.match(r"([a-z][a-z0-9+.-]*:)?//", s):
        s = "//" + s
    try:
        h = urllib.parse.urlsplit(s).hostname
    except ValueError:
        return None
    h = (h or "").strip(".")
    return h if re.fullmatch(r"[^.\s]+(\.[^.\s]+)+", h) else None


def integer(v):
    if isinstance(v, bool) or not isinstance(v, int):
        return None
    return v


def double(v):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def enum(v, table):
    return table.get(v) if isinstance(v, int) and not isinstance(v, bool) else None


def flag(v):
    """An int field with range [0, 1]: 0 or 1, also as true/false or a string holding them; else null."""
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, str):
        t = v.strip(" \t")
        v = {"true": 1, "false": 0}.get(t, int(t) if re.fullmatch(r"-?(0|[1-9][0-9]*)", t) else None)
    return v if isinstance(v, int) and v in (0, 1) else None


def us_privacy(v):
    """The IAB US privacy string: text, upper case; null unless `1` and three of Y, N, -."""
    s = upper(text(v))
    return s if s is not None and re.fullmatch(r"1[YN-]{3}", s) else None


def size(imp):
    """(width, height) from the first of banner, banner.format[0] and video that has both w and h
    (present, not null, not ""): a pair never comes from two places. None of them: (None, None)."""
    for where in (("banner",), ("banner", "format", 0), ("video",)):
        w, h = path(imp, *where, "w"), path(imp, *where, "h")
        if first(w) is not MISSING and first(h) is not MISSING:
            return integer(w), integer(h)
    return None, None


# The forms of a valid bundle (README, the bundle chain): a dotted package name, a numeric store id of
# 2-12 digits without a leading zero, an Amazon ASIN, a Samsung id, a Microsoft Store id.
BUNDLE_FORMS = (r"[a-z][a-z0-9_-]*(\.[a-z0-9_-]+)+", r"[1-9][0-9]{1,11}", r"b0[0-9a-z]{8}", r"g[0-9]{11,13}",
                r"9[0-9a-z]{11}")


def bundle(v):
    """app_bundle for the values the tests use, which are no store URLs: lower case, the first run of
    [a-z0-9._-], `._-` trimmed; null unless of a valid form (`app-bundle` is none). (Store URLs and
    the rest of the bundle chain are tested with the default rules.)"""
    s = lower(text(v))
    m = re.search(r"[a-z0-9._-]+", s or "")
    s = m.group(0).strip("._-") if m else ""
    s = SPEC_BUNDLES.get(s, s)
    return s if any(re.fullmatch(f, s) for f in BUNDLE_FORMS) else None


def strings(values):
    """An array<string> field: text on every element, nulls dropped, unique, at most 256."""
    out, seen = [], set()
    for v in values:
        s = text(v)
        if s is None or s in seen:
            continue
        seen.add(s)
        out.append(s)
        if len(out) == MAX_ITEMS:
            break
    return out


def each(value):
    """The elements of value if it is an array (a wildcard), else nothing."""
    return value if isinstance(value, list) else []


def expected_rows(request):
    """The rows the OpenRTB rules must write for one BidRequest (a dict whose `imp` is a non-empty
    array of objects), straight from the row contract."""
    app, site = request.get("app"), request.get("site")
    device = request.get("device")
    geo = path(device, "geo")
    regs = request.get("regs")
    common = {
        "request_id": text(request.get("id", MISSING)),
        "app_bundle": bundle(path(app, "bundle")),
        "site_domain": host(first(path(site, "domain"), path(site, "page"))),
        "publisher_id": text(first(path(app, "publisher", "id"), path(site, "publisher", "id"))),
        "device_os": token(path(device, "os")),
        "device_ifa": ifa(path(device, "ifa")),
        "language": language(first(path(device, "language"), path(device, "langb"))),
        "device_make": text(path(device, "make")),
        "device_model": text(first(path(device, "model"), path(device, "sua", "model"))),
        "os_version": text(path(device, "osv")),
        "device_type": enum(path(device, "devicetype"), DEVICE_TYPES),
        "connection_type": enum(path(device, "connectiontype"), CONNECTION_TYPES),
        "country": upper(text(path(geo, "country"))),
        "region": upper(text(path(geo, "region"))),
        "city": text(path(geo, "city")),
        "bcat": strings(each(request.get("bcat"))),
        "user_segments": strings(path(s, "id") for d in each(path(request, "user", "data"))
                                 for s in each(path(d, "segment"))),
        "lmt": integer(path(device, "lmt")),
        "att": integer(path(device, "ext", "atts")),
        "gdpr": flag(first(path(regs, "gdpr"), path(regs, "ext", "gdpr"))),
        "coppa": flag(path(regs, "coppa")),
        "us_privacy": us_privacy(first(path(regs, "us_privacy"), path(regs, "ext", "us_privacy"))),
    }
    rows = []
    for i, imp in enumerate(request["imp"]):
        row = dict(common)
        width, height = size(imp)
        row.update({
            "imp_id": text(imp.get("id", MISSING)),
            "imp_index": i,
            "ad_formats": [f for f in AD_FORMATS if isinstance(imp.get(f), dict)],
            "width": width,
            "height": height,
            "bidfloor": double(imp.get("bidfloor")),
            "bidfloor_cur": upper(text(imp.get("bidfloorcur", MISSING))) or "USD",
            "deal_ids": strings(path(d, "id") for d in each(path(imp, "pmp", "deals"))),
            "instl": integer(imp.get("instl")),
            "secure": integer(imp.get("secure")),
            "tagid": text(imp.get("tagid", MISSING)),
            "rewarded": flag(first(imp.get("rwdd", MISSING), path(imp, "ext", "prebid", "is_rewarded_inventory"))),
            "gpid": text(path(imp, "ext", "gpid")),
        })
        rows.append(row)
    return rows


def compact(request):
    return json.dumps(request, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def spec_files():
    return sorted(n for n in os.listdir(SPEC_DIR) if n.endswith(".json"))


def load_spec(name):
    with open(os.path.join(SPEC_DIR, name), encoding="utf-8") as f:
        return json.load(f)


def imp(i, **fields):
    r = {"id": str(i + 1), "banner": {"w": 320, "h": 50}}
    r.update(fields)
    return r


def request(rid, imps=None, **fields):
    r = {"id": rid, "imp": [imp(0)] if imps is None else imps,
         "app": {"bundle": "com.example.game", "publisher": {"id": "p1"}},
         "device": {"os": "android", "devicetype": 4, "connectiontype": 2,
                    "geo": {"country": "DEU", "region": "BY", "city": "München"}}}
    r.update(fields)
    return r


def nested(depth, leaf):
    for _ in range(depth):
        leaf = {"a": leaf}
    return leaf


# ------------------------------------------------------------------ the tests

class OpenRtb(FolderTest):

    def write(self, name, lines):
        p = self.path(name)
        with open(p, "wb") as f:
            f.write(b"".join((x if isinstance(x, bytes) else compact(x)) + b"\n" for x in lines))
        return p

    def ingest(self, inp, *extra, expect=0):
        """Run `bidnorm ingest --rules openrtb`; (meta, rows, rejects, stats), stats reconciled."""
        out = self.path("out.avro")
        p = subprocess.run([BIDNORM, "ingest", "-q", "--rules", "openrtb", "-o", out, *extra, inp],
                           capture_output=True, cwd=self.dir)
        self.assertEqual(p.returncode, expect, "bidnorm ingest --rules openrtb: exit %d: %s"
                         % (p.returncode, p.stderr.decode(errors="replace")))
        meta, rows = read_avro_file(out)
        rejects = read_jsonl(self.path("out.rejects.jsonl"))
        with open(self.path("out.stats.json")) as f:
            stats = json.load(f)
        self.assertEqual(stats["records_read"], stats["records_written"] + stats["records_rejected"])
        self.assertEqual(stats["records_rejected"], len(rejects))
        self.assertEqual(stats["rows_written"], len(rows))
        return meta, rows, rejects, stats

    def assert_rows(self, rows, expected, where):
        self.assertEqual(len(rows), len(expected), "%s: row count" % where)
        for n, (got, want) in enumerate(zip(rows, expected)):
            missing = sorted(set(want) - set(got))
            self.assertEqual(missing, [], "%s row %d: fields not in the output" % (where, n))
            diff = {k: (got[k], v) for k, v in want.items() if got[k] != v}
            self.assertEqual(diff, {}, "%s row %d: field: (written, expected)" % (where, n))

    # --- the specification's examples --------------------------------------

    def test_every_spec_example_gives_the_rows_of_the_contract(self):
        names = spec_files()
        self.assertEqual(len(names), 11)
        requests = [load_spec(n) for n in names]
        inp = self.write("spec.jsonl", requests)
        meta, rows, rejects, stats = self.ingest(inp)
        self.assertEqual(rejects, [])
        self.assertEqual(stats["records_read"], len(names))
        self.assertEqual(stats["records_written"], len(names))
        at = 0
        for name, req in zip(names, requests):
            want = expected_rows(req)
            with self.subTest(example=name):
                self.assert_rows(rows[at:at + len(want)], want, name)
            at += len(want)
        self.assertEqual(at, len(rows))

    def test_spec_examples_hand_checked(self):
        """The values a reader of the spec expects, written out - a check on the reference too."""
        names = ["2.6-mobile.json", "2.6-video.json", "2.6-pmp-with-direct-deal.json",
                 "2.6-expandable-creative.json", "2.5-expandable-creative.json",
                 "2.5-mobile.json", "2.5-native-ad.json", "2.6-simple-banner.json"]
        inp = self.write("spec.jsonl", [load_spec(n) for n in names])
        _, rows, _, _ = self.ingest(inp)
        mobile, video, pmp, exp26, exp25, m1, m2, native, simple = rows
        self.assertEqual(mobile["request_id"], "IxexyLDIIk")
        self.assertEqual((mobile["imp_id"], mobile["imp_index"]), ("1", 0))
        self.assertEqual(mobile["ad_formats"], ["banner"])
        self.assertEqual((mobile["width"], mobile["height"]), (728, 90))
        self.assertEqual((mobile["bidfloor"], mobile["bidfloor_cur"]), (0.5, "USD"))
        self.assertEqual(mobile["app_bundle"], SPEC_BUNDLES["12345"])
        self.assertEqual(mobile["site_domain"], None)
        self.assertEqual(mobile["publisher_id"], "agltb3B1Yi1pbmNyDAsSA0FwcBiJkfTUCV")
        self.assertEqual(mobile["device_os"], "ios")
        self.assertEqual(mobile["device_ifa"], "aa000dfe74168477c70d291f574d344790e0bb11")
        self.assertEqual((mobile["device_make"], mobile["device_model"]), ("Apple", "iPhone"))
        self.assertEqual((mobile["os_version"], mobile["language"]), ("6.1", "en"))
        self.assertEqual(mobile["device_type"], "mobile_tablet")
        self.assertEqual(mobile["connection_type"], "cellular_unknown")
        self.assertEqual(mobile["bcat"], ["IAB25", "IAB7-39", "IAB8-18", "IAB8-5", "IAB9-9"])
        self.assertEqual((mobile["instl"], mobile["secure"], mobile["lmt"]), (0, None, None))
        self.assertEqual(mobile["tagid"], "agltb3B1Yi1pbmNyDQsSBFNpdGUY7fD0FAw")
        self.assertEqual((mobile["country"], mobile["user_segments"], mobile["deal_ids"]), (None, [], []))

        self.assertEqual(video["ad_formats"], ["video"])
        self.assertEqual((video["width"], video["height"]), (640, 480))
        self.assertEqual((video["site_domain"], video["publisher_id"]), ("siteabcd.com", "pub12345"))
        self.assertEqual((video["device_os"], video["app_bundle"]), ("os x", None))
        self.assertEqual(video["user_segments"], ["12341318394918", "1234131839491234"])

        self.assertEqual(pmp["deal_ids"], ["AB-Agency1-0001", "XY-Agency2-0001"])
        self.assertEqual((pmp["width"], pmp["height"], pmp["bidfloor"]), (300, 250, 0.03))
        self.assertEqual((pmp["site_domain"], pmp["publisher_id"]), ("www.foobar.com", "8953"))

        self.assertEqual(exp26["user_segments"], [])        # 2.6: Data objects without segments
        self.assertEqual(exp25["user_segments"], ["12341318394918", "1234131839491234", "23423424"])

        self.assertEqual([m1["imp_index"], m2["imp_index"]], [0, 1])
        self.assertEqual([m1["imp_id"], m2["imp_id"]], ["1", "2"])
        self.assertEqual([m1["instl"], m2["instl"]], [None, 1])
        self.assertEqual([(m1["width"], m1["height"]), (m2["width"], m2["height"])], [(728, 90), (0, 0)])
        self.assertEqual([m1["tagid"], m2["tagid"]], ["agltb3B1Yi1pbmNyDQsSBFNpdGUY7fD0FAw",
                                                      "agltb3B1Yi1pbmNyDQsSBFNpdGUY7fD0FAwa"])
        for m in (m1, m2):
            self.assertEqual((m["country"], m["region"], m["city"]), ("USA", "CA", "Los Angeles"))
            self.assertEqual(m["request_id"], "IxexyLDIIk")

        self.assertEqual(native["ad_formats"], ["native"])
        self.assertEqual((native["width"], native["height"]), (None, None))

        # 2.6 simple banner: `user` is inside `site` and there is no device
        self.assertEqual((simple["device_os"], simple["device_type"], simple["user_segments"]),
                         (None, None, []))

    def test_schema_follows_the_contract(self):
        inp = self.write("one.jsonl", [load_spec("2.6-mobile.json")])
        meta, _, _, _ = self.ingest(inp)
        schema = json.loads(meta["avro.schema"])
        fields = {f["name"]: f for f in schema["fields"]}
        for name, avro_type in SCHEMA.items():
            with self.subTest(field=name):
                self.assertIn(name, fields)
                self.assertEqual(fields[name]["type"], avro_type)
        self.assertEqual(fields["bidfloor_cur"]["default"], "USD")
        for name in ("ad_formats", "bcat", "user_segments", "deal_ids"):
            self.assertEqual(fields[name]["default"], [])

    # --- one row per impression ---------------------------------------------

    def test_multi_imp_request_gives_one_row_per_imp_in_order(self):
        req = request("multi", imps=[
            {"id": "a", "banner": {"w": 300, "h": 250}, "bidfloor": 1.5, "bidfloorcur": "eur",
             "tagid": "home_top", "secure": 1},
            {"id": "b", "banner": {"format": [{"w": 320, "h": 480}, {"w": 480, "h": 320}]},
             "video": {"w": 640, "h": 360, "mimes": ["video/mp4"]}, "instl": 1,
             "pmp": {"deals": [{"id": "D1"}, {"id": "D2"}, {"id": "D1"}]}},
            {"id": "c", "native": {"request": "{}", "ver": "1.2"}, "bidfloor": 0.2},
        ], bcat=["IAB25", "IAB7-39"], user={"data": [
            {"id": "dp1", "segment": [{"id": "s1"}, {"id": "s2"}]},
            {"id": "dp2", "segment": [{"id": "s2"}, {"id": "s3"}, {"name": "no id"}]}]})
        inp = self.write("multi.jsonl", [request("before"), req, request("after")])
        _, rows, rejects, stats = self.ingest(inp)
        self.assertEqual(rejects, [])
        self.assertEqual(stats["records_written"], 3)
        self.assertEqual(stats["rows_written"], 5)
        self.assertEqual([r["request_id"] for r in rows], ["before", "multi", "multi", "multi", "after"])
        mine = rows[1:4]
        self.assertEqual([r["imp_index"] for r in mine], [0, 1, 2])
        self.assertEqual([r["imp_id"] for r in mine], ["a", "b", "c"])
        self.assertEqual([r["ad_formats"] for r in mine], [["banner"], ["banner", "video"], ["native"]])
        self.assertEqual([(r["width"], r["height"]) for r in mine], [(300, 250), (320, 480), (None, None)])
        self.assertEqual([r["bidfloor_cur"] for r in mine], ["EUR", "USD", "USD"])
        self.assertEqual([r["deal_ids"] for r in mine], [[], ["D1", "D2"], []])
        for r in mine:       # request-level fields repeat on every row
            self.assertEqual(r["bcat"], ["IAB25", "IAB7-39"])
            self.assertEqual(r["user_segments"], ["s1", "s2", "s3"])
            self.assertEqual((r["country"], r["city"], r["app_bundle"]), ("DEU", "München", "com.example.game"))
        self.assert_rows(mine, expected_rows(req), "multi")

    def test_size_fallbacks_and_ad_formats(self):
        cases = [  # (imp without id, (width, height), ad_formats)
            ({"banner": {"w": 300, "h": 250, "format": [{"w": 320, "h": 50}]}}, (300, 250), ["banner"]),
            ({"banner": {"format": [{"w": 320, "h": 50}, {"w": 300, "h": 250}]}}, (320, 50), ["banner"]),
            ({"banner": {"w": None, "h": None, "format": [{"w": 728, "h": 90}]}}, (728, 90), ["banner"]),
            # the pair comes from one place, the first with both: never the banner's 300 with format[0]'s 50
            ({"banner": {"w": 300, "format": [{"w": 320, "h": 50}]}}, (320, 50), ["banner"]),
            ({"banner": {"h": 250, "format": [{"w": 320}]}, "video": {"w": 640, "h": 480}}, (640, 480),
             ["banner", "video"]),
            ({"banner": {"w": 300, "h": ""}, "video": {"w": 640, "h": 480}}, (640, 480), ["banner", "video"]),
            ({"banner": {"w": 300}}, (None, None), ["banner"]),
            ({"banner": {"w": "wide", "h": 250}, "video": {"w": 640, "h": 480}}, (None, 250), ["banner", "video"]),
            ({"banner": {}, "video": {"w": 640, "h": 480}}, (640, 480), ["banner", "video"]),
            ({"banner": {"format": []}, "video": {"w": 1280, "h": 720}}, (1280, 720), ["banner", "video"]),
            ({"video": {"w": 1920, "h": 1080}, "audio": {}}, (1920, 1080), ["video", "audio"]),
            ({"banner": None, "video": {"w": 480, "h": 320}}, (480, 320), ["video"]),
            ({"banner": [], "native": {"request": "{}"}}, (None, None), ["native"]),
            ({"audio": {"mimes": ["audio/mp4"]}}, (None, None), ["audio"]),
            ({"banner": {"w": 0, "h": 0}}, (0, 0), ["banner"]),
            ({"native": {}, "audio": {}, "video": {}, "banner": {}}, (None, None),
             ["banner", "video", "native", "audio"]),
            ({}, (None, None), []),
        ]
        imps = []
        for i, (fields, _, _) in enumerate(cases):
            x = {"id": str(i)}
            x.update(fields)
            imps.append(x)
        req = request("sizes", imps=imps)
        _, rows, _, _ = self.ingest(self.write("sizes.jsonl", [req]))
        self.assertEqual([(r["width"], r["height"]) for r in rows], [c[1] for c in cases])
        self.assertEqual([r["ad_formats"] for r in rows], [c[2] for c in cases])
        self.assert_rows(rows, expected_rows(req), "sizes")

    def test_integer_enums(self):
        reqs = []
        for v in [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, -1]:
            r = request("e%d" % v)
            r["device"] = {"devicetype": v, "connectiontype": v}
            reqs.append(r)
        _, rows, _, _ = self.ingest(self.write("enums.jsonl", reqs))
        self.assertEqual([r["device_type"] for r in rows],
                         [None, "mobile_tablet", "pc", "ctv", "phone", "tablet", "connected_device",
                          "set_top_box", "dooh", None, None])
        self.assertEqual([r["connection_type"] for r in rows],
                         ["unknown", "ethernet", "wifi", "cellular_unknown", "2g", "3g", "4g", "5g",
                          None, None, None])
        for r, req in zip(rows, reqs):
            self.assert_rows([r], expected_rows(req), req["id"])

    def test_text_normalization_and_defaults(self):
        req = {
            "id": " r-1 ",
            "imp": [{"id": "\uff29\uff2d\uff30\uff11", "tagid": "  home \u00a0 banner  ",
                     "bidfloorcur": " gbp ", "banner": {"w": 320, "h": 50}},
                    {"id": 7, "bidfloorcur": None, "bidfloor": 2, "banner": {"w": 300, "h": 250}},
                    {"id": "x\u200by", "bidfloor": "n/a", "banner": {"w": 300, "h": 250}}],
            "site": {"domain": "WWW.Example.COM", "publisher": {"id": 8953}},
            "device": {"os": " Android ", "ifa": "AB-CD", "language": "EN", "make": "Samsung ",
                       "model": "SM-A155F", "osv": "14", "lmt": 1,
                       "geo": {"country": "usa", "region": "ca", "city": " Los  Angeles "}},
            "user": {"data": [{"segment": [{"id": 123}, {"id": " s 1 "}, {"id": "123"}, {"id": None}]}]},
            "bcat": ["IAB1", "IAB1", " IAB2 ", None],
        }
        _, rows, _, _ = self.ingest(self.write("text.jsonl", [req]))
        a, b, c = rows
        self.assertEqual(a["request_id"], "r-1")
        self.assertEqual([a["imp_id"], b["imp_id"], c["imp_id"]], ["IMP1", "7", "xy"])
        self.assertEqual(a["tagid"], "home banner")
        self.assertEqual([a["bidfloor_cur"], b["bidfloor_cur"], c["bidfloor_cur"]], ["GBP", "USD", "USD"])
        self.assertEqual([a["bidfloor"], b["bidfloor"]], [None, 2.0])
        self.assertEqual((a["site_domain"], a["publisher_id"], a["app_bundle"]), ("www.example.com", "8953", None))
        self.assertEqual((a["device_os"], a["device_ifa"], a["language"]), ("android", "ab-cd", "en"))
        self.assertEqual((a["device_make"], a["device_model"], a["os_version"]), ("Samsung", "SM-A155F", "14"))
        self.assertEqual((a["country"], a["region"], a["city"]), ("USA", "CA", "Los Angeles"))
        self.assertEqual(a["user_segments"], ["123", "s 1"])
        self.assertEqual(a["bcat"], ["IAB1", "IAB2"])
        self.assertEqual(a["lmt"], 1)
        self.assert_rows(rows[:2], expected_rows(req)[:2], "text")   # c's floor "n/a": not asserted

    def test_language_from_language_or_langb_and_model_from_sua(self):
        """device.language (ISO-639-1), else 2.6's device.langb (BCP-47): both reduced to the primary
        language subtag, so a request of either kind gives one token; what is no tag is null, counted.
        device.model, else device.sua.model. device.sua.platform is not read as the OS."""
        cases = [  # (device fields, language, device_model)
            ({"language": "en"}, "en", None),
            ({"language": "en-US"}, "en", None),                 # a region in device.language: the same token
            ({"language": " EN_gb "}, "en", None),               # a POSIX/Java locale, as SDKs send it
            ({"langb": "zh-Hant-TW"}, "zh", None),
            ({"language": "", "langb": "pt-BR"}, "pt", None),    # "" gives way, as in every fallback list
            ({"language": None, "langb": "en-US"}, "en", None),
            ({"langb": "de-CH-1901"}, "de", None),
            ({"langb": "sgn-BE-FR"}, "sgn", None),               # three-letter primary subtags stay
            ({"language": "fr", "langb": "de-DE"}, "fr", None),  # device.language wins
            ({"language": "English", "langb": "en"}, None, None),  # it wins even when it is no tag
            ({"langb": "x-klingon"}, None, None),                # private use: no language
            ({"langb": "i-navajo"}, None, None),
            ({"langb": "und"}, None, None),                      # undetermined
            ({"langb": "en-"}, None, None),
            ({"langb": "en--US"}, None, None),
            ({"langb": 7}, None, None),
            ({}, None, None),
            ({"model": "SM-A155F", "sua": {"model": "Pixel 8"}}, None, "SM-A155F"),
            ({"model": "", "sua": {"model": "Pixel 8"}}, None, "Pixel 8"),
            ({"sua": {"model": " Pixel\u00a08 ", "platform": {"brand": "Android", "version": ["14"]}}},
             None, "Pixel 8"),
            ({"sua": {"model": ""}}, None, None),                # desktop browsers send an empty model
            ({"sua": "mac"}, None, None),
        ]
        reqs = []
        for n, (dev, _, _) in enumerate(cases):
            reqs.append({"id": "l%d" % n, "imp": [{"id": "1", "banner": {"w": 320, "h": 50}}], "device": dev})
        _, rows, rejects, stats = self.ingest(self.write("lang.jsonl", reqs))
        self.assertEqual(rejects, [])
        self.assertEqual([(r["language"], r["device_model"]) for r in rows], [(l, m) for _, l, m in cases])
        self.assertEqual([r["device_os"] for r in rows], [None] * len(cases))
        for r, req in zip(rows, reqs):
            self.assert_rows([r], expected_rows(req), req["id"])
        lang = stats["fields"]["language"]
        # English, x-klingon, i-navajo, und, en-, en--US and 7 are no tags
        self.assertEqual((lang["present"], lang["null"], lang["changed_by"]["validation_failed"]), (16, 13, 7))

    def test_app_publisher_wins_over_site_publisher(self):
        both = request("both", app={"bundle": "Com.Foo.Bar", "publisher": {"id": "app-pub"}},
                       site={"domain": "foo.com", "publisher": {"id": "site-pub"}})
        app_null = request("null", app={"bundle": "com.foo.bar", "publisher": {"id": None}},
                           site={"publisher": {"id": "site-pub"}})
        _, rows, _, _ = self.ingest(self.write("pub.jsonl", [both, app_null]))
        self.assertEqual([r["publisher_id"] for r in rows], ["app-pub", "site-pub"])
        self.assertEqual([r["app_bundle"] for r in rows], ["com.foo.bar", "com.foo.bar"])
        self.assertEqual(rows[0]["site_domain"], "foo.com")
        self.assert_rows(rows, expected_rows(both) + expected_rows(app_null), "publisher")

    def test_site_domain_is_a_host_name_from_the_domain_or_else_the_page(self):
        cases = [  # (site, site_domain)
            ({"domain": "WWW.Example.COM", "page": "https://other.example.org/"}, "www.example.com"),
            ({"page": "https://User:pw@News.Example.co.uk:8443/a/b?c=d#e"}, "news.example.co.uk"),
            ({"domain": "", "page": "http://example.net/x"}, "example.net"),     # "" is no value
            ({"domain": None, "page": "example.org/path?q=1"}, "example.org"),  # a page without scheme
            ({"domain": "https://shop.example.com/cart"}, "shop.example.com"),   # a URL sent as the domain
            ({"page": "//cdn.example.com/x.html"}, "cdn.example.com"),
            ({"domain": "example.com."}, "example.com"),
            ({"page": "b\u00fccher.de/kat"}, "b\u00fccher.de"),
            ({"page": "http://localhost:3000/server.html"}, None),             # one label: no site
            ({"page": "about:blank"}, None),
            ({"domain": "not a domain"}, None),
            ({"domain": ""}, None),
        ]
        reqs = [request("d%d" % i, app=None, site=site) for i, (site, _) in enumerate(cases)]
        _, rows, rejects, _ = self.ingest(self.write("domains.jsonl", reqs))
        self.assertEqual(rejects, [])
        self.assertEqual([r["site_domain"] for r in rows], [want for _, want in cases])
        for r, req in zip(rows, reqs):
            self.assert_rows([r], expected_rows(req), req["id"])
        # "" gives way to the next source everywhere: an app publisher id "" to the site's
        _, rows, _, _ = self.ingest(self.write("pub.jsonl", [request("p", app={"publisher": {"id": ""}},
                                                                     site={"publisher": {"id": "s1"}})]))
        self.assertEqual(rows[0]["publisher_id"], "s1")

    def test_the_all_zero_ifa_is_no_identifier(self):
        ifas = ["00000000-0000-0000-0000-000000000000", "0000", "", "6D92078A-8246-4BA4-AE5B-76104861E7DC",
                "00000000-0000-0000-0000-000000000001"]
        reqs = [request("i%d" % i, device={"ifa": v, "os": "ios"}) for i, v in enumerate(ifas)]
        _, rows, _, _ = self.ingest(self.write("ifa.jsonl", reqs))
        self.assertEqual([r["device_ifa"] for r in rows],
                         [None, None, None, "6d92078a-8246-4ba4-ae5b-76104861e7dc",
                          "00000000-0000-0000-0000-000000000001"])
        for r, req in zip(rows, reqs):
            self.assert_rows([r], expected_rows(req), req["id"])

    def test_rewarded_gpid_and_privacy_signals(self):
        imps = [imp(0, rwdd=1), imp(1, rwdd=0, ext={"prebid": {"is_rewarded_inventory": 1}}),
                imp(2, rwdd=None, ext={"prebid": {"is_rewarded_inventory": 1}, "gpid": "/1234/home#top"}),
                imp(3, rwdd=True), imp(4, rwdd="1"), imp(5, rwdd=2), imp(6, ext={"gpid": ""}),
                imp(7, rwdd="yes", ext={"prebid": {"is_rewarded_inventory": 1}})]
        cases = [  # (regs, (gdpr, coppa, us_privacy))
            ({"gdpr": 1, "coppa": 0, "us_privacy": "1YNN"}, (1, 0, "1YNN")),            # 2.6
            ({"ext": {"gdpr": 1, "us_privacy": "1---"}}, (1, None, "1---")),              # 2.5
            ({"gdpr": 0, "ext": {"gdpr": 1}}, (0, None, None)),                          # 2.6 wins
            ({"gdpr": None, "us_privacy": "", "ext": {"gdpr": 1, "us_privacy": "1ynn"}}, (1, None, "1YNN")),
            ({"gdpr": 2, "coppa": "1", "us_privacy": "1YNNY"}, (None, 1, None)),
            ({"coppa": True, "us_privacy": "CPXxRfAPXxRfAAfKABENB-CgAAAAAAAAAAYgAAAAAAAA"}, (None, 1, None)),
            (None, (None, None, None)),
        ]
        reqs = [request("r0", imps=imps, regs=cases[0][0])]
        reqs += [request("r%d" % (i + 1), regs=regs) for i, (regs, _) in enumerate(cases[1:])]
        reqs[-1].pop("regs")
        _, rows, rejects, _ = self.ingest(self.write("signals.jsonl", reqs))
        self.assertEqual(rejects, [])
        mine = rows[:len(imps)]
        self.assertEqual([r["rewarded"] for r in mine], [1, 0, 1, 1, 1, None, None, None])
        self.assertEqual([r["gpid"] for r in mine], [None, None, "/1234/home#top", None, None, None, None, None])
        firsts = [mine[0]] + rows[len(imps):]
        self.assertEqual([(r["gdpr"], r["coppa"], r["us_privacy"]) for r in firsts], [want for _, want in cases])
        for req in reqs:
            self.assert_rows([r for r in rows if r["request_id"] == req["id"]], expected_rows(req), req["id"])

    # --- lines that give no rows ----------------------------------------------

    def test_lines_without_usable_imps_are_rejected_with_their_reason(self):
        lines = [
            (request("ok1"), None),
            ({"id": "r2", "app": {"bundle": "com.a.b"}}, "missing"),
            ({"id": "r3", "imp": []}, "empty"),
            ({"id": "r4", "imp": {"id": "1", "banner": {"w": 1, "h": 1}}}, "not_array"),
            ({"id": "r5", "imp": "1"}, "not_array"),
            ({"id": "r6", "imp": 3}, "not_array"),
            ({"id": "r7", "imp": True}, "not_array"),
            ({"id": "r8", "imp": [1]}, "not_object"),
            ({"id": "r9", "imp": [{"id": "1"}, None]}, "not_object"),
            ({"id": "r10", "imp": [["x"]]}, "not_object"),
            ({"id": "r11", "imp": [{"id": "1"}, {"id": "2"}, "3"]}, "not_object"),
            ({"imp": [{"id": "1"}]}, "missing_id"),
            ({"id": None, "imp": [{"id": "1"}]}, "missing_id"),
            ({"id": "r14", "imp": None}, "missing"),
            (request("ok2", imps=[imp(0), imp(1)]), None),
        ]
        inp = self.write("bad.jsonl", [l for l, _ in lines])
        _, rows, rejects, stats = self.ingest(inp, "--max-reject-rate", "1")
        self.assertEqual([r["request_id"] for r in rows], ["ok1", "ok2", "ok2"])
        self.assertEqual([r["imp_index"] for r in rows], [0, 0, 1])
        want = [(n + 1, REASONS[kind]) for n, (_, kind) in enumerate(lines) if kind]
        self.assertEqual([(r["line"], r["reason"]) for r in rejects], want)
        for r in rejects:
            self.assertEqual(r["raw"], compact(lines[r["line"] - 1][0]).decode())
            self.assertTrue(r["message"])
            if r["reason"] == REASONS["missing_id"]:
                self.assertEqual(r["field"], REQUIRED_FIELD)
        self.assertEqual(stats["records_read"], len(lines))
        self.assertEqual(stats["records_written"], 2)
        self.assertEqual(stats["rows_written"], 3)
        by_reason = {}
        for _, reason in want:
            by_reason[reason] = by_reason.get(reason, 0) + 1
        self.assertEqual({k: v for k, v in stats["rejected_by_reason"].items() if v}, by_reason)

    def test_reject_rate_counts_lines_not_rows(self):
        """One bad line among many multi-imp lines is 1 reject per line read, whatever the rows."""
        good = [request("g%d" % i, imps=[imp(k) for k in range(5)]) for i in range(99)]
        inp = self.write("rate.jsonl", good + [{"id": "bad", "imp": []}])
        _, rows, rejects, stats = self.ingest(inp)     # 1 % of the lines: within the default 0.01
        self.assertEqual((stats["records_read"], stats["records_rejected"]), (100, 1))
        self.assertEqual(len(rows), 99 * 5)
        inp = self.write("rate2.jsonl", good[:49] + [{"id": "bad", "imp": []}])
        out = self.path("fail.avro")
        p = subprocess.run([BIDNORM, "ingest", "-q", "--rules", "openrtb", "-o", out, inp],
                           capture_output=True, cwd=self.dir)
        self.assertEqual(p.returncode, 3, p.stderr.decode(errors="replace"))
        self.assertFalse(os.path.exists(out))

    # --- hostile requests ----------------------------------------------------

    def test_a_thousand_imps_are_rows_ten_thousand_are_rejected(self):
        # limits.max_rows (1,000 in the shipped rules) bounds the rows, and so the memory, of one line
        def big(name, n):
            return request(name, imps=[{"id": "i%d" % k, "banner": {"w": 300, "h": 250}, "bidfloor": k / 100}
                                       for k in range(n)])
        n = 1000
        inp = self.write("big.jsonl", [request("first"), big("big", n), big("huge", 10000), request("last")])
        _, rows, rejects, stats = self.ingest(inp, "--max-reject-rate", "1")
        self.assertEqual([(r["line"], r["reason"], r["message"]) for r in rejects],
                         [(3, REASONS["too_many"], "'imp' has 10000 elements, more than limits.max_rows (1000)")])
        self.assertEqual(stats["records_written"], 3)
        self.assertEqual(stats["rows_written"], n + 2)
        mine = rows[1:-1]
        self.assertEqual([r["imp_index"] for r in mine], list(range(n)))
        self.assertEqual([r["imp_id"] for r in mine], ["i%d" % k for k in range(n)])
        self.assertEqual([r["bidfloor"] for r in mine], [k / 100 for k in range(n)])
        self.assertEqual((rows[0]["request_id"], rows[-1]["request_id"]), ("first", "last"))

    def test_deep_ext_objects(self):
        ok = request("deep", imps=[imp(0, ext=nested(400, {"x": 1}))], ext=nested(400, [1, 2]))
        ok["device"]["ext"] = nested(300, "y")
        too_deep = b'{"id":"deeper","imp":[{"id":"1","ext":' + b'{"a":' * 1000 + b"1" + b"}" * 1000 + b"}]}"
        inp = self.write("deep.jsonl", [ok, too_deep, request("after")])
        _, rows, rejects, _ = self.ingest(inp, "--max-reject-rate", "1")
        self.assertEqual([r["request_id"] for r in rows], ["deep", "after"])
        self.assert_rows(rows[:1], expected_rows(ok), "deep")
        self.assertEqual([(r["line"], r["reason"]) for r in rejects], [(2, REASONS["too_deep"])])

    def test_huge_user_data_bcat_and_deals_are_capped(self):
        data = [{"id": "dp%d" % d, "name": "provider %d" % d, "ext": {"segtax": 4},
                 "segment": [{"id": "s%d" % ((d * 20 + k) % 5000), "value": "v"} for k in range(20)]}
                for d in range(500)]                                   # 10,000 ids, 5,000 distinct
        deals = [{"id": "deal-%d" % (k % 300), "bidfloor": 1.0} for k in range(600)]
        req = request("huge", imps=[imp(0, pmp={"private_auction": 0, "deals": deals})],
                      user={"id": "u", "data": data}, bcat=["IAB%d" % (k % 400) for k in range(1000)])
        inp = self.write("huge.jsonl", [req])
        _, rows, rejects, _ = self.ingest(inp)
        self.assertEqual(rejects, [])
        (r,) = rows
        self.assertEqual(r["user_segments"], ["s%d" % k for k in range(256)])
        self.assertEqual(r["deal_ids"], ["deal-%d" % k for k in range(256)])
        self.assertEqual(r["bcat"], ["IAB%d" % k for k in range(256)])
        self.assert_rows(rows, expected_rows(req), "huge")

    def test_wildcards_skip_what_is_not_an_array_or_object(self):
        req = request("odd", imps=[imp(0, pmp={"deals": {"id": "not-a-list"}}),
                                   imp(1, pmp={"deals": [None, 5, {"id": "D"}, {"x": 1}]})],
                      user={"data": [None, {"segment": "s"}, {"segment": [None, {"id": "ok"}]}]},
                      bcat="IAB1")
        _, rows, rejects, _ = self.ingest(self.write("odd.jsonl", [req]))
        self.assertEqual(rejects, [])
        self.assertEqual([r["deal_ids"] for r in rows], [[], ["D"]])
        self.assertEqual([r["user_segments"] for r in rows], [["ok"], ["ok"]])
        self.assertEqual([r["bcat"] for r in rows], [[], []])

    # --- requests written by others: Prebid Server's tests ----------------------

    def prebid_requests(self):
        """(names, requests, rows of each name) of tests/data/openrtb/prebid-server, ingested in name order."""
        names = sorted(n for n in os.listdir(PREBID_DIR) if n.endswith(".json"))
        requests = []
        for n in names:
            with open(os.path.join(PREBID_DIR, n), encoding="utf-8") as f:
                requests.append(json.load(f))
        _, rows, rejects, stats = self.ingest(self.write("prebid.jsonl", requests), "--max-reject-rate", "1")
        by_name, at = {}, 0
        for n, req in zip(names, requests):
            k = len(req["imp"]) if isinstance(req.get("imp"), list) else 0
            by_name[n] = rows[at:at + k]
            at += k
        self.assertEqual(at, len(rows))
        return names, requests, rows, rejects, stats, by_name

    def test_prebid_server_requests_give_the_rows_of_the_contract(self):
        """Every request is written, one row per impression, each field the value the contract gives,
        or rejected with the contract's reason: only the request without `imp` is."""
        names, requests, rows, rejects, stats, by_name = self.prebid_requests()
        self.assertEqual(len(names), 43)
        want_rejects = [(n + 1, REASONS["missing"]) for n, r in enumerate(requests) if r.get("imp") is None]
        self.assertEqual([(r["line"], r["reason"]) for r in rejects], want_rejects)
        self.assertEqual([names[line - 1] for line, _ in want_rejects], ["invalid-only-request-id.json"])
        self.assertEqual(rejects[0]["message"], "no 'imp' (the array whose elements become records)")
        self.assertEqual((stats["records_read"], stats["records_written"], stats["rows_written"]), (43, 42, 52))
        for name, req in zip(names, requests):
            if req.get("imp") is None:
                continue
            want = expected_rows(req)
            with self.subTest(request=name):
                self.assert_rows(by_name[name], want, name)
                for r in by_name[name]:     # every field is the reference's, or a wrapper's (null here)
                    self.assertEqual(sorted(set(r) - set(want[0])), ["click", "install", "ts"])
                    self.assertEqual((r["ts"], r["click"], r["install"]), (None, None, None))

    def test_prebid_server_requests_hand_checked(self):
        """What a reader of each request expects, written out: a check on the reference, and the
        findings of running the rules on requests no one here wrote (README, OpenRTB)."""
        _, _, _, _, _, rows = self.prebid_requests()

        def one(name):
            (r,) = rows[name]
            return r

        # web requests from Prebid carry site.page and rarely site.domain: the domain is the page's host
        self.assertEqual(one("endpoint-device-sua.json")["site_domain"], "prebid.org")
        # a structured user agent (2.6 device.sua) and no device.model: the model is sua's; its platform
        # brand ("MS" here) is not read as the OS
        d = one("endpoint-device-sua.json")
        self.assertEqual((d["device_model"], d["device_os"], d["device_make"]), ("mac", None, None))
        self.assertEqual(one("endpoint-skadn.json")["site_domain"], "test.somepage.com")
        self.assertEqual(one("invalid-site-app-both.json")["site_domain"], "test.mysite.com")
        self.assertEqual(one("java-pubmatic-bid-request.json")["site_domain"], "www.example.com")   # site.domain
        self.assertEqual(one("pubnative-native.json")["site_domain"], "example.com")
        # ... and a page on localhost names no site
        self.assertEqual(one("smaato-multiple-media-types-skadn.json")["site_domain"], None)
        # the all-zero IDFA of an iOS device whose user did not allow tracking (ATT status 0) is no identifier
        u = one("unicorn-banner-app.json")
        self.assertEqual((u["device_ifa"], u["att"], u["device_os"], u["os_version"]), (None, 0, "ios", "14.4"))
        self.assertEqual((u["device_make"], u["device_model"], u["connection_type"]),
                         ("Apple", "Simulator", "ethernet"))
        self.assertEqual((u["app_bundle"], u["publisher_id"], u["secure"]), ("net.ada.test", "test", 1))
        self.assertEqual(one("endpoint-app-ios140-no-ifa.json")["device_ifa"], None)             # "ifa": ""
        self.assertEqual(one("inmobi-simple-app-video.json")["device_ifa"], "9d8fe0a9-c0dd-4482-b16b-5709b00c608d")
        a = one("amx-app-simple.json")
        self.assertEqual((a["app_bundle"], a["width"], a["height"], a["bidfloor"], a["instl"], a["secure"]),
                         ("639881495", 320, 50, 0.5, 1, 1))
        self.assertEqual((a["device_ifa"], a["connection_type"], a["language"], a["site_domain"]),
                         ("201461f8-0f14-4add-a87f-aaaaaaaaa", "wifi", "en", None))
        # multi-format impressions: the banner's size (banner comes first); every format is listed
        self.assertEqual([(r["width"], r["height"], r["ad_formats"]) for r in rows["improvedigital-app-multi.json"]],
                         [(300, 250, ["banner"]), (1920, 1080, ["video"]), (300, 250, ["banner", "video"])])
        self.assertEqual([(r["width"], r["height"], r["ad_formats"])
                          for r in rows["mobilefuse-multi-imps-multi-format.json"]],
                         [(320, 50, ["banner", "video"]), (300, 50, ["banner", "native"])])
        self.assertEqual([(r["imp_index"], r["imp_id"], r["width"], r["height"])
                          for r in rows["ix-multi-imp-requests.json"]],
                         [(0, "test-imp-id-1", 300, 250), (1, "test-imp-id-2", 940, 560),
                          (2, "test-imp-id-3", 300, 600), (3, "test-imp-id-4", 300, 250),
                          (4, "test-imp-id-5", 300, 250)])
        self.assertEqual([(r["imp_id"], r["ad_formats"], r["width"]) for r in rows["ix-structured-pod.json"]],
                         [("test-imp-id-1", ["video"], 940), ("test-imp-id-2", ["video"], 940)])
        for name, kind in (("improvedigital-audio.json", "audio"), ("pubmatic-native.json", "native"),
                           ("pubnative-native.json", "native")):
            self.assertEqual((one(name)["ad_formats"], one(name)["width"], one(name)["height"]), ([kind], None, None))
        # sizes come as pairs: a banner with only w and a flexible-size format with w and wratio offer no
        # size (no w with a null h); a format with h 0 is a pair, as sent
        self.assertEqual([(one(n)["width"], one(n)["height"]) for n in
                          ("invalid-banner-w-only.json", "invalid-format-no-height.json",
                           "invalid-format-two-widths.json")], [(None, None), (30, 0), (None, None)])
        # repeated impression ids (invalid for Prebid) are still two impressions
        self.assertEqual([(r["imp_index"], r["imp_id"], r["width"]) for r in rows["invalid-imp-id-duplicates.json"]],
                         [(0, "some-impression-id", 300), (1, "some-impression-id", 200)])
        self.assertEqual([r["bidfloor"] for r in rows["openx-optional-params.json"]], [None, 0.5])
        # an impression with nothing in it is a row with nothing but its position
        e = one("invalid-imp-empty-object.json")
        self.assertEqual((e["imp_index"], e["imp_id"], e["ad_formats"], e["width"]), (0, None, [], None))
        self.assertEqual([one(n)["deal_ids"] for n in ("endpoint-app.json", "endpoint-site-has-ipv6.json")],
                         [["some-deal-id"], ["some-deal-id"]])
        self.assertEqual(one("java-pubmatic-bid-request.json")["tagid"], "slot9")
        # both app and site: the bundle from app; neither names a publisher or domain
        t = one("rubicon-25-26-transition-period.json")
        self.assertEqual((t["app_bundle"], t["site_domain"], t["publisher_id"], t["instl"]),
                         ("com.wls.testwlsapplication", None, None, 1))
        # segment ids of every taxonomy (user.data[].ext.segtax) together, as user.data sends them
        self.assertEqual(t["user_segments"], ["idToCopy", "shouldNotBeCopied", "shouldNotBeCopied2", "idToCopy2",
                                              "shouldNotBeCopied3"])
        # left for a product decision (README, OpenRTB): user.geo is not read, so a request that locates
        # its user only there has no country
        self.assertEqual(one("rubicon-app-imp-fpd.json")["country"], None)
        # rewarded inventory: 2.6's imp.rwdd, or Prebid's 2.5 imp.ext.prebid.is_rewarded_inventory
        self.assertEqual(one("openx-video-rewarded.json")["rewarded"], 1)                        # "rwdd": 1
        for name in ("liftoff-app-video-rewarded.json", "pubmatic-video-rewarded.json",
                     "endpoint-ortb-2.5-to-2.6-upconvert.json"):
            self.assertEqual(one(name)["rewarded"], 1, name)
        self.assertEqual([r["rewarded"] for r in rows["improvedigital-app-multi.json"]], [None, None, None])
        # the global placement id is its own field: tagid stays what imp.tagid says
        f = one("rubicon-app-imp-fpd.json")
        self.assertEqual((f["gpid"], f["tagid"]), ("gpid", None))
        # privacy signals: regs.gdpr, else 2.5's regs.ext.gdpr; coppa; the US privacy string when well formed
        p = one("endpoint-ortb-2.5-to-2.6-upconvert.json")
        self.assertEqual((p["gdpr"], p["coppa"], p["us_privacy"]), (1, None, "1YYY"))
        self.assertEqual((one("endpoint-all-ext.json")["gdpr"], one("endpoint-all-ext.json")["us_privacy"]),
                         (1, "1NYN"))
        self.assertEqual([one(n)["gdpr"] for n in ("amx-app-simple.json", "java-rubicon-bid-request.json")], [0, 0])
        self.assertEqual(one("invalid-regs-ext-gdpr-string.json")["gdpr"], None)                # "gdpr": "foo"
        s = one("smaato-simple-banner-app.json")                # "us_privacy": "uspConsentString": no such string
        self.assertEqual((s["gdpr"], s["coppa"], s["us_privacy"]), (1, 1, None))
        self.assertEqual(one("rubicon-25-26-transition-period.json")["us_privacy"], None)      # "us_privacy"
        # consent strings (user.consent, regs.gpp) are personal data: no field holds them
        for name, consent in (("endpoint-all-ext.json", "gdpr-consent-string"),
                              ("smaato-simple-banner-app.json", "gdprConsentString"),
                              ("openx-simple-banner-with-gpp.json", "gppString")):
            self.assertNotIn(consent, one(name).values(), name)

    def test_every_prebid_request_names_its_source(self):
        """tests/data/openrtb/README.md gives each file's source path and commit."""
        with open(os.path.join(SPEC_DIR, "README.md"), encoding="utf-8") as f:
            readme = f.read()
        names = sorted(n for n in os.listdir(PREBID_DIR) if n.endswith(".json"))
        for name in names:
            self.assertRegex(readme, r"\n\| `%s` \| `[^`]+\.json` \| `[0-9a-f]{40}` \|" % re.escape(name))
        listed = re.findall(r"\n\| `([^`]+\.json)` \| `[^`]+\.json` \| `[0-9a-f]{40}` \|", readme)
        self.assertEqual(sorted(listed), names)

    # --- the committed sample --------------------------------------------------

    def test_sample_rows_match_the_requests(self):
        """samples/openrtb-*.jsonl.zst: every line is written or rejected (with the reason the
        contract gives), and the ids, positions, ad formats and enums of every row match."""
        with open(SAMPLE, "rb") as f:
            data = zstandard.ZstdDecompressor().decompressobj().decompress(f.read())
        expected, want_rejects, lines = [], [], 0
        for n, raw in enumerate(data.split(b"\n")):
            if not raw.strip():
                continue
            lines += 1
            try:
                req = json.loads(raw.decode("utf-8", "surrogateescape"))
            except ValueError:
                want_rejects.append((n + 1, "invalid_json"))
                continue
            reason = None
            if not isinstance(req, dict):
                reason = "not_object"
            elif text(req.get("id", MISSING)) is None:
                reason = REASONS["missing_id"]
            elif req.get("imp") is None:
                reason = REASONS["missing"]
            elif not isinstance(req["imp"], list):
                reason = REASONS["not_array"]
            elif not req["imp"]:
                reason = REASONS["empty"]
            elif not all(isinstance(x, dict) for x in req["imp"]):
                reason = REASONS["not_object"]
            if reason:
                want_rejects.append((n + 1, reason))
            else:
                expected.append(req)
        self.assertGreaterEqual(len({r for _, r in want_rejects}), 5)   # the sample has them all
        _, rows, rejects, stats = self.ingest(SAMPLE)
        self.assertEqual(stats["records_read"], lines)
        self.assertEqual([(r["line"], r["reason"]) for r in rejects], want_rejects)
        want = [row for req in expected for row in expected_rows(req)]
        self.assertEqual(len(rows), len(want))
        keys = ("request_id", "imp_id", "imp_index", "ad_formats", "device_type", "connection_type", "width",
                "height", "rewarded", "gpid", "gdpr", "coppa", "us_privacy")
        for n, (got, w) in enumerate(zip(rows, want)):
            d = {k: (got[k], w[k]) for k in keys
                 if got[k] != w[k] and not (k.endswith("_type") and w[k] is None)}
            self.assertEqual(d, {}, "sample row %d" % n)


class GenSamplesOpenRtb(unittest.TestCase):
    """tools/gen-samples --format openrtb: reproducible, and --wrap wraps the same requests."""
    GEN = os.path.join(SOURCE, "tools", "gen-samples")

    def gen(self, *args):
        p = subprocess.run([self.GEN, "--format", "openrtb", *args], capture_output=True)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        return p.stdout

    def test_the_committed_sample_is_what_the_documented_command_writes(self):
        with open(SAMPLE, "rb") as f:
            committed = zstandard.ZstdDecompressor().decompressobj().decompress(f.read())
        self.assertEqual(self.gen("--records", "3000", "--seed", "20261120"), committed)

    def test_wrap_keeps_the_requests_and_adds_ts_and_labels(self):
        plain = self.gen("--records", "400", "--seed", "7", "--clean").splitlines()
        wrapped = self.gen("--records", "400", "--seed", "7", "--clean", "--wrap").splitlines()
        self.assertEqual(len(plain), 400)
        self.assertEqual(len(wrapped), 400)
        for a, b in zip(plain, wrapped):
            w = json.loads(b)
            self.assertEqual(list(w), ["ts", "request", "label"])
            self.assertEqual(w["request"], json.loads(a))
            self.assertIn(w["label"]["click"], (0, 1))
            self.assertIn(w["label"]["install"], (0, 1))

    def test_clean_requests_all_give_rows(self):
        for line in self.gen("--records", "300", "--seed", "3", "--clean").splitlines():
            r = json.loads(line)
            self.assertTrue(r["imp"] and all(isinstance(x, dict) for x in r["imp"]))
            self.assertTrue(expected_rows(r))

    def test_wrap_needs_openrtb(self):
        p = subprocess.run([self.GEN, "--wrap", "--records", "1"], capture_output=True)
        self.assertEqual(p.returncode, 2)
        self.assertIn("--wrap needs --format openrtb", p.stderr.decode())


if __name__ == "__main__":
    unittest.main()


class ShippedRuleSets(unittest.TestCase):
    """--rules NAME: the shipped sets by name, everywhere a rule file is accepted."""

    def bidnorm(self, *args, expect=0):
        p = subprocess.run([BIDNORM, *args], capture_output=True)
        self.assertEqual(p.returncode, expect, p.stderr.decode())
        return p

    def test_print_and_schema_by_name(self):
        with open(os.path.join(SOURCE, "rules", "openrtb.yaml"), "rb") as f:
            self.assertEqual(self.bidnorm("rules", "--print", "openrtb").stdout, f.read())
        with open(os.path.join(SOURCE, "rules", "bidlog.yaml"), "rb") as f:
            text = f.read()
        self.assertEqual(self.bidnorm("rules", "--print", "bidlog").stdout, text)
        self.assertEqual(self.bidnorm("rules", "--print-default").stdout, text)
        schema = json.loads(self.bidnorm("schema", "--rules", "openrtb").stdout)
        self.assertEqual((schema["namespace"], schema["name"]), ("ads.openrtb", "Impression"))
        p = self.bidnorm("rules", "--print", "openrtp", expect=2)
        self.assertEqual(p.stderr.decode(), "bidnorm rules: no shipped rule set named 'openrtp' (expected bidlog or "
                         "openrtb)\nTry 'bidnorm rules --help'.\n")

    def test_a_name_that_is_no_shipped_set_is_a_path(self):
        p = self.bidnorm("schema", "--rules", "openrtp", expect=5)
        self.assertEqual(p.stderr.decode(), "bidnorm schema: openrtp: cannot open: No such file or directory\n")

    def test_ingest_summary_counts_rows(self):
        with tempfile.TemporaryDirectory() as d:
            inp = os.path.join(d, "r.jsonl")
            with open(inp, "wb") as f:
                f.write(compact(request("a", imps=[imp(0), imp(1)])) + b"\n" + compact(request("b")) + b"\n")
            p = self.bidnorm("ingest", "--rules", "openrtb", "-o", os.path.join(d, "o.avro"), inp)
            self.assertIn("bidnorm ingest: done: 2 records read, 2 written (3 rows), 0 rejected;", p.stderr.decode())
            meta, _ = read_avro_file(os.path.join(d, "o.avro"))
            self.assertEqual(meta["bidnorm.rules.source"], b"<openrtb>")


class Wrapper(unittest.TestCase):
    """A logging wrapper around the request is a one-line change of the shipped rule file: `root: request`."""

    def test_root_reads_the_wrapped_request_and_the_wrappers_ts_and_labels(self):
        with open(os.path.join(SOURCE, "rules", "openrtb.yaml")) as f:
            text = f.read()
        self.assertEqual(text.count("\n# root: request\n"), 1)
        with tempfile.TemporaryDirectory() as d:
            rules = os.path.join(d, "wrapped.yaml")
            with open(rules, "w") as f:
                f.write(text.replace("\n# root: request\n", "\nroot: request\n"))
            req = request("w1", imps=[imp(0), imp(1)])
            lines = [{"ts": 1795176001, "request": req, "label": {"click": 1, "install": 0}},
                     {"ts": "2026-11-20T12:00:02Z", "request": request("w2"), "label": {"click": 2}},
                     {"ts": 1795176003, "label": {"click": 0}}]
            inp = os.path.join(d, "wrapped.jsonl")
            with open(inp, "wb") as f:
                f.write(b"".join(compact(x) + b"\n" for x in lines))
            out = os.path.join(d, "o.avro")
            p = subprocess.run([BIDNORM, "ingest", "-q", "--rules", rules, "--max-reject-rate", "1", "-o", out, inp],
                               capture_output=True)
            self.assertEqual(p.returncode, 0, p.stderr.decode())
            rows = read_records(out)
            self.assertEqual([(r["request_id"], r["imp_index"], r["click"], r["install"]) for r in rows],
                             [("w1", 0, 1, 0), ("w1", 1, 1, 0), ("w2", 0, None, None)])
            self.assertEqual([r["ts"].timestamp() for r in rows], [1795176001, 1795176001, 1795176002])
            # every other field is what the bare request gives
            bare = [x for x in expected_rows(req)]
            for got, want in zip(rows[:2], bare):
                self.assertEqual({k: got[k] for k in want}, want)
            rejects = read_jsonl(os.path.join(d, "o.rejects.jsonl"))
            self.assertEqual([(r["line"], r["reason"]) for r in rejects], [(3, REASONS["missing"])])


class WatchOpenRtb(unittest.TestCase):
    def test_watch_takes_the_shipped_openrtb_rules_by_name(self):
        with tempfile.TemporaryDirectory() as d:
            inbox, outbox, done = (os.path.join(d, x) for x in ("in", "out", "done"))
            os.mkdir(inbox)
            with open(os.path.join(inbox, "h12.jsonl"), "wb") as f:
                f.write(compact(request("a", imps=[imp(0), imp(1), imp(2)])) + b"\n")
            p = subprocess.run([BIDNORM, "watch", "--inbox", inbox, "--outbox", outbox, "--done", done,
                                "--rules", "openrtb", "--settle", "0", "--once"], capture_output=True)
            self.assertEqual(p.returncode, 0, p.stderr.decode())
            rows = read_records(os.path.join(outbox, "h12.avro"))
            self.assertEqual([(r["request_id"], r["imp_index"]) for r in rows], [("a", 0), ("a", 1), ("a", 2)])
