"""A teacher that knows the items' text **and** the graph: the text teacher fused with a graph embedding set.

DESIGN 4.7 distils the students from "a larger teacher that knows the items' text and the graph".
:class:`GraphFusedTeacher` is that teacher, built from two saved, versioned parts:

* the language-model teacher (:class:`~recommender.teachers.text_teacher.TextTeacher`: fine-tuned
  MiniLM item text and a Transformer over the history), and
* a graph embedding set (:mod:`gnn`, e.g. ``gnn-amazon18_scientific``: LightGCN over the
  user-item-brand-category graph, with the generated triples when it was trained ``--with-job-edges``).

Score of item ``i`` after a history ``h`` (same logit scale on both sides, cosine / 0.07)::

    s(i | h) = cos(u_text(h), t_i) / 0.07  +  graph_weight * cos(q_graph(h), g_i) / 0.07

``u_text`` is the text teacher's user state; ``q_graph`` the decayed mean (0.7 per step) of the
last 10 history items' normalised graph vectors, the scorer the embedding set was trained and
evaluated with (:mod:`gnn.objectives`). ``graph_weight`` is 4.0, chosen on a train-only holdout that
neither the text teacher (trained with the seed-0 student holdout held out) nor the embedding set
saw (``benchmarks/bench_graph_weight.py --teacher``: holdout NDCG@10 0.0750 / 0.0870 / 0.0950 / 0.1004
/ **0.1040** / 0.1028 at weight 0 / 0.5 / 1 / 2 / 4 / 8). Until 2026-12-03 it was 1.0, set before any
measurement.

For distillation (:class:`recommender.distill.Distiller`): :meth:`position_logits` (the fused score
at every position) drives DLLM2Rec's ranking distillation; the semantic space SLMRec's feature terms
and DLLM2Rec's embedding term align with (:meth:`encode`, :meth:`item_embeddings`) stays the text
teacher's. The fused teacher is not saved on its own: it is rebuilt from its two saved parts, whose
names and versions the distilled student's training config records (:meth:`describe`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from gnn.objectives import DECAY, WINDOW
from kg_builder.errors import InvalidInputError

from ..graph_score import GRAPH_TEMPERATURE, decayed_last_queries, decayed_prefix_queries
from ..models.base import ITEM_SEQ, ITEM_SEQ_LEN, POS_ITEM_ID

GRAPH_WEIGHT = 4.0


class GraphFusedTeacher(nn.Module):
    """The text teacher's score plus ``graph_weight`` times the graph set's decayed-history score.

    Args:
        text_teacher: a trained :class:`~recommender.teachers.text_teacher.TextTeacher`.
        graph_vectors: ``[n_items, g]`` the items' rows of a graph embedding set, in item-index order.
        graph_weight: weight of the graph logit (>= 0).
        parts: names and versions of the two saved parts, recorded by :meth:`describe`.
    """

    name = "text+graph teacher"

    def __init__(self, text_teacher: nn.Module, graph_vectors: np.ndarray | Tensor, *,
                 graph_weight: float = GRAPH_WEIGHT, parts: dict[str, Any] | None = None):
        super().__init__()
        vectors = torch.as_tensor(np.asarray(graph_vectors, dtype=np.float32))
        if vectors.ndim != 2 or vectors.shape[0] != text_teacher.n_items:
            raise InvalidInputError("graph_vectors", f"need one row per item ({text_teacher.n_items}), "
                                                     f"got shape {tuple(vectors.shape)}")
        if not torch.isfinite(vectors).all():
            raise InvalidInputError("graph_vectors", "holds NaN or infinite values")
        if not (graph_weight >= 0 and np.isfinite(graph_weight)):
            raise InvalidInputError("graph_weight", f"must be a finite number >= 0, got {graph_weight}")
        self.text_teacher = text_teacher
        self.register_buffer("graph_vectors", nn.functional.normalize(vectors, dim=-1))
        self.graph_weight = float(graph_weight)
        self.parts = dict(parts or {})
        self.n_items, self.max_len, self.temperature = text_teacher.n_items, text_teacher.max_len, text_teacher.temperature
        self.eval()

    # --- the text teacher's semantic space (SLMRec, DLLM2Rec's embedding term) -------------------
    def encode(self, item_seq: Tensor, item_seq_len: Tensor) -> Tensor:
        return self.text_teacher.encode(item_seq, item_seq_len)

    def hidden(self, interaction: dict[str, Tensor]) -> Tensor:
        return self.text_teacher.hidden(interaction)

    def item_embeddings(self) -> Tensor:
        return self.text_teacher.item_embeddings()

    # --- the fused score ----------------------------------------------------------------------
    def graph_logits(self, queries: Tensor) -> Tensor:
        return queries @ self.graph_vectors.T / GRAPH_TEMPERATURE

    def position_logits(self, item_seq: Tensor, item_seq_len: Tensor, mask: Tensor, states: Tensor) -> Tensor:
        """``[N, n_items]`` fused logits at the ``mask``ed positions (``states``: the text teacher's
        ``encode(...)[mask]``, already computed by the caller)."""
        text = self.text_teacher.position_logits(item_seq, item_seq_len, mask, states)
        if self.graph_weight == 0:
            return text
        return text + self.graph_weight * self.graph_logits(decayed_prefix_queries(item_seq, self.graph_vectors)[mask])

    def full_sort_predict(self, interaction: dict[str, Tensor]) -> Tensor:
        text = self.text_teacher.full_sort_predict(interaction)
        item_seq, item_seq_len = interaction[ITEM_SEQ], interaction[ITEM_SEQ_LEN]
        queries = decayed_last_queries(item_seq, item_seq_len, self.graph_vectors)
        return text + self.graph_weight * self.graph_logits(queries)

    def predict(self, interaction: dict[str, Tensor]) -> Tensor:
        scores = self.full_sort_predict(interaction)
        return scores.gather(1, (interaction[POS_ITEM_ID] - 1).view(-1, 1)).squeeze(1)

    def describe(self) -> dict[str, Any]:
        return {"teacher": self.name, "graph_weight": self.graph_weight, "graph_temperature": GRAPH_TEMPERATURE,
                "graph_query": f"decayed mean (decay {DECAY}, window {WINDOW})", **self.parts}


def load_graph_teacher(text_teacher: nn.Module, text_teacher_ref: str, graph_set: str, data, *, settings=None,
                       graph_weight: float = GRAPH_WEIGHT) -> GraphFusedTeacher:
    """The fused teacher from a loaded text teacher and a saved embedding set (``name`` or ``name@version``;
    the version read is recorded either way)."""
    from gnn.store import EmbeddingStore
    from kg_builder.settings import get_settings

    from ..knowledge import graph_knowledge

    name, _, version = graph_set.partition("@")
    if not version:
        graph_set = f"{name}@{EmbeddingStore(settings or get_settings()).latest_version(name)}"
    vectors = graph_knowledge(graph_set, data, settings=settings)
    return GraphFusedTeacher(text_teacher, vectors, graph_weight=graph_weight,
                             parts={"text_teacher": text_teacher_ref, "graph_set": graph_set})


__all__ = ["GRAPH_WEIGHT", "GraphFusedTeacher", "decayed_prefix_queries", "load_graph_teacher"]
