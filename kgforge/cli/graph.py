"""``kgforge graph stats | export | wipe``: inspect the graph over Bolt."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import typer
from rich.table import Table

from kg_builder.graphdb import GraphStore
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
def node(
    key: str = typer.Argument(..., help="A node id (umls:virus) or, with --name, a name."),
    by_name: bool = typer.Option(False, "--name", help="Look the node up by (normalised) name."),
    label: str = typer.Option("Entity", help="Label for --name lookups."),
    hops: int = typer.Option(1, min=1, max=3, help="Neighbourhood depth."),
    limit: int = typer.Option(25, min=1, max=10_000, help="At most this many edges."),
    json_out: bool = JsonOption,
) -> None:
    """Show one node with its properties and the edges around it (confidence, provenance)."""
    with GraphStore.from_settings(load_settings()) as store:
        if by_name:
            found = store.find_nodes_by_name(key, label=label, limit=1)
            found_node = found[0] if found else None
        else:
            found_node = store.get_node(key)
        if found_node is None:
            raise typer.BadParameter(f"no node {key!r}", param_hint="KEY")
        edges = store.neighbourhood(found_node.id, found_node.label, hops=hops, limit=limit)
    if json_out:
        print_json({"node": found_node.model_dump(), "edges": [e.model_dump() for e in edges]})
        return
    props = found_node.properties
    console.print(f"[bold]{found_node.label}[/] {found_node.id}: {props.get('name', '')}")
    if props.get("description"):
        console.print(f"  {str(props['description'])[:300]}")
    table = Table(title=f"{len(edges)} edges within {hops} hop(s)")
    for col in ("head", "relation", "tail", "confidence", "sources"):
        table.add_column(col)
    for edge in edges:
        table.add_row(edge.head, str(edge.properties.get("relation", edge.type)), edge.tail,
                      f"{edge.properties.get('confidence', float('nan')):.2f}",
                      ", ".join(edge.properties.get("sources") or []))
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
