"""Answer schemas and the relation-pool check (relations outside the pool are rejected and logged)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from kg_builder.llm import (
    GeneratedTargets,
    LLMOutputError,
    RelationChoice,
    Summary,
    check_relations_in_pool,
    get_prompt,
    parse_structured,
)

POOL = ["PRODUCES", "OWNED_BY", "SPONSORS"]


def choice(*names: str) -> RelationChoice:
    return RelationChoice.model_validate({"relations": [{"relation": n, "reason": "because"} for n in names]})


def test_relations_outside_the_pool_are_rejected_and_logged(caplog):
    with caplog.at_level(logging.WARNING, logger="kg_builder.llm"):
        check = check_relations_in_pool(choice("PRODUCES", "COOLS_ROOM", "SPONSORS"), POOL, entity="Air")

    assert check.relations == ["PRODUCES", "SPONSORS"]
    assert [c.relation for c in check.rejected] == ["COOLS_ROOM"]
    (record,) = [r for r in caplog.records if "outside the pool" in r.getMessage()]
    assert "'COOLS_ROOM'" in record.getMessage() and "'Air'" in record.getMessage()


def test_pool_match_tolerates_case_and_separators_and_drops_duplicates(caplog):
    with caplog.at_level(logging.WARNING, logger="kg_builder.llm"):
        check = check_relations_in_pool(choice("owned by", "Owned_By", "PRODUCES"), POOL)
    assert check.relations == ["OWNED_BY", "PRODUCES"]
    assert check.rejected == [] and not caplog.records


def test_everything_outside_the_pool_leaves_nothing_to_use():
    check = check_relations_in_pool(choice("INVENTED"), POOL)
    assert check.accepted == [] and len(check.rejected) == 1


def test_relation_filter_end_to_end_against_the_test_double(double, make_llm, caplog):
    double.reply(
        {
            "relations": [
                {"relation": "PRODUCES", "reason": "Air is a shoe line."},
                {
                    "relation": "COOLS",
                    "reason": "Air conditioners cool rooms.",
                },  # the wrong sense, not in the pool
            ]
        }
    )
    prompt = get_prompt("relation_filter")
    messages = prompt.render(
        entity="Air", entity_type="Brand", background="Nike's basketball shoes.", candidates=POOL
    )
    answer = asyncio.run(make_llm().ainvoke(messages, schema=prompt.schema))
    with caplog.at_level(logging.WARNING, logger="kg_builder.llm"):
        check = check_relations_in_pool(answer.parsed, POOL, entity="Air")
    assert check.relations == ["PRODUCES"] and [c.relation for c in check.rejected] == ["COOLS"]
    assert any("COOLS" in r.getMessage() for r in caplog.records)
    assert "- PRODUCES\n- OWNED_BY\n- SPONSORS" in double.requests[0].messages[1]["content"]


def test_schemas_refuse_extra_keys_but_leave_blank_names_to_the_consumer():
    with pytest.raises(LLMOutputError, match="does not match GeneratedTargets"):
        parse_structured('{"targets": [{"name": "Air", "type": "Brand", "evidence": "x", "score": 1}]}',
                         GeneratedTargets)
    # One blank name must cost that target, not the whole answer: validation lets it through (the
    # generator drops it with a note) while the schema sent to the server still asks for minLength 1.
    parsed = parse_structured('{"targets": [{"name": "  ", "type": "Brand", "evidence": "x"}, '
                              '{"name": "Nike", "type": "Brand", "evidence": "y"}]}', GeneratedTargets)
    assert [t.name for t in parsed.targets] == ["", "Nike"]
    assert GeneratedTargets.model_json_schema()["$defs"]["GeneratedTarget"]["properties"]["name"]["minLength"] == 1
    blank = parse_structured('{"relations": [{"relation": " ", "reason": "r"}]}', RelationChoice)
    assert check_relations_in_pool(blank, POOL).rejected == blank.relations  # rejected, never used
    with pytest.raises(LLMOutputError, match="does not match Summary"):
        parse_structured('{"text": "t", "used_document_ids": [], "confidence": 1}', Summary)
    assert GeneratedTargets.model_json_schema()["$defs"]["GeneratedTarget"]["additionalProperties"] is False


def test_parse_structured_accepts_a_fenced_json_answer():
    parsed = parse_structured(
        '```json\n{"text": "Air makes shoes.", "used_document_ids": ["d1"]}\n```', Summary
    )
    assert parsed == Summary(text="Air makes shoes.", used_document_ids=["d1"])
