"""Read-only Cypher typed by a user (the explorer's Cypher box, ``POST /v1/cypher``).

The statement is the user's own Cypher text by design: this is the one place in kgforge where a
user string becomes a statement, so safety comes from three checks kgforge makes itself, not from
the database's access mode (ArcadeDB 26.10 runs a ``CREATE`` inside a READ session and reports
every ``EXPLAIN`` as a write, so neither can be trusted to refuse writes):

1. :func:`check_read_only` tokenizes the statement (string literals, backtick names and ``//`` /
   ``/* */`` comments are skipped, so ``RETURN 'CREATE'`` is fine) and refuses, naming the clause,
   any write or admin clause (``CREATE``, ``MERGE``, ``SET``, ``DELETE``, ``DETACH``, ``REMOVE``,
   ``FOREACH``, ``LOAD CSV``, ``DROP``, ``ALTER``, ``GRANT``, ``DENY``, ``REVOKE``, ``RENAME``,
   ``START``, ``STOP``, ``TERMINATE``, ``USE``), ``CALL { ... } IN TRANSACTIONS``, a ``CALL`` of
   any procedure not on :data:`ALLOWED_PROCEDURES` (``db.labels``, ``db.relationshipTypes``,
   ``db.propertyKeys``, ``db.schema.*``), and more than one statement. A keyword used as a
   property key (``n.set``), a label (``:Create``) or a map key (``{delete: 1}``) is a name, not a
   clause. Unterminated strings and comments are refused (the database would read them otherwise).
2. :func:`run_read_only` runs the statement in an explicit transaction of a READ session that is
   always rolled back, never committed: should a write ever slip past the checker (a Cypher
   dialect quirk), it is undone (ArcadeDB honours the rollback; Neo4j also refuses writes in READ).
3. Limits: at most ``row_limit`` rows are read (the rest of the stream is discarded, and the answer
   says it was truncated), and the caller waits at most ``timeout_s``: the transaction carries that
   timeout (Neo4j stops the query server-side; ArcadeDB ignores it, so the query may go on there
   until it ends, its result thrown away). At most :data:`MAX_CONCURRENT` user queries run at once
   per process, counted until they really end, so abandoned slow queries cannot pile up.

Values returned are plain JSON: nodes become ``{"kind": "node", "id", "element_id", "labels",
"properties"}`` (``id`` is the node's kgforge ``id`` property, or its element id when it has none),
relationships ``{"kind": "relationship", "id", "type", "start", "end", "properties"}`` and paths
``{"kind": "path", "nodes", "relationships"}``; every node and relationship met is also listed once
in ``nodes`` / ``relationships`` so that a client can draw the result as a graph.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from neo4j import exceptions as neo4j_errors
from neo4j.graph import Node, Path, Relationship
from pydantic import BaseModel, Field

from kg_builder.errors import DatabaseError, DatabaseUnavailableError, InvalidInputError, RetryableError
from kg_builder.graphdb.graph import GraphStore

FIELD = "query"
MAX_QUERY_CHARS = 20_000
MAX_CONCURRENT = 4

#: Clauses that write, change the schema or administer the server: refused wherever they appear.
WRITE_CLAUSES = frozenset({
    "CREATE", "MERGE", "SET", "DELETE", "DETACH", "REMOVE", "FOREACH", "LOAD", "DROP", "ALTER", "GRANT",
    "DENY", "REVOKE", "RENAME", "START", "STOP", "TERMINATE", "USE",
})
#: Procedures a read-only statement may ``CALL`` (compared case-insensitively); ``db.schema.`` is a prefix.
ALLOWED_PROCEDURES = ("db.labels", "db.relationshipTypes", "db.propertyKeys")
ALLOWED_PROCEDURE_PREFIXES = ("db.schema.",)


class ReadOnlyViolation(InvalidInputError):
    """The statement would write (or is not one well-formed statement); ``clause`` names what was refused."""

    def __init__(self, clause: str, reason: str):
        self.clause = clause
        super().__init__(FIELD, reason)


class QueryTimeoutError(RetryableError):
    """The statement did not finish within the time limit."""


class TooBusyError(RetryableError):
    """Too many user statements are running already."""


# --- the tokenizer ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # word, name (backtick), string, number, param, punct
    text: str
    start: int  # index in the statement
    line: int
    column: int

    @property
    def upper(self) -> str:
        return self.text.upper() if self.kind == "word" else ""

    def where(self) -> str:
        return f"line {self.line}, column {self.column}"


_WORD = re.compile(r"[^\W\d]\w*")
_NUMBER = re.compile(r"\d[\w.]*")
_PARAM = re.compile(r"\$(?:\w+|`(?:[^`]|``)*`|\{\w+\})?")


def _position(text: str, index: int) -> tuple[int, int]:
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def tokenize(text: str) -> list[Token]:
    """The significant tokens of a Cypher statement (no whitespace, no comments).

    Raises:
        ReadOnlyViolation: an unterminated string, backtick name or block comment.
    """
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
            continue
        if text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end + 1
            continue
        if text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                line, col = _position(text, i)
                raise ReadOnlyViolation("/*", f"unterminated comment starting at line {line}, column {col}")
            i = end + 2
            continue
        line, col = _position(text, i)
        if c in "'\"":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            if j >= n:
                raise ReadOnlyViolation(c, f"unterminated string starting at line {line}, column {col}")
            tokens.append(Token("string", text[i : j + 1], i, line, col))
            i = j + 1
            continue
        if c == "`":
            j = i + 1
            while True:
                j = text.find("`", j)
                if j < 0:
                    raise ReadOnlyViolation("`", f"unterminated backtick name starting at line {line}, column {col}")
                if text.startswith("``", j):
                    j += 2
                    continue
                break
            tokens.append(Token("name", text[i + 1 : j].replace("``", "`"), i, line, col))
            i = j + 1
            continue
        if c == "$":
            match = _PARAM.match(text, i)
            tokens.append(Token("param", match.group(0), i, line, col))
            i = match.end()
            continue
        match = _WORD.match(text, i) or _NUMBER.match(text, i)
        if match:
            kind = "word" if match.re is _WORD else "number"
            tokens.append(Token(kind, match.group(0), i, line, col))
            i = match.end()
            continue
        tokens.append(Token("punct", c, i, line, col))
        i += 1
    return tokens


# --- the check ----------------------------------------------------------------------------------
def _is_name(tokens: list[Token], k: int) -> bool:
    """A keyword used as a name: a property key (``n.set``), a label or type (``:Create``), a map key
    (``{delete: 1}``), or the part of a procedure or function name (``db.create``)."""
    before = tokens[k - 1].text if k > 0 and tokens[k - 1].kind == "punct" else ""
    after = tokens[k + 1].text if k + 1 < len(tokens) and tokens[k + 1].kind == "punct" else ""
    return before in (".", ":") or after == ":"


def _procedure(tokens: list[Token], k: int) -> tuple[str, int]:
    """The dotted procedure name starting at token ``k`` and the index after it."""
    parts: list[str] = []
    while k < len(tokens) and tokens[k].kind in ("word", "name"):
        parts.append(tokens[k].text)
        if k + 1 < len(tokens) and tokens[k + 1].text == "." and tokens[k + 1].kind == "punct":
            k += 2
            continue
        k += 1
        break
    return ".".join(parts), k


def procedure_allowed(name: str) -> bool:
    folded = name.lower()
    return (folded in {p.lower() for p in ALLOWED_PROCEDURES}
            or any(folded.startswith(p.lower()) and len(folded) > len(p) for p in ALLOWED_PROCEDURE_PREFIXES))


def _allowed_list() -> str:
    return ", ".join([*ALLOWED_PROCEDURES, *(p + "*" for p in ALLOWED_PROCEDURE_PREFIXES)])


def check_read_only(text: str) -> str:
    """``text`` if it is one read-only statement (without a trailing ``;``), else raise.

    Raises:
        ReadOnlyViolation (an InvalidInputError on field ``query``): the reason names the refused
        clause and where it is.
    """
    if not isinstance(text, str) or not text.strip():
        raise ReadOnlyViolation("", "must be a non-empty Cypher statement")
    if len(text) > MAX_QUERY_CHARS:
        raise ReadOnlyViolation("", f"is {len(text)} characters long; at most {MAX_QUERY_CHARS} are accepted")
    tokens = tokenize(text)
    if not tokens:
        raise ReadOnlyViolation("", "holds only comments; write a Cypher statement")
    end = len(tokens)
    for k, token in enumerate(tokens):
        if token.kind == "punct" and token.text == ";":
            if k + 1 < len(tokens):
                raise ReadOnlyViolation(";", f"only one statement per request: a second one follows the ';' at "
                                             f"{token.where()}")
            end = k
    if end == 0:
        raise ReadOnlyViolation(";", "holds no statement before the ';'")
    for k in range(end):
        token = tokens[k]
        word = token.upper
        if not word or _is_name(tokens, k):
            continue
        if word in WRITE_CLAUSES:
            clause = "LOAD CSV" if word == "LOAD" else word
            raise ReadOnlyViolation(clause, f"{clause} at {token.where()} is refused: the Cypher box is read-only "
                                            "(no CREATE, MERGE, SET, DELETE, DETACH, REMOVE, FOREACH, LOAD CSV, "
                                            "schema or admin clauses)")
        if word == "IN" and k + 1 < end and tokens[k + 1].upper == "TRANSACTIONS":
            raise ReadOnlyViolation("CALL { } IN TRANSACTIONS", f"CALL {{ }} IN TRANSACTIONS at {token.where()} is "
                                                                "refused: the Cypher box is read-only")
        if word == "CALL":
            nxt = tokens[k + 1] if k + 1 < end else None
            if nxt is not None and nxt.kind == "punct" and nxt.text in "{(":
                continue  # a subquery: its clauses are checked like the rest
            name, _ = _procedure(tokens, k + 1)
            if not name or not procedure_allowed(name):
                shown = name or "(nothing)"
                raise ReadOnlyViolation(f"CALL {shown}", f"CALL {shown} at {token.where()} is refused: only these "
                                                         f"procedures may be called: {_allowed_list()}")
    return text[: tokens[end].start] if end < len(tokens) else text


# --- running it ---------------------------------------------------------------------------------
class CypherResult(BaseModel):
    columns: list[str]
    rows: list[list[Any]]
    nodes: list[dict[str, Any]] = Field(default_factory=list)
    relationships: list[dict[str, Any]] = Field(default_factory=list)
    truncated: bool = Field(description="More rows existed beyond row_limit (they were not read).")
    row_limit: int
    elapsed_ms: float


class _Collector:
    """Turns driver values into JSON and remembers every node and relationship met."""

    def __init__(self) -> None:
        self.nodes: dict[str, dict[str, Any]] = {}
        self.relationships: dict[str, dict[str, Any]] = {}
        self._keys: dict[str, str] = {}  # element id -> node key

    def _node_key(self, node: Node) -> str:
        key = node.get("id")
        return key if isinstance(key, str) and key else node.element_id

    def node(self, node: Node) -> dict[str, Any]:
        key = self._node_key(node)
        value = {"kind": "node", "id": key, "element_id": node.element_id, "labels": sorted(node.labels),
                 "properties": {k: self.plain(v) for k, v in node.items()}}
        known = self.nodes.get(key)
        if known is None or (not known["properties"] and value["properties"]):
            self.nodes[key] = value
        self._keys[node.element_id] = key
        return value

    def endpoint(self, node: Node) -> str:
        if node.element_id in self._keys:
            return self._keys[node.element_id]
        if len(node) or node.labels:  # hydrated: the driver knows its properties
            return self.node(node)["id"]
        self.nodes.setdefault(node.element_id, {"kind": "node", "id": node.element_id, "element_id": node.element_id,
                                                "labels": [], "properties": {}, "stub": True})
        return node.element_id

    def relationship(self, rel: Relationship) -> dict[str, Any]:
        value = {"kind": "relationship", "id": rel.element_id, "type": rel.type,
                 "start": self.endpoint(rel.start_node), "end": self.endpoint(rel.end_node),
                 "properties": {k: self.plain(v) for k, v in rel.items()}}
        self.relationships[rel.element_id] = value
        return value

    def plain(self, value: Any) -> Any:
        if value is None or isinstance(value, (str, bool, int)):
            return value
        if isinstance(value, float):
            return value if math.isfinite(value) else None
        if isinstance(value, Node):
            return self.node(value)
        if isinstance(value, Relationship):
            return self.relationship(value)
        if isinstance(value, Path):
            nodes = [self.node(n)["id"] for n in value.nodes]
            return {"kind": "path", "nodes": nodes,
                    "relationships": [self.relationship(r)["id"] for r in value.relationships]}
        if isinstance(value, (list, tuple)):
            return [self.plain(v) for v in value]
        if isinstance(value, Mapping):
            return {str(k): self.plain(v) for k, v in value.items()}
        if isinstance(value, (bytes, bytearray)):
            return value.hex()
        return value.isoformat() if hasattr(value, "isoformat") else str(value)

    def finish(self) -> None:
        # Endpoints seen before their node was (stub first, hydrated later) point at the final key.
        for rel in self.relationships.values():
            for end in ("start", "end"):
                rel[end] = self._keys.get(rel[end], rel[end])
        for element_id, key in self._keys.items():
            if element_id != key and element_id in self.nodes and self.nodes[element_id].get("stub"):
                del self.nodes[element_id]


_slots = threading.BoundedSemaphore(MAX_CONCURRENT)


def _records(store: GraphStore, text: str, parameters: Mapping[str, Any], *, row_limit: int,
             timeout_s: float) -> tuple[list[str], list[Any], bool]:
    with store.driver.session(database=store.database, default_access_mode="READ",
                              fetch_size=min(row_limit + 1, 1000)) as session:
        tx = session.begin_transaction(timeout=timeout_s)
        try:
            result = tx.run(text, dict(parameters))
            columns = list(result.keys())
            records: list[Any] = []
            truncated = False
            for record in result:
                if len(records) == row_limit:
                    truncated = True
                    break
                records.append(record.values())
            return columns, records, truncated
        finally:
            if not tx.closed():  # a failed statement has closed it already
                tx.rollback()  # never commit: a write that slipped past the checker is undone


def run_read_only(store: GraphStore, text: str, parameters: Mapping[str, Any] | None = None, *,
                  row_limit: int, timeout_s: float) -> CypherResult:
    """Check ``text`` (:func:`check_read_only`), run it read-only and return at most ``row_limit`` rows.

    Raises:
        ReadOnlyViolation: a write clause, an unknown procedure, more than one statement.
        InvalidInputError: the database refused the statement (syntax, unknown function, bad
            parameter), field ``query``.
        QueryTimeoutError: no answer within ``timeout_s``.
        TooBusyError: :data:`MAX_CONCURRENT` statements are running already.
        DatabaseUnavailableError / DatabaseError: the database is down or failed.
    """
    statement = check_read_only(text)
    if row_limit < 1 or timeout_s <= 0:
        raise InvalidInputError("limit", "row limit and time limit must be positive")
    if not _slots.acquire(blocking=False):
        raise TooBusyError(f"{MAX_CONCURRENT} Cypher statements are running already; try again shortly")
    future: Future = Future()
    started = time.monotonic()

    def work() -> None:
        try:
            future.set_result(_records(store, statement, parameters or {}, row_limit=row_limit,
                                       timeout_s=timeout_s))
        except BaseException as e:  # noqa: BLE001 - handed to the waiting request
            future.set_exception(e)
        finally:
            _slots.release()

    threading.Thread(target=work, name="kgforge-cypher", daemon=True).start()
    try:
        columns, records, truncated = future.result(timeout=timeout_s)
    except TimeoutError:
        raise QueryTimeoutError(f"the statement did not finish within {timeout_s:g} s "
                                "(KGFORGE_CYPHER_TIMEOUT_S); add a LIMIT or a narrower MATCH") from None
    except neo4j_errors.ClientError as e:
        raise InvalidInputError(FIELD, f"the database refused the statement: {e.message or e}") from e
    except (neo4j_errors.ServiceUnavailable, neo4j_errors.SessionExpired) as e:
        raise DatabaseUnavailableError(f"graph database unreachable ({e}); start it with `kgforge db start`") from e
    except neo4j_errors.TransientError as e:
        raise DatabaseUnavailableError(f"graph database transient failure: {e}") from e
    except neo4j_errors.Neo4jError as e:
        raise DatabaseError(f"graph database error: {e}") from e
    collector = _Collector()
    rows = [[collector.plain(v) for v in values] for values in records]
    collector.finish()
    return CypherResult(columns=columns, rows=rows, nodes=list(collector.nodes.values()),
                        relationships=list(collector.relationships.values()), truncated=truncated,
                        row_limit=row_limit, elapsed_ms=round((time.monotonic() - started) * 1000, 1))


__all__ = ["ALLOWED_PROCEDURES", "CypherResult", "QueryTimeoutError", "ReadOnlyViolation", "TooBusyError",
           "WRITE_CLAUSES", "check_read_only", "procedure_allowed", "run_read_only", "tokenize"]
