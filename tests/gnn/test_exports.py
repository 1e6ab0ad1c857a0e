"""Exports parse back: .npy + ids, Parquet, RecBole atomic files (.ent with the vectors, .link)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from gnn.exports import (
    ENT_HEADER,
    LINK_HEADER,
    export_set,
    item_tokens_from_file,
    read_parquet,
    read_recbole_ent,
)
from gnn.store import EmbeddingSet, EmbeddingStore
from kg_builder.errors import InvalidInputError

IDS = ["umls:virus", "amazon:B00TNNWMXI", "amazon14_office:item:12", "brand:acme", "amazon:B010Y25PQC"]


@pytest.fixture
def saved(tmp_path) -> EmbeddingSet:
    vectors = np.random.default_rng(3).standard_normal((5, 6)).astype(np.float32) * 1e-3
    vectors[0, 0] = 123456.789  # a large value: 9 significant digits must still round-trip
    store = EmbeddingStore(root=tmp_path / "store")
    return store.save(EmbeddingSet.create("mixed", vectors, IDS, model="hgt", domain="Scientific"))


def test_npy_and_ids_parse_back(saved, tmp_path):
    vectors_path, ids_path = export_set(saved, "npy", tmp_path / "out")
    assert vectors_path.name == "mixed.v1.npy"
    np.testing.assert_array_equal(np.load(vectors_path), saved.vectors)
    assert ids_path.read_text(encoding="utf-8").splitlines() == IDS


def test_parquet_parses_back_with_metadata(saved, tmp_path):
    (path,) = export_set(saved, "parquet", tmp_path / "out")
    ids, vectors = read_parquet(path)
    assert ids == IDS
    np.testing.assert_array_equal(vectors, saved.vectors)
    table = pq.read_table(path)
    assert table.schema.field("vector").type.list_size == 6
    assert json.loads(table.schema.metadata[b"kgforge"])["name"] == "mixed"


def test_recbole_files_have_the_atomic_headers_and_parse_back(saved, tmp_path):
    ent, link, config = export_set(saved, "recbole", tmp_path / "out")  # dataset: the set's domain
    assert ent == tmp_path / "out" / "Scientific" / "Scientific.ent"
    lines = ent.read_text(encoding="utf-8").splitlines()
    assert lines[0] == ENT_HEADER == "ent_id:token\tent_emb:float_seq"
    assert all(len(line.split("\t")) == 2 for line in lines)
    ids, vectors = read_recbole_ent(ent)
    assert ids == IDS
    np.testing.assert_array_equal(vectors, saved.vectors)  # float32 exact through the text

    rows = link.read_text(encoding="utf-8").splitlines()
    assert rows[0] == LINK_HEADER == "item_id:token\tentity_id:token"
    # items only (not the KG entity, not the brand), with their native ids as item tokens
    assert rows[1:] == ["B00TNNWMXI\tamazon:B00TNNWMXI", "12\tamazon14_office:item:12", "B010Y25PQC\tamazon:B010Y25PQC"]
    text = config.read_text()
    assert "additional_feat_suffix: [ent]" in text and "ent_id: ent_emb" in text


def test_recbole_link_with_item2index_tokens(saved, tmp_path):
    item2index = tmp_path / "Scientific.item2index"
    item2index.write_text("B00TNNWMXI\t0\nB00IBZE2EQ\t1\nB010Y25PQC\t2\n")
    tokens = item_tokens_from_file(item2index)
    _, link, _ = export_set(saved, "recbole", tmp_path / "out", dataset="Sci", item_tokens=tokens)
    assert link.read_text().splitlines()[1:] == ["0\tamazon:B00TNNWMXI", "2\tamazon:B010Y25PQC"]


def test_unknown_format_and_bad_dataset_name(saved, tmp_path):
    with pytest.raises(InvalidInputError) as info:
        export_set(saved, "csv", tmp_path)
    assert info.value.field == "format" and "recbole" in info.value.reason
    with pytest.raises(InvalidInputError) as info:
        export_set(saved, "recbole", tmp_path, dataset="../up")
    assert info.value.field == "dataset"
