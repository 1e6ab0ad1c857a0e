"""The offline relation classifier P(r | S) of DESIGN 4.2: which relations an entity S has as a head.

A small multi-label head (one hidden ReLU layer, or linear with ``hidden=0``) over *frozen* MiniLM
embeddings of S's text (:func:`entity_text`: ``"name: description"``) with one sigmoid output per
relation of the pool. It is learnt from the graph's existing (S, r) pairs (S is the head of some
triple with relation r) and proposes relation candidates for S when no LLM is available, or
ranks the pool before the LLM filters it.

Training lives in :mod:`kg_builder.training.relations` (``kgforge train relations --dataset D``).
Only the head is saved (the encoder is the installed MiniLM): ``config.json`` (relation ids,
sizes, training metadata) + ``model.safetensors``.

Shapes:
    forward(embeddings: Tensor [n, 384]) -> Tensor [n, num_relations]  (logits)
    predict(texts: Sequence[str]) -> ndarray [len(texts), num_relations]  (probabilities)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from kg_builder.datasets.text import name_and_description
from kg_builder.errors import InvalidInputError
from kg_builder.models.encoder import EMBEDDING_DIM, TextEncoder
from kg_builder.models.saved import load_folder, resolve_folder, save_folder
from kg_builder.settings import Settings

KIND = "relation-classifier"
DESCRIPTION_CHARS = 300
_NAME_PREFIX = "relations-"
_CONFIG_KEYS = {"relation_ids", "input_dim", "hidden", "dropout"}
_FOLDER_KEYS = {"kind", "version", "created"}


def default_model_name(dataset: str) -> str:
    """The folder name ``kgforge train relations`` writes for a dataset: ``relations-<dataset>``."""
    return f"{_NAME_PREFIX}{dataset}"


def train_command(dataset: str | None) -> str:
    return f"kgforge train relations --dataset {dataset or 'DATASET'}"


def entity_text(name: str, description: str | None) -> str:
    """What the classifier reads for an entity: ``"name: description"`` with the description cut at
    a word boundary to :data:`DESCRIPTION_CHARS` characters (MiniLM reads 64 tokens anyway), or the
    name alone. The same form as the dense bi-encoder's entity text."""
    name = " ".join(name.split())
    if not name:
        raise InvalidInputError("name", "is empty; an entity needs a name")
    return name_and_description(name, description, DESCRIPTION_CHARS)


class RelationClassifier(nn.Module):
    """Multi-label P(r | S) over a fixed relation pool, from S's sentence embedding.

    Args:
        relation_ids: the relation pool (index order = output columns).
        input_dim: embedding size (384 for MiniLM).
        hidden: hidden units of the one ReLU layer; 0 makes the head linear.
        dropout: dropout on the hidden layer while training.
        meta: training metadata saved with the model (dataset, metrics, seed, ...).

    Example:
        >>> model = RelationClassifier.load("relations-umls")
        >>> probs = model.predict([entity_text("virus", "A virus is a small infectious agent that ...")])
        >>> model.top_k(probs[0], k=3)  # UMLS, seed 13: rounded
        [('issue_in', 0.99), ('isa', 0.99), ('affects', 0.59)]
    """

    def __init__(self, relation_ids: Sequence[str], *, input_dim: int = EMBEDDING_DIM, hidden: int = 256,
                 dropout: float = 0.1, meta: dict[str, Any] | None = None):
        super().__init__()
        self.relation_ids = list(relation_ids)
        if not self.relation_ids:
            raise InvalidInputError("relation_ids", "is empty; the classifier needs a relation pool")
        if len(set(self.relation_ids)) != len(self.relation_ids):
            raise InvalidInputError("relation_ids", "has duplicates")
        if input_dim < 1 or hidden < 0:
            raise InvalidInputError("hidden", f"need input_dim >= 1 and hidden >= 0, got {input_dim} and {hidden}")
        if not 0.0 <= dropout < 1.0:
            raise InvalidInputError("dropout", f"must be in [0, 1), got {dropout}")
        self.input_dim = input_dim
        self.hidden = hidden
        self.dropout = dropout
        self.meta = dict(meta or {})
        num = len(self.relation_ids)
        if hidden:
            self.head = nn.Sequential(nn.Linear(input_dim, hidden), nn.ReLU(), nn.Dropout(dropout),
                                      nn.Linear(hidden, num))
        else:
            self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(input_dim, num))
        self.reset_parameters()

    @property
    def num_relations(self) -> int:
        return len(self.relation_ids)

    def reset_parameters(self) -> None:
        for layer in self.head:
            if isinstance(layer, nn.Linear):
                layer.reset_parameters()

    def forward(self, embeddings: Tensor) -> Tensor:
        """Logits [n, num_relations] for embeddings [n, input_dim]."""
        return self.head(embeddings)

    @torch.no_grad()
    def predict_embeddings(self, embeddings: np.ndarray) -> np.ndarray:
        """Probabilities [n, num_relations] (float32) for precomputed embeddings [n, input_dim]."""
        matrix = np.asarray(embeddings, dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[1] != self.input_dim:
            raise InvalidInputError("embeddings", f"expected shape [n, {self.input_dim}], got {list(matrix.shape)}")
        was_training = self.training
        self.eval()
        try:
            return torch.sigmoid(self(torch.from_numpy(matrix))).numpy()
        finally:
            self.train(was_training)

    def predict(self, texts: Sequence[str], encoder: TextEncoder | None = None) -> np.ndarray:
        """Probabilities [len(texts), num_relations] for entity texts (:func:`entity_text` form).

        ``encoder`` defaults to a freshly loaded MiniLM; pass one to reuse it across calls.
        """
        if isinstance(texts, str):
            raise InvalidInputError("texts", "give a list of entity texts, not one string")
        if any(not isinstance(t, str) or not t.strip() for t in texts):
            raise InvalidInputError("texts", "every entity text must be a non-empty string")
        if not texts:
            return np.zeros((0, self.num_relations), dtype=np.float32)
        encoder = encoder or TextEncoder()
        return self.predict_embeddings(encoder.encode(list(texts)))

    def top_k(self, probabilities: np.ndarray, k: int = 5) -> list[tuple[str, float]]:
        """The ``k`` most probable relations of one row of :meth:`predict`, best first."""
        if k < 1:
            raise InvalidInputError("k", f"must be at least 1, got {k}")
        row = np.asarray(probabilities).reshape(-1)
        if row.size != self.num_relations:
            raise InvalidInputError("probabilities", f"expected {self.num_relations} values, got {row.size}")
        order = np.argsort(-row, kind="stable")[:k]
        return [(self.relation_ids[i], float(row[i])) for i in order]

    # --- persistence ---------------------------------------------------------------------------
    def save(self, directory: Path | str) -> Path:
        """Write ``config.json`` (relation ids, sizes, meta) and ``model.safetensors`` into ``directory``."""
        config = {**self.meta, "relation_ids": self.relation_ids, "input_dim": self.input_dim,
                  "hidden": self.hidden, "dropout": self.dropout}
        return save_folder(Path(directory), kind=KIND, config=config, state=self.state_dict())

    @classmethod
    def load(cls, name_or_dir: str | Path, *, settings: Settings | None = None) -> RelationClassifier:
        """Load by model name (``KGFORGE_HOME/models/<name>``) or folder path.

        Raises:
            ModelNotTrainedError: no such folder; the message names ``kgforge train relations``.
        """
        directory, dataset = resolve_folder(name_or_dir, settings or Settings(), _NAME_PREFIX)
        config, state = load_folder(directory, kind=KIND, train_hint=train_command(dataset))
        meta = {k: v for k, v in config.items() if k not in _CONFIG_KEYS | _FOLDER_KEYS}
        model = cls(config["relation_ids"], input_dim=config["input_dim"], hidden=config["hidden"],
                    dropout=config["dropout"], meta=meta)
        model.load_state_dict(state)
        model.eval()
        return model


__all__ = ["KIND", "RelationClassifier", "default_model_name", "entity_text", "train_command"]
