"""The one settings object, read from ``KGFORGE_*`` environment variables.

Both runtime modes (embedded and compose) read the same fields; only the values differ.

Secrets: the graph password has no default. In embedded mode kgforge generates one on the first
``kgforge db start`` and keeps it in ``KGFORGE_HOME/db/root_password`` (mode 0600); when
``KGFORGE_GRAPH_PASSWORD`` is set it wins. Outside development mode (``KGFORGE_ENV`` other than
``development``) a placeholder password such as ``changeme`` is refused.
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

    # Broker and LLM (used by the service and the pipeline; see their issues).
    broker_url: str | None = None
    llm_base_url: str | None = None
    llm_model: str | None = None
    llm_api_key: SecretStr | None = None
    encoder_path: Path | None = None

    @field_validator("home", "data_dir", mode="after")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @model_validator(mode="after")
    def _no_placeholder_secrets(self) -> "Settings":
        if self.env != "development" and self.graph_password is not None:
            if self.graph_password.get_secret_value().lower() in PLACEHOLDER_SECRETS:
                raise ValueError(
                    "KGFORGE_GRAPH_PASSWORD is a placeholder; set a real secret outside development"
                )
        return self

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
