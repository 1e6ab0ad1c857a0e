"""Issue 13: 2- and 3-hop neighbourhood reads take smaller pages (422 naming the field past the
bound) and run under a time limit (503 past ``KGFORGE_GRAPH_READ_TIMEOUT_S``), against the real
embedded graph database holding a dense graph (every 3-hop path set is large)."""

from __future__ import annotations

import time

import pytest

from api.routers import entities
from kg_builder.datasets import Dataset, EntityRecord, RelationRecord, TripleRecord
from kg_builder.graphdb import GraphStore
from kg_builder.ingest import import_dataset

pytestmark = pytest.mark.integration
N = 24  # a clique: 276 edges, and 23 * 22 * 21 three-hop paths from every node


def dense_graph(store: GraphStore) -> None:
    names = [f"n{i:02d}" for i in range(N)]
    import_dataset(store, Dataset(
        name="dense", kind="kg",
        entities=[EntityRecord(n, n, f"node {n}") for n in names],
        relations=[RelationRecord("near", "near")],
        triples={"train": [TripleRecord(a, "near", b) for i, a in enumerate(names) for b in names[i + 1:]]},
    ))


@pytest.fixture
def dense(store, make_client):
    dense_graph(store)
    return lambda **settings: make_client(graph=store, **settings)


def test_deeper_reads_get_smaller_pages_422_naming_the_field(dense):
    client = dense()
    for hops, limit in ((2, 101), (3, 51)):
        response = client.get("/v1/entities/dense:n00", params={"hops": hops, "limit": limit})
        assert response.status_code == 422, (hops, limit)
        detail = response.json()["detail"][0]
        assert detail["loc"] == ["query", "limit"] and f"hops={hops}" in detail["msg"]
    past = client.get("/v1/entities/dense:n00", params={"hops": 3, "limit": 50, "offset": 151})
    assert past.status_code == 422 and past.json()["detail"][0]["loc"] == ["query", "offset"]
    assert client.get("/v1/entities/dense:n00", params={"hops": 1, "limit": 500}).status_code == 200


def test_a_bounded_three_hop_read(dense, store):
    client = dense()
    started = time.perf_counter()
    body = client.get("/v1/entities/dense:n00", params={"hops": 3, "limit": 50}).json()
    elapsed = time.perf_counter() - started
    assert len(body["neighbours"]) == 50 and body["has_more"]
    assert len({(n["head"], n["tail"]) for n in body["neighbours"]}) == 50  # distinct edges
    assert elapsed < 5  # the window (200 edges) bounds it; the whole 3-hop path set is ~10,000 paths
    last = client.get("/v1/entities/dense:n00", params={"hops": 3, "limit": 50, "offset": 150}).json()
    assert len(last["neighbours"]) == 50 and not last["has_more"]  # the end of the 200-edge window
    # The store was asked for at most the window, never the whole 3-hop neighbourhood.
    assert len(store.neighbourhood("dense:n00", hops=3, limit=entities.MAX_WINDOW[3])) == entities.MAX_WINDOW[3]


def test_a_deep_read_past_the_time_limit_gets_503(dense):
    # ArcadeDB ignores the Bolt transaction timeout, so this is the API's own deadline at work.
    client = dense(graph_read_timeout_s=0.001)
    response = client.get("/v1/entities/dense:n00", params={"hops": 3, "limit": 50})
    assert response.status_code == 503 and response.headers["retry-after"] == str(entities.RETRY_AFTER_S)
    assert "KGFORGE_GRAPH_READ_TIMEOUT_S" in response.json()["detail"]
    assert "3-hop" in response.json()["detail"]


def test_arcadedb_ignores_the_transaction_timeout(store):
    """Why the API keeps a deadline of its own: the server runs a read past its Bolt ``tx_timeout``.
    Should ArcadeDB start honouring it, this fails and the docs in api/routers/entities.py change."""
    dense_graph(store)
    edges = store.neighbourhood("dense:n00", hops=3, limit=200, timeout=0.000_001)
    assert len(edges) == 200


def test_one_hop_pages_are_ordered_on_the_server_and_complete(dense, store):
    from kg_builder.graphdb import TripleWrite

    # Imported edges have confidence 1.0; four generated ones of another type have less.
    store.upsert_triples([TripleWrite("dense:n00", "far", f"dense:n{i:02d}", confidence=c)
                          for i, c in ((5, 0.9), (9, 0.2), (17, 0.9), (3, 0.55))])
    client = dense()
    pages = [client.get("/v1/entities/dense:n00", params={"limit": 5, "offset": o}).json() for o in range(0, 30, 5)]
    got = [(n["confidence"], n["type"], n["head"], n["tail"]) for page in pages for n in page["neighbours"]]
    assert len(got) == N - 1 + 4 and len(set(got)) == len(got)  # every edge once across the pages
    assert got == sorted(got, key=lambda g: (-g[0], g[1], g[2], g[3]))
    assert [(g[0], g[3]) for g in got[-4:]] == [(0.9, "dense:n05"), (0.9, "dense:n17"), (0.55, "dense:n03"),
                                                (0.2, "dense:n09")]
    assert [p["has_more"] for p in pages] == [True] * 5 + [False]
