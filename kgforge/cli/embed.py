"""``kgforge embed ...``: graph-embedding sets (issue 11).

``list``, ``export`` and ``delete`` work on the versioned sets under ``KGFORGE_HOME/embeddings``
(:mod:`gnn.store`); ``pretrain``, ``finetune`` and ``eval`` train and measure them (:mod:`gnn.train`,
:mod:`gnn.evaluate`).
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from kgforge.cli.common import JsonOption, console, handle_errors, load_settings, print_json, progress_bars

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
