"""Dense index: paraphrases, row replacement, save/load."""

from __future__ import annotations

import numpy as np
import pytest

from kg_builder.errors import InvalidInputError, KGForgeError
from kg_builder.retrieval import BM25Index, DenseIndex


@pytest.fixture
def dense(encoder, tiny_corpus) -> DenseIndex:
    index = DenseIndex(encoder)
    index.add(tiny_corpus.ids, tiny_corpus.search_texts())
    return index


def test_finds_the_paraphrase_that_bm25_misses(dense, tiny_corpus):
    query = "painkiller for headaches"
    assert BM25Index().build(tiny_corpus.search_texts()).search(query, k=3) == []
    assert dense.ids[dense.search(query, k=1)[0][0]] == "t:aspirin"
    assert dense.ids[dense.search("lava mountain", k=1)[0][0]] == "t:volcano"


def test_scores_are_cosines_best_first(dense):
    hits = dense.search("sugar hormone", k=len(dense) + 5)
    scores = [score for _, score in hits]
    assert len(hits) == len(dense)
    assert scores == sorted(scores, reverse=True) and -1.0 - 1e-5 <= scores[-1] and scores[0] <= 1.0 + 1e-5


def test_progress_reports_every_text(encoder):
    seen = []
    index = DenseIndex(encoder, batch_size=2)
    index.add(["a", "b", "c"], ["one", "two", "three"], progress=seen.append)
    assert seen == [2, 1]


def test_re_adding_an_id_replaces_its_row(dense):
    row = dense.row_of("t:paris")
    dense.add(["t:paris", "t:new"], ["A volcano of molten lava.", "Tokyo is the capital of Japan."])
    assert dense.ids[-1] == "t:new" and dense.row_of("t:paris") == row and len(dense) == 8
    assert {dense.ids[i] for i, _ in dense.search("erupting lava", k=2)} == {"t:paris", "t:volcano"}


def test_add_checks_lengths(dense):
    with pytest.raises(InvalidInputError):
        dense.add(["x"], ["a", "b"])


def test_save_load_round_trip(dense, encoder, tmp_path):
    loaded = DenseIndex.load(dense.save(tmp_path / "dense"), encoder)
    assert loaded.ids == dense.ids
    np.testing.assert_array_equal(loaded.embeddings, dense.embeddings)
    assert loaded.search("flu", k=3) == dense.search("flu", k=3)


def test_load_refuses_a_foreign_folder(dense, encoder, tmp_path):
    folder = dense.save(tmp_path / "dense")
    np.save(folder / "embeddings.npy", np.zeros((len(dense), 10), dtype=np.float32))
    with pytest.raises(KGForgeError, match="rebuild the index"):
        DenseIndex.load(folder, encoder)
