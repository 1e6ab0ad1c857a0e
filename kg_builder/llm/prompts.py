"""Versioned prompt templates and their registry.

Every prompt is a file ``templates/<name>@v<version>.txt``: a header of ``# key: value`` lines
(``prompt``, ``version``, ``purpose``, ``variables``, ``answer``), then ``=== system ===`` and
``=== user ===`` sections. Variables are written ``$name`` (``$$`` is a literal dollar). A changed
prompt gets a new file and version, so results can record exactly which prompt produced them
(``PromptTemplate.id``, e.g. ``relation_filter@v1``).

Rendering is strict: a missing or unknown variable raises :class:`PromptError` naming it, and the
header's ``variables`` must match the ``$names`` in the text (checked when the registry loads).

Example:
    >>> prompt = get_prompt("relation_filter")          # latest version
    >>> messages = prompt.render(entity="Air", entity_type="Brand", background="...",
    ...                          candidates=format_relations({"PRODUCES": "makes a product"}))
    >>> llm.invoke(messages, schema=prompt.schema)
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel

from kg_builder.errors import KGForgeError
from kg_builder.llm import schemas
from kg_builder.llm.base import Message

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"

_FILE = re.compile(r"^(?P<name>[a-z][a-z0-9_]*)@v(?P<version>\d+)\.txt$")
_SECTION = re.compile(r"^=== (system|user) ===\s*$", re.MULTILINE)


class PromptError(KGForgeError, ValueError):
    """A prompt is unknown, malformed, or was rendered with missing or unknown variables."""


@dataclass(frozen=True)
class PromptTemplate:
    """One version of one prompt.

    Attributes:
        name: e.g. ``relation_filter``.
        version: an integer, bumped whenever the text changes.
        purpose: one line on what the prompt is for.
        variables: the ``$names`` that :meth:`render` requires, all of them and only them.
        system, user: the message templates.
        answer: name of the pydantic model in :mod:`kg_builder.llm.schemas` the answer must match.
    """

    name: str
    version: int
    purpose: str
    variables: tuple[str, ...]
    system: str
    user: str
    answer: str | None = None

    @property
    def id(self) -> str:
        """``name@vN``: what provenance records."""
        return f"{self.name}@v{self.version}"

    @property
    def schema(self) -> type[BaseModel] | None:
        """The pydantic model of the expected answer (from :mod:`kg_builder.llm.schemas`)."""
        return getattr(schemas, self.answer) if self.answer else None

    def render(self, **values: object) -> list[Message]:
        """The system and user messages with every ``$variable`` filled in.

        Values are turned into text with ``str``; lists and tuples become one ``- item`` line each
        (``(none)`` when empty).

        Raises:
            PromptError: a variable is missing, unknown, or ``None``.
        """
        missing = [v for v in self.variables if v not in values]
        unknown = sorted(set(values) - set(self.variables))
        none = [k for k, v in values.items() if v is None]
        if missing or unknown or none:
            problems = []
            if missing:
                problems.append(f"missing variable(s) {', '.join(missing)}")
            if unknown:
                problems.append(f"unknown variable(s) {', '.join(unknown)}")
            if none:
                problems.append(f"None given for {', '.join(none)} (pass '' or a value)")
            raise PromptError(
                f"prompt {self.id}: {'; '.join(problems)}. It takes exactly: {', '.join(self.variables)}"
            )
        text = {k: _as_text(v) for k, v in values.items()}
        return [
            {"role": "system", "content": string.Template(self.system).substitute(text)},
            {"role": "user", "content": string.Template(self.user).substitute(text)},
        ]


def _as_text(value: object) -> str:
    if isinstance(value, (list, tuple)):
        return format_list(value)
    return str(value)


# --- loading and the registry ------------------------------------------------------------------------
def load_template(path: Path) -> PromptTemplate:
    """Read one template file and check that its header agrees with its name and its text.

    Raises:
        PromptError: the file name, header or sections are malformed, or the declared variables
            differ from the ``$names`` used.
    """
    match = _FILE.match(path.name)
    if not match:
        raise PromptError(f"{path}: template files are named <name>@v<version>.txt")
    text = path.read_text(encoding="utf-8")
    header: dict[str, str] = {}
    lines = text.splitlines(keepends=True)
    body_start = 0
    for i, line in enumerate(lines):
        if not line.startswith("#"):
            body_start = i
            break
        key, _, value = line[1:].partition(":")
        header[key.strip()] = value.strip()
    body = "".join(lines[body_start:])
    parts = _SECTION.split(body)
    # parts: [before, "system", system_text, "user", user_text]
    if len(parts) != 5 or parts[1] != "system" or parts[3] != "user" or parts[0].strip():
        raise PromptError(f"{path}: expected a header, then '=== system ===' and '=== user ===' sections")
    system, user = parts[2].strip("\n"), parts[4].strip("\n")

    name, version = match["name"], int(match["version"])
    if header.get("prompt") != name or header.get("version") != str(version):
        raise PromptError(
            f"{path}: header says {header.get('prompt')}@v{header.get('version')}, "
            f"the file name says {name}@v{version}"
        )
    declared = tuple(v.strip() for v in header.get("variables", "").split(",") if v.strip())
    used = set()
    for part in (system, user):
        tmpl = string.Template(part)
        if not tmpl.is_valid():
            raise PromptError(f"{path}: a '$' that is not a variable; write '$$' for a literal dollar")
        used.update(tmpl.get_identifiers())
    if set(declared) != used:
        raise PromptError(
            f"{path}: header declares variables {sorted(declared)} but the text uses {sorted(used)}"
        )
    answer = header.get("answer") or None
    if answer and not (
        isinstance(getattr(schemas, answer, None), type) and issubclass(getattr(schemas, answer), BaseModel)
    ):
        raise PromptError(f"{path}: answer {answer!r} is not a model in kg_builder.llm.schemas")
    return PromptTemplate(
        name=name,
        version=version,
        purpose=header.get("purpose", ""),
        variables=declared,
        system=system,
        user=user,
        answer=answer,
    )


@lru_cache
def _registry(directory: Path = TEMPLATES_DIR) -> Mapping[str, Mapping[int, PromptTemplate]]:
    found: dict[str, dict[int, PromptTemplate]] = {}
    for path in sorted(directory.glob("*.txt")):
        t = load_template(path)
        found.setdefault(t.name, {})[t.version] = t
    return found


def available_prompts() -> list[str]:
    """Every registered prompt as ``name@vN``, sorted."""
    return sorted(t.id for versions in _registry().values() for t in versions.values())


def get_prompt(name: str, version: int | str | None = None) -> PromptTemplate:
    """The prompt ``name`` at ``version`` (an int, ``"v2"`` or ``"2"``), or its latest version.

    ``name`` may also be a full id such as ``"relation_filter@v1"``.

    Raises:
        PromptError: no such prompt or version; the message lists the valid ones.
    """
    if "@" in name and version is None:
        name, _, version = name.partition("@")
    registry = _registry()
    versions = registry.get(name)
    if not versions:
        raise PromptError(f"unknown prompt {name!r}; valid prompts: {', '.join(available_prompts())}")
    if version is None:
        return versions[max(versions)]
    try:
        number = int(str(version).removeprefix("v"))
    except ValueError:
        number = -1
    if number not in versions:
        raise PromptError(
            f"prompt {name!r} has no version {version!r}; valid: "
            f"{', '.join(versions[v].id for v in sorted(versions))}"
        )
    return versions[number]


# --- formatting helpers for template variables ---------------------------------------------------
def format_list(items: Iterable[object], *, empty: str = "(none)") -> str:
    """One ``- item`` line per item, or ``empty``."""
    lines = [f"- {item}" for item in items]
    return "\n".join(lines) if lines else empty


def format_relations(relations: Mapping[str, str] | Iterable[str], *, empty: str = "(none)") -> str:
    """Candidate relations as ``- NAME: description`` lines (names alone when no descriptions)."""
    if isinstance(relations, Mapping):
        return format_list(
            (f"{name}: {desc}" if desc else name for name, desc in relations.items()), empty=empty
        )
    return format_list(relations, empty=empty)


def format_triples(triples: Iterable[tuple[str, str, str]], *, empty: str = "(none)") -> str:
    """Known graph facts as ``- (S) -[R]-> (T)`` lines."""
    return format_list((f"({s}) -[{r}]-> ({t})" for s, r, t in triples), empty=empty)


def format_documents(documents: Iterable[tuple[str, str]], *, empty: str = "(no documents)") -> str:
    """Documents as ``[id] text`` paragraphs, so the answer can cite the ids."""
    parts = [f"[{doc_id}] {' '.join(text.split())}" for doc_id, text in documents]
    return "\n\n".join(parts) if parts else empty


__all__ = [
    "TEMPLATES_DIR",
    "PromptError",
    "PromptTemplate",
    "available_prompts",
    "format_documents",
    "format_list",
    "format_relations",
    "format_triples",
    "get_prompt",
    "load_template",
]
