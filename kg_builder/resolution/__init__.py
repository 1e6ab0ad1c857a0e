"""Entity resolution: generated names become existing nodes or exactly one new node each."""

from kg_builder.resolution.resolver import (
    Candidate,
    EntityIndexNeighbours,
    EntityResolver,
    NameIndex,
    NeighbourIndex,
    Resolution,
    ResolutionResult,
    name_aliases,
)
from kg_builder.resolution.variants import name_variants

__all__ = ["Candidate", "EntityIndexNeighbours", "EntityResolver", "NameIndex", "NeighbourIndex", "Resolution", "ResolutionResult",
           "name_aliases", "name_variants"]
