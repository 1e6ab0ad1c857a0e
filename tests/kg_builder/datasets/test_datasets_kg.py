"""KG-BERT benchmark loaders on tiny hand-made folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from kg_builder.datasets import EntityRecord, RelationRecord, TripleRecord, load_dataset
from kg_builder.datasets.kg import lemma_and_gloss
from kg_builder.errors import DatasetError


def make_kg(
    root: Path,
    name: str,
    write,
    *,
    entity_text: list[str],
    long_text: list[str] | None = None,
    splits: tuple[str, ...] = ("train", "dev", "test"),
    crlf: bool = False,
) -> Path:
    folder = root / "kg" / name
    # last line without a trailing newline, as in the real entities.txt / entity2text.txt
    write(folder / "entities.txt", ["e1", "e2", "e3"], final_newline=False, crlf=crlf)
    write(folder / "entity2text.txt", entity_text, final_newline=False, crlf=crlf)
    if long_text is not None:
        write(folder / "entity2textlong.txt", long_text, final_newline=False, crlf=crlf)
    write(folder / "relations.txt", ["r1", "_r_2"], final_newline=False, crlf=crlf)
    write(folder / "relation2text.txt", ["r1\trelation one"], final_newline=False, crlf=crlf)
    rows = {"train": ["e1\tr1\te2", "e2\t_r_2\te3"], "dev": ["e1\t_r_2\te3"], "test": ["e3\tr1\te1"]}
    for split in splits:
        write(folder / f"{split}.tsv", rows[split], crlf=crlf)
    return folder


def test_umls_names_long_descriptions_and_all_splits(tmp_path, write):
    make_kg(
        tmp_path,
        "umls",
        write,
        entity_text=["e1\tentity one", "e2\tentity two"],
        long_text=["e1\tA long paragraph.", "e3\tThird paragraph."],
    )
    dataset = load_dataset("umls", tmp_path)
    assert (dataset.name, dataset.kind) == ("umls", "kg")
    assert dataset.entities == [
        EntityRecord("e1", "entity one", "A long paragraph."),
        EntityRecord("e2", "entity two", None),
        EntityRecord("e3", "e3", "Third paragraph."),  # no entity2text line: name = id
    ]
    assert dataset.relations == [RelationRecord("r1", "relation one"), RelationRecord("_r_2", "_r_2")]
    assert {split: len(rows) for split, rows in dataset.triples.items()} == {"train": 2, "dev": 1, "test": 1}
    assert dataset.triples["train"][1] == TripleRecord("e2", "_r_2", "e3")
    assert len(dataset.all_triples()) == 4


def test_wn18rr_splits_lemma_and_gloss_and_skips_held_out_test(tmp_path, write):
    make_kg(
        tmp_path,
        "wn18rr",
        write,
        splits=("train", "dev"),
        crlf=True,
        entity_text=[
            'e1\tquilt, stitch or sew together; "quilt the skirt"',
            "e2\tbit, a unit, of information",
            "e3\tnolemma",
        ],
    )
    dataset = load_dataset("wn18rr", tmp_path)
    assert dataset.entities == [
        EntityRecord("e1", "quilt", 'stitch or sew together; "quilt the skirt"'),
        EntityRecord("e2", "bit", "a unit, of information"),
        EntityRecord("e3", "nolemma", None),
    ]
    assert set(dataset.triples) == {"train", "dev"}


def test_fb15k237_names_only(tmp_path, write):
    make_kg(
        tmp_path,
        "fb15k237",
        write,
        splits=("train",),
        entity_text=["e1\tSchleswig-Holstein", "e2\tJeremy Irons", "e3\tGary, Rydstrom", "unused\tExtra"],
    )
    dataset = load_dataset("fb15k237", tmp_path)
    assert [(e.name, e.description) for e in dataset.entities] == [
        ("Schleswig-Holstein", None),
        ("Jeremy Irons", None),
        ("Gary, Rydstrom", None),
    ]
    assert list(dataset.triples) == ["train"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("stool, solid excretory product", ("stool", "solid excretory product")),
        ("word", ("word", None)),
        ("", ("", None)),
    ],
)
def test_lemma_and_gloss(text, expected):
    assert lemma_and_gloss(text) == expected


def test_missing_train_split_is_an_error_naming_the_file(tmp_path, write):
    folder = make_kg(tmp_path, "umls", write, entity_text=[], long_text=[], splits=("dev",))
    with pytest.raises(DatasetError, match="KGFORGE_DATA_DIR") as info:
        load_dataset("umls", tmp_path)
    assert str(folder / "train.tsv") in str(info.value)


def test_triple_with_unknown_entity_is_rejected(tmp_path, write):
    folder = make_kg(tmp_path, "fb15k237", write, entity_text=[], splits=("train",))
    write(folder / "dev.tsv", ["e1\tr1\tghost"])
    with pytest.raises(DatasetError, match=r"dev\.tsv.*entity missing"):
        load_dataset("fb15k237", tmp_path)


def test_triple_with_unknown_relation_is_rejected(tmp_path, write):
    folder = make_kg(tmp_path, "fb15k237", write, entity_text=[], splits=())
    write(folder / "train.tsv", ["e1\tr9\te2"])
    with pytest.raises(DatasetError, match="relation missing"):
        load_dataset("fb15k237", tmp_path)


def test_malformed_triple_line_is_rejected(tmp_path, write):
    folder = make_kg(tmp_path, "fb15k237", write, entity_text=[], splits=())
    write(folder / "train.tsv", ["e1\tr1"])
    with pytest.raises(DatasetError, match=r"train\.tsv: row 1"):
        load_dataset("fb15k237", tmp_path)
