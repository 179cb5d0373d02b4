"""bidnorm for Python: the serving API over libbidnorm (ctypes, standard library only) and, in
bidnorm.distributed, ingest and vocabulary map/reduce on a cluster engine.

    from bidnorm import Model, Encoder, normalize
"""
from ._locate import find_binary, find_library
from .errors import BidnormError, Rejected
from .serve import Encoder, Model, Normalizer, Rules, normalize

__all__ = ["BidnormError", "Encoder", "Model", "Normalizer", "Rejected", "Rules", "find_binary", "find_library",
           "normalize"]
