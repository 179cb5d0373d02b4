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
    OUT/_bidnorm/committed/STEM.json       the commit record: the input's identity and its result
    OUT/_bidnorm/replaced/ATTEMPT.json     the claim of the record replacing attempt ATTEMPT's (a changed
                                           input), removed by finish_run
    OUT/_bidnorm/staging/STEM.ATTEMPT/     an attempt in progress (removed once done)
    OUT/_bidnorm/quarantine/STEM.*         inputs that failed for good: error.json, rejects, stats
    OUT/_bidnorm/journal.jsonl             the driver's journal (one line per input and run)
    OUT/_bidnorm/lock                      held (flock) by the Dask driver's run writing OUT
    OUT/_SUCCESS                           the driver's marker: every input of the run committed

Each attempt writes into its own staging folder (so a lost attempt never touches another's
files). The first attempt to succeed claims the input by creating the commit record with a hard
link (atomic and exclusive, also on NFS), then renames rejects, stats and the Avro - last - into
place. A later attempt, or a rerun, that finds the record finishes those renames if they were
interrupted and reports the committed result: every input is committed exactly once.

The record keeps the input's identity: size, modification time and the SHA-256 of its bytes, taken
before the ingest (and the size and time checked again after it). A rerun that finds the input's
size and time as recorded skips it; when the time differs but the size does not, the content hash
decides, and a content proved unchanged has its new time recorded (so the next rerun skips it
without hashing it). A changed input is not skipped silently: it fails (status "changed", exit 2) unless the
task says "reingest_changed", which ingests it again and replaces the outputs: the new record is
claimed, once, as OUT/_bidnorm/replaced/OLD-ATTEMPT.json (a hard link again), then renamed over
the old record; whoever finds that file rolls the replacement forward. finish_run(out), once no
task on out runs, finishes what lost attempts claimed and removes the claims and the staging
folders. Records written before identities were kept say nothing about the input: it is skipped
as before. The record keeps the input's path and the name it was recorded under (the task's "name",
else its path): another input with the same stem - another name, and not the same file under
another path - but other content is not the committed input changed: it fails (status "conflict",
exit 2, the outputs untouched; "reingest_changed" does not replace them). The same content under
another path (a moved file) is the committed input. Records written before names were kept compare
the paths.

An input whose stem starts with '_' or '.' is refused (status "failed", exit 2, nothing written):
readers would skip STEM.avro as hidden.
"""
import errno
import hashlib
import json
import os
import shutil
import subprocess
import time
import uuid
from typing import Any, Dict, List, Optional, Tuple

from .._locate import find_binary

Result = Dict[str, Any]

# Exit codes of the bidnorm command (README, "Exit codes").
EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_REJECTS, EXIT_RULES, EXIT_IO = 0, 1, 2, 3, 4, 5
#: Failures that a retry cannot fix: reported and quarantined, never retried.
PERMANENT = (EXIT_USAGE, EXIT_REJECTS, EXIT_RULES, EXIT_IO)

#: OSErrors a retry may get past (interrupted, busy, out of resources for now, a stale NFS handle, a
#: timeout); any other (permission denied, no space left, read-only file system, I/O error...) needs
#: someone to act: exit 5, as bidnorm reports an input or output error.
TRANSIENT_ERRNOS = frozenset((errno.EAGAIN, errno.EINTR, errno.EBUSY, errno.ETIMEDOUT, errno.ESTALE, errno.EMFILE,
                              errno.ENFILE, errno.ENOMEM, errno.ENOBUFS))

_INPUT_SUFFIXES = (".zst", ".gz")
_LOG_SUFFIXES = (".jsonl", ".ndjson", ".json", ".log")


class TransientFailure(Exception):
    """An attempt failed in a way a retry may fix (killed, out of memory, exit 1): let the engine retry."""


def os_error_result(task: Any, e: OSError) -> Tuple[Result, bool]:
    """The result of a task that raised e (the unit contract's pipe mode answers it instead of dying) and
    whether a retry may get past it (TRANSIENT_ERRNOS: status "retry", exit 1; else "failed", exit 5)."""
    transient = e.errno in TRANSIENT_ERRNOS
    what = f"{e.filename}: {e.strerror}" if e.filename and e.strerror else str(e)
    return failure_result(task, "retry" if transient else "failed", EXIT_FAILURE if transient else EXIT_IO,
                          what), transient


def failure_result(task: Any, status: str, exit_code: int, error: str) -> Result:
    """The result line of a task that raised: status, exit code and error, and which task it was (its op, and
    its input and stem, or its output) when the task could be read."""
    res: Result = {"status": status, "exit_code": exit_code, "error": error}
    if isinstance(task, dict):
        res["op"] = task.get("op")
        if isinstance(task.get("input"), str):
            res["input"] = os.path.abspath(task["input"])
            if task.get("op") == "ingest":
                res["stem"] = stem(res["input"])
        elif isinstance(task.get("output"), str):
            res["output"] = task["output"]
    return res


def stem(path: str) -> str:
    """The output name of an input: its base name without .zst/.gz, then without .jsonl/.json/.ndjson/.log."""
    name = os.path.basename(path.rstrip("/"))
    for suffixes in (_INPUT_SUFFIXES, _LOG_SUFFIXES):
        for s in suffixes:
            if name.endswith(s) and len(name) > len(s):
                name = name[:-len(s)]
                break
    return name


def hidden_stem(path: str) -> Optional[str]:
    """None when input path's stem is fit to name outputs; else why not, for a message: a stem starting
    with '_' or '.' would make STEM.avro a name readers of the folder (Spark, Hadoop) skip as hidden."""
    name = stem(path)
    if not name.startswith(("_", ".")):
        return None
    return (f"{path}: its outputs would be named {name}.avro, which readers of the folder "
            f"(Spark, Hadoop) skip as hidden (a name starting with '{name[0]}'): rename the input")


def layout(out: str, name: str) -> Dict[str, str]:
    """The paths of input STEM `name` in output folder `out` (see the module's docstring)."""
    meta = os.path.join(out, "_bidnorm")
    return {
        "avro": os.path.join(out, name + ".avro"),
        "rejects": os.path.join(out, "_rejects", name + ".rejects.jsonl"),
        "stats": os.path.join(out, "_stats", name + ".stats.json"),
        "record": os.path.join(meta, "committed", name + ".json"),
        "replaced": os.path.join(meta, "replaced"),
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


def _result_of(record: Dict[str, Any], attempt_id: Optional[str] = None) -> Result:
    result = dict(record["result"])
    if attempt_id is not None and attempt_id != record["attempt"]:
        result["note"] = "already committed by attempt " + record["attempt"]
    return result


def _install(src: str, dst: str) -> None:
    """Make dst a name of file src, atomically replacing dst."""
    tmp = f"{dst}.{uuid.uuid4().hex[:12]}.tmp"
    os.link(src, tmp)
    os.replace(tmp, dst)
    _fsync_dir(os.path.dirname(dst))


def _load_record(paths: Dict[str, str], out: str) -> Optional[Dict[str, Any]]:
    """The input's commit record, None when it has none; rolls forward a replacement and the renames
    of a commit that were interrupted, so the outputs in place are the record's."""
    try:
        record = _read_json(paths["record"])
    except FileNotFoundError:
        return None
    while True:
        newer = os.path.join(paths["replaced"], record["attempt"] + ".json")
        try:
            replacement = _read_json(newer)
        except FileNotFoundError:
            break
        _install(newer, paths["record"])
        record = replacement
    _finish_commit(record, out)
    return record


def committed_record(out: str, name: str) -> Optional[Dict[str, Any]]:
    """The commit record of input STEM name in output folder out ({"stem", "attempt", "input", "name",
    "identity", "result"}), None when there is none; an interrupted commit or replacement is
    finished first."""
    return _load_record(layout(out, name), out)


def finish_run(out: str) -> None:
    """Tidy output folder out once no task on it runs (a driver calls it at the end of its run): finish
    the commits and replacements that attempts claimed but did not finish (a worker lost between its
    claim and its renames, whose task never ran again), then remove the staging folders of lost
    attempts, the records they were writing under a temporary name (OUT/_bidnorm/committed/*.tmp)
    and the replacement claims (OUT/_bidnorm/replaced/)."""
    meta = os.path.join(out, "_bidnorm")
    staging = os.path.join(meta, "staging")
    for name in os.listdir(staging) if os.path.isdir(staging) else []:
        committed_record(out, name.rsplit(".", 1)[0])
        shutil.rmtree(os.path.join(staging, name), ignore_errors=True)
    # a record is written whole as STEM.json.RANDOM.tmp, then renamed over STEM.json (_install,
    # _record_identity): one still there was being written when its attempt was lost
    committed = os.path.join(meta, "committed")
    for name in os.listdir(committed) if os.path.isdir(committed) else []:
        if name.endswith(".tmp"):
            os.unlink(os.path.join(committed, name))
    replaced = os.path.join(meta, "replaced")
    for name in os.listdir(replaced) if os.path.isdir(replaced) else []:
        claim = os.path.join(replaced, name)
        try:
            stem_of = _read_json(claim)["stem"]
        except (OSError, ValueError, KeyError):
            continue        # not a claim (claims are written whole, then linked): left alone
        # Safe to remove once rolled forward: the claim replaced/OLD.json is read only by whoever reads a
        # record of attempt OLD (to roll the replacement forward) and by an attempt that read such a record
        # and claims its replacement (to claim it once). committed_record has just installed the
        # replacement, so no record in place is OLD's again (attempt names are never reused), and with no
        # task running nobody still holds OLD's record from before: no one looks the claim up again.
        committed_record(out, stem_of)
        os.unlink(claim)


def _stat_of(path: str) -> Dict[str, int]:
    st = os.stat(path)
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _sha256_file(path: str) -> str:
    h = hashlib.sha256()
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    with open(path, "rb") as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(view[:n])
    return h.hexdigest()


def _what_changed(old: Dict[str, Any], new: Dict[str, Any]) -> str:
    if old["size"] != new["size"]:
        return f"size {old['size']} -> {new['size']} bytes"
    if old.get("sha256") and new.get("sha256"):
        return f"same size, sha256 {old['sha256'][:12]} -> {new['sha256'][:12]}"
    return "same size, modified again"


def input_identity(path: str) -> Dict[str, Any]:
    """What identifies an input file: {"size", "mtime_ns", "sha256"} (of its bytes as stored, compressed
    or not). OSError; TransientFailure when the file changes while it is read."""
    before = _stat_of(path)
    digest = _sha256_file(path)
    after = _stat_of(path)
    if after != before:
        raise TransientFailure(f"{path}: changed while it was read ({_what_changed(before, after)})")
    return {**before, "sha256": digest}


def unchanged_by_stat(identity: Optional[Dict[str, Any]], path: str) -> bool:
    """True when path has the size and modification time identity recorded, or there is nothing to
    compare (no identity recorded, or the input is gone); False when only the content can tell."""
    if not identity:
        return True
    try:
        return _stat_of(path) == {"size": identity["size"], "mtime_ns": identity["mtime_ns"]}
    except OSError:
        return True


def input_change(identity: Optional[Dict[str, Any]], path: str) -> Optional[str]:
    """None when path still holds the input of that identity (see unchanged_by_stat: a record without
    one, or an input that is gone, counts as unchanged); else what changed, for a message. The content
    is hashed only when the size is the same and the modification time is not."""
    return _compare(identity, path)[0]


def _compare(identity: Optional[Dict[str, Any]], path: str) -> Tuple[Optional[str], Optional[Dict[str, Any]]]:
    """input_change, and the input's identity now when its hash proved the content unchanged although
    its modification time is not the one recorded (else None). TransientFailure when the input changes
    while it is hashed."""
    if unchanged_by_stat(identity, path):
        return None, None
    assert identity is not None
    try:
        now: Dict[str, Any] = _stat_of(path)
        if now["size"] == identity["size"]:
            now = input_identity(path)
            if now["sha256"] == identity.get("sha256"):
                return None, now
    except FileNotFoundError:       # removed meanwhile: a retry finds it gone (the commit stays) or back
        raise TransientFailure(f"{path}: removed while it was compared with its commit record") from None
    return _what_changed(identity, now), None


def _other_input(record: Dict[str, Any], inp: str, name: str) -> Optional[str]:
    """The input record was committed from when that is not input inp recorded under name (the source
    name given, else inp): another input with the same stem. None when it is the same input - the same
    name (records from before names were kept: the same path), or the same file under another path - or
    when the record does not say."""
    if "name" in record:
        if record["name"] == name:
            return None
    elif record.get("input") in (None, inp):
        return None
    other = record.get("input")
    try:
        if other is not None and os.path.samefile(other, inp):
            return None
    except OSError:
        pass
    return other or record["name"]


def _record_identity(paths: Dict[str, str], record: Dict[str, Any], identity: Dict[str, Any]) -> None:
    """Keep the input's identity now in its commit record (the same content, another modification
    time: copied again), so the next run skips it by size and time instead of hashing it again. The
    record is written whole under a temporary name, then renamed over the old one. Had another task
    installed a replacement meanwhile (only if the input changed again right after this hash), the
    rename would put back a record of the replaced attempt; its replacement claim, kept while tasks
    run (see finish_run), makes whoever reads the record roll the replacement forward again."""
    tmp = f"{paths['record']}.{uuid.uuid4().hex[:12]}.tmp"
    _write_json(tmp, {**record, "identity": identity})
    os.replace(tmp, paths["record"])
    _fsync_dir(os.path.dirname(paths["record"]))


def _quarantine(paths: Dict[str, str], name: str, attempt: str, result: Result,
                identity: Optional[Dict[str, Any]]) -> None:
    q = paths["quarantine"]
    os.makedirs(q, exist_ok=True)
    for suffix in (".rejects.jsonl", ".stats.json"):
        try:
            os.replace(os.path.join(attempt, name + suffix), os.path.join(q, name + suffix))
        except FileNotFoundError:
            pass
    _write_json(os.path.join(q, name + ".error.json"), {**result, **({"identity": identity} if identity else {})})
    _fsync_dir(q)


def ingest_unit(task: Dict[str, Any]) -> Result:
    """Ingest one input into task["output_dir"]; the task's keys:

    input (path), output_dir, name (recorded as --source-name; default the input path),
    options (extra `bidnorm ingest` arguments, e.g. ["--codec", "snappy"]), reingest_changed (true:
    an input changed since it was committed is ingested again, its outputs replaced), bin (default
    find_binary()).

    Returns {"op", "input", "stem", "status": "committed" | "failed" | "changed" | "conflict",
    "exit_code", "error", "records_read", "records_written", "records_rejected", "avro", "attempt",
    "seconds"}. A committed input returns its committed result however often it is run, as long as
    it is unchanged (also from another path); a changed one returns status "changed" (exit 2, the
    outputs untouched) unless reingest_changed; another input with a committed input's stem returns
    status "conflict" (exit 2, the outputs untouched, whatever reingest_changed says); an input whose
    stem starts with '_' or '.' returns status "failed" (exit 2, nothing written). Raises TransientFailure when the attempt may succeed if retried (exit 1,
    killed by a signal, the input changed while it was ingested).
    """
    started = time.monotonic()
    inp, out = os.path.abspath(task["input"]), os.path.abspath(task["output_dir"])
    name = stem(inp)
    hidden = hidden_stem(inp)
    if hidden is not None:
        return {"op": "ingest", "input": inp, "stem": name, "status": "failed", "exit_code": EXIT_USAGE,
                "error": hidden}
    source = task.get("name") or inp
    paths = layout(out, name)
    record = _load_record(paths, out)
    if record is not None:
        change, now = _compare(record.get("identity"), inp)
        if change is None:      # the same content (also when moved: another path, the same bytes)
            if now is not None:
                _record_identity(paths, record, now)
            return _result_of(record)
        other = _other_input(record, inp, source)
        if other is not None:
            return {"op": "ingest", "input": inp, "stem": name, "status": "conflict", "exit_code": EXIT_USAGE,
                    "avro": paths["avro"], "attempt": record["attempt"],
                    "error": f"{inp}: another input with the stem {name} is committed in {out}: {other} "
                             f"({change}); two different inputs share the stem: {name}.avro and its rejects and "
                             "stats stay the other input's (--reingest-changed does not replace another input's "
                             "outputs): write this input to another output, or rename it"}
        if not task.get("reingest_changed"):
            return {"op": "ingest", "input": inp, "stem": name, "status": "changed", "exit_code": EXIT_USAGE,
                    "avro": paths["avro"], "attempt": record["attempt"],
                    "error": f"{inp}: changed since it was committed ({change}): {name}.avro and its rejects and "
                             "stats hold the earlier content; ingest it again with --reingest-changed (in a unit "
                             "task: \"reingest_changed\": true), which replaces them"}
    for d in (os.path.dirname(paths["rejects"]), os.path.dirname(paths["stats"]), paths["staging"],
              os.path.dirname(paths["record"])):
        os.makedirs(d, exist_ok=True)
    attempt_id = f"{name}.{uuid.uuid4().hex[:12]}"
    attempt = os.path.join(paths["staging"], attempt_id)
    os.mkdir(attempt)
    try:
        identity: Optional[Dict[str, Any]] = input_identity(inp)
    except OSError:
        identity = None         # bidnorm ingest reports what is wrong with it
    except TransientFailure:
        shutil.rmtree(attempt, ignore_errors=True)
        raise
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
        _quarantine(paths, name, attempt, result, identity)
        shutil.rmtree(attempt, ignore_errors=True)
        return result
    if identity is not None and not unchanged_by_stat(identity, inp):
        shutil.rmtree(attempt, ignore_errors=True)
        raise TransientFailure(f"{inp}: changed while it was ingested ({_what_changed(identity, _stat_of(inp))}): "
                               "not committed")
    result["status"] = "committed"
    result["seconds"] = round(time.monotonic() - started, 3)
    # claim: the record is written whole in the attempt folder, then linked into place - at most once.
    # Replacing a changed input's commit claims the name its old attempt is replaced under.
    claimed = {"stem": name, "attempt": attempt_id, "input": inp, "name": source, "identity": identity,
               "result": result}
    target = paths["record"]
    if record is not None:
        claimed["replaces"] = record["attempt"]
        os.makedirs(paths["replaced"], exist_ok=True)
        target = os.path.join(paths["replaced"], record["attempt"] + ".json")
    claim = os.path.join(attempt, "commit.json")
    _write_json(claim, claimed)
    try:
        os.link(claim, target)
    except FileExistsError:
        shutil.rmtree(attempt, ignore_errors=True)
        winner = _load_record(paths, out)
        if winner is not None and winner.get("identity") == identity:
            return _result_of(winner, attempt_id)
        raise TransientFailure(f"{inp}: committed meanwhile by another attempt, from other content") from None
    _fsync_dir(os.path.dirname(target))
    if record is not None:
        _install(target, paths["record"])
    try:
        os.unlink(claim)
    except FileNotFoundError:
        pass        # an attempt that lost the claim meanwhile finished this commit, staging folder and all
    _finish_commit(claimed, out)
    # an earlier run's quarantine of this input (run again with --retry-failed) no longer applies
    for suffix in (".error.json", ".rejects.jsonl", ".stats.json"):
        try:
            os.unlink(os.path.join(paths["quarantine"], name + suffix))
        except FileNotFoundError:
            pass
    return result


def bidnorm_version(binary: Optional[str] = None) -> str:
    """What `bidnorm --version` prints (the binary find_binary() finds, or binary)."""
    proc = subprocess.run([binary or find_binary(), "--version"], stdin=subprocess.DEVNULL, capture_output=True,
                          check=True)
    return proc.stdout.decode(errors="replace").strip()


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
