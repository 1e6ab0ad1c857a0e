"""Last.FM with the KGCN Freebase sub-graph: ``kg.txt``, ``item_index2entity_id.txt``, ``user_artists.dat``.

``kg.txt`` and ``item_index2entity_id.txt`` have CRLF line endings, ``user_artists.dat`` (HetRec
2011) has LF; the shared line reader handles both. The data has no names (entity ids are
anonymised integers, and the HetRec ``artists.dat`` with artist names is not included).

Choices:

* KG: every ``kg.txt`` triple goes to ``triples["train"]`` (the KG has no splits). Entities are all
  ids seen in ``kg.txt`` plus the entities of ``item_index2entity_id.txt``, sorted numerically;
  ``name`` = the id, ``description`` = ``None``. Relations are the distinct relation names, sorted;
  their text is the name with ``.`` and ``_`` turned into spaces
  (``music.artist.origin`` -> ``music artist origin``).
* Items: the artists of ``item_index2entity_id.txt`` (first column, the HetRec ``artistID``), in
  file order; ``item_entities`` maps each to its KG entity (second column). Items have no title.
* Interactions: rows of ``user_artists.dat`` (``userID``, ``artistID``, ``weight``), split
  ``"train"``. ``rating`` holds the **play count** (``weight``) as a float, not a star rating.
  Only artists linked to the KG are kept, as KGCN does (21,173 of 92,834 rows): the other artists
  have no item record and no entity, so their interactions would dangle.
"""

from __future__ import annotations

from pathlib import Path

from kg_builder.errors import DatasetError

from .records import Dataset, EntityRecord, InteractionRecord, ItemRecord, RelationRecord, TripleRecord
from .text import read_table, to_float


def _numeric_order(value: str) -> tuple[int, int | str]:
    return (0, int(value)) if value.isdigit() else (1, value)


def relation_text(relation: str) -> str:
    return " ".join(relation.replace(".", " ").replace("_", " ").split())


def read_kg(path: Path) -> list[TripleRecord]:
    table = read_table(path, columns=("head", "relation", "tail"))
    return [TripleRecord(head.strip(), relation.strip(), tail.strip()) for head, relation, tail in table.rows]


def read_item_entities(path: Path) -> dict[str, str]:
    table = read_table(path, columns=("item", "entity"))
    mapping: dict[str, str] = {}
    for raw_item, entity in table.rows:
        item = raw_item.strip()
        if item in mapping:
            raise DatasetError(f"{path}: artist {item} is mapped twice")
        mapping[item] = entity.strip()
    return mapping


def build_entities(triples: list[TripleRecord], item_entities: dict[str, str]) -> list[EntityRecord]:
    ids = {t.head for t in triples} | {t.tail for t in triples} | set(item_entities.values())
    return [EntityRecord(entity_id, entity_id) for entity_id in sorted(ids, key=_numeric_order)]


def build_relations(triples: list[TripleRecord]) -> list[RelationRecord]:
    return [RelationRecord(name, relation_text(name)) for name in sorted({t.relation for t in triples})]


def read_listening(path: Path, artists: dict[str, str]) -> list[InteractionRecord]:
    table = read_table(path)
    user, artist, weight = table.index("userID", "artistID", "weight")
    return [
        InteractionRecord(
            user=row[user].strip(),
            item=row[artist].strip(),
            split="train",
            rating=to_float(row[weight], path, "weight"),
        )
        for row in table.rows
        if row[artist].strip() in artists
    ]


def load_lastfm(folder: Path) -> Dataset:
    triples = read_kg(folder / "kg.txt")
    item_entities = read_item_entities(folder / "item_index2entity_id.txt")
    return Dataset(
        name="lastfm_kgcn",
        kind="kgrec",
        entities=build_entities(triples, item_entities),
        relations=build_relations(triples),
        triples={"train": triples},
        items=[ItemRecord(id=item) for item in item_entities],
        interactions=read_listening(folder / "user_artists.dat", item_entities),
        item_entities=item_entities,
    )
