"""MovieLens latest-small (October 2016 release): ``movies.csv`` and ``ratings.csv``.

The GroupLens CSVs have CRLF line endings and quoted titles containing commas
(``"American President, The (1995)"``); both are read with the :mod:`csv` module.

Choices:

* Items are the movies: ``id`` = ``movieId``, ``title`` = the title as given (year included).
* ``categories`` holds the **genres** in file order (``("Adventure", "Animation", ...)``). Unlike
  the Amazon sets these are *not* a general-to-specific path but a flat set of genre labels; the
  importer should treat each as an independent category. ``"(no genres listed)"`` gives ``()``.
* Interactions: every row of ``ratings.csv`` with its ``rating`` (0.5..5 stars) and ``timestamp``
  (Unix seconds), split ``"train"`` (the dataset has no official split).
* ``tags.csv`` and ``links.csv`` are not loaded.
"""

from __future__ import annotations

from pathlib import Path

from .records import Dataset, InteractionRecord, ItemRecord
from .text import read_csv_table, to_float, to_int

NO_GENRES = "(no genres listed)"


def split_genres(genres: str) -> tuple[str, ...]:
    return tuple(g for part in genres.split("|") if (g := part.strip()) and g != NO_GENRES)


def read_movies(path: Path) -> list[ItemRecord]:
    table = read_csv_table(path)
    movie, title, genres = table.index("movieId", "title", "genres")
    return [
        ItemRecord(
            id=row[movie].strip(), title=row[title].strip() or None, categories=split_genres(row[genres])
        )
        for row in table.rows
    ]


def read_ratings(path: Path) -> list[InteractionRecord]:
    table = read_csv_table(path)
    user, movie, rating, timestamp = table.index("userId", "movieId", "rating", "timestamp")
    return [
        InteractionRecord(
            user=row[user].strip(),
            item=row[movie].strip(),
            split="train",
            rating=to_float(row[rating], path, "rating"),
            timestamp=to_int(row[timestamp], path, "timestamp"),
        )
        for row in table.rows
    ]


def load_movielens(folder: Path) -> Dataset:
    return Dataset(
        name="ml_latest_small",
        kind="rec",
        items=read_movies(folder / "movies.csv"),
        interactions=read_ratings(folder / "ratings.csv"),
        category_paths=False,
    )
