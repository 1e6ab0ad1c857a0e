"""Extractive summary: token budget, MMR (relevant, not redundant), provenance."""

from __future__ import annotations

import pytest

from kg_builder.errors import InvalidInputError
from kg_builder.retrieval import ExtractiveSummariser, Hit, split_sentences


def hit(doc_id: str, text: str) -> Hit:
    return Hit(doc_id=doc_id, score=1.0, text=text)


HITS = [
    hit("d:virus", "A virus is a small infectious agent that replicates inside living cells. "
                   "The museum opens at nine on weekdays."),
    hit("d:copy", "A virus is a tiny infectious agent that replicates inside living cells."),
    hit("d:host", "Viruses infect animals, plants and bacteria, and spread between hosts."),
    hit("d:other", "The stock market closed higher on Friday after a quiet week of trading."),
]


@pytest.fixture
def summariser(encoder) -> ExtractiveSummariser:
    return ExtractiveSummariser(encoder)


def test_split_sentences_handles_initials_abbreviations_and_glued_sentences():
    text = ("George R. R. Martin writes novels, e.g. fantasy. "
            "Viruses are small.Since 1892 they are known! Why?")
    assert split_sentences(text) == ["George R. R. Martin writes novels, e.g. fantasy.", "Viruses are small.",
                                     "Since 1892 they are known!", "Why?"]


@pytest.mark.parametrize("counter", ["tokenizer", "whitespace"])
@pytest.mark.parametrize("budget", [15, 40, 200])
def test_summary_respects_the_token_budget(summariser, encoder, counter, budget):
    summariser.token_counter = counter
    summary = summariser.run("virus", HITS, token_budget=budget)
    if counter == "whitespace":
        counted = len(summary.text.split())
    else:
        counted = len(encoder.tokenizer.tokenize(summary.text))
    assert 0 < counted == summary.token_count <= budget
    assert summary.token_counter == counter


def test_near_duplicates_are_chosen_once_and_irrelevant_sentences_last(summariser):
    summary = summariser.run("virus", HITS, token_budget=60)
    texts = [s.text for s in summary.sentences]
    assert sum("infectious agent that replicates" in t for t in texts) == 1
    assert any(t.startswith("Viruses infect") for t in texts)
    first = min(summary.sentences, key=lambda s: s.picked)
    assert "infectious agent" in first.text


def test_document_ids_are_those_whose_sentences_were_used(summariser):
    summary = summariser.run("virus", HITS, token_budget=40)
    used = {s.doc_id for s in summary.sentences}
    assert set(summary.document_ids) == used
    assert "d:other" not in summary.document_ids
    assert summary.document_ids == [d for d in ("d:virus", "d:copy", "d:host", "d:other") if d in used]


def test_a_budget_smaller_than_every_sentence_gives_an_empty_summary(summariser):
    summary = summariser.run("virus", HITS, token_budget=3)
    assert summary.text == "" and summary.document_ids == [] and summary.token_count == 0


def test_bad_budget_is_rejected(summariser):
    with pytest.raises(InvalidInputError, match="token_budget"):
        summariser.run("virus", HITS, token_budget=0)
