"""Shared reading and text helpers (kg_builder.datasets.text)."""

from __future__ import annotations

import pytest

from kg_builder.datasets.text import (
    clean_text,
    normalize_whitespace,
    parse_literal_list,
    read_csv_table,
    read_json,
    read_lines,
    read_table,
    split_category_path,
    strip_html,
    strip_type_suffix,
)
from kg_builder.errors import DatasetError


class TestReadLines:
    def test_crlf_and_lf_give_the_same_lines(self, tmp_path, write):
        lf = write(tmp_path / "lf.txt", ["a\tb", "c\td"])
        crlf = write(tmp_path / "crlf.txt", ["a\tb", "c\td"], crlf=True)
        assert read_lines(lf) == read_lines(crlf) == ["a\tb", "c\td"]

    def test_no_final_newline_keeps_the_last_line(self, tmp_path, write):
        path = write(tmp_path / "f.txt", ["x", "y", "last"], final_newline=False)
        assert read_lines(path) == ["x", "y", "last"]

    def test_blank_lines_are_skipped_and_lone_cr_inside_a_line_is_kept(self, tmp_path):
        path = tmp_path / "f.txt"
        path.write_bytes(b"a\n\n\r\nb\rc\n")
        assert read_lines(path) == ["a", "b\rc"]

    def test_bom_is_dropped(self, tmp_path):
        path = tmp_path / "f.txt"
        path.write_bytes(b"\xef\xbb\xbfid\n")
        assert read_lines(path) == ["id"]

    def test_missing_file_names_the_path_and_the_fix(self, tmp_path):
        missing = tmp_path / "nope" / "entities.txt"
        with pytest.raises(DatasetError) as info:
            read_lines(missing)
        message = str(info.value)
        assert str(missing) in message
        assert "KGFORGE_DATA_DIR" in message and "--data-dir" in message

    def test_invalid_utf8_is_a_dataset_error(self, tmp_path):
        path = tmp_path / "f.txt"
        path.write_bytes(b"\xff\xfe\x00")
        with pytest.raises(DatasetError, match="UTF-8"):
            read_lines(path)


class TestReadTable:
    def test_recbole_header_suffixes_are_stripped(self, tmp_path, write):
        path = write(
            tmp_path / "x.inter", ["user_id:token\titem_id_list:token_seq\titem_id:token", "0\t1 2\t3"]
        )
        table = read_table(path)
        assert table.columns == ("user_id", "item_id_list", "item_id")
        assert table.rows == [["0", "1 2", "3"]]
        assert table.index("item_id", "user_id") == (2, 0)

    def test_tab_separated_csv(self, tmp_path, write):
        path = write(tmp_path / "train.csv", ["user_id\titem_id\ttime", "1\t1\t970185600"], crlf=True)
        table = read_table(path)
        assert table.rows == [["1", "1", "970185600"]]

    def test_wrong_field_count_names_file_and_row(self, tmp_path, write):
        path = write(tmp_path / "t.tsv", ["a\tr\tb", "a\tr"])
        with pytest.raises(DatasetError, match=r"t\.tsv: row 2 has 2 field"):
            read_table(path, columns=("head", "relation", "tail"))

    def test_last_takes_rest_keeps_tabs_in_free_text(self, tmp_path, write):
        path = write(tmp_path / "e.txt", ["id1\tsome\ttext"])
        assert read_table(path, columns=("id", "text"), last_takes_rest=True).rows == [["id1", "some\ttext"]]

    def test_min_columns_pads_missing_trailing_fields(self, tmp_path, write):
        path = write(tmp_path / "dev.csv", ["user_id\titem_id\ttime\tneg_items", "1\t2\t3"])
        assert read_table(path, min_columns=3).rows == [["1", "2", "3", ""]]

    def test_missing_column_is_reported(self, tmp_path, write):
        path = write(tmp_path / "x.inter", ["user_id:token\titem_id:token", "0\t1"])
        with pytest.raises(DatasetError, match="missing column"):
            read_table(path).index("item_id_list")

    def test_empty_file_with_header_expected(self, tmp_path, write):
        path = write(tmp_path / "x.inter", [])
        with pytest.raises(DatasetError, match="empty file"):
            read_table(path)


def test_read_csv_table_handles_quotes_and_crlf(tmp_path, write):
    path = write(
        tmp_path / "movies.csv",
        ["movieId,title,genres", '11,"American President, The (1995)",Comedy|Drama'],
        crlf=True,
    )
    table = read_csv_table(path)
    assert table.columns == ("movieId", "title", "genres")
    assert table.rows == [["11", "American President, The (1995)", "Comedy|Drama"]]


def test_read_json_reports_bad_json(tmp_path):
    path = tmp_path / "x.json"
    path.write_text("{", encoding="utf-8")
    with pytest.raises(DatasetError, match="invalid JSON"):
        read_json(path)


@pytest.mark.parametrize(
    ("column", "name"),
    [
        ("user_id:token", "user_id"),
        ("item_id_list:token_seq", "item_id_list"),
        ("plain", "plain"),
        ("a:b", "a:b"),
    ],
)
def test_strip_type_suffix(column, name):
    assert strip_type_suffix(column) == name


class TestHtml:
    def test_tags_are_removed_and_entities_unescaped(self):
        assert clean_text("Marks-A-Lot<sup></sup> Jumbo &amp; <b>bold</b><br />next") == (
            "Marks-A-Lot Jumbo & bold next"
        )

    def test_comments_with_css_and_scripts_and_styles_are_removed(self):
        text = "keep <!-- .h {color:#000} --> this <script>alert(1)</script> and <style>p{}</style> that"
        assert clean_text(text) == "keep this and that"

    def test_unclosed_comment_runs_to_the_end(self):
        assert clean_text("text <!-- .headerM {color:#000;} ") == "text"

    def test_bare_css_rules_are_removed(self):
        text = "anywhere. .caption { font-size: 10px; } ul.indent {list-style: inside disc;}A versatile body"
        assert clean_text(text) == "anywhere. A versatile body"

    def test_less_than_signs_that_are_not_tags_survive(self):
        text = "Current: <100mA, <= 0.01% + 2 mV, < 5% and <> zero"
        assert clean_text(text) == text

    def test_dangling_tag_at_the_end_is_removed(self):
        assert clean_text("programs. Br><br") == "programs. Br>"

    def test_escaped_markup_stays_text(self):
        assert strip_html("5 &lt;b&gt; 6") == "5 <b> 6"

    def test_clean_text_of_none_is_empty(self):
        assert clean_text(None) == ""


def test_normalize_whitespace_collapses_unicode_spaces():
    assert normalize_whitespace(" a\u00a0\tb\n\n c ") == "a b c"


class TestParseLiteralList:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("[1, 2, 3]", ["1", "2", "3"]),
            ("[]", []),
            ("", []),
            (None, []),
            ("['a', \"b's\"]", ["a", "b's"]),
            ("'single'", ["single"]),
        ],
    )
    def test_valid_literals(self, text, expected):
        assert parse_literal_list(text) == expected

    def test_unescaped_apostrophe_falls_back_to_a_tolerant_split(self):
        text = "['Scotch tape is invisible. It's the preferred tape', 'Second \\n part']"
        assert parse_literal_list(text) == [
            "Scotch tape is invisible. It's the preferred tape",
            "Second \n part",
        ]

    def test_never_evaluates_code(self):
        assert parse_literal_list("__import__('os').system('true')") == ["__import__('os').system('true')"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ()),
        ("Office Products", ("Office Products",)),
        ("Office Products > Paper", ("Office Products", "Paper")),
        ("A|B|C", ("A", "B", "C")),
        (
            "['Office Products', 'Office &amp; School Supplies']",
            ("Office Products", "Office & School Supplies"),
        ),
    ],
)
def test_split_category_path(text, expected):
    assert split_category_path(text) == expected
