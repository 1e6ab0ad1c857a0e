"""``POST /v1/documents``: documents reach the domain's retriever, namespaced ``api:``, stored apart
from the trained utility model (``KGFORGE_HOME/documents/<domain>``) so retraining keeps them."""

from __future__ import annotations

import shutil

import pytest

from kg_builder.models.encoder import TextEncoder
from kg_builder.retrieval.corpus import corpus_from_dataset
from kg_builder.retrieval.documents import posted_documents_dir
from kg_builder.retrieval.hybrid import HybridRetriever
from kg_builder.retrieval.saved_utility import RETRIEVER_DIR, load_utility, save_utility, utility_model_dir
from kg_builder.retrieval.utility import train_utility_reranker
from kg_builder.settings import Settings

from .conftest import tiny_zoo
from .test_jobs import INJECTIONS


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    return TextEncoder()


@pytest.fixture(scope="module")
def zoo_reranker(encoder):
    """A tiny utility model (retriever + reranker) for the zoo."""
    dataset = tiny_zoo()
    retriever = HybridRetriever.build(corpus_from_dataset(dataset), encoder)
    return train_utility_reranker(dataset=dataset, retriever=retriever, test_fraction=0.3, seed=0).reranker


@pytest.fixture(scope="module")
def utility_home(tmp_path_factory, zoo_reranker):
    """A home with the zoo's utility model saved; tests copy it."""
    home = tmp_path_factory.mktemp("utility-home")
    save_utility(Settings(home=home), "zoo", zoo_reranker)
    return home


@pytest.fixture
def client(make_client, utility_home, tmp_path, encoder):
    shutil.copytree(utility_home / "models", tmp_path / "home" / "models")
    client = make_client()
    client.app.state.services.encoder = encoder
    return client


def test_documents_become_retrievable_under_api_ids(client, encoder, tmp_path):
    settings = client.app.state.services.settings
    before = len(load_utility(settings, "zoo", encoder).retriever.corpus)
    body = {
        "domain": "zoo",
        "documents": [
            {
                "id": "okapi-1",
                "title": "Okapi",
                "text": "The okapi is a forest giraffe that eats leaves.",
                "entity_id": "zoo:okapi",
            },
            {"id": "api:quote", "text": INJECTIONS[0]},
        ],
    }
    response = client.post("/v1/documents", json=body)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["added"] == ["api:okapi-1", "api:quote"] and result["corpus_size"] == before + 2

    retriever = load_utility(settings, "zoo", encoder).retriever
    assert retriever.run("forest giraffe okapi", k=1).doc_ids == ["api:okapi-1"]
    assert (
        retriever.corpus.get("api:quote").text == INJECTIONS[0]
        and retriever.corpus.get("api:quote").source == "api"
    )

    again = client.post("/v1/documents", json=body).json()
    assert again["added"] == [] and again["unchanged"] == 2 and again["corpus_size"] == before + 2
    body["documents"][0]["text"] = "The okapi lives in the rainforest."
    assert client.post("/v1/documents", json=body).json()["replaced"] == ["api:okapi-1"]


def test_posted_documents_stay_out_of_the_model_folder_and_survive_retraining(client, encoder, zoo_reranker):
    settings = client.app.state.services.settings
    body = {"domain": "zoo", "documents": [{"id": "okapi", "text": "The okapi is a forest giraffe."}]}
    assert client.post("/v1/documents", json=body).status_code == 200
    trained = HybridRetriever.load(utility_model_dir(settings, "zoo") / RETRIEVER_DIR, encoder)
    assert "api:okapi" not in trained.corpus
    assert (posted_documents_dir(settings, "zoo") / "corpus").is_dir()

    save_utility(settings, "zoo", zoo_reranker)  # retraining replaces the model folder whole
    retriever = load_utility(settings, "zoo", encoder).retriever
    assert retriever.run("forest giraffe okapi", k=1).doc_ids == ["api:okapi"]
    assert len(retriever.corpus) == len(zoo_reranker.retriever.corpus) + 1


def test_a_dataset_document_cannot_be_replaced(client, encoder):
    settings = client.app.state.services.settings
    response = client.post(
        "/v1/documents", json={"domain": "zoo", "documents": [{"id": "zoo:doc:cat", "text": "x"}]}
    )
    assert response.json()["added"] == ["api:zoo:doc:cat"]
    assert (
        load_utility(settings, "zoo", encoder).retriever.corpus.get("zoo:doc:cat").text.startswith("The cat")
    )


def test_a_domain_without_a_model_is_409_naming_the_command(client):
    response = client.post(
        "/v1/documents", json={"domain": "wn18rr", "documents": [{"id": "1", "text": "t"}]}
    )
    assert (
        response.status_code == 409 and "kgforge train utility --dataset wn18rr" in response.json()["detail"]
    )


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"id": " ", "text": "t"}, "id"),
        ({"id": "1", "text": "   "}, "text"),
        ({"id": "1"}, "text"),
        ({"id": "1", "text": "t", "source": "x"}, "source"),
    ],
)
def test_bad_documents_name_the_field(client, document, field):
    response = client.post("/v1/documents", json={"domain": "zoo", "documents": [document]})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "documents", 0, field]
