"""Dependencies of the routes: settings, the lazily opened services, the API-key checks and the rate limit.

Access (issue 13): ``KGFORGE_API_KEYS`` are read+write keys, ``KGFORGE_API_READ_KEYS`` read-only
keys. In development with neither set everything is open; otherwise (always in ``production`` and
``test``) every route behind :data:`ReadAccess` needs a read or write key and every write a write
key: 401 without a key (``WWW-Authenticate: Bearer``), 403 with a wrong key or a read-only key on a
write. ``api/main.py`` puts :data:`ReadAccess` on every router it includes except the health one,
so a new router is protected by default; ``/metrics`` and the docs (``/docs``, ``/redoc``,
``/openapi.json``) follow the same rule unless ``KGFORGE_OPEN_METRICS`` / ``KGFORGE_OPEN_DOCS``
open them; ``/healthz`` and ``/readyz`` are always open. Each checked request spends one token of
its key's (else its address's) rate-limit bucket first (``api/ratelimit.py``; 429 + ``Retry-After``).

Nothing here connects at import or app-creation time: the job store, the graph driver, the Celery
app and the text encoder are opened on first use, so ``api.main`` imports (and ``/healthz``
answers) while the graph database and the broker are still down.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.ratelimit import RateLimiter, retry_after
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


# The dependencies below are ``async def`` on purpose: they never block, and a plain ``def``
# dependency would cost each request a trip through the threadpool (issue 13: the read path).
async def get_services(request: Request) -> Services:
    return request.app.state.services


async def get_app_settings(request: Request) -> Settings:
    return request.app.state.services.settings


ServicesDep = Annotated[Services, Depends(get_services)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]

_bearer = HTTPBearer(auto_error=False, description="An API key from KGFORGE_API_KEYS (read+write) or "
                                                   "KGFORGE_API_READ_KEYS (read-only).")
CredentialsDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]

OPEN, READ, WRITE, NONE, INVALID = "open", "read", "write", "none", "invalid"


@dataclass(frozen=True)
class Caller:
    """Who sent a request: ``role`` is ``open`` (no keys configured, development), ``read`` or
    ``write`` (an accepted key), ``none`` (no key sent) or ``invalid`` (a key not accepted);
    ``key_id`` is a digest of the accepted key (never the key), ``bucket`` its rate-limit bucket."""

    role: str
    key_id: str | None
    bucket: str


def keys_enforced(settings: Settings) -> bool:
    """Keys are checked outside development always, and in development once any key is configured."""
    return settings.env != "development" or bool(settings.api_key_list() or settings.api_read_key_list())


def _key_id(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _match(given: bytes, keys: list[str]) -> str | None:
    found = None
    for key in keys:  # every key compared (constant time each), whichever matches
        if hmac.compare_digest(given, key.encode()):
            found = key
    return found


def _identify(request: Request, settings: Settings, credentials: HTTPAuthorizationCredentials | None) -> Caller:
    address = f"ip:{request.client.host if request.client else 'unknown'}"
    if not keys_enforced(settings):
        return Caller(OPEN, None, address)
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        return Caller(NONE, None, address)
    given = credentials.credentials.encode()
    for role, keys in ((WRITE, settings.api_key_list()), (READ, settings.api_read_key_list())):
        key = _match(given, keys)
        if key is not None:
            return Caller(role, _key_id(key), f"key:{_key_id(key)}")
    return Caller(INVALID, None, address)


def caller(request: Request, settings: Settings, credentials: HTTPAuthorizationCredentials | None) -> Caller:
    """The request's :class:`Caller`, after spending one rate-limit token of its bucket (once per
    request, however many access checks the route has); 429 with ``Retry-After`` when none is left."""
    known = getattr(request.state, "kgforge_caller", None)
    if known is not None:
        return known
    who = _identify(request, settings, credentials)
    limiter: RateLimiter | None = getattr(request.app.state, "rate_limiter", None)
    wait = limiter.take(who.bucket) if limiter is not None else 0.0
    if wait > 0:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"rate limit: {limiter.rate:g} requests/s, bursts of {limiter.burst:g} per API key "
            "(KGFORGE_RATE_LIMIT_PER_S, KGFORGE_RATE_LIMIT_BURST); retry after the Retry-After seconds",
            headers={"Retry-After": retry_after(wait)},
        )
    request.state.kgforge_caller = who
    return who


def _refuse(who: Caller, need: str) -> None:
    if who.role == NONE:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing API key: send `Authorization: Bearer KEY`",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if who.role == INVALID:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "API key not accepted")
    if need == WRITE and who.role == READ:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "read-only API key: writes need a key from KGFORGE_API_KEYS")


async def require_read(request: Request, settings: SettingsDep, credentials: CredentialsDep) -> Caller:
    """Reads need a read-only or read+write key whenever keys are enforced (:func:`keys_enforced`).
    401 without a key, 403 with a wrong one, 429 past the rate limit."""
    who = caller(request, settings, credentials)
    _refuse(who, READ)
    return who


async def require_api_key(request: Request, settings: SettingsDep, credentials: CredentialsDep) -> Caller:
    """Writes need a read+write key (``KGFORGE_API_KEYS``) whenever keys are enforced: 401 without a
    key, 403 with a wrong or read-only one, 429 past the rate limit."""
    who = caller(request, settings, credentials)
    _refuse(who, WRITE)
    return who


async def require_docs(request: Request, settings: SettingsDep, credentials: CredentialsDep) -> Caller | None:
    """``/docs``, ``/redoc`` and ``/openapi.json``: open with ``KGFORGE_OPEN_DOCS``, else like reads."""
    return None if settings.open_docs else await require_read(request, settings, credentials)


async def require_metrics(request: Request, settings: SettingsDep, credentials: CredentialsDep) -> Caller | None:
    """``/metrics``: open with ``KGFORGE_OPEN_METRICS``, else like reads."""
    return None if settings.open_metrics else await require_read(request, settings, credentials)


ReadAccess = Depends(require_read)
WriteAccess = Depends(require_api_key)
DocsAccess = Depends(require_docs)
MetricsAccess = Depends(require_metrics)
CallerDep = Annotated[Caller, Depends(require_read)]

__all__ = ["Caller", "CallerDep", "DocsAccess", "MetricsAccess", "ReadAccess", "Services", "ServicesDep",
           "SettingsDep", "WriteAccess", "get_services", "keys_enforced", "require_api_key", "require_read"]
