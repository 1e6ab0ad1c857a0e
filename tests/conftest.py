"""Session fixtures: a real embedded ArcadeDB over Bolt, and a store wiped before every test.

The database is started exactly as ``kgforge db start`` starts it (EmbeddedDatabase), on free
ports under a temporary KGFORGE_HOME, once per test session.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kg_builder.settings import Settings
from kg_builder.store import GraphStore
from kg_builder.store.embedded import EmbeddedDatabase, free_port

REPO = Path(__file__).resolve().parent.parent
# Shared test helpers (tests/ is not a package under --import-mode=importlib): `import kgforge_zoo`.
sys.path.insert(0, str(Path(__file__).resolve().parent / "support"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`slow` and `gpu` tests are skipped unless selected with -m (e.g. `pytest -m slow`)."""
    selected = config.getoption("-m") or ""
    for item in items:
        for marker in ("slow", "gpu"):
            if marker in item.keywords and marker not in selected:
                item.add_marker(pytest.mark.skip(reason=f"{marker} test: run with -m {marker}"))



def shared_data_dir() -> Path:
    return Path(os.environ.get("KGFORGE_DATA_DIR", REPO.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = shared_data_dir()
    if not (path / "kg").is_dir():
        pytest.skip(f"real datasets not found in {path} (set KGFORGE_DATA_DIR to the shared data folder)")
    return path


@pytest.fixture(scope="session")
def zoo_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A KGFORGE_HOME with every model the zoo's jobs need (``kgforge_zoo.train_models``), once per session."""
    import kgforge_zoo

    return kgforge_zoo.train_models(tmp_path_factory.mktemp("zoo-home"))


@pytest.fixture(scope="session")
def db_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Settings of a real embedded database started for this test session."""
    home = tmp_path_factory.mktemp("kgforge-home")
    settings = Settings(home=home, graph_bolt_port=free_port(), graph_http_port=free_port(), graph_heap="2g",
                        graph_password=None, graph_uri=None)
    db = EmbeddedDatabase(settings)
    db.start(timeout=180)
    try:
        yield settings
    finally:
        db.stop()


@pytest.fixture(scope="session")
def db_env(db_settings: Settings) -> dict[str, str]:
    """Environment that points a `kgforge` subprocess at the session database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KGFORGE_")}
    env.update({
        "KGFORGE_HOME": str(db_settings.home),
        "KGFORGE_GRAPH_BOLT_PORT": str(db_settings.graph_bolt_port),
        "KGFORGE_GRAPH_HTTP_PORT": str(db_settings.graph_http_port),
        "KGFORGE_DATA_DIR": str(shared_data_dir()),
    })
    return env


@pytest.fixture(scope="session")
def _session_store(db_settings: Settings) -> Iterator[GraphStore]:
    store = GraphStore.from_settings(db_settings)
    store.setup_schema()
    yield store
    store.close()


@pytest.fixture
def store(_session_store: GraphStore) -> GraphStore:
    """The session database, wiped before the test (schema kept)."""
    _session_store.wipe()
    _session_store.batch_size = 2000
    return _session_store
