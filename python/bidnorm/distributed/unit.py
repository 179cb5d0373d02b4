"""One unit of cluster work - one input file -> its Avro, rejects and stats; one Avro -> its partial
counts; parts -> a merged part or the vocabulary - run by any engine through one function.

A task and its result are small JSON objects; the data stays in files. run_unit(task) -> result
is the whole contract: Dask calls it in a worker, Spark in mapPartitions or, through
`python3 -m bidnorm.distributed unit`, with rdd.pipe (one JSON task per line on stdin, one JSON
result per line on stdout).

The ingest output folder OUT (safe for Spark/Hadoop readers, which skip names starting with
'_' or '.'):

    OUT/STEM.avro                          the clean records: the only files a reader sees
    OUT/_rejects/STEM.rejects.jsonl        rejected records, with file, line and reason
    OUT/_stats/STEM.stats.json             the stats of the run that was committed
    OUT/_bidnorm/committed/STEM.json       the commit record: one per input, created once
    OUT/_bidnorm/staging/STEM.ATTEMPT/     an attempt in progress (removed once done)
    OUT/_bidnorm/quarantine/STEM.*         inputs that failed for good: error.json, rejects, stats
    OUT/_bidnorm/journal.jsonl             the driver's journal (one line per input and run)
    OUT/_SUCCESS                           the driver's marker: every input of the run committed

Each attempt writes into its own staging folder (so a lost attempt never touches another's
files). The first attempt to succeed claims the input by creating the commit record with a hard
link (atomic and exclusive, also on NFS), then renames rejects, stats and the Avro - last - into
place. A later attempt, or a rerun, that finds the record finishes those renames if they were
interrupted and reports the committed result: every input is committed exactly once.
"""
import json
import os
import shutil
import subprocess
import time
import uuid
from typing import Any, Dict, List, Optional

from .._locate import find_binary

Result = Dict[str, Any]

# Exit codes of the bidnorm command (README, "Exit codes").
EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_REJECTS, EXIT_RULES, EXIT_IO = 0, 1, 2, 3, 4, 5
#: Failures that a retry cannot fix: reported and quarantined, never retried.
PERMANENT = (EXIT_USAGE, EXIT_REJECTS, EXIT_RULES, EXIT_IO)

_INPUT_SUFFIXES = (".zst", ".gz")
_LOG_SUFFIXES = (".jsonl", ".ndjson", ".json", ".log")


class TransientFailure(Exception):
    """An attempt failed in a way a retry may fix (killed, out of memory, exit 1): let the engine retry."""


def stem(path: str) -> str:
    """The output name of an input: its base name without .zst/.gz, then without .jsonl/.json/.ndjson/.log."""
    name = os.path.basename(path.rstrip("/"))
    for suffixes in (_INPUT_SUFFIXES, _LOG_SUFFIXES):
        for s in suffixes:
            if name.endswith(s) and len(name) > len(s):
                name = name[:-len(s)]
                break
    return name


def layout(out: str, name: str) -> Dict[str, str]:
    """The paths of input STEM `name` in output folder `out` (see the module's docstring)."""
    meta = os.path.join(out, "_bidnorm")
    return {
        "avro": os.path.join(out, name + ".avro"),
        "rejects": os.path.join(out, "_rejects", name + ".rejects.jsonl"),
        "stats": os.path.join(out, "_stats", name + ".stats.json"),
        "record": os.path.join(meta, "committed", name + ".json"),
        "staging": os.path.join(meta, "staging"),
        "quarantine": os.path.join(meta, "quarantine"),
    }


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json(path: str, obj: Any) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())


def _read_json(path: str) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _totals(stats: Dict[str, Any]) -> Dict[str, int]:
    return {k: int(stats.get(k, 0)) for k in ("records_read", "records_written", "records_rejected")}


def _finish_commit(record: Dict[str, Any], out: str) -> None:
    """Move a claimed attempt's files into place (rejects, stats, Avro last). Idempotent."""
    paths = layout(out, record["stem"])
    attempt = os.path.join(paths["staging"], record["attempt"])
    name = record["stem"]
    for src, dst in ((name + ".rejects.jsonl", paths["rejects"]), (name + ".stats.json", paths["stats"]),
                     (name + ".avro", paths["avro"])):
        try:
            os.rename(os.path.join(attempt, src), dst)
        except FileNotFoundError:
            continue        # moved by an earlier, interrupted commit
        _fsync_dir(os.path.dirname(dst))
    shutil.rmtree(attempt, ignore_errors=True)


def _committed(record_path: str, out: str, attempt_id: Optional[str]) -> Result:
    record = _read_json(record_path)
    _finish_commit(record, out)
    result = dict(record["result"])
    if attempt_id is not None and attempt_id != record["attempt"]:
        result["note"] = "already committed by attempt " + record["attempt"]
    return result


def _quarantine(paths: Dict[str, str], name: str, attempt: str, result: Result) -> None:
    q = paths["quarantine"]
    os.makedirs(q, exist_ok=True)
    for suffix in (".rejects.jsonl", ".stats.json"):
        try:
            os.replace(os.path.join(attempt, name + suffix), os.path.join(q, name + suffix))
        except FileNotFoundError:
            pass
    _write_json(os.path.join(q, name + ".error.json"), result)
    _fsync_dir(q)


def ingest_unit(task: Dict[str, Any]) -> Result:
    """Ingest one input into task["output_dir"]; the task's keys:

    input (path), output_dir, name (recorded as --source-name; default the input path),
    options (extra `bidnorm ingest` arguments, e.g. ["--codec", "snappy"]), bin (default
    find_binary()).

    Returns {"op", "input", "stem", "status": "committed" | "failed", "exit_code", "error",
    "records_read", "records_written", "records_rejected", "avro", "attempt", "seconds"}.
    A committed input returns its committed result however often it is run. Raises
    TransientFailure when the attempt may succeed if retried (exit 1, killed by a signal).
    """
    started = time.monotonic()
    inp, out = os.path.abspath(task["input"]), os.path.abspath(task["output_dir"])
    name = stem(inp)
    paths = layout(out, name)
    if os.path.exists(paths["record"]):
        return _committed(paths["record"], out, None)
    for d in (os.path.dirname(paths["rejects"]), os.path.dirname(paths["stats"]), paths["staging"],
              os.path.dirname(paths["record"])):
        os.makedirs(d, exist_ok=True)
    attempt_id = f"{name}.{uuid.uuid4().hex[:12]}"
    attempt = os.path.join(paths["staging"], attempt_id)
    os.mkdir(attempt)
    base = os.path.join(attempt, name)
    cmd = [task.get("bin") or find_binary(), "ingest", "-q", "--die-with-parent",
           "--source-name", task.get("name") or inp, "-o", base + ".avro", "--rejects", base + ".rejects.jsonl",
           "--stats", base + ".stats.json", *task.get("options", []), inp]
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          check=False)
    stderr = proc.stderr.decode(errors="replace").strip()
    result: Result = {"op": "ingest", "input": inp, "stem": name, "attempt": attempt_id, "exit_code": proc.returncode,
                      "avro": paths["avro"], "error": None}
    try:
        stats = _read_json(base + ".stats.json")
    except (OSError, ValueError):
        stats = {}
    result.update(_totals(stats))
    if proc.returncode != EXIT_OK:
        result["error"] = stats.get("error") or stderr or f"bidnorm ingest exited with {proc.returncode}"
        if proc.returncode not in PERMANENT:
            shutil.rmtree(attempt, ignore_errors=True)
            raise TransientFailure(f"{inp}: {result['error']}")
        result["status"] = "failed"
        result["seconds"] = round(time.monotonic() - started, 3)
        _quarantine(paths, name, attempt, result)
        shutil.rmtree(attempt, ignore_errors=True)
        return result
    result["status"] = "committed"
    result["seconds"] = round(time.monotonic() - started, 3)
    # claim: the record is written whole in the attempt folder, then linked into place - at most once
    claim = os.path.join(attempt, "commit.json")
    _write_json(claim, {"stem": name, "attempt": attempt_id, "input": inp, "result": result})
    try:
        os.link(claim, paths["record"])
    except FileExistsError:
        shutil.rmtree(attempt, ignore_errors=True)
        return _committed(paths["record"], out, attempt_id)
    _fsync_dir(os.path.dirname(paths["record"]))
    os.unlink(claim)
    _finish_commit({"stem": name, "attempt": attempt_id}, out)
    # an earlier run's quarantine of this input (run again with --retry-failed) no longer applies
    for suffix in (".error.json", ".rejects.jsonl", ".stats.json"):
        try:
            os.unlink(os.path.join(paths["quarantine"], name + suffix))
        except FileNotFoundError:
            pass
    return result


def _run_vocab(args: List[str], task: Dict[str, Any], result: Result) -> Result:
    # a lost worker's count or merge dies with it
    proc = subprocess.run([task.get("bin") or find_binary(), "vocab", args[0], "--die-with-parent", *args[1:]],
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    result["exit_code"] = proc.returncode
    result["error"] = proc.stderr.decode(errors="replace").strip() if proc.returncode else None
    if proc.returncode not in (EXIT_OK, *PERMANENT):
        raise TransientFailure(result["error"] or f"bidnorm vocab exited with {proc.returncode}")
    result["status"] = "ok" if proc.returncode == EXIT_OK else "failed"
    return result


def count_unit(task: Dict[str, Any]) -> Result:
    """Count one Avro file into a part: input, part, fields (list), where (list), name (--source-name),
    options (extra `vocab count` arguments). The part is written atomically, so a retry simply rewrites it."""
    args = ["count", "-q", "-o", task["part"]]
    for f in task["fields"]:
        args += ["--field", f]
    for w in task.get("where", []):
        args += ["--where", w]
    if task.get("name"):
        args += ["--source-name", task["name"]]
    args += [*task.get("options", []), task["input"]]
    return _run_vocab(args, task, {"op": "count", "input": task["input"], "part": task["part"]})


def merge_unit(task: Dict[str, Any]) -> Result:
    """Merge parts: parts (list), output, part (true: into a part; false: the vocabulary directory),
    options (extra `vocab merge` arguments: --min-count, --top-k, --task, --rules, --force...)."""
    args = ["merge", "-q", *(["--part"] if task.get("part") else []), "-o", task["output"],
            *task.get("options", []), *task["parts"]]
    return _run_vocab(args, task, {"op": "merge", "output": task["output"], "parts": list(task["parts"])})


_UNITS = {"ingest": ingest_unit, "count": count_unit, "merge": merge_unit}


def run_unit(task: Dict[str, Any]) -> Result:
    """Run one task ({"op": "ingest" | "count" | "merge", ...}); see ingest_unit, count_unit, merge_unit."""
    op = task.get("op")
    if op not in _UNITS:
        raise ValueError(f"unknown op {op!r}: expected ingest, count or merge")
    return _UNITS[op](task)
