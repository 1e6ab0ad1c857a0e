"""Request and response schemas of the API (``XCreate`` in, ``XPublic`` / ``XsPublic`` out).

Jobs reuse the core's models (:mod:`kg_builder.jobs.models`): ``JobCreate`` is the submission,
``JobPublic`` the job. Graph reads turn the store's results into plain JSON with the provenance
(``confidence``, ``sources``, ``evidence``, ``job_id``) lifted out of the edge properties.
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, computed_field, field_validator

from kg_builder.jobs.models import DOMAIN_PATTERN, Job, JobPage, JobStatus, JobSubmission

JobCreate = JobSubmission
JobsPublic = JobPage


class JobPublic(Job):
    """A job as ``GET /v1/jobs/{id}`` shows it, with a link to its triples in the graph explorer."""

    @computed_field(description="The graph explorer showing the triples this job wrote.")
    @property
    def explorer_url(self) -> str:
        return f"/explorer?job={quote(self.id, safe='')}"


class JobAccepted(BaseModel):
    id: str
    status: JobStatus
    url: str = Field(description="Where to follow the job.")


class ErrorPublic(BaseModel):
    detail: Any


# --- graph reads ---------------------------------------------------------------------------------
class NodePublic(BaseModel):
    id: str
    label: str
    name: str | None = None
    properties: dict[str, Any]


class NeighbourPublic(BaseModel):
    head: str
    head_label: str | None = None
    type: str
    relation: str = Field(description="The relation's original name (`lives_in`), the type is `LIVES_IN`.")
    tail: str
    tail_label: str | None = None
    direction: Literal["out", "in", "around"] = Field(
        description="out: the entity is the head; in: it is the tail; around: an edge further away "
        "(hops > 1)."
    )
    confidence: float | None = None
    sources: list[str] = Field(default_factory=list)
    evidence: list[str] = Field(default_factory=list)
    job_id: str | None = None
    properties: dict[str, Any] = Field(default_factory=dict, description="The edge's other properties.")


class EntityPublic(BaseModel):
    node: NodePublic
    neighbours: list[NeighbourPublic]
    limit: int
    offset: int
    has_more: bool = Field(description="More neighbours exist beyond this page.")


class EntitiesPublic(BaseModel):
    items: list[EntityPublic]
    limit: int
    offset: int
    has_more: bool


class RelationPublic(BaseModel):
    type: str
    name: str
    description: str | None = None
    sources: list[str] = Field(default_factory=list)


class RelationsPublic(BaseModel):
    items: list[RelationPublic]
    total: int
    limit: int
    offset: int


# --- documents -------------------------------------------------------------------------------------
class DocumentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=200, description="Stable id; stored as `api:<id>`.")
    text: str = Field(min_length=1, max_length=20_000)
    title: str | None = Field(None, max_length=500)
    entity_id: str | None = Field(
        None, max_length=512, description="Graph entity the document describes, if any."
    )

    @field_validator("id", "text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value


class DocumentsCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    domain: str = Field(pattern=DOMAIN_PATTERN, description="Dataset whose corpus receives the documents.")
    documents: list[DocumentCreate] = Field(min_length=1, max_length=100)


class DocumentsPublic(BaseModel):
    domain: str
    added: list[str]
    replaced: list[str]
    unchanged: int
    corpus_size: int


__all__ = [
    "DocumentCreate",
    "DocumentsCreate",
    "DocumentsPublic",
    "EntitiesPublic",
    "EntityPublic",
    "ErrorPublic",
    "JobAccepted",
    "JobCreate",
    "JobPublic",
    "JobsPublic",
    "NeighbourPublic",
    "NodePublic",
    "RelationPublic",
    "RelationsPublic",
]
