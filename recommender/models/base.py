"""The student contract shared by every sequential recommender (RecBole's, on a dict of tensors).

An *interaction* is a plain ``dict[str, Tensor]`` with RecBole's field names:

==================  ==========  ===========================================================
``item_id_list``    ``[B, L]``  history, item index + 1, right-padded with 0 (RecBole pads so)
``item_length``     ``[B]``     number of real items in each row
``item_id``         ``[B]``     the next item (index + 1): ``calculate_loss`` target, ``predict`` query
``target_seq``      ``[B, L]``  optional: the next item at *every* position (0 = none); when present,
                                ``calculate_loss`` averages CE over all of them (one pass over a
                                user's sequence = every augmented prefix row of RecBole's train file)
==================  ==========  ===========================================================

Item representation (the knowledge supplement): ``item = E_id[i] + W k_i`` where ``k_i`` is a row
of a fixed knowledge matrix (MiniLM title vectors, graph embeddings, or both concatenated) and
``W`` a learned ``Linear(k, d, bias=False)``. The knowledge is **added**, never substituted; with
``knowledge=None`` the model is ID-only, and an all-zero knowledge matrix gives exactly the ID-only
model (no bias, and ``W`` is drawn from a forked generator after every other parameter, so the same
seed gives the same ID weights and the same dropout masks). The knowledge matrix is a buffer: saved with the weights, never trained.

Graph score (optional, ``graph_scores``): a fixed ``[n_items, g]`` matrix of a graph embedding
set's item vectors. The student's logit of item ``i`` then gains a second, non-parametric path::

    s(i | h) = f(h) . item_i  +  w * cos(q(h), g_i) / 0.07

where ``q(h)`` is the decayed mean of the history's graph vectors (:mod:`recommender.graph_score`,
the scorer the set was trained with, and the graph half of the text + graph teacher) and ``w`` a
fixed weight (a buffer, 1.0 in a trained student). :func:`recommender.train.train_student` trains
the network with ``w = 0`` and sets ``w = 1.0`` after training: late fusion. Trained jointly
(the network learning the residual over the graph's score, ``w`` learned or fixed), the students
scored *below* the graph set alone on valid, because the set was fitted to the same training
sequences, so on them its score is better than it is on new ones (README, "graph-score term").
Serving appends the ``g``-wide query to the sequence state and the weighted graph vectors to the
item table, so a request stays one matrix-vector product. The vectors are a buffer, saved with the weights; ``graph_scores=None`` leaves the model unchanged.

Hooks for distillation (later steps): :meth:`SequentialRecommender.hidden` (the sequence
representation a teacher's hidden state is matched against), :meth:`item_embeddings` (the item
table a teacher's semantic embeddings are aligned with) and :meth:`encode` (all positions).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from kg_builder.errors import InvalidInputError

from ..graph_score import GRAPH_SCORE_WEIGHT, GRAPH_TEMPERATURE, decayed_last_queries, decayed_prefix_queries

Interaction = dict[str, Tensor]

ITEM_SEQ = "item_id_list"
ITEM_SEQ_LEN = "item_length"
POS_ITEM_ID = "item_id"
TARGET_SEQ = "target_seq"


class SequentialRecommender(nn.Module):
    """Base class: item table with the knowledge supplement, CE loss over all items, the contract.

    Subclasses set ``name`` and implement :meth:`encode`.

    Args:
        n_items: number of real items (ids 1..n_items; 0 is padding).
        hidden_size: item and sequence representation size ``d``.
        max_len: longest history the model reads (older items are cut off).
        knowledge: optional fixed matrix ``[n_items, k]`` (row = item index), float.
        graph_scores: optional fixed matrix ``[n_items, g]`` of graph vectors for the graph-score
            term (see the module docstring).
    """

    name = "base"

    def __init__(self, n_items: int, *, hidden_size: int = 64, max_len: int = 50,
                 knowledge: Tensor | None = None, graph_scores: Tensor | None = None):
        super().__init__()
        if n_items < 1:
            raise InvalidInputError("n_items", f"must be >= 1, got {n_items}")
        self.n_items = n_items
        self.hidden_size = hidden_size
        self.max_len = max_len
        self.item_embedding = nn.Embedding(n_items + 1, hidden_size, padding_idx=0)
        self.knowledge_projection: nn.Linear | None = None
        if knowledge is not None:
            knowledge = _item_matrix("knowledge", knowledge, n_items, "k")
            self.register_buffer("knowledge", torch.cat([torch.zeros(1, knowledge.shape[1]), knowledge]))
        else:
            self.knowledge = None
        if graph_scores is not None:
            graph_scores = _item_matrix("graph_scores", graph_scores, n_items, "g")
            self.register_buffer("graph_score_vectors", nn.functional.normalize(graph_scores, dim=-1))
            self.register_buffer("graph_score_weight", torch.tensor(GRAPH_SCORE_WEIGHT))  # no RNG drawn
        else:
            self.graph_score_vectors = self.graph_score_weight = None

    def _add_knowledge_projection(self) -> None:
        """Called by subclasses at the end of ``__init__`` (after their own initialisation)."""
        if self.knowledge is not None:
            # Drawn from a forked generator: the global RNG stream (later dropout masks, batch
            # order) stays that of the ID-only model with the same seed.
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(torch.initial_seed() + 1)
                self.knowledge_projection = nn.Linear(self.knowledge.shape[1], self.hidden_size, bias=False)
                nn.init.normal_(self.knowledge_projection.weight, std=0.02)

    # --- representations ----------------------------------------------------------------------
    def item_table(self) -> Tensor:
        """``[n_items + 1, d]``: ID embedding plus projected knowledge (row 0 = padding)."""
        table = self.item_embedding.weight
        if self.knowledge_projection is not None:
            table = table + self.knowledge_projection(self.knowledge)
        return table

    def item_embeddings(self) -> Tensor:
        """``[n_items, d]``: every real item's representation (the scoring table)."""
        return self.item_table()[1:]

    def embed_items(self, item_seq: Tensor) -> Tensor:
        """``[B, L] -> [B, L, d]`` (padding rows stay 0 for the ID part and 0 knowledge)."""
        emb = self.item_embedding(item_seq)
        if self.knowledge_projection is not None:
            emb = emb + self.knowledge_projection(self.knowledge[item_seq])
        return emb

    def encode(self, item_seq: Tensor, item_seq_len: Tensor) -> Tensor:
        """``[B, L], [B] -> [B, L, d]``: the representation after each position (causal)."""
        raise NotImplementedError

    def forward(self, item_seq: Tensor, item_seq_len: Tensor) -> Tensor:
        """``[B, d]``: the representation after the last real item (RecBole's ``forward``)."""
        output = self.encode(item_seq, item_seq_len)
        index = (item_seq_len - 1).clamp(min=0).view(-1, 1, 1).expand(-1, 1, output.shape[-1])
        return output.gather(1, index).squeeze(1)

    def hidden(self, interaction: Interaction) -> Tensor:
        """``[B, d]`` sequence representation (distillation hook)."""
        return self.forward(interaction[ITEM_SEQ], interaction[ITEM_SEQ_LEN])

    # --- the graph-score term -----------------------------------------------------------------
    def graph_score_logits(self, item_seq: Tensor, mask: Tensor) -> Tensor | None:
        """``[N, n_items]``: the weighted graph score at the ``mask``ed positions (None without it, or
        while its weight is 0, as during training)."""
        if self.graph_score_vectors is None or not float(self.graph_score_weight):
            return None
        queries = decayed_prefix_queries(item_seq, self.graph_score_vectors)[mask]
        return self.graph_score_weight * (queries @ self.graph_score_vectors.T) / GRAPH_TEMPERATURE

    def graph_score_queries(self, item_seq: Tensor, item_seq_len: Tensor) -> Tensor | None:
        """``[B, g]``: the graph query after each sequence's last item (None without the term, or while
        its weight is 0). Its product with :meth:`graph_score_items` is the term."""
        if self.graph_score_vectors is None or not float(self.graph_score_weight):
            return None
        return decayed_last_queries(item_seq, item_seq_len, self.graph_score_vectors)

    def graph_score_items(self) -> Tensor:
        """``[n_items, g]``: the items' graph vectors times ``w / 0.07`` (serving stores them beside the
        item table, so a request is still one matrix-vector product)."""
        return self.graph_score_vectors * (self.graph_score_weight / GRAPH_TEMPERATURE)

    def last_graph_score_logits(self, item_seq: Tensor, item_seq_len: Tensor) -> Tensor | None:
        """``[B, n_items]``: the weighted graph score after each sequence's last item (None without it,
        or while its weight is 0)."""
        queries = self.graph_score_queries(item_seq, item_seq_len)
        return None if queries is None else queries @ self.graph_score_items().T

    # --- RecBole's contract ------------------------------------------------------------------
    def calculate_loss(self, interaction: Interaction) -> Tensor:
        """Cross-entropy over all items (RecBole SASRec's default ``loss_type='CE'``)."""
        item_seq, item_seq_len = interaction[ITEM_SEQ], interaction[ITEM_SEQ_LEN]
        table = self.item_embeddings()
        if TARGET_SEQ in interaction:
            targets = interaction[TARGET_SEQ]
            output = self.encode(item_seq, item_seq_len)
            mask = targets > 0
            logits = output[mask] @ table.T
            graph = self.graph_score_logits(item_seq, mask)
            if graph is not None:
                logits = logits + graph
            return nn.functional.cross_entropy(logits, targets[mask] - 1)
        return nn.functional.cross_entropy(self.full_sort_predict(interaction), interaction[POS_ITEM_ID] - 1)

    def predict(self, interaction: Interaction) -> Tensor:
        """``[B]``: the score of ``item_id`` for each row."""
        if self.graph_score_vectors is not None and float(self.graph_score_weight):
            return self.full_sort_predict(interaction).gather(1, (interaction[POS_ITEM_ID] - 1).view(-1, 1)).squeeze(1)
        seq_output = self.hidden(interaction)
        items = self.item_table()[interaction[POS_ITEM_ID]]
        return (seq_output * items).sum(-1)

    def full_sort_predict(self, interaction: Interaction) -> Tensor:
        """``[B, n_items]``: scores of every real item (column = item index; padding left out)."""
        scores = self.hidden(interaction) @ self.item_embeddings().T
        graph = self.last_graph_score_logits(interaction[ITEM_SEQ], interaction[ITEM_SEQ_LEN])
        return scores if graph is None else scores + graph

    # --- saving -------------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """Constructor arguments (without the knowledge matrix) to rebuild the model."""
        return {"n_items": self.n_items, "hidden_size": self.hidden_size, "max_len": self.max_len}

    @property
    def knowledge_dim(self) -> int | None:
        return None if self.knowledge is None else int(self.knowledge.shape[1])

    @property
    def graph_score_dim(self) -> int | None:
        return None if self.graph_score_vectors is None else int(self.graph_score_vectors.shape[1])


def with_graph_score(model: SequentialRecommender, graph_scores: Tensor) -> SequentialRecommender:
    """The trained ``model`` (without the graph-score term) plus that term at ``GRAPH_SCORE_WEIGHT``, in eval mode.

    Training is late fusion (:func:`recommender.train.train_student` trains the network with the
    term's weight at 0), so this is exactly what training the same student with ``graph_scores``
    again would return, without the training (tested)."""
    from . import get

    if model.graph_score_vectors is not None:
        raise InvalidInputError("model", f"{model.name} already has a graph-score term")
    knowledge = None if model.knowledge is None else model.knowledge[1:].clone()
    fused = get(model.name)(**model.config(), knowledge=knowledge, graph_scores=graph_scores)
    missing, unexpected = fused.load_state_dict(model.state_dict(), strict=False)
    if unexpected or set(missing) != {"graph_score_vectors", "graph_score_weight"}:
        raise RuntimeError(f"graph-score fusion: unexpected state keys {unexpected} / missing {missing}")
    return fused.eval()


def _item_matrix(field: str, value: Tensor, n_items: int, width: str) -> Tensor:
    """``value`` as a float ``[n_items, width]`` matrix of finite numbers, else an error naming ``field``."""
    matrix = torch.as_tensor(value, dtype=torch.float32)
    if matrix.ndim != 2 or matrix.shape[0] != n_items:
        raise InvalidInputError(field, f"must be [n_items={n_items}, {width}], got {tuple(matrix.shape)}")
    if not torch.isfinite(matrix).all():
        raise InvalidInputError(field, "holds NaN or infinite values")
    return matrix


def init_recbole_weights(module: nn.Module, std: float = 0.02) -> None:
    """RecBole's ``_init_weights``: normal(0, 0.02) for Linear/Embedding, LayerNorm to (1, 0)."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        module.weight.data.normal_(mean=0.0, std=std)
    elif isinstance(module, nn.LayerNorm):
        module.bias.data.zero_()
        module.weight.data.fill_(1.0)
    if isinstance(module, nn.Linear) and module.bias is not None:
        module.bias.data.zero_()


def to_tensors(batch: dict[str, Any]) -> Interaction:
    """A dict of arrays as an interaction (int64 tensors for the index fields)."""
    return {k: torch.as_tensor(v) for k, v in batch.items()}
