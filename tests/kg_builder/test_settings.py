import pytest
from pydantic import ValidationError

from kg_builder.errors import ConfigError
from kg_builder.settings import Settings


def test_reads_kgforge_variables(monkeypatch, tmp_path):
    monkeypatch.setenv("KGFORGE_HOME", str(tmp_path))
    monkeypatch.setenv("KGFORGE_GRAPH_BOLT_PORT", "17999")
    monkeypatch.setenv("KGFORGE_LLM_BASE_URL", "")  # empty means unset (compose passes empty values)
    settings = Settings()
    assert settings.home == tmp_path.resolve()
    assert settings.bolt_uri == "bolt://127.0.0.1:17999"
    assert settings.llm_base_url is None and settings.embedded


def test_invalid_port_names_the_field(monkeypatch):
    monkeypatch.setenv("KGFORGE_GRAPH_BOLT_PORT", "99999")
    with pytest.raises(ValidationError, match="graph_bolt_port"):
        Settings()


@pytest.mark.parametrize("secret", ["changeme", "neo4j", "Password"])
def test_placeholder_secrets_are_refused_outside_development(secret):
    with pytest.raises(ValidationError, match="placeholder"):
        Settings(env="production", graph_password=secret)
    assert Settings(env="development", graph_password=secret).resolved_graph_password() == secret


def test_missing_password_says_what_to_do(tmp_path):
    settings = Settings(home=tmp_path, graph_password=None)
    with pytest.raises(ConfigError, match="kgforge db start"):
        settings.resolved_graph_password()
    external = Settings(home=tmp_path, graph_uri="bolt://neo4j:7687", graph_password="s3cret-value")
    assert not external.embedded and external.bolt_uri == "bolt://neo4j:7687"


def test_service_settings_read_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("KGFORGE_HOME", str(tmp_path))
    monkeypatch.setenv("KGFORGE_API_KEYS", " key-one-abc , ,key-two-def ")
    monkeypatch.setenv("KGFORGE_MAX_ENTITIES_PER_JOB", "7")
    monkeypatch.setenv("KGFORGE_BROKER_URL", "")  # empty = unset: the embedded broker
    settings = Settings()
    assert settings.api_key_list() == ["key-one-abc", "key-two-def"]
    assert settings.max_entities_per_job == 7 and settings.job_batch_size == 5 and settings.api_port == 8000
    assert settings.jobs_db_path == tmp_path.resolve() / "jobs.sqlite3"
    assert settings.resolved_broker_url() == f"redis+socket://{tmp_path.resolve()}/broker/redis.sock"
    monkeypatch.setenv("KGFORGE_BROKER_URL", "redis://redis:6379/0")
    assert Settings().resolved_broker_url() == "redis://redis:6379/0"
