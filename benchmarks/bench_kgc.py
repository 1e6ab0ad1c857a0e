"""KG-completion benchmark: kgforge's ComplEx-N3 against a PyKEEN baseline, side by side in one run.

For each dataset, both models train on the same train split under the same wall-clock budget
(``--minutes`` per model, checked between batches; ``--epochs`` caps both, by default the budget
decides), then both are ranked by the **same** kgforge evaluator
(:func:`kg_builder.evaluation.kgc.evaluate_split`: filtered with every split on disk, both
directions, every entity ranked, realistic ties). The PyKEEN model enters that evaluator as a
kgforge ``Scorer``: kgforge ids are mapped to PyKEEN's id maps, tail queries use ``score_t`` and
head queries (``Query.inverse``) ``score_h``, and the columns are put back in the dataset's entity
order. PyKEEN's own ``RankBasedEvaluator`` (same filter triples) also ranks the baseline, as a
check of that mapping (``--no-pykeen-eval`` skips it).

1. **kgforge**: ``train_structural`` (ComplEx with N3 regularisation and reciprocal relations,
   1-N cross-entropy, Adagrad), its default hyper-parameters.
2. **PyKEEN baseline** (``--baseline-model``, RotatE by default): sLCWA training with the
   self-adversarial negative-sampling loss (NSSA) of Sun et al. 2019, Adam. The defaults (dimension
   200 complex, as kgforge's rank; lr 1e-2; 4 negatives per positive; batch 256) were the best of
   seven settings tried on UMLS *dev* with a 36-second budget: on one CPU thread more negatives
   cost more epochs than they gain (64 negatives at lr 1e-3: 3 epochs in 15 s, MRR 0.05).

PyKEEN is not a kgforge dependency; the benchmark has its own environment, which
``benchmarks/kgc_env.sh`` builds and then runs this script in. Results: a table on stdout and
JSON in ``--out``.

    OMP_NUM_THREADS=1 benchmarks/kgc_env.sh --datasets umls --minutes 2
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from kg_builder import __version__ as kgforge_version
from kg_builder.datasets import Dataset, TripleRecord, load_dataset
from kg_builder.evaluation.kgc import KGCResult, Query, evaluate_split
from kg_builder.settings import Settings
from kg_builder.training.dense import git_hash
from kg_builder.training.structural import train_structural

try:
    import pykeen
    from pykeen.evaluation import RankBasedEvaluator
    from pykeen.models import Model, model_resolver
    from pykeen.training import SLCWATrainingLoop
    from pykeen.training.callbacks import TrainingCallback
    from pykeen.triples import TriplesFactory
except ModuleNotFoundError:  # main() says how to get it; --help works without it
    pykeen = None
    TrainingCallback = object

REPO = Path(__file__).resolve().parent.parent
ENV_SCRIPT = "benchmarks/kgc_env.sh"
DEFAULT_SPLIT = {"umls": "test"}  # the WN18RR and FB15k-237 test splits are held out of the shared folder
console = Console(width=None if sys.stdout.isatty() else 120)  # the table stays readable in a log


@dataclass
class ModelRun:
    """One trained model of one dataset: what it is, how long it trained, how it ranks."""

    model: str
    description: str
    config: dict[str, Any]
    train_seconds: float
    cpu_seconds: float
    epochs: int
    stopped_by_budget: bool
    final_loss: float | None
    kgforge_eval: dict[str, Any] = field(default_factory=dict)
    pykeen_eval: dict[str, Any] | None = None


class BudgetSpent(Exception):
    """Raised by :class:`WallClockBudget` to end PyKEEN's training loop between two batches."""


class WallClockBudget(TrainingCallback):
    """Stops PyKEEN training before the first batch that would start after ``deadline``.

    The same rule as ``train_structural``'s budget (checked before every batch), so that both
    models get the same time. Counts the epochs that ran at least one batch, as kgforge does.
    """

    def __init__(self, deadline: float):
        super().__init__()
        self.deadline = deadline
        self.epochs: set[int] = set()
        self.cpu_at_last_batch = time.process_time()
        self.time_at_last_batch = time.perf_counter()

    def pre_batch(self, **kwargs: Any) -> None:
        if time.perf_counter() > self.deadline:
            raise BudgetSpent

    def post_batch(self, epoch: int, batch, **kwargs: Any) -> None:
        self.epochs.add(epoch)
        self.cpu_at_last_batch = time.process_time()
        self.time_at_last_batch = time.perf_counter()


class PyKEENScorer:
    """A trained PyKEEN model as a kgforge ``Scorer``: kgforge ids in, columns in ``entity_ids`` order.

    ``(e, r, ?)`` scores every tail with ``score_t``; ``(?, r, e)`` (``Query.inverse``) scores every
    head with ``score_h``. PyKEEN's entity ids need not follow kgforge's order: ``columns`` permutes
    PyKEEN's output into it.
    """

    def __init__(self, model: Model, factory: TriplesFactory, entity_ids: Sequence[str]):
        self.model = model
        self.entity_to_id = factory.entity_to_id
        self.relation_to_id = factory.relation_to_id
        self.columns = torch.tensor([self.entity_to_id[e] for e in entity_ids])

    def __call__(self, queries: Sequence[Query]) -> np.ndarray:
        out = np.empty((len(queries), len(self.columns)), dtype=np.float32)
        tails = [i for i, q in enumerate(queries) if not q.inverse]
        heads = [i for i, q in enumerate(queries) if q.inverse]
        entity = [self.entity_to_id[q.entity] for q in queries]
        relation = [self.relation_to_id[q.relation] for q in queries]
        self.model.eval()
        with torch.inference_mode():
            if tails:
                hr = torch.tensor([[entity[i], relation[i]] for i in tails])
                out[tails] = self.model.score_t(hr)[:, self.columns].float().numpy()
            if heads:
                rt = torch.tensor([[relation[i], entity[i]] for i in heads])
                out[heads] = self.model.score_h(rt)[:, self.columns].float().numpy()
        return out


def labeled(triples: Sequence[TripleRecord]) -> np.ndarray:
    return np.array([[t.head, t.relation, t.tail] for t in triples], dtype=str)


def triples_factories(dataset: Dataset) -> dict[str, TriplesFactory]:
    """One PyKEEN factory per split, all on one vocabulary: every entity and relation of the dataset.

    PyKEEN would build its maps from the train triples alone, dropping the entities that only dev or
    test name; the full vocabulary keeps every entity rankable. The ids follow PyKEEN's convention
    (sorted labels), not kgforge's file order: :class:`PyKEENScorer` maps between the two.
    """
    entity_to_id = {e: i for i, e in enumerate(sorted(e.id for e in dataset.entities))}
    relation_to_id = {r: i for i, r in enumerate(sorted(r.id for r in dataset.relations))}
    return {split: TriplesFactory.from_labeled_triples(labeled(triples), entity_to_id=entity_to_id,
                                                       relation_to_id=relation_to_id, compact_id=False)
            for split, triples in dataset.triples.items()}


def metrics_of(result: KGCResult) -> dict[str, Any]:
    data = result.as_dict()
    return {"filtered": data["metrics"]["filtered"], "raw_both": data["metrics"]["raw"]["both"],
            "seconds": data["seconds"], "num_triples": data["num_triples"], "protocol": data["protocol"]}


def run_kgforge(dataset: Dataset, split: str, args: argparse.Namespace) -> ModelRun:
    config = {"rank": args.rank, "epochs": args.epochs, "batch_size": 500, "lr": 0.1, "regularization": 0.05,
              "seed": args.seed}
    cpu_start = time.process_time()
    last_epoch_cpu = [cpu_start]

    def progress(epoch: int, epochs: int, loss: float) -> None:
        # train_structural ends with a dev evaluation: CPU time counts to the end of the last epoch.
        last_epoch_cpu[0] = time.process_time()

    result = train_structural(dataset=dataset, settings=Settings(data_dir=args.data_dir),
                              max_minutes=args.minutes, eval_every=None, save=False, progress=progress,
                              **config)
    evaluation = evaluate_split(result.model.score, dataset, split, ranker="kgforge ComplEx-N3")
    return ModelRun(
        model="kgforge ComplEx-N3", description=f"kg_builder.training.structural, rank {args.rank}",
        config=config, train_seconds=result.timings["train_seconds"],
        cpu_seconds=last_epoch_cpu[0] - cpu_start, epochs=result.metrics["epochs_run"],
        stopped_by_budget=result.stopped_by_budget,
        final_loss=result.epoch_losses[-1] if result.epoch_losses else None,
        kgforge_eval=metrics_of(evaluation))


def run_baseline(dataset: Dataset, split: str, args: argparse.Namespace) -> ModelRun:
    factories = triples_factories(dataset)
    train = factories["train"]
    config = {"model": args.baseline_model, "embedding_dim": args.baseline_dim, "training_loop": "slcwa",
              "loss": "nssa (margin 9, adversarial temperature 1)", "negative_sampler": "basic",
              "num_negs_per_pos": args.baseline_negatives, "optimizer": "adam", "lr": args.baseline_lr,
              "batch_size": args.baseline_batch_size, "epochs": args.epochs, "seed": args.seed}
    started, cpu_start = time.perf_counter(), time.process_time()
    budget = WallClockBudget(started + args.minutes * 60)
    model = model_resolver.make(args.baseline_model, triples_factory=train, embedding_dim=args.baseline_dim,
                                loss="nssa", random_seed=args.seed)
    loop = SLCWATrainingLoop(model=model, triples_factory=train, optimizer="adam",
                             optimizer_kwargs={"lr": args.baseline_lr}, negative_sampler="basic",
                             negative_sampler_kwargs={"num_negs_per_pos": args.baseline_negatives},
                             automatic_memory_optimization=False)  # a GPU feature: on CPU it only probes
    stopped = False
    try:
        losses = loop.train(triples_factory=train, num_epochs=args.epochs,
                            batch_size=args.baseline_batch_size, callbacks=budget, use_tqdm=False,
                            pin_memory=False)
    except BudgetSpent:
        stopped, losses = True, loop.losses_per_epochs
    model.eval()
    name = f"PyKEEN {type(model).__name__}"
    entity_ids = [e.id for e in dataset.entities]
    evaluation = evaluate_split(PyKEENScorer(model, train, entity_ids), dataset, split, entity_ids=entity_ids,
                                ranker=name)
    run = ModelRun(
        model=name, description=f"pykeen {pykeen.get_version()} {type(model).__name__}, sLCWA + NSSA, Adam",
        config=config, train_seconds=budget.time_at_last_batch - started,
        cpu_seconds=budget.cpu_at_last_batch - cpu_start, epochs=len(budget.epochs),
        stopped_by_budget=stopped, final_loss=losses[-1] if losses else None,
        kgforge_eval=metrics_of(evaluation))
    if args.pykeen_eval:
        run.pykeen_eval = pykeen_evaluation(model, factories, split)
    return run


def pykeen_evaluation(model: Model, factories: dict[str, TriplesFactory], split: str) -> dict[str, Any]:
    """PyKEEN's own filtered rank-based evaluation, filtered with the same splits as kgforge's."""
    start = time.perf_counter()
    evaluator = RankBasedEvaluator(filtered=True)
    others = [f.mapped_triples for s, f in factories.items() if s != split]
    result = evaluator.evaluate(model, factories[split].mapped_triples, batch_size=256, use_tqdm=False,
                                additional_filter_triples=others)
    out = {"evaluator": "pykeen RankBasedEvaluator(filtered=True), realistic ranks",
           "seconds": round(time.perf_counter() - start, 3)}
    for side in ("both", "head", "tail"):
        metric = {"mr": "arithmetic_mean_rank", "mrr": "inverse_harmonic_mean_rank",
                  **{f"hits_at_{k}": f"hits_at_{k}" for k in (1, 3, 10)}}
        out[side] = {key: result.get_metric(f"{side}.realistic.{name}") for key, name in metric.items()}
    return out


def versions() -> dict[str, str | None]:
    return {"kgforge": kgforge_version, "pykeen": pykeen.get_version() if pykeen else None,
            "torch": torch.__version__, "numpy": np.__version__, "python": platform.python_version()}


def machine() -> dict[str, Any]:
    return {"platform": platform.platform(), "cpus": os.cpu_count(), "hostname": socket.gethostname(),
            "torch_threads": torch.get_num_threads(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["umls"], choices=["umls", "wn18rr", "fb15k237"])
    parser.add_argument("--minutes", type=float, default=3.0, help="Wall-clock training budget per model.")
    parser.add_argument("--epochs", type=int, default=1_000_000,
                        help="Epoch cap for both models (default: none in practice, the budget decides).")
    parser.add_argument("--split", default=None,
                        help="Evaluation split (default: test for umls, dev otherwise).")
    parser.add_argument("--data-dir", type=Path, default=None, help="Data root (default: KGFORGE_DATA_DIR).")
    parser.add_argument("--rank", type=int, default=200, help="kgforge ComplEx rank (complex dimension).")
    parser.add_argument("--baseline-model", default="rotate", help="A PyKEEN model name (model_resolver).")
    parser.add_argument("--baseline-dim", type=int, default=200,
                        help="PyKEEN embedding_dim (complex for RotatE).")
    parser.add_argument("--baseline-lr", type=float, default=1e-2)
    parser.add_argument("--baseline-batch-size", type=int, default=256)
    parser.add_argument("--baseline-negatives", type=int, default=4, help="Negatives per positive.")
    parser.add_argument("--no-pykeen-eval", dest="pykeen_eval", action="store_false",
                        help="Skip PyKEEN's own evaluator (the check of the scorer mapping).")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's own, which follows OMP_NUM_THREADS).")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "kgc.json")
    args = parser.parse_args(argv)
    if pykeen is None:
        console.print(f"[red]bench_kgc.py needs PyKEEN, which is not a kgforge dependency and is not in this "
                      f"environment ({sys.executable}). Run the benchmark through {ENV_SCRIPT}: it builds "
                      f"benchmarks/.venv-kgc (CPU torch, PyKEEN, kgforge) and runs this script there, e.g. "
                      f"`{ENV_SCRIPT} --datasets umls --minutes 2`.[/red]")
        return 2
    if model_resolver.normalize(args.baseline_model) not in model_resolver.options:
        parser.error(f"--baseline-model {args.baseline_model!r} is not a PyKEEN model; choose one of "
                     f"{', '.join(sorted(model_resolver.options))}")
    if args.threads:
        torch.set_num_threads(args.threads)
    # PyKEEN's evaluator warns on every call that its batch-size search is only proven on CUDA.
    logging.getLogger("torch_max_mem").setLevel(logging.ERROR)
    args.data_dir = args.data_dir or Settings().data_dir

    results = []
    for name in args.datasets:
        dataset = load_dataset(name, args.data_dir)
        split = args.split or DEFAULT_SPLIT.get(name, "dev")
        console.print(f"{name}: {len(dataset.entities):,} entities, {len(dataset.triples['train']):,} train "
                      f"triples; {args.minutes:g} min per model; evaluating on {split}")
        runs = []
        for label, run in (("kgforge ComplEx-N3", run_kgforge),
                           (f"PyKEEN {args.baseline_model}", run_baseline)):
            console.print(f"  training {label} ...")
            runs.append(run(dataset, split, args))
        mrr = [r.kgforge_eval["filtered"]["both"]["mrr"] for r in runs]
        results.append({"dataset": name, "split": split, "entities": len(dataset.entities),
                        "train_triples": len(dataset.triples["train"]),
                        "eval_triples": len(dataset.triples[split]), "runs": [vars(r) for r in runs],
                        "mrr_ratio_kgforge_vs_baseline": mrr[0] / mrr[1]})

    report = {
        "benchmark": "kgc", "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "budget": {"minutes_per_model": args.minutes, "clock": "wall", "checked": "before every batch"},
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "torch_threads": torch.get_num_threads(), "versions": versions(), "git": git_hash(),
        "machine": machine(),
        "evaluation": "kgforge evaluate_split for both models (filtered with every split on disk, both "
                      "directions, every entity ranked, realistic ties); pykeen_eval is PyKEEN's own "
                      "evaluator on the baseline",
        "results": results,
    }
    print_table(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    console.print(f"saved {args.out}")
    return 0


def print_table(report: dict) -> None:
    table = Table(title=f"KG completion: {report['budget']['minutes_per_model']:g} min wall clock per model, "
                        f"{report['torch_threads']} torch thread(s), filtered, both directions "
                        f"(kgforge evaluator)")
    for col in ("dataset", "model", "train s", "CPU s", "epochs", "MR", "MRR", "Hits@1", "Hits@3", "Hits@10"):
        table.add_column(col, justify="left" if col in ("dataset", "model") else "right")
    for res in report["results"]:
        for run in res["runs"]:
            m = run["kgforge_eval"]["filtered"]["both"]
            table.add_row(f"{res['dataset']} {res['split']}", run["model"], f"{run['train_seconds']:.0f}",
                          f"{run['cpu_seconds']:.0f}", str(run["epochs"]), f"{m['mr']:.2f}",
                          f"{m['mrr']:.3f}", f"{m['hits_at_1']:.3f}", f"{m['hits_at_3']:.3f}",
                          f"{m['hits_at_10']:.3f}")
    console.print(table)
    for res in report["results"]:
        ratio = res["mrr_ratio_kgforge_vs_baseline"]
        console.print(f"{res['dataset']}: kgforge MRR / baseline MRR = {ratio:.2f}")
        for run in res["runs"]:
            if run["pykeen_eval"]:
                p = run["pykeen_eval"]["both"]
                console.print(f"  {run['model']} by PyKEEN's own evaluator: MR {p['mr']:.2f}, "
                              f"MRR {p['mrr']:.3f}, Hits@1 {p['hits_at_1']:.3f}, "
                              f"Hits@3 {p['hits_at_3']:.3f}, Hits@10 {p['hits_at_10']:.3f}")


if __name__ == "__main__":
    sys.exit(main())
