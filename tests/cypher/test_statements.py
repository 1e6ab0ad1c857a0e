import re
from pathlib import Path

import pytest

import cypher
from cypher import InvalidIdentifierError, render

REPO = Path(__file__).resolve().parents[2]
INJECTIONS = ["x`) DETACH DELETE n //", "A B", "Entity:Item", "`Entity`", "1abc", "", "Ent-ity", "a" * 201, "é"]


def test_every_statement_has_a_purpose_and_text():
    found = cypher.statements()
    assert {"upsert_nodes", "upsert_edges", "node_by_id", "export_triples", "relation_pool"} <= found.keys()
    for stmt in found.values():
        assert stmt.purpose and len(stmt.purpose) > 10, stmt.name
        assert stmt.text and not stmt.text.endswith(";")


def test_render_fills_checked_identifiers():
    text = render("upsert_edges", rel_type="IS_A", head_label="Entity", tail_label="Item")
    assert "MERGE (h)-[r:IS_A]->(t)" in text
    assert "MATCH (h:Entity) WHERE h.id = row.head" in text and "MATCH (t:Item) WHERE t.id = row.tail" in text
    assert "{{" not in text


@pytest.mark.parametrize("bad", INJECTIONS)
def test_render_rejects_unsafe_identifiers(bad):
    with pytest.raises(InvalidIdentifierError) as err:
        render("node_by_id", label=bad)
    assert "label" in str(err.value)


@pytest.mark.parametrize("hops", [0, 11, -1, True, "2"])
def test_integer_placeholders_are_bounded(hops):
    with pytest.raises(InvalidIdentifierError):
        render("neighbourhood", label="Entity", hops=hops)


def test_render_requires_exactly_the_placeholders():
    with pytest.raises(ValueError, match="missing"):
        render("upsert_nodes")
    with pytest.raises(ValueError, match="unexpected"):
        render("ping", label="Entity")
    with pytest.raises(KeyError, match="known"):
        render("no_such_statement")


def test_parser_rejects_statement_without_purpose():
    with pytest.raises(ValueError, match="purpose"):
        cypher._parse("x.cypher", "// @name a\nRETURN 1")


def test_no_cypher_outside_the_cypher_folder():
    """Cypher keywords in Python string literals outside cypher/ mean a statement escaped the folder."""
    pattern = re.compile(r"[\"'][^\"'\n]*\b(MATCH \(|MERGE \(|CREATE \(|DETACH DELETE|UNWIND \$)")
    offenders = []
    for path in REPO.glob("**/*.py"):
        rel = path.relative_to(REPO)
        if rel.parts[0] in {"tests", "venv", ".venv", "build", "cypher"} or "site-packages" in rel.parts:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if pattern.search(line):
                offenders.append(f"{rel}:{number}")
    assert offenders == []
