"""The LLM teacher: chain-of-thought rationales through the OpenAI-compatible endpoint.

**No LLM runs on the development machines** (DESIGN section 2: no LLM weights, no GPU). This teacher
is exercised only against the project's OpenAI-compatible TEST DOUBLE (``tests/support/
openai_double.py``, scripted answers); every accuracy number in the recommender table that stands
for "LLM knowledge" comes from the language-model teacher (:mod:`.text_teacher`) instead, as
DESIGN 4.7 says. With a real endpoint (``KGFORGE_LLM_BASE_URL``, e.g. ``vllm serve``) it runs as is.

For one user (history oldest first, at most ``max_history`` 15 newest items shown, newest first,
each as ``title | brand | category path``) the prompt ``rec_rationale@v1`` asks, in this order
(coarse to fine):

1. ``reasoning``: a short chain of thought over the history;
2. ``brand_preferences`` and ``category_preferences`` the history shows;
3. ``coarse_categories``: the categories the next purchase is likely in;
4. ``recommendations``: specific products (free-text descriptions; the LLM knows no item ids).

The answer is validated against :class:`Rationale` (pydantic) by the client; an invalid answer,
or one whose lists are empty, gives no rationale for that user (``failed``; never a silent
default). The rationale text (:meth:`Rationale.text`) is embedded by the text encoder (MiniLM)
into the user's **knowledge vector** ``[384]`` (REKI/KAR's reasoning knowledge; seed-user
propagation in :mod:`.seed_users`). Recommendations are mapped to catalogue items by vector recall
(cosine of each recommendation's embedding with the items' text vectors), which gives the teacher's
top-k for ranking distillation.

Calls go through :class:`kg_builder.llm.LLM` (``ainvoke``, JSON-schema structured output; the
client bounds concurrency, retries and counts tokens): :attr:`LLMTeacher.calls` and the client's
``usage`` say what a run cost.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from pydantic import BaseModel, Field

from kg_builder.errors import InvalidInputError

PROMPT_ID = "rec_rationale@v1"

SYSTEM = (
    "You are a shopping assistant that explains a customer's taste before recommending. Think step "
    "by step: first infer the brands and product categories the customer prefers from their purchase "
    "history, then name the broad categories their next purchase is likely in, then recommend specific "
    "products within them. Answer only with JSON that matches the schema.")

USER = (
    "Purchase history, most recent first (title | brand | category):\n{history}\n\n"
    "Give: reasoning (2-4 sentences), brand_preferences, category_preferences, coarse_categories "
    "(1-3 broad categories for the next purchase), and recommendations ({n} specific products, "
    "each a short product description, most likely first).")


class Rationale(BaseModel):
    """The structured answer of ``rec_rationale@v1``."""

    reasoning: str = Field(min_length=1, max_length=2000)
    brand_preferences: list[str] = Field(default_factory=list, max_length=20)
    category_preferences: list[str] = Field(min_length=1, max_length=20)
    coarse_categories: list[str] = Field(min_length=1, max_length=10)
    recommendations: list[str] = Field(min_length=1, max_length=50)

    def text(self) -> str:
        """The text embedded into the user's knowledge vector."""
        parts = [self.reasoning]
        if self.brand_preferences:
            parts.append("Brands: " + ", ".join(self.brand_preferences) + ".")
        parts.append("Categories: " + ", ".join(self.category_preferences) + ".")
        parts.append("Next: " + ", ".join(self.coarse_categories) + ". " + "; ".join(self.recommendations) + ".")
        return " ".join(parts)


@dataclass
class UserKnowledge:
    """Rationale knowledge of a set of users: ``vectors[i]`` is ``users[i]``'s (zero where it failed)."""

    users: list[str]
    vectors: np.ndarray
    rationales: dict[str, Rationale] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    calls: int = 0


class LLMTeacher:
    """Rationales from an LLM, embedded by a text encoder.

    Args:
        llm: a :class:`kg_builder.llm.LLM` (``OpenAICompatibleLLM`` against vLLM; the test double in tests).
        encoder: anything with ``encode(texts) -> ndarray [n, D]`` (L2-normalised rows): MiniLM.
        item_texts: the item lines shown in prompts (row = item index), ``title | brand | category``.
        item_vectors: ``[n_items, D]`` item text vectors for mapping recommendations to items
            (e.g. the text teacher's :meth:`item_embeddings`, or MiniLM title vectors).
    """

    def __init__(self, llm, encoder, *, item_texts: Sequence[str], item_vectors: np.ndarray | None = None,
                 max_history: int = 15, n_recommendations: int = 10):
        if max_history < 1:
            raise InvalidInputError("max_history", f"must be >= 1, got {max_history}")
        self.llm, self.encoder = llm, encoder
        self.item_texts = list(item_texts)
        self.item_vectors = None if item_vectors is None else np.asarray(item_vectors, dtype=np.float32)
        self.max_history, self.n_recommendations = max_history, n_recommendations
        self.calls = 0

    @classmethod
    def item_lines(cls, items) -> list[str]:
        """``title | brand | category path`` for :class:`~kg_builder.datasets.records.ItemRecord` s."""
        return [" | ".join([item.title or "(no title)", item.brand or "(no brand)",
                            " > ".join(item.categories[1:] or item.categories) or "(no category)"])
                for item in items]

    def messages(self, history: Sequence[int]) -> list[dict[str, str]]:
        """The chat messages of ``rec_rationale@v1`` for a history of item indices (oldest first)."""
        if not history:
            raise InvalidInputError("history", "an empty history has no rationale")
        bad = [i for i in history if not 0 <= int(i) < len(self.item_texts)]
        if bad:
            raise InvalidInputError("history", f"unknown item index(es): {bad[:10]}")
        recent = list(history)[-self.max_history:][::-1]
        lines = "\n".join(f"{n}. {self.item_texts[i]}" for n, i in enumerate(recent, start=1))
        return [{"role": "system", "content": SYSTEM},
                {"role": "user", "content": USER.format(history=lines, n=self.n_recommendations)}]

    async def arationale(self, history: Sequence[int]) -> Rationale:
        """One user's rationale. Raises :class:`kg_builder.llm.LLMOutputError` on an invalid answer."""
        from kg_builder.llm.base import OnError

        self.calls += 1
        response = await self.llm.ainvoke(self.messages(history), schema=Rationale, on_error=OnError.RAISE)
        return response.parsed

    def rationale(self, history: Sequence[int]) -> Rationale:
        return asyncio.run(self.arationale(history))

    def user_knowledge(self, histories: dict[str, Sequence[int]]) -> UserKnowledge:
        """Rationales for every user of ``histories`` (concurrently, bounded by the client), embedded."""
        return asyncio.run(self.auser_knowledge(histories))

    async def auser_knowledge(self, histories: dict[str, Sequence[int]]) -> UserKnowledge:
        from kg_builder.llm.base import LLMError

        users = list(histories)
        calls_before = self.calls

        async def one(user: str):
            try:
                return await self.arationale(histories[user])
            except LLMError as e:  # an invalid answer after the client's re-asks: recorded, not hidden
                return e

        answers = await asyncio.gather(*(one(u) for u in users))
        rationales = {u: a for u, a in zip(users, answers) if isinstance(a, Rationale)}
        failed = {u: f"{type(a).__name__}: {a}" for u, a in zip(users, answers) if not isinstance(a, Rationale)}
        vectors = np.zeros((len(users), self._dim()), dtype=np.float32)
        ok = [i for i, u in enumerate(users) if u in rationales]
        if ok:
            vectors[ok] = self.encoder.encode([rationales[users[i]].text() for i in ok])
        return UserKnowledge(users=users, vectors=vectors, rationales=rationales, failed=failed,
                             calls=self.calls - calls_before)

    def topk(self, rationale: Rationale, k: int = 10, *, exclude: Sequence[int] = ()) -> tuple[list[int], list[float]]:
        """Items for the rationale's recommendations by vector recall: each item's score is its best
        cosine with any recommendation (coarse categories count once, at half weight)."""
        if self.item_vectors is None:
            raise InvalidInputError("item_vectors", "give the item vectors to map recommendations to items")
        queries = self.encoder.encode(list(rationale.recommendations) + list(rationale.coarse_categories))
        n_fine = len(rationale.recommendations)
        sims = queries @ self.item_vectors.T
        scores = sims[:n_fine].max(0) + 0.5 * sims[n_fine:].max(0)
        scores[list(exclude)] = -np.inf
        order = np.argsort(-scores, kind="stable")[:k]
        return order.tolist(), [float(scores[i]) for i in order]

    def _dim(self) -> int:
        if self.item_vectors is not None:
            return int(self.item_vectors.shape[1])
        dim = getattr(self.encoder, "dim", None)
        return int(dim) if dim else int(self.encoder.encode(["x"]).shape[1])


__all__ = ["PROMPT_ID", "LLMTeacher", "Rationale", "UserKnowledge"]
