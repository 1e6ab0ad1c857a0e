"""Job-submission burst on the job store alone: ``--clients`` threads each create ``--jobs`` one-entity
jobs at once (what ``POST /v1/jobs`` does to the job database), while ``--workers`` threads record
progress the way running jobs do. Prints submits/s and the p50/p95 latency of ``JobStore.create``.

Run: ``.venv/bin/python benchmarks/bench_job_submit.py [--url postgresql://...] [--store-file old.py]``.
``--store-file`` loads another version of ``kg_builder/jobs/job_store.py`` (e.g. ``git show
42b6028:kg_builder/jobs/job_store.py > /tmp/old.py``) to compare before and after.
"""

from __future__ import annotations

import argparse
import os
import importlib.util
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from kg_builder.jobs import EntityOutcome, JobSubmission
from kg_builder.pipeline import PipelineOptions, SourceEntity


def load_store(path: str | None):
    if not path:
        from kg_builder.jobs.job_store import JobStore

        return JobStore
    spec = importlib.util.spec_from_file_location("kg_builder.jobs._bench_store", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.JobStore


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--jobs", type=int, default=5, help="jobs per client")
    ap.add_argument("--workers", type=int, default=2, help="threads recording progress meanwhile")
    ap.add_argument("--url", help="postgresql:// URL (default: a SQLite file in a temporary folder)")
    ap.add_argument("--store-file", help="another job_store.py to load instead of the current one")
    args = ap.parse_args()

    JobStore = load_store(args.store_file)
    schema = None
    if args.url:  # a throw-away schema, dropped at the end
        import psycopg

        schema = f"kgforge_bench_{os.getpid()}"
        with psycopg.connect(args.url, autocommit=True) as admin:
            admin.execute(f'CREATE SCHEMA "{schema}"')
        store = JobStore(f"{args.url}{'&' if '?' in args.url else '?'}options=-csearch_path%3D{schema}")
    else:
        store = JobStore(Path(tempfile.mkdtemp()) / "jobs.sqlite3")
    sub = JobSubmission(entities=[SourceEntity(name="virus")], domain="zoo",
                        options=PipelineOptions(generators=["graph"]))
    seed = [store.create(sub).id for _ in range(args.workers)]
    latencies: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(args.clients + 1)
    stop = threading.Event()

    def client() -> None:
        start.wait()
        for _ in range(args.jobs):
            t0 = time.perf_counter()
            store.create(sub)
            with lock:
                latencies.append(time.perf_counter() - t0)

    def worker(job_id: str) -> None:
        n = 0
        while not stop.is_set():
            store.heartbeat(job_id, "bench:1:t")
            store.record_batch(job_id, [EntityOutcome(0, generated=n)])
            n += 1
            time.sleep(0.01)

    threads = [threading.Thread(target=client) for _ in range(args.clients)]
    workers = [threading.Thread(target=worker, args=(j,)) for j in seed]
    for t in threads + workers:
        t.start()
    t0 = time.perf_counter()
    start.wait()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    stop.set()
    for t in workers:
        t.join()
    ordered = sorted(latencies)
    print(f"{args.store_file or 'current'} on {'postgresql' if args.url else 'sqlite'}: "
          f"{len(latencies)} submits by {args.clients} clients in {elapsed:.2f} s = {len(latencies) / elapsed:.0f}/s; "
          f"latency p50 {statistics.median(ordered) * 1000:.0f} ms, "
          f"p95 {ordered[int(0.95 * (len(ordered) - 1))] * 1000:.0f} ms, max {ordered[-1] * 1000:.0f} ms")
    if schema:
        if hasattr(store, "close"):
            store.close()
        with psycopg.connect(args.url, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


if __name__ == "__main__":
    main()
