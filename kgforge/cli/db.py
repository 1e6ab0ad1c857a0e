"""``kgforge db start | stop | status``: the embedded graph database."""

from __future__ import annotations

import typer

from kg_builder.graphdb.embedded import EmbeddedDatabase
from kgforge.cli.common import JsonOption, console, handle_errors, load_settings, print_json

app = typer.Typer(help="Run the embedded graph database (ArcadeDB with Bolt) under KGFORGE_HOME.",
                  no_args_is_help=True)


def _database(bolt_port: int | None, http_port: int | None) -> EmbeddedDatabase:
    return EmbeddedDatabase(load_settings(graph_bolt_port=bolt_port, graph_http_port=http_port))


BoltPort = typer.Option(None, "--bolt-port", help="Bolt port (default: KGFORGE_GRAPH_BOLT_PORT or 7687).")
HttpPort = typer.Option(None, "--http-port", help="HTTP port (default: KGFORGE_GRAPH_HTTP_PORT or 2480).")


@app.command()
@handle_errors
def start(bolt_port: int | None = BoltPort, http_port: int | None = HttpPort,
          timeout: float = typer.Option(120.0, help="Seconds to wait for Bolt to answer.")) -> None:
    """Start the database in the background and wait until Bolt answers."""
    db = _database(bolt_port, http_port)
    with console.status("starting the embedded graph database ..."):
        status = db.start(timeout=timeout)
    console.print(f"[green]started[/] pid {status.pid}: {status.bolt_uri} database {status.database!r} "
                  f"(data in {status.home})")


@app.command()
@handle_errors
def stop(timeout: float = typer.Option(60.0, help="Seconds to wait before killing it.")) -> None:
    """Stop the database cleanly."""
    db = _database(None, None)
    if db.stop(timeout=timeout):
        console.print("[green]stopped[/]")
    else:
        console.print("not running")


@app.command()
@handle_errors
def status(json_out: bool = JsonOption) -> None:
    """Say whether the database runs and answers; exit code 0 when it answers, 3 otherwise."""
    info = _database(None, None).status()
    if json_out:
        print_json(info.as_dict())
    elif info.running:
        state = "[green]answering[/]" if info.answering else "[yellow]not answering[/]"
        console.print(f"running (pid {info.pid}) {state} on {info.bolt_uri}, database {info.database!r}, "
                      f"data in {info.home}")
    else:
        console.print(f"not running (data in {info.home})")
    raise typer.Exit(0 if info.answering else 3)
