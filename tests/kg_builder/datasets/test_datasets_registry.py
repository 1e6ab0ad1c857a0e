"""The dataset registry: names, paths, availability and error messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from kg_builder.datasets import DATASETS, available_datasets, dataset_path, get_loader, load_dataset
from kg_builder.errors import DatasetError, KGForgeError

NAMES = [
    "umls",
    "wn18rr",
    "fb15k237",
    "amazon18_scientific",
    "amazon18_games",
    "amazon14_office",
    "amazon18_product_text",
    "ml_latest_small",
    "lastfm_kgcn",
]


def test_registry_names():
    assert list(DATASETS) == NAMES


def test_registry_is_read_only():
    with pytest.raises(TypeError):
        DATASETS["new"] = DATASETS["umls"]  # type: ignore[index]


@pytest.mark.parametrize("name", NAMES)
def test_dataset_path_is_under_the_data_root(name, tmp_path):
    path = dataset_path(name, tmp_path)
    assert path == tmp_path / DATASETS[name].folder
    assert path.parent.parent == tmp_path
    assert path.name == name


@pytest.mark.parametrize(
    ("name", "folder"),
    [
        ("umls", "kg/umls"),
        ("amazon14_office", "rec/amazon14_office"),
        ("amazon18_product_text", "corpus/amazon18_product_text"),
        ("lastfm_kgcn", "kgrec/lastfm_kgcn"),
    ],
)
def test_dataset_path_layout(name, folder):
    assert dataset_path(name, "/data") == Path("/data") / folder


def test_unknown_name_lists_the_valid_names(tmp_path):
    with pytest.raises(DatasetError) as info:
        load_dataset("wn18", tmp_path)
    message = str(info.value)
    assert "'wn18'" in message
    for name in NAMES:
        assert name in message
    with pytest.raises(DatasetError):
        dataset_path("nope", tmp_path)
    with pytest.raises(KGForgeError):
        get_loader("nope")


def test_missing_folder_names_the_path_and_the_fix(tmp_path):
    with pytest.raises(DatasetError) as info:
        load_dataset("fb15k237", tmp_path)
    message = str(info.value)
    assert str(tmp_path / "kg" / "fb15k237") in message
    assert "KGFORGE_DATA_DIR" in message and "--data-dir" in message


def test_available_datasets_lists_existing_folders_in_registry_order(tmp_path):
    assert available_datasets(tmp_path) == []
    (tmp_path / "rec" / "ml_latest_small").mkdir(parents=True)
    (tmp_path / "kg" / "umls").mkdir(parents=True)
    (tmp_path / "kg" / "stray").mkdir()
    assert available_datasets(tmp_path) == ["umls", "ml_latest_small"]
    assert available_datasets(str(tmp_path)) == ["umls", "ml_latest_small"]


def test_loader_is_callable_with_the_data_root(tmp_path, write):
    folder = tmp_path / "kgrec" / "lastfm_kgcn"
    write(folder / "kg.txt", ["0\tmusic.artist.origin\t1"])
    write(folder / "item_index2entity_id.txt", ["2\t0"])
    write(folder / "user_artists.dat", ["userID\tartistID\tweight", "2\t2\t5"])
    dataset = DATASETS["lastfm_kgcn"](tmp_path)
    assert (dataset.name, dataset.kind) == ("lastfm_kgcn", DATASETS["lastfm_kgcn"].kind)
