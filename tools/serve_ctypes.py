#!/usr/bin/python3
"""serve_ctypes.py - calling libbidnorm's serving API from Python with ctypes (standard library only).

    python3 tools/serve_ctypes.py --lib libbidnorm.so --vocab DIR [--rules FILE|NAME] < raw.jsonl

Prints, for every non-blank raw bid-log line, the encoded features as one JSON
object - byte for byte what tools/serve_example.c prints - or
{"rejected": REASON, "field": F, "message": M} for a line `bidnorm ingest`
would reject. With rules that have rows (openrtb: one per imp), one object per
row, each starting with "row": N. The Encoder class is the part to copy into a
Python server: load the model once, one Encoder per thread, encode() per
request (encode_rows() for rules with rows).
"""
import argparse
import ctypes
import sys

BN_OK = 0
BN_EREJECT = -6

CATEGORICAL, CATEGORICAL_LIST, NUMERIC, NUMERIC_MAP, PASSTHROUGH = 1, 2, 3, 4, 5
NUMBER_DOUBLE = 3


class BnError(ctypes.Structure):
    """struct bn_error from bidnorm/error.h."""
    _fields_ = [
        ("code", ctypes.c_int),
        ("reason", ctypes.c_int),
        ("source", ctypes.c_char * 256),
        ("line", ctypes.c_uint64),
        ("column", ctypes.c_uint32),
        ("offset", ctypes.c_uint64),
        ("has_offset", ctypes.c_int),
        ("field", ctypes.c_char * 128),
        ("message", ctypes.c_char * 512),
    ]


def load_library(path):
    """Declare the prototypes this script uses (ctypes would otherwise guess int for everything)."""
    lib = ctypes.CDLL(path)
    P, S, E = ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(BnError)
    sig = {
        "bn_rules_load": (ctypes.c_int, [ctypes.POINTER(P), ctypes.c_char_p, E]),
        "bn_rules_rows": (ctypes.c_char_p, [P]),
        "bn_rules_free": (None, [P]),
        "bn_model_load": (ctypes.c_int, [ctypes.POINTER(P), P, ctypes.c_char_p, E]),
        "bn_model_free": (None, [P]),
        "bn_model_feature_count": (S, [P]),
        "bn_model_feature_name": (ctypes.c_char_p, [P, S]),
        "bn_model_feature_kind": (ctypes.c_int, [P, S]),
        "bn_model_feature_number_type": (ctypes.c_int, [P, S]),
        "bn_encoder_new": (ctypes.c_int, [ctypes.POINTER(P), P, E]),
        "bn_encoder_free": (None, [P]),
        "bn_encoder_encode_json": (ctypes.c_int, [P, ctypes.c_char_p, S, E]),
        "bn_encoder_row_count": (S, [P]),
        "bn_encoder_select_row": (ctypes.c_int, [P, S, E]),
        "bn_encoder_index": (ctypes.c_uint32, [P, S]),
        "bn_encoder_indices": (ctypes.POINTER(ctypes.c_uint32), [P, S, ctypes.POINTER(S)]),
        "bn_encoder_number": (ctypes.c_double, [P, S, ctypes.POINTER(ctypes.c_int)]),
        "bn_encoder_integer": (ctypes.c_int64, [P, S, ctypes.POINTER(ctypes.c_int)]),
        "bn_encoder_map_count": (S, [P, S]),
        "bn_encoder_map_entry": (ctypes.c_double, [P, S, S, ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(S)]),
        "bn_encoder_string": (ctypes.c_void_p, [P, S, ctypes.POINTER(S)]),
        "bn_reject_reason_name": (ctypes.c_char_p, [ctypes.c_int]),
        "bn_error_format": (S, [E, ctypes.c_char_p, S]),
    }
    for name, (res, args) in sig.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = res, args
    return lib


class BidnormError(Exception):
    pass


class Model:
    """Rules + vocabularies: load once per process; immutable, shared by every Encoder."""

    def __init__(self, lib, vocab_dir, rules_path=None):
        self.lib = lib
        self.rules, self.model = ctypes.c_void_p(), ctypes.c_void_p()
        err = BnError()
        # a shipped rule set's name ("bidlog", "openrtb"), a rule file's path, or None for the default
        rc = lib.bn_rules_load(ctypes.byref(self.rules), rules_path.encode() if rules_path else None,
                               ctypes.byref(err))
        if rc == BN_OK:
            rc = lib.bn_model_load(ctypes.byref(self.model), self.rules, vocab_dir.encode(), ctypes.byref(err))
        if rc != BN_OK:
            self.close()
            raise BidnormError(format_error(lib, err))
        self.has_rows = lib.bn_rules_rows(self.rules) is not None
        n = lib.bn_model_feature_count(self.model)
        self.features = [(lib.bn_model_feature_name(self.model, f).decode(),
                          lib.bn_model_feature_kind(self.model, f),
                          lib.bn_model_feature_number_type(self.model, f)) for f in range(n)]

    def close(self):
        self.lib.bn_model_free(self.model)
        self.lib.bn_rules_free(self.rules)
        self.model = self.rules = None


def format_error(lib, err):
    buf = ctypes.create_string_buffer(2048)
    lib.bn_error_format(ctypes.byref(err), buf, len(buf))
    return buf.value.decode(errors="replace")


class Encoder:
    """Per thread. encode() returns the features as a dict, or raises Rejected."""

    class Rejected(Exception):
        def __init__(self, reason, field, message):
            super().__init__(message)
            self.reason, self.field, self.message = reason, field, message

    def __init__(self, model):
        self.lib, self.m = model.lib, model
        self.enc = ctypes.c_void_p()
        err = BnError()
        if self.lib.bn_encoder_new(ctypes.byref(self.enc), model.model, ctypes.byref(err)) != BN_OK:
            raise BidnormError(format_error(self.lib, err))

    def close(self):
        self.lib.bn_encoder_free(self.enc)
        self.enc = None

    def _check(self, rc, err):
        if rc == BN_EREJECT:
            raise Encoder.Rejected(self.lib.bn_reject_reason_name(err.reason).decode(), err.field.decode(),
                                   err.message.decode(errors="replace"))
        if rc != BN_OK:
            raise BidnormError(format_error(self.lib, err))

    def encode(self, raw: bytes):
        """raw: one JSON object (bytes); its first (for most rules, only) row's features.
        Values are Python ints, floats, lists, dicts, str or None."""
        err = BnError()
        self._check(self.lib.bn_encoder_encode_json(self.enc, raw, len(raw), ctypes.byref(err)), err)
        return self._features()

    def encode_rows(self, raw: bytes):
        """Every row of a request (rules with rows: one per imp): a list with, per row, its features
        or the Encoder.Rejected of that row. Raises Rejected when the request as a whole is rejected."""
        first = self.encode(raw)
        rows = [first]
        for r in range(1, self.lib.bn_encoder_row_count(self.enc)):
            err = BnError()
            try:
                self._check(self.lib.bn_encoder_select_row(self.enc, r, ctypes.byref(err)), err)
                rows.append(self._features())
            except Encoder.Rejected as rej:
                rows.append(rej)
        return rows

    def _features(self):
        lib, e = self.lib, self.enc
        out, is_null, n = {}, ctypes.c_int(), ctypes.c_size_t()
        for f, (name, kind, ntype) in enumerate(self.m.features):
            if kind == CATEGORICAL:
                out[name] = lib.bn_encoder_index(e, f)
            elif kind == CATEGORICAL_LIST:
                ids = lib.bn_encoder_indices(e, f, ctypes.byref(n))
                out[name] = ids[:n.value]
            elif kind == NUMERIC:
                if ntype == NUMBER_DOUBLE:
                    v = lib.bn_encoder_number(e, f, ctypes.byref(is_null))
                else:
                    v = lib.bn_encoder_integer(e, f, ctypes.byref(is_null))
                out[name] = None if is_null.value else v
            elif kind == NUMERIC_MAP:
                key = ctypes.c_char_p()
                entries = {}
                for i in range(lib.bn_encoder_map_count(e, f)):
                    v = lib.bn_encoder_map_entry(e, f, i, ctypes.byref(key), ctypes.byref(n))
                    entries[ctypes.string_at(key, n.value).decode()] = v if ntype == NUMBER_DOUBLE else int(v)
                out[name] = entries
            elif kind == PASSTHROUGH:
                p = lib.bn_encoder_string(e, f, ctypes.byref(n))
                out[name] = None if not p else ctypes.string_at(p, n.value).decode()
        return out


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
    ap.add_argument("--lib", required=True, help="path of libbidnorm.so")
    ap.add_argument("--vocab", required=True)
    ap.add_argument("--rules")
    args = ap.parse_args()
    lib = load_library(args.lib)
    model = Model(lib, args.vocab, args.rules)
    enc = Encoder(model)
    out = sys.stdout.buffer
    for raw in sys.stdin.buffer.read().split(b"\n"):
        raw = raw.rstrip(b"\r")
        if not raw.strip(b" \t"):
            continue
        try:
            rows = enc.encode_rows(raw)
        except Encoder.Rejected as r:
            rows = [r]
        for i, feats in enumerate(rows):
            row = '"row":%d,' % i if model.has_rows and (i or not isinstance(feats, Encoder.Rejected)) else ""
            if isinstance(feats, Encoder.Rejected):
                line = '{%s"rejected":%s,"field":%s,"message":%s}' % (
                    row, json_string(feats.reason), json_string(feats.field), json_string(feats.message))
            else:
                line = "{" + row + ",".join(json_string(name) + ":" + json_value(feats[name], ntype)
                                            for name, _, ntype in model.features) + "}"
            out.write(line.encode() + b"\n")
    enc.close()
    model.close()


if __name__ == "__main__":
    main()
