"""Session fixtures: a real embedded ArcadeDB over Bolt, and a store wiped before every test; the
session's tiny trained zoo models (``zoo_home``); the OpenAI-compatible TEST DOUBLE (``double``,
``make_llm``: a real HTTP server on loopback that answers from a script; it is not a model).

The database is started exactly as ``kgforge db start`` starts it (EmbeddedDatabase), on free
ports under a temporary KGFORGE_HOME, once per test session.
"""

from __future__ import annotations

import os
import random
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kg_builder.settings import Settings
from kg_builder.graphdb import GraphStore
from kg_builder.graphdb.embedded import EmbeddedDatabase, free_port

REPO = Path(__file__).resolve().parent.parent
# Shared test helpers (tests/ is not a package under --import-mode=importlib): `import kgforge_zoo`.
sys.path.insert(0, str(Path(__file__).resolve().parent / "support"))

from openai_double import OpenAIDouble  # noqa: E402  (TEST DOUBLE of an OpenAI-compatible server)

from kg_builder.llm import OpenAICompatibleLLM  # noqa: E402


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


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """One torch thread: on a shared 2-core machine two threads were 3-4x slower (oversubscription)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


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


# --- the LLM test double -------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loopback traffic must reach the double, never a proxy from the environment."""
    for var in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "OPENAI_BASE_URL",
        "OPENAI_API_BASE",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture
def double() -> Iterator[OpenAIDouble]:
    """A fresh test double per test (starting one takes milliseconds; nothing is shared)."""
    with OpenAIDouble() as d:
        yield d


@pytest.fixture
def make_llm(double: OpenAIDouble) -> Iterator[Callable[..., OpenAICompatibleLLM]]:
    """Build a client for the double with fast, seeded backoff; options override the defaults."""
    made: list[OpenAICompatibleLLM] = []

    def make(**options) -> OpenAICompatibleLLM:
        kwargs = {
            "base_url": double.base_url,
            "model": double.model,
            "timeout": 2.0,
            "max_retries": 2,
            "max_output_retries": 1,
            "max_concurrency": 4,
            "backoff_base": 0.01,
            "backoff_max": 0.05,
            "rng": random.Random(0),
        }
        kwargs.update(options)
        llm = OpenAICompatibleLLM(**kwargs)
        made.append(llm)
        return llm

    yield make
    for llm in made:
        llm.close()
