"""Job-written triples in the graph embeddings and `embed refresh` (issues 11 and 13), against the
real embedded graph database: a toy product domain is imported, a LightGCN set is fine-tuned from
it, jobs' triples are written with confidences, and the refresh changes exactly the rows near them.

Also, without a database: the job-edge report counts each reason a triple is left out, weights
reach LightGCN's propagation, and weights of 1 change nothing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gnn_toy import clustered_dataset

from gnn.export import add_generated_edges, export_dataset, node_graph_keys, reverse
from gnn.models import build_model
from gnn.refresh import read_job_edges, refresh_embedding_set
from gnn.sampling import full_batch
from gnn.store import EmbeddingStore
from gnn.workflows import finetune_target
from kg_builder.errors import InvalidInputError
from kg_builder.graphdb import TripleWrite, schema
from kg_builder.ingest import import_dataset
from kg_builder.settings import Settings

HAS_BRAND = ("item", "has_brand", "brand")
COMPLEMENT = ("item", "complement", "item")


def toy():
    dataset = clustered_dataset("toyshop")
    features = np.random.default_rng(0).normal(size=(len(dataset.items), 8)).astype(np.float32)
    return dataset, features


def own_brand(i: int) -> str:
    return f"brand:b{i % 3}"  # clustered_dataset's brands, as DatasetKeys names them


def keys_of(dataset, graph):
    return node_graph_keys(dataset, graph)


def test_generated_edges_are_weighted_and_each_skip_is_counted():
    dataset, features = toy()
    graph = export_dataset(dataset, features=features)
    keys = keys_of(dataset, graph)
    item = {i: k for k, i in keys["item"].items()}
    brand = {i: k for k, i in keys["brand"].items()}
    before = graph[HAS_BRAND].edge_index.shape[1]
    edges = [
        {"head": item[0], "relation": "has brand", "tail": brand[1], "confidence": 0.9},      # added
        {"head": item[0], "relation": "has brand", "tail": brand[0], "confidence": 0.95},     # item 0's own brand
        {"head": item[1], "relation": "complementary to", "tail": item[7], "confidence": 0.8},  # added
        {"head": item[2], "relation": "has brand", "tail": brand[2], "confidence": 0.3},      # below the floor
        {"head": item[3], "relation": "used with", "tail": brand[1], "confidence": 0.9},      # no edge type
        {"head": item[4], "relation": "has brand", "tail": "brand:newco", "confidence": 0.9},  # a node a job made
        {"head": item[5], "relation": "has brand", "tail": brand[0], "confidence": None},     # no confidence
    ]
    report = add_generated_edges(graph, dataset, edges, min_confidence=0.5)
    assert report == {"read": 7, "added": 2, "below_min_confidence": 2, "unmapped_relation": 1, "unknown_node": 1,
                      "already_present": 1}
    assert graph[HAS_BRAND].edge_index.shape[1] == before + 1
    assert graph[HAS_BRAND].edge_weight[-1].item() == pytest.approx(0.9)
    assert graph[HAS_BRAND].edge_weight[:before].eq(1.0).all()
    assert torch.equal(graph[reverse(HAS_BRAND)].edge_index, graph[HAS_BRAND].edge_index.flip(0))
    assert graph[COMPLEMENT].edge_weight.tolist()[-1] == pytest.approx(0.8)
    with pytest.raises(InvalidInputError) as error:
        add_generated_edges(graph, dataset, edges, min_confidence=1.5)
    assert error.value.field == "min_confidence"


def test_lightgcn_reads_edge_weights_and_weights_of_one_change_nothing(one_torch_thread):
    dataset, features = toy()
    graph = export_dataset(dataset, features=features)
    model = build_model("lightgcn", num_nodes={nt: graph[nt].num_nodes for nt in graph.node_types}, text_dim=8, dim=16)
    model.eval()
    with torch.no_grad():
        plain = model(full_batch(graph))["item"]
        graph[HAS_BRAND].edge_weight = torch.ones(graph[HAS_BRAND].edge_index.shape[1])
        ones = model(full_batch(graph))["item"]
        graph[HAS_BRAND].edge_weight[0] = 0.1
        lighter = model(full_batch(graph))["item"]
    assert torch.allclose(plain, ones, atol=1e-6)
    assert not torch.allclose(plain, lighter, atol=1e-4)


@pytest.mark.integration
def test_refresh_changes_only_the_rows_near_new_job_edges(store, tmp_path, one_torch_thread):
    dataset, features = toy()
    import_dataset(store, dataset)
    settings = Settings(home=tmp_path / "home")
    out = finetune_target(settings, dataset=dataset.name, max_batches=20, early_stopping=False, seed=0,
                          name="gnn-toyshop", store=store, min_confidence=0.5, records=dataset, features=features)
    assert out["job_edges"] == {"read": 0, "added": 0, "below_min_confidence": 0, "unmapped_relation": 0,
                                "unknown_node": 0, "already_present": 0}
    embeddings = EmbeddingStore(settings)
    first = embeddings.load("gnn-toyshop")
    assert first.meta.config["min_confidence"] == 0.5 and first.meta.config["model_folder"] == "gnn-toyshop"

    # Nothing new in the graph: a new version, not one row moved.
    same = refresh_embedding_set(settings, "gnn-toyshop", store=store, dataset=dataset, features=features)
    assert same["changed"] == 0 and same["version"] == 2
    assert np.array_equal(embeddings.load("gnn-toyshop").vectors, first.vectors)

    # A job writes two triples the export can place and one under the set's floor.
    graph = export_dataset(dataset, features=features)
    keys = keys_of(dataset, graph)
    item = {i: k for k, i in keys["item"].items()}
    brand = {i: k for k, i in keys["brand"].items()}
    assert brand[1] not in (own_brand(0), own_brand(2)), "new edges, not the import's own"
    assert {n.id for n in (store.get_node(item[0], schema.ITEM), store.get_node(brand[1], schema.BRAND))
            if n is not None} == {item[0], brand[1]}, "the export's graph keys are the importer's"
    store.upsert_triples([
        TripleWrite(item[0], "has brand", brand[1], head_label=schema.ITEM, tail_label=schema.BRAND, confidence=0.9,
                    job_id="job-1", sources=("graph:test",)),
        TripleWrite(item[1], "complementary to", item[7], head_label=schema.ITEM, tail_label=schema.ITEM,
                    confidence=0.8, job_id="job-1"),
        TripleWrite(item[2], "has brand", brand[1], head_label=schema.ITEM, tail_label=schema.BRAND, confidence=0.2,
                    job_id="job-1"),
    ])
    read = {(e["head"], e["relation"], e["tail"]) for e in read_job_edges(store, dataset.name)}
    assert read == {(item[0], "has brand", brand[1]), (item[1], "complementary to", item[7]),
                    (item[2], "has brand", brand[1])}

    out = refresh_embedding_set(settings, "gnn-toyshop", store=store, dataset=dataset, features=features)
    assert out["version"] == 3 and out["job_edges"]["added"] == 2 and out["job_edges"]["below_min_confidence"] == 1
    third = embeddings.load("gnn-toyshop")
    moved = {node for node, a, b in zip(first.node_ids, first.vectors, third.vectors, strict=True)
             if not np.array_equal(a, b)}
    assert out["changed"] == len(moved) > 0
    assert {item[0], item[1], item[7]} <= moved
    # Only nodes within the model's depth (2 layers) of the new edges' ends can move.
    add_generated_edges(graph, dataset, read_job_edges(store, dataset.name), min_confidence=0.5)
    near = _items_within(graph, {("item", 0), ("item", 1), ("item", 7), ("brand", keys["brand"][brand[1]])}, hops=2)
    assert moved <= {item[i] for i in near}
    assert len(moved) < len(first.node_ids), "a refresh that moves every row is a retrain in disguise"
    meta = third.meta.config["refresh"]
    assert meta["from_version"] == 2 and set(meta["changed"]) == moved and meta["job_edges"]["added"] == 2
    # (the graph state counts a product domain's labels; the toy domain is not in the registry)
    assert set(third.meta.config["graph_state"]) == {"edges", "job_edges", "newest"}


def test_refresh_names_what_is_missing(tmp_path, store):
    settings = Settings(home=tmp_path / "home")
    from gnn.store import EmbeddingSet, EmbeddingSetNotFoundError

    with pytest.raises(EmbeddingSetNotFoundError):
        refresh_embedding_set(settings, "gnn-nothing", store=store)
    EmbeddingStore(settings).save(EmbeddingSet.create("loose", np.ones((2, 4)), ["a", "b"], model="minilm"))
    with pytest.raises(InvalidInputError) as error:
        refresh_embedding_set(settings, "loose", store=store)
    assert error.value.field == "name" and "no domain" in str(error.value)


def _items_within(graph, seeds: set[tuple[str, int]], *, hops: int) -> set[int]:
    """Item indices within ``hops`` edges (any type, both directions) of ``seeds``."""
    frontier, seen = set(seeds), set(seeds)
    for _ in range(hops):
        nxt = set()
        for (src, _, dst) in graph.edge_types:
            ei = graph[(src, _, dst)].edge_index
            for a, b in zip(ei[0].tolist(), ei[1].tolist(), strict=True):
                if (src, a) in frontier and (dst, b) not in seen:
                    nxt.add((dst, b))
        seen |= nxt
        frontier = nxt
    return {i for nt, i in seen if nt == "item"}
