"""The rule-based chunker behind the corpus generator's new entities, on hand-made sentences
(UMLS-like definitions, WN18RR-like glosses, product texts)."""

from __future__ import annotations

from kg_builder.pipeline.phrases import attribute_spans, extract_phrases, noun_phrases, tokens


def texts(text: str) -> list[str]:
    return [p.text for p in noun_phrases(text)]


def by_pattern(text: str, pattern: str) -> list[str]:
    return [p.text for p in extract_phrases(text) if p.pattern == pattern]


def test_umls_like_definition_gives_its_noun_phrases_and_no_function_words():
    text = ("A virus is a small infectious agent that replicates only inside the living cells of an "
            "organism. Viruses can infect all types of life forms, from animals and plants to "
            "microorganisms, including bacteria and archaea.")
    found = texts(text)
    for expected in ("virus", "infectious agent", "living cells", "organism", "animals", "plants",
                     "microorganisms", "bacteria", "archaea"):
        assert expected in found
    # a modal makes the next word a verb; "only", "inside", "all" are never phrase material
    assert "infect" not in found and not any(w in p.split() for p in found for w in ("only", "inside", "all", "the"))
    # the vague modifier "small" is dropped from the head phrase
    assert "small infectious agent" not in found


def test_naming_patterns_are_marked():
    text = ("Viruses spread through vectors such as aphids, mites and thrips. "
            "The human immunodeficiency virus (HIV) causes AIDS. The structure of the capsid is icosahedral.")
    assert by_pattern(text, "list") == ["aphids", "mites", "thrips"]
    assert by_pattern(text, "paren") == ["HIV"]
    assert "structure of the capsid" in by_pattern(text, "of")
    # after a generic head only the complement is the name
    assert by_pattern("Kinases are a type of enzyme.", "of") == ["enzyme"]
    assert by_pattern("It affects organs, e.g. liver and kidney.", "list") == ["liver", "kidney"]


def test_wn18rr_like_glosses():
    assert texts("stool, solid excretory product evacuated from the bowels") == [
        "stool", "solid excretory product", "bowels"]
    found = texts("saxony, an area in Germany around the upper Elbe river; the original home of the Saxons")
    assert {"saxony", "area", "Germany", "upper Elbe river", "Saxons"} <= set(found)
    assert "original home of the Saxons" in by_pattern(
        "saxony, an area in Germany around the upper Elbe river; the original home of the Saxons", "of")


def test_heads_are_nouns_verbs_after_nouns_and_possessives_split():
    found = texts("Dmitri Ivanovsky's 1892 article describing a pathogen infecting tobacco plants was famous.")
    assert "Dmitri Ivanovsky" in found and "article" in found and "tobacco plants" in found
    assert not any("describing" in p or "infecting" in p or "famous" in p or "1892" in p for p in found)
    # -ed / -ing words open a phrase as modifiers, but never head one
    assert texts("An infected cell can die.") == ["infected cell"]
    assert texts("The cells were damaged.") == ["cells"]
    # adjective-like heads are trimmed; listed nouns with such endings are kept
    assert texts("The genetic material is toxic.") == ["genetic material"]
    # a pronoun subject followed by a determiner marks a verb
    assert texts("It surrounds and protects the genome.") == ["genome"]


def test_sentence_start_is_recorded_and_offsets_point_into_the_text():
    text = "Influenza is common. Doctors can treat influenza."
    phrases = noun_phrases(text)
    first = phrases[0]
    assert first.text == "Influenza" and first.sentence_start and text[first.start:first.end] == "Influenza"
    assert phrases[-1].key == first.key and not phrases[-1].sentence_start
    assert [t.text for t in tokens("e.g. DNA")] == ["e.g.", "DNA"]


def test_attribute_spans_key_value_and_quantities():
    spans = attribute_spans("Brand: Logitech | Color: Black. Wireless mouse with a 2.4 GHz receiver, 18 months battery.")
    assert [(p.attribute, p.text) for p in spans if p.pattern == "attribute"] == [("Brand", "Logitech"),
                                                                                ("Color", "Black")]
    assert [p.text for p in spans if p.pattern == "number"] == ["2.4 GHz", "18 months"]
    assert attribute_spans("no attributes here at all") == []


def test_empty_and_punctuation_only_text():
    assert noun_phrases("") == [] and noun_phrases("... ; , ()") == [] and extract_phrases("the of and") == []
