"""``kgforge embed ...``: graph-embedding sets (issue 11).

``list``, ``export`` and ``delete`` work on the versioned sets under ``KGFORGE_HOME/embeddings``
(:mod:`gnn.store`); ``pretrain``, ``finetune`` and ``eval`` train and measure them (:mod:`gnn.train`,
:mod:`gnn.evaluate`); ``refresh`` recomputes a set over the graph as jobs grew it (:mod:`gnn.refresh`).
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import typer
from rich.table import Table

from kgforge.cli.common import (
    DataDirOption,
    JsonOption,
    console,
    err_console,
    handle_errors,
    load_settings,
    print_json,
    progress_bars,
    resolve_data_dir,
)

app = typer.Typer(help="Graph embeddings: list, export, delete (and train) embedding sets.", no_args_is_help=True)


@app.command("list")
@handle_errors
def list_command(json_out: bool = JsonOption) -> None:
    """Every saved version of every embedding set."""
    from gnn.store import EmbeddingStore

    sets = EmbeddingStore(load_settings()).list()
    if json_out:
        print_json([m.model_dump(mode="json") for m in sets])
        return
    table = Table(title=f"{len(sets)} embedding set version(s)")
    for column in ("name", "version", "model", "domain", "count", "dim", "created", "metrics"):
        table.add_column(column, overflow="fold")
    for m in sets:
        metrics = ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in list(m.metrics.items())[:4])
        table.add_row(m.name, str(m.version), m.model, m.domain or "-", f"{m.count:,}", str(m.dimension),
                      m.created.isoformat(timespec="seconds"), metrics or "-")
    console.print(table)


@app.command("export")
@handle_errors
def export_command(
    name: str = typer.Argument(..., help="The set's name."),
    fmt: str = typer.Option("npy", "--format", help="npy (.npy + ids), parquet, or recbole (.ent + .link)."),
    out: Path = typer.Option(Path("."), "--out", help="Output folder."),
    version: int | None = typer.Option(None, "--version", min=1, help="A version (default: the latest)."),
    dataset: str | None = typer.Option(None, "--dataset", help="RecBole dataset name (default: the set's domain)."),
    item_index: Path | None = typer.Option(None, "--item-index", help="RecBole: an item2index file, so the .link "
                                                                      "file uses the recommender's item tokens."),
    json_out: bool = JsonOption,
) -> None:
    """Export a set as .npy + ids, Parquet, or RecBole atomic files."""
    from gnn.exports import export_set, item_tokens_from_file
    from gnn.store import EmbeddingStore

    embedding_set = EmbeddingStore(load_settings()).load(name, version)
    tokens = item_tokens_from_file(item_index) if item_index else None
    files = export_set(embedding_set, fmt, out, dataset=dataset, item_tokens=tokens)
    if json_out:
        print_json({"set": name, "version": embedding_set.version, "files": [str(f) for f in files]})
        return
    console.print(f"{name} v{embedding_set.version} ({len(embedding_set):,} vectors) exported as {fmt}:")
    for f in files:
        console.print(f"  {f}")


@app.command("delete")
@handle_errors
def delete_command(
    name: str = typer.Argument(..., help="The set's name."),
    version: int | None = typer.Option(None, "--version", min=1, help="One version (default: every version)."),
) -> None:
    """Delete a set (every version, or one)."""
    from gnn.store import EmbeddingStore

    removed = EmbeddingStore(load_settings()).delete(name, version)
    console.print(f"deleted {name} version(s) {', '.join(map(str, removed))}")


@app.command("write-back")
@handle_errors
def write_back_command(
    name: str = typer.Argument(..., help="The set's name."),
    version: int | None = typer.Option(None, "--version", min=1, help="A version (default: the latest)."),
) -> None:
    """Write a set's vectors to its graph nodes as a property (``embedding_<name>``)."""
    from gnn.store import EmbeddingStore, write_back
    from kg_builder.graphdb import GraphStore

    settings = load_settings()
    embedding_set = EmbeddingStore(settings).load(name, version)
    with GraphStore.from_settings(settings) as graph, progress_bars() as bars:
        bars.phase("write back", len(embedding_set))
        written = write_back(graph, embedding_set, progress=bars.advance)
    console.print(f"wrote {written:,} vectors of {name} v{embedding_set.version} to the graph")


def _progress_update(bars):
    """A gnn.train progress callback that advances a rich bar per batch."""
    def update(event: dict) -> None:
        if "batch" in event:
            bars.advance(1)

    return update


@app.command("pretrain")
@handle_errors
def pretrain_command(
    sources: list[str] = typer.Option(["amazon18_games", "amazon14_office"], "--source",
                                      help="Source domains (repeat): one graph, one domain id each."),
    model: str = typer.Option("lightgcn", "--model", help="Encoder: lightgcn, hetero_sage or rgcn (gnn.models)."),
    objective: str = typer.Option("next_item", "--objective", help="next_item (gnn.objectives) or link (BPR on "
                                                                   "sampled subgraphs, for very large graphs)."),
    max_batches: int = typer.Option(200, "--max-batches", min=1, help="Batches of 1,024 training pairs."),
    max_minutes: float | None = typer.Option(None, "--max-minutes", min=0.1, help="A wall-clock budget as well."),
    seed: int = typer.Option(0, "--seed"),
    name: str = typer.Option("gnn-pretrain", "--name", help="Model folder under KGFORGE_HOME/models."),
    data_dir: Path | None = DataDirOption,
    json_out: bool = JsonOption,
) -> None:
    """Self-supervised pretraining across source domains; saves the encoder."""
    from gnn.workflows import pretrain_sources

    settings = load_settings()
    root = resolve_data_dir(settings, data_dir)
    with progress_bars() as bars:
        bars.phase(f"pretrain {model} on {', '.join(sources)}", max_batches)
        out = pretrain_sources(settings, sources=sources, model=model, objective=objective, max_batches=max_batches,
                               max_minutes=max_minutes, seed=seed, name=name, data_dir=root,
                               progress=_progress_update(bars))
    if json_out:
        print_json(out)
        return
    console.print(f"pretrained {model} on {', '.join(sources)}: {out['metrics']}; saved to {out['directory']}")


@app.command("finetune")
@handle_errors
def finetune_command(
    dataset: str = typer.Option("amazon18_scientific", "--dataset", help="The target domain."),
    pretrained: str | None = typer.Option(None, "--pretrained", help="A pretrained model (kgforge embed pretrain "
                                                                     "--name); none: train from scratch."),
    model: str = typer.Option("lightgcn", "--model", help="Encoder when training from scratch."),
    max_batches: int = typer.Option(300, "--max-batches", min=1, help="At most this many batches of 1,024 pairs "
                                                                      "(early stopping usually ends sooner)."),
    max_minutes: float | None = typer.Option(None, "--max-minutes", min=0.1, help="A wall-clock budget as well."),
    early_stopping: bool = typer.Option(True, "--early-stopping/--no-early-stopping",
                                        help="Stop on a train-only holdout (the last train item of 20 % of users)."),
    seed: int = typer.Option(0, "--seed"),
    name: str | None = typer.Option(None, "--name", help="Model and embedding-set name (default gnn-<dataset>)."),
    with_job_edges: bool = typer.Option(False, "--with-job-edges/--without-job-edges",
                                        help="Add the triples jobs wrote on the domain (read from the running "
                                             "graph database) as edges weighted by their confidence."),
    min_confidence: float = typer.Option(0.0, "--min-confidence", min=0.0, max=1.0,
                                         help="With --with-job-edges: the lowest confidence of a job edge taken."),
    data_dir: Path | None = DataDirOption,
    json_out: bool = JsonOption,
) -> None:
    """Fine-tune (or train from scratch) on a target domain; saves the encoder and the items'
    embedding set (node ids are graph keys, so `GET /v1/embeddings/<set>/<item id>` serves them)."""
    from gnn.workflows import finetune_target

    settings = load_settings()
    root = resolve_data_dir(settings, data_dir)
    with _graph_store(settings, with_job_edges) as store, progress_bars() as bars:
        bars.phase(f"{'finetune' if pretrained else 'train'} on {dataset}", max_batches)
        out = finetune_target(settings, dataset=dataset, pretrained=pretrained, model=model, max_batches=max_batches,
                              max_minutes=max_minutes, seed=seed, name=name, early_stopping=early_stopping,
                              data_dir=root, progress=_progress_update(bars), store=store,
                              min_confidence=min_confidence)
    if json_out:
        print_json(out)
        return
    console.print(f"{out['stage']} on {dataset}: {out['metrics']}; model saved to {out['directory']}; "
                  f"embedding set {out['embedding_set']} v{out['version']} ({out['items']:,} items)")
    if out["job_edges"] is not None:
        console.print(f"job edges: {out['job_edges']}")


@contextmanager
def _graph_store(settings, wanted: bool = True):
    """The graph store when ``wanted`` (closed afterwards), else None."""
    if not wanted:
        yield None
        return
    from kg_builder.graphdb import GraphStore

    with GraphStore.from_settings(settings) as store:
        yield store


@app.command("refresh")
@handle_errors
def refresh_command(
    name: str = typer.Argument(..., help="The set's name (saved by `kgforge embed finetune`)."),
    min_confidence: float | None = typer.Option(None, "--min-confidence", min=0.0, max=1.0,
                                                help="Lowest confidence of a job edge (default: the set's own)."),
    data_dir: Path | None = DataDirOption,
    json_out: bool = JsonOption,
) -> None:
    """Recompute a set with its saved model over the graph as it is now (job edges included), without
    training; saves a new version in which only the affected nodes' rows change (gnn/refresh.py)."""
    from gnn.refresh import refresh_embedding_set
    from gnn.store import EmbeddingStore

    settings = load_settings()
    EmbeddingStore(settings).metadata(name)  # an unknown set is named before the graph is asked
    with _graph_store(settings) as store:
        out = refresh_embedding_set(settings, name, store=store, data_dir=resolve_data_dir(settings, data_dir),
                                    min_confidence=min_confidence)
    if json_out:
        print_json(out)
        return
    console.print(f"{name} v{out['version']} (from v{out['refreshed_from']}): {out['changed']:,} of "
                  f"{out['items']:,} rows changed in {out['seconds']:.1f}s; job edges: {out['job_edges']}")


@app.command("eval")
@handle_errors
def eval_command(
    dataset: str = typer.Option("amazon18_scientific", "--dataset", help="The target domain."),
    split: str = typer.Option("valid", "--split", help="valid, or test where the held-out file is on disk."),
    model: str = typer.Option("lightgcn", "--model", help="Encoder of the GNN rows."),
    seeds: str = typer.Option("0,1,2", "--seeds", help="Seeds of the fine-tuning runs (mean and spread)."),
    pretrain_batches: int = typer.Option(200, "--pretrain-batches", min=1),
    finetune_batches: int = typer.Option(300, "--finetune-batches", min=1, help="At most; early stopping on "
                                                                         "a train-only holdout ends sooner."),
    adaptive: bool = typer.Option(True, "--adaptive/--no-adaptive", help="Row (d): source selection."),
    train: bool = typer.Option(True, "--train/--no-train", help="Train every model the rows need (always: the "
                                                               "table is reproduced from the data by this command)."),
    data_dir: Path | None = DataDirOption,
    json_out: bool = JsonOption,
) -> None:
    """The target-domain table: popularity, text, GNN from scratch, pretrained + fine-tuned, adaptive
    (leave-one-out, full ranking over every item; gnn/evaluate.py states the protocol)."""
    from gnn.evaluate import evaluate_table

    if not train:
        raise typer.BadParameter("the table trains its own rows; saved models are not read", param_hint="--train")
    settings = load_settings()
    root = resolve_data_dir(settings, data_dir)
    seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    with err_console.status("training and ranking (rows in order; see gnn/evaluate.py) ...") as status:
        result = evaluate_table(dataset=dataset, split=split, data_dir=root, model_name=model, seeds=seed_list,
                                pretrain_batches=pretrain_batches, finetune_batches=finetune_batches,
                                adaptive=adaptive, progress=lambda e: status.update(f"{e}"[:100]))
    if json_out:
        print_json(result)
        return
    table = Table(title=f"{dataset} {split}: next-item retrieval, full ranking", caption=str(result.get("protocol", "")))
    for column in ("row", "NDCG@10", "HR@10"):
        table.add_column(column, overflow="fold")
    for row in result.get("rows", []):
        table.add_row(str(row.get("row") or row.get("name")), _cell(row, "ndcg@10"), _cell(row, "hr@10"))
    console.print(table)


def _cell(row: dict, metric: str) -> str:
    value, std = row.get(metric), row.get(f"{metric}_std")
    if not isinstance(value, (int, float)):
        return "-"
    return f"{value:.4f}" + (f" ({std:.4f})" if isinstance(std, (int, float)) else "")
