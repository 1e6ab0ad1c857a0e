"""Recommendation latency through the API (``/v1/recommendations``), the student beside its teacher.

What it does, in one run:

1. finds the student ``--student`` (default ``sasrec-none-amazon18_scientific-s0``, what
   ``kgforge rec train --model sasrec`` saves) under ``--home`` (default ``KGFORGE_HOME``); without
   one it trains SASRec (ID only) on the real Amazon Scientific train file with a short budget
   (``--train-minutes``, default 4) and saves it there;
2. finds the teacher: a saved ``text-teacher`` (``recommender.teachers.TextTeacher``) under the
   home, else a **TextTeacher of the same architecture with untrained weights** saved as
   ``bench-text-teacher`` (latency does not depend on the weights; the table says which one ran);
3. copies both into a temporary home (the user's home is written only when a student is trained),
   starts a real uvicorn (one API process, ``api.main:app``, no lifespan: no job reaper) on
   127.0.0.1 as a separate process (so the load generator does not share its interpreter), in
   development mode without rate limit, with ``recommender.teachers`` imported so the teacher's
   registry entry exists;
4. **API**: ``GET /healthz`` first (the floor: what any request costs in this API process, its
   middleware and the client), then ``GET /v1/recommendations/{user_id}?k=10`` for real users of the dataset (their stored
   history, seen items excluded), first by one client (``--requests`` one after another), then by
   ``--clients`` (50) concurrent asyncio clients in a closed loop (each sends its next request when
   the last is answered), ``--per-client`` each; the same for the teacher (``&model=``) with fewer
   requests; ``POST`` with an item history at 1 client too; p50/p99 of the wall time each client
   sees, after ``--warmup`` unrecorded requests (the first loads the model and the users);
5. **in-process**, per user: the student's answer (``ServedModel.top_k``: one encoding + one
   matrix-vector product), the teacher's from its cached item vectors, and the teacher **reading
   text** (MiniLM encodes the history items' texts, then its user tower and the scoring: the cost of
   a text-based recommender that does not precompute its items);
6. prints a table and saves ``benchmarks/results/recommend.json``.

Targets (issue 12): API p99 <= 20 ms at 1 client; the student >= 50x faster than the teacher.
Run: ``.venv/bin/python benchmarks/bench_recommend.py`` (a few minutes; plus training when no
student is saved). The machine is shared and noisy: the load average is saved beside the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import socket
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).resolve().parent / "results" / "recommend.json"
ROOT = Path(__file__).resolve().parents[1]
TARGET_P99_MS = 20.0
TARGET_SPEEDUP = 50.0
DATASET = "amazon18_scientific"
TEACHER_STAND_IN = "bench-text-teacher"


def pct(values: list[float], q: float) -> float:
    return round(float(np.percentile(np.asarray(values), q)), 3) if values else float("nan")


def stats(values: list[float]) -> dict:
    return {"n": len(values), "p50_ms": pct(values, 50), "p99_ms": pct(values, 99),
            "mean_ms": round(float(np.mean(values)), 3) if values else float("nan")}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def copy_version(store, bench_store, name: str, version: int) -> None:
    """A saved version into the benchmark's own home (the user's home is never written but for a
    student trained here)."""
    import shutil

    target = bench_store.root / name / "v1"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(store.root / name / f"v{version}", target)
    meta = target / "metadata.json"
    meta.write_text(meta.read_text().replace(f'"version": {version},', '"version": 1,', 1))


def ensure_student(store, args, data, console) -> tuple[str, dict]:
    if store.versions(args.student):
        return args.student, {"trained_here": False, **store.load(args.student).meta.metrics}
    from recommender.train import train_student

    console.print(f"no saved {args.student}: training SASRec (ID only) for at most {args.train_minutes} min ...")
    result = train_student(data=data, model="sasrec", seed=0, max_minutes=args.train_minutes)
    store.save(args.student, result.model, item_ids=data.item_ids, dataset=DATASET, knowledge="none",
               train_config=result.config, metrics=result.metrics)
    return args.student, {"trained_here": True, **result.metrics}


def ensure_teacher(store, data, bench_store) -> tuple[str, str]:
    import torch

    from recommender.teachers import TEACHER_NAME, TextTeacher

    saved = [m for m in store.list() if m.model == TEACHER_NAME and m.dataset == DATASET and m.name != TEACHER_STAND_IN]
    if saved:
        latest = max(saved, key=lambda m: m.created)
        copy_version(store, bench_store, latest.name, latest.version)
        return latest.name, f"saved {TEACHER_NAME} {latest.name} v{latest.version}"
    torch.manual_seed(0)
    teacher = TextTeacher(data.n_items)
    teacher.item_vectors.copy_(torch.nn.functional.normalize(torch.randn(data.n_items, teacher.dim), dim=-1))
    bench_store.save(TEACHER_STAND_IN, teacher, item_ids=data.item_ids, dataset=DATASET, knowledge="none",
                   train_config={"note": "untrained weights, for latency only"})
    return TEACHER_STAND_IN, (f"{TEACHER_NAME} architecture with untrained weights (no trained teacher saved); "
                              "latency does not depend on the weights")


class ApiProcess:
    """``uvicorn api.main:app`` in its own process on 127.0.0.1 (one API process, lifespan off)."""

    def __init__(self, home: Path, data_dir: Path):
        self.port = free_port()
        env = {**os.environ, "KGFORGE_HOME": str(home), "KGFORGE_DATA_DIR": str(data_dir), "KGFORGE_ENV": "development",
               "KGFORGE_RATE_LIMIT_PER_S": "0", "KGFORGE_API_KEYS": "", "KGFORGE_REC_MODEL": ""}
        code = ("import recommender.teachers, uvicorn; "
                f"uvicorn.run('api.main:app', host='127.0.0.1', port={self.port}, lifespan='off', "
                "log_level='warning', access_log=False)")
        self.proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env)

    def __enter__(self) -> str:
        import httpx

        base = f"http://127.0.0.1:{self.port}"
        deadline = time.time() + 180
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                    return base
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("the API process did not start")
            time.sleep(0.3)

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


async def load(base: str, requests: list[tuple[str, str, dict | None]], clients: int) -> tuple[list[float], float]:
    """Closed loop: ``clients`` tasks share the request list; returns latencies (ms) and seconds."""
    import httpx

    latencies: list[float] = []
    queue = list(reversed(requests))
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as http:
        async def worker() -> None:
            while queue:
                method, url, body = queue.pop()
                start = time.perf_counter()
                response = await (http.get(url) if method == "GET" else http.post(url, json=body))
                latencies.append((time.perf_counter() - start) * 1000)
                if response.status_code != 200:
                    raise RuntimeError(f"{method} {url}: {response.status_code} {response.text[:300]}")

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        return latencies, time.perf_counter() - started


def in_process(store, student: str, teacher: str, histories: list[list[str]], texts: list[str], index: dict,
               repeats: int) -> dict:
    import torch

    from kg_builder.models.encoder import TextEncoder
    from recommender.models.base import ITEM_SEQ, ITEM_SEQ_LEN
    from recommender.serving import ServedModel

    out = {}
    served_s, served_t = ServedModel(store.load(student)), ServedModel(store.load(teacher))
    for label, served in (("student", served_s), ("teacher_cached_items", served_t)):
        lat = []
        for history in histories[:repeats]:
            start = time.perf_counter()
            served.top_k(history, k=10)
            lat.append((time.perf_counter() - start) * 1000)
        out[label] = stats(lat)
    encoder = TextEncoder()
    teacher = served_t.model
    lat = []
    with torch.inference_mode():
        for history in histories[: max(20, repeats // 10)]:
            recent = history[-teacher.max_len:]
            start = time.perf_counter()
            vectors = torch.as_tensor(encoder.encode([texts[index[i]] for i in recent]), dtype=torch.float32)
            table = torch.cat([teacher.item_vectors, vectors])  # the history's rows read from text
            rows = torch.arange(teacher.n_items, teacher.n_items + len(recent)).add(1).unsqueeze(0)
            hidden = teacher.encode(rows, torch.tensor([len(recent)]), table=table)[0, -1]
            scores = teacher.item_vectors @ hidden
            torch.topk(scores, 10)
            lat.append((time.perf_counter() - start) * 1000)
    out["teacher_reading_text"] = stats(lat)
    out["torch_threads"] = torch.get_num_threads()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, default=None, help="KGFORGE_HOME with the saved students")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--student", default="sasrec-none-amazon18_scientific-s0")
    parser.add_argument("--train-minutes", type=float, default=4.0)
    parser.add_argument("--requests", type=int, default=500, help="requests by one client")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--per-client", type=int, default=20)
    parser.add_argument("--teacher-requests", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--in-process", type=int, default=300, help="users timed in-process")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    from kg_builder.settings import get_settings
    from recommender.data import load_rec_data
    from recommender.serving import UserHistories
    from recommender.store import RecommenderStore
    from recommender.teachers.text_teacher import teacher_item_texts

    console = Console()
    settings = get_settings()
    home = (args.home or settings.home).expanduser().resolve()
    data_dir = (args.data_dir or settings.data_dir).expanduser().resolve()
    store = RecommenderStore(root=home / "recommenders")
    data = load_rec_data(DATASET, data_dir)
    student, training = ensure_student(store, args, data, console)
    bench_home = Path(tempfile.mkdtemp(prefix="kgforge-bench-rec-"))
    bench_store = RecommenderStore(root=bench_home / "recommenders")
    copy_version(store, bench_store, student, store.versions(student)[-1])
    teacher, teacher_kind = ensure_teacher(store, data, bench_store)
    store = bench_store
    student_meta = store.load(student).meta
    console.print(f"student {student} v{student_meta.version}; teacher: {teacher_kind}")

    rng = random.Random(args.seed)
    users = sorted(UserHistories(DATASET, data_dir).histories.items())
    picked = [users[rng.randrange(len(users))] for _ in range(max(args.requests, args.clients * args.per_client,
                                                                   args.in_process) + args.warmup)]
    get = [("GET", f"/v1/recommendations/{u}?k=10&model={student}", None) for u, _ in picked]
    post = [("POST", "/v1/recommendations", {"history": h, "k": 10, "model": student}) for _, h in picked]
    tget = [("GET", f"/v1/recommendations/{u}?k=10&model={teacher}", None) for u, _ in picked]

    api: dict = {}
    health = [("GET", "/healthz", None)] * len(picked)
    with ApiProcess(bench_home, data_dir) as base:
        for label, reqs, n, clients in (
                ("healthz_1", health, args.requests, 1),
                (f"healthz_{args.clients}", health, args.clients * args.per_client, args.clients),
                ("student_get_1", get, args.requests, 1), ("student_post_history_1", post, args.requests, 1),
                (f"student_get_{args.clients}", get, args.clients * args.per_client, args.clients),
                ("teacher_get_1", tget, args.teacher_requests, 1),
                (f"teacher_get_{args.clients}", tget, max(args.teacher_requests, args.clients * 4), args.clients)):
            asyncio.run(load(base, reqs[: args.warmup], 1))
            lat, seconds = asyncio.run(load(base, reqs[args.warmup: args.warmup + n], clients))
            api[label] = {**stats(lat), "clients": clients, "requests_per_s": round(len(lat) / seconds, 1)}
            console.print(f"{label}: {api[label]}")
    texts = teacher_item_texts(data)
    proc = in_process(store, student, teacher, [h for _, h in picked], texts, data.item_index(), args.in_process)

    speed_api = api["teacher_get_1"]["p50_ms"] / api["student_get_1"]["p50_ms"]
    speed_cached = proc["teacher_cached_items"]["p50_ms"] / proc["student"]["p50_ms"]
    speed_text = proc["teacher_reading_text"]["p50_ms"] / proc["student"]["p50_ms"]
    table = Table(title=f"Recommendations, {DATASET}, k 10, real users (stored histories, seen items excluded)",
                  caption=f"student {student} v{student_meta.version} ({student_meta.model}); teacher: {teacher_kind}")
    for column in ("what", "where", "clients", "p50 ms", "p99 ms", "req/s"):
        table.add_column(column, justify="left" if column in ("what", "where") else "right")
    names = {"healthz": "GET /healthz (the API's own floor)", "student_get": "student, GET /{user_id}",
             "student_post_history": "student, POST history", "teacher_get": "teacher, GET /{user_id}"}
    for label, row in api.items():
        what = names[label.rsplit("_", 1)[0]]
        ok = (" ok" if row["p99_ms"] <= TARGET_P99_MS else " MISSES") if label == "student_get_1" else ""
        table.add_row(what, "API (uvicorn, loopback)", str(row["clients"]), f"{row['p50_ms']:.2f}",
                      f"{row['p99_ms']:.2f}{ok}", f"{row['requests_per_s']:.0f}")
    for label, row in proc.items():
        if isinstance(row, dict):
            table.add_row(label.replace("_", " "), "in-process", "1", f"{row['p50_ms']:.2f}", f"{row['p99_ms']:.2f}", "")
    console.print(table)
    console.print(f"teacher / student p50: API {speed_api:.1f}x; in-process {speed_cached:.1f}x (teacher with cached "
                  f"item vectors), {speed_text:.1f}x (teacher reading the history's text); target >= {TARGET_SPEEDUP:.0f}x")

    result = {
        "benchmark": "bench_recommend", "dataset": DATASET, "k": 10,
        "student": {"name": student, "version": student_meta.version, "model": student_meta.model,
                    "knowledge": student_meta.knowledge, "training": training},
        "teacher": {"name": teacher, "kind": teacher_kind},
        "api_transport": "uvicorn api.main:app, one process, 127.0.0.1; asyncio httpx closed-loop clients in "
                         "another process", "api": api, "in_process": proc,
        "speedup_p50": {"api": round(speed_api, 2), "in_process_cached_items": round(speed_cached, 2),
                        "in_process_reading_text": round(speed_text, 2)},
        "targets": {"p99_ms_1_client": TARGET_P99_MS, "speedup": TARGET_SPEEDUP},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "load_avg": os.getloadavg()},
        "git": subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    shutil.rmtree(bench_home, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"saved {args.out}")


if __name__ == "__main__":
    main()
