"""Entity jobs (issue 4): the durable job store and the runner the workers call.

``models`` holds what a client submits and what a job looks like; ``store`` keeps job state in
SQLite so it survives restarts of every process; ``runner.run_job`` runs a job through the
knowledge pipeline in replayable batches. Neither imports FastAPI or Celery.
"""

from kg_builder.jobs.models import (
    EntityError,
    EntityResult,
    EntityStatus,
    Job,
    JobCounts,
    JobPage,
    JobProgress,
    JobStatus,
    JobSubmission,
    JobUsage,
)
from kg_builder.jobs.runner import run_job
from kg_builder.jobs.job_store import (
    BatchCounts,
    Claim,
    EntityOutcome,
    JobNotFoundError,
    JobStore,
    JobStoreUnavailableError,
    ReapReport,
)

__all__ = [
    "BatchCounts",
    "Claim",
    "EntityError",
    "EntityOutcome",
    "EntityResult",
    "EntityStatus",
    "Job",
    "JobCounts",
    "JobNotFoundError",
    "JobPage",
    "JobProgress",
    "JobStatus",
    "JobStore",
    "JobStoreUnavailableError",
    "JobSubmission",
    "JobUsage",
    "ReapReport",
    "run_job",
]
