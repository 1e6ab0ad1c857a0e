"""NaN, infinities, lone surrogates and NUL characters get 422 naming the field, never 500 (before
issue 9 several of these requests got 500: the validation handler could not serialise its own error)."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.usefixtures("zoo_models")

HEADERS = {"content-type": "application/json"}


def raw_job(name: str = '"cat"', options: str = "{}", domain: str = '"zoo"') -> bytes:
    return f'{{"entities": [{{"name": {name}}}], "domain": {domain}, "options": {options}}}'.encode()


@pytest.mark.parametrize(
    ("raw", "loc", "words"),
    [
        (raw_job(options='{"keep_fraction": NaN}'), ["body", "options", "keep_fraction"], "finite"),
        (raw_job(options='{"relation_threshold": Infinity}'), ["body", "options", "relation_threshold"], "finite"),
        (raw_job(options='{"keep_fraction": -Infinity}'), ["body", "options", "keep_fraction"], "finite"),
        (raw_job(options='{"keep_fraction": 1e999}'), ["body", "options", "keep_fraction"], "finite"),
        (raw_job(name='"\\ud800"'), ["body", "entities", 0, "name"], "lone surrogate"),
        (raw_job(name='"cat\\udfff dog"'), ["body", "entities", 0, "name"], "lone surrogate"),
        (raw_job(domain='"zo\\ud800o"'), ["body", "domain"], "lone surrogate"),
        (raw_job(name='"cat\\u0000"'), ["body", "entities", 0, "name"], "nul"),
        (raw_job(options='{"relations": ["eats", "a\\u0000b"]}'), ["body", "options", "relations", 1], "nul"),
        (raw_job(options='{"\\ud800": 1}'), ["body", "options", "\\ud800"], "field name"),
    ],
)
def test_bad_values_in_a_job_get_422_naming_the_field(make_client, raw, loc, words):
    client = make_client()
    response = client.post("/v1/jobs", content=raw, headers=HEADERS)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert detail[0]["loc"] == loc and words in detail[0]["msg"].lower(), detail
    assert client.get("/v1/jobs").json()["total"] == 0
    # without a content type the body is checked all the same
    assert client.post("/v1/jobs", content=raw).status_code == 422


def test_bad_values_in_documents_and_queries_get_422(make_client):
    client = make_client()
    doc = b'{"domain": "zoo", "documents": [{"id": "d1", "text": "half a pair \\udc80 here"}]}'
    response = client.post("/v1/documents", content=doc, headers=HEADERS)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "documents", 0, "text"]
    nul = client.get("/v1/entities", params={"name": "cat\x00"})
    assert nul.status_code == 422 and nul.json()["detail"][0]["loc"] == ["query", "name"]


def test_the_validation_handler_serialises_what_it_echoes(make_client):
    # A request the hygiene check does not see (a form body) still gets a JSON 422, not a 500.
    client = make_client()
    response = client.post("/v1/jobs", content=b"entities=nan", headers={"content-type": "text/plain"})
    assert response.status_code == 422
    from api.hygiene import json_safe

    assert json.dumps(json_safe({"x": float("nan"), "y": "\ud800", "z": [float("-inf")]}), allow_nan=False) == \
        '{"x": "nan", "y": "\\\\ud800", "z": ["-inf"]}'


def test_good_values_still_pass(make_client):
    client = make_client()
    ok = raw_job(name='"caf\\u00e9 \\ud83d\\ude00"', options='{"keep_fraction": 0.5}')  # a valid surrogate pair
    response = client.post("/v1/jobs", content=ok, headers=HEADERS)
    assert response.status_code == 202, response.text
    job = client.get(f"/v1/jobs/{response.json()['id']}").json()
    assert job["entities"][0]["name"] == "café 😀"
