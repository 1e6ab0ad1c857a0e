"""Relation filtering for entities already in the graph: the classifier alone (kgforge's default
before 2026-12-03, ``keep_own_relations=False``) against keeping the relations S already has as
head, then the classifier's best (``keep_own_relations=True``, the default since), side by side
with the same trained models.

Why: the offline filter keeps a relation when the text classifier's P(r | S's text) >= 0.5. For
`virus` (UMLS) it gives `affects` 0.60 and `result_of` 0.51 (virus has neither; no organism heads
`affects` in UMLS) but `causes` 0.39 and `interacts_with` below 0.38, relations virus has 5 and 11
times in train and which hold 3 of its 5 test triples. A relation S already heads applies to S by
definition; the question is whether keeping them pays off at the pipeline's end.

Each arm runs ``evaluate_generation`` (calibration on dev heads against the train graph, the
default keep policy, the PR curve, the ablations at the default's kept budget) with the options of
that arm in both calibration and evaluation, so the confidence model is refitted per arm.

    python benchmarks/bench_own_relations.py --data-dir ../shared/data --split test --arms classifier,own \\
        --out benchmarks/results/own_relations_umls_test.json

Run the arms as two processes side by side (``--arms classifier`` and ``--arms own`` with two
``--out`` files) on a 2-core machine; ``--merge A.json B.json --out C.json`` joins them.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

ARMS = {"classifier": {"keep_own_relations": False}, "own": {"keep_own_relations": True}}


def run_arm(arm: str, *, dataset: str, split: str, max_entities: int, data_dir: Path) -> dict:
    import torch

    from kg_builder.evaluation.generation import evaluate_generation
    from kg_builder.pipeline import PipelineModels
    from kg_builder.pipeline.pipeline import PipelineOptions
    from kg_builder.products.domain import load_kg_view
    from kg_builder.settings import Settings

    torch.set_num_threads(1)
    settings = Settings()
    records = load_kg_view(dataset, data_dir)
    options, _ = PipelineOptions(**ARMS[arm]).resolve_generators(settings, dataset, llm_configured=False)
    models = PipelineModels.load(settings, dataset, options, calibrated=False)
    started = time.perf_counter()
    result = evaluate_generation(dataset=records, models=models, split=split, max_entities=max_entities,
                                 options=options, ablations=True)
    out = result.model_dump()
    out["arm"], out["options"], out["seconds"] = arm, ARMS[arm], time.perf_counter() - started
    return out


def summary(results: dict[str, dict]) -> list[dict]:
    rows = []
    for arm, r in results.items():
        default, matched = r["rows"]["default"], r["recall_matched"]["full"]
        rows.append({"arm": arm, "kept": default["kept"], "precision": default["precision"],
                     "recall": default["recall"], "candidate_recall": default.get("candidate_recall"),
                     "floor": r["floor"], "no_reranker_precision": r["rows"]["no_reranker"]["precision"],
                     "similarity_only_precision": r["rows"]["similarity_only"]["precision"], **matched,
                     "seconds": r["seconds"]})
    return rows


def print_table(rows: list[dict]) -> None:
    keys = [k for k in rows[0] if k != "arm"]
    print("| arm | " + " | ".join(keys) + " |")
    print("|---|" + "---|" * len(keys))
    for row in rows:
        print(f"| {row['arm']} | " + " | ".join(
            f"{row[k]:.0f}" if k in ("kept", "seconds") else f"{row[k]:.3f}" if isinstance(row[k], float) else str(row[k])
            for k in keys) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="umls")
    parser.add_argument("--split", default="test", choices=("dev", "test"))
    parser.add_argument("--max-entities", type=int, default=40)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--arms", default="classifier,own")
    parser.add_argument("--merge", nargs="+", type=Path, default=None, help="Join earlier outputs instead of running.")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.merge:
        results = {}
        for path in args.merge:
            results.update(json.loads(path.read_text())["arms"])
    else:
        from kg_builder.settings import Settings

        data_dir = args.data_dir or Settings().data_dir
        results = {arm: run_arm(arm, dataset=args.dataset, split=args.split, max_entities=args.max_entities,
                                data_dir=data_dir) for arm in args.arms.split(",")}
    rows = summary(results)
    print_table(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"summary": rows, "arms": results}, indent=1, default=str))


if __name__ == "__main__":
    main()
