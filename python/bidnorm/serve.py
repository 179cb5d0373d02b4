"""The serving API over libbidnorm: the very code that wrote the training data, per request.

    model = Model("vocab/install")          # once per process (the rules its manifest records): immutable
    enc = Encoder(model)                    # once per thread
    features = enc.encode(raw_json_bytes)   # per request; raises Rejected as ingest would reject it

    normalize("app_bundle", "com.foo$hl=en")   # -> "com.foo"
"""
import ctypes
import threading
from typing import Any, Dict, List, Optional, Tuple, TypeVar

from . import _capi
from .errors import OK, BidnormError, Rejected

Features = Dict[str, Any]
_T = TypeVar("_T", bound="_Closing")


class _Closing:
    """`with X(...) as x:` calls x.close() at the end."""

    def close(self) -> None:
        """Free what the object holds."""

    def __enter__(self: _T) -> _T:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Rules(_Closing):
    """Compiled rules, as --rules means them: None the default, a shipped set's name ("bidlog",
    "openrtb") or a rule file's path. Immutable, shared by threads.

    vocab=DIR with spec None: the rules vocabulary directory DIR's manifest records, as `bidnorm
    parity` takes them (bn_vocab_load_rules: the shipped set with its rules_sha256, else the rule file
    its rules_source names if still identical; the default when it records none); BidnormError with
    the library's message when they are not here as they were."""

    def __init__(self, spec: Optional[str] = None, *, vocab: Optional[str] = None,
                 lib: Optional[ctypes.CDLL] = None) -> None:
        self.lib = lib or _capi.load()
        self._handle = ctypes.c_void_p()
        err = _capi.BnError()
        given = spec.encode() if spec else None
        if vocab is not None:
            rc = self.lib.bn_vocab_load_rules(ctypes.byref(self._handle), vocab.encode(), given, ctypes.byref(err))
        else:
            rc = self.lib.bn_rules_load(ctypes.byref(self._handle), given, ctypes.byref(err))
        if rc != OK:
            _capi.raise_error(self.lib, rc, err)

    @property
    def handle(self) -> ctypes.c_void_p:
        """The bn_rules pointer (valid until close())."""
        if not self._handle:
            raise BidnormError(-1, "the rules are closed")
        return self._handle

    @property
    def has_rows(self) -> bool:
        """Whether a request makes several records (openrtb: one per imp); see Encoder.encode_rows."""
        return self.lib.bn_rules_rows(self.handle) is not None

    @property
    def sha256(self) -> str:
        """The rules hash ingest writes into every Avro header (bidnorm.rules.sha256)."""
        return self.lib.bn_rules_sha256(self.handle).decode()

    def close(self) -> None:
        """Free the rules; every Model and Normalizer made from them must be closed first."""
        if self._handle:
            self.lib.bn_rules_free(self._handle)
            self._handle = ctypes.c_void_p()


class Normalizer(_Closing):
    """Normalizes single values as ingest does (bn_normalize_value). One per thread."""

    def __init__(self, rules: Optional[Rules] = None) -> None:
        self._own_rules = rules is None
        self.rules = rules or Rules()
        self.lib = self.rules.lib
        self._handle = ctypes.c_void_p()
        err = _capi.BnError()
        rc = self.lib.bn_normalizer_new(ctypes.byref(self._handle), self.rules.handle, ctypes.byref(err))
        if rc != OK:
            _capi.raise_error(self.lib, rc, err)

    def normalize(self, field: str, value: str) -> Optional[str]:
        """What the rules make of value as output field `field` (one element for array fields); None for null.

        Raises BidnormError (code EUSAGE) for an unknown or non-string field, Rejected when a
        validate step rejects the value.
        """
        raw = value.encode()
        out, size, is_null, err = ctypes.c_void_p(), ctypes.c_size_t(), ctypes.c_int(), _capi.BnError()
        rc = self.lib.bn_normalize_value(self._handle, field.encode(), raw, len(raw), ctypes.byref(out),
                                         ctypes.byref(size), ctypes.byref(is_null), None, None, ctypes.byref(err))
        if rc != OK:
            _capi.raise_error(self.lib, rc, err)
        if is_null.value:
            return None
        return ctypes.string_at(out, size.value).decode()

    def close(self) -> None:
        """Free the normalizer (and the rules when it loaded them itself)."""
        if self._handle:
            self.lib.bn_normalizer_free(self._handle)
            self._handle = ctypes.c_void_p()
        if self._own_rules:
            self.rules.close()


def normalize(field: str, value: str, rules: Optional[Rules] = None) -> Optional[str]:
    """One value through field's chain with the default rules (or rules). For loops, keep a Normalizer."""
    with Normalizer(rules) as n:
        return n.normalize(field, value)


class Model(_Closing):
    """Rules plus a vocabulary directory: load once per process; immutable, shared by every Encoder.

    Without rules, the rules the vocabulary's manifest records (Rules(vocab=vocab_dir), as `bidnorm
    parity` and tools/serve_example take them): an OpenRTB vocabulary is served with the openrtb
    rules; BidnormError when they are not here as they were. Rules given are used as given.

    Raises BidnormError with the library's message, e.g. (code ECORRUPT, source the manifest) for a
    vocabulary built with another text repair version than this library's, or (code EUSAGE) for one
    built from data ingested with other rules than `rules` (its manifest's rules_sha256): the same
    raw text can give tokens the vocabulary does not hold. allow_other_rules=True loads it anyway,
    for rules changed deliberately (bn_model_options.allow_other_rules)."""

    def __init__(self, vocab_dir: str, rules: Optional[Rules] = None, *, allow_other_rules: bool = False) -> None:
        self._own_rules = rules is None
        self.rules = rules or Rules(vocab=vocab_dir)
        self.lib = self.rules.lib
        self._handle = ctypes.c_void_p()
        err = _capi.BnError()
        opt = _capi.BnModelOptions(allow_other_rules=int(allow_other_rules))
        rc = self.lib.bn_model_load_ext(ctypes.byref(self._handle), self.rules.handle, vocab_dir.encode(),
                                        ctypes.byref(opt), ctypes.byref(err))
        if rc != OK:
            if self._own_rules:
                self.rules.close()
            _capi.raise_error(self.lib, rc, err)
        lib, h = self.lib, self._handle
        #: (name, kind, number type) per feature, in the schema's order
        self.features: List[Tuple[str, int, int]] = [
            (lib.bn_model_feature_name(h, f).decode(), lib.bn_model_feature_kind(h, f),
             lib.bn_model_feature_number_type(h, f)) for f in range(lib.bn_model_feature_count(h))]

    @property
    def handle(self) -> ctypes.c_void_p:
        """The bn_model pointer (valid until close())."""
        if not self._handle:
            raise BidnormError(-1, "the model is closed")
        return self._handle

    def vocab_size(self, feature: str) -> int:
        """Tokens in feature's vocabulary (index 0, out of vocabulary, not counted); 0 if not categorical."""
        for f, (name, _, _) in enumerate(self.features):
            if name == feature:
                return self.lib.bn_model_vocab_size(self.handle, f)
        raise BidnormError(-1, f"no feature '{feature}'", field=feature)

    def close(self) -> None:
        """Free the model (every Encoder must be closed first), and the rules if it loaded them."""
        if self._handle:
            self.lib.bn_model_free(self._handle)
            self._handle = ctypes.c_void_p()
        if self._own_rules:
            self.rules.close()


class Encoder(_Closing):
    """Per-thread encoding of raw requests with a Model; not to be shared between threads."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self.lib = model.lib
        self._owner = threading.get_ident()
        self._handle = ctypes.c_void_p()
        err = _capi.BnError()
        rc = self.lib.bn_encoder_new(ctypes.byref(self._handle), model.handle, ctypes.byref(err))
        if rc != OK:
            _capi.raise_error(self.lib, rc, err)

    def encode(self, raw: bytes) -> Features:
        """One raw JSON request -> {feature: value} (for rules with rows, row 0's: see encode_rows).

        Categorical features are vocabulary indices (0 = out of vocabulary or null), lists are
        [0, index...], numbers stay numbers (None for null), maps are dicts, other strings pass
        through. Raises Rejected (with reason, field, message) for a record ingest would reject.
        """
        if threading.get_ident() != self._owner:
            raise BidnormError(-1, "an Encoder is used by the thread that made it only: make one per thread")
        lib, e, err = self.lib, self._handle, _capi.BnError()
        rc = lib.bn_encoder_encode_json(e, raw, len(raw), ctypes.byref(err))
        if rc != OK:
            _capi.raise_error(lib, rc, err)
        return self._features()

    def encode_rows(self, raw: bytes) -> List[Any]:
        """Every row of a request (rules with rows: one per imp; else one): per row its features, or
        the Rejected of that row. Raises Rejected when the request as a whole is rejected."""
        rows: List[Any] = [self.encode(raw)]
        for r in range(1, self.lib.bn_encoder_row_count(self._handle)):
            err = _capi.BnError()
            rc = self.lib.bn_encoder_select_row(self._handle, r, ctypes.byref(err))
            try:
                if rc != OK:
                    _capi.raise_error(self.lib, rc, err)
                rows.append(self._features())
            except Rejected as rej:
                rows.append(rej)
        return rows

    def _features(self) -> Features:
        lib, e = self.lib, self._handle
        out: Features = {}
        is_null, n = ctypes.c_int(), ctypes.c_size_t()
        for f, (name, kind, ntype) in enumerate(self.model.features):
            if kind == _capi.CATEGORICAL:
                out[name] = lib.bn_encoder_index(e, f)
            elif kind == _capi.CATEGORICAL_LIST:
                ids = lib.bn_encoder_indices(e, f, ctypes.byref(n))
                out[name] = ids[:n.value]
            elif kind == _capi.NUMERIC:
                if ntype == _capi.NUMBER_DOUBLE:
                    v: Any = lib.bn_encoder_number(e, f, ctypes.byref(is_null))
                else:
                    v = lib.bn_encoder_integer(e, f, ctypes.byref(is_null))
                out[name] = None if is_null.value else v
            elif kind == _capi.NUMERIC_MAP:
                key = ctypes.c_char_p()
                entries = {}
                for i in range(lib.bn_encoder_map_count(e, f)):
                    x = lib.bn_encoder_map_entry(e, f, i, ctypes.byref(key), ctypes.byref(n))
                    entries[ctypes.string_at(key, n.value).decode()] = x if ntype == _capi.NUMBER_DOUBLE else int(x)
                out[name] = entries
            elif kind == _capi.PASSTHROUGH:
                p = lib.bn_encoder_string(e, f, ctypes.byref(n))
                out[name] = None if not p else ctypes.string_at(p, n.value).decode()
        return out

    def close(self) -> None:
        """Free the encoder."""
        if self._handle:
            self.lib.bn_encoder_free(self._handle)
            self._handle = ctypes.c_void_p()
