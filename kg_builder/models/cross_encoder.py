"""KG-BERT-style triple cross-encoder (Yao et al. 2019) on MiniLM, for reranking and classification.

The triple ``(h, r, t)`` is read as one sequence ``[CLS] h text [SEP] r text [SEP] t text [SEP]``
(entity text = ``"name: description"``, cut; see :func:`kg_builder.models.dense.entity_text`); a
linear head on the ``[CLS]`` state gives a plausibility logit. Trained with binary cross-entropy on
true triples against corrupted negatives (:func:`kg_builder.evaluation.triples.corrupt_triples`);
training lives in :mod:`kg_builder.training.reranker`.

Uses: :meth:`TripleCrossEncoder.score` for triple classification and for the pipeline's rerank
step; :meth:`TripleCrossEncoder.as_reranker` plugs into :func:`kg_builder.evaluation.kgc.evaluate_ranking`
to rescore the bi-encoder's top-k (full ranking of every entity with a cross-encoder is far too slow
on a CPU, as DESIGN.md 4.4 says).

Saved as a folder: ``config.json``, ``model.safetensors`` (MiniLM + head), ``entities.json``.

Shapes:
    forward(triples: Sequence[TripleRecord]) -> Tensor [len(triples)] (logits)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from kg_builder.datasets import EntityRecord, RelationRecord, TripleRecord
from kg_builder.errors import InvalidInputError, KGForgeError
from kg_builder.evaluation.kgc import Query, Reranker
from kg_builder.models.dense import entity_text
from kg_builder.models.encoder import encoder_path
from kg_builder.models.saved import load_folder, resolve_folder, save_folder
from kg_builder.settings import Settings

KIND = "triple-cross-encoder"
ENTITIES_FILE = "entities.json"


def default_model_name(dataset: str) -> str:
    return f"reranker-{dataset}"


def train_command(dataset: str | None) -> str:
    return f"kgforge train reranker --dataset {dataset or 'DATASET'}"


@dataclass
class CrossEncoderConfig:
    max_length: int = 96
    description_chars: int = 160
    threshold: float = 0.0  # logit threshold chosen on dev (triple classification)

    def __post_init__(self) -> None:
        if self.max_length < 16:
            raise InvalidInputError("max_length", "must be at least 16 tokens")


class TripleCrossEncoder(nn.Module):
    """MiniLM cross-encoder with a one-logit head over one dataset's entity and relation texts."""

    def __init__(self, entities: Sequence[EntityRecord], relations: Sequence[RelationRecord],
                 config: CrossEncoderConfig | None = None, *, path: Path | str | None = None,
                 meta: dict[str, Any] | None = None):
        super().__init__()
        from transformers import AutoModel, AutoTokenizer

        self.config = config or CrossEncoderConfig()
        self.path = Path(path) if path is not None else encoder_path()
        self.tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
        self.model = AutoModel.from_pretrained(self.path, local_files_only=True)
        self.head = nn.Linear(self.model.config.hidden_size, 1)
        self.entities = list(entities)
        self.relations = list(relations)
        self.entity_texts = {e.id: entity_text(e, self.config.description_chars) for e in self.entities}
        self.relation_texts = {r.id: r.text for r in self.relations}
        self.meta = dict(meta or {})

    def _texts(self, triples: Sequence[TripleRecord]) -> tuple[list[str], list[str], list[str]]:
        try:
            heads = [self.entity_texts[t.head] for t in triples]
            relations = [self.relation_texts[t.relation] for t in triples]
            tails = [self.entity_texts[t.tail] for t in triples]
        except KeyError as e:
            raise InvalidInputError("triple", f"{e.args[0]!r} is not an entity or relation this model knows") from None
        return heads, relations, tails

    @staticmethod
    def _pairs(heads: Sequence[str], relations: Sequence[str], tails: Sequence[str]) -> tuple[list[str], list[str]]:
        if not len(heads) == len(relations) == len(tails):
            raise InvalidInputError("triples", "heads, relations and tails must have the same length")
        return list(heads), [f"{r} [SEP] {t}" for r, t in zip(relations, tails, strict=True)]

    def forward(self, triples: Sequence[TripleRecord]) -> Tensor:
        return self.forward_texts(*self._pairs(*self._texts(triples)))

    def forward_texts(self, first: Sequence[str], second: Sequence[str]) -> Tensor:
        """Logits for text pairs ``(head text, "relation text [SEP] tail text")``."""
        batch = self.tokenizer(list(first), list(second), padding=True, truncation="longest_first",
                               max_length=self.config.max_length, return_tensors="pt")
        hidden = self.model(**batch).last_hidden_state[:, 0]
        return self.head(hidden).squeeze(-1)

    @torch.no_grad()
    def score(self, triples: Sequence[TripleRecord], *, batch_size: int = 64) -> np.ndarray:
        """Plausibility logits (higher = more plausible), eval mode, no gradients."""
        return self.score_texts(*self._texts(triples), batch_size=batch_size)

    @torch.no_grad()
    def score_texts(self, heads: Sequence[str], relations: Sequence[str], tails: Sequence[str], *,
                    batch_size: int = 64) -> np.ndarray:
        """Plausibility logits of triples given as texts: entities the model has never seen (a
        generated target, a source entity submitted in a job) are scored from their name and
        description, exactly as the known ones are."""
        first, second = self._pairs(heads, relations, tails)
        was_training = self.training
        self.eval()
        try:
            out = [self.forward_texts(first[i:i + batch_size], second[i:i + batch_size]).numpy()
                   for i in range(0, len(first), batch_size)]
        finally:
            self.train(was_training)
        return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)

    def probability(self, triples: Sequence[TripleRecord]) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.score(triples)))

    def as_reranker(self) -> Reranker:
        """A :data:`kg_builder.evaluation.kgc.Reranker`: scores candidates for a query."""
        def rerank(query: Query, candidates: Sequence[str]) -> Sequence[float]:
            if query.inverse:
                triples = [TripleRecord(c, query.relation, query.entity) for c in candidates]
            else:
                triples = [TripleRecord(query.entity, query.relation, c) for c in candidates]
            return self.score(triples).tolist()

        return rerank

    # --- persistence ---------------------------------------------------------------------------
    def save(self, directory: Path | str) -> Path:
        directory = Path(directory)
        state = {f"encoder.{k}": v for k, v in self.model.state_dict().items()}
        state.update({f"head.{k}": v for k, v in self.head.state_dict().items()})
        save_folder(directory, kind=KIND, config={"cross_encoder": asdict(self.config), **self.meta}, state=state)
        texts = {"entities": [[e.id, e.name, e.description] for e in self.entities],
                 "relations": [[r.id, r.text] for r in self.relations]}
        (directory / ENTITIES_FILE).write_text(json.dumps(texts))
        return directory

    @classmethod
    def load(cls, name_or_dir: str | Path, *, settings: Settings | None = None) -> "TripleCrossEncoder":
        """Load by name (``KGFORGE_HOME/models/<name>``) or folder path.

        Raises:
            ModelNotTrainedError: nothing trained there; the message names the training command.
        """
        settings = settings or Settings()
        directory, dataset = resolve_folder(name_or_dir, settings, "reranker-")
        config, state = load_folder(directory, kind=KIND, train_hint=train_command(dataset))
        texts = json.loads((directory / ENTITIES_FILE).read_text())
        meta = {k: v for k, v in config.items() if k not in {"cross_encoder", "kind", "version", "created"}}
        model = cls([EntityRecord(*row) for row in texts["entities"]],
                     [RelationRecord(*row) for row in texts["relations"]],
                     CrossEncoderConfig(**config["cross_encoder"]), path=encoder_path(settings), meta=meta)
        encoder_state = {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}
        missing, unexpected = model.model.load_state_dict(encoder_state, strict=False)
        if unexpected or [k for k in missing if not k.endswith("position_ids")]:
            raise KGForgeError(f"{directory}: weights do not match the encoder; retrain with "
                               f"`{train_command(dataset)}`")
        model.head.load_state_dict({k[len("head."):]: v for k, v in state.items() if k.startswith("head.")})
        model.eval()
        return model
