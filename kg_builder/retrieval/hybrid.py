"""Hybrid recall: BM25 and dense candidates fused into one ranking (DESIGN 4.1, "similarity recall").

Each retriever recalls its top ``recall_k`` documents; the two lists are fused by

* **Reciprocal Rank Fusion** (default): ``score(d) = sum over lists of 1 / (rrf_k + rank(d))`` with
  1-based ranks and ``rrf_k = 60``, the constant of Cormack, Clarke & Buettcher (SIGIR 2009). It
  damps the head of each list so one retriever's first hit cannot outvote a document both found
  near the top; it needs no score calibration between BM25 (unbounded) and cosine (-1..1).
* **weighted score fusion** (``fusion="weighted"``): each list's scores are min-max normalised to
  [0, 1] over its recalled documents (a document a list did not recall counts 0), then
  ``dense_weight * dense + (1 - dense_weight) * bm25``.

Ties are broken by the best single-list rank, then corpus position, so results are deterministic.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from kg_builder.errors import InvalidInputError, KGForgeError
from kg_builder.models.encoder import TextEncoder

from .bm25 import BM25Config, BM25Index
from .corpus import Corpus, CorpusUpdate, Document
from .dense import DenseIndex

RRF_K = 60
Fusion = Literal["rrf", "weighted"]


class Hit(BaseModel):
    """One retrieved document. Ranks are 1-based within each retriever's recall list (``None``: not
    recalled by it); ``score`` is the fused score the hits are sorted by."""

    model_config = ConfigDict(frozen=True)

    doc_id: str
    score: float
    bm25_rank: int | None = None
    dense_rank: int | None = None
    bm25_score: float | None = None
    dense_score: float | None = None
    text: str
    title: str | None = None
    source: str | None = None
    entity_id: str | None = None


class RetrievalResult(BaseModel):
    """The fused ranking for one query, best first."""

    query: str
    fusion: Fusion
    hits: list[Hit] = Field(default_factory=list)

    @property
    def doc_ids(self) -> list[str]:
        return [hit.doc_id for hit in self.hits]


class HybridRetriever:
    """BM25 + dense recall over one corpus, fused by RRF (or weighted scores).

    Args:
        corpus: the documents; ``bm25`` and ``dense`` must index exactly its documents, in order.
        bm25: sparse index over ``corpus.search_texts()``.
        dense: dense index whose ids are ``corpus.ids``.
        recall_k: candidates taken from each retriever before fusion.
        fusion: ``"rrf"`` or ``"weighted"``.
        rrf_k: the RRF constant (60, Cormack et al. 2009).
        dense_weight: weight of the dense score in weighted fusion (BM25 gets the rest).

    Example:
        >>> retriever = HybridRetriever.build(corpus, encoder)
        >>> retriever.run("virus infection", k=5).doc_ids[0]
        'umls:doc:virus'
    """

    def __init__(self, corpus: Corpus, bm25: BM25Index, dense: DenseIndex, *, recall_k: int = 50,
                 fusion: Fusion = "rrf", rrf_k: int = RRF_K, dense_weight: float = 0.5):
        if len(bm25) != len(corpus) or dense.ids != corpus.ids:
            raise KGForgeError(f"indexes out of step with the corpus ({len(corpus)} documents, "
                               f"BM25 {len(bm25)}, dense {len(dense)}); "
                               "rebuild them with HybridRetriever.build(corpus, encoder)")
        if recall_k < 1 or rrf_k < 0 or not 0.0 <= dense_weight <= 1.0:
            raise InvalidInputError("retriever", "need recall_k >= 1, rrf_k >= 0 and 0 <= dense_weight <= 1")
        self.corpus = corpus
        self.bm25 = bm25
        self.dense = dense
        self.recall_k = recall_k
        self.fusion: Fusion = fusion
        self.rrf_k = rrf_k
        self.dense_weight = dense_weight

    @classmethod
    def build(cls, corpus: Corpus, encoder: TextEncoder, *, bm25_config: BM25Config | None = None,
              progress: Callable[[int], None] | None = None, **options) -> HybridRetriever:
        """Index ``corpus`` with BM25 and the encoder (``progress`` gets texts embedded per batch)."""
        bm25 = BM25Index(bm25_config).build(corpus.search_texts())
        dense = DenseIndex(encoder)
        dense.add(corpus.ids, corpus.search_texts(), progress=progress)
        return cls(corpus, bm25, dense, **options)

    def add_documents(self, documents: Iterable[Document], *,
                      progress: Callable[[int], None] | None = None) -> CorpusUpdate:
        """Add (or replace) documents and make them retrievable at once: BM25 is rebuilt over the
        whole corpus (bm25s has no incremental update), only the changed documents are embedded."""
        update = self.corpus.add(documents)
        changed = update.changed
        if changed:
            self.bm25.build(self.corpus.search_texts())
            self.dense.add([self.corpus[i].id for i in changed], self.corpus.search_texts(changed),
                           progress=progress)
        return update

    def joined(self, corpus: Corpus, dense: DenseIndex) -> HybridRetriever:
        """A new retriever over this corpus followed by ``corpus``, whose documents ``dense`` has
        embedded already (nothing is re-embedded; BM25 is rebuilt over the union). This retriever
        is left unchanged.

        Raises:
            KGForgeError: an id of ``corpus`` is in this corpus too, or ``dense`` is not ``corpus``'s.
        """
        clash = next((doc_id for doc_id in corpus.ids if doc_id in self.corpus), None)
        if clash is not None:
            raise KGForgeError(f"document {clash!r} is in both corpora; posted ids must stay apart from "
                               "the trained corpus's")
        if dense.ids != corpus.ids:
            raise KGForgeError("the dense index to join does not hold exactly the joined corpus's documents")
        union = Corpus([*self.corpus, *corpus])
        vectors = DenseIndex.from_rows(self.dense.encoder, [*self.dense.ids, *dense.ids],
                                       np.concatenate([self.dense.embeddings, dense.embeddings]),
                                       batch_size=self.dense.batch_size)
        bm25 = BM25Index(self.bm25.config).build(union.search_texts())
        return HybridRetriever(union, bm25, vectors, recall_k=self.recall_k, fusion=self.fusion, rrf_k=self.rrf_k,
                               dense_weight=self.dense_weight)

    def run(self, query: str, k: int = 10) -> RetrievalResult:
        """The ``k`` best documents for ``query`` after fusing both recall lists."""
        if not query.strip():
            raise InvalidInputError("query", "is empty; give the entity name or a question")
        if k < 1:
            raise InvalidInputError("k", f"must be at least 1, got {k}")
        sparse = self.bm25.search(query, self.recall_k)
        dense = self.dense.search(query, self.recall_k)
        bm25_rank = {pos: (rank, score) for rank, (pos, score) in enumerate(sparse, start=1)}
        dense_rank = {pos: (rank, score) for rank, (pos, score) in enumerate(dense, start=1)}
        fused = self._fuse(sparse, dense)
        best_rank = {pos: min(bm25_rank.get(pos, (1 << 30,))[0], dense_rank.get(pos, (1 << 30,))[0])
                     for pos in fused}
        order = sorted(fused, key=lambda pos: (-fused[pos], best_rank[pos], pos))[:k]
        hits = []
        for pos in order:
            document = self.corpus[pos]
            b, d = bm25_rank.get(pos), dense_rank.get(pos)
            hits.append(Hit(doc_id=document.id, score=fused[pos], text=document.text, title=document.title,
                            source=document.source, entity_id=document.entity_id,
                            bm25_rank=b[0] if b else None, bm25_score=b[1] if b else None,
                            dense_rank=d[0] if d else None, dense_score=d[1] if d else None))
        return RetrievalResult(query=query, fusion=self.fusion, hits=hits)

    def _fuse(self, sparse: list[tuple[int, float]], dense: list[tuple[int, float]]) -> dict[int, float]:
        fused: dict[int, float] = {}
        if self.fusion == "rrf":
            for ranking in (sparse, dense):
                for rank, (pos, _) in enumerate(ranking, start=1):
                    fused[pos] = fused.get(pos, 0.0) + 1.0 / (self.rrf_k + rank)
            return fused
        for ranking, weight in ((sparse, 1.0 - self.dense_weight), (dense, self.dense_weight)):
            if not ranking:
                continue
            values = [score for _, score in ranking]
            low, span = min(values), max(values) - min(values)
            for pos, score in ranking:
                normalised = (score - low) / span if span > 0 else 1.0
                fused[pos] = fused.get(pos, 0.0) + weight * normalised
        return fused

    # --- persistence ---------------------------------------------------------------------------
    def save(self, directory: Path | str) -> Path:
        """``corpus/``, ``bm25/``, ``dense/`` and ``config.json`` (the fusion settings)."""
        directory = Path(directory)
        self.corpus.save(directory / "corpus")
        self.bm25.save(directory / "bm25")
        self.dense.save(directory / "dense")
        config = {"kind": "hybrid_retriever", "recall_k": self.recall_k, "fusion": self.fusion,
                  "rrf_k": self.rrf_k, "dense_weight": self.dense_weight}
        (directory / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
        return directory

    @classmethod
    def load(cls, directory: Path | str, encoder: TextEncoder) -> HybridRetriever:
        directory = Path(directory)
        if not (directory / "config.json").exists():
            raise KGForgeError(f"no retriever in {directory} (config.json missing); build one and save() it")
        config = json.loads((directory / "config.json").read_text())
        config.pop("kind", None)
        return cls(Corpus.load(directory / "corpus"), BM25Index.load(directory / "bm25"),
                   DenseIndex.load(directory / "dense", encoder), **config)


__all__ = ["RRF_K", "Fusion", "Hit", "HybridRetriever", "RetrievalResult"]
