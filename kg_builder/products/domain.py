"""An Amazon recommendation set as a knowledge-graph domain: the product graph a job runs on.

The knowledge pipeline trains and runs on a *KG view* of a dataset: entities, a relation pool with
descriptions and train/dev/test triples. A KG benchmark (UMLS, WN18RR, FB15k-237) is its own view;
for an Amazon set (:func:`is_product_domain`) :func:`product_kg` builds one from the catalogue:

* **Entities** are the set's items, brands and categories, named by their graph keys
  (:func:`kg_builder.graphdb.schema.native_key`: ``amazon:B00000JBLU`` for an item with an ASIN,
  ``amazon14_office:category:5`` for Office's category 5), so that every model's id is exactly one
  node. An item's name
  is its title and its description ``"brand: ...; category: ..."``. Office's brands and categories
  have only ids: a brand is named by :func:`office_brand_name` (Office's text runs title, leaf
  category and brand together, and most titles open with the brand: the words that both open and
  close most of the brand's titles, else the words most of them close with); a category by the most characteristic words of its items'
  titles (:func:`kg_builder.products.c2c.label_categories`). Both record how (``name_source``).
* **Relations** (:data:`PRODUCT_RELATIONS`): ``has brand`` and ``in category`` (item to brand and to
  its most specific category: the brand-of and category-of relations read from the item),
  ``subcategory of``, ``complementary to`` and ``substitute for`` (Office's ``r_complement`` /
  ``r_substitute`` item links; ``complementary to`` is also the category-to-category relation a C2C
  job writes), ``used with`` (item to the category of an item it complements: derived from the
  complement links) and ``sells in`` (brand to the categories of its items).
* **Splits**: every triple goes to ``train`` / ``dev`` / ``test`` by a stable hash of the triple
  (80 / 10 / 10), so the held-out splits are the same on every machine.

Games has neither brands, categories nor item links: its view has items and no triples, so no
generator can be trained for it (a job there says so). The Amazon product corpus
(``amazon18_product_text``, HTML stripped by its loader) joins retrieval for the two sites it
covers (:data:`CORPUS_SITES`): :func:`domain_corpus`.
"""

from __future__ import annotations

import zlib
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kg_builder.datasets import Dataset, DocumentRecord, EntityRecord, RelationRecord, TripleRecord, load_dataset
from kg_builder.datasets.registry import DATASETS
from kg_builder.graphdb import schema
from kg_builder.ingest import DatasetKeys

#: relation name (as written on edges) -> (head label, tail label, description)
PRODUCT_RELATIONS: dict[str, tuple[str, str, str]] = {
    "has brand": (schema.ITEM, schema.BRAND, "the brand that makes the product (brand of the item)"),
    "in category": (schema.ITEM, schema.CATEGORY, "the product category the item is sold in (category of the item)"),
    "subcategory of": (schema.CATEGORY, schema.CATEGORY, "the broader product category this category belongs to"),
    "complementary to": (schema.ITEM, schema.ITEM, "bought together with it or used alongside it, not instead of "
                                                   "it (also between categories: complementary categories)"),
    "substitute for": (schema.ITEM, schema.ITEM, "can replace it: bought or viewed instead of it"),
    "used with": (schema.ITEM, schema.CATEGORY, "the product is used together with products of that category"),
    "sells in": (schema.BRAND, schema.CATEGORY, "the brand makes products of that category"),
}
#: relations the product view derives (the others are the dataset's own catalogue edges)
DERIVED_RELATIONS = frozenset({"used with", "sells in"})
#: product domains whose site the Amazon product corpus covers -> its document id prefix
CORPUS_SITES = {"amazon14_office": "office:", "amazon18_scientific": "scientific:"}
CORPUS_DATASET = "amazon18_product_text"
SPLIT_SHARES = (("train", 0.8), ("dev", 0.1), ("test", 0.1))
NAME_SOURCE_BRAND = "office-title-brand@v1"


def is_product_domain(domain: str) -> bool:
    """True for the registered recommendation sets with a catalogue (the Amazon sets)."""
    loader = DATASETS.get(domain)
    return loader is not None and loader.kind == "rec" and domain.startswith("amazon")


def domain_labels(domain: str) -> tuple[str, ...]:
    """The node labels a job of ``domain`` reads: Entity for a KG domain; Item, Brand, Category and
    Entity (nodes jobs created) for a product domain."""
    return (schema.ITEM, schema.BRAND, schema.CATEGORY, schema.ENTITY) if is_product_domain(domain) else (schema.ENTITY,)


def split_of(head: str, relation: str, tail: str) -> str:
    """The split of a triple: a stable hash of the triple into 80 / 10 / 10."""
    u = (zlib.crc32(f"{head}\t{relation}\t{tail}".encode()) % 10_000) / 10_000
    edge = 0.0
    for split, share in SPLIT_SHARES:
        edge += share
        if u < edge:
            return split
    return SPLIT_SHARES[-1][0]


def office_brand_name(titles: Sequence[str], max_words: int = 3) -> str | None:
    """A readable name for an Office brand id from its items' texts (title + leaf category + brand run
    together): the longest run of 1-``max_words`` words that both opens and closes at least 30 % of
    the titles ("HP", "Texas Instruments"); else the last word most titles end with. None when the
    titles agree on nothing."""
    best = None
    for n in range(1, max_words + 1):  # the longest opening run that also closes enough titles
        counts = Counter(" ".join(t.split()[:n]) for t in titles
                         if len(t.split()) > n and t.lower().endswith(" " + " ".join(t.split()[:n]).lower()))
        if counts:
            name, count = counts.most_common(1)[0]
            if count >= max(1, 0.3 * len(titles)):
                best = name
    if best:
        return best
    last = Counter(_closing_name(t) for t in titles if t.split())
    if last:
        word, count = last.most_common(1)[0]
        if count >= max(1, 0.5 * len(titles)):
            return word
    return None


# Words that close a company name but are not one ("Acme Products", "Smead Inc.").
_COMPANY_WORDS = frozenset({"inc", "co", "llc", "ltd", "corp", "corporation", "company", "products", "product",
                            "group", "supply", "supplies", "international", "industries", "technologies",
                            "mailers", "brands", "usa", "america", "manufacturing", "enterprises", "&"})


def _closing_name(title: str) -> str:
    """The last word of ``title``, with the words before it while it is a company word ("Inc.")."""
    words = title.split()
    n = 1
    while n < min(len(words), 4) and words[-n].lower().strip(".,") in _COMPANY_WORDS:
        n += 1
    return " ".join(words[-n:])


@dataclass(frozen=True)
class DerivedName:
    """A name kgforge gave a node that the dataset knows only by id, and how."""

    key: str
    name: str
    source: str


def derived_names(dataset: Dataset) -> list[DerivedName]:
    """Names for the brands and categories ``dataset`` knows only by ids (Office)."""
    keys = DatasetKeys(dataset.name)
    titles_by_brand: dict[str, list[str]] = defaultdict(list)
    for item in dataset.items:
        if item.brand_id and item.title:
            titles_by_brand[item.brand_id].append(item.title)
    names = [DerivedName(keys.brand_id(b), name, NAME_SOURCE_BRAND)
             for b, titles in sorted(titles_by_brand.items()) if (name := office_brand_name(titles))]
    if any(item.category_ids for item in dataset.items):
        from kg_builder.products.c2c import label_categories

        for key, label in sorted(label_categories(dataset).items()):
            if label.label_source != "name":
                names.append(DerivedName(key, label.label, f"{label.label_source}:{label.method or ''}"))
    return names


def product_kg(dataset: Dataset) -> Dataset:
    """The KG view of an Amazon set (module docstring): entities, relations, hashed splits."""
    keys = DatasetKeys(dataset.name)
    native = lambda key: schema.native_key(dataset.name, key) or key  # noqa: E731
    names = {d.key: d.name for d in derived_names(dataset)}
    entities: dict[str, EntityRecord] = {}
    triples: set[tuple[str, str, str]] = set()
    item_key: dict[str, str] = {}
    item_category: dict[str, list[str]] = {}
    category_names: dict[str, str] = {}

    def category_keys(item) -> list[str]:
        out = []
        if item.categories and dataset.category_paths:
            path = keys.category_path(item.categories)
            for depth, key in enumerate(path):
                category_names[key] = item.categories[depth]
                if depth:
                    triples.add((native(key), "subcategory of", native(path[depth - 1])))
            out.append(path[-1])
        out += [keys.category_id(c) for c in item.category_ids]
        return out

    for item in dataset.items:
        key = keys.item(item)
        item_key[item.id] = key
        cats = category_keys(item)
        item_category[item.id] = cats
        brand_key = keys.brand(item.brand) if item.brand and schema.slug(item.brand) else (
            keys.brand_id(item.brand_id) if item.brand_id else None)
        brand_name = item.brand or (names.get(brand_key) if brand_key else None)
        if brand_key and brand_name:
            entities.setdefault(native(brand_key), EntityRecord(native(brand_key), brand_name))
            triples.add((native(key), "has brand", native(brand_key)))
        entities[native(key)] = EntityRecord(native(key), item.title or f"item {item.id}", item.description)
        for cat in cats:
            triples.add((native(key), "in category", native(cat)))
            if brand_key and brand_name:
                triples.add((native(brand_key), "sells in", native(cat)))
    for key, name in category_names.items():
        entities.setdefault(native(key), EntityRecord(native(key), name))
    for cat in {c for cats in item_category.values() for c in cats}:
        if native(cat) not in entities and cat in names:
            entities[native(cat)] = EntityRecord(native(cat), names[cat])
    from kg_builder.ingest import ITEM_LINK_RELATIONS

    for link in dataset.item_links:
        if link.head in item_key and link.tail in item_key:
            relation = ITEM_LINK_RELATIONS.get(link.relation, link.relation)
            triples.add((native(item_key[link.head]), relation, native(item_key[link.tail])))
            if relation == "complementary to":
                for cat in item_category.get(link.tail, []):
                    triples.add((native(item_key[link.head]), "used with", native(cat)))
    triples = {t for t in triples if t[0] in entities and t[2] in entities}
    relations = [RelationRecord(name, description) for name, (_, _, description) in PRODUCT_RELATIONS.items()
                 if any(t[1] == name for t in triples)]
    splits: dict[str, list[TripleRecord]] = {split: [] for split, _ in SPLIT_SHARES}
    for h, r, t in sorted(triples):
        splits[split_of(h, r, t)].append(TripleRecord(h, r, t))
    return Dataset(name=dataset.name, kind="kg", entities=list(entities.values()), relations=relations,
                   triples=splits if triples else {})


def load_kg_view(name: str, data_dir: Path | str) -> Dataset:
    """The KG view of dataset ``name``: the dataset itself for a KG benchmark, :func:`product_kg`
    for a product domain (what every ``kgforge train`` command and ``eval generation`` read)."""
    dataset = load_dataset(name, data_dir)
    return product_kg(dataset) if is_product_domain(name) else dataset


def site_documents(domain: str, documents: Sequence[DocumentRecord]) -> list[DocumentRecord]:
    """The corpus documents of ``domain``'s site (``office:*`` for Office); none for a domain without one."""
    prefix = CORPUS_SITES.get(domain)
    return [d for d in documents if prefix and d.id.startswith(prefix)]


def site_corpus(domain: str, data_dir: Path | str) -> list[DocumentRecord]:
    """The Amazon product corpus documents of ``domain``'s site (titles, descriptions with HTML
    stripped, brand, categories), or [] when the corpus does not cover the site or is not on disk."""
    if domain not in CORPUS_SITES or not DATASETS[CORPUS_DATASET].path(data_dir).is_dir():
        return []
    return site_documents(domain, load_dataset(CORPUS_DATASET, data_dir).documents)


def domain_corpus(view: Dataset, data_dir: Path | str):
    """The retrieval corpus of a product domain: one document per item of the view (its title;
    provenance id ``<domain>:doc:<item id>``), then the site's part of the Amazon product corpus
    (:func:`site_corpus`; ids ``office:12``)."""
    from kg_builder.retrieval.corpus import Corpus, Document, entity_doc_id, product_documents

    items = [Document(id=entity_doc_id(view.name, e.id), title=e.name, text=e.description or "", source=view.name,
                      entity_id=e.id)
             for e in view.entities if schema.label_for_key(schema.graph_key(view.name, e.id)) == schema.ITEM]
    site = product_documents(Dataset(name=CORPUS_DATASET, kind="corpus", documents=site_corpus(view.name, data_dir)))
    return Corpus(items + site)


__all__ = ["CORPUS_SITES", "DERIVED_RELATIONS", "PRODUCT_RELATIONS", "DerivedName", "derived_names", "domain_corpus",
           "domain_labels", "is_product_domain", "load_kg_view", "office_brand_name", "product_kg", "site_corpus",
           "site_documents", "split_of"]
