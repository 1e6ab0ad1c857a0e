"""Knowledge-graph completion benchmarks in the KG-BERT layout: UMLS, WN18RR, FB15k-237.

A folder holds ``entities.txt`` and ``relations.txt`` (one id per line), ``entity2text.txt`` and
``relation2text.txt`` (``id<TAB>text``), optionally ``entity2textlong.txt`` (UMLS), and one
``head<TAB>relation<TAB>tail`` file per split: ``train.tsv``, ``dev.tsv``, ``test.tsv``.

Choices:

* Entities are *all* ids of ``entities.txt`` in file order (duplicates dropped), not just those
  that have a text line; an entity without text (or with empty text) is named by its id.
* Names: UMLS and FB15k-237 take ``entity2text.txt`` as the name. WN18RR's text is
  ``"lemma, gloss"``: the name is the part before the first ``", "`` and the description the gloss
  (a text without ``", "`` is all name). UMLS descriptions come from ``entity2textlong.txt``;
  FB15k-237 has no descriptions here (``None``).
* Relations are the ids of ``relations.txt`` in file order; text from ``relation2text.txt``, falling
  back to the id.
* Triples: ``train.tsv`` is required; ``dev.tsv`` and ``test.tsv`` are loaded when present (the
  WN18RR / FB15k-237 test splits are held out of the shared data folder). ``triples`` keys are the
  split names ``train``, ``dev``, ``test``.
* Every triple must use known entities and relations; otherwise the load fails with
  :class:`~kg_builder.errors.DatasetError` naming the file and the triple (the importer must not
  create dangling nodes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kg_builder.errors import DatasetError

from .records import Dataset, EntityRecord, RelationRecord, TripleRecord
from .text import read_lines, read_table

SPLITS = ("train", "dev", "test")
REQUIRED_SPLIT = "train"

TextSplitter = Callable[[str], tuple[str, str | None]]


def name_only(text: str) -> tuple[str, str | None]:
    return text.strip(), None


def lemma_and_gloss(text: str) -> tuple[str, str | None]:
    """WN18RR ``"stool, solid excretory product ..."`` -> ``("stool", "solid excretory product ...")``."""
    lemma, sep, gloss = text.partition(", ")
    if not sep:
        return text.strip(), None
    return lemma.strip(), gloss.strip() or None


@dataclass(frozen=True, slots=True)
class KGLayout:
    """How a benchmark spells entity text."""

    split_text: TextSplitter = name_only
    description_file: str | None = None


UMLS = KGLayout(description_file="entity2textlong.txt")
WN18RR = KGLayout(split_text=lemma_and_gloss)
FB15K237 = KGLayout()


def read_id_list(path: Path) -> list[str]:
    """One id per line, file order, duplicates dropped."""
    return list(dict.fromkeys(line.strip() for line in read_lines(path)))


def read_text_map(path: Path) -> dict[str, str]:
    """``id<TAB>text`` lines as a dict (text may itself contain tabs)."""
    table = read_table(path, columns=("id", "text"), last_takes_rest=True, min_columns=1)
    return {row[0].strip(): row[1].strip() for row in table.rows}


def build_entities(folder: Path, layout: KGLayout) -> list[EntityRecord]:
    ids = read_id_list(folder / "entities.txt")
    texts = read_text_map(folder / "entity2text.txt")
    long_texts = read_text_map(folder / layout.description_file) if layout.description_file else {}
    entities = []
    for entity_id in ids:
        name, description = layout.split_text(texts.get(entity_id, ""))
        description = long_texts.get(entity_id) or description
        entities.append(EntityRecord(entity_id, name or entity_id, description or None))
    return entities


def build_relations(folder: Path) -> list[RelationRecord]:
    ids = read_id_list(folder / "relations.txt")
    texts = read_text_map(folder / "relation2text.txt")
    return [RelationRecord(relation_id, texts.get(relation_id) or relation_id) for relation_id in ids]


def read_triples(path: Path) -> list[TripleRecord]:
    table = read_table(path, columns=("head", "relation", "tail"))
    return [TripleRecord(head, relation, tail) for head, relation, tail in table.rows]


def check_triples(path: Path, triples: list[TripleRecord], entities: set[str], relations: set[str]) -> None:
    for triple in triples:
        if triple.head not in entities or triple.tail not in entities:
            raise DatasetError(f"{path}: triple {triple} uses an entity missing from entities.txt")
        if triple.relation not in relations:
            raise DatasetError(f"{path}: triple {triple} uses a relation missing from relations.txt")


def load_triples(folder: Path, entities: set[str], relations: set[str]) -> dict[str, list[TripleRecord]]:
    splits: dict[str, list[TripleRecord]] = {}
    for split in SPLITS:
        path = folder / f"{split}.tsv"
        if split != REQUIRED_SPLIT and not path.exists():
            continue
        splits[split] = read_triples(path)
        check_triples(path, splits[split], entities, relations)
    return splits


def load_kg(folder: Path, name: str, layout: KGLayout) -> Dataset:
    """Load one KG-BERT benchmark folder."""
    entities = build_entities(folder, layout)
    relations = build_relations(folder)
    triples = load_triples(folder, {e.id for e in entities}, {r.id for r in relations})
    return Dataset(name=name, kind="kg", entities=entities, relations=relations, triples=triples)


def load_umls(folder: Path) -> Dataset:
    return load_kg(folder, "umls", UMLS)


def load_wn18rr(folder: Path) -> Dataset:
    return load_kg(folder, "wn18rr", WN18RR)


def load_fb15k237(folder: Path) -> Dataset:
    return load_kg(folder, "fb15k237", FB15K237)
