"""bidnorm on a cluster engine.

run_unit(task) -> result is the engine-neutral contract (one input file -> its Avro, rejects and
stats; one Avro -> its partial counts; parts -> a part or the vocabulary), usable from any engine
(Spark: mapPartitions, or rdd.pipe with `python3 -m bidnorm.distributed unit`). ingest() and
vocab() drive it on Dask distributed; `python3 -m bidnorm.distributed ingest|vocab` is their
command line; finish_run(out) tidies an ingest output folder once no task on it runs (the Dask
driver calls it; call it after a Spark job). Importing this package does not import Dask.
"""
from typing import Any

from .unit import (PERMANENT, TransientFailure, count_unit, finish_run, ingest_unit, layout, merge_unit, run_unit,
                   stem)

__all__ = ["PERMANENT", "TransientFailure", "count_unit", "finish_run", "ingest", "ingest_unit", "layout",
           "merge_unit", "run_unit", "stem", "vocab"]


def ingest(*args: Any, **kwargs: Any) -> Any:
    """bidnorm.distributed.dask_driver.ingest (imports Dask)."""
    from .dask_driver import ingest as run
    return run(*args, **kwargs)


def vocab(*args: Any, **kwargs: Any) -> Any:
    """bidnorm.distributed.dask_driver.vocab (imports Dask)."""
    from .dask_driver import vocab as run
    return run(*args, **kwargs)
