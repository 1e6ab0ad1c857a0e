"""The API sets up the graph schema at service start on a server database (Neo4j in compose), not
only on import; the embedded database gets it from `kgforge db start` / import as before."""

from __future__ import annotations

import threading

from fastapi.testclient import TestClient

import api.main
from kg_builder.settings import Settings


def _started(monkeypatch, tmp_path, **overrides) -> bool:
    called = threading.Event()
    monkeypatch.setattr(api.main, "_setup_graph_schema", lambda services: called.set())
    settings = Settings(home=tmp_path, env="development", **overrides)
    with TestClient(api.main.create_app(settings)):
        return called.wait(timeout=5)


def test_schema_is_set_up_at_start_on_a_server_database(monkeypatch, tmp_path):
    assert _started(monkeypatch, tmp_path, graph_uri="bolt://127.0.0.1:1", graph_password="not-used-here")


def test_embedded_mode_does_not_run_it_at_api_start(monkeypatch, tmp_path):
    assert not _started(monkeypatch, tmp_path, graph_uri=None)


def test_an_unreachable_database_does_not_stop_the_api(tmp_path, caplog):
    settings = Settings(home=tmp_path, env="development", graph_uri="bolt://127.0.0.1:1", graph_password="x" * 12)
    services = api.main.Services(settings)
    api.main._setup_graph_schema(services)  # logs, never raises
    assert "graph schema not set up at start" in caplog.text
