"""The graph's generated knowledge in the embeddings, and embedding sets kept current (issues 11, 13).

* :func:`read_job_edges`: the triples jobs wrote from a domain's items (``has brand``, ``in
  category``, ``complementary to``, ``substitute for`` and any other relation), with their
  confidence, read through the domain index of the ``Item`` label (``cypher/incremental.cypher``),
  so the read grows with the domain, not with other domains beside it.
* :func:`refresh_embedding_set` (``kgforge embed refresh NAME``): a new version of a set, computed
  by the set's saved model over the domain's graph **as it is now** (the dataset's train graph plus
  the job edges above the set's minimum confidence, :func:`gnn.export.add_generated_edges`), with
  **no training**: one full-graph forward pass. The *affected* nodes are the rows whose vector moves
  (more than ``tolerance`` in max-abs): the items within the model's propagation depth of an edge
  added since. Only those rows change in the new version; every other row is copied bit for bit
  from the version before, so a consumer that caches vectors can update just the rows the
  metadata names (``config.refresh.changed``, at most 1,000 listed).

Choices:

* **No new rows.** A node a job *created* (a new brand, say) has no trained ID row in the model,
  so an edge to it is counted (``unknown_node``) and reaches the set only when the model is
  fine-tuned again (``kgforge embed finetune``). New items do not come from jobs.
* **The same graph as training.** The refresh adds exactly what fine-tuning with
  ``--with-job-edges`` would have seen, weighted the same way (LightGCN reads the weights;
  ``hetero_sage`` and ``rgcn`` take the edges unweighted).
* **Recorded state.** Each version records the job-edge report and the domain's graph state
  (:func:`kg_builder.training.graph_state.domain_graph_state`), which ``kgforge models status``
  compares with the graph now.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

import cypher
from kg_builder.datasets import Dataset
from kg_builder.errors import InvalidInputError
from kg_builder.graphdb import GraphStore, schema
from kg_builder.settings import Settings

#: changed node ids listed in a refreshed version's metadata (the count is always there)
MAX_LISTED = 1000


def read_job_edges(store: GraphStore, domain: str) -> list[dict[str, Any]]:
    """``{"head", "relation", "tail", "confidence"}`` (graph keys) of every edge a job wrote from an
    item of ``domain``."""
    return [dict(row) for row in store._query(cypher.render("incremental_domain_job_edges", label=schema.ITEM),
                                              domain=domain)]


def graph_with_job_edges(records: Dataset, features: np.ndarray, store: GraphStore | None, *,
                         min_confidence: float) -> tuple[Any, dict[str, Any]]:
    """The dataset's train graph plus the job edges in ``store`` (none without a store), and the
    record of what was added: ``{"min_confidence", "edges": add_generated_edges' report,
    "graph_state"}``."""
    from kg_builder.training.graph_state import domain_graph_state

    from .export import add_generated_edges, export_dataset

    graph = export_dataset(records, features=features)
    if store is None:
        return graph, {"min_confidence": min_confidence, "edges": None, "graph_state": None}
    report = add_generated_edges(graph, records, read_job_edges(store, records.name), min_confidence=min_confidence)
    return graph, {"min_confidence": min_confidence, "edges": report,
                   "graph_state": domain_graph_state(store, records.name)}


def refresh_embedding_set(settings: Settings, name: str, *, store: GraphStore, dataset: Dataset | None = None,
                          features: np.ndarray | None = None, data_dir: Path | str | None = None,
                          min_confidence: float | None = None, tolerance: float = 1e-5) -> dict[str, Any]:
    """Save a refreshed version of set ``name`` (see the module docstring); returns ``{"embedding_set",
    "version", "refreshed_from", "changed", "items", "job_edges", "seconds"}``.

    ``dataset`` / ``features`` default to the set's domain loaded from ``data_dir`` and its cached
    title features (what fine-tuning used); ``min_confidence`` to the one the set was made with.

    Raises:
        EmbeddingSetNotFoundError: no set ``name``.
        InvalidInputError: the set has no domain or model folder to refresh from, or its items differ
            from the domain's.
    """
    import time

    from kg_builder.datasets import load_dataset
    from kg_builder.models.saved import model_dir

    from .export import default_cache_dir, node_graph_keys, text_features
    from .models import GraphEncoder
    from .store import EmbeddingSet, EmbeddingStore
    from .train import item_embeddings

    started = time.perf_counter()
    embeddings = EmbeddingStore(settings)
    previous = embeddings.load(name)
    meta = previous.meta
    if not meta.domain:
        raise InvalidInputError("name", f"embedding set {name!r} has no domain: only sets saved by `kgforge embed "
                                        "finetune` can be refreshed")
    folder = model_dir(settings, str(meta.config.get("model_folder") or name))
    if not (folder / "config.json").exists():
        raise InvalidInputError("name", f"no saved model {folder.name!r} for embedding set {name!r}: run `kgforge "
                                        f"embed finetune --dataset {meta.domain} --name {name}`")
    records = dataset if dataset is not None else load_dataset(meta.domain, data_dir or settings.data_dir)
    if features is None:
        features = text_features(records, cache_dir=default_cache_dir())
    floor = float(min_confidence if min_confidence is not None else meta.config.get("min_confidence") or 0.0)
    graph, added = graph_with_job_edges(records, features, store, min_confidence=floor)
    model = GraphEncoder.load(folder)
    fresh = item_embeddings(model, graph)
    keys = node_graph_keys(records, graph)["item"]
    order = sorted(keys, key=keys.get)
    if set(order) != set(previous.node_ids):
        raise InvalidInputError("name", f"embedding set {name!r} holds {len(previous)} nodes, the domain "
                                        f"{meta.domain!r} exports {len(order)} items: fine-tune again instead")
    fresh = fresh[[keys[node] for node in previous.node_ids]]
    moved = np.abs(fresh - previous.vectors).max(axis=1) > tolerance
    vectors = previous.vectors.copy()
    vectors[moved] = fresh[moved]
    changed = [node for node, m in zip(previous.node_ids, moved, strict=True) if m]
    refresh = {"from_version": previous.version, "changed_count": len(changed), "changed": changed[:MAX_LISTED],
               "tolerance": tolerance, "job_edges": added["edges"], "graph_state": added["graph_state"]}
    config = {**meta.config, "min_confidence": floor, "job_edges": added["edges"],
              "graph_state": added["graph_state"], "refresh": refresh}
    saved = embeddings.save(EmbeddingSet.create(
        name, vectors, previous.node_ids, model=meta.model, domain=meta.domain, metrics=meta.metrics, config=config,
        text_projection=previous.text_projection))
    return {"embedding_set": name, "version": saved.version, "refreshed_from": previous.version,
            "changed": len(changed), "items": len(saved), "job_edges": added["edges"],
            "seconds": time.perf_counter() - started}


__all__ = ["graph_with_job_edges", "read_job_edges", "refresh_embedding_set"]
