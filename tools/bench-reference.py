#!/usr/bin/env python3
"""bench-reference.py - the reference Python pipeline that tools/bench compares bidnorm with.

What a data scientist would write with the standard library plus python3-zstandard and
python3-avro to do the work of `bidnorm ingest` with the default rules
(rules/bidlog.yaml): stream-decompress the zstd JSON Lines, json.loads every line,
repair text (cp1252 bytes, mojibake, NFKC, invisible characters, whitespace), clean app
bundles with `re` (a Python reimplementation of the rules' bundle chain), coerce numbers,
drop serving-invalid features, compute the ctr ratio (-1 when undefined) and write Avro
with avro.datafile.DataFileWriter, zstandard codec, using the schema `bidnorm schema`
prints. Rejected lines are counted, not written. It is a benchmark baseline, close to the
rules but not a conformance reference: bidnorm's own tests define the exact behaviour.

Usage: tools/bench-reference.py --schema SCHEMA.avsc -o OUT.avro INPUT.jsonl.zst
Prints "records_read records_written records_rejected" to stdout.
"""

import argparse
import codecs
import datetime
import io
import json
import re
import sys
import unicodedata

import avro.datafile
import avro.io
import avro.schema
import zstandard

MAX_TEXT_BYTES = 256
UTC = datetime.timezone.utc
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=UTC)


def _cp1252_fallback(err):
    """Decode error handler: bytes that are not UTF-8 are read as cp1252 (Latin-1 for its holes)."""
    bad = err.object[err.start:err.end]
    return "".join(bytes([b]).decode("cp1252", "ignore") or chr(b) for b in bad), err.end


def _latin1_holes(err):
    """Encode error handler: the five code points cp1252 leaves undefined (U+0081, ...) as Latin-1."""
    chunk = err.object[err.start:err.end]
    if all(ord(c) < 256 for c in chunk):
        return chunk.encode("latin-1"), err.end
    raise err


codecs.register_error("bench_cp1252", _cp1252_fallback)
codecs.register_error("bench_latin1", _latin1_holes)

# --- text ------------------------------------------------------------------------------

# A UTF-8 lead byte read as cp1252/Latin-1, followed by a continuation byte read the same way.
MOJIBAKE = re.compile("[\u00c2-\u00f4][\u0080-\u00bf\u0152\u0153\u0160\u0161\u0178\u017d\u017e"
                      "\u0192\u02c6\u02dc\u2013\u2014\u2018-\u201e\u2020-\u2022\u2026\u2030"
                      "\u2039\u203a\u20ac\u2122]")
INVISIBLE = re.compile("[\u0000-\u0008\u000e-\u001f\u007f-\u009f\u00ad\u200b-\u200f\u202a-\u202e"
                       "\u2060-\u2064\ufeff]")


def fix_mojibake(s):
    for _ in range(3):  # double-encoded text needs two rounds
        if not MOJIBAKE.search(s):
            break
        try:
            s = s.encode("cp1252", "bench_latin1").decode("utf-8")
        except UnicodeError:
            break
    return s


def truncate_bytes(s, n):
    b = s.encode("utf-8")
    return s if len(b) <= n else b[:n].decode("utf-8", "ignore")


def text(s, max_bytes=MAX_TEXT_BYTES):
    if not s.isascii():
        s = fix_mojibake(s)
        s = unicodedata.normalize("NFKC", s)
    s = INVISIBLE.sub("", s)
    s = " ".join(s.split())
    return truncate_bytes(s, max_bytes) or None


def token(s):
    s = text(s)
    return s and truncate_bytes(s.lower(), 64) or None


# --- bundle chain (rules/bidlog.yaml: chains.bundle) ------------------------------------------

EXTRACTS = [re.compile(p) for p in (
    r"play\.google\.com/store/apps/details\?(?:[^#]*?&)?id=([^&#]*)",
    r"^market://details\?(?:[^#]*?&)?id=([^&#]*)",
    r"(?:apps|itunes)\.apple\.com/(?:[^?#]*/)?id([0-9]+)",
    r"^id([0-9]+)$",
)]
FIRST_RUN = re.compile(r"[a-z0-9._-]+")
VALID_BUNDLE = re.compile(r"^(?:[a-z][a-z0-9_-]*(?:\.[a-z0-9_-]+)+|[0-9]{6,12})$")


def bundle(s):
    s = text(s)
    if s is None:
        return None
    s = s.lower()
    for rx in EXTRACTS:
        m = rx.search(s)
        if m:
            s = m.group(1)
    m = FIRST_RUN.search(s)
    if not m:
        return None
    s = truncate_bytes(m.group(0).strip("._-"), 128).strip("._-")
    return s if VALID_BUNDLE.match(s) else None


# --- scalars -----------------------------------------------------------------------------------

NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
TS_TEXT = re.compile(r"(\d{4}-\d\d-\d\d)[Tt ](\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(?:([Zz])|([-+]\d\d)(?::?(\d\d))?)")
INVALID = object()


def as_string(v, chain):
    if v is None:
        return None
    if isinstance(v, bool):
        v = "true" if v else "false"
    elif isinstance(v, (int, float)):
        v = json.dumps(v)
    elif not isinstance(v, str):
        return None
    return chain(v)


def as_number(v, integer):
    """A JSON number, or a string holding one (spaces allowed); labels also as true/false."""
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, str):
        t = v.strip(" \t")
        if integer and t in ("true", "false"):
            return int(t == "true")
        if not NUMBER.fullmatch(t):
            return INVALID
        v = float(t) if not integer else (int(t) if t.lstrip("-").isdigit() else float(t))
    if not isinstance(v, (int, float)):
        return INVALID
    if integer:
        if isinstance(v, float):
            if not v.is_integer():
                return INVALID
            v = int(v)
        return v if -2**31 <= v < 2**31 else INVALID
    v = float(v)
    return v if v == v and abs(v) != float("inf") else INVALID


def epoch_ms(x):
    return int(x * 1000) if abs(x) < 1e11 else int(x)


def timestamp(v):
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, (int, float)):
        return epoch_ms(v)
    if not isinstance(v, str):
        return None
    if NUMBER.fullmatch(v):
        return epoch_ms(float(v) if "." in v or "e" in v.lower() else int(v))
    m = TS_TEXT.fullmatch(v)
    if not m:
        return None
    date, clock, frac, z, oh, om = m.groups()
    try:
        dt = datetime.datetime.fromisoformat(date + "T" + clock).replace(tzinfo=UTC)
    except ValueError:
        return None
    ms = (dt - EPOCH) // datetime.timedelta(milliseconds=1) + int((frac or "0")[:3].ljust(3, "0"))
    if not z:
        off = int(oh[1:]) * 60 + int(om or 0)
        ms -= (off if oh[0] == "+" else -off) * 60000
    return ms


# --- records -----------------------------------------------------------------------------------

SERVING_INVALID = re.compile(r"_ago$|^(?:seconds|minutes|hours|days|weeks|months)_since_|^clearing_price$")
STRINGS = [  # (output field, path, chain)
    ("exchange", ("exchange",), token), ("ad_format", ("ad_format",), token),
    ("app_bundle", ("app", "bundle"), bundle), ("publisher", ("app", "publisher"), text),
    ("device_ifa", ("device", "ifa"), token), ("os", ("device", "os"), token),
    ("os_version", ("device", "os_version"), text), ("device_make", ("device", "make"), text),
    ("device_model", ("device", "model"), text),
    ("country", ("device", "country"), lambda s: (text(s) or "").upper() or None),
    ("city", ("device", "city"), text), ("language", ("device", "language"), token),
    ("connection_type", ("device", "connection_type"), token),
]


def get(obj, path):
    for k in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(k)
    return obj


def normalize(r):
    """A parsed line -> an output dict, or None when the record is rejected."""
    if not isinstance(r, dict):
        return None
    eid = r.get("event_id")
    eid = as_string(eid, text) if not isinstance(eid, (dict, list)) else None
    ts = timestamp(r.get("ts"))
    if eid is None or ts is None:
        return None
    # python3-avro writes timestamp-millis from aware datetimes only
    out = {"event_id": eid, "ts": EPOCH + datetime.timedelta(milliseconds=ts)}
    for name, path, chain in STRINGS:
        v = get(r, path)
        out[name] = as_string(v, chain) if not isinstance(v, (dict, list)) else None
    apps = []
    raw = get(r, ("device", "installed_apps"))
    for a in raw if isinstance(raw, list) else ():
        b = as_string(a, bundle) if not isinstance(a, (dict, list)) else None
        if b is not None and b not in apps and len(apps) < 256:
            apps.append(b)
    out["installed_apps"] = apps
    f = as_number(r.get("bid_floor"), False) if r.get("bid_floor") is not None else None
    out["bid_floor"] = None if f is INVALID else f
    clicks = as_number(get(r, ("device", "clicks")), False)
    imps = as_number(get(r, ("device", "impressions")), False)
    ok = (isinstance(clicks, float) and isinstance(imps, float) and clicks >= 0 and imps > 0)
    out["device_ctr"] = clicks / imps if ok else -1.0
    feats = {}
    raw = r.get("features")
    for k, v in (raw.items() if isinstance(raw, dict) else ()):
        if v is None or SERVING_INVALID.search(k):
            continue
        x = as_number(v, False)
        if x is not INVALID:
            feats[k] = x
    out["features"] = feats
    for name in ("click", "install"):
        v = get(r, ("label", name))
        x = as_number(v, True) if v is not None else None
        out[name] = None if x is INVALID else x
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--schema", required=True, help="Avro schema (JSON), as printed by 'bidnorm schema'")
    ap.add_argument("-o", "--output", required=True, help="Avro output file")
    ap.add_argument("input", help="bid-log v1 JSON Lines, zstd-compressed")
    args = ap.parse_args()

    with open(args.schema, encoding="utf-8") as f:
        schema = avro.schema.parse(f.read())
    read = written = rejected = 0
    with open(args.input, "rb") as fin, open(args.output, "wb") as fout:
        writer = avro.datafile.DataFileWriter(fout, avro.io.DatumWriter(), schema, codec="zstandard")
        reader = zstandard.ZstdDecompressor().stream_reader(fin, read_size=1 << 20)
        buffered = io.BufferedReader(reader, 1 << 20)
        for raw in buffered:
            line = raw.rstrip(b"\r\n")
            if not line.strip():
                continue
            read += 1
            try:
                rec = normalize(json.loads(line.decode("utf-8", "bench_cp1252")))
            except (ValueError, RecursionError):
                rec = None
            if rec is None:
                rejected += 1
                continue
            writer.append(rec)
            written += 1
        writer.close()
    print(read, written, rejected)
    return 0


if __name__ == "__main__":
    sys.exit(main())
