"""Shared reading and text helpers for the dataset loaders.

Every loader reads its files through these functions, so the real-data quirks are handled once:

* line endings: files are opened with ``newline=""`` and split on ``"\\n"``; a trailing ``"\\r"`` is
  removed from every line (CRLF files), a missing final newline is fine, blank lines are skipped.
  Lone ``"\\r"`` characters inside a field are kept (universal-newline mode would split on them).
* a UTF-8 byte-order mark at the start of a file is dropped (``utf-8-sig``).
* RecBole atomic headers (``user_id:token``) lose their ``:type`` suffix.
* a missing file raises :class:`~kg_builder.errors.DatasetError` naming the path and saying how to
  point kgforge at the data folder.
* product text: HTML comments, ``<script>``/``<style>`` blocks, bare CSS rules (``.caption {...}``,
  left behind where a ``<style>`` tag was stripped upstream) and tags are removed, entities are
  unescaped and whitespace is collapsed. Tags are matched conservatively (``<`` directly followed by a
  letter or ``/`` and a letter) because product descriptions also use ``<`` as "less than"
  (``<100mA``, ``<= 0.01%``), which must survive.
* stringified Python lists (``"[1, 2]"``, ``"['a', 'b']"``) are parsed with :func:`ast.literal_eval`
  (never ``eval``); malformed ones (unescaped quotes inside an element, which the Amazon 2018 dumps
  contain) fall back to a tolerant split.
"""

from __future__ import annotations

import ast
import csv
import html
import io
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kg_builder.errors import DatasetError

DATA_DIR_HINT = (
    "set KGFORGE_DATA_DIR or pass --data-dir to point at the data folder "
    "(the one that holds kg/, rec/, corpus/ and kgrec/)"
)

RECBOLE_TYPES = frozenset({"token", "token_seq", "float", "float_seq"})


# --------------------------------------------------------------------------------------------
# Files


def missing_path_error(path: Path, what: str = "dataset file") -> DatasetError:
    """The error every loader raises for a missing file or folder."""
    return DatasetError(f"{what} not found: {path}; {DATA_DIR_HINT}")


def read_text(path: Path) -> str:
    """The whole file as text, line endings untouched (``newline=""``)."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            return handle.read()
    except FileNotFoundError:
        raise missing_path_error(path) from None
    except IsADirectoryError:
        raise DatasetError(f"expected a file, found a folder: {path}") from None
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path} is not valid UTF-8 ({exc.reason} at byte {exc.start})") from None


def read_lines(path: Path) -> list[str]:
    """Non-blank lines without their terminators; LF and CRLF both work, a final newline is optional."""
    lines = read_text(path).split("\n")
    return [stripped for line in lines if (stripped := line.removesuffix("\r")).strip()]


def read_json(path: Path) -> Any:
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: invalid JSON at line {exc.lineno}: {exc.msg}") from None


@dataclass(frozen=True, slots=True)
class Table:
    """Rows of a delimited file. ``columns`` is the header (suffixes stripped) or given names."""

    path: Path
    columns: tuple[str, ...]
    rows: list[list[str]]

    def index(self, *names: str) -> tuple[int, ...]:
        """Positions of the named columns; a missing column is a :class:`DatasetError`."""
        missing = [name for name in names if name not in self.columns]
        if missing:
            raise DatasetError(
                f"{self.path}: missing column(s) {', '.join(missing)}; found {', '.join(self.columns)}"
            )
        return tuple(self.columns.index(name) for name in names)


def strip_type_suffix(column: str) -> str:
    """``"item_id_list:token_seq"`` -> ``"item_id_list"`` (RecBole atomic-file header)."""
    name, sep, kind = column.strip().rpartition(":")
    return name if sep and kind in RECBOLE_TYPES else column.strip()


def read_table(
    path: Path,
    *,
    columns: Sequence[str] | None = None,
    sep: str = "\t",
    last_takes_rest: bool = False,
    min_columns: int | None = None,
) -> Table:
    """Read a delimited file (tab by default, whatever its extension says).

    ``columns`` names the fields of a headerless file; without it the first line is the header.
    Every row must have as many fields as there are columns, except that with ``last_takes_rest``
    separators beyond the last column stay inside the last field (free text), and with
    ``min_columns`` rows may stop after that many fields (missing ones read as ``""``).
    """
    lines = read_lines(path)
    if columns is None:
        if not lines:
            raise DatasetError(f"{path}: empty file, expected a header line")
        header = tuple(strip_type_suffix(name) for name in lines[0].split(sep))
        body, first_line = lines[1:], 2
    else:
        header, body, first_line = tuple(columns), lines, 1
    width = len(header)
    least = width if min_columns is None else min_columns
    maxsplit = width - 1 if last_takes_rest else -1
    rows = [line.split(sep, maxsplit) for line in body]
    for number, row in enumerate(rows, start=first_line):
        if not least <= len(row) <= width:
            raise DatasetError(
                f"{path}: row {number} has {len(row)} field(s), expected {width} "
                f"({sep.join(header)!r}): {sep.join(row)[:120]!r}"
            )
        if len(row) < width:
            row.extend([""] * (width - len(row)))
    return Table(path, header, rows)


def read_csv_table(path: Path) -> Table:
    """A comma-separated file with a header, read with :mod:`csv` (quoted fields with commas, CRLF)."""
    text = read_text(path)
    try:
        records = [row for row in csv.reader(io.StringIO(text, newline="")) if row]
    except csv.Error as exc:
        raise DatasetError(f"{path}: malformed CSV: {exc}") from None
    if not records:
        raise DatasetError(f"{path}: empty file, expected a header line")
    header = tuple(name.strip() for name in records[0])
    for number, row in enumerate(records[1:], start=2):
        if len(row) != len(header):
            raise DatasetError(f"{path}: row {number} has {len(row)} field(s), expected {len(header)}")
    return Table(path, header, records[1:])


def to_int(value: str, path: Path, column: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise DatasetError(f"{path}: column {column} expects an integer, got {value!r}") from None


def to_float(value: str, path: Path, column: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise DatasetError(f"{path}: column {column} expects a number, got {value!r}") from None


# --------------------------------------------------------------------------------------------
# Text


_WHITESPACE = re.compile(r"\s+")
_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.DOTALL)
_SCRIPT_OR_STYLE = re.compile(r"<(script|style)\b[^>]*>.*?(?:</\1\s*>|\Z)", re.DOTALL | re.IGNORECASE)
_CSS_SELECTOR = (
    r"(?:[a-z][a-z0-9]*)?[.#][A-Za-z][\w-]*"
    r"|\b(?:a|b|body|div|em|h[1-6]|hr|i|img|li|ol|p|span|strong|sup|table|td|th|tr|ul)\b"
)
# A bare CSS rule left in product text after its <style> tag was dropped: ``.caption {font-size: 10px}``.
_CSS_RULE = re.compile(rf"(?:(?:{_CSS_SELECTOR})[ \t]*,?[ \t]*)+\{{[^{{}}]*:[^{{}}]*\}}")
_TAG = re.compile(r"</?[A-Za-z][\w:-]*(?:\s[^<>]*)?/?>")
_DANGLING_TAG = re.compile(r"</?[A-Za-z][\w:-]*\s*/?\Z")


def normalize_whitespace(text: str) -> str:
    """Collapse every run of whitespace (tabs, newlines, NBSP, ...) to one space; strip the ends."""
    return _WHITESPACE.sub(" ", text).strip()


def name_and_description(name: str, description: str | None, max_chars: int) -> str:
    """``"name: description"`` with the description's whitespace collapsed and cut at a word
    boundary to ``max_chars``; the name alone when there is no description. The one text form every
    MiniLM-based model reads for an entity."""
    if not description or not description.strip():
        return name
    desc = " ".join(description.split())
    if len(desc) > max_chars:
        desc = desc[:max_chars].rsplit(" ", 1)[0]
    return f"{name}: {desc}"


def strip_html(text: str) -> str:
    """Remove HTML comments, script/style blocks, bare CSS rules and tags, then unescape entities.

    ``<`` that does not start a tag (``<100mA``, ``< 5%``, ``<>``) is kept. Tags are replaced by a
    space so ``a<br>b`` does not glue words together.
    """
    text = _COMMENT.sub(" ", text)
    text = _SCRIPT_OR_STYLE.sub(" ", text)
    if "{" in text:
        text = _CSS_RULE.sub(" ", text)
    text = _TAG.sub(" ", text)
    text = _DANGLING_TAG.sub(" ", text)
    return html.unescape(text)


def clean_text(text: str | None) -> str:
    """HTML-free, unescaped, whitespace-collapsed text ("" for ``None``)."""
    if not text:
        return ""
    return normalize_whitespace(strip_html(text))


def none_if_empty(text: str | None) -> str | None:
    return text if text else None


_BROKEN_LIST_SEPARATOR = re.compile(r"""['"]\s*,\s*['"]""")
_PYTHON_ESCAPES = {"\\n": "\n", "\\t": "\t", "\\r": "\r", "\\'": "'", '\\"': '"', "\\\\": "\\"}
_PYTHON_ESCAPE = re.compile(r"\\[ntr'\"\\]")


def _split_broken_list(text: str) -> list[str]:
    """Best-effort split of a list literal that :func:`ast.literal_eval` rejected."""
    body = text.strip()
    if body.startswith("[") and body.endswith("]"):
        body = body[1:-1].strip()
    if len(body) >= 2 and body[0] in "'\"" and body[-1] in "'\"":
        body = body[1:-1]
    parts = _BROKEN_LIST_SEPARATOR.split(body)
    return [_PYTHON_ESCAPE.sub(lambda m: _PYTHON_ESCAPES[m.group()], part) for part in parts]


def parse_literal_list(text: str | None) -> list[str]:
    """Elements of a stringified Python list as strings: ``"[1, 2]"`` -> ``["1", "2"]``.

    Uses :func:`ast.literal_eval` only. Empty input gives ``[]``; a literal that is a single string
    gives a one-element list; text that is not a valid literal falls back to a tolerant split on the
    quote-comma-quote separators (keeping the text rather than dropping it).
    """
    if text is None or not text.strip():
        return []
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return _split_broken_list(text)
    if isinstance(value, (list, tuple)):
        return [str(element) for element in value]
    return [str(value)]


_PATH_SEPARATOR = re.compile(r"\s*(?:>|\|)\s*")


def split_category_path(text: str | None) -> tuple[str, ...]:
    """A category path as a tuple: a list literal, ``"A > B > C"`` or ``"A|B|C"``; else one element."""
    if text is None or not text.strip():
        return ()
    stripped = text.strip()
    parts = parse_literal_list(stripped) if stripped.startswith("[") else _PATH_SEPARATOR.split(stripped)
    return tuple(cleaned for part in parts if (cleaned := clean_text(part)))


def join_clean(parts: Sequence[str]) -> str:
    """Join text fragments with spaces and clean the result (HTML spanning fragments is removed too)."""
    return clean_text(" ".join(parts))
