"""Amazon recommendation loaders (Scientific, Games, Office) on tiny hand-made folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from kg_builder.datasets import InteractionRecord, ItemLinkRecord, ItemRecord, load_dataset
from kg_builder.datasets.amazon import SCIENTIFIC_ROOT_CATEGORY, parse_unisrec_text
from kg_builder.errors import DatasetError

ROOT = SCIENTIFIC_ROOT_CATEGORY
RECBOLE_HEADER = "user_id:token\titem_id_list:token_seq\titem_id:token"


# --------------------------------------------------------------------------------------------
# Scientific


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "PORTER-CABLE 80 Grit Roll. Industrial & Scientific Abrasive & Finishing Products Sanding Rolls. "
            "PORTER-CABLE. ",
            (
                "PORTER-CABLE 80 Grit Roll",
                (ROOT, "Abrasive & Finishing Products Sanding Rolls"),
                "PORTER-CABLE",
            ),
        ),
        # periods inside the title and the brand
        (
            "WD-40 Spray, 12 oz. (Pack of 1). Industrial & Scientific Lubricants. Sterling Inc. (STCC). ",
            ("WD-40 Spray, 12 oz. (Pack of 1)", (ROOT, "Lubricants"), "Sterling Inc. (STCC)"),
        ),
        # empty category segment
        (
            "Ideal 2006S Crimp Connector (Pack of 100). . Ideal. ",
            ("Ideal 2006S Crimp Connector (Pack of 100)", (), "Ideal"),
        ),
        # empty category and empty brand
        ("3M Eyewear, Clear. . . ", ("3M Eyewear, Clear", (), None)),
        # empty brand
        (
            "Ancor Lugs. Industrial & Scientific Ring Terminals. . ",
            ("Ancor Lugs", (ROOT, "Ring Terminals"), None),
        ),
        # a broken title that itself mentions the root category
        (
            " Industrial & Scientific />. Industrial & Scientific Lab Chemicals. Dykem. ",
            ("Industrial & Scientific />", (ROOT, "Lab Chemicals"), "Dykem"),
        ),
        # root category only; HTML entity and NBSP in the title
        ("Tape &amp; Glue\u00a0Set. Industrial & Scientific. 3M. ", ("Tape & Glue Set", (ROOT,), "3M")),
        # no title at all
        ("Industrial & Scientific Fasteners. Boltsize-It. ", (None, (ROOT, "Fasteners"), "Boltsize-It")),
        # not in the expected shape: the whole text is the title
        ("Just a title. ", ("Just a title", (), None)),
        ("", (None, (), None)),
    ],
)
def test_parse_unisrec_text(text, expected):
    assert parse_unisrec_text(text, ROOT) == expected


def make_scientific(root: Path, write) -> Path:
    folder = root / "rec" / "amazon18_scientific"
    write(folder / "Scientific.item2index", ["B00B\t1", "B00A\t0", "B00C\t2"])
    write(
        folder / "Scientific.text",
        [
            "item_id:token\ttext:token_seq",
            "B00A\tGorilla Glue, 8 ounce. Industrial & Scientific Tapes, Adhesives & Sealants. Gorilla. ",
            "B00B\tYeast Nutrient - 8 oz. . Home Brew Ohio. ",
        ],
        final_newline=False,
    )
    write(folder / "Scientific.valid.inter", [RECBOLE_HEADER, "0\t0 1\t2", "1\t2\t0"], crlf=True)
    return folder


def test_scientific_items_and_sequences(tmp_path, write):
    make_scientific(tmp_path, write)
    dataset = load_dataset("amazon18_scientific", tmp_path)
    assert (dataset.name, dataset.kind) == ("amazon18_scientific", "rec")
    assert dataset.items == [
        ItemRecord(
            id="0",
            title="Gorilla Glue, 8 ounce",
            brand="Gorilla",
            categories=(ROOT, "Tapes, Adhesives & Sealants"),
            asin="B00A",
        ),
        ItemRecord(id="1", title="Yeast Nutrient - 8 oz", brand="Home Brew Ohio", asin="B00B"),
        ItemRecord(id="2", asin="B00C"),  # no text line
    ]
    assert dataset.interactions == [
        InteractionRecord(user="0", item="0", split="train", position=0),
        InteractionRecord(user="0", item="1", split="train", position=1),
        InteractionRecord(user="0", item="2", split="valid", position=2),
        InteractionRecord(user="1", item="2", split="train", position=0),
        InteractionRecord(user="1", item="0", split="valid", position=1),
    ]


def test_scientific_reads_the_held_out_test_file_where_it_exists(tmp_path, write):
    folder = make_scientific(tmp_path, write)
    write(folder / "Scientific.test.inter", [RECBOLE_HEADER, "0\t0 1 2\t1", "1\t2 0\t1"])
    dataset = load_dataset("amazon18_scientific", tmp_path)
    by_user = {}
    for r in dataset.interactions:
        by_user.setdefault(r.user, []).append((r.position, r.item, r.split))
    assert by_user["0"] == [(0, "0", "train"), (1, "1", "train"), (2, "2", "valid"), (3, "1", "test")]
    assert by_user["1"] == [(0, "2", "train"), (1, "0", "valid"), (2, "1", "test")]
    write(folder / "Scientific.test.inter", [RECBOLE_HEADER, "0\t1 2\t1"])  # cut to the last 2: fine
    assert [r.item for r in load_dataset("amazon18_scientific", tmp_path).interactions if r.user == "0"] == \
        ["0", "1", "2", "1"]
    write(folder / "Scientific.test.inter", [RECBOLE_HEADER, "0\t1 0 2\t1"])  # not the valid history
    with pytest.raises(DatasetError, match="UniSRec"):
        load_dataset("amazon18_scientific", tmp_path)


def test_scientific_missing_valid_inter_names_the_file(tmp_path, write):
    folder = make_scientific(tmp_path, write)
    (folder / "Scientific.valid.inter").unlink()
    with pytest.raises(DatasetError, match=r"Scientific\.valid\.inter"):
        load_dataset("amazon18_scientific", tmp_path)


def test_scientific_non_integer_index_is_rejected(tmp_path, write):
    folder = make_scientific(tmp_path, write)
    write(folder / "Scientific.item2index", ["B00A\tzero"])
    with pytest.raises(DatasetError, match="expects an integer"):
        load_dataset("amazon18_scientific", tmp_path)


# --------------------------------------------------------------------------------------------
# Games


def test_games_splits_last_history_item_is_valid_final_item_is_test(tmp_path, write):
    folder = tmp_path / "rec" / "amazon18_games"
    write(
        folder / "Games.item",
        [
            "item_id:token\ttitle:token_seq",
            "0\tGame &amp; Watch Gallery 2",
            "1\tPikmin",
            "2\tZelda",
            "3\tMario",
        ],
    )
    write(folder / "Games.test.inter", [RECBOLE_HEADER, "0\t0 1 2\t3", "1\t3\t0", "2\t\t1"])
    dataset = load_dataset("amazon18_games", tmp_path)
    assert dataset.items[0] == ItemRecord(id="0", title="Game & Watch Gallery 2")
    by_user: dict[str, list[tuple[str, str, int | None]]] = {}
    for record in dataset.interactions:
        by_user.setdefault(record.user, []).append((record.item, record.split, record.position))
    assert by_user == {
        "0": [("0", "train", 0), ("1", "train", 1), ("2", "valid", 2), ("3", "test", 3)],
        "1": [("3", "valid", 0), ("0", "test", 1)],
        "2": [("1", "test", 0)],  # empty history: only the final item
    }


# --------------------------------------------------------------------------------------------
# Office


def make_office(root: Path, write, *, with_test: bool = True) -> Path:
    folder = root / "rec" / "amazon14_office"
    write(folder / "Office.item2index", ["B0000AG93P\t1", "B00004VVIX\t2", "B000059RDW\t3"])
    write(
        folder / "Office.text",
        [
            "id\ttext",
            "B0000AG93P\tHP 78 Cartridge Laser Printer Toner HP",
            "B00004VVIX\tCalculator  Basic\tTI",
        ],
    )
    write(
        folder / "item_meta.csv",
        [
            "item_id\ti_category\ti_brand\tr_complement\tr_substitute",
            "1\t6\t2\t[2, 3]\t[]",
            "2\t0\t0\t[]\t[1]",
            "3\t4\t0\t[]\t[]",
        ],
    )
    write(folder / "train.csv", ["user_id\titem_id\ttime", "1\t1\t970185600", "1\t2\t983404800"])
    write(folder / "dev.csv", ["user_id\titem_id\ttime\tneg_items", "1\t3\t990000000\t[2, 1, 3]"])
    if with_test:
        write(
            folder / "test.csv", ["user_id\titem_id\ttime\tneg_items", "1\t2\t995000000"], final_newline=False
        )
    return folder


def test_office_items_are_one_based_with_opaque_meta_ids(tmp_path, write):
    make_office(tmp_path, write)
    dataset = load_dataset("amazon14_office", tmp_path)
    assert dataset.items == [
        ItemRecord(
            id="1",
            title="HP 78 Cartridge Laser Printer Toner HP",
            asin="B0000AG93P",
            brand_id="2",
            category_ids=("6",),
        ),
        # a tab inside the text is kept as text; 0 means "unknown" in ReChorus
        ItemRecord(id="2", title="Calculator Basic TI", asin="B00004VVIX"),
        ItemRecord(id="3", title=None, asin="B000059RDW", category_ids=("4",)),
    ]


def test_office_links(tmp_path, write):
    make_office(tmp_path, write)
    assert load_dataset("amazon14_office", tmp_path).item_links == [
        ItemLinkRecord("1", "complement", "2"),
        ItemLinkRecord("1", "complement", "3"),
        ItemLinkRecord("2", "substitute", "1"),
    ]


def test_office_interactions_per_split_ignoring_negatives(tmp_path, write):
    make_office(tmp_path, write)
    assert load_dataset("amazon14_office", tmp_path).interactions == [
        InteractionRecord(user="1", item="1", split="train", timestamp=970185600),
        InteractionRecord(user="1", item="2", split="train", timestamp=983404800),
        InteractionRecord(user="1", item="3", split="dev", timestamp=990000000),
        InteractionRecord(user="1", item="2", split="test", timestamp=995000000),
    ]


def test_office_held_out_test_file_is_optional(tmp_path, write):
    make_office(tmp_path, write, with_test=False)
    splits = {record.split for record in load_dataset("amazon14_office", tmp_path).interactions}
    assert splits == {"train", "dev"}


def test_office_bad_timestamp_is_rejected(tmp_path, write):
    folder = make_office(tmp_path, write)
    write(folder / "train.csv", ["user_id\titem_id\ttime", "1\t1\tyesterday"])
    with pytest.raises(DatasetError, match="time expects an integer"):
        load_dataset("amazon14_office", tmp_path)
