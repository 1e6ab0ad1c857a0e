"""``POST /v1/jobs`` with the product graph's job kinds: ``kind`` and entity ``label`` are checked
(422 naming the field), a c2c or titles job needs a product domain (422 naming ``kind``), a c2c job
its trained C2C model (409 naming the command); an accepted job shows its kind."""

from __future__ import annotations

import product_shop
import pytest

from kg_builder.ingest import import_dataset
from kg_builder.models.saved import model_dir
from kg_builder.products.c2c_model import train_c2c
from kg_builder.settings import Settings

pytestmark = pytest.mark.integration


def post(client, **body):
    return client.post("/v1/jobs", json={"domain": product_shop.DOMAIN, "entities": [{"id": product_shop.PRINTERS}],
                                         **body})


def test_an_unknown_kind_or_label_gets_422_naming_the_field(make_client, store):
    client = make_client(graph=store)
    response = post(client, kind="summaries")
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", "kind"]
    response = post(client, kind="c2c", entities=[{"name": "Printers", "label": "Shelf"}])
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][-1] == "label", response.text
    response = post(client, entities=[{"description": "no name, no id"}])
    assert response.status_code == 422 and "name or its id" in response.text


def test_kind_needs_a_product_domain_and_c2c_its_model(make_client, store, tmp_path):
    client = make_client(graph=store)
    response = client.post("/v1/jobs", json={"domain": "umls", "kind": "titles", "entities": [{"name": "virus"}]})
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", "kind"]
    response = post(client, kind="c2c")
    assert response.status_code == 409 and "`kgforge train c2c --dataset amazon14_office`" in response.json()["detail"]
    assert client.get("/v1/jobs").json()["total"] == 0


def test_accepted_product_jobs_show_their_kind(make_client, store, tmp_path):
    import_dataset(store, product_shop.tiny_office())
    train_c2c(product_shop.tiny_office()).save(model_dir(Settings(home=tmp_path / "home"), "c2c-amazon14_office"))
    client = make_client(graph=store)
    for kind, entity in (("c2c", {"id": product_shop.PRINTERS}), ("titles", {"id": "amazon:B001", "label": "Item"})):
        response = post(client, kind=kind, entities=[entity])
        assert response.status_code == 202, response.text
        job = client.get(response.json()["url"]).json()
        assert job["kind"] == kind and job["status"] == "queued"


def test_entities_by_name_find_items_brands_and_categories(make_client, store):
    import_dataset(store, product_shop.tiny_office())
    client = make_client(graph=store)
    found = client.get("/v1/entities", params={"name": "hp"}).json()["items"]
    assert [(e["node"]["id"], e["node"]["label"]) for e in found] == [("amazon14_office:brand:2", "Brand")]
    assert any(n["relation"] == "has brand" for n in found[0]["neighbours"])
    title = "Epson Photo Paper Glossy Photo Paper Epson"
    item = client.get("/v1/entities", params={"name": title.upper(), "domain": "amazon14_office"}).json()["items"]
    assert [e["node"]["id"] for e in item] == ["amazon:B004"]
    assert client.get("/v1/entities", params={"name": title, "domain": "umls"}).json()["items"] == []
    assert client.get("/v1/entities", params={"name": "hp", "label": "Shelf"}).status_code == 422
