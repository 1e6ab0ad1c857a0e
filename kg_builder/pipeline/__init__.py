"""The knowledge pipeline (DESIGN 3-4): S -> knowledge -> relations -> targets -> rerank -> confidence -> resolve -> write."""

from kg_builder.pipeline.pipeline import (
    EntityRun,
    KnowledgePipeline,
    PipelineModels,
    PipelineOptions,
    ScoredTriple,
    SourceEntity,
    WriteReport,
)
from kg_builder.pipeline.snapshot import Edge, EntityInfo, GraphSnapshot

__all__ = ["Edge", "EntityInfo", "EntityRun", "GraphSnapshot", "KnowledgePipeline", "PipelineModels",
           "PipelineOptions", "ScoredTriple", "SourceEntity", "WriteReport"]
