"""Datasets -> PyG ``HeteroData`` (issue 11, point 1): one domain or several concatenated.

Choices:

* **Straight from the datasets** (:func:`kg_builder.datasets.load_dataset`) for the catalogue and
  the interactions (the files are the source of truth for splits), plus, from the graph store, the
  triples **jobs wrote** on the product graph (:func:`add_generated_edges`, read by
  :func:`gnn.refresh.read_job_edges`): each joins the edge type of its relation with its confidence
  as the edge weight, above an optional minimum confidence.
* **Node types** ``item``, ``user``, ``category``, ``brand``. The Amazon sets have no KG entities,
  so no ``entity`` type is made (Last.FM's KG is not wired here). Every node type carries
  ``num_nodes``, ``domain`` (int64 domain id per node) and ``native_id`` (one numpy string array
  of the dataset's own ids); items carry ``x``, the text features.
* **Edge types** (each with its reverse, ``rev_<relation>``): ``user-interacts-item`` from the
  interactions whose split is in ``splits`` (default ``("train",)``: leave-one-out targets
  ``valid``/``test``/``dev`` never enter a training graph), duplicates dropped;
  ``item-in_category-category`` (Scientific: the item's most specific category path as one node,
  the root alone is a hub that links every item and is skipped when a deeper level exists;
  Office: ``category_ids``); ``item-has_brand-brand`` (brand name or Office ``brand_id``);
  ``item-complement-item`` and ``item-substitute-item`` (Office ``item_meta.csv``). Every graph
  has all :data:`EDGE_TYPES` (empty ``[2, 0]`` where a domain has none) so one model's metadata
  fits every domain.
* **Text features**: MiniLM (:class:`~kg_builder.models.encoder.TextEncoder`) of each item's title
  (:func:`~kg_builder.products.titles.item_text`, raw title; ``""`` without one), cached as ``.npy``
  under ``<KGFORGE_HOME>/cache/title-embeddings/<sha256 of model + texts>.npy`` (the same cache and
  key as ``kgforge eval titles``, so the two never encode a text twice). Optional BERT-whitening
  (:class:`~kg_builder.products.titles.Whitening`) fitted per domain on that domain's items only.
  Learnable ID embeddings are added inside the model (:mod:`gnn.models`), not here.
* **Multi-domain** (:func:`export_domains`): node indices are offset per domain, so ids never
  collide; items of one domain are a contiguous range (``data["item"].domain_ptr``), which the
  sampler uses for in-domain negatives.
* Arrays are built directly (numpy -> torch); the only per-node Python objects are the dataset
  records the loader returned, which callers may drop after the export.

Measured (train graphs, ``export_domains([name])``; MiniLM encoding on 2 shared CPU cores, first run,
cached afterwards):

=====================  ======  ======  ==========  ======  ==========  ====================  =========
dataset                items   users   categories  brands  interacts   complement/substitute encode s
=====================  ======  ======  ==========  ======  ==========  ====================  =========
amazon18_scientific    4,385   8,442   767         1,560   42,318      0 / 0                 89.6
amazon14_office        2,420   4,905   39          341     43,448      38,071 / 18,345       66.8
amazon18_games         16,859  50,546  0           0       339,172     0 / 0                 183.5
=====================  ======  ======  ==========  ======  ==========  ====================  =========

Shapes:
    data["item"].x: [num_items, 384] (or [num_items, k] whitened), float32
    data[edge_type].edge_index: [2, num_edges], int64
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch_geometric.data import HeteroData

from kg_builder.datasets.records import Dataset, InteractionRecord
from kg_builder.errors import InvalidInputError

from .objectives import sequence_pairs

logger = logging.getLogger(__name__)

NODE_TYPES = ("item", "user", "category", "brand")
INTERACTS = ("user", "interacts", "item")
FORWARD_EDGE_TYPES = (
    INTERACTS,
    ("item", "in_category", "category"),
    ("item", "has_brand", "brand"),
    ("item", "complement", "item"),
    ("item", "substitute", "item"),
)


def reverse(edge_type: tuple[str, str, str]) -> tuple[str, str, str]:
    src, rel, dst = edge_type
    return (dst, f"rev_{rel}", src)


EDGE_TYPES = tuple(et for fwd in FORWARD_EDGE_TYPES for et in (fwd, reverse(fwd)))
ITEM_LINK_RELATIONS = ("complement", "substitute")
TEXT_DIM = 384

TextFeatures = Callable[[Dataset], np.ndarray]


def _index(values: Iterable[str]) -> tuple[np.ndarray, dict[str, int]]:
    """Unique values in first-seen order and value -> position."""
    lookup: dict[str, int] = {}
    for value in values:
        lookup.setdefault(value, len(lookup))
    return np.array(list(lookup), dtype=str), lookup


def _category_key(item) -> str | None:
    if item.category_ids:
        return f"id:{item.category_ids[-1]}"
    if item.categories:
        return " > ".join(item.categories)
    return None


def _brand_key(item) -> str | None:
    if item.brand_id:
        return f"id:{item.brand_id}"
    return item.brand or None


def _edges(pairs: list[tuple[int, int]]) -> torch.Tensor:
    if not pairs:
        return torch.empty((2, 0), dtype=torch.long)
    array = np.unique(np.asarray(pairs, dtype=np.int64), axis=0)
    return torch.from_numpy(np.ascontiguousarray(array.T))


def holdout_last_train(dataset: Dataset, *, fraction: float = 0.2, seed: int = 0,
                       split: str = "holdout", users: Collection[str] | None = None) -> Dataset:
    """A copy of ``dataset`` whose sampled users' last ``train`` item is relabelled ``split``.

    This is the validation for adaptive source selection: it comes from the target's *train*
    sequences only (never the ``valid``/``test`` split). A user needs at least 2 train items to
    keep a history. The last item is the highest ``position`` (or ``timestamp``). ``users`` holds
    out exactly those users instead of a sample (another component's holdout, e.g. the
    recommenders'); one without 2 train items is an error naming ``users``.
    """
    if users is None and not 0.0 < fraction <= 1.0:
        raise InvalidInputError("fraction", f"must be in (0, 1], got {fraction!r}")
    last: dict[str, tuple[float, int]] = {}
    counts: dict[str, int] = {}
    for i, r in enumerate(dataset.interactions):
        if r.split != "train":
            continue
        order = r.position if r.position is not None else (r.timestamp or 0)
        counts[r.user] = counts.get(r.user, 0) + 1
        if r.user not in last or order >= last[r.user][0]:
            last[r.user] = (order, i)
    eligible = sorted(u for u, c in counts.items() if c >= 2)
    if users is not None:
        missing = set(users) - set(eligible)
        if missing:
            raise InvalidInputError("users", f"{len(missing)} user(s) without 2 train items, e.g. {min(missing)!r}")
        held = {last[u][1] for u in users}
    else:
        rng = np.random.default_rng(seed)
        chosen = rng.choice(len(eligible), size=int(round(fraction * len(eligible))), replace=False)
        held = {last[eligible[j]][1] for j in chosen}
    interactions: list[InteractionRecord] = [
        replace(r, split=split) if i in held else r for i, r in enumerate(dataset.interactions)]
    return replace(dataset, interactions=interactions)


def export_dataset(dataset: Dataset, *, features: np.ndarray | None = None, domain: int = 0,
                   splits: Sequence[str] = ("train",)) -> HeteroData:
    """One recommendation dataset as a ``HeteroData`` (see the module docstring for the schema).

    Args:
        dataset: a loaded ``rec`` dataset (items + interactions, maybe item links).
        features: ``[len(dataset.items), d]`` item text features in dataset item order (from
            :func:`text_features`); ``None`` gives zero-width features ``[n, 0]``.
        domain: the domain id written on every node.
        splits: interaction splits that become ``interacts`` edges; never put an evaluated split
            here.

    Raises:
        InvalidInputError: no items, features of the wrong shape, or an evaluated split in ``splits``.
    """
    if not dataset.items:
        raise InvalidInputError("dataset", f"{dataset.name} has no items to export")
    leaking = {"valid", "test", "dev", "holdout"} & set(splits)
    if leaking:
        raise InvalidInputError("splits", f"{sorted(leaking)} are evaluation targets and must not be graph edges")
    item_ids, item_index = _index(item.id for item in dataset.items)
    if len(item_ids) != len(dataset.items):
        raise InvalidInputError("dataset", f"{dataset.name} has duplicate item ids")
    if features is None:
        features = np.zeros((len(item_ids), 0), dtype=np.float32)
    features = np.asarray(features, dtype=np.float32)
    if features.ndim != 2 or features.shape[0] != len(item_ids):
        raise InvalidInputError("features", f"need [{len(item_ids)}, d], got shape {features.shape}")

    wanted = set(splits)
    interactions = [(r.user, r.item) for r in dataset.interactions if r.split in wanted and r.item in item_index]
    user_ids, user_index = _index(sorted({u for u, _ in interactions}))
    category_ids, category_index = _index(k for k in map(_category_key, dataset.items) if k)
    brand_ids, brand_index = _index(k for k in map(_brand_key, dataset.items) if k)

    edges: dict[tuple[str, str, str], list[tuple[int, int]]] = {et: [] for et in FORWARD_EDGE_TYPES}
    edges[INTERACTS] = [(user_index[u], item_index[i]) for u, i in interactions]
    for i, item in enumerate(dataset.items):
        if (key := _category_key(item)) is not None:
            edges[("item", "in_category", "category")].append((i, category_index[key]))
        if (key := _brand_key(item)) is not None:
            edges[("item", "has_brand", "brand")].append((i, brand_index[key]))
    for link in dataset.item_links:
        if link.relation in ITEM_LINK_RELATIONS and link.head in item_index and link.tail in item_index:
            edges[("item", link.relation, "item")].append((item_index[link.head], item_index[link.tail]))

    data = HeteroData()
    for node_type, ids in (("item", item_ids), ("user", user_ids), ("category", category_ids), ("brand", brand_ids)):
        data[node_type].num_nodes = len(ids)
        data[node_type].native_id = ids
        data[node_type].domain = torch.full((len(ids),), domain, dtype=torch.long)
    data["item"].x = torch.from_numpy(features)
    data["item"].domain_ptr = torch.tensor([0, len(item_ids)])
    for edge_type, pairs in edges.items():
        edge_index = _edges(pairs)
        data[edge_type].edge_index = edge_index
        data[reverse(edge_type)].edge_index = edge_index.flip(0).contiguous()
    # Next-item training pairs (gnn.objectives) from the same interactions, in sequence order.
    ordered: dict[str, list[tuple[float, int, int]]] = {}
    for n, r in enumerate(dataset.interactions):
        if r.split in wanted and r.item in item_index:
            order = r.position if r.position is not None else (r.timestamp or 0)
            ordered.setdefault(r.user, []).append((order, n, item_index[r.item]))
    data.seq_prefix, data.seq_target = sequence_pairs([[i for *_, i in sorted(v)] for v in ordered.values()])
    data.domains = [dataset.name]
    return data


#: Relations a job writes on a product graph (kg_builder.products.domain.PRODUCT_RELATIONS) -> the
#: edge type they join; the others (``used with``, ``sells in``, ``subcategory of``) have no edge
#: type in the export and are counted as unmapped.
GENERATED_EDGE_TYPES: dict[str, tuple[str, str, str]] = {
    "has brand": ("item", "has_brand", "brand"),
    "in category": ("item", "in_category", "category"),
    "complementary to": ("item", "complement", "item"),
    "substitute for": ("item", "substitute", "item"),
}


def node_graph_keys(dataset: Dataset, data: HeteroData) -> dict[str, dict[str, int]]:
    """Graph key (:class:`kg_builder.ingest.DatasetKeys`, the ids the graph store and the embedding
    sets use) -> node index, per node type of ``data`` exported from ``dataset``."""
    from kg_builder.ingest import DatasetKeys

    keys = DatasetKeys(dataset.name)
    by_native = {item.id: item for item in dataset.items}
    out: dict[str, dict[str, int]] = {"item": {keys.item(by_native[str(n)]): i
                                               for i, n in enumerate(data["item"].native_id)}}
    paths = {" > ".join(item.categories): item.categories for item in dataset.items if item.categories}
    categories: dict[str, int] = {}
    for i, native in enumerate(data["category"].native_id):
        native = str(native)
        key = keys.category_id(native[3:]) if native.startswith("id:") else keys.category_path(tuple(paths[native]))[-1]
        categories[key] = i
    out["category"] = categories
    out["brand"] = {keys.brand_id(str(n)[3:]) if str(n).startswith("id:") else keys.brand(str(n)): i
                    for i, n in enumerate(data["brand"].native_id)}
    return out


def add_generated_edges(data: HeteroData, dataset: Dataset, edges: Iterable[Mapping[str, Any]], *,
                        min_confidence: float = 0.0) -> dict[str, int]:
    """Add triples that jobs wrote (``{"head", "relation", "tail", "confidence"}``, graph keys) to
    ``data`` in place, weighted by their confidence (issue 11, point 1).

    Each edge type that receives one gets ``edge_weight`` (1.0 for the dataset's own edges, the
    confidence for a generated one), on its reverse too. A triple is skipped, and counted, when its
    confidence is below ``min_confidence`` (or missing), its relation has no edge type
    (:data:`GENERATED_EDGE_TYPES`), an end is not a node of the export (a node a job created has no
    trained ID row: ``kgforge embed finetune`` again takes it in), or the edge is already there.
    Returns those counts and ``added``.
    """
    if not 0.0 <= min_confidence <= 1.0:
        raise InvalidInputError("min_confidence", f"must be within [0, 1], got {min_confidence}")
    index = node_graph_keys(dataset, data)
    report = {"read": 0, "added": 0, "below_min_confidence": 0, "unmapped_relation": 0, "unknown_node": 0,
              "already_present": 0}
    new: dict[tuple[str, str, str], dict[tuple[int, int], float]] = {}
    for edge in edges:
        report["read"] += 1
        confidence = edge.get("confidence")
        if confidence is None or not float(confidence) >= min_confidence:
            report["below_min_confidence"] += 1
            continue
        edge_type = GENERATED_EDGE_TYPES.get(str(edge.get("relation")))
        if edge_type is None:
            report["unmapped_relation"] += 1
            continue
        src, dst = index[edge_type[0]].get(str(edge.get("head"))), index[edge_type[2]].get(str(edge.get("tail")))
        if src is None or dst is None:
            report["unknown_node"] += 1
            continue
        pairs = new.setdefault(edge_type, {})
        pairs[(src, dst)] = max(float(confidence), pairs.get((src, dst), 0.0))
    for edge_type, pairs in new.items():
        existing = data[edge_type].edge_index
        present = set(zip(existing[0].tolist(), existing[1].tolist(), strict=True))
        fresh = {pair: w for pair, w in pairs.items() if pair not in present}
        report["already_present"] += len(pairs) - len(fresh)
        if not fresh:
            continue
        report["added"] += len(fresh)
        added = torch.tensor(list(fresh), dtype=torch.long).t()
        weights = torch.tensor(list(fresh.values()), dtype=torch.float32)
        old_weight = data[edge_type].edge_weight if "edge_weight" in data[edge_type] \
            else torch.ones(existing.shape[1])
        data[edge_type].edge_index = torch.cat([existing, added], 1)
        data[edge_type].edge_weight = torch.cat([old_weight, weights])
        data[reverse(edge_type)].edge_index = data[edge_type].edge_index.flip(0).contiguous()
        data[reverse(edge_type)].edge_weight = data[edge_type].edge_weight
    return report


def concat_graphs(graphs: Sequence[HeteroData]) -> HeteroData:
    """Several exported graphs as one: node indices offset per domain, edges shifted alike."""
    if not graphs:
        raise InvalidInputError("graphs", "need at least one graph")
    widths = {g["item"].x.shape[1] for g in graphs}
    if len(widths) != 1:
        raise InvalidInputError("graphs", f"item feature widths differ: {sorted(widths)}")
    data = HeteroData()
    offsets = {nt: np.cumsum([0] + [g[nt].num_nodes for g in graphs]) for nt in NODE_TYPES}
    for nt in NODE_TYPES:
        data[nt].num_nodes = int(offsets[nt][-1])
        data[nt].native_id = np.concatenate([g[nt].native_id for g in graphs])
        data[nt].domain = torch.cat([g[nt].domain for g in graphs])
    data["item"].x = torch.cat([g["item"].x for g in graphs])
    data["item"].domain_ptr = torch.from_numpy(offsets["item"].astype(np.int64))
    for src, rel, dst in EDGE_TYPES:
        parts = [g[(src, rel, dst)].edge_index + torch.tensor([[offsets[src][k]], [offsets[dst][k]]])
                 for k, g in enumerate(graphs)]
        data[(src, rel, dst)].edge_index = torch.cat(parts, dim=1)
    if all(getattr(g, "seq_target", None) is not None for g in graphs):
        shift = [int(offsets["item"][k]) for k in range(len(graphs))]
        data.seq_prefix = torch.cat([torch.where(g.seq_prefix >= 0, g.seq_prefix + shift[k], g.seq_prefix)
                                     for k, g in enumerate(graphs)])
        data.seq_target = torch.cat([g.seq_target + shift[k] for k, g in enumerate(graphs)])
    data.domains = [name for g in graphs for name in g.domains]
    return data


def item_titles(dataset: Dataset) -> list[str]:
    """The text encoded for each item, in dataset order (raw title; ``""`` when there is none)."""
    from kg_builder.products.titles import item_text

    return [item_text(item, normalised=False) for item in dataset.items]


def text_features(dataset: Dataset, *, cache_dir: Path | None = None, encoder=None,
                  whitening: int | None = None) -> np.ndarray:
    """MiniLM title embeddings ``[n_items, 384]`` (cached), optionally whitened to ``whitening`` dims.

    ``encoder`` is anything with ``encode(texts) -> ndarray`` and a ``path`` (default: a new
    :class:`~kg_builder.models.encoder.TextEncoder`); it is only built on a cache miss.
    """
    from kg_builder.evaluation.titles import EmbeddingCache

    texts = item_titles(dataset)
    cache = EmbeddingCache(cache_dir)

    def encode(batch: list[str]) -> np.ndarray:
        nonlocal encoder
        if encoder is None:
            from kg_builder.models.encoder import TextEncoder

            encoder = TextEncoder()
        return encoder.encode(batch)

    if encoder is not None:
        model_id = str(getattr(encoder, "path", type(encoder).__name__))
    else:
        from kg_builder.models.encoder import encoder_path

        model_id = str(encoder_path())
    embeddings = cache.get_or_encode(model_id, texts, encode).astype(np.float32)
    if whitening:
        from kg_builder.products.titles import Whitening

        embeddings = Whitening(whitening).fit(embeddings).transform(embeddings).astype(np.float32)
    return embeddings


def default_cache_dir() -> Path:
    from kg_builder.settings import get_settings

    return get_settings().home / "cache" / "title-embeddings"


def export_domains(names: Sequence[str], *, data_dir: Path | str, cache_dir: Path | None = None,
                   whitening: int | None = None, splits: Sequence[str] = ("train",),
                   datasets: dict[str, Dataset] | None = None) -> HeteroData:
    """Load each named dataset, export it with text features, and concatenate (domain id = order).

    ``datasets`` may hold already-loaded (or holdout-relabelled) datasets by name; the rest are
    loaded from ``data_dir``.
    """
    from kg_builder.datasets import load_dataset

    if not names:
        raise InvalidInputError("names", "need at least one dataset name")
    cache_dir = cache_dir if cache_dir is not None else default_cache_dir()
    graphs = []
    for domain, name in enumerate(names):
        dataset = (datasets or {}).get(name) or load_dataset(name, data_dir)
        features = text_features(dataset, cache_dir=cache_dir, whitening=whitening)
        graphs.append(export_dataset(dataset, features=features, domain=domain, splits=splits))
        logger.info("exported %s: %s", name, {nt: graphs[-1][nt].num_nodes for nt in NODE_TYPES})
    return graphs[0] if len(graphs) == 1 else concat_graphs(graphs)


__all__ = ["EDGE_TYPES", "FORWARD_EDGE_TYPES", "GENERATED_EDGE_TYPES", "INTERACTS", "NODE_TYPES", "add_generated_edges",
           "concat_graphs", "export_dataset", "node_graph_keys",
           "export_domains", "holdout_last_train", "item_titles", "reverse", "text_features"]
