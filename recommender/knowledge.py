"""Knowledge matrices for the students' item supplement (``[n_items, k]``, row = item index).

A *knowledge spec* names the parts, joined by ``+``:

* ``none``: no knowledge (ID-only students).
* ``text``: MiniLM embeddings of the item titles (:func:`gnn.export.text_features`, the same
  vectors and on-disk cache as the GNN's input features and the title evaluation), 384 dims.
* ``text-whitened``: the same, BERT-whitened to 256 dims (the best text row of issue 10; needs
  more than 256 items).
* ``graph:<set>`` or ``graph:<set>@<version>``: an embedding set saved by ``kgforge embed
  finetune`` (:mod:`gnn.store`), rows looked up by the items' graph keys
  (:class:`kg_builder.ingest.DatasetKeys`); an item the set lacks is an error naming it.
* ``graph-score:<set>`` or ``graph-score:<set>@<version>``: not a block of the item supplement but
  the student's graph-score term (:mod:`recommender.graph_score`; :func:`build_graph_scores`): the
  set's decayed-history score joins the student's logits at ``GRAPH_SCORE_WEIGHT`` (4.0; late fusion).
  At most one.
* ``teacher:<name>`` or ``teacher:<name>@<version>``: a saved teacher's semantic item embeddings
  (:class:`recommender.teachers.text_teacher.TextTeacher`, 384 dims: the fine-tuned MiniLM item
  side), the knowledge REKI/KAR condenses beside the title and graph vectors.

:func:`build_knowledge_blocks` returns the parts separately (REKI/KAR's hybrid-expert adapter has
one dedicated expert group per part); :func:`build_knowledge` concatenates them.

Each part is L2-normalised per row before concatenation, so no part dominates by scale; the
student's learned projection decides how much each contributes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kg_builder.errors import InvalidInputError

from .data import RecData

WHITENING_DIMS = 256
GRAPH_SCORE_PREFIX = "graph-score:"


def parse_spec(spec: str | None) -> list[str]:
    """``"text+graph:x"`` -> ``["text", "graph:x"]``; ``None``/``"none"`` -> ``[]``."""
    if spec is None or spec.strip().lower() in ("", "none", "id"):
        return []
    parts = [p.strip() for p in spec.split("+") if p.strip()]
    for part in parts:
        if part not in ("text", "text-whitened") and not (part.startswith("graph:") and len(part) > 6) \
                and not (part.startswith(GRAPH_SCORE_PREFIX) and len(part) > len(GRAPH_SCORE_PREFIX)) \
                and not (part.startswith("teacher:") and len(part) > 8):
            raise InvalidInputError("knowledge", f"unknown knowledge part {part!r}: use none, text, text-whitened, "
                                                 "graph:<embedding set>[@version], graph-score:<embedding set>[@version], "
                                                 "teacher:<saved teacher>[@version], joined by '+'")
    if sum(part.startswith(GRAPH_SCORE_PREFIX) for part in parts) > 1:
        raise InvalidInputError("knowledge", f"at most one graph-score part, got {spec!r}")
    return parts


def build_graph_scores(spec: str | None, data: RecData, *, settings=None) -> np.ndarray | None:
    """The graph vectors ``[n_items, g]`` of ``spec``'s ``graph-score:<set>`` part, or None without one."""
    for part in parse_spec(spec):
        if part.startswith(GRAPH_SCORE_PREFIX):
            return graph_knowledge(part[len(GRAPH_SCORE_PREFIX):], data, settings=settings)
    return None


def build_knowledge(spec: str | None, data: RecData, *, cache_dir: Path | None = None,
                    settings=None) -> np.ndarray | None:
    """The knowledge matrix of ``spec`` for ``data``'s items, or None for ID-only."""
    blocks = build_knowledge_blocks(spec, data, cache_dir=cache_dir, settings=settings)
    if not blocks:
        return None
    return np.concatenate(blocks, axis=1).astype(np.float32)


def build_knowledge_blocks(spec: str | None, data: RecData, *, cache_dir: Path | None = None,
                           settings=None) -> list[np.ndarray]:
    """Each part of ``spec`` as its own L2-normalised ``[n_items, k_part]`` block (empty for none)."""
    parts = parse_spec(spec)
    blocks = []
    for part in parts:
        if part.startswith(GRAPH_SCORE_PREFIX):
            continue  # the graph-score term, not a supplement block (build_graph_scores)
        if part in ("text", "text-whitened"):
            from gnn.export import default_cache_dir, text_features

            whitening = WHITENING_DIMS if part == "text-whitened" else None
            if whitening and data.n_items <= whitening:
                raise InvalidInputError("knowledge", f"text-whitened needs more than {whitening} items, the dataset "
                                                     f"has {data.n_items}; use text")
            blocks.append(text_features(data.dataset, cache_dir=cache_dir or default_cache_dir(), whitening=whitening))
        elif part.startswith("teacher:"):
            blocks.append(teacher_knowledge(part[len("teacher:"):], data, settings=settings))
        else:
            blocks.append(graph_knowledge(part[len("graph:"):], data, settings=settings))
    return [_normalise(b) for b in blocks]


def teacher_knowledge(reference: str, data: RecData, *, settings=None) -> np.ndarray:
    """A saved teacher's semantic item embeddings (``name`` or ``name@version``) in item-index order."""
    from kg_builder.settings import get_settings

    from . import teachers  # noqa: F401  (registers the teacher class)
    from .store import RecommenderStore

    name, _, version = reference.partition("@")
    if version and not version.isdigit():
        raise InvalidInputError("knowledge", f"teacher version must be a number: {reference!r}")
    saved = RecommenderStore(settings or get_settings()).load(name, int(version) if version else None)
    if not hasattr(saved.model, "item_vectors"):
        raise InvalidInputError("knowledge", f"{name} is a {saved.meta.model}, not a teacher with item embeddings")
    if saved.item_ids != data.item_ids:
        raise InvalidInputError("knowledge", f"teacher {name} was trained on other items than {data.dataset.name}")
    return saved.model.item_embeddings().detach().numpy().astype(np.float32)


def graph_knowledge(reference: str, data: RecData, *, settings=None) -> np.ndarray:
    """Rows of a saved embedding set (``name`` or ``name@version``) in item-index order."""
    from gnn.store import EmbeddingStore
    from kg_builder.ingest import DatasetKeys
    from kg_builder.settings import get_settings

    name, _, version = reference.partition("@")
    if version and not version.isdigit():
        raise InvalidInputError("knowledge", f"graph set version must be a number: {reference!r}")
    embedding_set = EmbeddingStore(settings or get_settings()).load(name, int(version) if version else None)
    keys = DatasetKeys(data.dataset.name)
    return embedding_set.vectors[embedding_set.rows_for([keys.item(item) for item in data.dataset.items])]


def _normalise(matrix: np.ndarray) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float32)
    return matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)


__all__ = ["build_graph_scores", "build_knowledge", "build_knowledge_blocks", "graph_knowledge", "parse_spec", "teacher_knowledge"]
