#!/usr/bin/python3
"""bench-cluster.py - what Dask costs per task and gains over one process (run by `tools/bench cluster`).

    /usr/bin/python3 tools/bench-cluster.py --bidnorm BIN --workers N --rounds R --tiny FILE INPUT...

Starts a local Dask cluster (N worker processes, one thread each, on 127.0.0.1) and measures:
  - engine cost per task: the median round trip of one empty task (client.submit(...).result(),
    one at a time, 50 times), the wall time per task of 200 empty tasks at once (client.map),
    and the median latency of one ingest task of a tiny input through Dask and run directly;
  - ingest of the inputs: one `bidnorm ingest --threads 1` per input in turn (one process at
    a time), one `bidnorm ingest --threads N` over all inputs, and bidnorm.distributed.ingest
    on the cluster (median of R rounds each).
Prints one JSON object on stdout.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from bidnorm import distributed as bd  # noqa: E402


def noop(x):
    return x


def timed(fn):
    t = time.monotonic()
    fn()
    return time.monotonic() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bidnorm", required=True)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tiny", required=True, help="a small input for the per-task cost")
    ap.add_argument("inputs", nargs="+")
    args = ap.parse_args()
    os.environ["BIDNORM_BIN"] = os.path.abspath(args.bidnorm)
    from distributed import Client, LocalCluster  # pylint: disable=import-outside-toplevel
    work = tempfile.mkdtemp(prefix="bidnorm-bench-cluster.")
    try:
        t0 = time.monotonic()
        with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address="127.0.0.1:0", worker_dashboard_address="127.0.0.1:0",
                          silence_logs=50) as cluster, Client(cluster) as client:
            startup = time.monotonic() - t0
            client.run(lambda: None)

            def tiny_task(i):
                return {"op": "ingest", "input": args.tiny, "output_dir": os.path.join(work, f"tiny{i}")}
            direct = [timed(lambda i=i: bd.run_unit(tiny_task(i))) for i in range(20)]
            via = [timed(lambda i=i: client.submit(bd.run_unit, tiny_task(100 + i), pure=False).result())
                   for i in range(20)]
            trip = [timed(lambda i=i: client.submit(noop, i, key=f"trip-{i}").result()) for i in range(50)]
            empty = []
            for r in range(3):
                t = time.monotonic()
                futs = client.map(noop, range(200), key=[f"noop-{r}-{i}" for i in range(200)])
                client.gather(futs)
                empty.append((time.monotonic() - t) / 200)
                del futs

            seq, one, dask = [], [], []
            for r in range(args.rounds):
                def sequential():
                    for i, f in enumerate(args.inputs):
                        subprocess.run([args.bidnorm, "ingest", "-q", "--threads", "1", "--max-reject-rate", "1",
                                        "-o", os.path.join(work, f"seq{r}-{i}.avro"), f], check=True)
                seq.append(timed(sequential))
                one.append(timed(lambda: subprocess.run(
                    [args.bidnorm, "ingest", "-q", "--threads", str(args.workers), "--max-reject-rate", "1",
                     "-o", os.path.join(work, f"one{r}.avro"), *args.inputs], check=True)))
                out = os.path.join(work, f"dask{r}")
                rep = [None]
                dask.append(timed(lambda: rep.__setitem__(0, bd.ingest(client, args.inputs, out,
                                                                         options=["--max-reject-rate", "1"]))))
                if rep[0].exit_code != 0:
                    raise SystemExit(f"distributed ingest failed: {rep[0].failed or rep[0].lost}")
                for p in os.listdir(work):
                    if p.startswith(("seq", "one", "dask")):
                        full = os.path.join(work, p)
                        shutil.rmtree(full) if os.path.isdir(full) else os.unlink(full)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    med = statistics.median
    print(json.dumps({
        "workers": args.workers, "rounds": args.rounds, "inputs": len(args.inputs),
        "cluster_startup_s": round(startup, 3),
        "tiny_task_direct_ms": round(med(direct) * 1000, 2), "tiny_task_dask_ms": round(med(via) * 1000, 2),
        "engine_cost_per_task_ms": round(med(trip) * 1000, 2),
        "empty_task_wall_ms": round(med(empty) * 1000, 3),
        "sequential_threads1_s": round(med(seq), 3), "one_process_threads_n_s": round(med(one), 3),
        "dask_s": round(med(dask), 3),
        "speedup_vs_sequential": round(med(seq) / med(dask), 2),
        "speedup_vs_one_process": round(med(one) / med(dask), 2),
        "runs": {"sequential": seq, "one_process": one, "dask": dask},
    }))


if __name__ == "__main__":
    main()
