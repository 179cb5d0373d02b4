"""The Dask driver: ingest as one task per input, and vocabularies as counts per file reduced by a
tree of part merges. Only file names and small JSON results travel through the engine.

    from distributed import Client
    from bidnorm.distributed import ingest, vocab
    with Client("tcp://scheduler:8786") as client:
        report = ingest(client, inputs, "out/2026-11-20")       # report.exit_code as the CLI's
        report = vocab(client, avros, "vocab/install", fields=["app_bundle"], options=["--min-count", "20"])
"""
import fcntl
import hashlib
import json
import os
import shutil
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, TextIO

from distributed import Client, as_completed, wait

from . import unit
from .unit import EXIT_FAILURE, EXIT_IO, EXIT_OK, EXIT_REJECTS, EXIT_RULES, EXIT_USAGE

Result = Dict[str, Any]


@dataclass
class Report:
    """What a driver run did. exit_code follows the bidnorm command's table."""
    exit_code: int = EXIT_OK
    committed: List[Result] = field(default_factory=list)   # committed by this run
    skipped: List[Result] = field(default_factory=list)     # committed by an earlier run (resume)
    failed: List[Result] = field(default_factory=list)      # permanent failures, quarantined
    lost: List[Result] = field(default_factory=list)        # retries exhausted (workers lost, exit 1)
    totals: Dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    message: str = ""
    parts: str = ""             # vocab: the folder of parts, kept after a failure for the rerun to reuse


def _exit_code(failed: Sequence[Result], lost: Sequence[Result]) -> int:
    """One code for many inputs: the most fundamental problem wins (rules, then usage, I/O, rejects, other)."""
    codes = {r.get("exit_code") for r in failed}
    for code in (EXIT_RULES, EXIT_USAGE, EXIT_IO, EXIT_REJECTS):
        if code in codes:
            return code
    return EXIT_FAILURE if lost or failed else EXIT_OK


class _Progress:
    """One line on stderr, rewritten in place, when stderr is a terminal."""

    def __init__(self, what: str, total: int, show: bool, stream: TextIO = sys.stderr) -> None:
        self.what, self.total, self.stream = what, total, stream
        self.on = show and stream.isatty()
        self.started = time.monotonic()

    def show(self, done: int, failed: int) -> None:
        if self.on:
            self.stream.write(f"\r\033[Kbidnorm {self.what}: {done}/{self.total} done, {failed} failed, "
                              f"{time.monotonic() - self.started:.0f} s")
            self.stream.flush()

    def end(self) -> None:
        if self.on:
            self.stream.write("\r\033[K")
            self.stream.flush()


def _journal(out: str, entry: Dict[str, Any]) -> None:
    path = os.path.join(out, "_bidnorm", "journal.jsonl")
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(entry, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _plan(inputs: Sequence[str]) -> Dict[str, str]:
    """stem -> absolute input; ValueError for two inputs with one stem (they would overwrite each other)
    or a stem starting with '_' or '.' (its Avro would be hidden from readers: unit.hidden_stem)."""
    by_stem: Dict[str, str] = {}
    for p in inputs:
        a = os.path.abspath(p)
        hidden = unit.hidden_stem(a)
        if hidden is not None:
            raise ValueError(hidden)
        s = unit.stem(a)
        if s in by_stem and by_stem[s] != a:
            raise ValueError(f"{by_stem[s]} and {a} would both be written as {s}.avro: rename one")
        by_stem[s] = a
    return by_stem


def ingest(client: Client, inputs: Sequence[str], out: str, *, options: Sequence[str] = (),
           retries: int = 2, retry_failed: bool = False, reingest_changed: bool = False,
           names: Optional[Dict[str, str]] = None,
           progress: Optional[Callable[[int, int], None]] = None, show_progress: bool = True) -> Report:
    """Ingest every input into folder out (layout: bidnorm.distributed.unit), one task per input.

    options: extra `bidnorm ingest` arguments (--rules with an absolute path, --codec, ...).
    Inputs committed by an earlier run are skipped while unchanged (size and modification time as
    recorded; when only the time differs, a worker compares the content hash); a changed one fails
    (status "changed", exit 2, its outputs kept) unless reingest_changed, which ingests it again and
    replaces them; another input with a committed input's stem (another path, other content) fails
    (status "conflict", exit 2, the other input's outputs kept) whatever reingest_changed says, and an
    input whose stem starts with '_' or '.' is refused with the plan (exit 2, nothing written), as two
    inputs with one stem are. Inputs quarantined by an earlier run are reported again unless retry_failed or
    their size or modification time changed (a corrected file). A task whose worker is lost is run
    again by the scheduler (up to its allowed-failures); an attempt that fails in a way a retry may
    fix (exit 1, killed) is retried `retries` times; permanent failures (exit 2-5) are quarantined
    and never retried.
    names: input path -> the name recorded for it (e.g. its object URL). progress(done, total) is
    called after each input; show_progress: a progress line on stderr when it is a terminal.
    Writes OUT/_SUCCESS when every input is committed. One run at a time writes out: a run holds an
    exclusive lock (flock) on OUT/_bidnorm/lock from its plan to its end (the end of a run removes
    what it takes for lost attempts' leftovers), and a second run fails at once (exit 1), before
    anything is submitted or written.
    """
    started = time.monotonic()
    report = Report()
    out = os.path.abspath(out)
    try:
        plan = _plan(inputs)
    except ValueError as e:
        report.exit_code, report.message = EXIT_USAGE, str(e)
        return report
    os.makedirs(os.path.join(out, "_bidnorm", "staging"), exist_ok=True)
    # one run at a time: the end of a run removes the staging folders and claims of attempts it takes for
    # lost, which would fail (and quarantine) the attempts of another run still going on the same out
    lock = _lock(os.path.join(out, "_bidnorm"))
    if lock is None:
        report.exit_code = EXIT_FAILURE
        report.message = (f"another run is writing {out}: it holds the lock {os.path.join(out, '_bidnorm', 'lock')}; "
                          "wait for it to end, or write to another output")
        return report
    try:
        _ingest_locked(client, report, plan, out, options=options, retries=retries, retry_failed=retry_failed,
                       reingest_changed=reingest_changed, names=names, progress=progress,
                       show_progress=show_progress)
    finally:
        os.close(lock)
    report.seconds = round(time.monotonic() - started, 3)
    return report


def _ingest_locked(client: Client, report: Report, plan: Dict[str, str], out: str, *, options: Sequence[str],
                   retries: int, retry_failed: bool, reingest_changed: bool, names: Optional[Dict[str, str]],
                   progress: Optional[Callable[[int, int], None]], show_progress: bool) -> None:
    """ingest() once it holds the lock of out/_bidnorm."""
    try:
        os.unlink(os.path.join(out, "_SUCCESS"))
    except FileNotFoundError:
        pass
    run_id = uuid.uuid4().hex[:12]
    todo = []
    earlier: Dict[str, str] = {}        # input -> the attempt an earlier run committed it with
    for s, inp in plan.items():
        paths = unit.layout(out, s)
        record = unit.committed_record(out, s)      # finishes an interrupted commit
        if record is not None:
            if unit.unchanged_by_stat(record.get("identity"), inp):
                report.skipped.append(dict(record["result"]))
                continue
            earlier[inp] = record["attempt"]        # a worker hashes it, or finds it changed
        else:
            err = os.path.join(paths["quarantine"], s + ".error.json")
            if os.path.exists(err) and not retry_failed:
                with open(err, encoding="utf-8") as f:
                    error = json.load(f)
                if unit.unchanged_by_stat(error.pop("identity", None), inp):
                    report.failed.append(error)
                    continue
        todo.append({"op": "ingest", "input": inp, "output_dir": out, "options": list(options),
                     **({"reingest_changed": True} if reingest_changed else {}),
                     **({"name": names[inp]} if names and inp in names else {})})
    bar = _Progress("ingest", len(todo), show_progress)
    futures = client.map(unit.run_unit, todo, key=[f"bidnorm-ingest-{run_id}-{i}" for i in range(len(todo))],
                         retries=retries, pure=False)
    task_of = {f.key: t for f, t in zip(futures, todo)}
    done = 0
    for fut in as_completed(futures):
        task = task_of[fut.key]
        try:
            res = fut.result()
        except Exception as e:  # the worker was lost too often, or every retry failed
            res = {"op": "ingest", "input": task["input"], "stem": unit.stem(task["input"]), "status": "lost",
                   "exit_code": EXIT_FAILURE, "error": f"{type(e).__name__}: {e}"}
        fut.release()
        done += 1
        if res.get("status") == "committed" and res.get("attempt") == earlier.get(task["input"]):
            report.skipped.append(res)      # only its modification time had changed
        else:
            {"committed": report.committed, "failed": report.failed,
             "changed": report.failed, "conflict": report.failed}.get(res.get("status"), report.lost).append(res)
        _journal(out, {"run": run_id, "time": time.time(), **{k: res.get(k) for k in (
            "input", "stem", "status", "exit_code", "error", "records_read", "records_written", "records_rejected",
            "attempt")}})
        bar.show(done, len(report.failed) + len(report.lost))
        if progress:
            progress(done, len(todo))
    bar.end()
    # nothing runs now: finish what lost attempts claimed, remove their staging folders and the claims
    unit.finish_run(out)
    totals = {"records_read": 0, "records_written": 0, "records_rejected": 0}
    for r in report.committed + report.skipped:
        for k in totals:
            totals[k] += int(r.get(k) or 0)
    report.totals = totals
    report.exit_code = _exit_code(report.failed, report.lost)
    if totals["records_read"] != totals["records_written"] + totals["records_rejected"]:
        report.exit_code = EXIT_FAILURE
        report.message = "totals do not reconcile: " + json.dumps(totals)
    if report.exit_code == EXIT_OK:
        with open(os.path.join(out, "_SUCCESS"), "w", encoding="utf-8"):
            pass


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _count_key(path: str, name: Optional[str], settings: str) -> str:
    """The name of an input's part: changes with the input (path, name recorded, size, modification
    time, its first and last 64 KiB) and the count's settings, so no rerun reuses a stale part."""
    doc: Dict[str, Any] = {"input": path, "name": name, "settings": settings}
    try:
        st = os.stat(path)
        with open(path, "rb") as f:
            head = f.read(64 * 1024)
            f.seek(max(0, st.st_size - 64 * 1024))
            tail = f.read(64 * 1024)
        doc.update(size=st.st_size, mtime_ns=st.st_mtime_ns, sample=_sha256(head + tail))
    except OSError as e:        # the count reports it
        doc["unreadable"] = str(e)
    return _sha256(json.dumps(doc, sort_keys=True).encode())[:32]


def _settings(fields: Sequence[str], where: Sequence[str], count_options: Sequence[str], version: str) -> str:
    """What a count's part depends on besides its input: fields, filters, options (--max-memory and
    --spill-dir aside: they never change a part), the content of a --rules file, the bidnorm version."""
    options: List[str] = []
    it = iter(count_options)
    for opt in it:
        if opt in ("--max-memory", "--spill-dir"):
            next(it, None)
        elif opt.startswith(("--max-memory=", "--spill-dir=")):
            continue
        elif opt == "--rules":
            value = next(it, "")
            options += [opt, value, _sha256(_read_or_empty(value))]
        elif opt.startswith("--rules="):        # getopt's other spelling: the content counts all the same
            options += ["--rules", opt[len("--rules="):], _sha256(_read_or_empty(opt[len("--rules="):]))]
        else:
            options.append(opt)
    return json.dumps({"fields": list(fields), "where": list(where), "options": options, "bidnorm": version})


def _read_or_empty(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:             # a shipped set's name (bidlog, openrtb): the version covers it
        return b""


# Options of the final merge that a `vocab merge --part` takes too, and that change no part: what the
# counts were allowed to accept, the merges of their parts must accept as well.
_PART_MERGE_FLAGS = ("--allow-mixed-rules", "--allow-other-text-repair")
_PART_MERGE_VALUES = ("--max-memory", "--spill-dir")


def _part_merge_options(options: Sequence[str]) -> List[str]:
    kept: List[str] = []
    it = iter(options)
    for opt in it:
        if opt in _PART_MERGE_FLAGS or opt.startswith(tuple(v + "=" for v in _PART_MERGE_VALUES)):
            kept.append(opt)
        elif opt in _PART_MERGE_VALUES:
            kept += [opt, next(it, "")]
    return kept


def _lock(work: str) -> Optional[int]:
    """Create folder work if needed and lock work/lock (flock, exclusive, not waiting): the open file,
    which holds the lock until it is closed (also when the process dies), or None when another run
    holds it."""
    path = os.path.join(work, "lock")
    while True:
        os.makedirs(work, exist_ok=True)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except FileNotFoundError:       # the run that held it removed the folder meanwhile
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        # a run that finished removes the folder, lock file and all, still holding the lock: a file
        # opened before that is no longer the one in place, and locking it guards nothing
        try:
            st, held = os.stat(path), os.fstat(fd)
            if (st.st_dev, st.st_ino) == (held.st_dev, held.st_ino):
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


def _remove_locked(work: str) -> None:
    """Remove folder work, whose lock this run holds. It is renamed away first, in one step: a run
    that starts meanwhile makes a new folder and lock of its own, instead of having the lock file it
    just locked removed from under it by this removal (and a third run then running beside it)."""
    gone = f"{work}.removing-{uuid.uuid4().hex[:12]}"
    try:
        os.rename(work, gone)
    except OSError:
        gone = work
    shutil.rmtree(gone, ignore_errors=True)


def vocab(client: Client, inputs: Sequence[str], out: str, *, fields: Sequence[str], where: Sequence[str] = (),
          count_options: Sequence[str] = (), options: Sequence[str] = (), fan_in: int = 8,
          work_dir: Optional[str] = None, retries: int = 2) -> Report:
    """A vocabulary directory out from Avro inputs: `vocab count` per input with count_options (--rules,
    --allow-mixed-rules, --allow-other-text-repair, --max-memory, ...), `vocab merge --part` over groups
    of fan_in parts until at most fan_in remain (with those of options that a part merge takes:
    --allow-mixed-rules, --allow-other-text-repair, --max-memory, --spill-dir), then one `vocab merge`
    into out with options (--min-count, --top-k, --task, --rules, --force, ...). The files equal one
    `bidnorm vocab build` over the same inputs (the manifest's "resources" aside) when the counts get
    the build's --rules: it normalizes the --where values.

    Parts go to the folder .OUT.parts beside out (or in work_dir), named by what they depend on (see
    _count_key, _settings; a merged part by its parts): a rerun reuses every part an earlier run
    finished (report.skipped) and makes only the others. The folder is removed once the vocabulary
    is written; after a failure every count and merge that can still finish does, and the folder
    stays (report.parts). A run holds the lock file .OUT.parts/lock from start to end: a second run
    into the same out fails at once (exit 1) and changes nothing.
    """
    started = time.monotonic()
    report = Report()
    if fan_in < 2:
        report.exit_code, report.message = EXIT_USAGE, "the fan-in must be at least 2"
        return report
    out = os.path.abspath(out)
    work = os.path.join(work_dir or os.path.dirname(out), f".{os.path.basename(out)}.parts")
    created = not os.path.isdir(work)
    lock = _lock(work)
    if lock is None:
        report.exit_code = EXIT_FAILURE
        report.message = (f"another run is writing {out}: it holds the lock {os.path.join(work, 'lock')}; "
                          "wait for it to end, or write to another output")
        return report
    try:
        _vocab_locked(client, report, inputs, out, work, created, fields=fields, where=where,
                      count_options=count_options, options=options, fan_in=fan_in, retries=retries)
    finally:
        os.close(lock)
    report.seconds = round(time.monotonic() - started, 3)
    return report


def _vocab_locked(client: Client, report: Report, inputs: Sequence[str], out: str, work: str, created: bool, *,
                  fields: Sequence[str], where: Sequence[str], count_options: Sequence[str],
                  options: Sequence[str], fan_in: int, retries: int) -> None:
    """vocab() once it holds the lock of work (which it created if created)."""
    run_id = uuid.uuid4().hex[:12]
    try:
        # the workers' bidnorm: another version may count otherwise
        version = client.submit(unit.bidnorm_version, key=f"bidnorm-version-{run_id}", pure=False).result()
    except Exception as e:  # no bidnorm on the workers
        res = _failure_of(e)
        report.failed.append(res)
        report.exit_code, report.message = EXIT_FAILURE, res["error"]
        if created:         # nothing but the lock is in it
            _remove_locked(work)
        return
    settings = _settings(fields, where, count_options, version)
    part_options = _part_merge_options(options)
    level: List[Dict[str, Any]] = []
    for p in inputs:
        a = os.path.abspath(p)
        name = p if p != a else None    # recorded under the names given, as `vocab build` would
        task = {"op": "count", "input": a, "fields": list(fields), "where": list(where),
                "options": list(count_options), **({"name": name} if name else {})}
        task["part"] = os.path.join(work, f"count-{_count_key(a, name, settings)}.part")
        level.append({"part": task["part"], "task": task})
    while len(level) > fan_in:
        level = [{"part": os.path.join(work, "merge-" + _sha256(" ".join(
                      os.path.basename(c["part"]) for c in group).encode())[:32] + ".part"), "children": group}
                 for group in (level[g:g + fan_in] for g in range(0, len(level), fan_in))]
    submitted: List[Any] = []
    made: Dict[str, Any] = {}      # an input given twice is counted once (and refused by the merge)

    def make(node: Dict[str, Any]) -> Any:
        """A part: reused when it exists (written atomically, so whole), else the future that makes it."""
        if node["part"] in made:
            return made[node["part"]]
        op = "count" if "task" in node else "merge"
        if os.path.exists(node["part"]):
            made[node["part"]] = {"op": op, "status": "ok", ("part" if op == "count" else "output"): node["part"]}
            report.skipped.append(made[node["part"]])
            return made[node["part"]]
        if op == "count":
            fut = client.submit(unit.run_unit, node["task"], key=f"bidnorm-count-{run_id}-{len(submitted)}",
                                retries=retries, pure=False)
        else:
            children = [make(c) for c in node["children"]]      # submitted first: the keys count them
            fut = client.submit(_merge_after, children, node["part"], options=part_options,
                                key=f"bidnorm-merge-{run_id}-{len(submitted)}", retries=retries, pure=False)
        submitted.append(fut)
        made[node["part"]] = fut
        return fut

    final = client.submit(_merge_after, [make(n) for n in level], out, options=list(options), final=True,
                          key=f"bidnorm-merge-{run_id}-final", retries=retries, pure=False)
    try:
        res = final.result()
    except Exception as e:  # a count or merge failed: the first failure, as the CLI reports it
        res = _failure_of(e)
    if res.get("status") == "ok":
        report.committed.append(res)
        _remove_locked(work)
    else:
        wait(submitted)     # what can still finish does, for the rerun
        report.failed.append(res)
        report.exit_code = int(res.get("exit_code") or EXIT_FAILURE)
        report.message = res.get("error") or ""
        report.parts = work


class UnitFailed(Exception):
    """A count or merge failed for good; carries its result so the driver reports it as the CLI would."""

    def __init__(self, result: Result) -> None:
        super().__init__(result.get("error") or "failed")
        self.result = result

    def __reduce__(self) -> Any:
        return (UnitFailed, (self.result,))


def _failure_of(e: Exception) -> Result:
    if isinstance(e, UnitFailed):
        return e.result
    return {"status": "failed", "exit_code": EXIT_FAILURE, "error": f"{type(e).__name__}: {e}"}


def _merge_after(results: List[Result], output: str, options: Sequence[str] = (), final: bool = False) -> Result:
    """Runs on a worker once the group's counts or merges are done: merge their parts."""
    for r in results:
        if r.get("status") != "ok":
            raise UnitFailed(r)
    parts = [r["part"] if r["op"] == "count" else r["output"] for r in results]
    res = unit.run_unit({"op": "merge", "parts": parts, "output": output, "part": not final,
                         "options": list(options)})
    if res["status"] != "ok":
        raise UnitFailed(res)
    return res
