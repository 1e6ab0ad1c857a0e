"""Typed records every dataset loader returns.

Ids are the dataset's *native* ids as strings (``"acquired_abnormality"``, ``"/m/027rn"``,
``"B00000JBNX"``, ``"17"``); the importer turns them into graph keys. Records are frozen slotted
dataclasses rather than pydantic models because FB15k-237 alone has 290k triples and these are
built and read in tight loops.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

DatasetKind = Literal["kg", "rec", "corpus", "kgrec"]


@dataclass(frozen=True, slots=True)
class EntityRecord:
    """A knowledge-graph entity: native id, human-readable name, optional longer description."""

    id: str
    name: str
    description: str | None = None


@dataclass(frozen=True, slots=True)
class RelationRecord:
    """A relation of the dataset's relation pool: native name and a readable text."""

    id: str
    text: str


@dataclass(frozen=True, slots=True)
class TripleRecord:
    """(head, relation, tail) in native ids."""

    head: str
    relation: str
    tail: str


@dataclass(frozen=True, slots=True)
class ItemRecord:
    """A catalogue item (product, game, movie, artist).

    ``categories`` is one category path from the most general to the most specific
    (``("Office Products", "Office Supplies", "Paper")``); empty when the dataset has none.
    ``category_ids`` / ``brand_id`` carry opaque ids where a dataset has ids but no names
    (Office ``item_meta.csv``).
    """

    id: str
    title: str | None = None
    description: str | None = None
    brand: str | None = None
    categories: tuple[str, ...] = ()
    asin: str | None = None
    brand_id: str | None = None
    category_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class InteractionRecord:
    """A user-item interaction. ``position`` is the 0-based index in the user's sequence when the
    dataset gives sequences; ``timestamp`` is Unix seconds when it gives times."""

    user: str
    item: str
    split: str = "train"
    timestamp: int | None = None
    rating: float | None = None
    position: int | None = None


@dataclass(frozen=True, slots=True)
class ItemLinkRecord:
    """An item-item relation given by the dataset (Office ``r_complement`` / ``r_substitute``)."""

    head: str
    relation: str
    tail: str


@dataclass(frozen=True, slots=True)
class DocumentRecord:
    """A corpus document (product text) for retrieval; ``item`` links it to an item when known."""

    id: str
    title: str
    text: str
    brand: str | None = None
    categories: tuple[str, ...] = ()
    item: str | None = None


@dataclass(slots=True)
class Dataset:
    """Everything one dataset folder holds, as typed records.

    Only the parts a dataset has are filled: a KG benchmark fills ``entities``, ``relations`` and
    ``triples`` (keyed by split name: ``train``, ``dev``, ``test`` where present); a recommendation
    set fills ``items``, ``interactions`` and maybe ``item_links``; a corpus fills ``documents`` and
    ``items``; Last.FM fills both the KG and the recommendation parts.
    """

    name: str
    kind: DatasetKind
    entities: list[EntityRecord] = field(default_factory=list)
    relations: list[RelationRecord] = field(default_factory=list)
    triples: dict[str, list[TripleRecord]] = field(default_factory=dict)
    items: list[ItemRecord] = field(default_factory=list)
    interactions: list[InteractionRecord] = field(default_factory=list)
    item_links: list[ItemLinkRecord] = field(default_factory=list)
    documents: list[DocumentRecord] = field(default_factory=list)
    # item native id -> entity native id, where items are also KG entities (Last.FM)
    item_entities: dict[str, str] = field(default_factory=dict)
    # False when ItemRecord.categories are independent labels (MovieLens genres), not one path
    category_paths: bool = True

    def all_triples(self) -> list[TripleRecord]:
        return [t for split in self.triples.values() for t in split]
