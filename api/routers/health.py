"""``/healthz`` (the process answers), ``/readyz`` (its dependencies answer), both open, and ``/metrics``."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from api.deps import MetricsAccess, ServicesDep

log = logging.getLogger(__name__)
router = APIRouter(tags=["health"])

CHECK_TIMEOUT_S = 5.0


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """Liveness: the API process is up (it checks nothing else)."""
    return {"status": "ok"}


async def _check(name: str, probe: Any) -> tuple[str, str]:
    try:
        await asyncio.wait_for(run_in_threadpool(probe), CHECK_TIMEOUT_S)
        return name, "ok"
    except TimeoutError:
        return name, f"no answer within {CHECK_TIMEOUT_S:g} s"
    except Exception as e:
        return name, f"{type(e).__name__}: {e}"


@router.get("/readyz", responses={503: {"description": "A dependency is unreachable."}})
async def readyz(services: ServicesDep) -> JSONResponse:
    """Readiness: the graph database answers a query, the broker answers a ping and the job
    database opens; 503 naming what is not ready otherwise. Each check is bounded by 5 s."""
    from workers.app import broker_ping

    def graph() -> None:
        services.graph.driver.verify_connectivity()
        services.graph.ping()

    def broker() -> None:
        broker_ping(services.celery, timeout=CHECK_TIMEOUT_S)

    def jobs() -> None:
        services.jobs.status_counts()

    results = dict(
        await asyncio.gather(_check("graph", graph), _check("broker", broker), _check("jobs", jobs))
    )
    ready = all(v == "ok" for v in results.values())
    if not ready:
        log.warning("not ready: %s", results)
    return JSONResponse(
        {"status": "ok" if ready else "unavailable", "checks": results}, status_code=200 if ready else 503
    )


@router.get("/metrics", response_class=Response, dependencies=[MetricsAccess])
def metrics(request: Request) -> Response:
    """Prometheus text format (see ``api/metrics.py`` for the metrics); needs a read key unless
    ``KGFORGE_OPEN_METRICS`` (``api/deps.py``)."""
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
