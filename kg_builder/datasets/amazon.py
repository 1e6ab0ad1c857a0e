"""Amazon recommendation sets: Scientific (2018, UniSRec), Games (2018, LLMRank), Office (2014, ReChorus).

Common choices: item and user ids are the dataset's own integer tokens as strings (``"17"``); the
ASIN, where the dataset has one, goes to ``ItemRecord.asin``. Item text is cleaned with
:func:`~kg_builder.datasets.text.clean_text` (HTML entities such as ``&amp;`` unescaped, whitespace
collapsed). Interactions that come as sequences carry their 0-based ``position``.

**amazon18_scientific** (RecBole atomic files, ``:token`` headers)

* Items: every ASIN of ``Scientific.item2index``, ordered by index; ``id`` = the index,
  ``asin`` = the ASIN.
* ``Scientific.text`` is UniSRec's ``"{title}. {category levels joined by spaces}. {brand}. "``
  (an absent field leaves an empty segment, e.g. ``"title. . brand. "``). It is parsed with a regular
  expression anchored on the root category ``Industrial & Scientific``: title = everything before
  the last ``". Industrial & Scientific"``, category = up to the next period, brand = the rest. The
  source joined category levels with spaces, so level boundaries cannot be recovered:
  ``categories`` is ``(root, "remaining levels as one string")`` (``(root,)`` when there is no
  deeper level, ``()`` when the segment is empty). A text the pattern does not match becomes the
  title as a whole.
* Interactions: ``Scientific.valid.inter`` has one row per user (history of at most 50 items +
  target). History items get split ``"train"``, the target ``"valid"``; positions 0..n. The user is
  the ``user_id`` token. ``Scientific.train.inter`` is not read: its rows are prefixes of these
  sequences (except for the earliest items of the few users whose history was cut to 50).

**amazon18_games**

* Items: ``Games.item`` (``item_id`` -> title); no ASIN in this dataset.
* Interactions: ``Games.test.inter`` has one row per user: history + final item. The final item is
  ``"test"``, the last history item ``"valid"`` and the earlier ones ``"train"`` (the dataset's
  train/valid sequences are prefixes of this one).

**amazon14_office** (ReChorus: tab-separated despite ``.csv``, ids start at 1)

* Items: ``Office.item2index`` (ASIN -> id). ``Office.text`` concatenates title, leaf category and
  brand *without separators*, so the whole cleaned text is the ``title`` (no guessing).
  ``item_meta.csv`` gives opaque ``i_category`` / ``i_brand`` ids; ReChorus numbers them from 1 and
  writes 0 for "unknown" (481 items, HP and Canon among them, share brand 0), so 0 becomes ``None``
  / ``()``.
* Item links: ``r_complement`` -> relation ``"complement"``, ``r_substitute`` -> ``"substitute"``,
  head = the row's item, tail = each listed item, in list order.
* Interactions: ``train.csv`` (split ``"train"``), ``dev.csv`` (``"dev"``), ``test.csv``
  (``"test"``), each with its Unix ``time`` as ``timestamp``; the ``neg_items`` column of dev/test
  (99 sampled negatives) is not read. A missing dev/test file is skipped (held-out splits); a
  missing ``train.csv`` is an error.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from ..errors import DatasetError
from .records import Dataset, InteractionRecord, ItemLinkRecord, ItemRecord
from .text import (
    Table,
    clean_text,
    none_if_empty,
    parse_literal_list,
    read_table,
    to_int,
)

SCIENTIFIC_ROOT_CATEGORY = "Industrial & Scientific"

# --------------------------------------------------------------------------------------------
# Shared: RecBole index and sequence files


def read_index(path: Path) -> list[tuple[str, str]]:
    """``token<TAB>index`` lines (``Scientific.item2index``, ``Office.item2index``) as
    ``(token, index)`` pairs ordered by the integer index."""
    table = read_table(path, columns=("token", "index"))
    pairs = [(token.strip(), index.strip()) for token, index in table.rows]
    return sorted(pairs, key=lambda pair: to_int(pair[1], path, "index"))


def read_texts(path: Path, key: str) -> dict[str, str]:
    """A headed ``key<TAB>text`` file as key -> raw text (the text may contain tabs)."""
    table = read_table(path, last_takes_rest=True)
    key_col, text_col = table.index(key, "text")
    return {row[key_col].strip(): row[text_col] for row in table.rows}


def read_sequences(path: Path) -> list[tuple[str, list[str]]]:
    """RecBole ``user_id``, ``item_id_list``, ``item_id`` rows as (user, history + [target])."""
    table = read_table(path)
    user, history, target = table.index("user_id", "item_id_list", "item_id")
    return [(row[user].strip(), [*row[history].split(), row[target].strip()]) for row in table.rows]


def sequence_interactions(
    sequences: list[tuple[str, list[str]]], tail_splits: Sequence[str]
) -> list[InteractionRecord]:
    """One record per sequence position; the last ``len(tail_splits)`` positions get those splits,
    every earlier position ``"train"``."""
    records = []
    for user, items in sequences:
        first_tail = len(items) - len(tail_splits)
        for position, item in enumerate(items):
            split = tail_splits[position - first_tail] if position >= first_tail else "train"
            records.append(InteractionRecord(user=user, item=item, split=split, position=position))
    return records


# --------------------------------------------------------------------------------------------
# Scientific


@lru_cache(maxsize=8)
def _unisrec_pattern(root: str) -> re.Pattern[str]:
    return re.compile(
        rf"^(?:(?P<title>.*)\. )?(?P<category>{re.escape(root)}(?: [^.]*)?|)\. (?P<brand>.*?)\.?$",
        re.DOTALL,
    )


def parse_unisrec_text(text: str, root: str) -> tuple[str | None, tuple[str, ...], str | None]:
    """``"Title. Root Sub Leaf. Brand. "`` -> ``("Title", ("Root", "Sub Leaf"), "Brand")``."""
    stripped = text.strip()
    match = _unisrec_pattern(root).match(stripped)
    if match is None:
        return none_if_empty(clean_text(stripped.removesuffix("."))), (), None
    category = match["category"]
    deeper = clean_text(category[len(root) :])
    categories = ((root, deeper) if deeper else (root,)) if category else ()
    return none_if_empty(clean_text(match["title"])), categories, none_if_empty(clean_text(match["brand"]))


def scientific_items(folder: Path) -> list[ItemRecord]:
    texts = read_texts(folder / "Scientific.text", key="item_id")
    items = []
    for asin, item_id in read_index(folder / "Scientific.item2index"):
        title, categories, brand = parse_unisrec_text(texts.get(asin, ""), SCIENTIFIC_ROOT_CATEGORY)
        items.append(ItemRecord(id=item_id, title=title, brand=brand, categories=categories, asin=asin))
    return items


def load_scientific(folder: Path) -> Dataset:
    """Train + ``valid`` from ``Scientific.valid.inter``; where the held-out ``Scientific.test.inter``
    is on disk (UniSRec's layout: each test row's history is the valid row's history plus the valid
    target), its targets become ``test`` interactions, so every evaluation runs unchanged with
    ``--split test``."""
    sequences = read_sequences(folder / "Scientific.valid.inter")
    tails = {user: ("valid",) for user, _ in sequences}
    test_file = folder / "Scientific.test.inter"
    if test_file.exists():
        valid = dict(sequences)
        for user, items in read_sequences(test_file):
            history, known = items[:-1], valid.get(user, [])
            # RecBole's files cut each history to its last 50 items, so only the overlap must agree.
            overlap = min(len(history), len(known))
            if overlap and history[len(history) - overlap:] != known[len(known) - overlap:]:
                raise DatasetError(
                    f"{test_file}: user {user}'s history does not end with its valid sequence; expected "
                    "UniSRec's layout (test history = valid history + the valid item, both cut to the "
                    "same most recent items)")
            valid[user] = (history if len(history) > len(known) else known) + items[-1:]
            tails[user] = ("valid", "test")
        sequences = list(valid.items())
    interactions: list[InteractionRecord] = []
    for user, items in sequences:
        interactions += sequence_interactions([(user, items)], tail_splits=tails[user])
    return Dataset(
        name="amazon18_scientific",
        kind="rec",
        items=scientific_items(folder),
        interactions=interactions,
    )


# --------------------------------------------------------------------------------------------
# Games


def games_items(folder: Path) -> list[ItemRecord]:
    table = read_table(folder / "Games.item", last_takes_rest=True)
    item_col, title_col = table.index("item_id", "title")
    return [
        ItemRecord(id=row[item_col].strip(), title=none_if_empty(clean_text(row[title_col])))
        for row in table.rows
    ]


def load_games(folder: Path) -> Dataset:
    sequences = read_sequences(folder / "Games.test.inter")
    return Dataset(
        name="amazon18_games",
        kind="rec",
        items=games_items(folder),
        interactions=sequence_interactions(sequences, tail_splits=("valid", "test")),
    )


# --------------------------------------------------------------------------------------------
# Office

OFFICE_SPLITS = {"train": "train.csv", "dev": "dev.csv", "test": "test.csv"}
OFFICE_LINKS = {"r_complement": "complement", "r_substitute": "substitute"}
RECHORUS_UNKNOWN = "0"


def _known_id(value: str) -> str | None:
    value = value.strip()
    return None if value in ("", RECHORUS_UNKNOWN) else value


def office_meta_ids(meta: Table) -> dict[str, tuple[str | None, str | None]]:
    """item id -> (category id, brand id) from ``item_meta.csv``; unknown (0) ids become ``None``."""
    item, category, brand = meta.index("item_id", "i_category", "i_brand")
    return {row[item].strip(): (_known_id(row[category]), _known_id(row[brand])) for row in meta.rows}


def office_items(folder: Path, meta: Table) -> list[ItemRecord]:
    texts = read_texts(folder / "Office.text", key="id")
    meta_ids = office_meta_ids(meta)
    items = []
    for asin, item_id in read_index(folder / "Office.item2index"):
        category, brand = meta_ids.get(item_id, (None, None))
        title = none_if_empty(clean_text(texts.get(asin)))
        items.append(
            ItemRecord(
                id=item_id,
                title=title,
                asin=asin,
                brand_id=brand,
                category_ids=(category,) if category else (),
            )
        )
    return items


def office_links(meta: Table) -> list[ItemLinkRecord]:
    (item_col,) = meta.index("item_id")
    columns = [(meta.index(column)[0], relation) for column, relation in OFFICE_LINKS.items()]
    return [
        ItemLinkRecord(head=row[item_col].strip(), relation=relation, tail=tail.strip())
        for row in meta.rows
        for col, relation in columns
        for tail in parse_literal_list(row[col])
    ]


def office_interactions(folder: Path) -> list[InteractionRecord]:
    records = []
    for split, filename in OFFICE_SPLITS.items():
        path = folder / filename
        if split != "train" and not path.exists():
            continue
        table = read_table(path, min_columns=3)
        user, item, time = table.index("user_id", "item_id", "time")
        records.extend(
            InteractionRecord(
                user=row[user].strip(),
                item=row[item].strip(),
                split=split,
                timestamp=to_int(row[time], path, "time"),
            )
            for row in table.rows
        )
    return records


def load_office(folder: Path) -> Dataset:
    meta = read_table(folder / "item_meta.csv")
    return Dataset(
        name="amazon14_office",
        kind="rec",
        items=office_items(folder, meta),
        interactions=office_interactions(folder),
        item_links=office_links(meta),
    )
