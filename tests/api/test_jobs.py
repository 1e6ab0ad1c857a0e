"""``/v1/jobs``: submit (202, persisted, enqueued by name), read, page, cancel; auth, limits and
validation errors that name the field; injection strings kept as data."""

from __future__ import annotations

import json

import pytest

from kg_builder.errors import ConfigError
from kg_builder.jobs import JobStatus

from .conftest import GOOD_KEY, RecordingCelery, seed_graph

# Jobs for `zoo` pass the submit-time model check with the session's trained zoo models.
pytestmark = pytest.mark.usefixtures("zoo_models")

INJECTIONS = [
    "Robert'); MATCH (n) DETACH DELETE n; //",
    "$rows",
    "{id: $id}) DETACH DELETE h //",
    "`Entity`:Label",
    "<script>alert(1)</script>",
    "' OR 1=1 --",
    'x" }) RETURN 1 //',
]


def job_body(*names: str, **extra):
    return {"entities": [{"name": n} for n in names], "domain": "zoo", **extra}


def test_submit_persists_enqueues_and_reads_back(make_client):
    client = make_client()
    response = client.post("/v1/jobs", json=job_body("sheep", "goat", options={"generators": ["graph"]}))
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    assert response.json()["status"] == "queued" and response.headers["location"] == f"/v1/jobs/{job_id}"
    assert client.app.state.services.celery.sent == [("kgforge.run_job", [job_id])]

    job = client.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "queued" and job["domain"] == "zoo"
    assert job["progress"] == {"total": 2, "done": 0, "failed": 0, "running": 0, "pending": 2}
    assert job["counts"] == {"generated": 0, "kept": 0, "new": 0, "merged": 0, "triples_written": 0}
    assert [e["name"] for e in job["entities"]] == ["sheep", "goat"]
    assert job["options"]["generators"] == ["graph"]
    assert client.get(f"/v1/jobs/{job_id}", params={"entities": False}).json()["entities"] is None
    assert client.get("/v1/jobs/no-such-job").status_code == 404


def test_jobs_survive_a_new_app_on_the_same_home(make_client):
    first = make_client()
    job_id = first.post("/v1/jobs", json=job_body("sheep")).json()["id"]
    second = make_client()  # an API restart: a new process on the same KGFORGE_HOME
    assert second.get(f"/v1/jobs/{job_id}").json()["status"] == "queued"


def test_paging(make_client):
    client = make_client()
    ids = [client.post("/v1/jobs", json=job_body(f"e{i}")).json()["id"] for i in range(5)]
    page = client.get("/v1/jobs", params={"limit": 2}).json()
    assert page["total"] == 5 and [j["id"] for j in page["items"]] == ids[::-1][:2]
    rest = client.get("/v1/jobs", params={"limit": 2, "offset": 4}).json()
    assert [j["id"] for j in rest["items"]] == ids[:1]
    for bad in ({"limit": 0}, {"limit": 501}, {"offset": -1}, {"offset": 10**30}, {"status": "done"}):
        response = client.get("/v1/jobs", params=bad)
        assert response.status_code == 422, bad
        assert response.json()["detail"][0]["loc"][-1] == next(iter(bad))


def test_cancel(make_client):
    client = make_client()
    job_id = client.post("/v1/jobs", json=job_body("sheep")).json()["id"]
    assert client.post(f"/v1/jobs/{job_id}/cancel").json()["status"] == "cancelled"
    assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 200  # idempotent
    assert client.post("/v1/jobs/nope/cancel").status_code == 404

    jobs = client.app.state.services.jobs
    running = client.post("/v1/jobs", json=job_body("sheep")).json()["id"]
    jobs.mark_running(running)
    body = client.post(f"/v1/jobs/{running}/cancel").json()
    assert body["status"] == "running" and body["cancel_requested"] is True

    done = client.post("/v1/jobs", json=job_body("sheep")).json()["id"]
    jobs.mark_running(done)
    jobs.entity_done(done, 0)
    jobs.finish(done)
    response = client.post(f"/v1/jobs/{done}/cancel")
    assert response.status_code == 409 and "already succeeded" in response.json()["detail"]


def test_writes_need_an_api_key_outside_development(production):
    client = production()
    body = job_body("sheep")
    missing = client.post("/v1/jobs", json=body)
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert (
        client.post("/v1/jobs", json=body, headers={"Authorization": "Bearer wrong-key"}).status_code == 403
    )
    assert (
        client.post("/v1/jobs", json=body, headers={"Authorization": f"Basic {GOOD_KEY}"}).status_code == 401
    )
    accepted = client.post("/v1/jobs", json=body, headers={"Authorization": f"Bearer {GOOD_KEY}"})
    assert accepted.status_code == 202
    job_id = accepted.json()["id"]
    assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 401
    assert (
        client.post(f"/v1/jobs/{job_id}/cancel", headers={"Authorization": "Bearer nope"}).status_code == 403
    )
    assert (
        client.post(
            "/v1/documents", json={"domain": "zoo", "documents": [{"id": "1", "text": "t"}]}
        ).status_code
        == 401
    )
    assert client.get(f"/v1/jobs/{job_id}").status_code == 401  # reads need a key too (issue 13)
    assert client.get(f"/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {GOOD_KEY}"}).status_code == 200


def test_production_refuses_to_start_without_real_keys(tmp_path):
    from pydantic import ValidationError

    from api.main import create_app
    from kg_builder.settings import Settings

    with pytest.raises(ConfigError, match="KGFORGE_API_KEYS"):
        create_app(Settings(home=tmp_path, env="production", graph_password="a-real-secret-Zq81"))
    with pytest.raises(ValidationError, match="placeholder"):
        Settings(home=tmp_path, env="production", api_keys="changeme")


def test_development_checks_keys_only_when_configured(make_client):
    client = make_client(api_keys=GOOD_KEY)
    assert client.post("/v1/jobs", json=job_body("a")).status_code == 401
    assert (
        client.post(
            "/v1/jobs", json=job_body("a"), headers={"Authorization": f"Bearer {GOOD_KEY}"}
        ).status_code
        == 202
    )


def test_an_oversized_body_gets_413(make_client):
    client = make_client(max_body_bytes=4096)
    big = job_body("sheep", options={"relations": ["r" * 100] * 60})
    assert len(json.dumps(big)) > 4096
    response = client.post("/v1/jobs", json=big)
    assert response.status_code == 413 and "4096" in response.json()["detail"]

    def chunks():  # no Content-Length: counted as it streams
        for _ in range(10):
            yield b" " * 1000

    assert (
        client.post("/v1/jobs", content=chunks(), headers={"content-type": "application/json"}).status_code
        == 413
    )
    assert client.post("/v1/jobs", json=job_body("ok")).status_code == 202


def test_too_many_entities_get_422_naming_the_field(make_client):
    client = make_client(max_entities_per_job=3)
    response = client.post("/v1/jobs", json=job_body("a", "b", "c", "d"))
    assert response.status_code == 422
    detail = response.json()["detail"][0]
    assert detail["loc"] == ["body", "entities"] and "at most 3 entities" in detail["msg"]
    assert client.post("/v1/jobs", json=job_body("a", "b", "c")).status_code == 202


@pytest.mark.parametrize(
    ("body", "loc", "words"),
    [
        (job_body(), ["body", "entities"], "at least 1"),
        ({"entities": [{"name": "a"}]}, ["body", "domain"], "required"),
        (job_body("a", domain="../etc"), ["body", "domain"], "pattern"),
        (job_body("!!!"), ["body", "entities", 0, "name"], "letters or digits"),
        (job_body("a", options={"generators": ["magic"]}), ["body", "options", "generators"], "choose from"),
        (
            job_body("a", options={"keep_fraction": 2}),
            ["body", "options", "keep_fraction"],
            "less than or equal",
        ),
        (job_body("a", options={"colour": "red"}), ["body", "options", "colour"], "not permitted"),
        (
            {"entities": [{"name": "a", "age": 3}], "domain": "zoo"},
            ["body", "entities", 0, "age"],
            "not permitted",
        ),
        ({"entities": "sheep", "domain": "zoo"}, ["body", "entities"], "list"),
    ],
)
def test_validation_errors_name_the_field_and_reason(make_client, body, loc, words):
    response = make_client().post("/v1/jobs", json=body)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert any(d["loc"] == loc and words in d["msg"].lower() + d["type"] for d in detail), detail


def test_malformed_json_is_a_422_not_a_500(make_client):
    client = make_client()
    response = client.post("/v1/jobs", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422


def test_injection_strings_are_stored_literally(make_client, store):
    seed_graph(store)
    client = make_client(graph=store)
    entities = [{"name": s, "type": s[:100], "description": s} for s in INJECTIONS]
    response = client.post("/v1/jobs", json={"entities": entities, "domain": "zoo"})
    assert response.status_code == 202, response.text
    job = client.get(f"/v1/jobs/{response.json()['id']}").json()
    assert [e["name"] for e in job["entities"]] == INJECTIONS
    stored = client.app.state.services.jobs.submission(job["id"])
    assert [(e.name, e.type, e.description) for e in stored.entities] == [(s, s[:100], s) for s in INJECTIONS]
    # as relation names they are checked against the relation pool (as data) and refused, naming the field
    refused = client.post("/v1/jobs", json={"entities": [{"name": "cat"}], "domain": "zoo",
                                            "options": {"relations": ["eats", *INJECTIONS]}})
    assert refused.status_code == 422, refused.text
    detail = refused.json()["detail"][0]
    assert detail["loc"] == ["body", "options", "relations"] and INJECTIONS[0] in detail["msg"]
    assert "'eats'" not in detail["msg"]
    assert store.counts().total_nodes > 0  # nothing was deleted


def test_a_job_that_cannot_be_enqueued_is_failed_and_answered_503(make_client):
    client = make_client(celery=RecordingCelery(fail=True))
    response = client.post("/v1/jobs", json=job_body("sheep"))
    assert response.status_code == 503 and response.headers["retry-after"]
    job = client.get(f"/v1/jobs/{response.json()['id']}").json()
    assert job["status"] == JobStatus.failed.value and "broker unreachable" in job["error"]
