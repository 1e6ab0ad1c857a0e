"""GraphStore's bounded reads of one domain (what a job's snapshot uses), on the embedded database:
scoped to the domain by its indexed ``domain`` property, blind to an excluded job's writes, bounded
by their limits, and with the bad argument named."""

from __future__ import annotations

import pytest

from kg_builder.errors import InvalidInputError
from kg_builder.graphdb import NodeWrite, TripleWrite
from kg_builder.graphdb import schema

pytestmark = pytest.mark.integration


def entity(node_id: str, name: str, domain: str | None, job_id: str | None = None) -> NodeWrite:
    return NodeWrite(label="Entity", id=node_id, name=name, props={"domain": domain} if domain else {}, job_id=job_id)


@pytest.fixture
def two_domains(store):
    store.upsert_nodes([entity("a:x", "x", "a"), entity("a:y", "Y", "a"), entity("a:z", "z", "a"),
                        entity("b:y", "y", "b"), entity("kg:new", "new", None, job_id="job-1")])
    store.register_relations([("r", "r")], source="dataset:a")
    store.register_relations([("s", "s")], source="dataset:b")
    store.upsert_triples([TripleWrite("a:x", "r", "a:y"), TripleWrite("a:z", "r", "a:y"), TripleWrite("a:x", "r", "a:z"),
                          TripleWrite("a:x", "r", "b:y"), TripleWrite("b:y", "s", "a:x"),
                          TripleWrite("a:x", "r", "kg:new", job_id="job-1")])
    return store


def test_the_domain_index_is_part_of_the_schema(store):
    assert ("entity_domain", "Entity", "domain") in schema.PROPERTY_INDEXES
    store.setup_schema()  # idempotent with the index present
    store.upsert_nodes([entity("kg:plain", "plain", None)])  # a node without a domain is still writable
    assert store.get_node("kg:plain") is not None


def test_reads_stay_in_their_domain_and_skip_an_excluded_job(two_domains):
    store = two_domains
    assert sorted(r["id"] for r in store.domain_entities_by_ids("a", ["a:x", "b:y", "kg:new", "zz"])) == [
        "a:x", "kg:new"]
    assert store.domain_entities_by_ids("a", ["kg:new"], exclude_job="job-1") == []
    assert [r["id"] for r in store.domain_entities_by_names("a", ["  y "])] == ["a:y"]  # not b's y
    out = {(r["head"], r["relation"], r["id"]) for r in store.domain_edges("a", ["a:x"], direction="out")}
    assert out == {("a:x", "r", "a:y"), ("a:x", "r", "a:z"), ("a:x", "r", "kg:new")}
    out = {r["id"] for r in store.domain_edges("a", ["a:x"], direction="out", exclude_job="job-1")}
    assert out == {"a:y", "a:z"}
    assert [r["id"] for r in store.domain_edges("a", ["a:x"], direction="in")] == []  # b:y is b's
    assert [(r["tail"], r["count"]) for r in store.domain_relation_range("a", "r")] == [
        ("a:y", 2), ("a:z", 1), ("kg:new", 1)]
    assert [r["tail"] for r in store.domain_relation_range("a", "r", limit=1)] == ["a:y"]
    assert [r.name for r in store.domain_relation_pool("a")] == ["r"]
    assert sorted(r["id"] for r in store.domain_entities("a")) == ["a:x", "a:y", "a:z"]
    assert store.count_domain_entities("b") == 1


def test_bad_arguments_name_the_field(store):
    with pytest.raises(InvalidInputError) as err:
        store.domain_edges("a", ["a:x"], direction="both")
    assert err.value.field == "direction"
    with pytest.raises(InvalidInputError) as err:
        store.domain_entities_by_ids("a", [""])
    assert err.value.field == "id"
