"""The retrieval corpus: ordered documents with stable provenance ids, persisted as JSONL.

Every index (:mod:`.bm25`, :mod:`.dense`) refers to documents by their *position* in a
:class:`Corpus`; positions never change once a document is in (a re-posted document with the same
id replaces the old one in place), so indexes stay aligned when documents are added later (posted
through the API).

Document ids are provenance ids that end up on generated facts, so they are stable across runs:

* KG entity descriptions: ``"<dataset>:doc:<entity id>"`` (``"umls:doc:virus"``,
  ``"wn18rr:doc:00001740"``), ``entity_id`` is the entity's native id. UMLS uses the long
  descriptions (``entity2textlong.txt``), WN18RR the glosses; FB15k-237 has names only and gives no
  documents.
* Amazon product texts (``amazon18_product_text``): the dataset's own ids (``"office:12"``,
  ``"scientific:3"``), ``entity_id`` is the item id (the same string).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from kg_builder import __version__
from kg_builder.datasets import Dataset
from kg_builder.errors import InvalidInputError, KGForgeError

log = logging.getLogger(__name__)

CORPUS_KIND = "corpus"
DOCUMENTS_FILE = "documents.jsonl"
META_FILE = "config.json"


class Document(BaseModel):
    """One retrievable text. ``id`` is a stable provenance id; ``source`` names where it came from
    (a dataset name or ``"api"``); ``entity_id`` links it to the graph entity it describes, if any."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(min_length=1)
    text: str
    title: str | None = None
    source: str = Field(min_length=1)
    entity_id: str | None = None

    @model_validator(mode="after")
    def _has_text(self) -> Document:
        if not self.text.strip() and not (self.title or "").strip():
            raise ValueError(f"document {self.id!r} has neither text nor title; there is nothing to retrieve")
        return self

    @property
    def search_text(self) -> str:
        """What the indexes see: ``"title. text"`` (either part alone when the other is empty)."""
        title = (self.title or "").strip()
        text = self.text.strip()
        if title and text:
            return f"{title}. {text}"
        return title or text


class CorpusUpdate(BaseModel):
    """What :meth:`Corpus.add` changed, as corpus positions (indexes re-embed exactly these)."""

    added: list[int] = Field(default_factory=list)
    replaced: list[int] = Field(default_factory=list)
    unchanged: int = 0

    @property
    def changed(self) -> list[int]:
        return sorted(self.added + self.replaced)


class Corpus:
    """Ordered documents with an id -> position map.

    Args:
        documents: initial documents (deduplicated by id like :meth:`add`).

    Example:
        >>> corpus = Corpus([Document(id="api:1", text="Aspirin treats headache.", source="api")])
        >>> corpus.index_of("api:1")
        0
    """

    def __init__(self, documents: Iterable[Document] = ()):
        self._documents: list[Document] = []
        self._positions: dict[str, int] = {}
        self.add(documents)

    def add(self, documents: Iterable[Document]) -> CorpusUpdate:
        """Append new documents; a known id with different content replaces the old one in place
        (same position), an identical re-post is a no-op."""
        update = CorpusUpdate()
        for document in documents:
            position = self._positions.get(document.id)
            if position is None:
                self._positions[document.id] = len(self._documents)
                self._documents.append(document)
                update.added.append(len(self._documents) - 1)
            elif self._documents[position] != document:
                self._documents[position] = document
                if position not in update.added and position not in update.replaced:
                    update.replaced.append(position)
            else:
                update.unchanged += 1
        return update

    def __len__(self) -> int:
        return len(self._documents)

    def __iter__(self) -> Iterator[Document]:
        return iter(self._documents)

    def __getitem__(self, position: int) -> Document:
        return self._documents[position]

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._positions

    @property
    def ids(self) -> list[str]:
        return [document.id for document in self._documents]

    def get(self, doc_id: str) -> Document:
        return self._documents[self.index_of(doc_id)]

    def index_of(self, doc_id: str) -> int:
        try:
            return self._positions[doc_id]
        except KeyError:
            raise InvalidInputError("doc_id", f"no document {doc_id!r} in the corpus") from None

    def search_texts(self, positions: Sequence[int] | None = None) -> list[str]:
        """:attr:`Document.search_text` of every document (or of ``positions``), in corpus order."""
        chosen = range(len(self._documents)) if positions is None else positions
        return [self._documents[i].search_text for i in chosen]

    # --- persistence ---------------------------------------------------------------------------
    def save(self, directory: Path | str) -> Path:
        """Write ``documents.jsonl`` (one document per line, corpus order) and ``config.json``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with open(directory / DOCUMENTS_FILE, "w", encoding="utf-8") as handle:
            handle.writelines(document.model_dump_json(exclude_none=True) + "\n"
                              for document in self._documents)
        meta = {"kind": CORPUS_KIND, "version": __version__, "documents": len(self),
                "created": datetime.now(UTC).isoformat(timespec="seconds")}
        (directory / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True))
        return directory

    @classmethod
    def load(cls, directory: Path | str) -> Corpus:
        """Read a folder written by :meth:`save`."""
        directory = Path(directory)
        path = directory / DOCUMENTS_FILE
        if not path.exists():
            raise KGForgeError(f"no corpus in {directory} ({DOCUMENTS_FILE} missing); build one with "
                               "corpus_from_dataset(...).save(path)")
        documents = []
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    try:
                        documents.append(Document.model_validate_json(line))
                    except ValueError as e:
                        raise KGForgeError(f"{path}: line {number} is not a valid document: {e}") from e
        return cls(documents)


# --- builders from datasets ------------------------------------------------------------------
def entity_doc_id(dataset_name: str, entity_id: str) -> str:
    """The provenance id of an entity-description document: ``"umls:doc:virus"``."""
    return f"{dataset_name}:doc:{entity_id}"


def entity_documents(dataset: Dataset) -> list[Document]:
    """One document per entity that has a description (title = entity name)."""
    return [
        Document(id=entity_doc_id(dataset.name, entity.id), title=entity.name, text=entity.description,
                 source=dataset.name, entity_id=entity.id)
        for entity in dataset.entities
        if entity.description and entity.description.strip()
    ]


def product_documents(dataset: Dataset) -> list[Document]:
    """One document per product text (``DocumentRecord``); records with neither title nor text are skipped."""
    documents = []
    for record in dataset.documents:
        if not record.text.strip() and not record.title.strip():
            continue
        documents.append(Document(id=record.id, title=record.title or None, text=record.text,
                                  source=dataset.name, entity_id=record.item))
    return documents


def corpus_from_dataset(dataset: Dataset) -> Corpus:
    """The retrieval corpus of a loaded dataset: entity descriptions, then product texts.

    A dataset with neither (FB15k-237: names only) gives an empty corpus, with a log line.
    """
    corpus = Corpus(entity_documents(dataset) + product_documents(dataset))
    if not len(corpus):
        log.warning("dataset %s has no entity descriptions or documents; its corpus is empty", dataset.name)
    return corpus


__all__ = ["Corpus", "CorpusUpdate", "Document", "corpus_from_dataset", "entity_doc_id", "entity_documents",
           "product_documents"]
