"""``/v1/embeddings``: sets, vectors, batches, similar nodes and search (by vector and by text),
against sets saved under the app's temporary home with the real MiniLM encoder."""

from __future__ import annotations

import numpy as np
import pytest

from api.routers.embeddings import MAX_BATCH
from gnn.store import EmbeddingSet, EmbeddingStore

ANIMALS = ["zoo:cat", "zoo:dog", "zoo:cow", "zoo:horse", "zoo:goat", "zoo:fish/salmon"]
TEXTS = {
    "zoo:cat": "a small cat that purrs and chases mice",
    "zoo:dog": "a loyal dog that barks and fetches sticks",
    "zoo:cow": "a cow grazing grass on the farm, giving milk",
    "amazon:B00TNNWMXI": "cordless power drill with lithium battery",
    "amazon:B010Y25PQC": "stainless steel measuring tape, 25 feet",
    "umls:virus": "a virus infects cells and replicates inside them",
}


@pytest.fixture(scope="module")
def encoder():
    from kg_builder.models.encoder import TextEncoder

    return TextEncoder()


@pytest.fixture
def api(make_client, tmp_path, encoder):
    """A client whose home holds `animals` (8 dims, 2 versions), `text` (MiniLM, 384 dims) and
    `projected` (16 dims with a text projection)."""
    store = EmbeddingStore(root=tmp_path / "home" / "embeddings")
    rng = np.random.default_rng(0)
    store.save(EmbeddingSet.create("animals", rng.standard_normal((6, 8)), ANIMALS, model="hgt", domain="zoo"))
    vectors = np.eye(6, 8, dtype=np.float32) + 0.05 * rng.standard_normal((6, 8)).astype(np.float32)
    vectors[1] = vectors[0] + 0.01  # the dog is the cat's nearest neighbour
    animals = store.save(EmbeddingSet.create("animals", vectors, ANIMALS, model="hgt", domain="zoo"))
    encoded = encoder.encode(list(TEXTS.values()))
    store.save(EmbeddingSet.create("text", encoded, list(TEXTS), model="minilm"))
    projection = rng.standard_normal((384, 16)).astype(np.float32)
    store.save(EmbeddingSet.create("projected", encoded @ projection, list(TEXTS), model="hgt",
                                   text_projection=projection))
    client = make_client()
    client.app.state.services.encoder = encoder
    client.animals = animals
    return client


def test_list_sets(api):
    body = api.get("/v1/embeddings").json()
    got = {(s["name"], s["version"]): s for s in body["items"]}
    assert set(got) == {("animals", 1), ("animals", 2), ("text", 1), ("projected", 1)}
    assert got[("text", 1)]["dimension"] == 384 and got[("animals", 2)]["count"] == 6
    assert got[("projected", 1)]["text_projection"] is True


def test_get_vector_by_node_id_with_colon_and_slash(api):
    response = api.get("/v1/embeddings/animals/zoo:fish/salmon")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["version"] == 2 and body["node_id"] == "zoo:fish/salmon"
    np.testing.assert_allclose(body["vector"], api.animals.vectors[5], rtol=1e-6)
    assert api.get("/v1/embeddings/animals/zoo:cat?version=1").json()["version"] == 1


def test_unknown_set_version_or_node_is_404_naming_it(api):
    response = api.get("/v1/embeddings/plants/zoo:cat")
    assert response.status_code == 404 and "'plants'" in response.json()["detail"]
    response = api.get("/v1/embeddings/animals/zoo:unicorn")
    assert response.status_code == 404
    assert "'zoo:unicorn'" in response.json()["detail"] and "'animals'" in response.json()["detail"]
    response = api.get("/v1/embeddings/animals/zoo:cat?version=9")
    assert response.status_code == 404 and "version 9" in response.json()["detail"]
    assert api.get("/v1/embeddings/animals/zoo:unicorn/similar").status_code == 404
    assert api.post("/v1/embeddings/plants/batch", json={"node_ids": ["zoo:cat"]}).status_code == 404
    assert api.post("/v1/embeddings/plants/search", json={"vector": [0.0] * 8}).status_code == 404


def test_batch_returns_vectors_in_order_and_lists_missing(api):
    response = api.post("/v1/embeddings/animals/batch", json={"node_ids": ["zoo:goat", "zoo:unicorn", "zoo:cat"]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert [i["node_id"] for i in body["items"]] == ["zoo:goat", "zoo:cat"] and body["missing"] == ["zoo:unicorn"]
    np.testing.assert_allclose(body["items"][1]["vector"], api.animals.vectors[0], rtol=1e-6)


def test_batch_over_the_limit_is_422_naming_node_ids(api):
    response = api.post("/v1/embeddings/animals/batch", json={"node_ids": ["zoo:cat"] * (MAX_BATCH + 1)})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "node_ids"]


def test_similar_excludes_the_node_itself(api):
    response = api.get("/v1/embeddings/animals/zoo:cat/similar?k=3")
    assert response.status_code == 200, response.text
    body = response.json()
    ids = [i["node_id"] for i in body["items"]]
    assert len(ids) == 3 and "zoo:cat" not in ids and ids[0] == "zoo:dog"
    assert body["index"] == "exact" and body["node_id"] == "zoo:cat"
    assert api.get("/v1/embeddings/animals/zoo:cat/similar?k=0").status_code == 422


def test_search_by_vector_and_wrong_dimension(api):
    response = api.post("/v1/embeddings/animals/search", json={"vector": api.animals.vectors[3].tolist(), "k": 2})
    assert response.status_code == 200, response.text
    assert response.json()["items"][0]["node_id"] == "zoo:horse"
    assert response.json()["items"][0]["score"] == pytest.approx(1.0, abs=1e-5)
    response = api.post("/v1/embeddings/animals/search", json={"vector": [0.1] * 7})
    assert response.status_code == 422
    detail = response.json()["detail"][0]
    assert detail["loc"] == ["body", "vector"] and "dimension 8" in detail["msg"]
    both = api.post("/v1/embeddings/animals/search", json={"vector": [0.1] * 8, "text": "cat"})
    assert both.status_code == 422


def test_search_by_text_in_the_encoder_space_and_through_a_projection(api):
    for name in ("text", "projected"):
        response = api.post(f"/v1/embeddings/{name}/search", json={"text": "an electric drill for screws", "k": 3})
        assert response.status_code == 200, response.text
        assert response.json()["items"][0]["node_id"] == "amazon:B00TNNWMXI", name
        assert response.json()["query"] == "text"


def test_search_by_text_is_422_when_the_set_has_no_text_space(api):
    response = api.post("/v1/embeddings/animals/search", json={"text": "a cat"})
    assert response.status_code == 422
    detail = response.json()["detail"][0]
    assert detail["loc"] == ["body", "text"] and "dimension 8" in detail["msg"] and "projection" in detail["msg"]


def test_invalid_set_name_is_422(api):
    response = api.get("/v1/embeddings/.hidden/zoo:cat")
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["path", "set"]
