"""Dependencies of the routes: settings, the lazily opened services, and the API-key check.

Nothing here connects at import or app-creation time: the job store, the graph driver, the Celery
app and the text encoder are opened on first use, so ``api.main`` imports (and ``/healthz``
answers) while the graph database and the broker are still down.
"""

from __future__ import annotations

import hmac
import threading
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from kg_builder.jobs import JobStore
from kg_builder.settings import Settings
from kg_builder.graphdb import GraphStore

GRAPH_CONNECT_TIMEOUT_S = 5.0
GRAPH_RETRY_S = 3.0


class Services:
    """What the routes use, each opened once per process on first use (and closed at shutdown).

    Tests may set an attribute (``app.state.services.celery = ...``) before the first request.
    """

    def __init__(self, settings: Settings):
        self.settings = settings
        self._lock = threading.Lock()
        self._made: dict[str, Any] = {}
        self._owned: set[str] = set()  # made here (and so closed here), not handed in

    def _once(self, name: str, factory: Callable[[], Any]) -> Any:
        if name not in self._made:
            with self._lock:
                if name not in self._made:
                    self._made[name] = factory()
                    self._owned.add(name)
        return self._made[name]

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("jobs", "graph", "celery", "encoder"):
            self._made[name] = value
        else:
            super().__setattr__(name, value)

    @property
    def jobs(self) -> JobStore:
        return self._once("jobs", lambda: JobStore.from_settings(self.settings))

    @property
    def graph(self) -> GraphStore:
        return self._once("graph", self._open_graph)

    def _open_graph(self) -> GraphStore:
        # Like GraphStore.from_settings, with shorter waits: a request should answer 503 within a
        # few seconds while the database is down, not after the workers' 30 s of retries.
        return GraphStore.from_settings(self.settings, connection_timeout=GRAPH_CONNECT_TIMEOUT_S,
                                        max_transaction_retry_time=GRAPH_RETRY_S)

    @property
    def celery(self) -> Any:
        from workers.app import create_celery

        return self._once("celery", lambda: create_celery(self.settings))

    @property
    def encoder(self) -> Any:
        from kg_builder.models.encoder import TextEncoder

        return self._once("encoder", lambda: TextEncoder(self.settings.encoder_path))

    def close(self) -> None:
        if "graph" in self._owned:
            self._made.pop("graph").close()
            self._owned.discard("graph")


def get_services(request: Request) -> Services:
    return request.app.state.services


def get_app_settings(request: Request) -> Settings:
    return request.app.state.services.settings


ServicesDep = Annotated[Services, Depends(get_services)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]

_bearer = HTTPBearer(auto_error=False, description="An API key from KGFORGE_API_KEYS.")


def require_api_key(
    settings: SettingsDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    """Writes need ``Authorization: Bearer KEY``: always outside development, and in development
    when ``KGFORGE_API_KEYS`` is set. 401 without a key, 403 with a wrong one."""
    keys = settings.api_key_list()
    if settings.env == "development" and not keys:
        return
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing API key: send `Authorization: Bearer KEY`",
            headers={"WWW-Authenticate": "Bearer"},
        )
    given = credentials.credentials.encode()
    if not any(hmac.compare_digest(given, key.encode()) for key in keys):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "API key not accepted")


WriteAccess = Depends(require_api_key)

__all__ = ["Services", "ServicesDep", "SettingsDep", "WriteAccess", "get_services", "require_api_key"]
