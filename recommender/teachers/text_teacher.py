"""The language-model teacher: a text-based sequential recommender on the MiniLM encoder.

What it is (a UniSRec-style text recommender, larger and slower than the students, no item IDs):

* **Item side = text.** Each item's text is its normalised title
  (:class:`kg_builder.products.titles.TitleNormaliser`, brand in front) plus its leaf category,
  cut at ``item_tokens`` (32) MiniLM tokens. The item vector is MiniLM's mean-pooled output,
  **fine-tuned**: the top ``trainable_layers`` (1) of MiniLM's 6 Transformer layers train on the
  next-item task; the frozen lower layers' token states are computed once and cached, so a training
  step runs only the top layer(s) for the batch's items. A linear map 384 -> 384 follows, started
  as the identity (``whiten=True`` starts it as BERT-whitening of the pooled vectors instead: on the
  holdout after one epoch that gave 0.005 NDCG@10, so it is off), and trained. With
  ``id_embeddings`` (default) each item also has a learned 384-d ID vector (normal, std 0.02) added
  to its L2-normalised text vector, then normalised again: text first, IDs for what text cannot say
  (added to the raw pooled vector, whose norm is ~10x larger, the IDs barely moved: holdout
  NDCG@10 0.027 after two epochs).
* **User side = the history's text**, read as the sequence of its items' text vectors (newest
  last, at most ``max_len`` 50, as the students) by a 2-layer causal Transformer (width 384, 4 heads, learned
  positions); the user state is its output at the last position. Score = cosine(user, item) / 0.07.
* **Training**: the students' data and holdout (:mod:`recommender.data`: every position of every
  train sequence, early stopping on the train-only holdout, ``valid`` never seen); full softmax over
  **all** items, where the batch's items carry gradients and every other item uses its vector from
  the last refresh (the whole table is re-encoded at the end of every epoch); AdamW, lr 1e-4 for
  MiniLM's layer(s), 3e-3 for the rest. Budget: ``max_minutes`` (default 15, MiniLM's token cache
  included), ``epochs`` (10), and
  ``user_fraction`` (the share of training users used, default 1.0).
* **Cost**: ~23 M parameters (MiniLM) against ~0.3 M for a student; the frozen token states of the
  4,385 Scientific items take ~110 MB (float16) while training only.

The trained teacher is a :class:`TextTeacher` (registered as ``text-teacher`` in the student
registry, so :mod:`recommender.store`, :func:`recommender.metrics.model_metrics` and
:func:`recommender.recommend.recommend` handle it like a student). It stores the **cached item
vectors** (so serving it needs no MiniLM run for known items) and exposes the teacher interface the
distillers use:

* :meth:`TextTeacher.topk` - the top-k items with scores for each row of an interaction;
* :meth:`TextTeacher.item_embeddings` - the semantic item embeddings ``[n_items, 384]``;
* :meth:`TextTeacher.hidden` / :meth:`TextTeacher.encode` - the user hidden state (last / every
  position) in the same 384-d space.

Shapes: ``item_id_list [B, L]`` (index + 1, 0 = pad) -> ``encode [B, L, 384]`` ->
``hidden [B, 384]``; ``full_sort_predict [B, n_items]``.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from kg_builder.errors import InvalidInputError

from ..data import RecData, holdout_split, length_batches, pad_batch, training_windows
from ..metrics import model_metrics
from ..models import register
from ..models.base import ITEM_SEQ, ITEM_SEQ_LEN, POS_ITEM_ID, TARGET_SEQ, to_tensors

logger = logging.getLogger(__name__)

TEACHER_NAME = "text-teacher"
DIM = 384
TEMPERATURE = 0.07


def teacher_item_texts(data: RecData) -> list[str]:
    """Normalised title + leaf category of every item (row = item index)."""
    from kg_builder.products.titles import TitleNormaliser

    normaliser = TitleNormaliser()
    texts = []
    for item in data.dataset.items:
        title = item.title or ""
        text = normaliser.run(title, brand=item.brand).text if title.strip() else ""
        leaf = item.categories[-1] if item.categories else ""
        texts.append(f"{text}. {leaf}".strip(". ") if leaf else text)
    return texts


class UserTower(nn.Module):
    """Causal Transformer over a history's item vectors (the teacher's user side).

    (Measured on the train-only holdout after one epoch: adding a recency-weighted sum of the
    history's vectors as a text-similarity prior gave 0.020 NDCG@10 against 0.030 without it;
    it is not used.)"""

    def __init__(self, dim: int = DIM, *, n_layers: int = 2, n_heads: int = 4, max_len: int = 20,
                 dropout: float = 0.1):
        super().__init__()
        self.max_len = max_len
        self.position = nn.Embedding(max_len, dim)
        nn.init.normal_(self.position.weight, std=0.02)
        self.norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(dim, n_heads, dim_feedforward=2 * dim, dropout=dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.out = nn.LayerNorm(dim)

    def forward(self, item_vectors: Tensor) -> Tensor:
        """``[B, L, d]`` (right-padded) -> ``[B, L, d]`` (position t sees items <= t)."""
        length = item_vectors.shape[1]
        positions = torch.arange(length, device=item_vectors.device)
        x = self.dropout(self.norm(item_vectors + self.position(positions)[None]))
        causal = torch.triu(torch.full((length, length), float("-inf"), device=x.device), diagonal=1)
        return self.out(self.encoder(x, mask=causal, is_causal=True))


@register(TEACHER_NAME)
class TextTeacher(nn.Module):
    """The trained teacher for inference: cached item text vectors + the user tower.

    Args:
        n_items: number of items.
        dim: text vector size (MiniLM: 384).
        max_len: most recent history items read.
        knowledge: ignored (the registry's constructor contract; the teacher has no ID part).
    """

    name = TEACHER_NAME

    def __init__(self, n_items: int, *, dim: int = DIM, max_len: int = 50, n_layers: int = 2, n_heads: int = 4,
                 dropout: float = 0.1, temperature: float = TEMPERATURE, knowledge: Tensor | None = None):
        super().__init__()
        if n_items < 1:
            raise InvalidInputError("n_items", f"must be >= 1, got {n_items}")
        self.n_items, self.dim, self.max_len = n_items, dim, max_len
        self.n_layers, self.n_heads, self.dropout_prob, self.temperature = n_layers, n_heads, dropout, temperature
        self.register_buffer("item_vectors", torch.zeros(n_items, dim))
        self.user_tower = UserTower(dim, n_layers=n_layers, n_heads=n_heads, max_len=max_len, dropout=dropout)

    # --- the student-like contract ------------------------------------------------------------
    knowledge_dim = None

    def _vectors(self, item_seq: Tensor, table: Tensor) -> Tensor:
        padded = torch.cat([torch.zeros(1, table.shape[1], dtype=table.dtype), table])
        return padded[item_seq]

    def encode(self, item_seq: Tensor, item_seq_len: Tensor, table: Tensor | None = None) -> Tensor:
        """``[B, L, d]`` L2-normalised user states after each position (reads the last ``max_len``)."""
        if item_seq.shape[1] > self.max_len:  # keep each row's last max_len real items, right-padded
            item_seq, item_seq_len = _last_items(item_seq, item_seq_len, self.max_len)
        out = self.user_tower(self._vectors(item_seq, self.item_vectors if table is None else table))
        return nn.functional.normalize(out, dim=-1)

    def hidden(self, interaction: dict[str, Tensor]) -> Tensor:
        """``[B, d]``: the user hidden state after the last real item (L2-normalised)."""
        item_seq, item_seq_len = interaction[ITEM_SEQ], interaction[ITEM_SEQ_LEN]
        if item_seq.shape[1] > self.max_len:
            item_seq, item_seq_len = _last_items(item_seq, item_seq_len, self.max_len)
        output = self.encode(item_seq, item_seq_len)
        index = (item_seq_len - 1).clamp(min=0).view(-1, 1, 1).expand(-1, 1, output.shape[-1])
        return output.gather(1, index).squeeze(1)

    def item_embeddings(self) -> Tensor:
        """``[n_items, d]``: the teacher's semantic item embeddings (fine-tuned MiniLM, normalised)."""
        return self.item_vectors

    def full_sort_predict(self, interaction: dict[str, Tensor]) -> Tensor:
        return self.hidden(interaction) @ self.item_vectors.T / self.temperature

    def position_logits(self, item_seq: Tensor, item_seq_len: Tensor, mask: Tensor, states: Tensor) -> Tensor:
        """``[N, n_items]`` logits at the ``mask``ed positions from ``states = encode(...)[mask]``
        (the distillers' entry point; :class:`~recommender.teachers.graph_teacher.GraphFusedTeacher`
        adds the graph's score here)."""
        return states @ self.item_vectors.T / self.temperature

    def predict(self, interaction: dict[str, Tensor]) -> Tensor:
        items = self.item_vectors[interaction[POS_ITEM_ID] - 1]
        return (self.hidden(interaction) * items).sum(-1) / self.temperature

    def calculate_loss(self, interaction: dict[str, Tensor]) -> Tensor:
        logits = self.full_sort_predict(interaction)
        return nn.functional.cross_entropy(logits, interaction[POS_ITEM_ID] - 1)

    @torch.no_grad()
    def topk(self, interaction: dict[str, Tensor], k: int = 20, *, exclude_history: bool = True
             ) -> tuple[Tensor, Tensor]:
        """``(indices [B, k], scores [B, k])``: the teacher's best items (index, not index + 1) for
        each row, history items left out by default; scores are its logits (cosine / temperature)."""
        if k < 1:
            raise InvalidInputError("k", f"must be >= 1, got {k}")
        scores = self.full_sort_predict(interaction)
        if exclude_history:
            seq = interaction[ITEM_SEQ]
            mask = seq > 0
            rows = torch.arange(seq.shape[0]).unsqueeze(1).expand_as(seq)[mask]
            scores[rows, seq[mask] - 1] = float("-inf")
        top = torch.topk(scores, min(k, self.n_items))
        return top.indices, top.values

    def describe(self) -> dict[str, Any]:
        """What a distilled student's config records about its teacher."""
        return {"teacher": TEACHER_NAME}

    def config(self) -> dict[str, Any]:
        return {"n_items": self.n_items, "dim": self.dim, "max_len": self.max_len, "n_layers": self.n_layers,
                "n_heads": self.n_heads, "dropout": self.dropout_prob, "temperature": self.temperature}


def _last_items(item_seq: Tensor, item_seq_len: Tensor, max_len: int) -> tuple[Tensor, Tensor]:
    """Each right-padded row's last ``max_len`` real items, right-padded to ``max_len``."""
    batch = item_seq.shape[0]
    start = (item_seq_len - max_len).clamp(min=0)
    index = start.unsqueeze(1) + torch.arange(max_len).unsqueeze(0)
    index = index.clamp(max=item_seq.shape[1] - 1)
    out = item_seq.gather(1, index)
    lengths = item_seq_len.clamp(max=max_len)
    out[torch.arange(max_len).expand(batch, -1) >= lengths.unsqueeze(1)] = 0
    return out, lengths


# --- the MiniLM item side (training only) -------------------------------------------------------
class ItemTextTower(nn.Module):
    """MiniLM with its lower layers frozen and cached: ``forward(rows)`` runs only the top layers.

    The cached token states are float16 ``[n_items, item_tokens, 384]``; ``rows`` are item indices.
    """

    def __init__(self, texts: list[str], *, encoder=None, item_tokens: int = 32, trainable_layers: int = 1,
                 batch_size: int = 64, whiten: bool = False, id_embeddings: bool = True,
                 progress: Callable[[int], None] | None = None):
        super().__init__()
        from kg_builder.models.encoder import TextEncoder

        encoder = encoder if encoder is not None else TextEncoder()
        bert = encoder.model
        layers = bert.encoder.layer
        if not 1 <= trainable_layers <= len(layers):
            raise InvalidInputError("trainable_layers", f"must be in 1..{len(layers)}, got {trainable_layers}")
        self.top = nn.ModuleList(copy.deepcopy(layers[len(layers) - trainable_layers:]))
        self.project = nn.Linear(DIM, DIM)
        self.ids = nn.Embedding(len(texts), DIM) if id_embeddings else None
        if self.ids is not None:
            nn.init.normal_(self.ids.weight, std=0.02)
        with torch.no_grad():
            self.project.weight.copy_(torch.eye(DIM))
            self.project.bias.zero_()
        tokenizer = encoder.tokenizer
        frozen = len(layers) - trainable_layers
        states, masks = [], []
        bert.eval()
        with torch.no_grad():
            for start in range(0, len(texts), batch_size):
                chunk = texts[start:start + batch_size]
                tokens = tokenizer(chunk, padding="max_length", truncation=True, max_length=item_tokens,
                                   return_tensors="pt")
                out = bert(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"],
                           token_type_ids=tokens.get("token_type_ids"), output_hidden_states=True)
                states.append(out.hidden_states[frozen].to(torch.float16))
                masks.append(tokens["attention_mask"].bool())
                if progress:
                    progress(len(chunk))
        self.register_buffer("states", torch.cat(states), persistent=False)
        self.register_buffer("mask", torch.cat(masks), persistent=False)
        if whiten:
            self._init_whitening()

    @torch.no_grad()
    def _init_whitening(self, dims: int = 256, eps: float = 1e-6) -> None:
        """Start ``project`` as BERT-whitening of the pooled item vectors (mean removed, the top
        ``dims`` (256) principal directions scaled to unit variance, the other outputs zero): MiniLM's raw vectors of one shop's titles are all alike (anisotropic), and the
        whitened ones rank far better (the ``text-whitened`` knowledge of issue 10)."""
        was = self.training
        self.eval()
        pooled = []
        for start in range(0, self.states.shape[0], 256):
            rows = torch.arange(start, min(start + 256, self.states.shape[0]))
            pooled.append(self._pooled(rows))
        self.train(was)
        x = torch.cat(pooled).double()
        mean = x.mean(0)
        cov = torch.cov((x - mean).T)
        values, vectors = torch.linalg.eigh(cov)  # ascending
        keep = min(dims, x.shape[0] - 1, x.shape[1])
        values, vectors = values[-keep:], vectors[:, -keep:]
        w = torch.zeros(x.shape[1], x.shape[1], dtype=x.dtype)
        w[:, :keep] = vectors @ torch.diag(1.0 / torch.sqrt(values.clamp(min=0) + eps))  # x -> (x - mean) @ w
        self.project.weight.copy_(w.T.float())
        self.project.bias.copy_((-mean @ w).float())

    def forward(self, rows: Tensor) -> Tensor:
        """``[R]`` item indices -> ``[R, 384]`` L2-normalised text vectors (with gradients)."""
        vectors = self.text(rows)
        if self.ids is not None:
            vectors = nn.functional.normalize(vectors, dim=-1) + self.ids(rows)
        return nn.functional.normalize(vectors, dim=-1)

    def text(self, rows: Tensor) -> Tensor:
        """``[R, 384]`` the text part (projected, not normalised) of items ``rows``."""
        return self.project(self._pooled(rows))

    def combine(self, text_table: Tensor) -> Tensor:
        """Every item's vector from the text part of every item: + ID vector, L2-normalised."""
        if self.ids is not None:
            text_table = nn.functional.normalize(text_table, dim=-1) + self.ids.weight
        return nn.functional.normalize(text_table, dim=-1)

    @torch.no_grad()
    def text_table(self, batch_size: int = 256) -> Tensor:
        was = self.training
        self.eval()
        try:
            n = self.states.shape[0]
            return torch.cat([self.text(torch.arange(s, min(s + batch_size, n))) for s in range(0, n, batch_size)])
        finally:
            self.train(was)

    def _pooled(self, rows: Tensor) -> Tensor:
        hidden = self.states[rows].float()
        mask = self.mask[rows]
        additive = torch.zeros(mask.shape, dtype=hidden.dtype).masked_fill(~mask, torch.finfo(hidden.dtype).min)
        additive = additive[:, None, None, :]
        for layer in self.top:
            out = layer(hidden, attention_mask=additive)
            hidden = out[0] if isinstance(out, tuple) else out
        weights = mask.unsqueeze(-1).float()
        return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)

    @torch.no_grad()
    def table(self, batch_size: int = 256) -> Tensor:
        was = self.training
        self.eval()
        try:
            n = self.states.shape[0]
            return torch.cat([self(torch.arange(s, min(s + batch_size, n))) for s in range(0, n, batch_size)])
        finally:
            self.train(was)


@dataclass
class TeacherResult:
    model: TextTeacher
    config: dict[str, Any]
    metrics: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)


def train_text_teacher(*, data: RecData, seed: int = 0, epochs: int = 10, max_minutes: float | None = 15.0,
                       user_fraction: float = 1.0, batch_size: int = 128, lr: float = 3e-3, encoder_lr: float = 1e-4,
                       max_len: int = 50, item_tokens: int = 32, trainable_layers: int = 1, grad_items: int | None = 128, whiten: bool = False, id_embeddings: bool = True,
                       patience: int = 2,
                       holdout_fraction: float = 0.1, encoder=None, threads: int | None = 1,
                       progress: Callable[[dict[str, Any]], None] | None = None) -> TeacherResult:
    """Fine-tune the teacher on ``data.train`` (see the module docstring for every choice).

    Raises:
        InvalidInputError: a bad argument, naming it.
    """
    from ..train import TrainingDivergedError, peak_rss_mib

    if not 0.0 < user_fraction <= 1.0:
        raise InvalidInputError("user_fraction", f"must be in (0, 1], got {user_fraction}")
    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("max_len", max_len)):
        if value < 1:
            raise InvalidInputError(name, f"must be >= 1, got {value}")
    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    started = time.monotonic()
    try:
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        texts = teacher_item_texts(data)
        if progress:
            progress({"event": "row", "model": "text-teacher: caching MiniLM token states"})
        if encoder is None:
            from kg_builder.models.encoder import TextEncoder

            encoder = TextEncoder()
        minilm_parameters = sum(p.numel() for p in encoder.model.parameters())
        tower = ItemTextTower(texts, encoder=encoder, item_tokens=item_tokens, trainable_layers=trainable_layers,
                              whiten=whiten, id_embeddings=id_embeddings)
        cache_seconds = round(time.monotonic() - started, 1)
        teacher = TextTeacher(data.n_items, max_len=max_len)
        split = holdout_split(data.train, fraction=holdout_fraction, seed=seed)
        train = split.train
        if user_fraction < 1.0:
            users = sorted(train)
            keep = rng.choice(len(users), size=max(1, int(round(user_fraction * len(users)))), replace=False)
            train = {users[i]: train[users[i]] for i in sorted(keep.tolist())}
        windows = training_windows(train, max_len)
        if not windows:
            raise InvalidInputError("data", "no training sequence has two items")
        optimiser = torch.optim.AdamW([
            {"params": list(tower.top.parameters()), "lr": encoder_lr},
            {"params": [p for n, p in tower.named_parameters() if not n.startswith("top.")]
             + list(teacher.user_tower.parameters()), "lr": lr}],
            weight_decay=0.01)
        text_table = tower.text_table()
        with torch.no_grad():
            teacher.item_vectors.copy_(tower.combine(text_table))
        deadline = started + max_minutes * 60 if max_minutes else None
        history: list[dict[str, Any]] = []
        best, best_epoch, best_state, stale, stopped, epoch = -1.0, 0, None, 0, "epochs", 0
        batches = math.ceil(len(windows) / batch_size)
        for epoch in range(1, epochs + 1):
            tower.train()
            teacher.train()
            total, count = 0.0, 0
            for b, indices in enumerate(length_batches(windows, batch_size, rng)):
                batch = to_tensors(pad_batch([windows[i] for i in indices], max_len))
                seq, targets = batch[ITEM_SEQ], batch[TARGET_SEQ]
                rows = torch.unique(torch.cat([seq[seq > 0], targets[targets > 0]]) - 1)
                if grad_items and len(rows) > grad_items:  # the budget: MiniLM runs on a sample of them
                    pick = torch.as_tensor(rng.choice(len(rows), size=grad_items, replace=False))
                    rows = rows[pick.sort().values]
                fresh = tower.text(rows)
                # MiniLM's output with gradients for the sampled items, the cached text for the rest;
                # the ID vectors of every item with gradients (a full softmax, as the students have)
                current = tower.combine(text_table.index_copy(0, rows, fresh))
                output = teacher.encode(seq, batch[ITEM_SEQ_LEN], table=current)
                mask = targets > 0
                logits = output[mask] @ current.T / teacher.temperature
                loss = nn.functional.cross_entropy(logits, targets[mask] - 1)
                value = float(loss.detach())
                if not math.isfinite(value):
                    raise TrainingDivergedError(f"text teacher: loss {value} at epoch {epoch}, batch {b + 1}")
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                text_table[rows] = fresh.detach()
                total, count = total + value, count + 1
                if progress:
                    progress({"event": "batch", "epoch": epoch, "epochs": epochs, "batch": b + 1, "batches": batches,
                              "loss": value})
                if deadline and time.monotonic() > deadline:
                    stopped = "max_minutes"
                    break
            text_table = tower.text_table()
            with torch.no_grad():
                teacher.item_vectors.copy_(tower.combine(text_table))
            record = {"epoch": epoch, "loss": round(total / max(count, 1), 5),
                      "seconds": round(time.monotonic() - started, 1)}
            if len(split.holdout.users):
                score = model_metrics(teacher, split.holdout, ks=(10,))["ndcg@10"]
                record["holdout_ndcg@10"] = round(score, 5)
                if score > best:
                    best, best_epoch, stale = score, epoch, 0
                    best_state = copy.deepcopy(teacher.state_dict())
                else:
                    stale += 1
            history.append(record)
            logger.info("text teacher epoch %d: %s", epoch, record)
            if progress:
                progress({"event": "epoch", **record, "epochs": epochs})
            if stopped == "max_minutes":
                break
            if patience and stale >= patience:
                stopped = "early_stopping"
                break
        if best_state is not None:
            teacher.load_state_dict(best_state)
        teacher.eval()
        n_params = sum(p.numel() for p in tower.parameters()) + sum(p.numel() for p in teacher.parameters())
        config = {"model": TEACHER_NAME, "model_config": teacher.config(), "seed": seed, "epochs": epochs,
                  "max_minutes": max_minutes, "user_fraction": user_fraction, "batch_size": batch_size, "lr": lr,
                  "encoder_lr": encoder_lr, "item_tokens": item_tokens, "trainable_layers": trainable_layers,
                  "grad_items": grad_items, "whiten": whiten, "id_embeddings": id_embeddings,
                  "patience": patience, "holdout_fraction": holdout_fraction, "dataset": data.dataset.name,
                  "item_text": "normalised title + leaf category", "loss": "CE over all items, every position"}
        metrics = {"epochs_run": epoch, "best_epoch": best_epoch, "stopped": stopped,
                   "holdout_ndcg@10": round(best, 5), "train_users": len(train), "windows": len(windows),
                   "token_cache_seconds": cache_seconds, "seconds": round(time.monotonic() - started, 1),
                   "peak_rss_mib": peak_rss_mib(), "trainable_parameters": n_params,
                   "parameters_incl_frozen_minilm": minilm_parameters + sum(p.numel() for p in teacher.parameters())}
        return TeacherResult(model=teacher, config=config, metrics=metrics, history=history)
    finally:
        torch.set_num_threads(previous_threads)


__all__ = ["TEACHER_NAME", "TeacherResult", "TextTeacher", "teacher_item_texts", "train_text_teacher"]
