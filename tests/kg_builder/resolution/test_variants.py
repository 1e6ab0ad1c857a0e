"""Lexical variants and the aliases a name spells out (pure functions, no database)."""

from kg_builder.resolution import name_aliases, name_variants
from kg_builder.resolution.variants import single_word_inflection


def test_variants_cover_plurals_word_order_and_function_words():
    assert "virus" in name_variants("viruses") and "viruses" in name_variants("virus")
    assert "bacterium" in name_variants("bacteria") and "fungus" in name_variants("fungi")
    assert "child" in name_variants("children")
    assert "amino acid" in name_variants("acid amino")
    assert "sign or symptom" in name_variants("symptoms or signs")  # order and plural at once
    assert "amino acid peptide protein" in name_variants("amino acid peptide or protein")
    assert "email" in name_variants("e mail")


def test_variants_are_bounded_and_exclude_the_name_itself():
    long = "international federation of association football world cup qualification"
    assert len(name_variants(long)) <= 128
    assert "virus" not in name_variants("virus")
    assert name_variants("") == set()


def test_plurals_with_a_sense_of_their_own_are_flagged():
    from kg_builder.resolution.variants import distinct_plural

    assert distinct_plural("goods", "good") and distinct_plural("the news", "new")
    assert not distinct_plural("viruses", "virus") and not distinct_plural("police works", "police work")


def test_single_word_inflections_are_told_apart_from_phrases():
    assert single_word_inflection("goods", "good") and single_word_inflection("the goods", "good")
    assert not single_word_inflection("air jordans", "air jordan")
    assert not single_word_inflection("virus", "virus")


def test_aliases_a_name_spells_out():
    assert name_aliases("Central Intelligence Agency (CIA)") == ["CIA", "Central Intelligence Agency"]
    assert name_aliases("Frankfurt (Oder)") == [] and name_aliases("virus") == []
    assert name_aliases("Hollywood Walk of Fame") == ["hollywood walk fame"]
    assert name_aliases("GBA 6-Pak Care Case - Game Boy Advance", title=True) == ["GBA 6-Pak Care Case"]
    assert name_aliases("GBA 6-Pak Care Case - Game Boy Advance") == []  # titles only for products
    assert name_aliases("Stapler (Black)", title=True) == []  # one word left is too little
