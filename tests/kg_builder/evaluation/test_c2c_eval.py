"""C2C evaluation: metrics on hand-computed cases, the item hold-out, truth pairs, and a real run on Office."""

from __future__ import annotations

import pytest

from kg_builder.datasets.records import Dataset, DocumentRecord, InteractionRecord, ItemLinkRecord, ItemRecord
from kg_builder.errors import InvalidInputError
from kg_builder.evaluation.c2c import (
    evaluate_c2c,
    held_out_items,
    is_held_out,
    precision_at_k,
    recall_at_k,
    reciprocal_rank,
    score_rankings,
    site_documents,
    split_links,
)
from kg_builder.products.c2c import category_catalogue


def test_metrics_on_a_hand_computed_case():
    ranked = ["b", "x", "c", "y", "z", "d", "q", "r", "s", "t", "e"]
    truth = {"b", "c", "d", "e"}
    assert precision_at_k(ranked, truth, 5) == pytest.approx(2 / 5)
    assert recall_at_k(ranked, truth, 10) == pytest.approx(3 / 4)  # e is 11th
    assert reciprocal_rank(ranked, truth) == 1.0
    assert reciprocal_rank(["x", "y", "c"], truth) == pytest.approx(1 / 3)
    assert reciprocal_rank(["x"], truth) == 0.0

    metrics = score_rankings("m", {"s1": ranked, "s2": ["x", "y", "c"]}, {"s1": truth, "s2": {"c"}, "s3": set()})
    assert metrics.sources == 2  # s3 has no truth: not counted
    assert metrics.p_at_5 == pytest.approx((2 / 5 + 1 / 5) / 2)
    assert metrics.r_at_10 == pytest.approx((3 / 4 + 1) / 2)
    assert metrics.mrr == pytest.approx((1 + 1 / 3) / 2)
    # A source without a ranking counts as all zeros.
    assert score_rankings("m", {}, {"s1": truth}).mrr == 0.0


def test_holdout_is_a_stable_share_that_depends_on_the_seed():
    ids = [str(i) for i in range(4000)]
    held = held_out_items(ids, share=0.3, seed=0)
    assert 0.27 < len(held) / len(ids) < 0.33
    assert held == held_out_items(reversed(ids), share=0.3, seed=0)  # not order-dependent
    assert held != held_out_items(ids, share=0.3, seed=1)
    assert all(is_held_out(i, share=0.3, seed=0) for i in held)
    with pytest.raises(InvalidInputError) as e:
        held_out_items(ids, share=1.5)
    assert e.value.field == "holdout"


def shop() -> Dataset:
    """Categories A (printers), B (toner), C (paper), D (pens), E (staplers); six items each.

    Complement links: every A item -> a B item and a C item; every D item -> an E item.
    Users buy A with B, A with C, D with E: co-purchase must recover exactly the linked pairs.
    """
    words = {"A": "laser printer", "B": "toner cartridge", "C": "copy paper", "D": "gel pens", "E": "desk stapler"}
    items, links, interactions = [], [], []
    for c, text in words.items():
        for n in range(6):
            items.append(ItemRecord(id=f"{c}{n}", title=f"Acme {text} model {c}{n}", category_ids=(c,)))
    for n in range(6):
        links += [ItemLinkRecord(f"A{n}", "complement", f"B{n}"), ItemLinkRecord(f"A{n}", "complement", f"C{n}"),
                  ItemLinkRecord(f"D{n}", "complement", f"E{n}"), ItemLinkRecord(f"A{n}", "substitute", f"D{n}")]
        for user, basket in ((f"u{n}", [f"A{n}", f"B{n}"]), (f"v{n}", [f"A{n}", f"C{n}"]),
                             (f"w{n}", [f"D{n}", f"E{n}"]), (f"x{n}", [f"A{n}", f"B{(n + 1) % 6}", f"C{n}"])):
            interactions += [InteractionRecord(user=user, item=i, split="train", timestamp=t)
                             for t, i in enumerate(basket)]
    interactions.append(InteractionRecord(user="z", item="A0", split="test", timestamp=9))
    return Dataset(name="shop", kind="rec", items=items, interactions=interactions, item_links=links)


def test_truth_comes_from_held_out_heads_and_training_pairs_from_the_rest():
    dataset = shop()
    catalogue = category_catalogue(dataset)
    split = split_links(dataset, catalogue, share=0.5, seed=3)
    k = {c: f"shop:category:{c}" for c in "ABCDE"}
    held_heads = {link.head for link in dataset.item_links if link.head in split.held_out}
    assert held_heads  # the seed holds out some heads
    for source, targets in split.truth.items():
        assert source not in targets
        assert targets <= {k["B"], k["C"], k["E"]}  # complements only, never the substitute D
    assert split.train_pairs <= {(k["A"], k["B"]), (k["A"], k["C"]), (k["D"], k["E"])}
    # A training pair comes only from links with neither end held out.
    for link in dataset.item_links:
        if link.relation == "complement" and (link.head in split.held_out or link.tail in split.held_out):
            continue
        if link.relation == "complement":
            assert (catalogue.item_category[link.head], catalogue.item_category[link.tail]) in split.train_pairs


def test_evaluation_on_a_shop_where_copurchase_is_exactly_right():
    result = evaluate_c2c(shop(), seed=3, holdout=0.5)
    rows = {r.method: r for r in result.rows}
    copurchase = rows["co-purchase"]
    # Sources A (truth B, C) and D (truth E); co-purchase ranks exactly those first.
    assert copurchase.sources == 2
    assert copurchase.mrr == 1.0 and copurchase.r_at_10 == 1.0
    assert copurchase.p_at_5 == pytest.approx((2 / 5 + 1 / 5) / 2)
    assert rows["train-links"].reference
    assert result.skipped.keys() == {"text-similarity", "corpus", "llm"}
    out = result.as_dict()
    assert out["protocol"]["truth_sources"] == 2 and out["best"] != "train-links"


def test_evaluation_refuses_a_dataset_without_complement_links():
    dataset = shop()
    dataset.item_links = []
    with pytest.raises(InvalidInputError) as e:
        evaluate_c2c(dataset)
    assert e.value.field == "dataset"


def test_site_documents_keep_the_domains_own_corpus_part():
    docs = [DocumentRecord(id="office:1", title="a", text=""), DocumentRecord(id="scientific:1", title="b", text="")]
    assert [d.id for d in site_documents("amazon14_office", docs)] == ["office:1"]
    assert site_documents("amazon18_games", docs) == []


def test_evaluation_runs_on_real_office(data_dir):
    from kg_builder.datasets import load_dataset

    office = load_dataset("amazon14_office", data_dir)
    corpus = site_documents("amazon14_office", load_dataset("amazon18_product_text", data_dir).documents)
    result = evaluate_c2c(office, corpus=corpus, seed=0, holdout=0.3)
    rows = {r.method: r for r in result.rows}
    assert {"co-purchase", "corpus", "learned", "train-links"} <= set(rows)
    assert result.protocol["categories"] == 39
    assert result.protocol["truth_sources"] >= 25
    # Co-purchase is far above chance on Office (a random ranking's P@5 is the truth density, ~0.35).
    density = result.protocol["truth_pairs"] / result.protocol["truth_sources"] / 38
    assert rows["co-purchase"].p_at_5 > density + 0.2
    assert all(0.0 <= r.p_at_5 <= 1.0 and 0.0 <= r.mrr <= 1.0 for r in result.rows)
