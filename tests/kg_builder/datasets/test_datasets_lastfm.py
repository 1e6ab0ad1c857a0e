"""Last.FM + KGCN knowledge-graph loader on tiny hand-made files."""

from __future__ import annotations

import pytest

from kg_builder.datasets import (
    EntityRecord,
    InteractionRecord,
    ItemRecord,
    RelationRecord,
    TripleRecord,
    load_dataset,
)
from kg_builder.datasets.lastfm import relation_text
from kg_builder.errors import DatasetError


def make_lastfm(root, write):
    folder = root / "kgrec" / "lastfm_kgcn"
    write(
        folder / "kg.txt",
        [
            "0\tmusic.artist.origin\t3",
            "1\tfilm.person_or_entity_appearing_in_film.film\t10",
            "3\tmusic.artist.origin\t1",
        ],
        crlf=True,
    )
    write(folder / "item_index2entity_id.txt", ["2\t0", "3\t1", "6\t2"], crlf=True)
    # HetRec file: LF line endings, header
    write(
        folder / "user_artists.dat",
        ["userID\tartistID\tweight", "2\t2\t13883", "2\t51\t11690", "3\t6\t7"],
        final_newline=False,
    )
    return folder


@pytest.fixture
def lastfm(tmp_path, write):
    make_lastfm(tmp_path, write)
    return load_dataset("lastfm_kgcn", tmp_path)


def test_kg_part(lastfm):
    assert (lastfm.name, lastfm.kind) == ("lastfm_kgcn", "kgrec")
    assert lastfm.triples == {
        "train": [
            TripleRecord("0", "music.artist.origin", "3"),
            TripleRecord("1", "film.person_or_entity_appearing_in_film.film", "10"),
            TripleRecord("3", "music.artist.origin", "1"),
        ]
    }
    # every id of kg.txt plus the item entities (2 appears only there), numerically sorted, no names
    assert lastfm.entities == [EntityRecord(i, i) for i in ["0", "1", "2", "3", "10"]]
    assert lastfm.relations == [
        RelationRecord(
            "film.person_or_entity_appearing_in_film.film", "film person or entity appearing in film film"
        ),
        RelationRecord("music.artist.origin", "music artist origin"),
    ]


def test_items_and_item_entities(lastfm):
    assert lastfm.items == [ItemRecord(id="2"), ItemRecord(id="3"), ItemRecord(id="6")]
    assert lastfm.item_entities == {"2": "0", "3": "1", "6": "2"}


def test_interactions_keep_play_counts_of_kg_linked_artists_only(lastfm):
    assert lastfm.interactions == [
        InteractionRecord(user="2", item="2", split="train", rating=13883.0),
        InteractionRecord(user="3", item="6", split="train", rating=7.0),
    ]


def test_relation_text():
    assert relation_text("people.person.sibling_s") == "people person sibling s"


def test_artist_mapped_twice_is_rejected(tmp_path, write):
    folder = make_lastfm(tmp_path, write)
    write(folder / "item_index2entity_id.txt", ["2\t0", "2\t1"], crlf=True)
    with pytest.raises(DatasetError, match="mapped twice"):
        load_dataset("lastfm_kgcn", tmp_path)
