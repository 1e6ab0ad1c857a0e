"""The dense bi-encoder for knowledge-graph completion (SimKGC, Wang et al. 2022, simplified for CPU).

A query ``(h, r, ?)`` is embedded from the text pair ``"h name: h description" [SEP] "r text"``;
a candidate entity from ``"name: description"``. Head prediction ``(?, r, t)`` is asked as
``(t, "inverse of r", ?)``. Both towers share one MiniLM (:class:`~kg_builder.models.encoder.TextEncoder`:
mean pooling, L2-normalised), which halves the weights and the CPU time; a query and an entity
still differ because the query carries the relation segment. The score is the cosine similarity
times a learnable inverse temperature (SimKGC initialises the temperature at 0.05).

:meth:`DenseKGModel.loss` is InfoNCE with in-batch negatives: the candidates of a batch are the
*unique* answer and query entities of its examples (dedup saves encoder passes on small graphs
where entities repeat; query entities are SimKGC's self-negatives), and a candidate that is another known answer of a query is masked out rather
than pushed away (SimKGC's false-negative masking). An additive margin is subtracted from the
positive logit. Training itself lives in :mod:`kg_builder.training.dense`.

:meth:`DenseKGModel.score` follows :class:`kg_builder.evaluation.kgc.Scorer`: it ranks all
entities of the model (embedded once, cached in memory and saved with the model).

Saved as a folder (:mod:`kg_builder.models.saved`): ``config.json`` (kind, hyper-parameters,
training metadata), ``model.safetensors`` (MiniLM weights + ``logit_scale``), ``entities.json``
(entity and relation texts, so a loaded model needs no dataset) and
``entity_embeddings.safetensors`` (the cached candidate embeddings, when computed).

Shapes:
    embed_queries(queries: Sequence[Query]) -> Tensor [len(queries), 384]
    embed_entities(indices: Sequence[int]) -> Tensor [len(indices), 384]
    score(queries: Sequence[Query]) -> ndarray [len(queries), num_entities]
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from kg_builder.datasets import EntityRecord, RelationRecord, TripleRecord
from kg_builder.datasets.text import name_and_description
from kg_builder.errors import InvalidInputError, KGForgeError
from kg_builder.models.encoder import TextEncoder, encoder_path
from kg_builder.models.saved import load_folder, model_dir, save_folder
from kg_builder.ranking import ProgressLike, Query, answer_index
from kg_builder.settings import Settings

KIND = "dense-bi-encoder"
ENTITIES_FILE = "entities.json"
EMBEDDINGS_FILE = "entity_embeddings.safetensors"


def default_model_name(dataset: str) -> str:
    """The folder name ``kgforge train dense`` writes for a dataset: ``dense-<dataset>``."""
    return f"dense-{dataset}"


def train_command(dataset: str | None, name: str | None = None) -> str:
    cmd = f"kgforge train dense --dataset {dataset or 'DATASET'}"
    if name and dataset and name != default_model_name(dataset):
        cmd += f" --name {name}"
    return cmd


@dataclass(frozen=True, slots=True)
class DenseConfig:
    """Hyper-parameters that shape the model (saved in ``config.json``).

    Args:
        max_length: tokens per text; 48 keeps CPU training affordable (the name and the start of the
            description fit; the relation segment is never cut off by a long description).
        description_chars: the description is cut to this many characters before tokenising.
        temperature: initial temperature (SimKGC: 0.05); learnable unless ``learn_temperature`` is False.
        margin: additive margin subtracted from the positive cosine (SimKGC: 0.02).
        self_negatives: the query entities of a batch join its candidates (SimKGC's self-negatives):
            without them a query, whose text contains its own entity's, ranks that entity first.
        inverse_prefix: text put before a relation for head prediction.
    """

    max_length: int = 48
    description_chars: int = 240
    temperature: float = 0.05
    learn_temperature: bool = True
    margin: float = 0.02
    self_negatives: bool = True
    inverse_prefix: str = "inverse of "

    def __post_init__(self) -> None:
        if self.max_length < 8:
            raise InvalidInputError("max_length", "must be at least 8 tokens")
        if not 0 < self.temperature < 1:
            raise InvalidInputError("temperature", "must be in (0, 1)")


def entity_text(entity: EntityRecord, description_chars: int) -> str:
    """``"name: description"`` (description cut at a word boundary), or the name alone."""
    return name_and_description(entity.name, entity.description, description_chars)


class DenseKGModel(nn.Module):
    """SimKGC-style bi-encoder over one entity set (see the module docstring).

    Args:
        encoder: the MiniLM module (its weights are fine-tuned; pass a copy to keep the original).
        entities / relations: the candidate set (column order of :meth:`score`) and relation texts.
        config: :class:`DenseConfig`.
        meta: extra entries for ``config.json`` (dataset, training metadata).
    """

    def __init__(self, encoder: TextEncoder, entities: Sequence[EntityRecord], relations: Sequence[RelationRecord],
                 config: DenseConfig | None = None, *, meta: dict[str, Any] | None = None):
        super().__init__()
        if not entities:
            raise InvalidInputError("entities", "a dense model needs at least one entity")
        self.config = config or DenseConfig()
        self.encoder = encoder
        self.encoder.max_length = self.config.max_length
        self.entities = list(entities)
        self.relations = list(relations)
        self.meta: dict[str, Any] = dict(meta or {})
        self.entity_ids = [e.id for e in self.entities]
        self.entity_index = {e: i for i, e in enumerate(self.entity_ids)}
        self.entity_texts = [entity_text(e, self.config.description_chars) for e in self.entities]
        self.relation_texts = {r.id: r.text for r in self.relations}
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / self.config.temperature)),
                                        requires_grad=self.config.learn_temperature)
        self._entity_cache: np.ndarray | None = None

    # --- texts and embeddings ----------------------------------------------------------------
    @property
    def name(self) -> str | None:
        return self.meta.get("name")

    @property
    def temperature(self) -> float:
        return float(1.0 / self.scale().detach())

    def scale(self) -> Tensor:
        # SimKGC caps the inverse temperature at 100 so the logits cannot run away.
        return self.logit_scale.exp().clamp(max=100.0)

    def relation_text(self, relation: str, inverse: bool) -> str:
        try:
            text = self.relation_texts[relation]
        except KeyError:
            raise InvalidInputError("relation", f"{relation!r} is not a relation this model knows") from None
        return self.config.inverse_prefix + text if inverse else text

    def index_of(self, entity: str) -> int:
        try:
            return self.entity_index[entity]
        except KeyError:
            raise InvalidInputError("entity", f"{entity!r} is not an entity this model ranks") from None

    def _pool(self, batch: dict[str, Tensor]) -> Tensor:
        device = self.logit_scale.device
        batch = {k: v.to(device) for k, v in batch.items()}
        hidden = self.encoder.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return nn.functional.normalize(pooled, dim=-1)

    def embed_queries(self, queries: Sequence[Query]) -> Tensor:
        """Query tower: the pair (entity text, relation text); only the entity text is truncated
        unless the relation alone is longer than the budget."""
        heads = [self.entity_texts[self.index_of(q.entity)] for q in queries]
        rels = [self.relation_text(q.relation, q.inverse) for q in queries]
        return self.embed_query_texts(heads, rels)

    def embed_query_texts(self, heads: Sequence[str], relations: Sequence[str]) -> Tensor:
        """Query tower over texts: ``heads[i]`` is an entity text, ``relations[i]`` a relation text."""
        batch = self.encoder.tokenizer(list(heads), list(relations), padding=True, truncation="longest_first",
                                       max_length=self.config.max_length, return_tensors="pt")
        return self._pool(dict(batch))

    def embed_entities(self, indices: Sequence[int]) -> Tensor:
        """Candidate tower: entity texts (with gradients when training)."""
        batch = self.encoder.tokenizer([self.entity_texts[i] for i in indices], padding=True, truncation=True,
                                       max_length=self.config.max_length, return_tensors="pt")
        return self._pool(dict(batch))

    def train(self, mode: bool = True) -> DenseKGModel:
        if mode:
            self._entity_cache = None  # weights are about to change
        return super().train(mode)

    @torch.no_grad()
    def entity_embeddings(self, *, batch_size: int = 128, progress: ProgressLike | None = None) -> np.ndarray:
        """All candidate embeddings, float32 [num_entities, dim]; computed once and cached."""
        if self._entity_cache is None:
            was_training = self.training
            super().train(False)
            out = np.zeros((len(self.entity_ids), self.encoder.dim), dtype=np.float32)
            if progress is not None:
                progress.phase("encode entities", len(out))
            try:
                for start in range(0, len(out), batch_size):
                    idx = range(start, min(start + batch_size, len(out)))
                    out[start:start + len(idx)] = self.embed_entities(idx).cpu().numpy()
                    if progress is not None:
                        progress.advance(len(idx))
            finally:
                super().train(was_training)
            self._entity_cache = out
        return self._entity_cache

    @torch.no_grad()
    def score(self, queries: Sequence[Query]) -> np.ndarray:
        """Cosine similarity of each query with every entity, [len(queries), num_entities] (a Scorer)."""
        entities = self.entity_embeddings()
        was_training = self.training
        super().train(False)
        try:
            q = self.embed_queries(queries).cpu().numpy()
        finally:
            super().train(was_training)
        return q @ entities.T

    def top_k(self, entity: str, relation: str, *, inverse: bool = False, k: int = 10) -> list[tuple[str, float]]:
        """The ``k`` best answers of one query (the dense target generator), best first."""
        scores = self.score([Query(entity, relation, inverse)])[0]
        order = np.argsort(-scores, kind="stable")[:k]
        return [(self.entity_ids[i], float(scores[i])) for i in order]

    @torch.no_grad()
    def top_k_text(self, head_text: str, relation: str, *, inverse: bool = False,
                   k: int = 10) -> list[tuple[str, float]]:
        """Like :meth:`top_k` for a source entity the model has never seen, given as text
        (:func:`entity_text` form: ``"name: description"``)."""
        entities = self.entity_embeddings()
        was_training = self.training
        super().train(False)
        try:
            q = self.embed_query_texts([head_text], [self.relation_text(relation, inverse)]).cpu().numpy()[0]
        finally:
            super().train(was_training)
        scores = entities @ q
        order = np.argsort(-scores, kind="stable")[:k]
        return [(self.entity_ids[i], float(scores[i])) for i in order]

    # --- training objective ------------------------------------------------------------------
    def loss(self, examples: Sequence[tuple[Query, str]], known: dict[Query, set[str]] | None = None) -> Tensor:
        """InfoNCE over in-batch candidates for ``(query, answer entity)`` examples.

        ``known`` maps a query to all its true answers (e.g. :func:`~kg_builder.evaluation.kgc.answer_index`
        of the training triples); those answers are masked out as negatives of that query.
        """
        queries = [q for q, _ in examples]
        answers = [self.index_of(a) for _, a in examples]
        cand = list(dict.fromkeys(answers))
        if self.config.self_negatives:
            cand = list(dict.fromkeys([*cand, *(self.index_of(q.entity) for q in queries)]))
        pos = {c: j for j, c in enumerate(cand)}
        q = self.embed_queries(queries)
        c = self.embed_entities(cand)
        cos = q @ c.T
        targets = [pos[a] for a in answers]
        target = torch.tensor(targets, device=cos.device)
        rows = torch.arange(len(examples), device=cos.device)
        margin = torch.zeros_like(cos)
        margin[rows, target] = self.config.margin
        logits = (cos - margin) * self.scale()
        if known:
            mask = torch.zeros_like(cos, dtype=torch.bool)
            for i, query in enumerate(queries):
                for other in known.get(query, ()):
                    j = pos.get(self.entity_index.get(other, -1))
                    if j is not None and j != targets[i]:
                        mask[i, j] = True
            logits = logits.masked_fill(mask, float("-inf"))
        return nn.functional.cross_entropy(logits, target)

    @staticmethod
    def examples(triples: Sequence[TripleRecord]) -> list[tuple[Query, str]]:
        """Both directions of every triple: ``((h, r), t)`` and ``((t, r^-1), h)``."""
        out: list[tuple[Query, str]] = []
        for t in triples:
            out.append((Query(t.head, t.relation, False), t.tail))
            out.append((Query(t.tail, t.relation, True), t.head))
        return out

    @staticmethod
    def known_answers(triples: Sequence[TripleRecord]) -> dict[Query, set[str]]:
        return answer_index(triples)

    # --- persistence ---------------------------------------------------------------------------
    def save(self, directory: Path | str, *, save_embeddings: bool = True) -> Path:
        """Write the model folder (see the module docstring); returns it."""
        directory = Path(directory)
        state = {f"encoder.{k}": v for k, v in self.encoder.model.state_dict().items()}
        state["logit_scale"] = self.logit_scale.detach().reshape(1)
        config = {"dense": asdict(self.config), "encoder": str(self.encoder.path), **self.meta}
        save_folder(directory, kind=KIND, config=config, state=state)
        texts = {"entities": [[e.id, e.name, e.description] for e in self.entities],
                 "relations": [[r.id, r.text] for r in self.relations]}
        (directory / ENTITIES_FILE).write_text(json.dumps(texts))
        cache_path = directory / EMBEDDINGS_FILE
        if save_embeddings and self._entity_cache is not None:
            from safetensors.numpy import save_file

            save_file({"embeddings": self._entity_cache}, str(cache_path))
        elif cache_path.exists():
            cache_path.unlink()  # stale for these weights
        return directory

    @classmethod
    def load(cls, name_or_dir: str | Path, *, settings: Settings | None = None) -> DenseKGModel:
        """Load a saved model by name (``KGFORGE_HOME/models/<name>``) or from a folder path.

        Raises:
            ModelNotTrainedError: no model there; the message names the training command.
        """
        settings = settings or Settings()
        path = Path(name_or_dir)
        if isinstance(name_or_dir, Path) or "/" in str(name_or_dir):
            directory, name = path, path.name
        else:
            directory, name = model_dir(settings, str(name_or_dir)), str(name_or_dir)
        dataset = name[len("dense-"):] if name.startswith("dense-") else None
        config, state = load_folder(directory, kind=KIND, train_hint=train_command(dataset, name))
        try:
            texts = json.loads((directory / ENTITIES_FILE).read_text())
        except FileNotFoundError as e:
            raise KGForgeError(f"{directory} lacks {ENTITIES_FILE}; retrain with "
                               f"`{train_command(config.get('dataset'), name)}`") from e
        entities = [EntityRecord(*row) for row in texts["entities"]]
        relations = [RelationRecord(*row) for row in texts["relations"]]
        dense = DenseConfig(**config["dense"])
        encoder = TextEncoder(encoder_path(settings), max_length=dense.max_length)
        meta = {k: v for k, v in config.items() if k not in {"dense", "encoder", "kind", "version", "created"}}
        meta["name"] = name
        model = cls(encoder, entities, relations, dense, meta=meta)
        logit_scale = state.pop("logit_scale")
        missing, unexpected = model.encoder.model.load_state_dict(
            {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}, strict=False)
        if unexpected or [k for k in missing if not k.endswith("position_ids")]:
            raise KGForgeError(f"{directory}: weights do not match the encoder (missing {missing[:3]}, "
                               f"unexpected {unexpected[:3]}); retrain with `{train_command(dataset, name)}`")
        with torch.no_grad():
            model.logit_scale.copy_(logit_scale.reshape(()))
        model.eval()
        if (directory / EMBEDDINGS_FILE).exists():
            from safetensors.numpy import load_file

            cache = load_file(str(directory / EMBEDDINGS_FILE))["embeddings"]
            if cache.shape == (len(entities), model.encoder.dim):
                model._entity_cache = cache
        return model
