"""Can a train-only holdout choose the students' graph-score weight? (issue 12)

A student with ``graph-score:<set>`` knowledge adds ``w * cos(q(h), g_i) / 0.07`` to its logits,
late fusion (:mod:`recommender.graph_score`; ``w`` = 1.0, set before measuring). The students'
early-stopping holdout (the last train item of 10 % of the users, :func:`recommender.data.holdout_split`)
cannot choose ``w`` as things stand: the embedding set was trained on every train interaction, the
holdout's items included, so on the holdout the graph score looks better than it is, and the
holdout score keeps rising with ``w`` (``bench_graph_score.py``).

This run aligns the two holdouts. For each seed it trains a **clean** embedding set, exactly as
``kgforge embed finetune`` trains the set (LightGCN from scratch, early-stopped on its own holdout),
on the train interactions *without* the students' holdout items, and a **clean student** whose
graph supplement is that clean set (same defaults as every student). Then, on the students'
holdout, for each ``w`` of ``--weights``:

* ``holdout, leaky``: the regular student (its supplement and its score from the regular set, which
  saw the holdout items): what ``bench_graph_score.py`` showed;
* ``holdout, clean``: the clean student plus the clean set's score: nothing in it saw the holdout
  items, the selection this run tests;

and on ``valid`` (dev numbers, never used to choose): the regular student plus the regular set's
score at that ``w`` (what kgforge would serve). The ``w`` with the best clean holdout NDCG@10 is
the holdout's choice for that seed.

``--teacher text-teacher-minilm-<dataset>-s0`` (a saved text teacher, trained with the seed-0
holdout held out) does the same for the text + graph teacher's graph weight at seed 0: the text
teacher plus the clean set's score on the holdout, the regular set's on ``valid``
(:func:`recommender.teachers.graph_teacher.load_graph_teacher`). ``--students ""`` skips the students.

Run (about 4 minutes a seed for both students on one core, after the regular set and title vectors
exist; a fresh home trains the regular set first, about 2 minutes; ``--teacher`` adds about 2.5):
``.venv/bin/python benchmarks/bench_graph_weight.py --data-dir ../shared/data --seeds 0,1,2``
(``benchmarks/results/graph_weight.json``). Numbers: README, "Graph-score term".
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from recommender.evaluate import TEACHER_SEED  # the text teacher's holdout seed

RESULTS = Path(__file__).resolve().parent / "results" / "graph_weight.json"


def without_holdout(dataset, holdout, item_ids: list[str]):
    """``dataset`` with each held user's last train interaction relabelled ``holdout`` (so no graph
    export reads it: :func:`gnn.export.holdout_last_train` with those users); checks that it is the
    item the students hold out."""
    from gnn.export import holdout_last_train

    held = holdout_last_train(dataset, users=holdout.users, split="holdout")
    removed = {r.user: r.item for r in held.interactions if r.split == "holdout"}
    expected = {u: item_ids[t] for u, t in zip(holdout.users, holdout.targets.tolist(), strict=True)}
    if removed != expected:
        raise SystemExit("the dataset's last train items are not the students' holdout items")
    return held


def teacher_weights(name: str, data, holdout, valid, clean_set: str, regular_set: str, weights: list[float],
                    settings) -> list[dict]:
    """The text + graph teacher at each graph weight: clean holdout and valid NDCG@10 (see the docstring)."""
    from recommender.metrics import model_metrics
    from recommender.store import default_store
    from recommender.teachers.graph_teacher import load_graph_teacher

    saved = default_store().load(name)
    ref = f"{name} v{saved.meta.version}"
    rows = []
    for w in [0.0, *weights]:
        clean = load_graph_teacher(saved.model, ref, clean_set, data, settings=settings, graph_weight=w)
        regular = load_graph_teacher(saved.model, ref, regular_set, data, settings=settings, graph_weight=w)
        row = {"teacher": name, "seed": TEACHER_SEED, "graph_weight": w,
               "holdout_clean_ndcg@10": round(model_metrics(clean, holdout, ks=(10,))["ndcg@10"], 4),
               **{f"valid_{k}": round(v, 4) for k, v in model_metrics(regular, valid).items()}}
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def main() -> None:
    import numpy as np
    import torch

    from gnn.store import EmbeddingStore
    from gnn.workflows import finetune_target
    from kg_builder.settings import get_settings
    from recommender.data import holdout_split, load_rec_data
    from recommender.knowledge import build_graph_scores, build_knowledge
    from recommender.metrics import model_metrics
    from recommender.models.base import with_graph_score
    from recommender.train import train_student

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, default=Path(os.environ.get("KGFORGE_DATA_DIR", "../shared/data")))
    ap.add_argument("--dataset", default="amazon18_scientific")
    ap.add_argument("--students", default="sasrec,gru4rec")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--weights", default="0.5,1,2,4")
    ap.add_argument("--teacher", default=None, help="A saved text teacher whose graph weight to choose too (seed 0).")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    settings = get_settings()
    weights = [float(w) for w in args.weights.split(",")]
    cache = settings.home / "cache" / "title-embeddings"
    regular_set = f"gnn-{args.dataset}"
    embeddings = EmbeddingStore(settings)
    started_all = time.monotonic()
    if not embeddings.versions(regular_set):
        started = time.monotonic()
        finetune_target(settings, dataset=args.dataset, data_dir=args.data_dir)
        print(f"regular set {regular_set}: {time.monotonic() - started:.0f} s", flush=True)
    data = load_rec_data(args.dataset, args.data_dir)
    valid = data.evaluation("valid")
    regular_spec = f"text+graph:{regular_set}"
    regular_knowledge = build_knowledge(regular_spec, data, cache_dir=cache, settings=settings)
    regular_scores = torch.from_numpy(build_graph_scores(f"graph-score:{regular_set}", data, settings=settings))
    rows: list[dict] = []
    choices: list[dict] = []
    teacher_rows: list[dict] = []
    for seed in (int(s) for s in args.seeds.split(",")):
        split = holdout_split(data.train, seed=seed)
        holdout = split.holdout
        clean_set = f"{regular_set}-without-student-holdout-s{seed}"
        started = time.monotonic()
        records = without_holdout(data.dataset, holdout, data.item_ids)
        finetune_target(settings, dataset=args.dataset, data_dir=args.data_dir, records=records, name=clean_set)
        clean_seconds = time.monotonic() - started
        clean_spec = f"text+graph:{clean_set}"
        clean_knowledge = build_knowledge(clean_spec, data, cache_dir=cache, settings=settings)
        clean_scores = torch.from_numpy(build_graph_scores(f"graph-score:{clean_set}", data, settings=settings))
        print(f"seed {seed}: clean set {clean_set} in {clean_seconds:.0f} s", flush=True)
        if args.teacher and seed == TEACHER_SEED:
            teacher_rows += teacher_weights(args.teacher, data, holdout, valid, clean_set, regular_set, weights,
                                            settings)
        for student in (s for s in args.students.split(",") if s):
            started = time.monotonic()
            regular = train_student(data=data, model=student, knowledge=regular_knowledge,
                                    knowledge_spec=regular_spec, seed=seed).model
            clean = train_student(data=data, model=student, knowledge=clean_knowledge, knowledge_spec=clean_spec,
                                  seed=seed).model
            per_w = []
            for w in [0.0, *weights]:
                row = {"student": student, "seed": seed, "w": w}
                for label, model, scores, sequences in (("holdout_leaky", regular, regular_scores, holdout),
                                                        ("holdout_clean", clean, clean_scores, holdout),
                                                        ("valid", regular, regular_scores, valid)):
                    fused = with_graph_score(model, scores)
                    fused.graph_score_weight.fill_(w)
                    metrics = model_metrics(fused, sequences, ks=(10, 20) if label == "valid" else (10,))
                    row[f"{label}_ndcg@10"] = round(metrics["ndcg@10"], 4)
                    if label == "valid":
                        row.update({f"valid_{k}": round(metrics[k], 4) for k in ("hr@10", "ndcg@20", "hr@20")})
                per_w.append(row)
                rows.append(row)
                print(json.dumps(row), flush=True)
            best = max((r for r in per_w if r["w"] > 0), key=lambda r: r["holdout_clean_ndcg@10"])
            leaky = max((r for r in per_w if r["w"] > 0), key=lambda r: r["holdout_leaky_ndcg@10"])
            oracle = max((r for r in per_w if r["w"] > 0), key=lambda r: r["valid_ndcg@10"])
            choices.append({"student": student, "seed": seed, "clean_choice": best["w"],
                            "valid_at_clean_choice": best["valid_ndcg@10"], "leaky_choice": leaky["w"],
                            "valid_best_w (not a choice: dev)": oracle["w"],
                            "valid_at_w1": next(r["valid_ndcg@10"] for r in per_w if r["w"] == 1.0),
                            "seconds": round(time.monotonic() - started, 1)})
            print(json.dumps(choices[-1]), flush=True)
        embeddings.delete(clean_set)
    for r in teacher_rows:
        print(f"teacher graph weight {r['graph_weight']:g}: holdout clean {r['holdout_clean_ndcg@10']:.4f}, "
              f"valid {r['valid_ndcg@10']:.4f}")
    print(f"\n{'student':<8} {'seed':<4} {'w':>4} {'holdout leaky':>14} {'holdout clean':>14} {'valid NDCG@10':>14}")
    for r in rows:
        print(f"{r['student']:<8} {r['seed']:<4} {r['w']:>4g} {r['holdout_leaky_ndcg@10']:>14.4f} "
              f"{r['holdout_clean_ndcg@10']:>14.4f} {r['valid_ndcg@10']:>14.4f}")
    for c in choices:
        print(f"{c['student']} seed {c['seed']}: clean holdout chooses w={c['clean_choice']:g} "
              f"(valid {c['valid_at_clean_choice']:.4f}; w=1: {c['valid_at_w1']:.4f}); leaky chooses w={c['leaky_choice']:g}")
    result = {"protocol": {"dataset": args.dataset, "regular_set": regular_set,
                           "students": "knowledge text+graph:<set>, train_student defaults (12 epochs at most, "
                                       "patience 3), early-stopped on the holdout below",
                           "holdout": "last train item of 10 % of users (holdout_split, the student's seed)",
                           "clean": "an embedding set trained as `kgforge embed finetune` trains it, on the train "
                                    "interactions without the holdout items, and a student whose supplement is it",
                           "valid": "leave-one-out; full ranking over all items; history excluded; dev numbers, "
                                    "never used to choose",
                           "seconds": round(time.monotonic() - started_all, 1)},
              "rows": rows, "choices": choices, "teacher": teacher_rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
