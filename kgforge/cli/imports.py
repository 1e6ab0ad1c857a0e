"""``kgforge import DATASET`` and ``kgforge datasets``."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import typer
from rich.table import Table

from kg_builder.datasets import DATASETS, available_datasets, load_dataset
from kg_builder.datasets.records import Dataset
from kg_builder.errors import InvalidInputError
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
    splits: str | None = typer.Option(None, "--splits",
                                      help="KG datasets: import only these triple splits, comma-separated "
                                           "(`train,dev` holds `test` out, so that a job's new triples can be "
                                           "checked against it with `kgforge jobs submit --check-split test`). "
                                           "Default: every split present."),
    json_out: bool = JsonOption,
) -> None:
    """Load a dataset into the graph (idempotent: importing twice changes nothing)."""
    settings = load_settings(graph_batch_size=batch_size)
    root = resolve_data_dir(settings, data_dir)
    with err_console.status(f"reading {dataset} from {root} ..."):
        records = load_dataset(dataset, root)
    if splits is not None:
        records = keep_splits(records, splits)
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


def keep_splits(records: Dataset, splits: str) -> Dataset:
    """``records`` with only the triple splits named in ``splits`` (comma-separated); an unknown or
    missing split, or a dataset without triple splits, is an error naming ``--splits``. Entities
    and relations stay whole: a held-out split's entities are still nodes, only its edges are not."""
    wanted = [s.strip() for s in splits.split(",") if s.strip()]
    if not records.triples:
        raise InvalidInputError("--splits", f"{records.name} has no triple splits (only KG datasets do)")
    if not wanted:
        raise InvalidInputError("--splits", "name at least one split")
    unknown = [s for s in wanted if s not in records.triples]
    if unknown:
        raise InvalidInputError("--splits", f"{', '.join(unknown)} not among {records.name}'s splits here: "
                                            f"{', '.join(records.triples)}")
    return dataclasses.replace(records, triples={s: t for s, t in records.triples.items() if s in wanted})


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
