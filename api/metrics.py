"""Prometheus metrics for ``/metrics``.

Job metrics are read from the durable job store at scrape time, not counted in this process: the
workers are other processes (or containers), and the API may run as several processes, so the
store is the one place that sees every job. That also keeps the totals across restarts.

=====================================  =========  ==============================================
kgforge_jobs{status}                   gauge      jobs per status
kgforge_job_duration_seconds           histogram  run time of finished jobs (their last attempt)
kgforge_triples_written_total          counter    triples written by jobs
kgforge_job_nodes_created_total        counter    new nodes created by entity resolution
kgforge_job_entities_total{outcome}    counter    entities done / failed
kgforge_llm_tokens_total{kind}         counter    LLM tokens spent by jobs (prompt / completion)
kgforge_llm_calls_total                counter    answered LLM requests of jobs
kgforge_job_worker_deaths_total        counter    workers that died (or stopped heartbeating) mid-job
kgforge_http_requests_total            counter    this API process's requests, by route and status
kgforge_http_request_duration_seconds  histogram  this API process's request latency, by route
=====================================  =========  ==============================================
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Receive, Scope, Send

from kg_builder.jobs import JobStore

log = logging.getLogger(__name__)

JOB_DURATION_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)


class JobStoreCollector(Collector):
    def __init__(self, jobs: Callable[[], JobStore]):
        self.jobs = jobs

    def collect(self) -> Iterator[Metric]:
        try:
            store = self.jobs()
            statuses = store.status_counts()
            totals = store.totals()
            cumulative, count, total = store.durations(JOB_DURATION_BUCKETS)
        except Exception as e:  # a scrape must not fail because the job store is briefly locked
            log.warning("job metrics unavailable: %s", e)
            return
        jobs = GaugeMetricFamily("kgforge_jobs", "Jobs per status.", labels=["status"])
        for status, n in statuses.items():
            jobs.add_metric([status.value], n)
        yield jobs
        buckets = [(str(b), c) for b, c in zip(JOB_DURATION_BUCKETS, cumulative, strict=True)] + [
            ("+Inf", count)
        ]
        yield HistogramMetricFamily(
            "kgforge_job_duration_seconds",
            "Run time of finished jobs (last attempt).",
            buckets=buckets,
            sum_value=total,
        )
        yield CounterMetricFamily(
            "kgforge_triples_written", "Triples written by jobs.", value=totals["triples_written"]
        )
        yield CounterMetricFamily(
            "kgforge_job_nodes_created",
            "Nodes created by entity resolution in jobs.",
            value=totals["new_nodes"],
        )
        entities = CounterMetricFamily(
            "kgforge_job_entities", "Entities processed by jobs.", labels=["outcome"]
        )
        entities.add_metric(["done"], totals["entities_done"])
        entities.add_metric(["failed"], totals["entities_failed"])
        yield entities
        tokens = CounterMetricFamily("kgforge_llm_tokens", "LLM tokens spent by jobs.", labels=["kind"])
        tokens.add_metric(["prompt"], totals["prompt_tokens"])
        tokens.add_metric(["completion"], totals["completion_tokens"])
        yield tokens
        yield CounterMetricFamily("kgforge_llm_calls", "Answered LLM requests of jobs.", value=totals["llm_calls"])
        yield CounterMetricFamily("kgforge_job_worker_deaths", "Workers that died (or stopped heartbeating) "
                                  "while running a job.", value=totals["worker_deaths"])


class Metrics:
    """One registry per app (so tests can build many apps), with the HTTP middleware's metrics."""

    def __init__(self, jobs: Callable[[], JobStore]):
        self.registry = CollectorRegistry()
        self.registry.register(JobStoreCollector(jobs))
        self.requests = Counter(
            "kgforge_http_requests", "HTTP requests.", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "kgforge_http_request_duration_seconds",
            "HTTP request latency.",
            ["method", "route"],
            registry=self.registry,
        )

    def middleware(self, app: ASGIApp) -> ASGIApp:
        metrics = self

        async def measured(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            start = time.perf_counter()
            status = {"code": 500}

            async def capture(message):
                if message["type"] == "http.response.start":
                    status["code"] = message["status"]
                await send(message)

            try:
                await app(scope, receive, capture)
            finally:
                route = scope.get("route")
                # The route template (/v1/jobs/{job_id}), never the raw path: bounded label values.
                name = getattr(route, "path", None) or "unmatched"
                metrics.requests.labels(scope["method"], name, str(status["code"])).inc()
                metrics.latency.labels(scope["method"], name).observe(time.perf_counter() - start)

        return measured


__all__ = ["JOB_DURATION_BUCKETS", "JobStoreCollector", "Metrics"]
