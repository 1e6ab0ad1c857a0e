"""Amazon 2018 product-text corpus (MiniOneRec): Office_Products and Industrial_and_Scientific.

Each ``*.item.json`` file is ``{index: {title, description, brand, categories}}``.

Choices:

* Both files are read, Office first, each in index order. Document and item ids are
  ``"<source>:<index>"`` with source ``office`` or ``scientific`` (``"office:0"``,
  ``"scientific:12"``), because the indices restart at 0 in each file. A file that is missing makes
  the load fail (the corpus is defined as both files).
* ``description`` is a stringified Python list of paragraphs (parsed with ``ast.literal_eval``; the
  few malformed literals, e.g. unescaped apostrophes, fall back to a tolerant split). The
  paragraphs are joined and cleaned: HTML comments (including inline CSS), ``<script>``/``<style>``
  blocks and tags are removed, entities unescaped, whitespace collapsed. ``<`` that is not a tag
  (``<100mA``) is kept.
* Titles and brands are cleaned the same way; an empty brand is ``None``.
* ``categories`` is split into a path when it holds one (a list literal, ``A > B`` or ``A|B``); the
  current files have it empty everywhere, giving ``()``.
* Missing descriptions: the document's ``text`` is ``""`` (never the title repeated) and the item's
  ``description`` is ``None``; consumers index ``title`` and ``text`` together.
* Every document has a matching :class:`ItemRecord` with the same id, and ``document.item`` is
  that id. No ASIN is available in these files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kg_builder.errors import DatasetError

from .records import Dataset, DocumentRecord, ItemRecord
from .text import clean_text, join_clean, none_if_empty, parse_literal_list, read_json, split_category_path

SOURCES = {
    "office": "Office_Products.item.json",
    "scientific": "Industrial_and_Scientific.item.json",
}


def _index_key(key: str) -> tuple[int, str]:
    return (int(key), key) if key.isdigit() else (1 << 62, key)


def read_products(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """``(index, fields)`` pairs of one ``*.item.json`` file, numeric indices in order."""
    data = read_json(path)
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise DatasetError(f"{path}: expected a JSON object of {{index: {{title, description, ...}}}}")
    return sorted(data.items(), key=lambda pair: _index_key(pair[0]))


def _field(fields: dict[str, Any], key: str) -> str:
    value = fields.get(key)
    return value if isinstance(value, str) else ""


def _paragraphs(value: Any) -> list[str]:
    """Description paragraphs: a stringified list (the files' form) or, tolerated, a real JSON list."""
    if isinstance(value, list):
        return [str(part) for part in value]
    return parse_literal_list(value) if isinstance(value, str) else []


def product_records(doc_id: str, fields: dict[str, Any]) -> tuple[DocumentRecord, ItemRecord]:
    title = clean_text(_field(fields, "title"))
    text = join_clean(_paragraphs(fields.get("description")))
    brand = none_if_empty(clean_text(_field(fields, "brand")))
    categories = split_category_path(_field(fields, "categories"))
    document = DocumentRecord(
        id=doc_id, title=title, text=text, brand=brand, categories=categories, item=doc_id
    )
    item = ItemRecord(
        id=doc_id,
        title=none_if_empty(title),
        description=none_if_empty(text),
        brand=brand,
        categories=categories,
    )
    return document, item


def load_product_text(folder: Path) -> Dataset:
    dataset = Dataset(name="amazon18_product_text", kind="corpus")
    for source, filename in SOURCES.items():
        for index, fields in read_products(folder / filename):
            document, item = product_records(f"{source}:{index}", fields)
            dataset.documents.append(document)
            dataset.items.append(item)
    return dataset
