"""Every real dataset imports into the embedded database, and what lands matches its records."""

import pytest

from kg_builder.datasets import DATASETS, load_dataset
from kg_builder.ingest import import_dataset
from kg_builder.graphdb.schema import INTERACTED

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("name", [n for n in DATASETS if n not in ("umls", "wn18rr")])  # those two: test_ingest
def test_real_dataset_import(store, data_dir, name):
    dataset = load_dataset(name, data_dir)
    report = import_dataset(store, dataset)
    counts = store.counts()
    if dataset.entities:
        assert counts.nodes["Entity"] == len({e.id for e in dataset.entities})
        kg_edges = sum(n for t, n in counts.edges.items() if t not in {INTERACTED, "SAME_AS", "IN_CATEGORY",
                                                                       "HAS_BRAND", "SUBCATEGORY_OF"})
        assert kg_edges == len({(t.head, t.relation, t.tail) for t in dataset.all_triples()})
    if dataset.items:
        # items sharing an ASIN are one product node
        assert counts.nodes["Item"] == len({i.asin or i.id for i in dataset.items})
    if dataset.interactions:
        users = {i.user for i in dataset.interactions}
        assert counts.nodes["User"] == len(users)
        item_ids = {it.id for it in dataset.items}
        pairs = {(i.user, i.item) for i in dataset.interactions if i.item in item_ids}
        assert counts.edges[INTERACTED] == len(pairs)
    assert store.count_duplicate_edges() == 0
    assert report.seconds > 0
