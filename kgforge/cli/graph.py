"""``kgforge graph stats | export | wipe``: inspect the graph over Bolt."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import typer
from rich.table import Table

from kg_builder.store import GraphStore
from kgforge.cli.common import JsonOption, console, err_console, handle_errors, load_settings, print_json

app = typer.Typer(help="Inspect, export or wipe the graph.", no_args_is_help=True)


@app.command()
@handle_errors
def stats(json_out: bool = JsonOption) -> None:
    """Node counts per label and edge counts per type."""
    with GraphStore.from_settings(load_settings()) as store:
        counts = store.counts()
    if json_out:
        print_json(counts.model_dump())
        return
    table = Table(title=f"{counts.total_nodes:,} nodes, {counts.total_edges:,} edges")
    table.add_column("kind")
    table.add_column("label / type")
    table.add_column("count", justify="right")
    for label, n in sorted(counts.nodes.items()):
        table.add_row("nodes", label, f"{n:,}")
    for rel_type, n in sorted(counts.edges.items()):
        table.add_row("edges", rel_type, f"{n:,}")
    console.print(table)


@app.command()
@handle_errors
def export(out: Path | None = typer.Option(None, "--out", "-o", help="File to write (default: stdout)."),
           fmt: str = typer.Option("tsv", "--format", help="tsv (head, relation, tail, confidence) or jsonl.")) -> None:
    """Stream every triple with its confidence and provenance."""
    if fmt not in ("tsv", "jsonl"):
        raise typer.BadParameter("must be tsv or jsonl", param_hint="--format")
    sink = open(out, "w", encoding="utf-8", newline="") if out else sys.stdout
    n = 0
    try:
        with GraphStore.from_settings(load_settings()) as store:
            writer = csv.writer(sink, delimiter="\t", lineterminator="\n") if fmt == "tsv" else None
            for triple in store.export_triples():
                if writer:
                    writer.writerow([triple.head, triple.relation, triple.tail, triple.confidence])
                else:
                    sink.write(json.dumps(triple.model_dump()) + "\n")
                n += 1
    finally:
        if out:
            sink.close()
    err_console.print(f"exported {n:,} triples")


@app.command()
@handle_errors
def wipe(yes: bool = typer.Option(False, "--yes", help="Confirm: delete every node and edge.")) -> None:
    """Delete every node and edge of the graph."""
    if not yes:
        raise typer.BadParameter("pass --yes to delete the whole graph", param_hint="--yes")
    with GraphStore.from_settings(load_settings()) as store:
        deleted = store.wipe()
    console.print(f"deleted {deleted:,} nodes")
