"""Every statement in ``cypher/*.cypher`` passes Neo4j's own Cypher parser and semantic analysis for
Cypher 5 (Neo4j 5), run by ``tools/cypher-lint/lint.mjs`` through node with the npm package
``@neo4j-cypher/language-support`` (``make install-dev`` installs it with ``npm ci`` when node is
present).

Templated statements are rendered first with ``cypher.render`` and real labels, relationship types
and index names from ``kg_builder.graphdb.schema``. Any diagnostic, error or warning (a deprecation,
say), flags the statement; the failure lists each flagged statement with the messages. A flag that
cannot be fixed without breaking ArcadeDB goes in ``ACCEPTED`` with the reason. Skipped, with the
reason, when node or the package is not installed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

import cypher
from kg_builder.graphdb import schema

REPO = Path(__file__).resolve().parents[2]
LINT_DIR = REPO / "tools" / "cypher-lint"
LINT_SCRIPT = LINT_DIR / "lint.mjs"
PACKAGE = LINT_DIR / "node_modules" / "@neo4j-cypher" / "language-support" / "package.json"

# Real values for every placeholder a statement may have (a new placeholder must be added here).
SAMPLE_IDENTIFIERS: dict[str, object] = {
    "label": schema.ENTITY,
    "head_label": schema.ENTITY,
    "tail_label": schema.CATEGORY,
    "rel_type": schema.IN_CATEGORY,
    "constraint": schema.ID_CONSTRAINTS[0][0],
    "index": schema.PROPERTY_INDEXES[0][0],
    "property": schema.PROPERTY_INDEXES[0][2],
    "hops": 2,
}

# (statement name, text in the message) -> why the flag is accepted. Empty: nothing is flagged.
ACCEPTED: dict[tuple[str, str], str] = {}


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the Neo4j Cypher linter runs on node (>= 18)")
    if not PACKAGE.is_file():
        pytest.skip(f"@neo4j-cypher/language-support is not installed: run `npm ci --prefix {LINT_DIR.relative_to(REPO)}` "
                    "(make install-dev does when node is present)")
    return node


def lint(statements: list[dict[str, str]]) -> dict[str, list[dict]]:
    done = subprocess.run([_node(), str(LINT_SCRIPT)], input=json.dumps(statements), capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, f"the linter failed: {done.stderr[-3000:]}"
    return {r["name"]: r["diagnostics"] for r in json.loads(done.stdout)}


def rendered_statements() -> list[dict[str, str]]:
    out = []
    for stmt in cypher.statements().values():
        missing = stmt.placeholders - SAMPLE_IDENTIFIERS.keys()
        assert not missing, f"{stmt.file}: {stmt.name} has placeholders without a sample value: {sorted(missing)}"
        values = {p: SAMPLE_IDENTIFIERS[p] for p in stmt.placeholders}
        out.append({"name": stmt.name, "file": stmt.file, "text": cypher.render(stmt.name, **values)})
    return out


def test_every_statement_passes_the_neo4j_5_linter():
    statements = rendered_statements()
    results = lint([{"name": s["name"], "text": s["text"]} for s in statements])
    assert set(results) == {s["name"] for s in statements}
    flagged = []
    for s in statements:
        for d in results[s["name"]]:
            if any(name == s["name"] and text in d["message"] for name, text in ACCEPTED):
                continue
            flagged.append(f"{s['file']}: {s['name']} (line {d['line']}, column {d['column']}): "
                           f"{d['severity']}: {d['message']}")
    assert not flagged, "Neo4j's Cypher 5 linter flags:\n" + "\n".join(flagged)


def test_every_accepted_flag_still_happens():
    # An accepted flag whose statement was fixed must leave ACCEPTED.
    if not ACCEPTED:
        return
    results = lint([{"name": s["name"], "text": s["text"]} for s in rendered_statements()])
    for (name, text), reason in ACCEPTED.items():
        assert any(text in d["message"] for d in results.get(name, [])), f"{name}: {text!r} no longer flagged"


def test_the_linter_flags_syntax_semantics_and_deprecations():
    # So that a clean run means something: broken statements are caught (parameters are not).
    results = lint([
        {"name": "syntax", "text": "MATCH (n:Entity RETURN n"},
        {"name": "semantics", "text": "MATCH (n:Entity) RETURN m"},
        {"name": "deprecated", "text": "MATCH (n:Entity) RETURN id(n)"},
        {"name": "fine", "text": "UNWIND $rows AS row MERGE (n:Entity {id: row.id}) SET n += row.props"},
    ])
    assert results["syntax"] and {d["severity"] for d in results["syntax"]} == {"error"}
    assert "not defined" in results["semantics"][0]["message"]
    assert results["deprecated"][0]["severity"] == "warning" and "deprecated" in results["deprecated"][0]["message"]
    assert results["fine"] == []
