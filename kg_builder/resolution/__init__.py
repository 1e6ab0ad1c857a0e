"""Entity resolution: generated names become existing nodes or exactly one new node each."""

from kg_builder.resolution.resolver import Candidate, EntityResolver, NameIndex, Resolution, ResolutionResult

__all__ = ["Candidate", "EntityResolver", "NameIndex", "Resolution", "ResolutionResult"]
