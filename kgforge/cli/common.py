"""Helpers shared by the command modules: settings from options, error reporting, progress bars."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from kg_builder.errors import KGForgeError
from kg_builder.settings import Settings

console = Console()
err_console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])

DataDirOption = typer.Option(None, "--data-dir", help="Folder with the datasets (default: KGFORGE_DATA_DIR).")
JsonOption = typer.Option(False, "--json", help="Print one JSON object instead of a table.")


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment with CLI overrides; invalid values exit with the field named."""
    try:
        base = Settings()
    except ValidationError as e:
        fail(f"invalid KGFORGE_* setting: {e}")
    data = {k: v for k, v in overrides.items() if v is not None}
    if not data:
        return base
    try:
        return Settings.model_validate({**base.model_dump(), **data})
    except ValidationError as e:
        fail(f"invalid option: {e}")


def fail(message: str, code: int = 1) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def handle_errors(func: F) -> F:
    """Turn kgforge's own errors into a one-line message and exit code 1 (no traceback)."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except KGForgeError as e:
            fail(str(e))

    return wrapper  # type: ignore[return-value]


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


_COLUMNS = (TextColumn("{task.description:<16}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TimeRemainingColumn())


class RichImportProgress:
    """An ImportProgress that draws one bar per phase."""

    def __init__(self, progress: Progress):
        self._progress = progress
        self._task: Any = None

    def phase(self, name: str, total: int) -> None:
        if self._task is not None:
            self._progress.update(self._task, completed=self._progress.tasks[self._task].total)
        self._task = self._progress.add_task(name, total=total)

    def advance(self, n: int) -> None:
        self._progress.advance(self._task, n)


@contextmanager
def progress_bars() -> Iterator[RichImportProgress]:
    with Progress(*_COLUMNS, console=err_console, transient=False) as progress:
        yield RichImportProgress(progress)


@contextmanager
def training_progress(unit: str) -> Iterator[Callable[[int, int, float], None]]:
    """A bar on stderr for training loops; yields ``update(done, total, loss)``."""
    with Progress(console=err_console, transient=True) as bars:
        task = bars.add_task(unit, total=None)

        def update(done: int, total: int, loss: float) -> None:
            bars.update(task, completed=done, total=total, description=f"{unit} {done}/{total} loss {loss:.3f}")

        yield update


@contextmanager
def step_progress() -> Iterator[Callable[[int, int, str], None]]:
    """A bar on stderr for per-entity work; yields ``update(done, total, label)``."""
    with Progress(*_COLUMNS, console=err_console, transient=True) as bars:
        tasks: dict[str, Any] = {}

        def update(done: int, total: int, label: str) -> None:
            if label not in tasks:
                tasks[label] = bars.add_task(label, total=total)
            bars.update(tasks[label], completed=done, total=total)

        yield update


def resolve_data_dir(settings: Settings, data_dir: Path | None) -> Path:
    return (data_dir or settings.data_dir).expanduser().resolve()
