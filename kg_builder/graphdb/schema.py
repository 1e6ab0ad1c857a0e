"""The graph model: node labels, relationship-type naming, keys and name normalisation.

Model (both runtime modes):

* Nodes carry exactly one label from :data:`NODE_LABELS` and a string ``id`` that is unique for the
  label (a constraint) and deterministic, so every write can ``MERGE`` on it. Common properties:
  ``name``, ``name_norm`` (see :func:`normalize_name`), ``description``, ``domain``, ``aliases``,
  ``sources`` (who wrote it: datasets, generators), ``job_id``, ``created_at``, ``updated_at``.
* Relationship types are derived from relation names by :func:`relation_type_for` (``isa`` ->
  ``ISA``, ``/film/film/genre`` -> ``FILM_FILM_GENRE``); the original name is kept on every edge as
  ``relation`` and in the relation pool (``:Relation`` nodes with ``id`` = the type, ``name`` and
  ``description``). Edge properties: ``confidence``, ``sources``, ``evidence``, ``job_id``,
  ``created_at``, ``updated_at``.
* Labels and types reach Cypher only after :func:`cypher.check_identifier`.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from functools import lru_cache

from cypher import InvalidIdentifierError, check_identifier
from kg_builder.errors import InvalidInputError

ENTITY = "Entity"
ITEM = "Item"
CATEGORY = "Category"
BRAND = "Brand"
USER = "User"
RELATION = "Relation"
NODE_LABELS: tuple[str, ...] = (ENTITY, ITEM, CATEGORY, BRAND, USER, RELATION)

# Structural relationship types written by dataset import (not part of the KG relation pool).
IN_CATEGORY = "IN_CATEGORY"
SUBCATEGORY_OF = "SUBCATEGORY_OF"
HAS_BRAND = "HAS_BRAND"
INTERACTED = "INTERACTED"
SAME_AS = "SAME_AS"

# (constraint or index name, label, property): created idempotently by GraphStore.setup_schema.
ID_CONSTRAINTS: tuple[tuple[str, str], ...] = tuple((f"{label.lower()}_id_unique", label) for label in NODE_LABELS)
PROPERTY_INDEXES: tuple[tuple[str, str, str], ...] = tuple(
    (f"{label.lower()}_{prop}", label, prop)
    for label in (ENTITY, ITEM, CATEGORY, BRAND)
    for prop in ("name_norm",)  # lookups by name go through name_norm; a `name` index would only slow writes
) + (
    # A job's snapshot reads one domain (kg_builder/pipeline/snapshot.py): its entities, the heads
    # its relation statistics start from, its embedding index; all through these indexes (a product
    # domain's nodes are items, brands and categories).
    ("entity_domain", ENTITY, "domain"),
    ("item_domain", ITEM, "domain"),
    ("brand_domain", BRAND, "domain"),
    ("category_domain", CATEGORY, "domain"),
)
# Labels a knowledge job's source or target may carry (users and relations are not knowledge nodes).
KNOWLEDGE_LABELS: tuple[str, ...] = (ENTITY, ITEM, BRAND, CATEGORY)
# Keys that are not prefixed by their dataset, because one node serves several datasets: an item by
# its ASIN, a named brand, a named category path (kg_builder/ingest.py).
GLOBAL_KEY_PREFIXES: tuple[str, ...] = ("amazon:", "brand:", "category:")

_NON_WORD = re.compile(r"[^0-9a-z]+")
_TYPE_RUN = re.compile(r"[^A-Za-z0-9]+")


def node_label(label: str) -> str:
    """Check that ``label`` is one of the graph's node labels."""
    if label not in NODE_LABELS:
        raise InvalidInputError("label", f"{label!r} is not a node label; use one of {', '.join(NODE_LABELS)}")
    return label


@lru_cache(maxsize=65536)
def rel_type(value: str) -> str:
    """Check a relationship type against the strict identifier pattern (no derivation)."""
    try:
        return check_identifier(value, "relationship type")
    except InvalidIdentifierError as e:
        raise InvalidInputError("type", str(e)) from e


@lru_cache(maxsize=65536)
def relation_type_for(name: str) -> str:
    """Derive the relationship type for a relation name: upper case, runs of other characters -> ``_``.

    >>> relation_type_for("/film/film/genre")
    'FILM_FILM_GENRE'
    >>> relation_type_for("_member_of_domain_usage")
    'MEMBER_OF_DOMAIN_USAGE'
    """
    if not isinstance(name, str) or not name.strip():
        raise InvalidInputError("relation", "must be a non-empty string")
    derived = _TYPE_RUN.sub("_", name).strip("_").upper()
    if not derived:
        raise InvalidInputError("relation", f"{name!r} has no letters or digits to form a relationship type")
    if not derived[0].isalpha():
        derived = "R_" + derived
    return rel_type(derived[:200])


def normalize_name(name: str) -> str:
    """Normalise a name for matching: Unicode NFKC, case-folded, punctuation and spacing removed.

    >>> normalize_name("  Acquired-Abnormality ")
    'acquired abnormality'
    """
    folded = unicodedata.normalize("NFKC", name).casefold()
    return _NON_WORD.sub(" ", folded).strip()


def slug(text: str) -> str:
    """A key fragment from free text (brands, categories): the normalised name with ``-`` joins."""
    return normalize_name(text).replace(" ", "-")


def key_part(text: str, max_length: int = 64) -> str:
    """A bounded, deterministic key fragment: :func:`slug`, or its head plus a hash when it is long.

    Category strings in the Amazon data sometimes swallow a whole product description; keys stay
    short and unique all the same.
    """
    value = slug(text)
    if len(value) <= max_length:
        return value
    digest = hashlib.sha1(value.encode("utf-8")).hexdigest()[:12]
    return f"{value[: max_length - 13].rstrip('-')}-{digest}"


# --- graph keys ------------------------------------------------------------------------------------
def graph_key(domain: str, native: str) -> str:
    """The graph key of a dataset's own id: ``{domain}:{native}``, except for ids that already are
    graph keys: a product domain's view names its items, brands and categories by their keys
    (``amazon:B000...``, ``brand:3m``, ``amazon14_office:category:5``; :func:`native_key`).

    >>> graph_key("umls", "virus"), graph_key("amazon14_office", "amazon:B0001")
    ('umls:virus', 'amazon:B0001')
    """
    if native.startswith(GLOBAL_KEY_PREFIXES) or native.startswith(f"{domain}:"):
        return native
    return f"{domain}:{native}"


def native_key(domain: str, key: str) -> str | None:
    """The id ``domain``'s trained models use for the node ``key`` (the inverse of
    :func:`graph_key`), or None when the key is not one of ``domain``'s (another dataset's node, a
    node a job created). A KG entity's id is its dataset's (``umls:virus`` -> ``virus``); an item,
    brand or category is named by its whole key, so that Office's category 5
    (``amazon14_office:category:5``) is never confused with a named category ``category:5``."""
    if key.startswith(GLOBAL_KEY_PREFIXES):
        return key
    prefix = f"{domain}:"
    if not key.startswith(prefix):
        return None
    return key if label_for_key(key) in (ITEM, BRAND, CATEGORY) else key[len(prefix):]


def label_for_key(key: str) -> str:
    """The node label a key belongs to, from the key's form (kg_builder/ingest.py's key table):
    ``amazon:<ASIN>`` and ``<dataset>:item:<id>`` are items, ``brand:...`` and
    ``<dataset>:brand:<id>`` brands, ``category:...`` and ``<dataset>:category:<id>`` categories
    (``<id>`` an integer, as every dataset's item, brand and category ids are; a node a job creates
    is ``<domain>:<name>[:<type>]`` and never has an integer there by accident of its name alone);
    everything else (``umls:virus``, nodes jobs create) is an entity.

    >>> label_for_key("amazon14_office:category:12"), label_for_key("umls:virus")
    ('Category', 'Entity')
    """
    if key.startswith("amazon:"):
        return ITEM
    if key.startswith("brand:"):
        return BRAND
    if key.startswith("category:"):
        return CATEGORY
    parts = key.split(":", 2)
    if len(parts) == 3 and parts[2].isdigit():  # dataset ids of items, brands, categories are integers
        return {"item": ITEM, "brand": BRAND, "category": CATEGORY, "user": USER}.get(parts[1], ENTITY)
    return ENTITY
