"""Fixtures for the graph-tool recipes: the session's embedded database (tests/conftest.py), a small
seeded graph, and a plain ``neo4j`` driver on it as an analyst would open one.

LangChain (``langchain-neo4j``) and ``neo4j-graphrag`` are not kgforge dependencies: their tests skip
unless they are importable. Run everything in their environment with::

    benchmarks/graphtools_env.sh test
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from neo4j import GraphDatabase

from kg_builder.graphdb import GraphStore, NodeWrite, TripleWrite
from kgforge.graph_tools import BoltTarget, bolt_target

ANIMALS = {"cat": ("fish", "house"), "dog": ("meat", "house"), "cow": ("grass", "farm")}


def seed(store: GraphStore) -> None:
    """Three animals, what they eat and where they live (Entity nodes, EATS / LIVES_IN edges)."""
    names = set(ANIMALS) | {x for pair in ANIMALS.values() for x in pair}
    store.upsert_nodes(NodeWrite(label="Entity", id=f"zoo:{n}", name=n, props={"domain": "zoo"}) for n in sorted(names))
    store.upsert_triples(
        [TripleWrite(f"zoo:{a}", "eats", f"zoo:{f}", confidence=0.9, sources=("test",)) for a, (f, _) in ANIMALS.items()]
        + [TripleWrite(f"zoo:{a}", "lives_in", f"zoo:{h}", confidence=0.8, sources=("test",))
           for a, (_, h) in ANIMALS.items()])


@pytest.fixture
def seeded(store: GraphStore) -> GraphStore:
    seed(store)
    return store


@pytest.fixture(scope="session")
def target(db_settings) -> BoltTarget:
    return bolt_target(db_settings)


@pytest.fixture
def driver(target: BoltTarget) -> Iterator:
    with GraphDatabase.driver(target.uri, auth=target.auth) as driver:
        yield driver
