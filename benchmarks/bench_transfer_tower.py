"""Does more shared capacity make cross-domain pretraining pay off? (issue 11, the transfer target)

In LightGCN only the text projection is shared across domains (ID embeddings are per domain), so
pretraining on Games + Office can move nothing else. This run gives the encoder a non-linear text
tower beside the linear projection (``text_hidden``; :class:`gnn.models.GraphEncoder`) and compares,
on Amazon Scientific's train-only holdout (:func:`gnn.train.select_sources`: the last train item of
20 % of users, never ``valid``), training from scratch against pretraining on Games + Office and
fine-tuning, at equal budgets (``--pretrain-batches`` then at most 300 fine-tuning batches, early
stopping). ``--text-hidden 0`` is the default linear model (the baseline row of the README table).

``--shared-lr-scales 1,0.1,0`` also fine-tunes the pretrained model with the shared weights' learning
rate scaled (0.1: they move ten times slower than the ID embeddings; 0: frozen), one pretraining for
all, and scratch and the first fine-tuning always at the full rate (``gnn.train.finetune(shared_lr_scale=...)``).

Run: ``.venv/bin/python benchmarks/bench_transfer_tower.py --data-dir ../shared/data --text-hidden 256``
(about 9 minutes on one core; ``benchmarks/results/transfer_tower.json``).
Measured 2026-12-01, seed 0: text_hidden 256: scratch 0.1015, Games + Office 0.1000 (-1.5 %);
the linear model from scratch reaches 0.1022 on the same holdout. Measured 2026-12-03, seed 0,
``--text-hidden 0 --shared-lr-scales 1,0.1,0`` (9.4 minutes, ``results/transfer_shared_lr.json``):
scratch 0.1022; after pretraining, shared lr x1 0.0989, x0.1 0.0989, x0 0.0995.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "transfer_tower.json"


def main() -> None:
    from gnn.evaluate import export_dataset_with_domain
    from gnn.export import concat_graphs, default_cache_dir, export_dataset, text_features
    from gnn.train import select_sources
    from kg_builder.datasets import load_dataset

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, default=Path(os.environ.get("KGFORGE_DATA_DIR", "../shared/data")))
    ap.add_argument("--text-hidden", type=int, default=256)
    ap.add_argument("--pretrain-batches", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shared-lr-scales", default="1",
                    help="comma-separated learning-rate scales of the shared weights when fine-tuning after pretraining")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()

    cache = default_cache_dir()
    target = load_dataset("amazon18_scientific", args.data_dir)
    features = text_features(target, cache_dir=cache)
    sources = []
    for domain, name in enumerate(["amazon18_games", "amazon14_office"]):
        source = load_dataset(name, args.data_dir)
        sources.append(export_dataset_with_domain(export_dataset(source, features=text_features(source, cache_dir=cache)),
                                                  domain))
    started = time.monotonic()
    tower = {"text_hidden": args.text_hidden}
    scales = [float(x) for x in args.shared_lr_scales.split(",")]
    common = dict(target_features=features, model_name="lightgcn", seed=args.seed,
                  pretrain_kwargs={"max_batches": args.pretrain_batches, **tower})
    graph = concat_graphs(sources)
    selection = select_sources(target, {"none": None, "games+office": graph}, **common,
                               finetune_kwargs={"max_batches": 300, **tower})  # both at the full rate
    scores = {"none": selection.scores["none"], "games+office@1": selection.scores["games+office"]}
    histories = {"none": selection.histories["none"], "games+office@1": selection.histories["games+office"]}
    for scale in [x for x in scales if x != 1.0]:  # the same pretrained model, fine-tuned again
        again = select_sources(target, {"games+office": graph}, **common,
                               reuse=selection.pretrained,
                               finetune_kwargs={"max_batches": 300, **tower, "shared_lr_scale": scale})
        scores[f"games+office@{scale:g}"] = again.scores["games+office"]
        histories[f"games+office@{scale:g}"] = again.histories["games+office"]
    base = scores["none"]["ndcg@10"]
    gains = {name: round(score["ndcg@10"] / base - 1.0, 4) for name, score in scores.items()}
    result = {"text_hidden": args.text_hidden, "pretrain_batches": args.pretrain_batches, "seed": args.seed,
              "shared_lr_scales": scales, "holdout": scores, "relative_gain_over_scratch": gains,
              **selection.protocol, "fine_tuning_histories": histories,
              "best_batch": {name: max(h, key=lambda row: row.get("validation_ndcg@10", -1.0))["batch"]
                             for name, h in histories.items() if h},
              "seconds": round(time.monotonic() - started, 1), "load_avg": os.getloadavg()}
    print(f"{'row':<40}{'holdout NDCG@10':>18}{'gain':>10}")
    for name, score in scores.items():
        label = "scratch" if name == "none" else f"pretrain {name.split('@')[0]} -> finetune (shared lr x{name.split('@')[1]})"
        print(f"{label:<40}{score['ndcg@10']:>18.4f}{gains[name]:>+10.1%}   best at batch {result['best_batch'].get(name)}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
