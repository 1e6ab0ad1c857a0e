"""``kgforge models status``: every saved model and embedding set, what it was trained on, and how
stale it is now that jobs have written more triples.

For each model folder under ``KGFORGE_HOME/models``: its kind, domain, the graph state it recorded
when it was trained (``trained_on`` in ``config.json``: training triples, entities, the graph's
training-edge count and newest edge time when it was trained from the graph) and the number of
training triples the domain's graph holds beyond that (one bounded count query per domain, through
the domain index: :func:`kg_builder.training.graph_state.domain_graph_state`). Models of kinds that
do not record their state yet show "not recorded". For each embedding set (latest version): its
domain, node count and how many nodes of its labels the domain holds now beyond it.

``kgforge train structural --resume`` brings a stale structural model up to date. Without a
running graph database the listing still prints, with the staleness unknown.
"""

from __future__ import annotations

import typer
from rich.table import Table

from kgforge.cli.common import JsonOption, console, err_console, handle_errors, load_settings, print_json

app = typer.Typer(help="Saved models and embedding sets: what they were trained on, and how stale they are.",
                  no_args_is_help=True)


@app.command("status")
@handle_errors
def status_command(
    graph: bool = typer.Option(True, "--graph/--no-graph", help="Count the domains' triples in the graph "
                                                                "(--no-graph: list only)."),
    json_out: bool = JsonOption,
) -> None:
    """List each saved model and embedding set with its trained-on state and staleness."""
    from kg_builder.errors import KGForgeError
    from kg_builder.training.graph_state import domain_graph_state, embedding_set_status, saved_models, staleness

    settings = load_settings()
    models = saved_models(settings)
    store = None
    graph_error = None
    now: dict[str, dict | None] = {}
    if graph:
        from kg_builder.graphdb import GraphStore

        try:
            store = GraphStore.from_settings(settings, max_transaction_retry_time=2)
            for domain in sorted({m["domain"] for m in models if m["domain"] and m["trained_on"]}):
                now[domain] = domain_graph_state(store, domain)
        except KGForgeError as e:
            graph_error = str(e)
            if store is not None:
                store.close()
            store = None
    try:
        for m in models:
            m.update(staleness(m["trained_on"], now.get(m["domain"]) if m["trained_on"] else None))
            if m["trained_on"] and graph_error:
                m["compared"] = "graph unavailable"
            m["graph_now"] = now.get(m["domain"])
        sets = embedding_set_status(settings, store)
    finally:
        if store is not None:
            store.close()
    if json_out:
        print_json({"models": models, "embedding_sets": sets, "graph_error": graph_error})
        return
    table = Table(title=f"{len(models)} saved model(s)")
    for column in ("model", "kind", "domain", "trained on", "graph now", "stale"):
        table.add_column(column, overflow="fold")
    for m in models:
        t = m["trained_on"]
        trained = (f"{t['triples']} triples, {t['entities']} entities ({t['source']}"
                   + (f", {t['graph']['edges']} graph edges" if t.get("graph") else "") + f", {t.get('at', '?')})"
                   if t else "not recorded")
        graph_now = f"{m['graph_now']['edges']} edges" if m.get("graph_now") else "-"
        if m["stale"] is None:
            stale = "unknown" if t else "-"
        else:
            stale = f"yes, +{m['new_triples']} triples" if m["stale"] else f"no ({m['new_triples']:+d})"
        table.add_row(m["name"], m["kind"] or "?", m["domain"] or "?", trained, graph_now, stale)
    console.print(table)
    if sets:
        table = Table(title=f"{len(sets)} embedding set(s) (latest versions)")
        for column in ("set", "v", "model", "domain", "nodes", "nodes now", "missing", "new job edges"):
            table.add_column(column, overflow="fold")
        for s in sets:
            table.add_row(s["name"], str(s["version"]), s["model"], s["domain"] or "?", str(s["nodes"]),
                          "-" if s["nodes_now"] is None else str(s["nodes_now"]),
                          "-" if s["missing_nodes"] is None else str(s["missing_nodes"]),
                          "-" if s["new_job_edges"] is None else str(s["new_job_edges"]))
        console.print(table)
        if any(s["new_job_edges"] for s in sets):
            console.print("sets with new job edges: `kgforge embed refresh NAME` takes them in without training")
    if graph_error:
        err_console.print(f"[yellow]graph unavailable, staleness unknown:[/] {graph_error}")
