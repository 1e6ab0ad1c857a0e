"""Ingest benchmark: the same WN18RR triples written four ways into one embedded database.

1. **kgforge**: ``GraphStore.upsert_nodes`` + ``upsert_triples`` (``UNWIND $rows`` batches, managed
   transactions; per batch, a create of the missing keys then a provenance-union update of the
   others), the path every import and job takes.
2. **per-triple MERGE**: one ``MERGE (h) MERGE (t) MERGE (h)-[r]->(t)`` statement per triple, as
   many LLM graph builders write, in their two common forms: an auto-commit ``session.run`` per
   triple, and a managed transaction per triple (``session.execute_write(upsert_triple, ...)``,
   which adds BEGIN/COMMIT round trips but gets the driver's retries).
3. **raw CREATE**: ``UNWIND $rows CREATE (h)-[r]->(t)`` with no lookups, no MERGE and no constraint
   (duplicates endpoint nodes; the database's write ceiling, not a usable import).
4. **neo4j-graphrag Neo4jWriter**: the writer most Neo4j KG builders use (``Neo4jWriter.run`` on one
   ``Neo4jGraph`` of every node and relationship, its default batch of 1000): per batch, an
   ``UNWIND ... CREATE`` of the nodes with a temporary id, then ``apoc.merge.relationship`` between
   them, then a cleanup of the temporary ids. It creates nodes rather than merging them on a key, so a
   second import of the same triples duplicates them (entity resolution is a later step there).
   neo4j-graphrag is not a kgforge dependency: this row runs when it is importable
   (``benchmarks/graphtools_env.sh bench ...``) and says "not installed" otherwise.

All of them write the same triples with the same properties (names, relation, confidence, sources,
evidence, timestamps). A warm-up pass of each method runs first (the JVM compiles hot paths), and
the graph is wiped between runs (not timed). Each batched method runs ``--repeats`` times; the best
run counts (machines are shared and noisy). Results: a table on stdout and JSON in ``--out``.

    python benchmarks/bench_ingest.py --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

import cypher
from kg_builder.datasets import load_dataset
from kg_builder.settings import Settings
from kg_builder.graphdb import GraphStore, NodeWrite, TripleWrite
from kg_builder.graphdb.embedded import EmbeddedDatabase, free_port
from kg_builder.graphdb.schema import relation_type_for

REPO = Path(__file__).resolve().parent.parent
BENCH_LABEL = "BenchRaw"
TARGET_VS_MERGE = 20.0
TARGET_VS_RAW = 0.5
console = Console()



def load_triples(data_dir: Path, limit: int | None) -> tuple[list[tuple[str, str, str]], dict[str, str]]:
    dataset = load_dataset("wn18rr", data_dir)
    names = {e.id: e.name for e in dataset.entities}
    triples = [(t.head, t.relation, t.tail) for t in dataset.triples["train"]]
    return (triples[:limit] if limit else triples), names


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def run_kgforge(store: GraphStore, triples, names) -> None:
    ids = sorted({h for h, _, _ in triples} | {t for _, _, t in triples})
    store.upsert_nodes(NodeWrite(label="Entity", id=i, name=names.get(i, i)) for i in ids)
    store.upsert_triples(TripleWrite(head=h, relation=r, tail=t, confidence=1.0, sources=("bench",),
                                     evidence=("wn18rr",)) for h, r, t in triples)


def run_per_triple(store: GraphStore, triples, names) -> None:
    texts = {r: cypher.render("bench_merge_one_triple", label="Entity", rel_type=relation_type_for(r))
             for r in {r for _, r, _ in triples}}
    with store.driver.session(database=store.database) as session:
        for h, r, t in triples:
            session.run(texts[r], head=h, head_name=names.get(h, h), tail=t, tail_name=names.get(t, t),
                        relation=r, confidence=1.0, sources=["bench"], evidence=["wn18rr"], now=now()).consume()


def run_per_triple_tx(store: GraphStore, triples, names) -> None:
    texts = {r: cypher.render("bench_merge_one_triple", label="Entity", rel_type=relation_type_for(r))
             for r in {r for _, r, _ in triples}}
    with store.driver.session(database=store.database) as session:
        for h, r, t in triples:
            params = dict(head=h, head_name=names.get(h, h), tail=t, tail_name=names.get(t, t), relation=r,
                          confidence=1.0, sources=["bench"], evidence=["wn18rr"], now=now())
            session.execute_write(lambda tx, p=params, q=texts[r]: tx.run(q, **p).consume())


def run_graphrag_writer(store: GraphStore, triples, names) -> None:
    from neo4j_graphrag.components.kg_writer import Neo4jWriter
    from neo4j_graphrag.components.types import Neo4jGraph, Neo4jNode, Neo4jRelationship

    ids = sorted({h for h, _, _ in triples} | {t for _, _, t in triples})
    stamp = now()
    nodes = [Neo4jNode(id=i, label="Entity", properties={"id": i, "name": names.get(i, i)}) for i in ids]
    rels = [Neo4jRelationship(start_node_id=h, end_node_id=t, type=relation_type_for(r),
                              properties={"relation": r, "confidence": 1.0, "sources": ["bench"],
                                          "evidence": ["wn18rr"], "created_at": stamp, "updated_at": stamp})
            for h, r, t in triples]
    writer = Neo4jWriter(store.driver, neo4j_database=store.database)
    result = asyncio.run(writer.run(Neo4jGraph(nodes=nodes, relationships=rels)))
    if result.status != "SUCCESS":
        raise RuntimeError(f"neo4j-graphrag Neo4jWriter failed: {result.metadata}")


def run_raw_create(store: GraphStore, triples, names) -> None:
    by_type: dict[str, list[dict]] = defaultdict(list)
    for h, r, t in triples:
        by_type[r].append({"head": h, "head_name": names.get(h, h), "tail": t, "tail_name": names.get(t, t),
                           "relation": r, "confidence": 1.0, "sources": ["bench"], "evidence": ["wn18rr"]})
    with store.driver.session(database=store.database) as session:
        for r, rows in by_type.items():
            text = cypher.render("bench_create_triples", label=BENCH_LABEL, rel_type=relation_type_for(r))
            for start in range(0, len(rows), store.batch_size):
                batch = rows[start:start + store.batch_size]
                session.execute_write(lambda tx, b=batch: tx.run(text, rows=b, now=now()).consume())


METHODS = {
    "kgforge": ("kgforge batched idempotent upsert", run_kgforge),
    "per_triple_merge": ("one MERGE statement per triple, auto-commit", run_per_triple),
    "per_triple_merge_tx": ("one MERGE statement per triple, one transaction each", run_per_triple_tx),
    "raw_create": ("raw bulk CREATE, no lookups (ceiling)", run_raw_create),
    "graphrag_writer": ("neo4j-graphrag Neo4jWriter (not idempotent)", run_graphrag_writer),
}
OPTIONAL = {"graphrag_writer": "neo4j_graphrag"}  # method -> module it needs (not a kgforge dependency)


def available(method: str) -> bool:
    module = OPTIONAL.get(method)
    return module is None or importlib.util.find_spec(module) is not None


def timed(store: GraphStore, method: str, triples, names) -> dict:
    store.wipe()
    start = time.perf_counter()
    METHODS[method][1](store, triples, names)
    seconds = time.perf_counter() - start
    counts = store.counts()
    return {"seconds": seconds, "triples_per_s": len(triples) / seconds, "nodes": counts.total_nodes,
            "edges": counts.total_edges}


def machine() -> dict:
    return {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
            "hostname": socket.gethostname()}


def git_hash() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Settings().data_dir)
    parser.add_argument("--limit", type=int, default=None, help="Only the first N train triples (default: all).")
    parser.add_argument("--merge-limit", type=int, default=None,
                        help="Per-triple baseline on the first N triples only (its rate is per triple either way).")
    parser.add_argument("--batch-size", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=2, help="Timed runs of each batched method (best counts).")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "ingest.json")
    args = parser.parse_args(argv)

    triples, names = load_triples(args.data_dir, args.limit)
    merge_triples = triples[: args.merge_limit] if args.merge_limit else triples
    console.print(f"WN18RR: {len(triples):,} train triples; per-triple baseline on {len(merge_triples):,}")

    with tempfile.TemporaryDirectory(prefix="kgforge-bench-") as home:
        settings = Settings(home=Path(home), graph_bolt_port=free_port(), graph_http_port=free_port(),
                            graph_batch_size=args.batch_size, graph_password=None, graph_uri=None)
        db = EmbeddedDatabase(settings)
        db.start()
        try:
            with GraphStore.from_settings(settings) as store:
                store.setup_schema()
                results = run_all(store, triples, merge_triples, names, args.repeats)
                duplicates = check_idempotence(store, triples, names)
        finally:
            db.stop()

    best = {m: max(runs, key=lambda r: r["triples_per_s"]) for m, runs in results.items() if runs}
    ratio_merge = best["kgforge"]["triples_per_s"] / best["per_triple_merge"]["triples_per_s"]
    ratio_merge_tx = best["kgforge"]["triples_per_s"] / best["per_triple_merge_tx"]["triples_per_s"]
    ratio_raw = best["kgforge"]["triples_per_s"] / best["raw_create"]["triples_per_s"]
    ratio_writer = (best["kgforge"]["triples_per_s"] / best["graphrag_writer"]["triples_per_s"]
                    if "graphrag_writer" in best else None)
    report = {
        "benchmark": "ingest", "dataset": "wn18rr", "split": "train", "triples": len(triples),
        "per_triple_triples": len(merge_triples), "batch_size": args.batch_size, "repeats": args.repeats,
        "runs": results, "best": best,
        "ratios": {"kgforge_vs_per_triple_merge": ratio_merge, "kgforge_vs_per_triple_merge_tx": ratio_merge_tx,
                   "kgforge_vs_raw_create": ratio_raw, "kgforge_vs_graphrag_writer": ratio_writer},
        "not_installed": [m for m in METHODS if not available(m)],
        "targets": {"kgforge_vs_per_triple_merge": TARGET_VS_MERGE, "kgforge_vs_per_triple_merge_tx": TARGET_VS_MERGE,
                    "kgforge_vs_raw_create": TARGET_VS_RAW},
        "met": {"kgforge_vs_per_triple_merge": ratio_merge >= TARGET_VS_MERGE,
                "kgforge_vs_per_triple_merge_tx": ratio_merge_tx >= TARGET_VS_MERGE,
                "kgforge_vs_raw_create": ratio_raw >= TARGET_VS_RAW},
        "idempotence": duplicates, "machine": machine(), "git": git_hash(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    print_table(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    console.print(f"saved {args.out}")
    return 0


def run_all(store: GraphStore, triples, merge_triples, names, repeats: int) -> dict[str, list[dict]]:
    warm = triples[:5000]
    methods = [m for m in METHODS if available(m)]
    results: dict[str, list[dict]] = {m: [] for m in methods}
    plan = [(m, warm, "warm-up") for m in methods]
    batched = [m for m in ("kgforge", "raw_create", "graphrag_writer") if m in methods]
    for _ in range(repeats):
        plan += [(m, triples, "timed") for m in batched]
    plan += [("per_triple_merge", merge_triples, "timed"), ("per_triple_merge_tx", merge_triples, "timed")]
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("benchmark", total=len(plan))
        for method, rows, kind in plan:
            progress.update(task, description=f"{kind}: {method}")
            result = timed(store, method, rows, names)
            if kind == "timed":
                results[method].append(result)
            progress.advance(task)
    store.wipe()
    return results


def check_idempotence(store: GraphStore, triples, names) -> dict:
    """Write with kgforge twice: the second pass must change no count and leave no duplicate edge."""
    store.wipe()
    run_kgforge(store, triples, names)
    first = store.counts()
    start = time.perf_counter()
    run_kgforge(store, triples, names)
    replay_seconds = time.perf_counter() - start
    second = store.counts()
    return {"counts_unchanged": first == second, "duplicate_edges": store.count_duplicate_edges(),
            "nodes": first.total_nodes, "edges": first.total_edges,
            "replay_triples_per_s": len(triples) / replay_seconds}


def print_table(report: dict) -> None:
    table = Table(title=f"ingest: WN18RR train, {report['triples']:,} triples, batch {report['batch_size']}")
    for col in ("method", "triples", "seconds (best)", "triples/s", "kgforge is x faster"):
        table.add_column(col, justify="right" if col != "method" else "left")
    kg_rate = report["best"]["kgforge"]["triples_per_s"]
    for method, (label, _) in METHODS.items():
        if method not in report["best"]:
            table.add_row(label, "not installed", "-", "-", "-")
            continue
        best = report["best"][method]
        n = report["per_triple_triples"] if method.startswith("per_triple") else report["triples"]
        table.add_row(label, f"{n:,}", f"{best['seconds']:.1f}", f"{best['triples_per_s']:,.0f}",
                      f"{kg_rate / best['triples_per_s']:.2f}")
    console.print(table)
    r, t, m = report["ratios"], report["targets"], report["met"]
    for key, label, fmt in (("kgforge_vs_per_triple_merge", "per-triple MERGE, auto-commit", "{:.1f}x"),
                            ("kgforge_vs_per_triple_merge_tx", "per-triple MERGE, transaction each", "{:.1f}x"),
                            ("kgforge_vs_raw_create", "raw CREATE", "{:.0%}")):
        console.print(f"kgforge / {label} = {fmt.format(r[key])} (target >= {fmt.format(t[key])}: "
                      f"{'met' if m[key] else 'NOT met'})")
    if r["kgforge_vs_graphrag_writer"] is not None:
        console.print(f"kgforge / neo4j-graphrag Neo4jWriter = {r['kgforge_vs_graphrag_writer']:.1f}x (no target; "
                      "the writer creates nodes, so a replay of its import duplicates them)")
    idem = report["idempotence"]
    console.print(f"replay of the same import: counts unchanged = {idem['counts_unchanged']}, duplicate edges = "
                  f"{idem['duplicate_edges']}, replay rate {idem['replay_triples_per_s']:,.0f} triples/s")


if __name__ == "__main__":
    sys.exit(main())
