"""Graph-structural link prediction: ComplEx with N3 regularisation and reciprocal relations.

Lacroix, Usunier & Obozinski (ICML 2018), "Canonical Tensor Decomposition for Knowledge Base
Completion": every query ``(h, r, ?)`` is scored against *all* entities at once (1-N scoring,
cross-entropy over the entities), head queries are asked as ``(t, r⁻¹, ?)`` with a learned
reciprocal relation, and the weighted N3 norm of the factors regularises. It is the graph
generator of DESIGN.md 4.3 (structure-based link prediction) and the first-stage ranker for KG
completion where entity text carries little signal (UMLS names are generic semantic types).

Training lives in :mod:`kg_builder.training.structural`. :meth:`ComplEx.score` follows
:class:`kg_builder.evaluation.kgc.Scorer`. Incremental updates (``kgforge train structural
--resume``): :meth:`ComplEx.grown` appends rows for new entities and relations and keeps every
trained row; the saved ``config.json`` records ``trained_on`` (triples, entities, the graph's
training-edge count when trained from the graph), ``vocab.json`` the entity ids.

Shapes:
    forward(heads: LongTensor [B], relations: LongTensor [B]) -> Tensor [B, num_entities]
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from kg_builder.errors import InvalidInputError
from kg_builder.models.saved import load_folder, resolve_folder, save_folder
from kg_builder.ranking import Query
from kg_builder.settings import Settings

KIND = "complex-n3"
VOCAB_FILE = "vocab.json"


def default_model_name(dataset: str) -> str:
    return f"structural-{dataset}"


def train_command(dataset: str | None) -> str:
    return f"kgforge train structural --dataset {dataset or 'DATASET'}"


class ComplEx(nn.Module):
    """ComplEx over fixed entity and relation vocabularies (relations doubled for reciprocals).

    Args:
        entity_ids / relation_ids: the vocabularies (index order = embedding rows).
        rank: complex dimension (each embedding holds ``2 * rank`` reals).
        init_scale: embeddings start as N(0, 1) * init_scale.
    """

    def __init__(self, entity_ids: Sequence[str], relation_ids: Sequence[str], *, rank: int = 200,
                 init_scale: float = 1e-3, meta: dict[str, Any] | None = None):
        super().__init__()
        if rank < 1:
            raise InvalidInputError("rank", "must be positive")
        self.entity_ids = list(entity_ids)
        self.relation_ids = list(relation_ids)
        self.entity_index = {e: i for i, e in enumerate(self.entity_ids)}
        self.relation_index = {r: i for i, r in enumerate(self.relation_ids)}
        self.rank = rank
        self.init_scale = init_scale
        self.meta = dict(meta or {})
        self.entities = nn.Embedding(len(self.entity_ids), 2 * rank)
        self.relations = nn.Embedding(2 * len(self.relation_ids), 2 * rank)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.entities.weight.normal_().mul_(self.init_scale)
            self.relations.weight.normal_().mul_(self.init_scale)

    def relation_row(self, relation: str, inverse: bool) -> int:
        try:
            row = self.relation_index[relation]
        except KeyError:
            raise InvalidInputError("relation", f"{relation!r} is not a relation this model knows") from None
        return row + len(self.relation_ids) if inverse else row

    def entity_row(self, entity: str) -> int:
        try:
            return self.entity_index[entity]
        except KeyError:
            raise InvalidInputError("entity", f"{entity!r} is not an entity this model ranks") from None

    def _query(self, heads: Tensor, relations: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        h = self.entities(heads)
        r = self.relations(relations)
        h_re, h_im = h[:, : self.rank], h[:, self.rank:]
        r_re, r_im = r[:, : self.rank], r[:, self.rank:]
        return h_re * r_re - h_im * r_im, h_re * r_im + h_im * r_re, h, r

    def forward(self, heads: Tensor, relations: Tensor) -> Tensor:
        q_re, q_im, _, _ = self._query(heads, relations)
        e = self.entities.weight
        return q_re @ e[:, : self.rank].T + q_im @ e[:, self.rank:].T

    def loss(self, heads: Tensor, relations: Tensor, tails: Tensor, *, regularization: float) -> Tensor:
        """Cross-entropy over all entities + weighted N3 of the factors of the batch."""
        q_re, q_im, h, r = self._query(heads, relations)
        e = self.entities.weight
        scores = q_re @ e[:, : self.rank].T + q_im @ e[:, self.rank:].T
        t = self.entities(tails)

        def modulus(x: Tensor) -> Tensor:
            return torch.sqrt(x[:, : self.rank] ** 2 + x[:, self.rank:] ** 2)

        n3 = sum((modulus(f) ** 3).sum() for f in (h, r, t)) / heads.shape[0]
        return nn.functional.cross_entropy(scores, tails) + regularization * n3

    @torch.no_grad()
    def query_vectors(self, heads: Tensor, relations: Tensor) -> Tensor:
        """``[B, 2 * rank]``: the vector each query ``(h, r, ?)`` scores every entity row against
        (``forward`` is ``query_vectors(h, r) @ entities.T``)."""
        q_re, q_im, _, _ = self._query(heads, relations)
        return torch.cat([q_re, q_im], dim=1)

    def grown(self, entity_ids: Sequence[str], relation_ids: Sequence[str] = ()) -> "ComplEx":
        """A copy with more entities and relations appended (an incremental update of the graph).

        Old rows keep their trained values exactly (a relation's reciprocal row moves with it: rows
        are ``[forward relations, reciprocal relations]``); ids already known are skipped. New rows
        start as a fresh model's do (N(0, 1) x ``init_scale``): near zero, they score about 0
        against every query instead of adding random competitors at the trained scale;
        :func:`kg_builder.training.structural.resume_structural` then moves the entities that have
        known neighbours to their neighbours' query vectors.
        """
        new_entities = [e for e in dict.fromkeys(entity_ids) if e not in self.entity_index]
        new_relations = [r for r in dict.fromkeys(relation_ids) if r not in self.relation_index]
        model = ComplEx(self.entity_ids + new_entities, self.relation_ids + new_relations, rank=self.rank,
                        init_scale=self.init_scale, meta=dict(self.meta))
        with torch.no_grad():
            old_e, old_r = self.entities.weight, self.relations.weight
            n_e, n_r = len(self.entity_ids), len(self.relation_ids)
            model.entities.weight[:n_e] = old_e
            m_r = len(model.relation_ids)
            fresh = model.relations.weight.detach().clone()
            fresh[:n_r], fresh[m_r:m_r + n_r] = old_r[:n_r], old_r[n_r:]
            model.relations.weight.copy_(fresh)
        model.train(self.training)
        return model

    def old_relation_rows(self, old_relations: int) -> list[int]:
        """Row numbers in this model of the first ``old_relations`` relations' rows (both directions)."""
        m_r = len(self.relation_ids)
        return list(range(old_relations)) + list(range(m_r, m_r + old_relations))

    @torch.no_grad()
    def score(self, queries: Sequence[Query]) -> np.ndarray:
        """:class:`~kg_builder.evaluation.kgc.Scorer`: ``[len(queries), num_entities]`` scores."""
        heads = torch.tensor([self.entity_row(q.entity) for q in queries], dtype=torch.long)
        rels = torch.tensor([self.relation_row(q.relation, q.inverse) for q in queries], dtype=torch.long)
        return self(heads, rels).numpy()

    def top_k(self, entity: str, relation: str, *, inverse: bool = False, k: int = 10) -> list[tuple[str, float]]:
        scores = self.score([Query(entity, relation, inverse)])[0]
        top = np.argsort(-scores)[:k]
        return [(self.entity_ids[i], float(scores[i])) for i in top]
    # --- persistence ---------------------------------------------------------------------------
    def save(self, directory: Path | str) -> Path:
        directory = Path(directory)
        save_folder(directory, kind=KIND, config={"rank": self.rank, "init_scale": self.init_scale, **self.meta},
                    state=self.state_dict())
        (directory / VOCAB_FILE).write_text(json.dumps({"entities": self.entity_ids, "relations": self.relation_ids}))
        return directory

    @classmethod
    def load(cls, name_or_dir: str | Path, *, settings: Settings | None = None) -> "ComplEx":
        settings = settings or Settings()
        directory, dataset = resolve_folder(name_or_dir, settings, "structural-")
        config, state = load_folder(directory, kind=KIND, train_hint=train_command(dataset))
        vocab = json.loads((directory / VOCAB_FILE).read_text())
        meta = {k: v for k, v in config.items() if k not in {"rank", "init_scale", "kind", "version", "created"}}
        model = cls(vocab["entities"], vocab["relations"], rank=config["rank"], init_scale=config["init_scale"],
                    meta=meta)
        model.load_state_dict(state)
        model.eval()
        return model
