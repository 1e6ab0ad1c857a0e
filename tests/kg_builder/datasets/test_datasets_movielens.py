"""MovieLens latest-small loader on tiny hand-made CSV files (CRLF, quoted titles)."""

from __future__ import annotations

import pytest

from kg_builder.datasets import InteractionRecord, ItemRecord, load_dataset
from kg_builder.errors import DatasetError


def make_movielens(root, write):
    folder = root / "rec" / "ml_latest_small"
    write(
        folder / "movies.csv",
        [
            "movieId,title,genres",
            "1,Toy Story (1995),Adventure|Animation|Children",
            '11,"American President, The (1995)",Comedy|Drama|Romance',
            '29,"City of Lost Children, The (Cité des enfants perdus, La) (1995)",Fantasy',
            "149532,Marco Polo: One Hundred Eyes (2015),(no genres listed)",
        ],
        crlf=True,
    )
    write(
        folder / "ratings.csv",
        ["userId,movieId,rating,timestamp", "1,11,2.5,1260759144", "2,1,4.0,835355493"],
        crlf=True,
        final_newline=False,
    )
    return folder


def test_movies_with_quoted_titles_and_genres(tmp_path, write):
    make_movielens(tmp_path, write)
    dataset = load_dataset("ml_latest_small", tmp_path)
    assert (dataset.name, dataset.kind) == ("ml_latest_small", "rec")
    assert dataset.items == [
        ItemRecord(id="1", title="Toy Story (1995)", categories=("Adventure", "Animation", "Children")),
        ItemRecord(
            id="11", title="American President, The (1995)", categories=("Comedy", "Drama", "Romance")
        ),
        ItemRecord(
            id="29",
            title="City of Lost Children, The (Cité des enfants perdus, La) (1995)",
            categories=("Fantasy",),
        ),
        ItemRecord(id="149532", title="Marco Polo: One Hundred Eyes (2015)", categories=()),
    ]


def test_ratings_keep_rating_and_timestamp(tmp_path, write):
    make_movielens(tmp_path, write)
    assert load_dataset("ml_latest_small", tmp_path).interactions == [
        InteractionRecord(user="1", item="11", split="train", rating=2.5, timestamp=1260759144),
        InteractionRecord(user="2", item="1", split="train", rating=4.0, timestamp=835355493),
    ]


def test_bad_rating_is_rejected(tmp_path, write):
    folder = make_movielens(tmp_path, write)
    write(folder / "ratings.csv", ["userId,movieId,rating,timestamp", "1,11,good,1260759144"], crlf=True)
    with pytest.raises(DatasetError, match="rating expects a number"):
        load_dataset("ml_latest_small", tmp_path)


def test_missing_ratings_file_names_the_path(tmp_path, write):
    folder = make_movielens(tmp_path, write)
    (folder / "ratings.csv").unlink()
    with pytest.raises(DatasetError, match=r"ratings\.csv"):
        load_dataset("ml_latest_small", tmp_path)
