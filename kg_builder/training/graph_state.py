"""A domain's training triples as the graph holds them now, and the state a model was trained on.

Incremental updates (issue 13): jobs write new triples into the graph; ``kgforge train structural
--resume`` reads the domain's current training triples from there (:func:`graph_training_dataset`)
and ``kgforge models status`` compares the current count (:func:`domain_graph_state`) with the one
each model recorded when it was trained.

Choices:

- **What counts.** A training triple is an edge between named nodes of the domain that an import
  wrote into the train split or that a job wrote (jobs' edges have no ``split``); dev and test edges
  never count, so evaluation stays on the dataset's own splits. Both reads start from the domain
  index of each knowledge label of the domain (:func:`kg_builder.products.domain.domain_labels`;
  ``cypher/incremental.cypher``): one count query per label, bounded by the domain's size.
- **The recorded state.** ``{"edges", "job_edges", "newest"}``: the count, how many of those jobs
  wrote, and the newest edge's ``created_at``. A model trained from the dataset files (no graph at
  hand) records its train-triple count instead, which equals the import's edge count when the graph
  holds that import; ``models status`` says which of the two it compared.
- **Ids.** Graph keys become the ids the models use with :func:`kg_builder.graphdb.schema.native_key`
  (``umls:virus`` -> ``virus``; a node a job created, ``umls:new thing``, -> ``new thing``).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import cypher
from kg_builder.datasets import Dataset, EntityRecord, RelationRecord, TripleRecord
from kg_builder.errors import InvalidInputError
from kg_builder.graphdb import GraphStore, schema
from kg_builder.models.saved import models_dir
from kg_builder.settings import Settings


def _labels(domain: str) -> list[str]:
    from kg_builder.products.domain import domain_labels

    return list(domain_labels(domain))


def domain_graph_state(store: GraphStore, domain: str) -> dict[str, Any]:
    """The domain's training-edge count now: ``{"edges", "job_edges", "newest"}`` (one bounded
    count query per knowledge label, through the domain index)."""
    edges, job_edges, newest = 0, 0, None
    for label in _labels(domain):
        rows = store._query(cypher.render("incremental_domain_training_state", label=label), domain=domain)
        if not rows:
            continue
        edges += int(rows[0]["edges"] or 0)
        job_edges += int(rows[0]["job_edges"] or 0)
        if rows[0]["newest"] is not None and (newest is None or str(rows[0]["newest"]) > newest):
            newest = str(rows[0]["newest"])
    return {"edges": edges, "job_edges": job_edges, "newest": newest}


def graph_training_triples(store: GraphStore, domain: str) -> list[TripleRecord]:
    """The domain's training triples in the graph, with the models' ids (distinct, in read order)."""
    seen: dict[tuple[str, str, str], None] = {}
    for label in _labels(domain):
        for row in store._query(cypher.render("incremental_domain_training_edges", label=label), domain=domain):
            head, tail = schema.native_key(domain, row["head"]), schema.native_key(domain, row["tail"])
            if head is None or tail is None:
                continue  # a shared node of another dataset: not one the domain's models name
            seen[(head, row["relation"], tail)] = None
    return [TripleRecord(h, r, t) for h, r, t in seen]


def graph_training_dataset(store: GraphStore, view: Dataset) -> tuple[Dataset, dict[str, Any]]:
    """``view`` (the dataset files' KG view: entities, relations, dev and test splits) with its
    train split replaced by the graph's training triples of the domain, and the graph state read
    just before them. Entities and relations the graph adds (nodes jobs created) are appended.

    Raises:
        InvalidInputError: the graph holds no training triple of the domain (not imported).
    """
    state = domain_graph_state(store, view.name)
    train = graph_training_triples(store, view.name)
    if not train:
        raise InvalidInputError("dataset", f"the graph holds no training triples of {view.name!r}; import it "
                                           f"first (`kgforge import {view.name}`)")
    known = {e.id for e in view.entities}
    extra = [EntityRecord(e, e) for e in dict.fromkeys(x for t in train for x in (t.head, t.tail)) if e not in known]
    relations = {r.id for r in view.relations}
    new_relations = [RelationRecord(r, r) for r in dict.fromkeys(t.relation for t in train) if r not in relations]
    grown = dataclasses.replace(view, entities=[*view.entities, *extra], relations=[*view.relations, *new_relations],
                                triples={**view.triples, "train": train})
    return grown, state


# --- what every saved model and embedding set was trained on --------------------------------------
def saved_models(settings: Settings) -> list[dict[str, Any]]:
    """Every model folder under ``KGFORGE_HOME/models``: name, kind, domain, created, and its
    ``trained_on`` state (None for kinds that do not record one yet)."""
    root = models_dir(settings)
    if not root.is_dir():
        return []
    out = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        config_path = folder / "config.json"
        training_path = folder / "training.json"
        config: dict[str, Any] = {}
        for path in (config_path, training_path):
            if path.exists():
                try:
                    config = {**json.loads(path.read_text(encoding="utf-8")), **config}
                except (OSError, json.JSONDecodeError):
                    continue
        trained_on = config.get("trained_on") or (config.get("metrics") or {}).get("trained_on")
        domain = (trained_on or {}).get("domain") or config.get("dataset") or config.get("domain")
        out.append({"name": folder.name, "kind": config.get("kind") or ("utility" if folder.name.startswith(
            "utility-") else None), "domain": domain, "created": config.get("created"), "trained_on": trained_on})
    return out


def staleness(trained_on: dict[str, Any] | None, now: dict[str, Any] | None) -> dict[str, Any]:
    """How many training triples the domain has gained since ``trained_on``: ``{"stale", "new_triples",
    "compared"}``; ``stale`` is None when either side is unknown."""
    if not trained_on or now is None:
        return {"stale": None, "new_triples": None,
                "compared": "graph unavailable" if trained_on else "trained-on state not recorded"}
    graph = trained_on.get("graph")
    if graph and graph.get("edges") is not None:
        base, compared = int(graph["edges"]), "graph edges at training time"
    else:
        base, compared = int(trained_on.get("triples") or 0), "train triples (model trained from the dataset files)"
    new = int(now["edges"]) - base
    return {"stale": new > 0, "new_triples": new, "compared": compared}


def embedding_set_status(settings: Settings, store: GraphStore | None) -> list[dict[str, Any]]:
    """The latest version of every embedding set: domain, nodes, how many nodes of its labels the
    domain holds now that the set lacks (a count difference; None without a graph or a domain), and
    how many job edges the domain gained since the set was computed (``new_job_edges``; None when
    the set recorded no graph state)."""
    from gnn.store import IDS_FILE, EmbeddingStore

    embeddings = EmbeddingStore(settings)
    latest: dict[str, Any] = {}
    for meta in embeddings.list():
        latest[meta.name] = meta
    out = []
    for name, meta in latest.items():
        recorded = (meta.config or {}).get("graph_state") or {}
        row: dict[str, Any] = {"name": name, "version": meta.version, "model": meta.model, "domain": meta.domain,
                               "nodes": meta.count, "created": meta.created.isoformat(timespec="seconds"),
                               "nodes_now": None, "missing_nodes": None, "new_job_edges": None}
        if store is not None and meta.domain and recorded.get("job_edges") is not None:
            # job edges written since the set was computed: `kgforge embed refresh` takes them in
            row["new_job_edges"] = domain_graph_state(store, meta.domain)["job_edges"] - int(recorded["job_edges"])
        if store is not None and meta.domain:
            ids = json.loads((embeddings.version_dir(name, meta.version) / IDS_FILE).read_text(encoding="utf-8"))
            labels = sorted({schema.label_for_key(i) for i in ids})
            if labels:
                now = store.count_domain_entities(meta.domain, labels=labels)
                row["nodes_now"] = now
                row["missing_nodes"] = max(0, now - len(ids))
        out.append(row)
    return out


__all__ = ["domain_graph_state", "embedding_set_status", "graph_training_dataset", "graph_training_triples",
           "saved_models", "staleness"]
