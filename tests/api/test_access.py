"""Issue 13, API hardening: read-only and read+write keys on every route (``/metrics`` and the docs
included, unless opened by a setting), and per-key rate limits (429 with ``Retry-After``)."""

from __future__ import annotations

import re

import pytest

from api.ratelimit import RateLimiter
from .conftest import API_KEYS, GOOD_KEY, seed_graph
from .test_jobs import job_body

READ_KEY = "test-read-only-key-5551234567"
READS = ["/v1/entities/zoo:cat", "/v1/entities?name=cat", "/v1/relations", "/v1/jobs", "/v1/embeddings",
         "/metrics", "/openapi.json", "/docs", "/redoc"]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def prod(production, store):
    seed_graph(store)

    def make(**overrides):
        return production(graph=store, api_read_keys=READ_KEY, **overrides)

    return make


@pytest.mark.integration
def test_reads_need_a_read_or_write_key_in_production(prod):
    client = prod()
    for path in READS:
        missing = client.get(path)
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer", path
        assert client.get(path, headers=bearer("not-a-key")).status_code == 403, path
        assert client.get(path, headers={"Authorization": f"Basic {READ_KEY}"}).status_code == 401, path
        assert client.get(path, headers=bearer(READ_KEY)).status_code == 200, path
        assert client.get(path, headers=bearer(GOOD_KEY)).status_code == 200, path
    for path in ("/healthz", "/readyz"):  # probes stay open (readyz is 503 here: the broker is a stand-in)
        assert client.get(path).status_code in (200, 503), path


@pytest.mark.integration
def test_writes_need_a_write_key_a_read_key_gets_403(prod, zoo_models):
    client = prod()
    refused = client.post("/v1/jobs", json=job_body("sheep"), headers=bearer(READ_KEY))
    assert refused.status_code == 403 and "read-only" in refused.json()["detail"]
    assert client.post("/v1/jobs", json=job_body("sheep"), headers=bearer(GOOD_KEY)).status_code == 202
    documents = {"domain": "zoo", "documents": [{"id": "1", "text": "t"}]}
    assert client.post("/v1/documents", json=documents, headers=bearer(READ_KEY)).status_code == 403


@pytest.mark.integration
def test_open_docs_and_open_metrics_settings(prod):
    client = prod(open_docs=True, open_metrics=True)
    for path in ("/metrics", "/openapi.json", "/docs", "/redoc"):
        assert client.get(path).status_code == 200, path
    assert "kgforge_http_requests_total" in client.get("/metrics").text
    assert client.get("/v1/relations").status_code == 401  # the API itself stays closed
    only_docs = prod(open_docs=True)
    assert only_docs.get("/openapi.json").status_code == 200 and only_docs.get("/metrics").status_code == 401


def test_development_without_keys_is_open_and_with_keys_is_checked(make_client, zoo_models):
    open_app = make_client()
    for path in ("/v1/jobs", "/metrics", "/openapi.json", "/docs"):
        assert open_app.get(path).status_code == 200, path
    assert open_app.post("/v1/jobs", json=job_body("a")).status_code == 202
    read_only = make_client(api_read_keys=READ_KEY)  # any key configured: keys are checked
    assert read_only.get("/v1/jobs").status_code == 401
    assert read_only.get("/v1/jobs", headers=bearer(READ_KEY)).status_code == 200
    assert read_only.post("/v1/jobs", json=job_body("a"), headers=bearer(READ_KEY)).status_code == 403


def test_every_route_but_the_probes_is_behind_a_key(production):
    """Router-level protection: a route added by any router (now or later) is checked by default."""
    client = production()
    operations = [(method.upper(), path) for path, item in client.app.openapi()["paths"].items()
                  for method in item if path not in ("/healthz", "/readyz")]
    operations += [("GET", path) for path in ("/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc")]
    assert len(operations) >= 15
    for method, path in operations:
        response = client.request(method, re.sub(r"\{[^}]+\}", "x", path))
        assert response.status_code == 401, f"{method} {path} answered {response.status_code} without a key"


def test_a_placeholder_read_key_is_refused_in_production(tmp_path):
    from pydantic import ValidationError

    from kg_builder.settings import Settings

    with pytest.raises(ValidationError, match="placeholder"):
        Settings(home=tmp_path, env="production", api_keys=GOOD_KEY, api_read_keys="changeme")


# --- rate limits --------------------------------------------------------------------------------

def test_token_bucket_spends_refills_and_caps():
    now = [100.0]
    limiter = RateLimiter(2.0, 3, clock=lambda: now[0])
    assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("a") == pytest.approx(0.5)  # empty: one token back after 1/rate s
    assert limiter.take("b") == 0.0  # another client has its own bucket
    now[0] += 0.5
    assert limiter.take("a") == 0.0 and limiter.take("a") > 0
    now[0] += 60
    assert [limiter.take("a") for _ in range(4)][-1] > 0  # refilled to the burst, not beyond
    assert RateLimiter(0, 1).take("a") == 0.0  # rate 0: no limit
    small = RateLimiter(1.0, 1, clock=lambda: now[0], max_buckets=2)
    small.take("x"), small.take("y"), small.take("z")
    assert len(small._buckets) == 2


def test_past_the_limit_429_with_retry_after_per_key(production):
    client = production(api_read_keys=READ_KEY, rate_limit_per_s=0.2, rate_limit_burst=3)
    assert [client.get("/v1/jobs", headers=bearer(GOOD_KEY)).status_code for _ in range(3)] == [200] * 3
    limited = client.get("/v1/jobs", headers=bearer(GOOD_KEY))
    assert limited.status_code == 429 and "KGFORGE_RATE_LIMIT_PER_S" in limited.json()["detail"]
    assert int(limited.headers["retry-after"]) in (4, 5)  # 1 / 0.2 s, rounded up to whole seconds
    assert client.post("/v1/jobs", json=job_body("a"), headers=bearer(GOOD_KEY)).status_code == 429  # writes too
    assert client.get("/v1/jobs", headers=bearer(READ_KEY)).status_code == 200  # another key, another bucket
    assert client.get("/healthz").status_code == 200  # probes take no token
    # Without an accepted key the bucket is the client address's: wrong keys spend it as well.
    assert [client.get("/v1/jobs", headers=bearer(f"guess-{i}")).status_code for i in range(4)] == [403] * 3 + [429]
    assert client.get("/v1/jobs").status_code == 429


def test_a_write_spends_one_token_not_two(production, zoo_models):
    client = production(rate_limit_per_s=0.01, rate_limit_burst=2)
    body = job_body("a")
    assert client.post("/v1/jobs", json=body, headers=bearer(GOOD_KEY)).status_code == 202
    assert client.post("/v1/jobs", json=body, headers=bearer(GOOD_KEY)).status_code == 202
    assert client.post("/v1/jobs", json=body, headers=bearer(GOOD_KEY)).status_code == 429


def test_keys_in_settings_are_split_like_write_keys(tmp_path):
    from kg_builder.settings import Settings

    settings = Settings(home=tmp_path, api_keys=API_KEYS, api_read_keys=f" {READ_KEY}, ,r2 ")
    assert settings.api_read_key_list() == [READ_KEY, "r2"] and len(settings.api_key_list()) == 2
