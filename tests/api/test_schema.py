"""``GET /v1/schema`` against the real embedded graph database (the session's ArcadeDB over Bolt)."""

from __future__ import annotations

import pytest

from kg_builder.graphdb import TripleWrite
from kg_builder.graphdb.introspect import schema_text

from .conftest import seed_graph

pytestmark = pytest.mark.integration


@pytest.fixture
def client(make_client, store):
    seed_graph(store)
    return make_client(graph=store)


def _by(items, key):
    return {item[key]: item for item in items}


def test_labels_types_patterns_and_property_keys(client):
    body = client.get("/v1/schema").json()
    labels = _by(body["labels"], "label")
    assert labels["Entity"]["count"] == 11 and labels["Relation"]["count"] == 2
    entity_props = {p["property"]: p["type"] for p in labels["Entity"]["properties"]}
    assert entity_props["name"] == "STRING" and entity_props["id"] == "STRING"
    assert entity_props["aliases"] == "LIST" and entity_props["sources"] == "LIST"
    types = _by(body["relationship_types"], "type")
    assert types["EATS"]["count"] == 5 and types["LIVES_IN"]["count"] == 6
    assert types["EATS"]["patterns"] == [{"start": "Entity", "type": "EATS", "end": "Entity"}]
    lives_props = {p["property"]: p["type"] for p in types["LIVES_IN"]["properties"]}
    assert lives_props["confidence"] == "FLOAT" and lives_props["job_id"] == "STRING"
    assert {"start": "Entity", "type": "LIVES_IN", "end": "Entity"} in body["relationships"]
    assert "entity_id_unique" in {c["name"] for c in body["constraints"]}
    assert any(i["labelsOrTypes"] == ["Entity"] and i["properties"] == ["name_norm"] for i in body["indexes"])
    assert body["sample"] == 100 and body["truncated"] is False and body["database"]


def test_langchain_shape_is_the_structured_schema_dict(client):
    structured = client.get("/v1/schema", params={"format": "langchain"}).json()
    assert set(structured) == {"node_props", "rel_props", "relationships", "metadata"}
    assert set(structured["metadata"]) == {"constraint", "index"}
    # labels without nodes (ArcadeDB keeps types once created) are left out, as apoc.meta.data would
    assert "Entity" in structured["node_props"] and all(
        label in ("Entity", "Relation") for label in structured["node_props"])
    assert {"property": "name", "type": "STRING"} in structured["node_props"]["Entity"]
    assert {"property": "confidence", "type": "FLOAT"} in structured["rel_props"]["EATS"]
    assert sorted(structured["relationships"], key=lambda r: r["type"]) == [
        {"start": "Entity", "type": "EATS", "end": "Entity"},
        {"start": "Entity", "type": "LIVES_IN", "end": "Entity"},
    ]
    index = structured["metadata"]["index"]
    assert {"label": "Entity", "properties": ["name_norm"]}.items() <= next(
        i for i in index if i["label"] == "Entity" and i["properties"] == ["name_norm"]).items()


def test_text_format_is_the_prompt_text(client):
    response = client.get("/v1/schema", params={"format": "text"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert text.startswith("Node properties:\nEntity {") and "Relationship properties:" in text
    assert text.endswith("(:Entity)-[:EATS]->(:Entity)\n(:Entity)-[:LIVES_IN]->(:Entity)")
    assert text == schema_text(client.get("/v1/schema", params={"format": "langchain"}).json())


@pytest.mark.parametrize(("params", "field"), [
    ({"format": "xml"}, "format"), ({"sample": 0}, "sample"), ({"sample": 10_001}, "sample"),
    ({"refresh": "maybe"}, "refresh"),
])
def test_bad_parameters_get_422_naming_the_field(client, params, field):
    response = client.get("/v1/schema", params=params)
    assert response.status_code == 422
    assert field in str(response.json())


def test_cached_briefly_and_refresh_recomputes(client, store):
    first = client.get("/v1/schema", params={"format": "langchain"}).json()
    store.upsert_triples([TripleWrite("zoo:cat", "hunts", "zoo:fish", confidence=0.9, sources=("test",))])
    cached = client.get("/v1/schema", params={"format": "langchain"}).json()
    assert cached == first  # from the cache
    fresh = client.get("/v1/schema", params={"format": "langchain", "refresh": "true"}).json()
    assert {"start": "Entity", "type": "HUNTS", "end": "Entity"} in fresh["relationships"]
    # another sample size is another cache entry
    assert "HUNTS" in {t["type"] for t in client.get("/v1/schema", params={"sample": 7}).json()["relationship_types"]}


def test_sample_bounds_what_is_read_for_keys(client, store):
    # one node of the 11 has a key the others lack: a sample of 1 cannot see it, a full one does
    with store.driver.session(database=store.database) as session:
        session.run("MATCH (n:Entity) WHERE n.id = $id SET n.rare_key = 1.5", id="zoo:goat").consume()
    full = _by(client.get("/v1/schema", params={"sample": 1000}).json()["labels"], "label")["Entity"]
    assert {"property": "rare_key", "type": "FLOAT"} in full["properties"]
    one = _by(client.get("/v1/schema", params={"sample": 1}).json()["labels"], "label")["Entity"]
    assert one["count"] == 11 and len(one["properties"]) <= len(full["properties"])


def test_labels_that_are_not_identifiers_are_skipped_not_queried(client, store):
    # neo4j-graphrag writes __Entity__ / __KGBuilder__ labels; they never become Cypher text here
    with store.driver.session(database=store.database) as session:
        session.run("CREATE (:__Probe__ {id: 'x'})").consume()
    body = client.get("/v1/schema", params={"refresh": "true"}).json()
    assert "label '__Probe__'" in body["skipped"]
    assert "__Probe__" not in {label["label"] for label in body["labels"]}


def test_schema_needs_a_read_key_outside_development(production, store):
    client = production(graph=store)
    assert client.get("/v1/schema").status_code == 401
    assert client.get("/v1/schema", headers={"Authorization": "Bearer nope"}).status_code == 403


def test_graph_tools_fetches_the_structured_schema_over_http(tmp_path, store):
    """kgforge.graph_tools.fetch_structured_schema against a real uvicorn server with API keys."""
    import threading
    import time
    import urllib.error

    import uvicorn

    from api.main import create_app
    from kg_builder.graphdb.embedded import free_port
    from kg_builder.settings import Settings
    from kgforge.graph_tools import fetch_structured_schema

    from .conftest import API_KEYS, GOOD_KEY, RecordingCelery

    seed_graph(store)
    app = create_app(Settings(home=tmp_path / "home", env="development", api_keys=API_KEYS,
                              graph_password="dev-only-password", job_reaper_interval_s=0))
    app.state.services.graph = store
    app.state.services.celery = RecordingCelery()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
            time.sleep(0.05)
        structured = fetch_structured_schema(f"http://127.0.0.1:{port}", api_key=GOOD_KEY, sample=50)
        assert {"start": "Entity", "type": "EATS", "end": "Entity"} in structured["relationships"]
        assert set(structured) == {"node_props", "rel_props", "relationships", "metadata"}
        with pytest.raises(urllib.error.HTTPError) as refused:
            fetch_structured_schema(f"http://127.0.0.1:{port}")  # no key while keys are set
        assert refused.value.code == 401
    finally:
        server.should_exit = True
        thread.join(timeout=10)
