"""Novelty metrics on a constructed case: new entities, novel true triples, the name-match proxy."""

from __future__ import annotations

import pytest

from kg_builder.evaluation.novelty import is_new_entity, novelty_metrics
from kg_builder.pipeline.confidence import FEATURES
from kg_builder.pipeline.pipeline import ScoredTriple
from kg_builder.pipeline.snapshot import Edge, EntityInfo, GraphSnapshot


def triple(relation: str, target_id: str | None, target_name: str, head: str = "med:virus") -> ScoredTriple:
    return ScoredTriple(head=head, head_name=head.split(":")[1], relation=relation, target_id=target_id,
                        target_name=target_name, generators=["corpus"], sources=["corpus:test"], voters=["corpus"],
                        features=[0.0] * len(FEATURES), kept=True)


@pytest.fixture
def seen() -> GraphSnapshot:
    entities = {i: EntityInfo(i, name) for i, name in [
        ("med:virus", "virus"), ("med:measles", "measles"), ("med:hepatitis", "hepatitis"),
        ("med:protein", "amino acid, peptide, or protein"), ("med:cell", "cell")]}
    return GraphSnapshot("med", entities, {"causes": "causes", "interacts_with": "interacts with"},
                         [Edge("med:virus", "causes", "med:hepatitis")])


def test_counts_new_entities_novel_truth_and_name_matches(seen):
    truth = {("med:virus", "causes", "med:measles"), ("med:virus", "interacts_with", "med:protein"),
             ("med:virus", "causes", "med:influenza")}
    kept = [
        triple("causes", "med:measles", "measles"),          # true, absent from the graph: novel true
        triple("causes", "med:hepatitis", "hepatitis"),      # already in the graph: neither
        triple("causes", "med:cell", "cell"),                # false, known target
        triple("causes", None, "Influenza"),                 # new, matches a held-out tail named via `names`
        triple("interacts_with", None, "proteins"),          # new, matches an alias of a true tail
        triple("causes", None, "protein coat"),              # new, matches nothing
        triple("causes", None, "PROTEINS"),                  # new, an alias of a true tail of another relation
    ]
    metrics = novelty_metrics(kept, truth, seen, names={"med:influenza": "influenza"})
    assert metrics["kept"] == 7
    assert metrics["new_entities"] == 4 and metrics["distinct_new_entities"] == 3
    assert metrics["new_entity_rate"] == pytest.approx(4 / 7)
    assert metrics["novel_true"] == 1 and metrics["novel_true_rate"] == pytest.approx(1 / 7)
    assert metrics["new_entity_matches"] == 2 and metrics["new_entity_precision"] == pytest.approx(0.5)
    # without the held-out name the influenza match cannot be checked, and counts as wrong
    assert novelty_metrics(kept, truth, seen)["new_entity_matches"] == 1


def test_an_id_the_seen_graph_lacks_is_a_new_entity_and_nothing_kept_gives_zeros(seen):
    assert is_new_entity(triple("causes", "kg:flu", "flu"), seen)
    assert not is_new_entity(triple("causes", "med:cell", "cell"), seen)
    empty = novelty_metrics([], {("med:virus", "causes", "med:measles")}, seen)
    assert empty["kept"] == 0 and empty["new_entity_rate"] == 0.0 and empty["novel_true_rate"] == 0.0
    assert empty["new_entity_precision"] is None
    only_known = novelty_metrics([triple("causes", "med:measles", "measles")], set(), seen)
    assert only_known["new_entities"] == 0 and only_known["new_entity_precision"] is None
