"""The students' graph-score term: joint training against late fusion, beside the graph set alone (issue 12).

A student with ``graph-score:<set>`` knowledge adds the embedding set's own decayed-history score
(cosine / 0.07) to its logits (:mod:`recommender.graph_score`). This run compares, on Amazon
Scientific ``valid`` (leave-one-out, full ranking over all items, history excluded, dev numbers):

* ``graph set alone``: the set's own ranking (:func:`kg_builder.evaluation.titles.rank_metrics`,
  the vectors normalised, as ``kgforge embed eval`` scores them);
* ``student alone``: the student with ``--knowledge`` (default ``text+graph:<set>``), no term;
* ``joint, w=1``: the network trained *with* the term at weight 1.0 (it learns the residual);
* ``late fusion, w=...``: the ``student alone`` network plus the term at each weight of
  ``--weights`` (1.0 is kgforge's, set before measuring; the others are shown, not chosen);

and the train-only holdout (the last train item of 10 % of users) for each late-fusion weight, to
show whether it could choose the weight (the set was trained on those items, so it cannot).
Equal budgets: every network trains with the same defaults (at most 12 epochs, patience 3).

Run: ``.venv/bin/python benchmarks/bench_graph_score.py --data-dir ../shared/data --seeds 0``
(needs the embedding set: ``kgforge embed finetune --dataset amazon18_scientific``; about 2 minutes
a seed and student on one core; ``benchmarks/results/graph_score.json``).
Measured 2026-12-02, seed 0, NDCG@10 on valid: the set alone 0.0936; SASRec + text + graph alone
0.0816, joint 0.0912, late fusion w=1 0.0944; GRU4Rec alone 0.0658, joint 0.0915, late fusion
w=1 0.0899 (README, "Graph-score term").
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "graph_score.json"


def main() -> None:
    import numpy as np
    import torch

    from kg_builder.evaluation.titles import rank_metrics
    from kg_builder.settings import get_settings
    from recommender.data import holdout_split, load_rec_data
    from recommender.knowledge import build_graph_scores, build_knowledge
    from recommender.metrics import model_metrics
    from recommender.models.base import with_graph_score
    from recommender.train import train_student

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, default=Path(os.environ.get("KGFORGE_DATA_DIR", "../shared/data")))
    ap.add_argument("--dataset", default="amazon18_scientific")
    ap.add_argument("--graph-set", default="gnn-amazon18_scientific")
    ap.add_argument("--knowledge", default=None, help="The students' knowledge (default text+graph:<graph set>).")
    ap.add_argument("--students", default="sasrec,gru4rec")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--weights", default="0.5,1,2")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    settings = get_settings()
    spec = args.knowledge or f"text+graph:{args.graph_set}"
    weights = [float(w) for w in args.weights.split(",")]
    data = load_rec_data(args.dataset, args.data_dir)
    valid = data.evaluation("valid")
    knowledge = build_knowledge(spec, data, cache_dir=settings.home / "cache" / "title-embeddings", settings=settings)
    graph = build_graph_scores(f"graph-score:{args.graph_set}", data, settings=settings)
    graph_alone = rank_metrics(graph / np.linalg.norm(graph, axis=1, keepdims=True), valid, k=10)
    rows: list[dict] = [{"row": "graph set alone", "student": "-", "seed": "-",
                         **{k: round(v, 4) for k, v in graph_alone.items()}}]

    def joint_prepare(model) -> None:  # the term on during training (train_student turns it off first)
        model.graph_score_weight.fill_(1.0)

    for student in args.students.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            holdout = holdout_split(data.train, seed=seed).holdout
            started = time.monotonic()
            alone = train_student(data=data, model=student, knowledge=knowledge, knowledge_spec=spec, seed=seed)
            joint = train_student(data=data, model=student, knowledge=knowledge, knowledge_spec=spec, seed=seed,
                                  graph_scores=graph, prepare=joint_prepare)
            found = {"student alone": (alone.model, None), "joint, w=1": (joint.model, None)}
            for w in weights:
                fused = with_graph_score(alone.model, torch.from_numpy(graph))
                fused.graph_score_weight.fill_(w)
                found[f"late fusion, w={w:g}"] = (fused, model_metrics(fused, holdout, ks=(10,))["ndcg@10"])
            for label, (model, held) in found.items():
                row = {"row": label, "student": student, "seed": seed,
                       **{k: round(v, 4) for k, v in model_metrics(model, valid).items()}}
                if held is not None:
                    row["holdout_ndcg@10"] = round(held, 4)
                rows.append(row)
                print(json.dumps(row), flush=True)
            print(f"{student} seed {seed}: {time.monotonic() - started:.0f} s", flush=True)
    print(f"\n{'row':<24} {'student':<8} {'seed':<4} {'NDCG@10':>8} {'HR@10':>7} {'holdout':>8}")
    for r in rows:
        print(f"{r['row']:<24} {r['student']:<8} {r['seed']!s:<4} {r['ndcg@10']:>8.4f} {r['hr@10']:>7.4f} "
              f"{r.get('holdout_ndcg@10', ''):>8}")
    result = {"protocol": {"dataset": args.dataset, "split": "valid", "knowledge": spec, "graph_set": args.graph_set,
                           "ranking": "leave-one-out; full ranking over all items; history excluded; dev numbers",
                           "budget": "train_student defaults for every network (12 epochs at most, patience 3)"},
              "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
