"""Versioned prompt templates: loading, strict rendering, the registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from kg_builder.llm import (
    GeneratedTargets,
    PromptError,
    RelationChoice,
    Summary,
    available_prompts,
    format_documents,
    format_relations,
    format_triples,
    get_prompt,
)
from kg_builder.llm.prompts import load_template

RELATION_FILTER_VARS = {
    "entity": "Air",
    "entity_type": "Brand",
    "background": "Air is a line of basketball shoes by Nike, first sold in 1987.",
    "candidates": format_relations(
        {"PRODUCES": "the brand makes this product", "COOLS": "lowers the temperature of"}
    ),
}


def test_registry_lists_the_versioned_prompts_with_their_answer_schemas():
    assert {"relation_filter@v1", "entity_generation@v1", "summarise@v1"} <= set(available_prompts())
    assert get_prompt("relation_filter").schema is RelationChoice
    assert get_prompt("entity_generation").schema is GeneratedTargets
    assert get_prompt("summarise").schema is Summary


@pytest.mark.parametrize(
    "spec",
    [
        ("relation_filter", None),
        ("relation_filter", 1),
        ("relation_filter", "v1"),
        ("relation_filter@v1", None),
    ],
)
def test_get_prompt_accepts_versions_in_several_spellings(spec):
    name, version = spec
    prompt = get_prompt(name, version)
    assert prompt.id == "relation_filter@v1" and prompt.version == 1


def test_unknown_prompt_lists_valid_names():
    with pytest.raises(PromptError, match="unknown prompt 'relation_filtr'") as info:
        get_prompt("relation_filtr")
    for name in ("relation_filter@v1", "entity_generation@v1", "summarise@v1"):
        assert name in str(info.value)


def test_unknown_version_lists_valid_versions():
    with pytest.raises(PromptError, match=r"no version 9.*relation_filter@v1"):
        get_prompt("relation_filter", 9)


def test_relation_filter_renders_pool_and_disambiguating_background():
    system, user = get_prompt("relation_filter").render(**RELATION_FILTER_VARS)
    assert system["role"] == "system" and user["role"] == "user"
    assert "Source entity: Air" in user["content"]
    assert "- PRODUCES: the brand makes this product\n- COOLS: lowers the temperature of" in user["content"]
    assert "basketball shoes by Nike" in user["content"]
    assert "air conditioners" in user["content"]  # the sense the background rules out
    assert "$" not in system["content"] + user["content"]


def test_entity_generation_combines_the_three_knowledge_types_in_order():
    _, user = get_prompt("entity_generation").render(
        entity="Air",
        entity_type="Brand",
        relation="PRODUCES",
        relation_description="makes a product",
        structural=format_triples([("Air", "OWNED_BY", "Nike")]),
        descriptive="Air is a line of basketball shoes.",
        inherited=["Sportswear brands produce shoes and apparel."],
        max_targets=5,
    )
    text = user["content"]
    steps = [
        text.index(marker)
        for marker in ("Structural knowledge", "Descriptive knowledge", "Inherited knowledge", "Combine")
    ]
    assert steps == sorted(steps)
    assert "(Air) -[OWNED_BY]-> (Nike)" in text
    assert "- Sportswear brands produce shoes and apparel." in text  # lists become bullet lines
    assert "at most 5" in text


def test_summarise_renders_document_ids():
    _, user = get_prompt("summarise").render(
        entity="Air",
        entity_type="Brand",
        max_words=80,
        documents=format_documents([("d1", "Air  Jordan\nshoes."), ("d7", "Nike Air Max.")]),
    )
    assert "[d1] Air Jordan shoes.\n\n[d7] Nike Air Max." in user["content"]


def test_missing_variable_is_named():
    values = dict(RELATION_FILTER_VARS)
    del values["background"]
    with pytest.raises(PromptError, match=r"relation_filter@v1: missing variable\(s\) background"):
        get_prompt("relation_filter").render(**values)


def test_unknown_and_none_variables_are_refused():
    with pytest.raises(PromptError, match=r"unknown variable\(s\) backgroud"):
        get_prompt("relation_filter").render(**RELATION_FILTER_VARS, backgroud="typo")
    with pytest.raises(PromptError, match="None given for entity_type"):
        get_prompt("relation_filter").render(**{**RELATION_FILTER_VARS, "entity_type": None})


def test_every_shipped_template_declares_exactly_the_variables_it_uses():
    for prompt_id in available_prompts():
        prompt = get_prompt(prompt_id)
        assert prompt.variables and prompt.purpose
        # Rendering with exactly the declared variables leaves no placeholder behind.
        messages = prompt.render(**{v: f"<{v}>" for v in prompt.variables})
        text = "".join(m["content"] for m in messages)
        assert all(f"<{v}>" in text for v in prompt.variables)


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_template_whose_header_disagrees_with_its_text_is_refused(tmp_path):
    path = _write(
        tmp_path,
        "demo@v2.txt",
        "# prompt: demo\n# version: 2\n# variables: a\n=== system ===\nS $a\n=== user ===\nU $b\n",
    )
    with pytest.raises(PromptError, match=r"declares variables \['a'\] but the text uses \['a', 'b'\]"):
        load_template(path)


def test_template_whose_header_disagrees_with_its_file_name_is_refused(tmp_path):
    path = _write(
        tmp_path,
        "demo@v2.txt",
        "# prompt: demo\n# version: 1\n# variables:\n=== system ===\nS\n=== user ===\nU\n",
    )
    with pytest.raises(PromptError, match="file name says demo@v2"):
        load_template(path)
