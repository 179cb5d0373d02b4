#!/usr/bin/python3
"""serve_ctypes.py - the serving API from Python: the bidnorm package (python/bidnorm, ctypes, standard library only).

    python3 tools/serve_ctypes.py [--lib libbidnorm.so] --vocab DIR [--rules FILE|NAME] [--allow-other-rules] < raw.jsonl

Prints, for every non-blank raw bid-log line, the encoded features as one JSON
object - byte for byte what tools/serve_example.c prints - or
{"rejected": REASON, "field": F, "message": M} for a line `bidnorm ingest`
would reject. With rules that have rows (openrtb: one per imp), one object per
row, each starting with "row": N. Without --rules, the rules the vocabulary's
manifest records (as serve_example and `bidnorm parity` take them). In a Python server: `from bidnorm import Model,
Encoder`, load the model once, one Encoder per thread, encode() per request
(encode_rows() for rules with rows).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from bidnorm import BidnormError, Encoder, Model, Rejected, Rules  # noqa: E402
from bidnorm import _capi  # noqa: E402

NUMBER_DOUBLE = _capi.NUMBER_DOUBLE


def json_string(s: str) -> str:
    """The escaping of serve_example.c: quote, backslash and control characters; UTF-8 as is."""
    out = ['"']
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20:
            out.append("\\u%04x" % ord(ch))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def json_value(v, ntype):
    if v is None:
        return "null"
    if isinstance(v, str):
        return json_string(v)
    if isinstance(v, list):
        return "[" + ",".join(str(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ",".join(json_string(k) + ":" + json_value(x, ntype) for k, x in v.items()) + "}"
    if ntype == NUMBER_DOUBLE:
        return "%.17g" % v
    return str(v)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lib", help="path of libbidnorm.so (default: $BIDNORM_LIB, the build tree, the system's)")
    ap.add_argument("--vocab", required=True)
    ap.add_argument("--rules")
    ap.add_argument("--allow-other-rules", action="store_true",
                    help="load a vocabulary built from data of other rules (for rules changed deliberately)")
    args = ap.parse_args()
    try:
        rules = Rules(args.rules, vocab=args.vocab, lib=_capi.load(args.lib) if args.lib else None)
        model = Model(args.vocab, rules, allow_other_rules=args.allow_other_rules)
    except BidnormError as e:  # e.g. a vocabulary of another text repair version: the library's message
        sys.exit("serve_ctypes.py: %s" % e)
    enc = Encoder(model)
    out = sys.stdout.buffer
    for raw in sys.stdin.buffer.read().split(b"\n"):
        raw = raw.rstrip(b"\r")
        if not raw.strip(b" \t"):
            continue
        try:
            rows = enc.encode_rows(raw)
        except Rejected as r:
            rows = [r]
        for i, feats in enumerate(rows):
            row = '"row":%d,' % i if rules.has_rows and (i or not isinstance(feats, Rejected)) else ""
            if isinstance(feats, Rejected):
                line = '{%s"rejected":%s,"field":%s,"message":%s}' % (
                    row, json_string(feats.reason), json_string(feats.field), json_string(feats.message))
            else:
                line = "{" + row + ",".join(json_string(name) + ":" + json_value(feats[name], ntype)
                                            for name, _, ntype in model.features) + "}"
            out.write(line.encode() + b"\n")
    enc.close()
    model.close()
    rules.close()


if __name__ == "__main__":
    main()
