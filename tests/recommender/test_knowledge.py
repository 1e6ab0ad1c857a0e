import numpy as np
import pytest

from gnn.store import EmbeddingSet, EmbeddingStore, NodeNotInSetError
from kg_builder.errors import InvalidInputError
from kg_builder.settings import Settings
from recommender.knowledge import build_knowledge, parse_spec


def test_specs_parse_and_unknown_parts_name_the_field():
    assert parse_spec(None) == [] and parse_spec("none") == []
    assert parse_spec("text+graph:scientific@2") == ["text", "graph:scientific@2"]
    with pytest.raises(InvalidInputError) as e:
        parse_spec("text+wikipedia")
    assert e.value.field == "knowledge"


def test_graph_knowledge_follows_item_order_and_is_normalised(tmp_path, cyclic):
    data, _ = cyclic
    settings = Settings(home=tmp_path)
    ids = [f"synthetic:item:{i}" for i in reversed(data.item_ids)]  # the set's own row order differs
    vectors = np.arange(len(ids) * 4, dtype=np.float32).reshape(len(ids), 4) + 1.0
    EmbeddingStore(settings).save(EmbeddingSet.create("graphset", vectors, ids, model="lightgcn", domain="synthetic"))
    matrix = build_knowledge("graph:graphset", data, settings=settings)
    assert matrix.shape == (data.n_items, 4)
    expected = vectors[::-1] / np.linalg.norm(vectors[::-1], axis=1, keepdims=True)
    assert np.allclose(matrix, expected, atol=1e-6)
    EmbeddingStore(settings).save(EmbeddingSet.create("partial", vectors[:5], ids[:5], model="lightgcn"))
    with pytest.raises(NodeNotInSetError):
        build_knowledge("graph:partial", data, settings=settings)
