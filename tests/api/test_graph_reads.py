"""``/v1/entities`` and ``/v1/relations`` against the real embedded graph database."""

from __future__ import annotations

import pytest

from .conftest import seed_graph
from .test_jobs import INJECTIONS

pytestmark = pytest.mark.integration


@pytest.fixture
def client(make_client, store):
    seed_graph(store)
    return make_client(graph=store)


def test_an_entity_with_its_neighbours_and_their_provenance(client):
    body = client.get("/v1/entities/zoo:cat").json()
    assert (
        body["node"]["id"] == "zoo:cat"
        and body["node"]["label"] == "Entity"
        and body["node"]["name"] == "cat"
    )
    assert body["node"]["properties"]["description"].startswith("The cat")
    by_tail = {(n["relation"], n["tail"]): n for n in body["neighbours"]}
    generated = by_tail[("lives_in", "zoo:farm")]
    assert generated["confidence"] == 0.42 and generated["sources"] == ["graph:structural-zoo"]
    assert generated["evidence"] == ["zoo:doc:cat"] and generated["job_id"] == "job-seed"
    assert generated["direction"] == "out" and generated["type"] == "LIVES_IN"
    assert body["neighbours"][0] == generated or body["neighbours"][0]["confidence"] >= 0.42  # by confidence
    assert ("eats", "zoo:fish") in by_tail and not body["has_more"]


def test_neighbour_pages_are_stable_and_complete(client):
    whole = client.get("/v1/entities/zoo:farm", params={"limit": 100}).json()["neighbours"]
    assert len(whole) == 4 and all(n["direction"] == "in" for n in whole)
    pages = [client.get("/v1/entities/zoo:farm", params={"limit": 3, "offset": o}).json() for o in (0, 3)]
    assert pages[0]["has_more"] and not pages[1]["has_more"]
    assert pages[0]["neighbours"] + pages[1]["neighbours"] == whole


def test_unknown_entities_and_bad_parameters(client):
    assert client.get("/v1/entities/zoo:unicorn").status_code == 404
    response = client.get("/v1/entities/zoo:cat", params={"label": "Person"})
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["query", "label"]
    assert client.get("/v1/entities/zoo:cat", params={"hops": 4}).status_code == 422
    assert client.get("/v1/entities", params={"name": ""}).status_code == 422
    assert client.get("/v1/entities").json()["detail"][0]["loc"] == ["query", "name"]


def test_find_by_name_folds_case_and_spacing(client):
    body = client.get("/v1/entities", params={"name": "  CAT ", "neighbours": 1}).json()
    assert [item["node"]["id"] for item in body["items"]] == ["zoo:cat"]
    assert len(body["items"][0]["neighbours"]) == 1 and body["items"][0]["has_more"]
    assert client.get("/v1/entities", params={"name": "unicorn"}).json()["items"] == []


def test_injection_strings_in_reads_are_data(client, store):
    before = store.counts()
    for text in INJECTIONS:
        assert client.get("/v1/entities", params={"name": text}).status_code == 200
        assert client.get(f"/v1/entities/{text}").status_code in (404, 422)
        assert client.get("/v1/entities/zoo:cat", params={"label": text}).status_code == 422
    assert store.counts() == before


def test_relation_pool(client):
    body = client.get("/v1/relations").json()
    assert body["total"] == 2
    assert {(r["name"], r["type"]) for r in body["items"]} == {("eats", "EATS"), ("lives_in", "LIVES_IN")}
    assert client.get("/v1/relations", params={"limit": 1, "offset": 1}).json()["items"] == body["items"][1:]


def test_an_unreachable_graph_is_503_not_500(make_client):
    client = make_client(graph_bolt_port=9)  # nothing listens there
    response = client.get("/v1/entities/zoo:cat")
    assert response.status_code == 503 and "kgforge db start" in response.json()["detail"]
