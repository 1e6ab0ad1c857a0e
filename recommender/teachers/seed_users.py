"""Seed-user knowledge: teacher calls for a representative seed set of users only.

1. **History embeddings**: each user's history as the recency-weighted mean of its items' text
   vectors (weight ``decay ** age``, decay 0.8, newest age 0), L2-normalised.
2. **Seeds**: k-means (scikit-learn, ``n_init=3``, seeded) on the history embeddings with
   ``n_seeds`` clusters; each cluster's seed is the user nearest its centroid.
3. The teacher (the LLM in production; here the language-model teacher stands in) produces a
   knowledge vector for the **seeds only**.
4. **Propagation**: every other user takes the similarity-weighted mean of its ``neighbours`` (3)
   nearest seeds' knowledge vectors (cosine of history embeddings, weights ``softmax(sim / 0.05)``),
   L2-normalised; a seed keeps its own.

:func:`seed_user_knowledge` returns the propagated matrix and the call count: teacher calls drop
from ``n_users`` to ``n_seeds`` (the saving is ``1 - n_seeds / n_users``).
:func:`evaluate_seed_users` measures the accuracy cost with the language-model teacher standing in
for the LLM: user knowledge vector = the teacher's user embedding, and each user is ranked by it
directly (all users' own vectors vs seed-propagated ones), on the leave-one-out protocol.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from kg_builder.errors import InvalidInputError


def history_embeddings(histories: Sequence[Sequence[int]], item_vectors: np.ndarray, *,
                       decay: float = 0.8) -> np.ndarray:
    """``[U, D]``: recency-weighted mean of each history's item vectors, rows L2-normalised."""
    if not 0.0 < decay <= 1.0:
        raise InvalidInputError("decay", f"must be in (0, 1], got {decay}")
    item_vectors = np.asarray(item_vectors, dtype=np.float32)
    out = np.zeros((len(histories), item_vectors.shape[1]), dtype=np.float32)
    for row, history in enumerate(histories):
        if len(history) == 0:
            raise InvalidInputError("history", f"user row {row} has an empty history")
        weights = decay ** np.arange(len(history) - 1, -1, -1, dtype=np.float32)
        out[row] = weights @ item_vectors[np.asarray(history)]
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def choose_seeds(embeddings: np.ndarray, n_seeds: int, *, seed: int = 0) -> np.ndarray:
    """Indices of the ``n_seeds`` representative users (nearest each k-means centroid), sorted."""
    from sklearn.cluster import KMeans

    n_users = len(embeddings)
    if not 1 <= n_seeds <= n_users:
        raise InvalidInputError("n_seeds", f"must be in 1..{n_users} (the number of users), got {n_seeds}")
    kmeans = KMeans(n_clusters=n_seeds, n_init=3, random_state=seed).fit(embeddings)
    seeds = set()
    for cluster in range(n_seeds):
        members = np.flatnonzero(kmeans.labels_ == cluster)
        if len(members) == 0:
            continue
        distances = np.linalg.norm(embeddings[members] - kmeans.cluster_centers_[cluster], axis=1)
        seeds.add(int(members[np.argmin(distances)]))
    return np.array(sorted(seeds), dtype=np.int64)


def propagate(embeddings: np.ndarray, seeds: np.ndarray, seed_knowledge: np.ndarray, *, neighbours: int = 3,
              temperature: float = 0.05) -> np.ndarray:
    """``[U, K]``: seeds keep ``seed_knowledge``; every other user the softmax(sim / temperature)-weighted
    mean of its ``neighbours`` most similar seeds' knowledge, L2-normalised."""
    seeds = np.asarray(seeds, dtype=np.int64)
    seed_knowledge = np.asarray(seed_knowledge, dtype=np.float32)
    if len(seeds) != len(seed_knowledge):
        raise InvalidInputError("seed_knowledge", f"{len(seed_knowledge)} rows for {len(seeds)} seeds")
    if neighbours < 1:
        raise InvalidInputError("neighbours", f"must be >= 1, got {neighbours}")
    k = min(neighbours, len(seeds))
    sims = embeddings @ embeddings[seeds].T  # [U, S]
    top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    top_sims = np.take_along_axis(sims, top, axis=1)
    weights = np.exp((top_sims - top_sims.max(1, keepdims=True)) / temperature)
    weights /= weights.sum(1, keepdims=True)
    out = np.einsum("uk,ukd->ud", weights, seed_knowledge[top])
    out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    out[seeds] = seed_knowledge
    return out.astype(np.float32)


@dataclass
class SeedKnowledge:
    """Propagated user knowledge: ``vectors[i]`` for user row ``i``; ``seeds`` are the rows called."""

    vectors: np.ndarray
    seeds: np.ndarray
    teacher_calls: int
    calls_saved: int

    @property
    def saved_fraction(self) -> float:
        return self.calls_saved / max(self.teacher_calls + self.calls_saved, 1)


def seed_user_knowledge(histories: Sequence[Sequence[int]], item_vectors: np.ndarray,
                        knowledge_of: Callable[[np.ndarray], np.ndarray], *, n_seeds: int, seed: int = 0,
                        neighbours: int = 3, temperature: float = 0.05) -> SeedKnowledge:
    """Call ``knowledge_of(seed_rows) -> [S, K]`` (the teacher) for the seeds only and propagate."""
    embeddings = history_embeddings(histories, item_vectors)
    seeds = choose_seeds(embeddings, n_seeds, seed=seed)
    knowledge = np.asarray(knowledge_of(seeds), dtype=np.float32)
    vectors = propagate(embeddings, seeds, knowledge, neighbours=neighbours, temperature=temperature)
    return SeedKnowledge(vectors=vectors, seeds=seeds, teacher_calls=len(seeds),
                         calls_saved=len(histories) - len(seeds))


def evaluate_seed_users(teacher, sequences, *, n_seeds: int, seed: int = 0, neighbours: int = 3,
                        temperature: float = 0.05, batch_size: int = 512) -> dict:
    """The accuracy cost of seed users with a :class:`~.text_teacher.TextTeacher` standing in for
    the LLM: rank every user's items by (a) its own teacher user embedding and (b) the embedding
    propagated from the seeds; leave-one-out full ranking, history excluded."""
    import torch

    from ..data import history_batch
    from ..metrics import rank_scores
    from ..models.base import to_tensors

    with torch.no_grad():
        items = teacher.item_embeddings().numpy()
        own = np.concatenate([
            teacher.hidden(to_tensors(history_batch(sequences.histories[s:s + batch_size], teacher.max_len))).numpy()
            for s in range(0, len(sequences.histories), batch_size)])
    result = seed_user_knowledge(sequences.histories, items, lambda rows: own[rows], n_seeds=n_seeds, seed=seed,
                                 neighbours=neighbours, temperature=temperature)
    all_users = rank_scores(own @ items.T, sequences)
    seeded = rank_scores(result.vectors @ items.T, sequences)
    return {"users": len(sequences.users), "seeds": int(len(result.seeds)), "teacher_calls": result.teacher_calls,
            "calls_saved": result.calls_saved, "saved_fraction": round(result.saved_fraction, 4),
            "all_users": {k: round(v, 4) for k, v in all_users.items()},
            "seed_propagated": {k: round(v, 4) for k, v in seeded.items()},
            "relative_ndcg@10": round(seeded["ndcg@10"] / max(all_users["ndcg@10"], 1e-12), 4)}


__all__ = ["SeedKnowledge", "choose_seeds", "evaluate_seed_users", "history_embeddings", "propagate",
           "seed_user_knowledge"]
