"""Compress retrieved documents about an entity S into a token budget, keeping provenance.

:class:`ExtractiveSummariser` is the fallback when no LLM is configured (DESIGN 4.1, "Summary"); an
``LLMSummariser`` with the same ``run(entity_name, hits, token_budget) -> Summary`` contract comes
with the LLM layer.

Method: split every hit into sentences, embed them with the shared MiniLM encoder, then pick
sentences greedily by Maximal Marginal Relevance (Carbonell & Goldstein 1998)::

    mmr(s) = lam * cos(s, target) - (1 - lam) * max(cos(s, t) for t already chosen)

where ``target`` is the embedding of the entity name (plus the query, when given). ``lam = 0.7``
leans towards relevance; a sentence whose similarity to a chosen one reaches ``max_redundancy``
(0.9) is never chosen: near-duplicates add no knowledge, whatever budget is left. A sentence that
does not fit the remaining budget is skipped and shorter ones are still tried.

Tokens are counted with the encoder's WordPiece tokenizer by default (``token_counter="tokenizer"``,
no special tokens): a subword count close to what an LLM prompt costs. ``"whitespace"`` counts
whitespace-separated words instead (cheaper, undercounts by roughly 1.3x on English prose).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from kg_builder.errors import InvalidInputError
from kg_builder.models.encoder import TextEncoder

from .hybrid import Hit

TokenCounter = Literal["tokenizer", "whitespace"]

# A sentence ends at . ! ? (and closing quotes/brackets) followed by whitespace, or glued to a
# capitalised word ("archaea.Since", a real UMLS artefact). Abbreviations and initials do not end one.
_BOUNDARY = re.compile(r"[.!?]+[\"')\]]*(?:\s+|(?=[A-Z][a-z]))")
_ABBREVIATIONS = frozenset({"e.g", "i.e", "dr", "mr", "mrs", "ms", "st", "vs", "etc", "fig", "no", "approx",
                            "ca", "cf", "al", "jr", "sr", "prof", "inc", "ltd", "co"})


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text`` (whitespace-trimmed, empty ones dropped)."""
    sentences, start = [], 0
    for match in _BOUNDARY.finditer(text):
        before = text[start:match.start()].rsplit(None, 1)
        last_word = before[-1].lower() if before else ""
        if last_word in _ABBREVIATIONS or (len(last_word) == 1 and last_word.isalpha()):
            continue
        sentences.append(text[start:match.end()].strip())
        start = match.end()
    sentences.append(text[start:].strip())
    return [s for s in sentences if s]


class SummarySentence(BaseModel):
    """A chosen sentence: where it came from (document id, sentence position) and why (relevance
    to the entity, the step at which MMR picked it)."""

    text: str
    doc_id: str
    position: int
    tokens: int
    relevance: float
    picked: int


class Summary(BaseModel):
    """Extractive summary: ``text`` is the chosen sentences in reading order (hit rank, then position
    in the document); ``document_ids`` are the documents that contributed, in hit order."""

    entity: str
    text: str
    document_ids: list[str] = Field(default_factory=list)
    sentences: list[SummarySentence] = Field(default_factory=list)
    token_count: int = 0
    token_budget: int
    token_counter: TokenCounter


class ExtractiveSummariser:
    """MMR sentence selection conditioned on the entity, within a token budget.

    Args:
        encoder: the shared sentence encoder (embeddings and, by default, token counting).
        lam: relevance / redundancy trade-off in [0, 1] (1 = relevance only).
        max_redundancy: sentences at least this similar to a chosen one are never chosen.
        token_counter: ``"tokenizer"`` (encoder WordPiece) or ``"whitespace"``.
        min_words: shorter fragments (headings, "See also.") are not candidates.

    Example:
        >>> summary = ExtractiveSummariser(encoder).run("virus", retriever.run("virus").hits, 120)
        >>> summary.document_ids[0]
        'umls:doc:virus'
    """

    def __init__(self, encoder: TextEncoder, *, lam: float = 0.7, max_redundancy: float = 0.9,
                 token_counter: TokenCounter = "tokenizer", min_words: int = 3):
        if not 0.0 <= lam <= 1.0:
            raise InvalidInputError("lam", f"must be in [0, 1], got {lam}")
        self.encoder = encoder
        self.lam = lam
        self.max_redundancy = max_redundancy
        self.token_counter: TokenCounter = token_counter
        self.min_words = min_words

    def count_tokens(self, text: str) -> int:
        if self.token_counter == "whitespace":
            return len(text.split())
        return len(self.encoder.tokenizer.tokenize(text))

    def run(self, entity_name: str, hits: Sequence[Hit], token_budget: int, *,
            query: str | None = None) -> Summary:
        """Summarise ``hits`` about ``entity_name`` in at most ``token_budget`` tokens."""
        if token_budget < 1:
            raise InvalidInputError("token_budget", f"must be at least 1, got {token_budget}")
        if not entity_name.strip():
            raise InvalidInputError("entity_name", "is empty")
        candidates = [(hit_rank, hit.doc_id, position, sentence)
                      for hit_rank, hit in enumerate(hits)
                      for position, sentence in enumerate(split_sentences(hit.text))
                      if len(sentence.split()) >= self.min_words]
        tokens = [self.count_tokens(sentence) for *_, sentence in candidates]
        keep = [i for i, n in enumerate(tokens) if n <= token_budget]
        candidates, tokens = [candidates[i] for i in keep], [tokens[i] for i in keep]
        empty = Summary(entity=entity_name, text="", token_budget=token_budget,
                        token_counter=self.token_counter)
        if not candidates:
            return empty

        target_text = entity_name if not query else f"{entity_name}: {query}"
        vectors = self.encoder.encode([target_text] + [sentence for *_, sentence in candidates])
        target, sentence_vectors = vectors[0], vectors[1:]
        relevance = sentence_vectors @ target
        picked = self._select(sentence_vectors, relevance, tokens, token_budget)

        chosen = [SummarySentence(text=candidates[i][3], doc_id=candidates[i][1], position=candidates[i][2],
                                  tokens=tokens[i], relevance=float(relevance[i]), picked=step)
                  for step, i in enumerate(picked)]
        hit_rank = {i: candidates[i][0] for i in picked}
        reading = sorted(zip(picked, chosen, strict=True),
                         key=lambda pair: (hit_rank[pair[0]], pair[1].position))
        sentences = [sentence for _, sentence in reading]
        document_ids = list(dict.fromkeys(sentence.doc_id for sentence in sentences))
        return Summary(entity=entity_name, text=" ".join(s.text for s in sentences),
                       document_ids=document_ids, sentences=sentences,
                       token_count=sum(s.tokens for s in sentences), token_budget=token_budget,
                       token_counter=self.token_counter)

    def _select(self, vectors: np.ndarray, relevance: np.ndarray, tokens: list[int],
                budget: int) -> list[int]:
        """Greedy MMR under the budget; returns candidate indices in the order picked."""
        n = len(tokens)
        available = np.ones(n, dtype=bool)
        redundancy = np.zeros(n, dtype=np.float32)
        token_array = np.asarray(tokens)
        picked: list[int] = []
        left = budget
        while True:
            available &= (token_array <= left) & (redundancy < self.max_redundancy)
            if not available.any():
                return picked
            mmr = self.lam * relevance - (1.0 - self.lam) * redundancy
            best = int(np.argmax(np.where(available, mmr, -np.inf)))
            picked.append(best)
            available[best] = False
            left -= tokens[best]
            redundancy = np.maximum(redundancy, vectors @ vectors[best])


__all__ = ["ExtractiveSummariser", "Summary", "SummarySentence", "split_sentences"]
