"""Job scaling benchmark: does the cost of one UMLS entity job grow with what else is imported?

What it does, in one run (issue 9, point 7):

1. starts its own embedded graph database on free ports under a temporary home; the UMLS models
   come from ``--home`` (an existing trained home, linked) or are trained there with small budgets
   (structural, relations, utility and reranker ``--max-minutes 1``, confidence ``--max-entities 10``);
2. imports UMLS, builds the UMLS entity index (what ``kgforge import`` does with the settings), and
   runs ``--entities`` through the job path, each as its own job: ``GraphSnapshot.from_store(store,
   "umls", exclude_job=job_id, settings=...)``, ``KnowledgePipeline(...).run(entity)``, then
   ``write(store, [run], job_id=job_id, update_snapshot=False)``, exactly as ``run_job`` does per
   batch; latency per entity is the median of ``--repeats`` runs after one warm-up job; peak
   memory per entity is measured in a separate pass under ``tracemalloc`` (Python and NumPy
   allocations; torch's are not traced) with the process's resident set (VmRSS / VmHWM) beside it;
3. imports WN18RR, FB15k-237, Amazon Games and Amazon Office, and runs the same entities again
   (same job ids, so each job sees the graph without its own earlier writes and must propose and
   keep the same triples: checked);
4. baseline (``--baseline``): the former whole-graph read (``GraphSnapshot.read_whole(...,
   scoped=False)``) timed with one and with five datasets; the per-job re-embedding of every
   entity it was followed by is timed on a sample of entity texts and scaled to the entity count
   (labelled as an estimate);
5. prints a table and saves ``benchmarks/results/job_scaling.json``.

Run: ``.venv/bin/python benchmarks/bench_job_scaling.py`` (trains its own models: about 10 minutes
on 2 shared cores, the imports a few minutes more), or ``--home ~/.kgforge`` to reuse trained UMLS
models. Acceptance: median latency with five datasets <= 1.3x that with UMLS alone.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from rich.console import Console
from rich.table import Table

from kg_builder.datasets import load_dataset
from kg_builder.ingest import import_dataset, index_entities
from kg_builder.models.encoder import TextEncoder
from kg_builder.pipeline import GraphSnapshot, KnowledgePipeline, PipelineModels, PipelineOptions, SourceEntity
from kg_builder.settings import Settings
from kg_builder.graphdb import GraphStore
from kg_builder.graphdb.embedded import EmbeddedDatabase, free_port

RESULTS = Path(__file__).resolve().parent / "results" / "job_scaling.json"
REPO = Path(__file__).resolve().parent.parent
DOMAIN = "umls"
OTHERS = ("wn18rr", "fb15k237", "amazon18_games", "amazon14_office")
MODELS = ("structural-umls", "relations-umls", "utility-umls", "reranker-umls", "confidence-umls")
console = Console()


def proc_status() -> dict[str, float]:
    """Resident set now and at its peak (MiB), from /proc (Linux)."""
    out = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1]) / 1024
    except OSError:
        pass
    return out


def train_models(home: Path, env: dict[str, str]) -> dict[str, float]:
    """Train the UMLS models with small budgets through the CLI (as scripts/main_job.sh does)."""
    kgforge = str(Path(sys.executable).with_name("kgforge"))
    commands = [
        ("structural", ["--max-minutes", "1"]), ("relations", []), ("utility", ["--max-minutes", "1"]),
        ("reranker", ["--max-minutes", "1"]), ("confidence", ["--max-entities", "10"]),
    ]
    seconds = {}
    for name, extra in commands:
        started = time.perf_counter()
        console.print(f"training {name} ...")
        subprocess.run([kgforge, "train", name, "--dataset", DOMAIN, *extra], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        seconds[name] = round(time.perf_counter() - started, 1)
    return seconds


def run_job_path(store: GraphStore, settings: Settings, models: PipelineModels, options: PipelineOptions,
                 entity: str, job_id: str) -> tuple[float, list[tuple[str, str, str]], dict[str, float]]:
    """One entity as one job (run_job's steps): snapshot, pipeline, run, write. Returns seconds,
    the kept triples and the pipeline's step timings."""
    started = time.perf_counter()
    snapshot = GraphSnapshot.from_store(store, DOMAIN, exclude_job=job_id, settings=settings)
    pipeline = KnowledgePipeline(snapshot, models, options)
    run = pipeline.run(SourceEntity(name=entity))
    pipeline.write(store, [run], job_id=job_id, update_snapshot=False)
    seconds = time.perf_counter() - started
    kept = sorted((c.head, c.relation, c.target_id or c.target_name) for c in run.kept)
    candidates = sorted((c.relation, c.target_id or c.target_name) for c in run.candidates)
    return seconds, {"kept": kept, "candidates": candidates}, {k: round(v, 3) for k, v in run.timings.items()}


def measure(store: GraphStore, settings: Settings, models: PipelineModels, options: PipelineOptions,
            entities: list[str], repeats: int) -> dict:
    """Latency (median of ``repeats``) and peak traced memory per entity, after one warm-up job."""
    run_job_path(store, settings, models, options, entities[0], "bench-warmup")
    out: dict = {"entities": {}}
    for entity in entities:
        job_id = f"bench-{entity.replace(' ', '-')}"
        times, kept, timings = [], None, None
        for _ in range(repeats):
            seconds, kept, timings = run_job_path(store, settings, models, options, entity, job_id)
            times.append(seconds)
        gc.collect()
        tracemalloc.start()
        run_job_path(store, settings, models, options, entity, job_id)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        out["entities"][entity] = {"seconds": round(statistics.median(times), 3), "runs": [round(t, 3) for t in times],
                                   "peak_traced_mib": round(peak / 2**20, 1), **kept, "timings": timings}
        console.print(f"  {entity}: {statistics.median(times):.2f} s, peak traced {peak / 2**20:.1f} MiB, "
                      f"{len(kept['candidates'])} candidates, {len(kept['kept'])} kept")
    out["median_seconds"] = round(statistics.median(e["seconds"] for e in out["entities"].values()), 3)
    out["rss_mib"] = proc_status()
    return out


def baseline(store: GraphStore, encoder: TextEncoder) -> dict:
    """The former per-job read of the whole graph, and an estimate of its per-job re-embedding."""
    started = time.perf_counter()
    whole = GraphSnapshot.read_whole(store, DOMAIN, scoped=False)
    read = time.perf_counter() - started
    texts = [info.text() for info in list(whole.entities.values())[:300]]
    started = time.perf_counter()
    encoder.encode(texts)
    per_text = (time.perf_counter() - started) / max(len(texts), 1)
    return {"read_whole_seconds": round(read, 2), "entities": len(whole.entities), "edges": len(whole.edges),
            "embed_all_seconds_estimated": round(per_text * len(whole.entities), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, help="A KGFORGE_HOME with trained UMLS models (linked, not changed).")
    parser.add_argument("--entities", default="virus,cell,bacterium,enzyme,mammal")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--baseline", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--keep-home", action="store_true", help="Do not delete the temporary home.")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    entities = [e.strip() for e in args.entities.split(",") if e.strip()]

    home = Path(tempfile.mkdtemp(prefix="kgforge-scaling-"))
    user = Settings()
    data_dir = (args.data_dir or user.data_dir).resolve()
    settings = Settings(home=home, data_dir=data_dir, graph_bolt_port=free_port(), graph_http_port=free_port(),
                        graph_password=None, graph_uri=None)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KGFORGE_")}
    env.update({"KGFORGE_HOME": str(home), "KGFORGE_DATA_DIR": str(data_dir),
                "KGFORGE_GRAPH_BOLT_PORT": str(settings.graph_bolt_port),
                "KGFORGE_GRAPH_HTTP_PORT": str(settings.graph_http_port)})
    result: dict = {"machine": f"{platform.node()} ({os.cpu_count()} CPUs, shared)", "entities": entities,
                    "repeats": args.repeats, "job_path": "GraphSnapshot.from_store + KnowledgePipeline.run + write "
                                                         "(update_snapshot=False), one job per entity"}
    db = EmbeddedDatabase(settings)
    try:
        console.print("starting the graph database ...")
        db.start(timeout=300)
        if args.home:
            (home / "models").symlink_to((args.home / "models").resolve(), target_is_directory=True)
            result["models"] = f"linked from {args.home}"
        else:
            result["training_seconds"] = train_models(home, env)
            result["models"] = "trained by this run (small budgets)"
        missing = [m for m in MODELS if not (home / "models" / m).exists()]
        if missing:
            raise SystemExit(f"missing trained models {missing} under {home / 'models'}")
        encoder = TextEncoder(settings.encoder_path)
        with GraphStore.from_settings(settings) as store:
            store.setup_schema()
            imports: dict[str, float] = {}
            started = time.perf_counter()
            umls = load_dataset(DOMAIN, data_dir)
            import_dataset(store, umls)
            imports[DOMAIN] = round(time.perf_counter() - started, 1)
            started = time.perf_counter()
            index_entities(settings, umls, encoder=encoder)
            result["umls_index_seconds"] = round(time.perf_counter() - started, 2)
            options, notes = PipelineOptions(use_llm=False).resolve_generators(settings, DOMAIN, llm_configured=False)
            models = PipelineModels.load(settings, DOMAIN, options, encoder=encoder)
            result["generators"], result["generator_notes"] = options.generators, notes

            console.print(f"[bold]UMLS alone[/] ({store.counts().total_nodes} nodes, {store.counts().total_edges} edges)")
            one = measure(store, settings, models, options, entities, args.repeats)
            one["graph"] = store.counts().model_dump()
            if args.baseline:
                one["baseline"] = baseline(store, encoder)

            for name in OTHERS:
                console.print(f"importing {name} ...")
                started = time.perf_counter()
                import_dataset(store, load_dataset(name, data_dir))
                imports[name] = round(time.perf_counter() - started, 1)
            result["import_seconds"] = imports

            console.print(f"[bold]five datasets[/] ({store.counts().total_nodes} nodes, "
                          f"{store.counts().total_edges} edges)")
            five = measure(store, settings, models, options, entities, args.repeats)
            five["graph"] = store.counts().model_dump()
            if args.baseline:
                five["baseline"] = baseline(store, encoder)
    finally:
        db.stop()
        if not args.keep_home:
            shutil.rmtree(home, ignore_errors=True)

    ratio = five["median_seconds"] / one["median_seconds"]
    per_entity = {e: five["entities"][e]["seconds"] / one["entities"][e]["seconds"] for e in entities}
    same = {e: all(five["entities"][e][key] == one["entities"][e][key] for key in ("candidates", "kept"))
            for e in entities}
    result.update({"umls_only": one, "five_datasets": five, "latency_ratio_median": round(ratio, 3),
                   "latency_ratio_per_entity": {e: round(r, 3) for e, r in per_entity.items()},
                   "peak_traced_ratio_median": round(
                       statistics.median(five["entities"][e]["peak_traced_mib"] for e in entities)
                       / max(statistics.median(one["entities"][e]["peak_traced_mib"] for e in entities), 1e-9), 3),
                   "same_candidates_and_kept": same, "acceptance_latency_ratio_max": 1.3, "passed": ratio <= 1.3})

    table = Table(title=f"One UMLS entity job: UMLS alone vs UMLS + {', '.join(OTHERS)} "
                        f"(median of {args.repeats}; dev machine, shared)")
    for column in ("entity", "s (UMLS)", "s (5 datasets)", "ratio", "peak MiB (UMLS)", "peak MiB (5)", "same output"):
        table.add_column(column, justify="left" if column == "entity" else "right", overflow="fold")
    for e in entities:
        a, b = one["entities"][e], five["entities"][e]
        table.add_row(e, f"{a['seconds']:.2f}", f"{b['seconds']:.2f}", f"{per_entity[e]:.2f}",
                      f"{a['peak_traced_mib']:.1f}", f"{b['peak_traced_mib']:.1f}", "yes" if same[e] else "NO")
    table.add_row("median", f"{one['median_seconds']:.2f}", f"{five['median_seconds']:.2f}", f"{ratio:.2f}", "", "", "")
    console.print(table)
    console.print(f"RSS (MiB): UMLS {one['rss_mib']}, five datasets {five['rss_mib']}")
    if args.baseline:
        console.print(f"baseline (former whole-graph read per job): UMLS {one['baseline']}, five {five['baseline']}")
    console.print(f"acceptance (five / UMLS <= 1.3): {'passed' if ratio <= 1.3 else 'FAILED'} ({ratio:.2f})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    console.print(f"saved {args.out}")


if __name__ == "__main__":
    main()
