"""The job service's data: what a client submits and what a job looks like while and after it runs.

A job is a list of source entities of one domain (the dataset whose trained models apply) with
pipeline options. Its state lives in the durable :class:`~kg_builder.jobs.job_store.JobStore`; these
pydantic models are both what the store returns and what the API serialises (DESIGN 3).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from kg_builder.errors import InvalidInputError
from kg_builder.pipeline.pipeline import PipelineOptions, SourceEntity

# A domain names trained models (``structural-<domain>``), so it follows the model-name rule.
DOMAIN_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
# A hard cap on the model itself; the configured limit (``max_entities_per_job``) is lower and
# checked where the settings are known (:meth:`JobSubmission.check_limits`).
HARD_MAX_ENTITIES = 10_000
#: What a job does with each entity: ``entities`` (the knowledge pipeline: relations and targets),
#: ``c2c`` (complementary categories of a Category: ``kg_builder.products.c2c``), ``titles`` (the
#: normalised title of an Item: ``kg_builder.products.titles``).
JobKind = Literal["entities", "c2c", "titles"]
JOB_KINDS: tuple[str, ...] = ("entities", "c2c", "titles")


class JobStatus(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled)


class EntityStatus(StrEnum):
    pending = "pending"
    running = "running"  # computed in the current batch, not yet written
    done = "done"
    failed = "failed"


class JobSubmission(BaseModel):
    """``POST /v1/jobs``: the entities of one domain and the pipeline options."""

    model_config = ConfigDict(extra="forbid")

    entities: list[SourceEntity] = Field(min_length=1, max_length=HARD_MAX_ENTITIES)
    domain: str = Field(
        pattern=DOMAIN_PATTERN, description="Dataset whose trained models apply, e.g. `umls`."
    )
    kind: JobKind = Field("entities", description="`entities` (knowledge about each entity), `c2c` "
                          "(complementary categories of each Category), `titles` (normalised title of each Item).")
    options: PipelineOptions = Field(default_factory=PipelineOptions)

    def check_limits(self, max_entities: int) -> None:
        """Raise InvalidInputError naming ``entities`` when the job has more than ``max_entities``."""
        if len(self.entities) > max_entities:
            raise InvalidInputError(
                "entities",
                f"at most {max_entities} entities per job (got "
                f"{len(self.entities)}); split the work into several jobs",
            )


class JobProgress(BaseModel):
    total: int = 0
    done: int = 0
    failed: int = 0
    running: int = 0
    pending: int = 0


class JobCounts(BaseModel):
    """Summed over the job's entities and batches: candidates generated, triples kept (written),
    new nodes created and names merged onto existing nodes by entity resolution."""

    generated: int = 0
    kept: int = 0
    new: int = 0
    merged: int = 0
    triples_written: int = 0


class JobUsage(BaseModel):
    """LLM tokens and calls a job spent (every attempt, replays included: they were spent)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    calls: int = Field(0, description="Answered LLM requests (retries and re-asks included).")


class EntityResult(BaseModel):
    position: int
    name: str
    status: EntityStatus
    node_id: str | None = None
    generated: int = 0
    kept: int = 0
    error: str | None = None
    notes: list[str] = Field(
        default_factory=list, description="Degradations (e.g. LLM fell back to offline)."
    )


class EntityError(BaseModel):
    position: int
    name: str
    error: str


class Job(BaseModel):
    """A job as ``GET /v1/jobs/{id}`` shows it."""

    id: str
    status: JobStatus
    domain: str
    kind: JobKind = "entities"
    options: PipelineOptions
    progress: JobProgress
    counts: JobCounts
    errors: list[EntityError] = Field(default_factory=list, description="Entities that failed, with why.")
    error: str | None = Field(
        None, description="Why the job failed, or the transient error it is retrying after."
    )
    cancel_requested: bool = False
    attempts: int = 0
    worker_deaths: int = Field(
        0, description="Times a worker died (or stopped heartbeating) while it ran this job."
    )
    owner: str | None = Field(
        None, description="While running: the worker process holding the job's lease (host:pid:task)."
    )
    heartbeat_at: datetime | None = Field(None, description="The owner's last heartbeat.")
    usage: JobUsage = Field(default_factory=JobUsage, description="LLM tokens and calls spent.")
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    entities: list[EntityResult] | None = Field(
        None, description="Per-entity results (single-job reads only)."
    )


class JobPage(BaseModel):
    items: list[Job]
    total: int
    limit: int
    offset: int


__all__ = [
    "DOMAIN_PATTERN",
    "EntityError",
    "EntityResult",
    "EntityStatus",
    "HARD_MAX_ENTITIES",
    "JOB_KINDS",
    "JobKind",
    "Job",
    "JobCounts",
    "JobPage",
    "JobProgress",
    "JobStatus",
    "JobSubmission",
    "JobUsage",
]
