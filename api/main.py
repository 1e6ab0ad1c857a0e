"""The FastAPI app: ``uvicorn api.main:app`` (or ``create_app(settings)`` in tests and ``kgforge up``).

Routes (OpenAPI docs at ``/docs``): ``/v1/jobs`` (submit, follow, list, cancel), ``/v1/training``
(training runs: submit, follow progress, list, cancel: ``api/routers/training.py``), ``/v1/entities``
(a node and its neighbours, by id or name), ``/v1/relations`` (the relation pool),
``/v1/documents`` (add retrieval documents), ``/v1/embeddings`` (embedding sets: a node's vector,
batches, similar nodes, search by vector or text), ``/v1/recommendations`` (next items from a saved
sequential recommender: ``api/routers/recommendations.py``), ``/v1/schema`` (labels, relationship patterns and
property keys, also in LangChain's shape: ``api/routers/schema.py``), ``/v1/cypher`` (one read-only
Cypher statement), ``/explorer`` (the graph explorer page: ``api/routers/explorer.py``), ``/healthz``,
``/readyz``, ``/metrics``.

Creating the app connects to nothing (the job store, graph driver, Celery app and encoder open on
first use), so it imports while the graph database and the broker are down. Outside development
it refuses to start without API keys. Every read needs ``Authorization: Bearer KEY`` with a read or
write key, every write a write key, except in development without keys; each client has a rate limit
(``api/deps.py``, ``api/ratelimit.py``); bodies over ``KGFORGE_MAX_BODY_BYTES`` get 413 (``api/limits.py``), bodies with
NaN, infinities, lone surrogates or NUL characters get 422 naming the field (``api/hygiene.py``);
domain errors become HTTP errors only in ``api/errors.py``. While it runs, a reaper thread
re-enqueues stuck and orphaned jobs (``workers/reaper.py``).

Example::

    KGFORGE_ENV=production KGFORGE_API_KEYS=$(openssl rand -hex 32) uvicorn api.main:app --port 8000
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api import errors
from api.deps import ReadAccess, Services
from api.hygiene import InputHygiene
from api.limits import BodySizeLimit
from api.metrics import Metrics
from api.ratelimit import RateLimiter
from api.routers import (cypher, docs, documents, embeddings, entities, explorer, health, jobs, recommendations,
                         relations, schema, training)
from kg_builder import __version__
from kg_builder.errors import ConfigError
from kg_builder.settings import Settings, get_settings

log = logging.getLogger(__name__)


def _setup_graph_schema(services: Services) -> None:
    """Constraints and indexes on a server graph database (idempotent), in the background so that an
    API whose database is still starting comes up anyway; compose also runs it as a one-shot step."""
    try:
        services.graph.setup_schema()
        log.info("graph schema set up")
    except Exception as e:  # the database may still be starting: the one-shot step and imports set it up too
        log.warning("graph schema not set up at start (%s); `kgforge import` and compose's graph-schema step "
                    "set it up", e)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The API for ``settings`` (default: the process-wide ``KGFORGE_*`` settings).

    Raises:
        ConfigError: outside development without ``KGFORGE_API_KEYS``.
    """
    settings = settings or get_settings()
    if settings.env != "development" and not settings.api_key_list():
        raise ConfigError(
            f"KGFORGE_ENV={settings.env} needs API keys for writes: set KGFORGE_API_KEYS to one "
            "or more comma-separated keys (e.g. `openssl rand -hex 32`)"
        )
    services = Services(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Stuck and orphaned jobs are re-enqueued at start-up and every KGFORGE_JOB_REAPER_INTERVAL_S.
        from workers.reaper import JobReaper

        from api.routers.training import app_training_store

        reaper = JobReaper(lambda: services.jobs, lambda: services.celery, settings,
                           training=lambda: app_training_store(app)).start()
        app.state.reaper = reaper
        if settings.graph_uri:  # a server database (Neo4j in compose): its schema at service start
            threading.Thread(target=_setup_graph_schema, args=(services,), name="graph-schema", daemon=True).start()
        try:
            yield
        finally:
            reaper.stop()
            services.close()

    app = FastAPI(
        title="kgforge",
        version=__version__,
        lifespan=lifespan,
        docs_url=None, redoc_url=None, openapi_url=None,  # served by api/routers/docs.py, behind DocsAccess
        description="Knowledge-graph construction service: submit entity jobs, follow them, "
        "browse the graph they write.",
    )
    app.state.services = services
    app.state.metrics = Metrics(lambda: services.jobs)
    app.state.rate_limiter = RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst)
    errors.install(app)
    for router in (jobs.router, training.router, entities.router, relations.router, documents.router,
                   embeddings.router, recommendations.router, schema.router, cypher.router, explorer.router,
                   explorer.page_router, health.router, docs.router):
        # Every router but health (open probes; /metrics has its own check) and docs (DocsAccess)
        # needs a read key at least (api/deps.py): a new router is protected by default.
        # The explorer's page and assets hold no data (its reads go through the protected routes).
        open_routers = (health.router, docs.router, explorer.page_router)
        app.include_router(router, dependencies=[] if router in open_routers else [ReadAccess])
    app.add_middleware(InputHygiene)  # inside the size limit: it reads only bodies within the limit
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(app.state.metrics.middleware)  # outermost: also counts 413s
    return app


app = create_app()
