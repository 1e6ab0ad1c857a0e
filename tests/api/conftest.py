"""API fixtures: apps built with ``create_app(settings)`` for a temporary home, a recording stand-in
for the Celery app (the broker path is tested in tests/workers), the session's real graph database,
and a tiny graph to browse."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from kg_builder.datasets import Dataset, EntityRecord, RelationRecord, TripleRecord
from kg_builder.ingest import import_dataset
from kg_builder.settings import Settings
from kg_builder.graphdb import GraphStore, TripleWrite

API_KEYS = "test-key-alpha-0123456789,test-key-beta-9876543210"
GOOD_KEY = "test-key-beta-9876543210"


class RecordingCelery:
    """Stands in for the Celery app: records what would be enqueued (or fails like a dead broker)."""

    def __init__(self, fail: bool = False):
        self.sent: list[tuple[str, list[Any]]] = []
        self.fail = fail

    def send_task(self, name: str, args: list[Any] | None = None, **options: Any) -> None:
        if self.fail:
            raise ConnectionError("Error 111 connecting to redis:6379. Connection refused.")
        self.sent.append((name, list(args or [])))


def tiny_zoo() -> Dataset:
    animals = {
        "cat": ("fish", "house"),
        "dog": ("meat", "house"),
        "cow": ("grass", "farm"),
        "horse": ("hay", "farm"),
        "goat": ("hay", "farm"),
    }
    entities = [
        EntityRecord(a, a, f"The {a} is an animal that eats {f} and lives in the {h}.")
        for a, (f, h) in animals.items()
    ]
    entities += [EntityRecord(t, t, f"The {t}.") for t in ("fish", "meat", "grass", "hay", "house", "farm")]
    triples = [TripleRecord(a, "eats", f) for a, (f, _) in animals.items()]
    triples += [TripleRecord(a, "lives_in", h) for a, (_, h) in animals.items()]
    return Dataset(
        name="zoo",
        kind="kg",
        entities=entities,
        relations=[RelationRecord("eats", "eats (food)"), RelationRecord("lives_in", "lives in (place)")],
        triples={"train": triples},
    )


def seed_graph(store: GraphStore) -> None:
    """The tiny zoo, plus one generated edge with provenance (what a job writes)."""
    import_dataset(store, tiny_zoo())
    store.upsert_triples(
        [
            TripleWrite(
                "zoo:cat",
                "lives_in",
                "zoo:farm",
                confidence=0.42,
                sources=("graph:structural-zoo",),
                evidence=("zoo:doc:cat",),
                job_id="job-seed",
            )
        ]
    )


@pytest.fixture
def zoo_models(tmp_path, zoo_home) -> Path:
    """The session's trained zoo models under the apps' home (hard links: fast, and a document post
    replaces the retriever folder instead of writing into the shared files), so that submit-time
    checks accept jobs for ``zoo``."""
    home = tmp_path / "home"
    shutil.copytree(zoo_home / "models", home / "models", copy_function=os.link)
    return home


@pytest.fixture
def make_client(tmp_path) -> Iterator[Callable[..., TestClient]]:
    """``make_client(graph=store, celery=..., **settings)`` -> a TestClient of a fresh app."""
    clients = []

    def make(*, graph: GraphStore | None = None, celery: Any = None, **overrides: Any) -> TestClient:
        values = {
            "home": tmp_path / "home",
            "env": "development",
            "graph_password": "dev-only-password",
            **overrides,
        }
        app = create_app(Settings(**values))
        app.state.services.celery = celery if celery is not None else RecordingCelery()
        if graph is not None:
            app.state.services.graph = graph
        client = TestClient(app, raise_server_exceptions=False)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def production(make_client) -> Callable[..., TestClient]:
    def make(**overrides: Any) -> TestClient:
        return make_client(
            env="production", api_keys=API_KEYS, graph_password="a-real-secret-Zq81", **overrides
        )

    return make
