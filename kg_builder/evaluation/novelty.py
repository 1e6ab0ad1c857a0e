"""Novelty of generated triples: new entities, and true triples the graph did not have.

"Novelty = kept triples absent from the graph" is 1.0 by construction when the pipeline never
re-proposes a known edge (``skip_known``). What a user cares about is narrower, and this module
counts it (issue 9, point 5):

* **new entities**: kept triples whose target is not a node of the graph the pipeline saw (a name
  without an id, which the write path resolves and, if unresolved, creates);
* **novel true**: kept triples that are held-out truth and absent from the graph seen; these are
  the facts the job *added* (on a dataset split they are the kept hits, since held-out triples
  are never in the seen graph; against a live graph they need not be);
* **new-entity precision (proxy)**: a new entity counts as correct when its normalised name
  (lower-case, plurals stripped; :func:`~kg_builder.retrieval.utility.normalise_tokens`) equals
  the name, or an alias ("X, Y, or Z" parts), of a held-out true tail of the same head and
  relation. On datasets whose held-out tails are all nodes of the seen graph (UMLS, WN18RR as
  ``eval generation`` builds them) a generator that filters existing names can score 0 here by
  construction; it is informative on an entity-held-out protocol (the tail removed from the seen
  graph), and a correct new entity missing from the truth always counts as wrong, so it is a
  lower bound.

Entry point: :func:`novelty_metrics`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kg_builder.pipeline.pipeline import ScoredTriple
from kg_builder.pipeline.snapshot import GraphSnapshot
from kg_builder.retrieval.utility import EntityMentions, normalise_tokens

Triple = tuple[str, str, str]


def _keys(name: str) -> set[tuple[str, ...]]:
    return {key for alias in EntityMentions.aliases_of(name) if (key := tuple(normalise_tokens(alias)))}


def is_new_entity(triple: ScoredTriple, seen: GraphSnapshot) -> bool:
    """Whether the triple's target is not a node of ``seen`` (no id, or an id ``seen`` lacks)."""
    return triple.target_id is None or triple.target_id not in seen.entities


def novelty_metrics(kept: Sequence[ScoredTriple], truth: set[Triple], seen: GraphSnapshot, *,
                    names: Mapping[str, str] | None = None) -> dict[str, Any]:
    """New entities and novel true triples among the ``kept`` triples (module docstring).

    Args:
        kept: the kept triples of the evaluated heads.
        truth: held-out true ``(head id, relation, tail id)`` triples.
        seen: the graph the pipeline saw.
        names: id -> name of true tails that ``seen`` does not hold (entity-held-out protocols);
            tails in ``seen`` are named from it.

    Returns:
        ``kept``; ``new_entities`` (kept triples with a new target), ``distinct_new_entities``
        (distinct normalised names), ``new_entity_rate``; ``novel_true`` and ``novel_true_rate``
        (over all kept triples); ``new_entity_matches`` and ``new_entity_precision`` (None when no
        new entity was kept).

    Example:
        >>> novelty_metrics([], set(), GraphSnapshot("d", {}, {}, []))["new_entity_rate"]
        0.0
    """
    names = dict(names or {})
    true_tail_keys: dict[tuple[str, str], set[tuple[str, ...]]] = {}
    for head, relation, tail in truth:
        info = seen.entities.get(tail)
        name = info.name if info is not None else names.get(tail)
        if name:
            true_tail_keys.setdefault((head, relation), set()).update(_keys(name))
    new = [t for t in kept if is_new_entity(t, seen)]
    matches = sum(bool(_keys(t.target_name) & true_tail_keys.get((t.head, t.relation), set())) for t in new)
    novel_true = sum(t.target_id is not None and (t.head, t.relation, t.target_id) in truth
                     and not seen.has(t.head, t.relation, t.target_id) for t in kept)
    total = len(kept)
    return {
        "kept": total,
        "new_entities": len(new),
        "distinct_new_entities": len({tuple(normalise_tokens(t.target_name)) for t in new}),
        "new_entity_rate": len(new) / total if total else 0.0,
        "novel_true": novel_true,
        "novel_true_rate": novel_true / total if total else 0.0,
        "new_entity_matches": matches,
        "new_entity_precision": matches / len(new) if new else None,
    }


__all__ = ["is_new_entity", "novelty_metrics"]
