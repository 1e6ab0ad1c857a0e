"""The paired bootstrap over heads that says whether an ablation's precision difference at an equal
budget is larger than chance (``kg_builder.evaluation.generation.precision_difference``)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from kg_builder.errors import InvalidInputError
from kg_builder.evaluation.generation import precision_difference


def run(head: str, kept: list[tuple[str, str]]):
    """A stand-in for an EntityRun: the function reads only ``entity.id`` and ``kept``."""
    triples = [SimpleNamespace(head=head, relation=r, target_id=t) for r, t in kept]
    return SimpleNamespace(entity=SimpleNamespace(id=head), kept=triples)


TRUTH = {(f"h{i}", "r", "yes") for i in range(6)}


def test_identical_heads_give_an_exact_difference_and_a_zero_width_interval():
    base = [run(f"h{i}", [("r", "yes"), ("r", "yes")]) for i in range(6)]
    other = [run(f"h{i}", [("r", "yes"), ("r", "no")]) for i in range(6)]
    d = precision_difference(base, other, TRUTH)
    assert d["difference"] == pytest.approx(0.5)
    assert d["low"] == pytest.approx(0.5) and d["high"] == pytest.approx(0.5)


def test_a_difference_carried_by_one_head_has_an_interval_that_reaches_zero():
    # base wins on h0 only; elsewhere the two keep the same thing
    base = [run("h0", [("r", "yes")])] + [run(f"h{i}", [("r", "no")]) for i in range(1, 6)]
    other = [run("h0", [("r", "no")])] + [run(f"h{i}", [("r", "no")]) for i in range(1, 6)]
    d = precision_difference(base, other, TRUTH, samples=4000, seed=1)
    assert d["difference"] == pytest.approx(1 / 6)
    assert d["low"] == pytest.approx(0.0) and d["high"] > d["difference"]
    # the order of the other's runs does not matter: heads are paired by id
    assert precision_difference(base, other[::-1], TRUTH, samples=4000, seed=1) == d


def test_a_head_missing_from_the_other_ranking_is_refused():
    with pytest.raises(InvalidInputError, match="other"):
        precision_difference([run("h0", [])], [run("h1", [])], TRUTH)
