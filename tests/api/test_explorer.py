"""The explorer's page, assets and reads (``/explorer``, ``/v1/explorer/...``) and the job status's
``explorer_url``, against the real embedded graph database. The page in a real browser:
test_explorer_browser.py."""

from __future__ import annotations

import re

import pytest

from kg_builder.jobs.models import JobSubmission
from kg_builder.pipeline import PipelineOptions, SourceEntity
from kg_builder.retrieval.corpus import Corpus, Document
from kg_builder.retrieval.documents import posted_documents_dir

from .conftest import seed_graph

pytestmark = pytest.mark.integration


@pytest.fixture
def client(make_client, store):
    seed_graph(store)
    return make_client(graph=store)


def test_the_page_and_its_assets_are_served_from_the_package(client):
    page = client.get("/explorer")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    # nothing from a CDN (the inline `data:,` favicon keeps the browser from asking for /favicon.ico)
    assert sources and all(s.startswith(("/explorer", "data:")) for s in sources), sources
    for asset in [s for s in sources if s.startswith("/explorer/static/")]:
        response = client.get(asset)
        assert response.status_code == 200 and len(response.content) > 500, asset
    library = client.get("/explorer/static/vendor/vis-network.min.js")
    assert library.headers["content-type"].startswith("text/javascript") and "vis-network" in library.text[:300]
    assert "sourceMappingURL" not in library.text[-300:]
    assert "Apache License" in client.get("/explorer/static/vendor/LICENSE-APACHE-2.0").text
    for outside in ("../routers/explorer.py", "vendor/../../../main.py", "index.html", "nothing.js"):
        assert client.get(f"/explorer/static/{outside}").status_code == 404, outside


def test_nodes_by_id_give_names_and_skip_unknown_ids(client):
    body = client.get("/v1/explorer/nodes", params=[("id", "zoo:cat"), ("id", "zoo:farm"), ("id", "zoo:unicorn")]).json()
    assert [(n["id"], n["name"], n["label"]) for n in body["items"]] == [("zoo:cat", "cat", "Entity"),
                                                                          ("zoo:farm", "farm", "Entity")]
    only_items = client.get("/v1/explorer/nodes", params={"id": "zoo:cat", "label": "Item"}).json()
    assert only_items["items"] == []
    bad = client.get("/v1/explorer/nodes", params={"id": "zoo:cat", "label": "Person"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "label"]
    assert client.get("/v1/explorer/nodes").status_code == 422


def test_a_jobs_edges_with_their_provenance(client, store):
    body = client.get("/v1/explorer/jobs/job-seed/edges").json()
    assert not body["truncated"] and len(body["edges"]) == 1
    edge = body["edges"][0]
    assert (edge["head"], edge["relation"], edge["tail"]) == ("zoo:cat", "lives_in", "zoo:farm")
    assert edge["confidence"] == 0.42 and edge["sources"] == ["graph:structural-zoo"]
    assert edge["evidence"] == ["zoo:doc:cat"] and edge["job_id"] == "job-seed"
    assert {n["id"] for n in body["nodes"]} == {"zoo:cat", "zoo:farm"}
    assert client.get("/v1/explorer/jobs/no-such-job/edges").json()["edges"] == []
    assert client.get("/v1/explorer/jobs/job-seed/edges", params={"limit": 0}).status_code == 422


def test_evidence_documents_from_node_descriptions_and_posted_corpora(client, make_client, tmp_path):
    doc = client.get("/v1/explorer/documents/zoo:doc:cat").json()
    assert doc["found_in"] == "node description" and doc["text"].startswith("The cat is an animal")
    assert client.get("/v1/explorer/documents/zoo:doc:unicorn").status_code == 404
    # A posted document (KGFORGE_HOME/documents/<domain>/corpus) is found by id, with ?domain=.
    folder = posted_documents_dir(client.app.state.services.settings, "zoo") / "corpus"
    Corpus([Document(id="api:note-1", text="Cats like farms too.", title="A note", source="api")]).save(folder)
    posted = client.get("/v1/explorer/documents/api:note-1", params={"domain": "zoo"}).json()
    assert posted["found_in"] == "posted" and posted["text"] == "Cats like farms too." and posted["title"] == "A note"
    assert client.get("/v1/explorer/documents/api:note-1").status_code == 404  # the api domain has none
    bad = client.get("/v1/explorer/documents/zoo:x", params={"domain": "../etc"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"][-1] == "domain"


def test_the_job_status_links_to_the_explorer(client):
    job = client.app.state.services.jobs.create(JobSubmission(
        entities=[SourceEntity(name="cat")], domain="zoo", options=PipelineOptions(generators=["graph"])))
    body = client.get(f"/v1/jobs/{job.id}").json()
    assert body["explorer_url"] == f"/explorer?job={job.id}"
    assert client.get(body["explorer_url"]).status_code == 200
