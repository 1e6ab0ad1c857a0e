"""``kgforge import DATASET`` and ``kgforge datasets``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from kg_builder.datasets import DATASETS, available_datasets, load_dataset
from kg_builder.ingest import import_dataset
from kg_builder.graphdb import GraphStore
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


@handle_errors
def import_command(
    dataset: str = typer.Argument(..., help=f"One of: {', '.join(DATASETS)}."),
    data_dir: Path | None = DataDirOption,
    batch_size: int | None = typer.Option(None, help="Rows per write transaction (default: KGFORGE_GRAPH_BATCH_SIZE)."),
    index: bool = typer.Option(True, "--index/--no-index",
                               help="Also embed the domain's entities into its persistent index (KGFORGE_HOME/index); "
                                    "without it the domain's first job builds the index (WN18RR: minutes on a CPU)."),
    json_out: bool = JsonOption,
) -> None:
    """Load a dataset into the graph (idempotent: importing twice changes nothing)."""
    settings = load_settings(graph_batch_size=batch_size)
    root = resolve_data_dir(settings, data_dir)
    with err_console.status(f"reading {dataset} from {root} ..."):
        records = load_dataset(dataset, root)
    with GraphStore.from_settings(settings) as store, progress_bars() as progress:
        report = import_dataset(store, records, progress, settings=settings if index else None)
    if json_out:
        print_json(report.as_dict())
        return
    table = Table(title=f"imported {dataset} in {report.seconds:.1f}s (rows written; re-writes change nothing)")
    table.add_column("kind")
    table.add_column("label / type")
    table.add_column("rows", justify="right")
    for label, n in sorted(report.nodes.items()):
        table.add_row("nodes", label, f"{n:,}")
    for rel_type, n in sorted(report.edges.items()):
        table.add_row("edges", rel_type, f"{n:,}")
    console.print(table)


@handle_errors
def datasets_command(data_dir: Path | None = DataDirOption) -> None:
    """List the datasets kgforge can import and whether their folder is present."""
    settings = load_settings()
    root = resolve_data_dir(settings, data_dir)
    present = set(available_datasets(root))
    table = Table(title=f"datasets in {root}")
    table.add_column("name")
    table.add_column("kind")
    table.add_column("present")
    table.add_column("what")
    for name, loader in DATASETS.items():
        table.add_row(name, loader.kind, "yes" if name in present else "[red]no[/]", loader.summary)
    console.print(table)
