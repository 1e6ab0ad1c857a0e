"""EntityResolver: map generated entity names to graph nodes without ever creating duplicates.

A resolver works inside one **domain** (the dataset a job runs on: node ids ``<domain>:<id>``,
property ``domain``): a job on ``umls`` never merges into a ``wn18rr`` node, and the nodes it
creates belong to its domain. Order of evidence for one candidate (name, optional type), DESIGN.md
4.5:

1. **job**: the same normalised name (and a compatible type) was already resolved in this run;
2. **exact**: a node of the label and domain whose ``name_norm`` equals the candidate's
   (:func:`~kg_builder.graphdb.schema.normalize_name`: case, punctuation, spacing, Unicode forms);
3. **alias**: an ``(:Alias)`` lookup node records the name as an alias of a node of the domain;
4. **variant**: a node whose name is a lexical variant of the candidate's
   (:func:`~kg_builder.resolution.variants.name_variants`: singular/plural, word order, function
   words, joined words) *and* whose MiniLM embedding is close enough. Reordered words and function
   words need ``variant_threshold``. A changed word form (plural, joined words) needs
   ``inflection_threshold`` into a lower-case (common-noun) name, and ``proper_threshold`` into
   a name with capitals: proper names do not inflect ("Aliens" is another film than "Alien",
   "Queens" another place than "Queen"; MiniLM scores both pairs 0.83-0.86, higher than "humans"
   to "human", 0.62, so only the form of the stored name tells them apart). A plural with a sense
   of its own ("goods", "customs", "news": :data:`~kg_builder.resolution.variants.PLURAL_SENSES`)
   never merges into its singular;
5. **embedding**: the nearest name of the domain in a name index (``name_index``) at or above
   ``threshold``;
6. **new**: a node with the deterministic id ``{namespace}:{key_part(name)}[:{type}]`` (the
   namespace is the domain). Two jobs that create one entity at the same time MERGE onto that one
   id, so even a race makes one node.

Every step needs a compatible type: equal after normalisation, or either one unknown; so "Air"
the brand and "air" the gas stay two nodes, and among homonyms of the domain the one of the
candidate's type wins. A variant or embedding merge records the surface form as an alias, so the
next job finds it at step 3.

Cost: one indexed query per step for the whole batch (``name_norm IN $norms``, ``Alias.lookup IN
$lookups``, ``id IN $ids``), never a scan of the graph; embeddings only for the candidates that
reach step 4 and the few nodes their variants found.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import re
import time
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import numpy as np
from pydantic import BaseModel

import cypher
from kg_builder.errors import DatabaseError, InvalidInputError
from kg_builder.models.encoder import TextEncoder
from kg_builder.resolution.variants import STOPWORDS, distinct_plural, name_variants, same_words
from kg_builder.graphdb import GraphStore, NodeWrite, schema
from kg_builder.graphdb.schema import ENTITY

log = logging.getLogger(__name__)

Method = Literal["job", "exact", "alias", "variant", "embedding", "new"]
ALIAS_WRITE_ATTEMPTS = 5
_DOMAIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_]{0,63}$")


class Candidate(BaseModel):
    """A generated entity: its surface name and, when known, its type."""

    name: str
    type: str | None = None


class Resolution(BaseModel):
    name: str
    type: str | None = None
    node_id: str
    method: Method
    score: float = 1.0
    created: bool = False


class ResolutionResult(BaseModel):
    resolutions: list[Resolution]
    created: int = 0
    merged: int = 0
    aliases_added: int = 0

    def node_id(self, name: str, type: str | None = None) -> str:
        """The node a candidate was resolved to. With ``type``, the candidate of that name *and*
        type (homonyms of different types resolve to different nodes); without, the first
        candidate of that name.

        Raises:
            KeyError: no candidate of that name (and type) was resolved.
        """
        norm = schema.normalize_name(name)
        wanted = _norm_type(type)
        for resolution in self.resolutions:
            if schema.normalize_name(resolution.name) == norm and (type is None or _norm_type(resolution.type) == wanted):
                return resolution.node_id
        raise KeyError(name if type is None else f"{name} ({type})")


_PARENTHESIS = re.compile(r"^(?P<head>.*\S)\s*\((?P<inner>[^()]{2,12})\)\s*$")


_BRACKETS = re.compile(r"\s*[(\[][^()\[\]]*[)\]]")
_TITLE_TAIL = re.compile(r"\s+[-\u2013|]\s+|,\s+")


def name_aliases(name: str, *, title: bool = False) -> list[str]:
    """Aliases a name spells out itself.

    The name without function words (``"Hollywood Walk of Fame"``: ``"hollywood walk fame"``);
    ``"North Atlantic Treaty Organization (NATO)"`` also gives ``"NATO"`` and ``"North Atlantic
    Treaty Organization"``; a parenthesis that is not the initials of the words before it
    (``"Frankfurt (Oder)"``) gives nothing. With ``title`` (product titles), also the cleaned
    title: without bracketed parts, then cut at the first ``" - "``, ``" | "`` or ``", "``
    (``"GBA 6-Pak Care Case - Game Boy Advance"`` is also ``"GBA 6-Pak Care Case"``), when at
    least two words remain.
    """
    out: list[str] = []
    words = schema.normalize_name(name).split()
    content = [w for w in words if w not in STOPWORDS]
    if len(content) >= 2 and content != words:  # "Hollywood Walk of Fame" is also "Hollywood Walk Fame"
        out.append(" ".join(content))
    match = _PARENTHESIS.match(name.strip())
    if match:
        head, inner = match.group("head"), match.group("inner")
        letters = schema.normalize_name(inner).replace(" ", "")
        words = schema.normalize_name(head).split()
        initials = {"".join(w[0] for w in words), "".join(w[0] for w in words if w not in STOPWORDS)}
        if len(letters) >= 2 and letters in initials:
            out += [inner.strip(), head.strip()]
    if title:
        bare = _BRACKETS.sub("", name).strip()
        for form in (bare, _TITLE_TAIL.split(bare, maxsplit=1)[0].strip()):
            if len(schema.normalize_name(form).split()) >= 2 and form != name.strip() and form not in out:
                out.append(form)
    return out


def _norm_type(value: str | None) -> str | None:
    return schema.normalize_name(value) or None if value else None


def _compatible(a: str | None, b: str | None) -> bool:
    a, b = _norm_type(a), _norm_type(b)
    return a is None or b is None or a == b


class NeighbourIndex(Protocol):
    """Nearest existing names by embedding: ``(node id, cosine, type)``, best first."""

    def nearest(self, name: str, k: int = 5) -> list[tuple[str, float, str | None]]: ...


class NameIndex:
    """MiniLM embeddings of existing node names for similarity matching (exact cosine, NumPy).

    Build it per domain (:meth:`from_store` with ``domain``): the resolver only ever merges into
    nodes of its own domain.

    Shapes:
        vectors: [n_names, 384], rows L2-normalised.
    """

    def __init__(self, encoder: TextEncoder, ids: list[str] | None = None, names: list[str] | None = None,
                 types: list[str | None] | None = None):
        self.encoder = encoder
        self.ids: list[str] = list(ids or [])
        self.names: list[str] = list(names or [])
        self.types: list[str | None] = list(types or [None] * len(self.ids))
        self.vectors = encoder.encode(self.names) if self.names else np.zeros((0, encoder.dim), np.float32)

    @classmethod
    def from_store(cls, store: GraphStore, encoder: TextEncoder, label: str = ENTITY, *,
                   domain: str | None = None) -> NameIndex:
        """The names of ``label`` nodes of ``domain`` (all domains when None: small graphs only)."""
        label = schema.node_label(label)
        if domain is None:
            rows = [{"id": i, "name": n, "type": t} for i, n, t in store.node_names(label)]
        else:
            _ensure_domain_index(store, label)
            rows = store._query(cypher.render("resolution_domain_names", label=label), domain=domain)
        return cls(encoder, [r["id"] for r in rows], [r["name"] for r in rows], [r["type"] for r in rows])

    def add(self, node_id: str, name: str, type_: str | None = None) -> None:
        self.ids.append(node_id)
        self.names.append(name)
        self.types.append(type_)
        self.vectors = np.vstack([self.vectors, self.encoder.encode([name])])

    def nearest(self, name: str, k: int = 5) -> list[tuple[str, float, str | None]]:
        if not self.ids:
            return []
        scores = self.vectors @ self.encoder.encode([name])[0]
        top = np.argsort(-scores)[:k]
        return [(self.ids[i], float(scores[i]), self.types[i]) for i in top]


class EntityIndexNeighbours:
    """A domain's persistent :class:`~kg_builder.retrieval.entity_index.EntityIndex` as the
    resolver's name index (step 5).

    The index embeds ``"name: description"`` texts, so a bare candidate name scores lower against
    them than against bare names: at the default ``threshold`` (0.9) it only merges near-identical
    names, which is the safe direction. Nodes a job creates are added to the index by the job's
    write step (with their descriptions), not here.
    """

    def __init__(self, index: Any):
        self.index = index

    def nearest(self, name: str, k: int = 5) -> list[tuple[str, float, str | None]]:
        return [(node_id, score, None) for node_id, score in self.index.search(name, k)]


_shared_encoder: TextEncoder | None = None


def _default_encoder() -> TextEncoder:
    global _shared_encoder
    if _shared_encoder is None:
        _shared_encoder = TextEncoder()
    return _shared_encoder


def _ensure_alias_schema(store: GraphStore) -> None:
    if getattr(store, "_kgforge_alias_schema", False):
        return
    for name in ("resolution_create_alias_constraint", "resolution_create_alias_index"):
        store._execute(cypher.render(name))
    store._kgforge_alias_schema = True  # once per store object: the statements are idempotent anyway


def _ensure_domain_index(store: GraphStore, label: str) -> None:
    done: set[str] = getattr(store, "_kgforge_domain_indexes", set())
    if label not in done:
        store._execute(cypher.render("resolution_create_domain_index", index=f"{label.lower()}_domain", label=label))
        store._kgforge_domain_indexes = done | {label}


class _Key(BaseModel):
    norm: str
    type: str | None  # normalised
    name: str  # first surface form
    raw_type: str | None


class EntityResolver:
    """Resolve candidate names against the graph (see the module docstring for the order).

    Args:
        store: the graph.
        domain: the job's domain (dataset name). Lookups only see nodes whose ``domain`` property
            equals it, and new nodes get it. None (older callers) looks in every domain.
        label: node label the candidates belong to (``Entity`` for generated knowledge).
        namespace: prefix of new node ids (default: the domain, or ``kg`` without one).
        name_index: optional embedding index of the domain's names (step 5).
        encoder: MiniLM for the variant check (step 4); loaded once per process when needed.
        threshold: minimum cosine for an embedding match (step 5). With MiniLM, 0.9 merges "Air
            Jordans" into "Air Jordan" (0.94) and keeps "cell membrane" (0.71 to "cell") apart.
        variant_threshold: minimum cosine for a variant with the same content words in another
            order or with other function words (step 4).
        inflection_threshold: minimum cosine for a changed word form into a lower-case name;
            off by default (0.0). MiniLM cannot judge plurals: "ironies"/"irony" and
            "scarcities"/"scarcity" (0.37) score as low as "news"/"new" (0.37) and "goods"/"good"
            (0.34), so the list of plurals with a sense of their own decides instead.
        proper_threshold: the same into a name with capitals (0.9: "Air Jordans" to "Air
            Jordan" 0.94 merges, "Aliens" to "Alien" 0.86 does not).
    """

    def __init__(self, store: GraphStore, *, domain: str | None = None, label: str = ENTITY,
                 namespace: str | None = None, name_index: NeighbourIndex | None = None,
                 encoder: TextEncoder | None = None, threshold: float = 0.9, variant_threshold: float = 0.6,
                 inflection_threshold: float = 0.0, proper_threshold: float = 0.9):
        if domain is not None and (not isinstance(domain, str) or not _DOMAIN.match(domain)):
            raise InvalidInputError("domain", f"{domain!r} is not a dataset name (letters, digits, underscores)")
        self.store = store
        self.domain = domain
        self.label = schema.node_label(label)
        self.namespace = namespace or domain or "kg"
        self.name_index = name_index
        self.encoder = encoder
        self.threshold = threshold
        self.variant_threshold = variant_threshold
        self.inflection_threshold = inflection_threshold
        self.proper_threshold = proper_threshold

    def _variant_bar(self, norm: str, other: str, other_name: str | None) -> float:
        """The cosine a variant needs: see the class docstring (``other`` is the node's normalised
        name or alias, ``other_name`` its surface form)."""
        if same_words(norm, other):
            return self.variant_threshold
        if distinct_plural(norm, other):
            return float("inf")
        if other_name is not None and other_name != other_name.lower():
            return self.proper_threshold
        return self.inflection_threshold

    # --- ids and aliases ------------------------------------------------------------------------
    def new_id(self, name: str, type_: str | None = None) -> str:
        """The deterministic id of a new node for ``name`` (and ``type_``)."""
        part = schema.key_part(name)
        if not part:
            raise InvalidInputError("name", f"{name!r} has no letters or digits")
        type_part = schema.key_part(type_) if type_ else ""
        return f"{self.namespace}:{part}" + (f":{type_part}" if type_part else "")

    def _lookup(self, norm: str) -> str:
        return f"{self.label}|{self.domain or ''}|{norm}"

    def add_aliases(self, node_id: str, aliases: list[str] | tuple[str, ...], *, source: str) -> int:
        """Record ``aliases`` of an existing node (its ``aliases`` list and the Alias lookup nodes).

        Returns the number of aliases written.
        """
        rows = [(node_id, alias) for alias in aliases if schema.normalize_name(alias)]
        if not rows:
            return 0
        self.store.upsert_nodes([NodeWrite(label=self.label, id=node_id, aliases=tuple(a for _, a in rows),
                                           sources=(source,))])
        self._write_alias_rows(rows)
        return len(rows)

    def index_name_aliases(self) -> int:
        """Record the aliases that the domain's names spell out themselves, once after an import.

        "Central Intelligence Agency (CIA)" is also "CIA" and "Central Intelligence Agency": a
        trailing parenthesis that is the initials of the words before it is an acronym; product
        titles (label ``Item``) are also their cleaned form (:func:`name_aliases`). An alias
        that two nodes of the domain would share, or that is another node's name, is skipped.
        Reads the domain's names through the ``domain`` index. Returns the number of aliases written.

        Raises:
            InvalidInputError: the resolver has no domain.
        """
        if self.domain is None:
            raise InvalidInputError("domain", "index_name_aliases needs the resolver's domain")
        _ensure_domain_index(self.store, self.label)
        rows = self.store._query(cypher.render("resolution_domain_names", label=self.label), domain=self.domain)
        names = {schema.normalize_name(r["name"]) for r in rows}
        proposed: dict[str, set[str]] = defaultdict(set)
        surface: dict[tuple[str, str], str] = {}
        for row in rows:
            for alias in name_aliases(row["name"], title=self.label == schema.ITEM):
                norm = schema.normalize_name(alias)
                if norm and norm not in names:
                    proposed[norm].add(row["id"])
                    surface[(norm, row["id"])] = alias
        by_node: dict[str, list[str]] = defaultdict(list)
        for norm, ids in proposed.items():
            if len(ids) == 1:
                (node_id,) = ids
                by_node[node_id].append(surface[(norm, node_id)])
        if by_node:
            self.store.upsert_nodes([NodeWrite(label=self.label, id=i, aliases=tuple(a), sources=("resolution",))
                                     for i, a in by_node.items()])
            self._write_alias_rows([(i, alias) for i, aliases in by_node.items() for alias in aliases])
        return sum(len(a) for a in by_node.values())

    def _write_alias_rows(self, rows: list[tuple[str, str]]) -> None:
        _ensure_alias_schema(self.store)
        payload = []
        for node_id, alias in rows:
            lookup = self._lookup(schema.normalize_name(alias))
            payload.append({"key": f"{lookup}|{node_id}", "lookup": lookup, "node_id": node_id, "alias": alias,
                            "label": self.label, "domain": self.domain})
        text = cypher.render("resolution_write_aliases")
        for start in range(0, len(payload), 1000):
            self._write_alias_batch(text, payload[start:start + 1000])

    def _write_alias_batch(self, text: str, payload: list[dict[str, Any]]) -> None:
        for attempt in range(1, ALIAS_WRITE_ATTEMPTS + 1):
            try:
                self.store._execute(text, rows=payload, now=datetime.now(UTC).isoformat(timespec="seconds"))
                return
            except DatabaseError as e:
                # two jobs recording one alias at once: the unique key fails the loser (ArcadeDB does
                # not serialise MERGE); the replay finds the winner's node.
                if "onstraint" not in str(e) and "uplicate" not in str(e) or attempt == ALIAS_WRITE_ATTEMPTS:
                    raise
                time.sleep(random.uniform(0.01, 0.05) * attempt)

    # --- resolution ------------------------------------------------------------------------------
    def run(self, candidates: list[Candidate], *, source: str, job_id: str | None = None) -> ResolutionResult:
        """Resolve every candidate, write new nodes and aliases, return one Resolution per candidate.

        Raises:
            InvalidInputError: a candidate name has no letters or digits (field ``name``).
        """
        keys: dict[tuple[str, str | None], _Key] = {}
        order: list[tuple[str, str | None]] = []
        for candidate in candidates:
            norm = schema.normalize_name(candidate.name)
            if not norm:
                raise InvalidInputError("name", f"{candidate.name!r} has no letters or digits")
            key = (norm, _norm_type(candidate.type))
            order.append(key)
            keys.setdefault(key, _Key(norm=norm, type=key[1], name=candidate.name, raw_type=candidate.type))
        if not keys:
            return ResolutionResult(resolutions=[])
        decided = self._decide(list(keys.values()), source=source, job_id=job_id)
        resolutions: list[Resolution] = []
        first: set[tuple[str, str | None]] = set()
        for candidate, key in zip(candidates, order):
            resolution = decided[key]
            if key in first:
                resolution = resolution.model_copy(update={"method": "job", "created": False, "score": 1.0})
            first.add(key)
            resolutions.append(resolution.model_copy(update={"name": candidate.name, "type": candidate.type}))
        created = sum(r.created for r in resolutions)
        aliases = sum(r.method in ("variant", "embedding") for r in decided.values())
        return ResolutionResult(resolutions=resolutions, created=created, merged=len(resolutions) - created,
                                aliases_added=aliases)

    def _decide(self, keys: list[_Key], *, source: str, job_id: str | None) -> dict[tuple[str, str | None], Resolution]:
        # typed candidates first: an untyped mention of the same name then joins the typed node
        keys = sorted(keys, key=lambda k: (k.type is None, k.norm, k.type or ""))
        decided: dict[tuple[str, str | None], Resolution] = {}
        job_nodes: dict[str, list[tuple[str, str, str | None]]] = defaultdict(list)  # norm -> (id, name, type)

        # 2. exact: one indexed query for every normalised name
        by_norm = self._nodes_by_names([k.norm for k in keys])
        # 3. alias: one indexed query for every lookup key, then the nodes by id
        alias_nodes = self._alias_nodes([k.norm for k in keys])

        pending: list[_Key] = []
        for key in keys:
            found = self._job_match(key, job_nodes) or self._best(key, by_norm.get(key.norm, []), "exact") \
                or self._best(key, alias_nodes.get(key.norm, []), "alias")
            if found is None:
                pending.append(key)
                continue
            decided[(key.norm, key.type)] = found
            job_nodes[key.norm].append((found.node_id, key.name, key.type))

        alias_writes: list[tuple[str, str]] = []
        if pending:
            # 4. lexical variants, confirmed by embeddings; 5. the name index
            variant_found = self._variants(pending)
            still: list[_Key] = []
            for key in pending:
                found = self._job_match(key, job_nodes) or variant_found.get((key.norm, key.type)) \
                    or self._embedding_match(key)
                if found is None:
                    still.append(key)
                    continue
                decided[(key.norm, key.type)] = found
                job_nodes[key.norm].append((found.node_id, key.name, key.type))
                if found.method in ("variant", "embedding"):
                    alias_writes.append((found.node_id, key.name))
            pending = still

        writes: dict[str, NodeWrite] = {}
        # 6. new nodes: deterministic ids; an id held by another entity gets a suffix
        new_ids = {(k.norm, k.type): self.new_id(k.name, k.raw_type) for k in pending}
        held = self._nodes_by_ids(sorted(set(new_ids.values())))
        created_now: set[str] = set()
        for key in pending:
            # a name, variant or near name created earlier in this run
            found = self._job_match(key, job_nodes) or self._job_variant(key, job_nodes) \
                or self._embedding_match(key, allow=created_now)
            if found is not None:
                decided[(key.norm, key.type)] = found
                job_nodes[key.norm].append((found.node_id, key.name, key.type))
                if found.method in ("variant", "embedding"):
                    alias_writes.append((found.node_id, key.name))
                continue
            node_id = new_ids[(key.norm, key.type)]
            other = held.get(node_id)
            if other is not None and (other["norm"] != key.norm or not _compatible(key.type, other["type"])
                                      or (self.domain is not None and other["domain"] != self.domain)):
                node_id += ":kg"  # the plain id names another entity (a native id that looks like a slug)
            props: dict[str, Any] = {"type": key.raw_type}
            if self.domain is not None:
                props["domain"] = self.domain
            writes[node_id] = NodeWrite(label=self.label, id=node_id, name=key.name, props=props,
                                        sources=(source,), job_id=job_id)
            decided[(key.norm, key.type)] = Resolution(name=key.name, type=key.raw_type, node_id=node_id,
                                                       method="new", created=True)
            job_nodes[key.norm].append((node_id, key.name, key.type))
            created_now.add(node_id)
            add = getattr(self.name_index, "add", None)
            if add is not None:
                add(node_id, key.name, key.raw_type)
        for node_id, alias in alias_writes:  # surface forms merged by variant or embedding
            prior = writes.get(node_id) or NodeWrite(label=self.label, id=node_id, sources=(source,))
            writes[node_id] = dataclasses.replace(prior, aliases=prior.aliases + (alias,))
        if writes:
            self.store.upsert_nodes(list(writes.values()))
        if alias_writes:
            self._write_alias_rows(alias_writes)
        return decided

    # --- steps -------------------------------------------------------------------------------------
    def _job_match(self, key: _Key, job_nodes: dict[str, list[tuple[str, str, str | None]]]) -> Resolution | None:
        for node_id, _, node_type in job_nodes.get(key.norm, []):
            if _compatible(key.type, node_type):
                return Resolution(name=key.name, type=key.raw_type, node_id=node_id, method="job")
        return None

    def _best(self, key: _Key, nodes: list[dict[str, Any]], method: Method, score: float = 1.0) -> Resolution | None:
        """The node of the candidate's type, else an untyped one (or any, for an untyped candidate)."""
        compatible = [n for n in nodes if _compatible(key.type, n["type"])]
        if not compatible:
            return None
        compatible.sort(key=lambda n: (_norm_type(n["type"]) != key.type, n["id"]))
        return Resolution(name=key.name, type=key.raw_type, node_id=compatible[0]["id"], method=method, score=score)

    def _nodes_by_names(self, norms: list[str]) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = defaultdict(list)
        unique = sorted(set(norms))
        for start in range(0, len(unique), 500):
            rows = self.store._query(cypher.render("resolution_nodes_by_names", label=self.label),
                                     norms=unique[start:start + 500], domain=self.domain)
            for row in rows:
                out[row["norm"]].append(row)
        return out

    def _nodes_by_ids(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for start in range(0, len(ids), 500):
            for row in self.store._query(cypher.render("resolution_nodes_by_ids", label=self.label),
                                         ids=ids[start:start + 500]):
                out[row["id"]] = row
        return out

    def _alias_nodes(self, norms: list[str]) -> dict[str, list[dict[str, Any]]]:
        _ensure_alias_schema(self.store)
        lookups = {self._lookup(n): n for n in set(norms)}
        hits: list[tuple[str, str]] = []
        keys = sorted(lookups)
        for start in range(0, len(keys), 500):
            rows = self.store._query(cypher.render("resolution_aliases"), lookups=keys[start:start + 500])
            hits += [(lookups[r["lookup"]], r["node_id"]) for r in rows]
        nodes = self._nodes_by_ids(sorted({node_id for _, node_id in hits}))
        out: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for norm, node_id in hits:
            node = nodes.get(node_id)
            if node is not None and (self.domain is None or node["domain"] == self.domain):
                out[norm].append(node)
        return out

    def _variants(self, keys: list[_Key]) -> dict[tuple[str, str | None], Resolution]:
        variants = {(k.norm, k.type): name_variants(k.norm) for k in keys}
        wanted = sorted({v for vs in variants.values() for v in vs})
        by_norm = self._nodes_by_names(wanted)
        for norm, nodes in self._alias_nodes(wanted).items():  # a variant of a recorded alias
            by_norm[norm] = by_norm.get(norm, []) + [dict(n, norm=norm) for n in nodes]
        pairs: list[tuple[_Key, dict[str, Any]]] = []
        for key in keys:
            for variant in sorted(variants[(key.norm, key.type)]):
                pairs += [(key, node) for node in by_norm.get(variant, []) if _compatible(key.type, node["type"])]
        if not pairs:
            return {}
        encoder = self.encoder or _default_encoder()
        texts = sorted({k.name for k, _ in pairs} | {n["name"] for _, n in pairs if n["name"]})
        vectors = dict(zip(texts, encoder.encode(texts)))
        best: dict[tuple[str, str | None], Resolution] = {}
        for key, node in pairs:
            if not node["name"]:
                continue
            score = float(vectors[key.name] @ vectors[node["name"]])
            current = best.get((key.norm, key.type))
            if score >= self._variant_bar(key.norm, node["norm"], node["name"]) and (current is None or score > current.score):
                best[(key.norm, key.type)] = Resolution(name=key.name, type=key.raw_type, node_id=node["id"],
                                                        method="variant", score=score)
        return best

    def _job_variant(self, key: _Key, job_nodes: dict[str, list[tuple[str, str, str | None]]]) -> Resolution | None:
        """A lexical variant of the name created or resolved earlier in this run, embedding-confirmed."""
        found = [(node_id, name, v) for v in sorted(name_variants(key.norm))
                 for node_id, name, node_type in job_nodes.get(v, []) if _compatible(key.type, node_type)]
        if not found:
            return None
        encoder = self.encoder or _default_encoder()
        vectors = encoder.encode([key.name] + [name for _, name, _ in found])
        scores = vectors[1:] @ vectors[0]
        best = int(np.argmax(scores))
        if scores[best] < self._variant_bar(key.norm, found[best][2], found[best][1]):
            return None
        return Resolution(name=key.name, type=key.raw_type, node_id=found[best][0], method="variant",
                          score=float(scores[best]))

    def _embedding_match(self, key: _Key, allow: set[str] | None = None) -> Resolution | None:
        """Step 5; ``allow`` restricts hits to those ids (nodes created in this run, not yet in the graph)."""
        if self.name_index is None:
            return None
        hits = [(i, s, t) for i, s, t in self.name_index.nearest(key.name) if s >= self.threshold and _compatible(key.type, t)]
        if allow is not None:
            hits = [h for h in hits if h[0] in allow]
        elif hits and self.domain is not None:  # the index may be wider than the domain: check before merging
            nodes = self._nodes_by_ids([i for i, _, _ in hits])
            hits = [h for h in hits if h[0] in nodes and nodes[h[0]]["domain"] == self.domain]
        if not hits:
            return None
        node_id, score, _ = hits[0]
        return Resolution(name=key.name, type=key.raw_type, node_id=node_id, method="embedding", score=score)


__all__ = ["Candidate", "EntityIndexNeighbours", "EntityResolver", "NameIndex", "NeighbourIndex", "Resolution", "ResolutionResult",
           "name_aliases"]
