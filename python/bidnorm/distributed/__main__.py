"""python3 -m bidnorm.distributed ingest|vocab|unit - bidnorm on Dask, and the unit contract for any engine.

    python3 -m bidnorm.distributed ingest (--scheduler ADDRESS | --local N) -o OUTDIR [ingest options] INPUT...
    python3 -m bidnorm.distributed vocab (--scheduler ADDRESS | --local N) -o DIR [vocab build options] INPUT.avro...
    python3 -m bidnorm.distributed unit < tasks.jsonl > results.jsonl

Exit codes as the bidnorm command's: 0 ok, 1 other failure (an input lost its workers too often, another
run writing the same output),
2 usage, 3 reject rate above the limit, 4 rule file invalid, 5 input or output error; with several
failed inputs the most fundamental one wins (4, then 2, 5, 3).
"""
import argparse
import json
import os
import sys
from contextlib import contextmanager
from typing import Any, Iterator, List, Optional, Sequence

from . import unit


def _engine_args(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--scheduler", metavar="ADDRESS", help="a running Dask scheduler, e.g. tcp://10.0.0.5:8786")
    g.add_argument("--local", metavar="N", type=int,
                   help="start a local cluster of N worker processes (one thread each) on 127.0.0.1")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress line, no summary")


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python3 -m bidnorm.distributed",
                                 description="bidnorm ingest and vocabulary map/reduce on Dask; the unit contract.")
    sub = ap.add_subparsers(dest="command", required=True)
    ing = sub.add_parser("ingest", help="one task per input: OUTDIR/STEM.avro, _rejects/, _stats/, _SUCCESS")
    _engine_args(ing)
    ing.add_argument("-o", "--output", required=True, metavar="OUTDIR")
    ing.add_argument("--retries", type=int, default=2, metavar="N",
                     help="retries of an attempt that may succeed again (exit 1, killed); default 2")
    ing.add_argument("--retry-failed", action="store_true", help="run inputs an earlier run quarantined again")
    ing.add_argument("--reingest-changed", action="store_true",
                     help="ingest inputs changed since an earlier run committed them again, replacing their outputs")
    for opt in ("--rules", "--codec", "--level", "--max-reject-rate", "--threads", "--block-size"):
        ing.add_argument(opt, help="as for bidnorm ingest")
    ing.add_argument("inputs", nargs="+", metavar="INPUT")
    voc = sub.add_parser("vocab", help="count per file, a tree of part merges, one final merge into DIR")
    _engine_args(voc)
    voc.add_argument("-o", "--output", required=True, metavar="DIR")
    voc.add_argument("-f", "--field", action="append", required=True)
    voc.add_argument("-w", "--where", action="append", default=[])
    voc.add_argument("--fan-in", type=int, default=8, metavar="K", help="parts per merge (default 8)")
    for opt in ("--min-count", "--top-k", "--task", "--rules", "--max-memory", "--spill-dir"):
        voc.add_argument(opt, help="as for bidnorm vocab build")
    voc.add_argument("--allow-mixed-rules", action="store_true")
    voc.add_argument("--allow-other-text-repair", action="store_true", help="as for bidnorm vocab build")
    voc.add_argument("--force", action="store_true")
    voc.add_argument("inputs", nargs="+", metavar="INPUT.avro")
    sub.add_parser("unit", help="read one JSON task per line on stdin, write one JSON result per line")
    return ap


# bidnorm takes these --rules values as its shipped rule sets, before any file of that name
_SHIPPED_RULES = ("bidlog", "openrtb")


def _passthrough(args: argparse.Namespace, names: Sequence[str]) -> List[str]:
    out: List[str] = []
    for opt in names:
        v = getattr(args, opt.lstrip("-").replace("-", "_"))
        if v is not None:
            # paths are the workers' too: make them absolute (a shipped set's name is no path)
            path = opt == "--spill-dir" or (opt == "--rules" and v not in _SHIPPED_RULES)
            out += [opt, os.path.abspath(v) if path else v]
    return out


def _flags(args: argparse.Namespace, names: Sequence[str]) -> List[str]:
    return [opt for opt in names if getattr(args, opt.lstrip("-").replace("-", "_"))]


@contextmanager
def _client(args: argparse.Namespace) -> Iterator[Any]:
    from distributed import Client, LocalCluster
    if args.scheduler:
        with Client(args.scheduler) as client:
            yield client
        return
    # every listener (scheduler, workers, nannies, the dashboard) on the loopback interface only
    with LocalCluster(n_workers=args.local, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0", worker_dashboard_address="127.0.0.1:0",
                      silence_logs=50) as cluster, Client(cluster) as client:
        yield client


def _ingest(args: argparse.Namespace) -> int:
    from .dask_driver import ingest
    options = _passthrough(args, ("--rules", "--codec", "--level", "--max-reject-rate", "--threads", "--block-size"))
    with _client(args) as client:
        rep = ingest(client, args.inputs, args.output, options=options, retries=args.retries,
                     retry_failed=args.retry_failed, reingest_changed=args.reingest_changed,
                     show_progress=not args.quiet)
    if rep.message:
        print(f"bidnorm distributed ingest: {rep.message}", file=sys.stderr)
    if not (rep.committed or rep.skipped or rep.failed or rep.lost) and rep.exit_code:
        return rep.exit_code    # refused before any input was looked at (two inputs with one stem, a hidden
                                # stem, the lock)
    for r in rep.failed + rep.lost:
        where = {"failed": "quarantined", "changed": "the earlier commit stays",
                 "conflict": "the other input's commit stays"}.get(
            r.get("status"), "not committed; a rerun tries it again")
        print(f"bidnorm distributed ingest: FAILED {r['input']} (exit {r.get('exit_code')}): {r.get('error')} "
              f"[{where}]", file=sys.stderr)
    if not args.quiet or rep.exit_code:
        t = rep.totals
        n = len(rep.committed) + len(rep.skipped) + len(rep.failed) + len(rep.lost)
        print(f"bidnorm distributed ingest: {n} inputs: {len(rep.committed) + len(rep.skipped)} committed "
              f"({len(rep.skipped)} by an earlier run), {len(rep.failed)} failed, {len(rep.lost)} lost; "
              f"{t.get('records_read', 0)} records read = {t.get('records_written', 0)} written + "
              f"{t.get('records_rejected', 0)} rejected; {rep.seconds:.1f} s -> {os.path.abspath(args.output)}",
              file=sys.stderr)
    return rep.exit_code


def _vocab(args: argparse.Namespace) -> int:
    from .dask_driver import vocab
    fields = [f for x in args.field for f in x.split(",") if f]
    allow = _flags(args, ("--allow-mixed-rules", "--allow-other-text-repair"))
    # every count normalizes the --where values with the rules the final merge lints with, as one build does
    count_options = _passthrough(args, ("--rules", "--max-memory", "--spill-dir")) + allow
    options = _passthrough(args, ("--min-count", "--top-k", "--task", "--rules", "--max-memory", "--spill-dir"))
    options += allow + _flags(args, ("--force",))
    with _client(args) as client:
        rep = vocab(client, args.inputs, args.output, fields=fields, where=args.where, count_options=count_options,
                    options=options, fan_in=args.fan_in)
    if rep.exit_code:
        print(f"bidnorm distributed vocab: {rep.message}", file=sys.stderr)
        if rep.parts:
            print(f"bidnorm distributed vocab: the parts finished so far stay in {rep.parts}: a rerun with the same "
                  "output, inputs and settings reuses them", file=sys.stderr)
    elif not args.quiet:
        reused = f", {len(rep.skipped)} parts reused from an earlier run" if rep.skipped else ""
        print(f"bidnorm distributed vocab: {len(args.inputs)} inputs{reused}; {rep.seconds:.1f} s -> "
              f"{os.path.abspath(args.output)}", file=sys.stderr)
    return rep.exit_code


def _unit(stdin: Any, stdout: Any) -> int:
    """The rdd.pipe contract: one result line per task, also for a task that raised (an OSError: "failed",
    exit 5, or "retry", exit 1, see unit.os_error_result); exit 1 after the last line when any task may
    succeed if retried."""
    retry = False
    for line in stdin:
        if not line.strip():
            continue
        task = None
        try:
            task = json.loads(line)
            res = unit.run_unit(task)
        except unit.TransientFailure as e:
            retry = True
            res = unit.failure_result(task, "retry", unit.EXIT_FAILURE, str(e))
        except OSError as e:
            res, transient = unit.os_error_result(task, e)
            retry = retry or transient
        except (ValueError, KeyError, TypeError) as e:
            res = {"status": "failed", "exit_code": unit.EXIT_USAGE, "error": f"bad task: {e}: {line.strip()}"}
        stdout.write(json.dumps(res, sort_keys=True) + "\n")
        stdout.flush()
    return unit.EXIT_FAILURE if retry else unit.EXIT_OK


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "unit":
        return _unit(sys.stdin, sys.stdout)
    if args.local is not None and args.local < 1:
        print("bidnorm distributed: --local needs at least 1 worker", file=sys.stderr)
        return unit.EXIT_USAGE
    return _ingest(args) if args.command == "ingest" else _vocab(args)


if __name__ == "__main__":
    sys.exit(main())
