"""``GET /v1/jobs`` shows a client only its own jobs (issue 13): each job records a digest of the key
that submitted it (never the key), and listing, reading and cancelling filter by the caller's key."""

from __future__ import annotations

import pytest

from .conftest import API_KEYS, GOOD_KEY

pytestmark = pytest.mark.usefixtures("zoo_models")

OTHER_KEY = next(k for k in API_KEYS.split(",") if k != GOOD_KEY)
READ_KEY = "test-read-only-key-5555555555"


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def body(name: str) -> dict:
    return {"entities": [{"name": name}], "domain": "zoo"}


def test_each_key_lists_reads_and_cancels_only_its_own_jobs(production):
    client = production(api_read_keys=READ_KEY)
    mine = [client.post("/v1/jobs", json=body(f"m{i}"), headers=auth(GOOD_KEY)).json()["id"] for i in range(2)]
    theirs = client.post("/v1/jobs", json=body("t"), headers=auth(OTHER_KEY)).json()["id"]

    page = client.get("/v1/jobs", headers=auth(GOOD_KEY)).json()
    assert [j["id"] for j in page["items"]] == mine[::-1] and page["total"] == 2
    assert [j["id"] for j in client.get("/v1/jobs", headers=auth(OTHER_KEY)).json()["items"]] == [theirs]
    assert client.get("/v1/jobs", headers=auth(READ_KEY)).json()["total"] == 0  # submitted nothing

    assert client.get(f"/v1/jobs/{theirs}", headers=auth(GOOD_KEY)).status_code == 404
    assert client.get(f"/v1/jobs/{theirs}", headers=auth(OTHER_KEY)).status_code == 200
    assert client.post(f"/v1/jobs/{theirs}/cancel", headers=auth(GOOD_KEY)).status_code == 404
    assert client.get(f"/v1/jobs/{theirs}", headers=auth(OTHER_KEY)).json()["status"] == "queued"
    assert client.post(f"/v1/jobs/{mine[0]}/cancel", headers=auth(GOOD_KEY)).json()["status"] == "cancelled"


def test_the_store_keeps_a_digest_of_the_key_never_the_key(production):
    client = production()
    job_id = client.post("/v1/jobs", json=body("a"), headers=auth(GOOD_KEY)).json()["id"]
    jobs = client.app.state.services.jobs
    with jobs._tx(write=False) as conn:
        stored = conn.execute("SELECT client FROM jobs WHERE id=?", (job_id,)).fetchone()["client"]
    assert stored and GOOD_KEY not in stored and stored not in GOOD_KEY
    assert jobs.list(client=stored).total == 1


def test_without_keys_in_development_everyone_is_one_anonymous_client(make_client):
    client = make_client()
    ids = [client.post("/v1/jobs", json=body(f"e{i}")).json()["id"] for i in range(2)]
    assert [j["id"] for j in client.get("/v1/jobs").json()["items"]] == ids[::-1]
    assert client.get(f"/v1/jobs/{ids[0]}").status_code == 200
