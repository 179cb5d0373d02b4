"""The ctypes declarations of libbidnorm (the only module that knows C types)."""
import ctypes
from typing import Optional

from ._locate import find_library
from .errors import EREJECT, BidnormError, Rejected

# bn_feature_kind and bn_number_type (bidnorm/serve.h)
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


class BnModelOptions(ctypes.Structure):
    """struct bn_model_options from bidnorm/serve.h."""
    _fields_ = [
        ("allow_other_rules", ctypes.c_int),
    ]


_P, _S = ctypes.c_void_p, ctypes.c_size_t
_E = ctypes.POINTER(BnError)
_SIGNATURES = {
    "bn_version": (ctypes.c_char_p, []),
    "bn_rules_load": (ctypes.c_int, [ctypes.POINTER(_P), ctypes.c_char_p, _E]),
    "bn_vocab_load_rules": (ctypes.c_int, [ctypes.POINTER(_P), ctypes.c_char_p, ctypes.c_char_p, _E]),
    "bn_rules_rows": (ctypes.c_char_p, [_P]),
    "bn_rules_free": (None, [_P]),
    "bn_rules_sha256": (ctypes.c_char_p, [_P]),
    "bn_normalizer_new": (ctypes.c_int, [ctypes.POINTER(_P), _P, _E]),
    "bn_normalizer_free": (None, [_P]),
    "bn_normalize_value": (ctypes.c_int, [_P, ctypes.c_char_p, ctypes.c_char_p, _S, ctypes.POINTER(ctypes.c_void_p),
                                          ctypes.POINTER(_S), ctypes.POINTER(ctypes.c_int), _P, _P, _E]),
    "bn_model_load": (ctypes.c_int, [ctypes.POINTER(_P), _P, ctypes.c_char_p, _E]),
    "bn_model_load_ext": (ctypes.c_int, [ctypes.POINTER(_P), _P, ctypes.c_char_p, ctypes.POINTER(BnModelOptions), _E]),
    "bn_model_free": (None, [_P]),
    "bn_model_feature_count": (_S, [_P]),
    "bn_model_feature_name": (ctypes.c_char_p, [_P, _S]),
    "bn_model_feature_kind": (ctypes.c_int, [_P, _S]),
    "bn_model_feature_number_type": (ctypes.c_int, [_P, _S]),
    "bn_model_vocab_size": (_S, [_P, _S]),
    "bn_encoder_new": (ctypes.c_int, [ctypes.POINTER(_P), _P, _E]),
    "bn_encoder_free": (None, [_P]),
    "bn_encoder_encode_json": (ctypes.c_int, [_P, ctypes.c_char_p, _S, _E]),
    "bn_encoder_row_count": (_S, [_P]),
    "bn_encoder_select_row": (ctypes.c_int, [_P, _S, _E]),
    "bn_encoder_index": (ctypes.c_uint32, [_P, _S]),
    "bn_encoder_indices": (ctypes.POINTER(ctypes.c_uint32), [_P, _S, ctypes.POINTER(_S)]),
    "bn_encoder_number": (ctypes.c_double, [_P, _S, ctypes.POINTER(ctypes.c_int)]),
    "bn_encoder_integer": (ctypes.c_int64, [_P, _S, ctypes.POINTER(ctypes.c_int)]),
    "bn_encoder_map_count": (_S, [_P, _S]),
    "bn_encoder_map_entry": (ctypes.c_double, [_P, _S, _S, ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(_S)]),
    "bn_encoder_string": (ctypes.c_void_p, [_P, _S, ctypes.POINTER(_S)]),
    "bn_reject_reason_name": (ctypes.c_char_p, [ctypes.c_int]),
    "bn_error_format": (_S, [_E, ctypes.c_char_p, _S]),
}


def load(path: Optional[str] = None) -> ctypes.CDLL:
    """Open libbidnorm (path, else find_library()) with every prototype the package uses declared."""
    lib = ctypes.CDLL(path or find_library())
    for name, (res, args) in _SIGNATURES.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = res, args
    return lib


def raise_error(lib: ctypes.CDLL, rc: int, err: BnError) -> None:
    """Raise BidnormError (Rejected for EREJECT) carrying err's fields."""
    buf = ctypes.create_string_buffer(2048)
    lib.bn_error_format(ctypes.byref(err), buf, len(buf))
    cls = Rejected if rc == EREJECT else BidnormError
    reason = lib.bn_reject_reason_name(err.reason).decode() if rc == EREJECT else ""
    raise cls(rc, err.message.decode(errors="replace"), reason=reason,
              source=err.source.decode(errors="replace"), line=err.line, column=err.column,
              field=err.field.decode(errors="replace"), text=buf.value.decode(errors="replace"))
