"""KG-BERT-style triple cross-encoder (Yao et al. 2019): a sentence-transformers ``CrossEncoder``
on MiniLM that reads one triple and gives one plausibility logit.

The triple ``(h, r, t)`` is read as the text pair ``(h text, "r text [SEP] t text")``, i.e. the
sequence ``[CLS] h [SEP] r [SEP] t [SEP]``; an entity's text is ``"name: description"`` (the form
:meth:`kg_builder.pipeline.snapshot.EntityInfo.text` gives), cut at ``text_chars`` at a word
boundary both in training and at scoring, so that the pipeline's texts and the training texts are
the same strings. The model is :class:`sentence_transformers.CrossEncoder` with ``num_labels=1``
initialised from the local MiniLM folder (:func:`kg_builder.models.encoder.encoder_path`, never a
download); its activation is the identity, so every score here is a logit.

Training (true triples against corrupted and generator-mined hard negatives, sentence-transformers'
``CrossEncoderTrainer``) lives in :mod:`kg_builder.training.reranker`; it stores the decision
threshold chosen on dev (:attr:`TripleCrossEncoder.threshold_logit`) and the dev metrics here.

Uses: :meth:`TripleCrossEncoder.score_texts` in the pipeline's rerank step (a feature of the
calibrated confidence, with :attr:`threshold_logit`); :meth:`score` for triple classification;
:meth:`as_reranker` plugs into :func:`kg_builder.evaluation.kgc.evaluate_ranking` to rescore a first
stage's top-k (full ranking with a cross-encoder is far too slow on a CPU, DESIGN.md 4.4).

Saved as a folder: ``config.json`` (kind, our config, dev metrics), ``cross_encoder/`` (the
sentence-transformers ``save_pretrained`` folder), ``entities.json`` (the dataset's texts, for
:meth:`score` on ids).

Shapes:
    score_texts(heads: list[str], relations: list[str], tails: list[str]) -> ndarray float32 [n] (logits)
    score(triples: Sequence[TripleRecord]) -> ndarray float32 [len(triples)] (logits)
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np

from kg_builder import __version__
from kg_builder.datasets import EntityRecord, RelationRecord, TripleRecord
from kg_builder.datasets.text import name_and_description
from kg_builder.errors import InvalidInputError, KGForgeError
from kg_builder.evaluation.kgc import Query, Reranker
from kg_builder.models.encoder import encoder_path
from kg_builder.models.saved import CONFIG, ModelNotTrainedError, resolve_folder
from kg_builder.settings import Settings

KIND = "triple-cross-encoder"
FORMAT = "sentence-transformers-cross-encoder"
MODEL_SUBDIR = "cross_encoder"
ENTITIES_FILE = "entities.json"
# The entity text every pipeline component reads (EntityInfo.text()'s default).
ENTITY_DESCRIPTION_CHARS = 300


def default_model_name(dataset: str) -> str:
    return f"reranker-{dataset}"


def train_command(dataset: str | None) -> str:
    return f"kgforge train reranker --dataset {dataset or 'DATASET'}"


def cut_text(text: str, max_chars: int) -> str:
    """``text`` cut to ``max_chars`` at a word boundary (unchanged when short enough)."""
    text = " ".join(text.split())
    if len(text) <= max_chars:
        return text
    head = text[:max_chars]
    return head.rsplit(" ", 1)[0] if " " in head else head


@dataclass
class CrossEncoderConfig:
    """How triples become text, and the dev-chosen decision threshold.

    Attributes:
        max_length: tokens of the whole pair (longest side truncated first).
        text_chars: every entity text is cut here (word boundary) before tokenising. 24 characters
            (the name, which carries the type, and a word or two of the description) keep a UMLS
            pair near 20 tokens. Measured on the busy 2-core machine, 5-minute runs: 24 chars made
            637 steps (dev ROC AUC vs corrupted 0.73), 48 chars / 32 tokens 336 steps (0.68),
            100 chars / 64 tokens 139 steps and learnt only the class prior (AUC ~0.5).
        threshold: logit threshold that maximises dev accuracy over true triples + one corrupted +
            one generator (hard) negative each (:mod:`kg_builder.training.reranker`).
    """

    max_length: int = 24
    text_chars: int = 24
    threshold: float = 0.0

    def __post_init__(self) -> None:
        if self.max_length < 16:
            raise InvalidInputError("max_length", "must be at least 16 tokens")
        if self.text_chars < 8:
            raise InvalidInputError("text_chars", "must be at least 8 characters")


@contextmanager
def _quiet_loading() -> Iterator[None]:
    """Silence transformers' load report and progress bars and sentence-transformers' "converting"
    notice (the classifier head is new by design when starting from the bi-encoder folder)."""
    from transformers.utils import logging as hf_logging

    names = ("transformers", "sentence_transformers")
    levels = {n: logging.getLogger(n).level for n in names}
    hf_level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    for n in names:
        logging.getLogger(n).setLevel(logging.ERROR)
    try:
        yield
    finally:
        for n, level in levels.items():
            logging.getLogger(n).setLevel(level)
        hf_logging.set_verbosity(hf_level)
        if bars:
            hf_logging.enable_progress_bar()


def _cross_encoder(path: Path, max_length: int) -> Any:
    import torch
    from sentence_transformers import CrossEncoder

    with _quiet_loading():
        return CrossEncoder(str(path), num_labels=1, max_length=max_length, local_files_only=True,
                            activation_fn=torch.nn.Identity())


class TripleCrossEncoder:
    """A sentence-transformers ``CrossEncoder`` over one dataset's entity and relation texts.

    Args:
        entities / relations: the dataset's records (texts for :meth:`score` on ids).
        config: text form and threshold (:class:`CrossEncoderConfig`).
        path: the folder to initialise from (default: the local MiniLM); ignored with ``model``.
        meta: dataset, seed, metrics, timings (written to ``config.json``).
        model: an existing ``CrossEncoder`` (what :meth:`load` passes).

    Example:
        >>> reranker = TripleCrossEncoder.load("reranker-umls")
        >>> logits = reranker.score_texts(["virus: ..."], ["causes"], ["disease or syndrome: ..."])
        >>> bool(logits[0] > reranker.threshold_logit)
    """

    def __init__(self, entities: Sequence[EntityRecord], relations: Sequence[RelationRecord],
                 config: CrossEncoderConfig | None = None, *, path: Path | str | None = None,
                 meta: dict[str, Any] | None = None, model: Any = None):
        self.config = config or CrossEncoderConfig()
        self.model = model if model is not None else _cross_encoder(Path(path) if path else encoder_path(),
                                                                    self.config.max_length)
        self.entities = list(entities)
        self.relations = list(relations)
        self.entity_texts = {e.id: name_and_description(e.name, e.description, ENTITY_DESCRIPTION_CHARS)
                             for e in self.entities}
        self.relation_texts = {r.id: r.text for r in self.relations}
        self.meta = dict(meta or {})

    # --- the decision threshold ------------------------------------------------------------------
    @property
    def threshold_logit(self) -> float:
        """The logit above which a triple is called true (chosen on dev for best accuracy)."""
        return float(self.config.threshold)

    @property
    def threshold(self) -> float:
        """The same threshold as a probability, ``sigmoid(threshold_logit)``."""
        return 1.0 / (1.0 + math.exp(-self.threshold_logit))

    # --- texts -----------------------------------------------------------------------------------
    def triple_texts(self, triples: Sequence[TripleRecord]) -> tuple[list[str], list[str], list[str]]:
        """(head texts, relation texts, tail texts) of triples given by ids."""
        try:
            heads = [self.entity_texts[t.head] for t in triples]
            relations = [self.relation_texts[t.relation] for t in triples]
            tails = [self.entity_texts[t.tail] for t in triples]
        except KeyError as e:
            raise InvalidInputError("triple", f"{e.args[0]!r} is not an entity or relation this model knows") from None
        return heads, relations, tails

    def pairs(self, heads: Sequence[str], relations: Sequence[str], tails: Sequence[str]) -> list[tuple[str, str]]:
        """The model's input pairs ``(head text, "relation text [SEP] tail text")``."""
        if not len(heads) == len(relations) == len(tails):
            raise InvalidInputError("triples", "heads, relations and tails must have the same length")
        n = self.config.text_chars
        return [(cut_text(h, n), f"{' '.join(r.split())} [SEP] {cut_text(t, n)}")
                for h, r, t in zip(heads, relations, tails, strict=True)]

    # --- scoring ---------------------------------------------------------------------------------
    def score_texts(self, heads: Sequence[str], relations: Sequence[str], tails: Sequence[str], *,
                    batch_size: int = 64) -> np.ndarray:
        """Plausibility logits of triples given as texts (higher = more plausible): entities the
        model has never seen (a generated target, a source entity submitted in a job) are scored
        from their name and description, exactly as the known ones are."""
        pairs = self.pairs(heads, relations, tails)
        if not pairs:
            return np.zeros(0, dtype=np.float32)
        scores = self.model.predict(pairs, batch_size=batch_size, show_progress_bar=False, convert_to_numpy=True)
        return np.asarray(scores, dtype=np.float32).reshape(len(pairs))

    def score(self, triples: Sequence[TripleRecord], *, batch_size: int = 64) -> np.ndarray:
        """Logits of triples given by the dataset's ids."""
        return self.score_texts(*self.triple_texts(triples), batch_size=batch_size)

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
        """Write ``cross_encoder/`` (sentence-transformers), ``entities.json``, then ``config.json``
        (last: a folder with ``config.json`` is complete)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / CONFIG).unlink(missing_ok=True)
        with _quiet_loading():
            self.model.save_pretrained(str(directory / MODEL_SUBDIR))
        texts = {"entities": [[e.id, e.name, e.description] for e in self.entities],
                 "relations": [[r.id, r.text] for r in self.relations]}
        (directory / ENTITIES_FILE).write_text(json.dumps(texts))
        config = {"kind": KIND, "format": FORMAT, "version": __version__,
                  "created": datetime.now(UTC).isoformat(timespec="seconds"),
                  "cross_encoder": asdict(self.config), "threshold_probability": self.threshold, **self.meta}
        (directory / CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True, default=str))
        return directory

    @classmethod
    def load(cls, name_or_dir: str | Path, *, settings: Settings | None = None) -> TripleCrossEncoder:
        """Load by name (``KGFORGE_HOME/models/<name>``) or folder path, without network.

        Raises:
            ModelNotTrainedError: nothing trained there; the message names the training command.
            KGForgeError: the folder holds another kind of model, or one written before the move to
                sentence-transformers (retrain it).
        """
        settings = settings or Settings()
        directory, dataset = resolve_folder(name_or_dir, settings, "reranker-")
        hint = train_command(dataset)
        if not (directory / CONFIG).exists():
            raise ModelNotTrainedError(f"no trained model in {directory}; train it with `{hint}`")
        config = json.loads((directory / CONFIG).read_text())
        if config.get("kind") != KIND:
            raise KGForgeError(f"{directory} holds a {config.get('kind')!r} model, not a {KIND!r} model")
        if config.get("format") != FORMAT or not (directory / MODEL_SUBDIR).is_dir():
            raise KGForgeError(f"{directory} holds a reranker from an older kgforge (no {MODEL_SUBDIR}/ folder); "
                               f"retrain it with `{hint}`")
        known = {f.name for f in fields(CrossEncoderConfig)}
        ce_config = CrossEncoderConfig(**{k: v for k, v in config["cross_encoder"].items() if k in known})
        texts = json.loads((directory / ENTITIES_FILE).read_text())
        meta = {k: v for k, v in config.items()
                if k not in {"cross_encoder", "kind", "format", "version", "created", "threshold_probability"}}
        return cls([EntityRecord(*row) for row in texts["entities"]],
                   [RelationRecord(*row) for row in texts["relations"]], ce_config, meta=meta,
                   model=_cross_encoder(directory / MODEL_SUBDIR, ce_config.max_length))


__all__ = ["CrossEncoderConfig", "TripleCrossEncoder", "cut_text", "default_model_name", "train_command"]
