"""RecBole 1.2.1's own SASRec beside kgforge's SASRec on the same Amazon Scientific split files.

Runs in the benchmark-only environment ``benchmarks/.venv-rec`` (``benchmarks/rec_env.sh`` builds it
and runs this file with its arguments). What it does, in one run:

1. **RecBole SASRec** on RecBole's own data path: ``benchmark_filename: [train, valid, test]`` over
   a temporary folder that links ``Scientific.train.inter`` and ``Scientific.valid.inter`` from
   ``--data-dir`` (the atomic files are already RecBole's format: ``user_id``, ``item_id_list``,
   ``item_id``; the train file is RecBole's augmented prefix rows) and uses the valid file as the
   test file too (the test split is held out here); RecBole's ``SASRec.yaml`` model (2 layers,
   2 heads, hidden 64, inner 256, dropout 0.5, max 50 items, CE loss over all items, Adam),
   **a fixed number of epochs** (``--epochs``, no early stopping, ``valid`` evaluated once, at the
   end, so nothing is chosen on it), one torch thread, seed ``--seed``. The training recipe is
   **not** RecBole's default (lr 0.001, 2048-row batches): RecBole pads every row to 50 items and an
   epoch took 97-171 s on one thread here, so its default recipe (tens of epochs) would take hours;
   the defaults below (lr 0.003, 256-row batches, 5 epochs: 665 steps, ~8 min) are kgforge's
   learning rate with a batch size that converges in that budget (``--lr``/``--batch-size``/
   ``--epochs`` restore RecBole's: ``--lr 0.001 --batch-size 2048``);
2. evaluates that model on ``valid`` (full ranking over all items, HR@10/20 and NDCG@10/20) twice:
   **RecBole's own evaluator** (``Trainer.evaluate``: for sequential models RecBole does *not* mask
   the user's history items: ``FullSortEvalDataLoader`` gives them no ``history_index``), and
   **kgforge's protocol** on the same scores (:class:`recommender.metrics.RankAccumulator`: the
   history items excluded, ties count against the target);
3. **kgforge SASRec** (ID only): the saved ``sasrec-none-amazon18_scientific-s0`` under
   ``KGFORGE_HOME`` (or trained here with the defaults when missing), evaluated with and without
   the history excluded; with ``--kgforge-recbole-settings`` also one trained like RecBole above
   (lr 0.001, the same fixed epochs, no holdout and no early stopping), to separate the protocol
   from the training recipe;
4. **KG load check** (on by default): exports a small embedding set with
   ``gnn.exports.export_recbole`` (what ``kgforge embed export --format recbole`` writes), adds a
   tiny ``.inter`` and ``.kg`` of the same entities, loads it with RecBole's ``CKE``, ``KGCN`` and ``KGAT``
   (dataset, data loaders, model construction, one training batch) and checks that the preloaded
   ``ent_emb`` rows are the exported vectors of the right entities;
5. prints one table and saves ``benchmarks/results/rec_recbole.json``.

Run: ``benchmarks/rec_env.sh --kgforge-recbole-settings`` (~10 min on one thread, plus building
the environment the first time).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "rec_recbole.json"
DATASET = "amazon18_scientific"
FOLDER, PREFIX = "rec/amazon18_scientific", "Scientific"
METRICS = ("ndcg@10", "hr@10", "ndcg@20", "hr@20")


def peak_rss_mib() -> float:
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)


def recbole_folder(data_dir: Path, tmp: Path) -> Path:
    """``tmp/Scientific`` with train, valid and (= valid) test files linked from the shared data."""
    source = data_dir / FOLDER
    folder = tmp / PREFIX
    folder.mkdir(parents=True)
    for split, name in (("train", "train"), ("valid", "valid"), ("test", "valid")):
        os.symlink(source / f"{PREFIX}.{name}.inter", folder / f"{PREFIX}.{split}.inter")
    return tmp


def recbole_config(data_path: Path, args: argparse.Namespace) -> dict:
    return {
        "data_path": str(data_path), "benchmark_filename": ["train", "valid", "test"],
        "load_col": {"inter": ["user_id", "item_id_list", "item_id"]}, "alias_of_item_id": ["item_id_list"],
        "MAX_ITEM_LIST_LENGTH": 50, "loss_type": "CE", "train_neg_sample_args": None,
        "epochs": args.epochs, "eval_step": 0, "stopping_step": args.epochs + 1,
        "train_batch_size": args.batch_size, "learning_rate": args.lr, "eval_batch_size": 1024,
        "eval_args": {"split": {"RS": [0.8, 0.1, 0.1]}, "order": "TO", "mode": "full", "group_by": "user"},
        "metrics": ["Hit", "NDCG"], "topk": [10, 20], "valid_metric": "NDCG@10",
        "device": "cpu", "use_gpu": False, "seed": args.seed, "reproducibility": True, "worker": 0,
        "show_progress": False, "checkpoint_dir": str(data_path / "saved"), "log_wandb": False,
    }


def recbole_metrics(result: dict) -> dict:
    return {"ndcg@10": result["ndcg@10"], "hr@10": result["hit@10"], "ndcg@20": result["ndcg@20"],
            "hr@20": result["hit@20"]}


def kgforge_protocol(model, loader, *, exclude: bool) -> dict:
    """HR/NDCG of a RecBole model's full-sort scores with kgforge's RankAccumulator."""
    import torch

    from recommender.metrics import RankAccumulator

    acc = RankAccumulator((10, 20))
    model.eval()
    with torch.no_grad():
        for interaction, _, _, positive_i in loader:
            scores = model.full_sort_predict(interaction)[:, 1:].numpy()  # column 0 is RecBole's [PAD]
            seqs = interaction["item_id_list"].numpy()
            histories = [[int(i) - 1 for i in row if i > 0] if exclude else [] for row in seqs]
            acc.add(scores, histories, positive_i.numpy() - 1)
    return {k: round(v, 5) for k, v in acc.result().items()}


def run_recbole(args: argparse.Namespace, tmp: Path) -> dict:
    import torch
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.model.sequential_recommender import SASRec
    from recbole.trainer import Trainer
    from recbole.utils import init_seed

    torch.set_num_threads(1)
    data_path = recbole_folder(args.data_dir, tmp)
    config = Config(model="SASRec", dataset=PREFIX, config_dict=recbole_config(data_path, args))
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, valid_data, _ = data_preparation(config, dataset)
    init_seed(config["seed"], config["reproducibility"])
    model = SASRec(config, train_data._dataset)
    trainer = Trainer(config, model)
    started = time.monotonic()
    losses = []
    for epoch in range(args.epochs):  # Trainer.fit without validation, one epoch at a time (its own loop)
        loss = trainer._train_epoch(train_data, epoch, show_progress=False)
        losses.append(round(float(loss if not isinstance(loss, tuple) else sum(loss)), 4))
        print(f"RecBole SASRec epoch {epoch + 1}/{args.epochs}: loss {losses[-1]} "
              f"({time.monotonic() - started:.0f} s)", flush=True)
    train_s = time.monotonic() - started
    own = recbole_metrics(trainer.evaluate(valid_data, load_best_model=False, show_progress=False))
    return {
        "config": {k: v for k, v in recbole_config(data_path, args).items() if k not in ("data_path", "checkpoint_dir")},
        "users": len(valid_data._dataset), "items": dataset.item_num - 1,
        "train_rows": len(train_data._dataset), "epochs": args.epochs, "train_seconds": round(train_s, 1),
        "seconds_per_epoch": round(train_s / args.epochs, 1), "losses": losses,
        "recbole_evaluator": {k: round(float(v), 5) for k, v in own.items()},
        "kgforge_protocol": kgforge_protocol(model, valid_data, exclude=True),
        "kgforge_protocol_history_kept": kgforge_protocol(model, valid_data, exclude=False),
        "peak_rss_mib": peak_rss_mib(),
    }


def kgforge_eval(model, sequences, *, exclude: bool) -> dict:
    import torch

    from recommender.data import history_batch
    from recommender.metrics import RankAccumulator
    from recommender.models.base import to_tensors

    acc = RankAccumulator((10, 20))
    model.eval()
    targets = np.asarray(sequences.targets)
    with torch.no_grad():
        for start in range(0, len(targets), 512):
            histories = sequences.histories[start:start + 512]
            scores = model.full_sort_predict(to_tensors(history_batch(histories, model.max_len))).numpy()
            acc.add(scores, histories if exclude else [[] for _ in histories], targets[start:start + 512])
    return {k: round(v, 5) for k, v in acc.result().items()}


def run_kgforge(args: argparse.Namespace) -> dict:
    import torch

    from kg_builder.settings import get_settings
    from recommender.data import load_rec_data
    from recommender.store import RecommenderStore
    from recommender.train import train_student

    torch.set_num_threads(1)
    data = load_rec_data(DATASET, args.data_dir)
    valid = data.evaluation("valid")
    store = RecommenderStore(get_settings())
    name = "sasrec-none-amazon18_scientific-s0"
    out = {}
    if store.versions(name):
        saved = store.load(name)
        m = saved.meta
        model, how = saved.model, (f"saved {name} v{m.version}: lr {m.train_config.get('lr')}, early stopping on a "
                                   f"train-only holdout, best epoch {m.metrics.get('best_epoch')} of "
                                   f"{m.metrics.get('epochs_run')} ({m.metrics.get('seconds')} s)")
    else:
        result = train_student(data=data, model="sasrec", seed=args.seed)
        model, how = result.model, (f"trained here with the defaults: best epoch {result.metrics['best_epoch']} of "
                                    f"{result.metrics['epochs_run']} ({result.metrics['seconds']} s)")
    out["defaults"] = {"how": how, "history_excluded": kgforge_eval(model, valid, exclude=True),
                       "history_kept": kgforge_eval(model, valid, exclude=False)}
    if args.kgforge_recbole_settings:
        started = time.monotonic()
        result = train_student(data=data, model="sasrec", seed=args.seed, lr=args.lr, epochs=args.epochs,
                               holdout_fraction=0.0, patience=0)
        out["recbole_settings"] = {
            "how": f"lr {args.lr}, {args.epochs} fixed epochs, no holdout, no early stopping "
                   f"({time.monotonic() - started:.0f} s)",
            "history_excluded": kgforge_eval(result.model, valid, exclude=True),
            "history_kept": kgforge_eval(result.model, valid, exclude=False)}
    return out


def kg_check(tmp: Path) -> dict:
    """Load ``export_recbole``'s files with RecBole's CKE and KGAT (see the module docstring)."""
    import torch
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.model.knowledge_aware_recommender import CKE, KGAT, KGCN
    from recbole.utils import init_seed

    from gnn.exports import export_recbole
    from gnn.store import EmbeddingSet

    rng = np.random.default_rng(0)
    asins = [f"B{i:09d}" for i in range(40)]
    items = [f"amazon:{a}" for a in asins]
    categories = [f"category:lab-{i}" for i in range(5)]  # the graph's key forms (graphdb.schema)
    brands = [f"brand:maker-{i}" for i in range(4)]
    nodes = items + categories + brands
    vectors = rng.standard_normal((len(nodes), 16)).astype(np.float32)
    embedding_set = EmbeddingSet.create("kgcheck", vectors, nodes, model="hgt", domain="amazon")
    name = "KgCheck"
    files = export_recbole(embedding_set, tmp, dataset=name)
    folder = tmp / name
    with (folder / f"{name}.inter").open("w") as out:
        out.write("user_id:token\titem_id:token\ttimestamp:float\n")
        for u in range(30):
            for t, i in enumerate(rng.choice(len(asins), size=6, replace=False)):
                out.write(f"u{u}\t{asins[i]}\t{t}\n")
    with (folder / f"{name}.kg").open("w") as out:
        out.write("head_id:token\trelation_id:token\ttail_id:token\n")
        for i, item in enumerate(items):
            out.write(f"{item}\tin_category\t{categories[i % 5]}\n")
            out.write(f"{item}\tmade_by\t{brands[i % 4]}\n")
    report: dict = {"exported": [p.name for p in files], "yaml": (folder / "kgforge-recbole.yaml").read_text()}
    linked = {line.split("\t")[1] for line in (folder / f"{name}.link").read_text().splitlines()[1:]}
    report["linked_items"] = len(linked)
    for model_cls in (CKE, KGCN, KGAT):
        label = model_cls.__name__
        try:
            config = Config(model=label, dataset=name, config_file_list=[str(folder / "kgforge-recbole.yaml")],
                            config_dict={"data_path": str(tmp), "device": "cpu", "use_gpu": False, "epochs": 1,
                                         "train_batch_size": 64, "eval_args": {"split": {"RS": [0.8, 0.1, 0.1]},
                                                                                "order": "RO", "mode": "full",
                                                                                "group_by": "user"},
                                         "load_col": {"inter": ["user_id", "item_id", "timestamp"],
                                                      "kg": ["head_id", "relation_id", "tail_id"],
                                                      "link": ["item_id", "entity_id"], "ent": ["ent_id", "ent_emb"]},
                                         "worker": 0, "show_progress": False, "log_wandb": False,
                                         "checkpoint_dir": str(tmp / "saved")})
            init_seed(0, True)
            dataset = create_dataset(config)
            train_data, _, _ = data_preparation(config, dataset)
            weight = dataset.get_preload_weight("ent_id")
            ent_field = dataset.field2id_token["ent_id"] if "ent_id" in dataset.field2id_token else None
            tokens = dataset.field2id_token[dataset.entity_field]
            mismatched = []
            by_node = dict(zip(nodes, vectors))
            for row, token in enumerate(tokens):
                if token in by_node and not np.allclose(weight[row], by_node[token], atol=1e-6):
                    mismatched.append(token)
            model = model_cls(config, train_data._dataset)
            if hasattr(train_data, "set_mode"):  # RecBole's KnowledgeBasedDataLoader: rec + kg batches
                from recbole.utils import KGDataLoaderState

                train_data.set_mode(KGDataLoaderState.RSKG)
            batch = next(iter(train_data))
            loss = model.calculate_loss(batch)
            loss = sum(loss) if isinstance(loss, tuple) else loss
            report[label] = {
                "loaded": True, "users": dataset.user_num - 1, "items": dataset.item_num - 1,
                "entities": dataset.entity_num - 1, "relations": dataset.relation_num - 1,
                "kg_triples": len(dataset.kg_feat), "preload_weight_shape": list(weight.shape),
                "ent_id_shares_entity_tokens": ent_field is None or list(ent_field) == list(tokens),
                "rows_checked": sum(1 for t in tokens if t in by_node), "rows_mismatched": mismatched,
                "first_batch_loss": round(float(loss), 4), "loss_finite": bool(torch.isfinite(torch.as_tensor(loss)))}
        except Exception as e:  # reported, never hidden: this is what the check is for
            report[label] = {"loaded": False, "error": f"{type(e).__name__}: {e}"}
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("KGFORGE_DATA_DIR", ROOT.parent / "shared" / "data")))
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--lr", type=float, default=0.003, help="RecBole's default: 0.001")
    parser.add_argument("--batch-size", type=int, default=256, help="RecBole's default: 2048")
    parser.add_argument("--seed", type=int, default=2020, help="RecBole's default seed")
    parser.add_argument("--skip-recbole", action="store_true")
    parser.add_argument("--skip-kgforge", action="store_true")
    parser.add_argument("--kgforge-recbole-settings", action="store_true")
    parser.add_argument("--no-kg-check", dest="kg_check", action="store_false")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    args.data_dir = args.data_dir.expanduser().resolve()
    warnings.filterwarnings("ignore")
    from rich.console import Console
    from rich.table import Table

    import recbole

    console = Console()
    result: dict = {"benchmark": "bench_rec", "dataset": DATASET, "recbole": recbole.__version__,
                    "protocol": "valid split (Scientific.valid.inter), leave-one-out, full ranking over all 4,385 items, "
                                "HR@10/20 NDCG@10/20; single seed"}
    with tempfile.TemporaryDirectory(prefix="kgforge-bench-rec-") as tmp:
        cwd = os.getcwd()
        os.chdir(tmp)  # RecBole writes log/ and log_tensorboard/ into the working directory
        try:
            if args.kg_check:
                result["kg_check"] = kg_check(Path(tmp) / "kg")
                console.print({k: v for k, v in result["kg_check"].items() if k != "yaml"})
            if not args.skip_recbole:
                result["recbole_sasrec"] = run_recbole(args, Path(tmp) / "seq")
            result["kgforge_sasrec"] = {} if args.skip_kgforge else run_kgforge(args)
        finally:
            os.chdir(cwd)

    table = Table(title=f"SASRec on {DATASET} valid: RecBole {recbole.__version__} beside kgforge",
                  caption=result["protocol"])
    for column in ("model", "trained", "evaluated", *[m.upper().replace("HR", "HR") for m in METRICS]):
        table.add_column(column, overflow="fold")
    rows = []
    if "recbole_sasrec" in result:
        r = result["recbole_sasrec"]
        how = f"lr {args.lr}, {args.epochs} epochs, batch {args.batch_size} ({r['train_seconds']:.0f} s)"
        rows += [("RecBole SASRec", how, "RecBole's evaluator (history kept)", r["recbole_evaluator"]),
                 ("RecBole SASRec", how, "kgforge protocol, history kept", r["kgforge_protocol_history_kept"]),
                 ("RecBole SASRec", how, "kgforge protocol (history excluded)", r["kgforge_protocol"])]
    for key, label in (("defaults", "kgforge SASRec"), ("recbole_settings", "kgforge SASRec, RecBole recipe")):
        if key in result["kgforge_sasrec"]:
            k = result["kgforge_sasrec"][key]
            rows += [(label, k["how"], "kgforge protocol, history kept", k["history_kept"]),
                     (label, k["how"], "kgforge protocol (history excluded)", k["history_excluded"])]
    for model, how, evaluated, metrics in rows:
        table.add_row(model, how, evaluated, *(f"{metrics[m]:.4f}" for m in METRICS))
    console.print(table)
    result.update({
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "load_avg": os.getloadavg()},
        "git": subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    console.print(f"saved {args.out}")


if __name__ == "__main__":
    main()
