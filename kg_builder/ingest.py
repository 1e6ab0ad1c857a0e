"""Import a dataset (typed records from :mod:`kg_builder.datasets`) into the graph.

Keys are deterministic, so importing twice changes no count and a killed import can simply be run
again (every batch is one transaction; ``MERGE`` skips what an earlier run wrote):

=============================  ==========================================================  =========
node                           id                                                          label
=============================  ==========================================================  =========
KG entity                      ``{dataset}:{native id}``                                   Entity
item with an Amazon ASIN       ``amazon:{ASIN}`` (one product, one node across datasets)   Item
other item                     ``{dataset}:item:{native id}``                              Item
named category (path)          ``category:{key_part(level 1)}/{key_part(level 2)}/...``            Category
category known only by an id   ``{dataset}:category:{id}``                                 Category
named brand                    ``brand:{key_part(name)}`` (shared across datasets)           Brand
brand known only by an id      ``{dataset}:brand:{id}``                                    Brand
user                           ``{dataset}:user:{native id}``                              User
relation (pool)                the relationship type, e.g. ``ISA``                          Relation
=============================  ==========================================================  =========

Edges: KG triples use the relation's type (``relation_type_for``) with ``split`` kept as a
property; items link to their most specific category (``IN_CATEGORY``), categories to their parent
(``SUBCATEGORY_OF``), items to brands (``HAS_BRAND``); interactions are ``(User)-[:INTERACTED]->(Item)``
with ``split``, ``position``/``timestamp``/``rating`` where the dataset has them (a user who
interacts with one item twice keeps one edge: the graph records *that* they interacted, the
recommender reads sequences from the dataset files); dataset item links (Office complements and
substitutes) are KG relations between items; Last.FM items are ``SAME_AS`` their KG entity.
Every node and edge gets ``sources = ["dataset:{name}"]`` and imported triples confidence 1.0.
KG entities also get ``domain`` (the dataset's name; jobs read one domain through its index) and,
when :func:`import_dataset` is given the settings, a row each in the domain's persistent entity
embedding index (:func:`index_entities`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from kg_builder.datasets.records import Dataset, ItemRecord
from kg_builder.settings import Settings
from kg_builder.graphdb import GraphStore, NodeWrite, TripleWrite
from kg_builder.graphdb import schema
from kg_builder.graphdb.schema import BRAND, CATEGORY, ENTITY, ITEM, USER

if TYPE_CHECKING:  # pragma: no cover
    from kg_builder.models.encoder import TextEncoder


class ImportProgress(Protocol):
    """Receives progress: one ``phase`` call per step with its total, ``advance`` per batch."""

    def phase(self, name: str, total: int) -> None: ...

    def advance(self, n: int) -> None: ...


class _NoProgress:
    def phase(self, name: str, total: int) -> None:
        pass

    def advance(self, n: int) -> None:
        pass


@dataclass
class ImportReport:
    """What an import wrote (rows sent; MERGE makes a repeated row a no-op) and how long it took."""

    dataset: str
    nodes: dict[str, int] = field(default_factory=dict)
    edges: dict[str, int] = field(default_factory=dict)
    skipped: int = 0  # interactions / item links whose item the dataset does not describe
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {"dataset": self.dataset, "nodes": self.nodes, "edges": self.edges, "skipped": self.skipped,
                "seconds": round(self.seconds, 2)}


# The dataset's item-link names (Office) -> the relation names the graph and the product pool use.
ITEM_LINK_RELATIONS = {"complement": "complementary to", "substitute": "substitute for"}


def _domain(dataset: Dataset) -> dict[str, str]:
    """The ``domain`` property of a shared (named) brand or category: the recommendation set that
    imported it last; the product corpus is not a domain and leaves it alone."""
    return {} if dataset.kind == "corpus" else {"domain": dataset.name}


def _category_paths(dataset: Dataset, item: ItemRecord) -> list[tuple[str, ...]]:
    """The item's category paths: one path, or one single-level path per label (MovieLens genres)."""
    if not item.categories:
        return []
    if dataset.category_paths:
        return [item.categories]
    return [(label,) for label in item.categories]


class DatasetKeys:
    """Deterministic graph ids for one dataset's native ids (the key table of the module docstring;
    every module that needs a node's key from a dataset record uses this, never a copy)."""

    def __init__(self, dataset: str):
        self.dataset = dataset

    def entity(self, native: str) -> str:
        return f"{self.dataset}:{native}"

    def item(self, item: ItemRecord) -> str:
        return f"amazon:{item.asin}" if item.asin else f"{self.dataset}:item:{item.id}"

    def user(self, native: str) -> str:
        return f"{self.dataset}:user:{native}"

    def category_path(self, path: tuple[str, ...]) -> list[str]:
        ids, prefix = [], "category:"
        for depth in range(1, len(path) + 1):
            ids.append(prefix + "/".join(schema.key_part(p) or "-" for p in path[:depth]))
        return ids

    def category_id(self, native: str) -> str:
        return f"{self.dataset}:category:{native}"

    def brand(self, name: str) -> str:
        return f"brand:{schema.key_part(name)}"

    def brand_id(self, native: str) -> str:
        return f"{self.dataset}:brand:{native}"


class DatasetImporter:
    """Writes one :class:`Dataset` into a :class:`GraphStore`; see the module docstring for the model."""

    def __init__(self, store: GraphStore, progress: ImportProgress | None = None):
        self.store = store
        self.progress = progress or _NoProgress()

    def run(self, dataset: Dataset) -> ImportReport:
        started = time.perf_counter()
        report = ImportReport(dataset=dataset.name)
        keys = DatasetKeys(dataset.name)
        source = (f"dataset:{dataset.name}",)
        self.store.setup_schema()
        item_keys = {item.id: keys.item(item) for item in dataset.items}
        product_view = None
        if dataset.kind == "rec":
            from kg_builder.products.domain import is_product_domain, product_kg

            product_view = product_kg(dataset) if is_product_domain(dataset.name) else None

        self._nodes(report, "entities", ENTITY, self._entity_nodes(dataset, keys, source))
        self._nodes(report, "items", ITEM, self._item_nodes(dataset, item_keys, source))
        self._nodes(report, "categories", CATEGORY, self._category_nodes(dataset, keys, source))
        self._nodes(report, "brands", BRAND, self._brand_nodes(dataset, keys, source))
        self._nodes(report, "users", USER, self._user_nodes(dataset, keys, source))

        relations = [(r.id, r.text) for r in dataset.relations]
        if product_view is not None:
            relations += [(r.id, r.text) for r in product_view.relations]
        else:
            from kg_builder.products.domain import PRODUCT_RELATIONS

            links = sorted({ITEM_LINK_RELATIONS.get(link.relation, link.relation) for link in dataset.item_links})
            relations += [(name, PRODUCT_RELATIONS[name][2] if name in PRODUCT_RELATIONS else None) for name in links]
        if relations:
            self.store.register_relations(relations, source=source[0])
            report.nodes["Relation"] = len(relations)

        self._edges(report, "triples", list(self._kg_triples(dataset, keys, source)))
        self._edges(report, "catalogue edges", list(self._catalogue_edges(dataset, keys, item_keys, source)))
        self._edges(report, "interactions", list(self._interactions(dataset, keys, item_keys, source)))
        if product_view is not None:
            self._product_view(report, dataset, product_view, source)
        report.skipped = sum(i.item not in item_keys for i in dataset.interactions) + sum(
            link.head not in item_keys or link.tail not in item_keys for link in dataset.item_links)
        report.seconds = time.perf_counter() - started
        return report

    # --- plumbing ------------------------------------------------------------------------------
    def _nodes(self, report: ImportReport, phase: str, label: str, nodes: Iterable[NodeWrite]) -> None:
        rows = list(nodes)
        if not rows:
            return
        self.progress.phase(phase, len(rows))
        report.nodes[label] = report.nodes.get(label, 0) + self.store.upsert_nodes(rows, progress=self.progress.advance)

    def _edges(self, report: ImportReport, phase: str, triples: list[TripleWrite]) -> None:
        if not triples:
            return
        self.progress.phase(phase, len(triples))
        self.store.upsert_triples(triples, progress=self.progress.advance)
        for triple in triples:
            rel_type = triple.rel_type or schema.relation_type_for(triple.relation)
            report.edges[rel_type] = report.edges.get(rel_type, 0) + 1

    def _product_view(self, report: ImportReport, dataset: Dataset, view: Dataset, source: tuple[str, ...]) -> None:
        """A product domain's extras (kg_builder/products/domain.py): names for the brands and
        categories the dataset knows only by id (with ``name_source``), and the derived relations
        (``used with``, ``sells in``) with their split."""
        from kg_builder.products.domain import DERIVED_RELATIONS, derived_names

        named = derived_names(dataset)
        for label in (CATEGORY, BRAND):  # names of nodes already counted: not counted again
            rows = [NodeWrite(label=label, id=d.key, name=d.name, props={"name_source": d.source}, sources=source)
                    for d in named if schema.label_for_key(d.key) == label]
            if rows:
                self.progress.phase(f"{label.lower()} names", len(rows))
                self.store.upsert_nodes(rows, progress=self.progress.advance)
        key = lambda native: schema.graph_key(dataset.name, native)  # noqa: E731
        self._edges(report, "derived relations", [
            TripleWrite(head=key(t.head), relation=t.relation, tail=key(t.tail),
                        head_label=schema.label_for_key(key(t.head)), tail_label=schema.label_for_key(key(t.tail)),
                        sources=(*source, "derived:product-graph"), props={"split": split})
            for split, triples in view.triples.items() for t in triples if t.relation in DERIVED_RELATIONS])

    # --- nodes ---------------------------------------------------------------------------------
    @staticmethod
    def _entity_nodes(dataset: Dataset, keys: DatasetKeys, source: tuple[str, ...]) -> Iterator[NodeWrite]:
        for entity in dataset.entities:
            yield NodeWrite(label=ENTITY, id=keys.entity(entity.id), name=entity.name or entity.id,
                            description=entity.description, props={"domain": dataset.name, "native_id": entity.id},
                            sources=source)

    @staticmethod
    def _item_nodes(dataset: Dataset, item_keys: dict[str, str], source: tuple[str, ...]) -> Iterator[NodeWrite]:
        for item in dataset.items:
            yield NodeWrite(label=ITEM, id=item_keys[item.id], name=item.title or None, description=item.description,
                            props={"domain": dataset.name, "native_id": item.id, "asin": item.asin}, sources=source)

    @staticmethod
    def _category_nodes(dataset: Dataset, keys: DatasetKeys, source: tuple[str, ...]) -> Iterator[NodeWrite]:
        seen: set[str] = set()
        for item in dataset.items:
            for path in _category_paths(dataset, item):
                for depth, cid in enumerate(keys.category_path(path)):
                    if cid not in seen:
                        seen.add(cid)
                        yield NodeWrite(label=CATEGORY, id=cid, name=path[depth],
                                        props={"depth": depth, "path": list(path[: depth + 1]), **_domain(dataset)},
                                        sources=source)
            for native in item.category_ids:
                cid = keys.category_id(native)
                if cid not in seen:
                    seen.add(cid)
                    yield NodeWrite(label=CATEGORY, id=cid, props={"domain": dataset.name, "native_id": native},
                                    sources=source)

    @staticmethod
    def _brand_nodes(dataset: Dataset, keys: DatasetKeys, source: tuple[str, ...]) -> Iterator[NodeWrite]:
        seen: set[str] = set()
        for item in dataset.items:
            if item.brand and schema.slug(item.brand) and keys.brand(item.brand) not in seen:
                seen.add(keys.brand(item.brand))
                yield NodeWrite(label=BRAND, id=keys.brand(item.brand), name=item.brand, props=_domain(dataset),
                                sources=source)
            if item.brand_id and keys.brand_id(item.brand_id) not in seen:
                seen.add(keys.brand_id(item.brand_id))
                yield NodeWrite(label=BRAND, id=keys.brand_id(item.brand_id),
                                props={"domain": dataset.name, "native_id": item.brand_id}, sources=source)

    @staticmethod
    def _user_nodes(dataset: Dataset, keys: DatasetKeys, source: tuple[str, ...]) -> Iterator[NodeWrite]:
        for user in sorted({i.user for i in dataset.interactions}):
            yield NodeWrite(label=USER, id=keys.user(user), props={"domain": dataset.name, "native_id": user},
                            sources=source)

    # --- edges ---------------------------------------------------------------------------------
    @staticmethod
    def _kg_triples(dataset: Dataset, keys: DatasetKeys, source: tuple[str, ...]) -> Iterator[TripleWrite]:
        for split, triples in dataset.triples.items():
            for t in triples:
                yield TripleWrite(head=keys.entity(t.head), relation=t.relation, tail=keys.entity(t.tail),
                                  sources=source, props={"split": split})

    @staticmethod
    def _catalogue_edges(dataset: Dataset, keys: DatasetKeys, item_keys: dict[str, str],
                         source: tuple[str, ...]) -> Iterator[TripleWrite]:
        seen_parent: set[str] = set()
        for item in dataset.items:
            iid = item_keys[item.id]
            for labels in _category_paths(dataset, item):
                path = keys.category_path(labels)
                for child, parent in zip(path[1:], path[:-1]):
                    if child not in seen_parent:
                        seen_parent.add(child)
                        yield TripleWrite(head=child, relation="subcategory of", tail=parent, head_label=CATEGORY,
                                          tail_label=CATEGORY, rel_type=schema.SUBCATEGORY_OF, sources=source)
                yield TripleWrite(head=iid, relation="in category", tail=path[-1], head_label=ITEM,
                                  tail_label=CATEGORY, rel_type=schema.IN_CATEGORY, sources=source)
            for native in item.category_ids:
                yield TripleWrite(head=iid, relation="in category", tail=keys.category_id(native), head_label=ITEM,
                                  tail_label=CATEGORY, rel_type=schema.IN_CATEGORY, sources=source)
            if item.brand and schema.slug(item.brand):
                yield TripleWrite(head=iid, relation="has brand", tail=keys.brand(item.brand), head_label=ITEM,
                                  tail_label=BRAND, rel_type=schema.HAS_BRAND, sources=source)
            if item.brand_id:
                yield TripleWrite(head=iid, relation="has brand", tail=keys.brand_id(item.brand_id), head_label=ITEM,
                                  tail_label=BRAND, rel_type=schema.HAS_BRAND, sources=source)
        for link in dataset.item_links:
            if link.head in item_keys and link.tail in item_keys:
                yield TripleWrite(head=item_keys[link.head], relation=ITEM_LINK_RELATIONS.get(link.relation, link.relation),
                                  tail=item_keys[link.tail], head_label=ITEM, tail_label=ITEM, sources=source)
        for item_native, entity_native in dataset.item_entities.items():
            if item_native in item_keys:
                yield TripleWrite(head=item_keys[item_native], relation="same as", tail=keys.entity(entity_native),
                                  head_label=ITEM, tail_label=ENTITY, rel_type=schema.SAME_AS, sources=source)

    @staticmethod
    def _interactions(dataset: Dataset, keys: DatasetKeys, item_keys: dict[str, str],
                      source: tuple[str, ...]) -> Iterator[TripleWrite]:
        for i in dataset.interactions:
            if i.item not in item_keys:
                continue
            yield TripleWrite(
                head=keys.user(i.user), relation="interacted", tail=item_keys[i.item], head_label=USER,
                tail_label=ITEM, rel_type=schema.INTERACTED, sources=source,
                props={"split": i.split, "timestamp": i.timestamp, "rating": i.rating, "position": i.position},
            )


def import_dataset(store: GraphStore, dataset: Dataset, progress: ImportProgress | None = None, *,
                   settings: Settings | None = None, encoder: TextEncoder | None = None) -> ImportReport:
    """Import ``dataset`` into ``store``; idempotent and safe to re-run after a crash.

    With ``settings``, also embed the dataset's entities into its domain's persistent entity index
    (:func:`index_entities`), so that the first job of the domain does not pay for it.
    """
    report = DatasetImporter(store, progress).run(dataset)
    if settings is not None and dataset.entities:
        started = time.perf_counter()
        index_entities(settings, dataset, encoder=encoder, progress=progress)
        report.seconds += time.perf_counter() - started
    return report


def index_entities(settings: Settings, dataset: Dataset, *, encoder: TextEncoder | None = None,
                   progress: ImportProgress | None = None) -> int:
    """Embed ``dataset``'s entities into ``KGFORGE_HOME/index/<dataset>`` (an
    :class:`~kg_builder.retrieval.entity_index.EntityIndex`) under their graph ids, with the text
    the graph gives them (``"name: description"``). Entities already indexed are skipped; the index
    is marked built. Returns the number of entities embedded.
    """
    from kg_builder.models.encoder import TextEncoder
    from kg_builder.retrieval.entity_index import EntityIndex, entity_text

    keys = DatasetKeys(dataset.name)
    index = EntityIndex.open(settings, dataset.name, encoder=encoder or TextEncoder(settings.encoder_path))
    pairs = [(keys.entity(e.id), entity_text(e.name or e.id, e.description)) for e in dataset.entities]
    todo = sum(node_id not in index for node_id, _ in pairs)
    reporter = progress or _NoProgress()
    if todo:
        reporter.phase("entity index", todo)
    return index.build_from(pairs, progress=reporter.advance if todo else None)
