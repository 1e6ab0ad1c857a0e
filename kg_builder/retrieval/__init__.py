"""Retrieval for knowledge acquisition (DESIGN 4.1): corpus, BM25 + dense recall, fusion, summaries.

* :mod:`.corpus`: :class:`Document`, :class:`Corpus` (ordered, id -> position, JSONL folder) and
  :func:`corpus_from_dataset` (entity descriptions, product texts).
* :mod:`.bm25`: :class:`BM25Index` (``bm25s``), :mod:`.dense`: :class:`DenseIndex` (MiniLM, exact cosine).
* :mod:`.hybrid`: :class:`HybridRetriever` ``run(query, k) -> RetrievalResult`` (RRF fusion).
* :mod:`.summarise`: :class:`ExtractiveSummariser` ``run(entity_name, hits, token_budget) -> Summary``.
* :mod:`.utility`: :class:`UtilityReranker` ``run(entity_name, hits, ...) -> RerankResult``,
  :func:`knowledge_query` (S's description and known facts as the retrieval query) and
  :func:`train_utility_reranker` (labels from held-out graph neighbours; a graph prior over the
  entities a document names, then a logistic regression over document features).
* :mod:`.saved_utility`: the trained utility model on disk (retriever, reranker, name matcher).
* :mod:`.documents`: documents posted through the API, in their own per-domain store, joined to
  the trained corpus when the utility model is loaded.

Example:
    >>> from kg_builder.datasets import load_dataset
    >>> from kg_builder.models.encoder import TextEncoder
    >>> corpus = corpus_from_dataset(load_dataset("umls", data_dir))
    >>> encoder = TextEncoder()
    >>> retriever = HybridRetriever.build(corpus, encoder)
    >>> hits = retriever.run("virus", k=5).hits
    >>> summary = ExtractiveSummariser(encoder).run("virus", hits, token_budget=200)
"""

from .bm25 import BM25Config, BM25Index
from .corpus import Corpus, CorpusUpdate, Document, corpus_from_dataset
from .dense import DenseIndex
from .hybrid import RRF_K, Hit, HybridRetriever, RetrievalResult
from .summarise import ExtractiveSummariser, Summary, SummarySentence, split_sentences
from .utility import (
    EntityMentions,
    RerankResult,
    UtilityReranker,
    UtilityTrainingResult,
    fact_text,
    knowledge_query,
    train_utility_reranker,
)

__all__ = [
    "RRF_K",
    "BM25Config",
    "BM25Index",
    "Corpus",
    "CorpusUpdate",
    "DenseIndex",
    "Document",
    "EntityMentions",
    "ExtractiveSummariser",
    "Hit",
    "HybridRetriever",
    "RerankResult",
    "RetrievalResult",
    "Summary",
    "SummarySentence",
    "UtilityReranker",
    "UtilityTrainingResult",
    "corpus_from_dataset",
    "fact_text",
    "knowledge_query",
    "split_sentences",
    "train_utility_reranker",
]
