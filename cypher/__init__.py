"""Every Cypher statement kgforge runs, loaded from the ``*.cypher`` files in this folder.

File format: each statement starts with two comment lines, its name and its one-line purpose,
and runs until the next ``// @name`` line::

    // @name upsert_nodes
    // @purpose Create or update nodes of one label by id.
    UNWIND $rows AS row
    MERGE (n:{{label}} {id: row.id})
    ...

Values are always ``$parameters``. Labels and relationship types cannot be parameters in Cypher,
so a statement names them as ``{{placeholder}}`` and :func:`render` fills them only with values
that match :data:`IDENTIFIER_PATTERN` (letters, digits, underscore; starting with a letter) or with
bounded integers (variable-length path bounds). Anything else raises :class:`InvalidIdentifierError`
before a statement is built, so no user string ever becomes Cypher text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

IDENTIFIER_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,199}$")
_PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+)\s*\}\}")
_HEADER = re.compile(r"^//\s*@name\s+([a-z0-9_]+)\s*$")
_PURPOSE = re.compile(r"^//\s*@purpose\s+(.+?)\s*$")
MAX_INT_PLACEHOLDER = 10


class InvalidIdentifierError(ValueError):
    """A label, relationship type or other identifier failed the strict pattern."""

    def __init__(self, placeholder: str, value: object):
        self.placeholder = placeholder
        self.value = value
        super().__init__(
            f"{placeholder} {value!r} is not a valid identifier: use letters, digits and underscores, "
            "starting with a letter (at most 200 characters)"
        )


@dataclass(frozen=True)
class Statement:
    """One named Cypher statement with its purpose and the placeholders it needs."""

    name: str
    purpose: str
    text: str
    file: str

    @property
    def placeholders(self) -> frozenset[str]:
        return frozenset(_PLACEHOLDER.findall(self.text))


def _parse(file: str, source: str) -> list[Statement]:
    statements: list[Statement] = []
    name: str | None = None
    purpose: str | None = None
    body: list[str] = []

    def flush() -> None:
        if name is None:
            return
        if not purpose:
            raise ValueError(f"{file}: statement {name!r} has no '// @purpose' line")
        while body and (not body[-1].strip() or body[-1].lstrip().startswith("//")):
            body.pop()  # comments between statements belong to the next one
        text = "\n".join(body).strip().rstrip(";").strip()
        if not text:
            raise ValueError(f"{file}: statement {name!r} is empty")
        statements.append(Statement(name=name, purpose=purpose, text=text, file=file))

    for line in source.splitlines():
        header = _HEADER.match(line)
        if header:
            flush()
            name, purpose, body = header.group(1), None, []
            continue
        match = _PURPOSE.match(line)
        if match and name is not None and purpose is None and not body:
            purpose = match.group(1)
            continue
        if name is not None:
            body.append(line)
    flush()
    return statements


@lru_cache(maxsize=1)
def statements() -> dict[str, Statement]:
    """All statements of every ``.cypher`` file in this package, by name (names are unique)."""
    found: dict[str, Statement] = {}
    for entry in sorted(resources.files(__package__).iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".cypher"):
            continue
        for statement in _parse(entry.name, entry.read_text(encoding="utf-8")):
            if statement.name in found:
                raise ValueError(f"statement {statement.name!r} is defined twice ({entry.name})")
            found[statement.name] = statement
    return found


def statement(name: str) -> Statement:
    """The statement called ``name``; a miss lists the valid names."""
    try:
        return statements()[name]
    except KeyError:
        raise KeyError(f"no Cypher statement {name!r}; known: {', '.join(sorted(statements()))}") from None


def check_identifier(value: object, placeholder: str = "identifier") -> str:
    """Return ``value`` when it is a safe Cypher identifier, else raise InvalidIdentifierError."""
    if not isinstance(value, str) or not IDENTIFIER_PATTERN.match(value):
        raise InvalidIdentifierError(placeholder, value)
    return value


def _check_placeholder_value(placeholder: str, value: object) -> str:
    if isinstance(value, bool):
        raise InvalidIdentifierError(placeholder, value)
    if isinstance(value, int):
        if not 1 <= value <= MAX_INT_PLACEHOLDER:
            raise InvalidIdentifierError(placeholder, value)
        return str(value)
    return check_identifier(value, placeholder)


def render(name: str, **identifiers: object) -> str:
    """The text of statement ``name`` with its ``{{placeholders}}`` filled by checked identifiers.

    Raises:
        KeyError: unknown statement.
        InvalidIdentifierError: a value fails the identifier pattern.
        ValueError: a placeholder is missing or an extra one is given.
    """
    stmt = statement(name)
    needed = stmt.placeholders
    missing = needed - identifiers.keys()
    extra = identifiers.keys() - needed
    if missing or extra:
        raise ValueError(
            f"statement {name!r} needs placeholders {sorted(needed)}; missing {sorted(missing)}, "
            f"unexpected {sorted(extra)}"
        )
    checked = {key: _check_placeholder_value(key, value) for key, value in identifiers.items()}
    return _PLACEHOLDER.sub(lambda m: checked[m.group(1)], stmt.text)


__all__ = [
    "IDENTIFIER_PATTERN",
    "InvalidIdentifierError",
    "Statement",
    "check_identifier",
    "render",
    "statement",
    "statements",
]
