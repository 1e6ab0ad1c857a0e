"""Complementary categories (C2C): which categories of a site are bought together with a category.

A *complement* is bought with the source category (toner with a laser printer), not instead of it
(another printer). Everything here works on one recommendation domain (an Amazon dataset) and its
categories, keyed as the importer keys them (:mod:`kg_builder.ingest`): ``{dataset}:category:{id}``
for categories known only by an id (Office's ``i_category``), ``category:{path}`` for named ones
(Scientific). An item counts for its most specific category.

**Category representation and labels.** A category is represented by its items' titles
(:class:`CategoryCatalogue`). Office's ids have no names, so :func:`label_categories` derives a
readable label from the titles: method ``title-terms@v1`` scores every title term ``t`` (words of
3+ letters, unigrams and bigrams, English stop words removed, counted once per title) by
``p_c(t) * log(p_c(t) / p_rest(t))`` (``p_c``: share of the category's titles holding ``t``,
``p_rest``: share of the other categories' titles, both add-one smoothed), i.e. a term frequent in
the category and rare elsewhere; the label is the best 3 terms (on a tie the bigram first; a
term overlapping an already chosen one as a word subset is skipped), joined by ", ". A named
category keeps its name (``label_source`` ``"name"``). :func:`write_category_labels` stores
derived labels on existing Category nodes (``name`` = the label; ``label_source``,
``label_method``, ``label_terms``, ``label_items`` beside it); the upsert's ``SET n += props`` and
``coalesce(row.name, n.name)`` overwrite only these fields (the import's ``domain``/``native_id``
stay; sources become a union), and named categories are never relabelled.

**Methods** (each returns a :class:`C2CProposal` of ranked :class:`C2CResult`, never the source
itself; all offline methods score every ordered pair of the domain's categories in a matrix):

* ``co-purchase`` (:class:`CoPurchase`, THE baseline): users who interacted with items of both
  categories in the ``train`` interactions. Normalisations: ``count``, ``cosine``
  (``n_ab / sqrt(n_a n_b)``), ``lift`` (``n_ab N / (n_a n_b)``), ``jaccard``. For one source the
  ranking by ``count`` equals the ranking by conditional probability ``P(b | a)``, by ``cosine`` it
  divides by ``sqrt(n_b)``, by ``lift`` by ``n_b``. Which one is used is chosen on the *training*
  links by :func:`kg_builder.evaluation.c2c.evaluate_c2c` (see there for the measured choice).
* ``text-similarity`` (:class:`TextSimilarity`): cosine of MiniLM category vectors (the mean of
  its items' title embeddings plus the label's embedding, renormalised). Similar text tends to
  mean a *substitute*, so this is expected to be weak on its own; it is kept as a feature.
* ``corpus`` (:class:`CorpusCooccurrence`): the Amazon 2018 product-text corpus. Each document is
  assigned to the category whose TF-IDF title centroid is nearest to its title; a document
  *mentions* category ``b`` when its title or description contains one of ``b``'s top label terms
  (only terms that are not also a top term of the document's own category). Score: lift of ``b``
  mentions among ``a``'s documents over all documents.
* ``learned`` (:class:`LearnedCombination`): logistic regression (standardised features, sklearn
  defaults, C=1) over the pair features of the three methods above plus the categories'
  popularity, trained on labels from the training items' complement links only.
* ``llm`` (:class:`LLMComplements`): prompt ``complementary_categories@v1`` with a structured answer
  (:class:`ComplementaryCategoryNames`: a list of ``{name, reason}``). Names are mapped to existing
  categories of the domain by :class:`CategoryMapper` (vector recall over labels and items' titles,
  threshold); a name that maps to nothing goes to ``unmapped`` and is never written.

**Confidence.** Offline methods give the raw score rescaled to [0, 1] within the method's matrix
(``calibrated=False``) unless :meth:`MatrixMethod.calibrate` fitted a Platt scaling on training
labels, after which confidence is P(pair is a complement pair) (``calibrated=True``). The learned
combination's confidence is its logistic-regression probability (calibrated on training labels).
The LLM method's confidence is the mapping cosine similarity, clipped to [0, 1] (not calibrated).

:func:`write_complementary` writes ``COMPLEMENTARY_TO`` edges only between categories that exist in
the graph (read back first); anything else is skipped and reported.
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from kg_builder.datasets.records import Dataset, DocumentRecord, ItemRecord
from kg_builder.errors import InvalidInputError
from kg_builder.graphdb import GraphStore, NodeWrite, TripleWrite
from kg_builder.graphdb.schema import CATEGORY
from kg_builder.ingest import DatasetKeys

if TYPE_CHECKING:  # pragma: no cover
    from kg_builder.llm.base import LLM
    from kg_builder.models.encoder import TextEncoder

log = logging.getLogger(__name__)

LABEL_METHOD = "title-terms@v1"
LABEL_TERMS = 3
RELATION = "complementary to"  # the product pool's name (kg_builder/products/domain.py); type COMPLEMENTARY_TO
REL_TYPE = "COMPLEMENTARY_TO"
PROMPT = "complementary_categories@v1"
#: Mapping threshold of :class:`CategoryMapper` (cosine of MiniLM vectors). A judgement, not a tuned
#: value: MiniLM cosines of an unrelated product phrase and a category's titles sit around 0.1-0.3,
#: of a phrase naming the category's products around 0.5-0.8.
MAP_THRESHOLD = 0.45

_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")


# --------------------------------------------------------------------------------------------
# Categories of a domain
# --------------------------------------------------------------------------------------------
def item_category_key(dataset: Dataset, item: ItemRecord) -> str | None:
    """The graph key of the item's most specific category, or ``None`` when it has none."""
    keys = DatasetKeys(dataset.name)
    if item.category_ids:
        return keys.category_id(item.category_ids[-1])
    if item.categories:
        if not dataset.category_paths:  # independent labels (genres): no single most specific one
            return None
        return keys.category_path(item.categories)[-1]
    return None


@dataclass(frozen=True, slots=True)
class CategoryLabel:
    """A readable label for one category, with its provenance.

    ``label_source`` is ``"name"`` (the dataset names the category) or ``"title-terms"`` (derived
    by ``method`` from its items' titles); ``terms`` are the chosen title terms, ``items`` the
    number of titles it was derived from.
    """

    key: str
    label: str
    label_source: str
    method: str | None = None
    terms: tuple[str, ...] = ()
    items: int = 0


@dataclass
class CategoryCatalogue:
    """The categories of one domain with their items, titles and labels (keys sorted)."""

    domain: str
    keys: list[str]
    items: dict[str, list[str]]  # category key -> native item ids
    titles: dict[str, list[str]]  # category key -> item titles (items without a title left out)
    item_category: dict[str, str]  # native item id -> category key
    labels: dict[str, CategoryLabel] = field(default_factory=dict)

    def index(self) -> dict[str, int]:
        return {key: i for i, key in enumerate(self.keys)}

    def label(self, key: str) -> str:
        found = self.labels.get(key)
        return found.label if found else key

    def text(self, key: str, *, titles: int = 5) -> str:
        """``label: title; title; ...`` (the first ``titles`` titles): what prompts and encoders read."""
        return f"{self.label(key)}: " + "; ".join(self.titles.get(key, [])[:titles])


def category_catalogue(dataset: Dataset) -> CategoryCatalogue:
    """Group a recommendation dataset's items by their most specific category and label each category.

    Raises:
        InvalidInputError: the dataset has no categorised items.
    """
    items: dict[str, list[str]] = defaultdict(list)
    titles: dict[str, list[str]] = defaultdict(list)
    names: dict[str, str] = {}
    item_category: dict[str, str] = {}
    for item in dataset.items:
        key = item_category_key(dataset, item)
        if key is None:
            continue
        items[key].append(item.id)
        item_category[item.id] = key
        if item.title:
            titles[key].append(item.title)
        if item.categories and not item.category_ids:
            names[key] = item.categories[-1]
    if not items:
        raise InvalidInputError("dataset", f"{dataset.name} has no items with a category")
    keys = sorted(items)
    catalogue = CategoryCatalogue(domain=dataset.name, keys=keys, items=dict(items),
                                  titles={k: titles.get(k, []) for k in keys}, item_category=item_category)
    catalogue.labels = _labels(catalogue, names)
    return catalogue


def _title_terms(title: str) -> set[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    words = [w for w in _WORD.findall(title.lower()) if len(w) > 2]
    unigrams = {w for w in words if w not in ENGLISH_STOP_WORDS}
    bigrams = {f"{a} {b}" for a, b in zip(words, words[1:]) if a not in ENGLISH_STOP_WORDS
               and b not in ENGLISH_STOP_WORDS}
    return unigrams | bigrams


def characteristic_terms(titles_by_category: Mapping[str, Sequence[str]], *, top: int = LABEL_TERMS,
                         min_share: float = 0.05) -> dict[str, list[tuple[str, float]]]:
    """The ``top`` most characteristic title terms of each category (``title-terms@v1``, see the module).

    A term must occur in at least ``min_share`` of the category's titles. Returns key -> [(term, score)].
    """
    doc_terms = {k: [_title_terms(t) for t in ts] for k, ts in titles_by_category.items()}
    per_cat = {k: Counter(term for terms in docs for term in terms) for k, docs in doc_terms.items()}
    total = Counter()
    for counts in per_cat.values():
        total.update(counts)
    n_all = sum(len(docs) for docs in doc_terms.values())
    out: dict[str, list[tuple[str, float]]] = {}
    for key, counts in per_cat.items():
        n_c = len(doc_terms[key])
        n_rest = n_all - n_c
        scored = []
        for term, count in counts.items():
            if n_c == 0 or count / n_c < min_share:
                continue
            p_c = (count + 1) / (n_c + 2)
            p_rest = (total[term] - count + 1) / (n_rest + 2)
            if p_c > p_rest:
                scored.append((p_c * math.log(p_c / p_rest), term))
        scored.sort(key=lambda pair: (-pair[0], -pair[1].count(" "), pair[1]))  # ties: the bigram
        chosen: list[tuple[str, float]] = []
        for score, term in scored:
            words = set(term.split())
            if any(term in c or words <= set(c.split()) or set(c.split()) <= words for c, _ in chosen):
                continue
            chosen.append((term, round(score, 4)))
            if len(chosen) == top:
                break
        out[key] = chosen
    return out


def _labels(catalogue: CategoryCatalogue, names: Mapping[str, str]) -> dict[str, CategoryLabel]:
    terms = characteristic_terms(catalogue.titles)
    labels = {}
    for key in catalogue.keys:
        chosen = tuple(t for t, _ in terms.get(key, []))
        if key in names:
            labels[key] = CategoryLabel(key=key, label=names[key], label_source="name", terms=chosen,
                                        items=len(catalogue.titles[key]))
        elif chosen:
            labels[key] = CategoryLabel(key=key, label=", ".join(chosen), label_source="title-terms",
                                        method=LABEL_METHOD, terms=chosen, items=len(catalogue.titles[key]))
    return labels


def label_categories(dataset: Dataset) -> dict[str, CategoryLabel]:
    """A readable label for every category of ``dataset`` (derived from titles where it has no name).

    Example:
        >>> labels = label_categories(load_dataset("amazon14_office", data_dir))
        >>> labels["amazon14_office:category:6"].label
        'toner, laser printer, cartridge'
    """
    return category_catalogue(dataset).labels


def write_category_labels(store: GraphStore, labels: Iterable[CategoryLabel], *, source: str | None = None,
                          job_id: str | None = None) -> int:
    """Store derived labels on their Category nodes (``name`` = label, provenance beside it).

    Named categories (``label_source == "name"``) are left alone. Only existing nodes are labelled:
    a key with no Category node is skipped with a log line (the upsert would otherwise create it).
    Returns the number of nodes written.
    """
    rows = []
    for label in labels:
        if label.label_source == "name":
            continue
        if store.get_node(label.key, CATEGORY) is None:
            log.warning("category %s is not in the graph; its label %r is not written", label.key, label.label)
            continue
        rows.append(NodeWrite(
            label=CATEGORY, id=label.key, name=label.label, job_id=job_id,
            props={"label_source": label.label_source, "label_method": label.method or "",
                   "label_terms": list(label.terms), "label_items": label.items},
            sources=(source or f"c2c:{label.method}",)))
    return store.upsert_nodes(rows) if rows else 0


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------
class C2CResult(BaseModel):
    """One proposed complementary category of a source category."""

    model_config = ConfigDict(frozen=True)

    target: str = Field(description="The target category's graph key.")
    name: str = Field(description="Its label (or the generated name that was mapped to it).")
    score: float = Field(description="The method's raw score (higher is better; only comparable within a method).")
    confidence: float = Field(ge=0.0, le=1.0, description="See `calibrated`.")
    calibrated: bool = Field(False, description="True: confidence is a probability fitted on training labels; "
                                                "False: a [0, 1] rescaling of the score.")
    sources: tuple[str, ...] = Field(description="The method names that proposed it.")
    evidence: tuple[str, ...] = ()


class UnmappedName(BaseModel):
    """A generated category name that matched no existing category (reported, never written)."""

    name: str
    reason: str = ""
    best: str | None = Field(None, description="The closest category key.")
    similarity: float = 0.0


class C2CProposal(BaseModel):
    """The ranked complements of one source category by one method."""

    source: str
    method: str
    results: list[C2CResult]
    unmapped: list[UnmappedName] = Field(default_factory=list)

    @property
    def targets(self) -> list[str]:
        return [r.target for r in self.results]


# --------------------------------------------------------------------------------------------
# Offline methods: a score matrix over ordered category pairs
# --------------------------------------------------------------------------------------------
class MatrixMethod:
    """A method that scores every ordered pair of a catalogue's categories (``scores[a, b]``).

    Subclasses fill :attr:`scores` (NaN or -inf where a pair has no score) and may override
    :meth:`evidence`.
    """

    name = "matrix"

    def __init__(self, catalogue: CategoryCatalogue):
        self.catalogue = catalogue
        self.scores = np.zeros((len(catalogue.keys), len(catalogue.keys)))
        self._platt: tuple[float, float] | None = None

    def evidence(self, a: int, b: int) -> tuple[str, ...]:
        return ()

    def calibrate(self, positives: Iterable[tuple[str, str]]) -> MatrixMethod:
        """Fit Platt scaling of the scores on training pair labels (pairs in ``positives`` are 1)."""
        from sklearn.linear_model import LogisticRegression

        x, y = pair_labels(self.catalogue, positives)
        values = np.array([self.scores[a, b] for a, b in x]).reshape(-1, 1)
        values = np.nan_to_num(values, nan=0.0, neginf=0.0)
        if len(set(y)) < 2:
            raise InvalidInputError("positives", "need both complement and other pairs to calibrate")
        model = LogisticRegression().fit(values, y)
        self._platt = (float(model.coef_[0, 0]), float(model.intercept_[0]))
        return self

    def confidence(self, value: float) -> float:
        if self._platt is not None:
            slope, bias = self._platt
            return float(1.0 / (1.0 + math.exp(-(slope * value + bias))))
        finite = self.scores[np.isfinite(self.scores)]
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        return float(min(1.0, max(0.0, (value - low) / (high - low)))) if high > low else 0.0

    def ranking(self, source: str) -> list[str]:
        """Every other category, best first (ties broken by key)."""
        index = self.catalogue.index()
        if source not in index:
            raise InvalidInputError("source", f"{source!r} is not a category of {self.catalogue.domain}")
        a = index[source]
        row = np.nan_to_num(self.scores[a], nan=-np.inf)
        order = sorted((b for b in range(len(row)) if b != a), key=lambda b: (-row[b], self.catalogue.keys[b]))
        return [self.catalogue.keys[b] for b in order]

    def run(self, source: str, *, k: int = 10) -> C2CProposal:
        """The top ``k`` complements of ``source`` (a category key of the catalogue)."""
        index = self.catalogue.index()
        a = index.get(source)
        results = []
        for key in self.ranking(source)[:k]:
            b = index[key]
            value = float(self.scores[a, b])
            if not math.isfinite(value):
                continue
            results.append(C2CResult(target=key, name=self.catalogue.label(key), score=value,
                                     confidence=self.confidence(value), calibrated=self._platt is not None,
                                     sources=(self.name,), evidence=self.evidence(a, b)))
        return C2CProposal(source=source, method=self.name, results=results)


def pair_labels(catalogue: CategoryCatalogue, positives: Iterable[tuple[str, str]]
                ) -> tuple[list[tuple[int, int]], list[int]]:
    """Every ordered pair (a, b), a != b, with label 1 when (key_a, key_b) is in ``positives``."""
    wanted = set(positives)
    n = len(catalogue.keys)
    pairs = [(a, b) for a in range(n) for b in range(n) if a != b]
    return pairs, [int((catalogue.keys[a], catalogue.keys[b]) in wanted) for a, b in pairs]


COPURCHASE_NORMS = ("count", "cosine", "lift", "jaccard")


class CoPurchase(MatrixMethod):
    """Co-purchase statistics: users who interacted with items of both categories (``train`` split only).

    Args:
        catalogue: the domain's categories.
        interactions: (user, native item id) pairs; pass the ``train`` split only.
        norm: one of :data:`COPURCHASE_NORMS` (see the module docstring).
    """

    name = "co-purchase"

    def __init__(self, catalogue: CategoryCatalogue, interactions: Iterable[tuple[str, str]], *,
                 norm: str = "lift"):
        super().__init__(catalogue)
        if norm not in COPURCHASE_NORMS:
            raise InvalidInputError("norm", f"must be one of {', '.join(COPURCHASE_NORMS)}, got {norm!r}")
        self.norm = norm
        index = catalogue.index()
        per_user: dict[str, set[int]] = defaultdict(set)
        for user, item in interactions:
            key = catalogue.item_category.get(item)
            if key is not None:
                per_user[user].add(index[key])
        n = len(catalogue.keys)
        users = np.zeros((len(per_user), n))
        for row, cats in enumerate(per_user.values()):
            users[row, list(cats)] = 1.0
        self.users = len(per_user)
        self.counts = users.T @ users  # [n, n]: users with both; diagonal = users with the category
        self.support = np.diag(self.counts).copy()
        self.scores = self.normalised(norm)

    def normalised(self, norm: str) -> np.ndarray:
        both, n_a, n_b = self.counts, self.support[:, None], self.support[None, :]
        with np.errstate(divide="ignore", invalid="ignore"):
            if norm == "count":
                out = both.copy()
            elif norm == "cosine":
                out = both / np.sqrt(n_a * n_b)
            elif norm == "lift":
                out = both * self.users / (n_a * n_b)
            else:
                out = both / (n_a + n_b - both)
        return np.nan_to_num(out, nan=0.0, posinf=0.0)

    def with_norm(self, norm: str) -> CoPurchase:
        """The same counts under another normalisation (no recount)."""
        other = object.__new__(CoPurchase)
        other.__dict__.update(self.__dict__)
        other.norm, other.scores, other._platt = norm, self.normalised(norm), None
        return other

    def evidence(self, a: int, b: int) -> tuple[str, ...]:
        both = int(self.counts[a, b])
        return (f"{both} users interacted with both (of {int(self.support[a])} and {int(self.support[b])}; "
                f"{self.norm} {self.normalised(self.norm)[a, b]:.3f})",)


def category_vectors(catalogue: CategoryCatalogue, encoder: TextEncoder, *, batch_size: int = 128
                     ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """MiniLM vectors: (category vectors [n, d], label vectors [n, d], key -> title vectors [m, d]).

    A category vector is the mean of its title vectors plus its label vector, L2-normalised.
    """
    titles = [(key, t) for key in catalogue.keys for t in catalogue.titles[key]]
    title_vecs = encoder.encode([t for _, t in titles], batch_size=batch_size) if titles else np.zeros((0, 384))
    labels = encoder.encode([catalogue.label(k) for k in catalogue.keys], batch_size=batch_size)
    per_key: dict[str, list[int]] = defaultdict(list)
    for row, (key, _) in enumerate(titles):
        per_key[key].append(row)
    by_key = {k: title_vecs[per_key[k]] for k in catalogue.keys}
    vectors = np.stack([
        (by_key[k].mean(axis=0) if len(by_key[k]) else 0) + labels[i] for i, k in enumerate(catalogue.keys)])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors.astype(np.float32), labels, by_key


class TextSimilarity(MatrixMethod):
    """Cosine similarity of MiniLM category vectors (label + items' titles; :func:`category_vectors`)."""

    name = "text-similarity"

    def __init__(self, catalogue: CategoryCatalogue, vectors: np.ndarray):
        super().__init__(catalogue)
        self.scores = vectors @ vectors.T

    def evidence(self, a: int, b: int) -> tuple[str, ...]:
        return (f"category texts cosine {self.scores[a, b]:.3f}",)


class CorpusCooccurrence(MatrixMethod):
    """Mentions of one category's terms in the corpus documents of another (see the module docstring).

    Args:
        catalogue: the domain's categories (labels give each category's terms).
        documents: corpus documents (title and text).
        terms: title terms per category to match (default: the label's terms).
    """

    name = "corpus"

    def __init__(self, catalogue: CategoryCatalogue, documents: Sequence[DocumentRecord], *,
                 terms: int = LABEL_TERMS, min_docs: int = 3):
        from sklearn.feature_extraction.text import TfidfVectorizer

        super().__init__(catalogue)
        n = len(catalogue.keys)
        vectoriser = TfidfVectorizer(stop_words="english", token_pattern=r"[a-zA-Z]{2,}", sublinear_tf=True)
        vectoriser.fit([t for k in catalogue.keys for t in catalogue.titles[k]])
        centroids = np.asarray(np.vstack([
            vectoriser.transform([" ".join(catalogue.titles[k]) or " "]).toarray() for k in catalogue.keys]))
        centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
        docs = [d for d in documents if d.title]
        doc_vecs = vectoriser.transform([d.title for d in docs]).toarray()
        sims = doc_vecs @ centroids.T
        owner = sims.argmax(axis=1)
        keep = sims.max(axis=1) > 0
        patterns = []
        for key in catalogue.keys:
            label = catalogue.labels.get(key)
            words = label.terms[:terms] if label else ()
            patterns.append([re.compile(rf"\b{re.escape(w)}s?\b") for w in words])
        own_terms = [set(catalogue.labels[k].terms) if k in catalogue.labels else set() for k in catalogue.keys]
        mentions = np.zeros((n, n))  # [owner category, mentioned category] document counts
        docs_of = np.zeros(n)
        mentioned_any = np.zeros(n)
        self.documents = 0
        for row, doc in enumerate(docs):
            if not keep[row]:
                continue
            a = int(owner[row])
            text = f"{doc.title} {doc.text}".lower()
            docs_of[a] += 1
            self.documents += 1
            for b, pats in enumerate(patterns):
                if b == a:
                    continue
                if any(p.search(text) for p, term in zip(pats, catalogue.labels[catalogue.keys[b]].terms)
                       if term not in own_terms[a]):
                    mentions[a, b] += 1
                    mentioned_any[b] += 1
        self.mentions, self.docs_of = mentions, docs_of
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = mentions / docs_of[:, None]
            base = mentioned_any / max(self.documents, 1)
            lift = rate / base[None, :]
        lift = np.nan_to_num(lift, nan=0.0, posinf=0.0)
        lift[docs_of < min_docs, :] = 0.0  # too few documents to say anything
        self.scores = lift

    def evidence(self, a: int, b: int) -> tuple[str, ...]:
        terms = ", ".join(self.catalogue.labels[self.catalogue.keys[b]].terms)
        return (f"{int(self.mentions[a, b])} of {int(self.docs_of[a])} corpus documents of this category "
                f"mention {terms!r} (lift {self.scores[a, b]:.2f})",)


class LearnedCombination(MatrixMethod):
    """Logistic regression over pair features of other methods, trained on training pair labels.

    Features per ordered pair (a, b): every method's score (log1p for co-purchase counts and lifts,
    which are heavy-tailed), the score's rank of b among a's candidates (1/rank), and the log item
    counts of a and b. Standardised, then ``LogisticRegression(C=1.0, max_iter=1000)``.

    Args:
        methods: fitted methods over the same catalogue.
        positives: (source key, target key) pairs labelled complementary (training links only).
    """

    name = "learned"

    def __init__(self, catalogue: CategoryCatalogue, methods: Sequence[MatrixMethod],
                 positives: Iterable[tuple[str, str]]):
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        super().__init__(catalogue)
        self.methods = list(methods)
        features = self.features()
        pairs, labels = pair_labels(catalogue, positives)
        if len(set(labels)) < 2:
            raise InvalidInputError("positives", "need both complement and other pairs to train on")
        x = np.array([features[a, b] for a, b in pairs])
        self.model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000)).fit(x, labels)
        n = len(catalogue.keys)
        flat = self.model.predict_proba(features.reshape(n * n, -1))[:, 1]
        self.scores = flat.reshape(n, n)
        np.fill_diagonal(self.scores, -np.inf)
        self.trained_pairs, self.trained_positives = len(labels), int(sum(labels))

    def feature_names(self) -> list[str]:
        names = []
        for m in self.methods:
            names += [m.name, f"{m.name}:1/rank"]
        return [*names, "log items(source)", "log items(target)"]

    def features(self) -> np.ndarray:
        n = len(self.catalogue.keys)
        columns = []
        for method in self.methods:
            s = np.nan_to_num(method.scores.astype(float), nan=0.0, neginf=0.0, posinf=0.0)
            if isinstance(method, (CoPurchase, CorpusCooccurrence)):
                s = np.log1p(np.maximum(s, 0.0))
            masked = s.copy()
            np.fill_diagonal(masked, -np.inf)
            ranks = (-masked).argsort(axis=1).argsort(axis=1) + 1
            columns += [s, 1.0 / ranks]
        sizes = np.log1p(np.array([len(self.catalogue.items[k]) for k in self.catalogue.keys], dtype=float))
        columns += [np.repeat(sizes[:, None], n, axis=1), np.repeat(sizes[None, :], n, axis=0)]
        return np.stack(columns, axis=-1)

    def confidence(self, value: float) -> float:
        return float(value)

    def run(self, source: str, *, k: int = 10) -> C2CProposal:
        proposal = super().run(source, k=k)
        index = self.catalogue.index()
        a = index[source]
        results = []
        for r in proposal.results:
            b = index[r.target]
            evidence = tuple(e for m in self.methods for e in m.evidence(a, b))
            results.append(r.model_copy(update={"calibrated": True, "evidence": evidence,
                                                "sources": (self.name, *(m.name for m in self.methods))}))
        return proposal.model_copy(update={"results": results})


# --------------------------------------------------------------------------------------------
# The LLM method and name mapping
# --------------------------------------------------------------------------------------------
from kg_builder.llm.schemas import ComplementaryCategoryName, ComplementaryCategoryNames  # noqa: E402


@dataclass(frozen=True, slots=True)
class NameMatch:
    key: str | None
    similarity: float
    best: str


class CategoryMapper:
    """Maps a free category name to an existing category of the catalogue by vector recall.

    Similarity of a name to a category = max(cosine to the category's label vector, mean cosine to
    its 3 most similar item titles). The best category is taken when its similarity reaches
    ``threshold`` (default :data:`MAP_THRESHOLD`); otherwise the name maps to nothing.
    """

    def __init__(self, catalogue: CategoryCatalogue, encoder: TextEncoder, *, threshold: float = MAP_THRESHOLD,
                 vectors: tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]] | None = None):
        self.catalogue, self.encoder, self.threshold = catalogue, encoder, threshold
        _, self.label_vectors, self.title_vectors = vectors or category_vectors(catalogue, encoder)

    def similarities(self, names: Sequence[str]) -> np.ndarray:
        """[len(names), n categories] similarities."""
        if not names:
            return np.zeros((0, len(self.catalogue.keys)))
        q = self.encoder.encode(list(names))
        out = np.zeros((len(names), len(self.catalogue.keys)))
        for j, key in enumerate(self.catalogue.keys):
            label = q @ self.label_vectors[j]
            titles = self.title_vectors[key]
            if len(titles):
                top = np.sort(q @ titles.T, axis=1)[:, -3:].mean(axis=1)
                out[:, j] = np.maximum(label, top)
            else:
                out[:, j] = label
        return out

    def map(self, names: Sequence[str]) -> list[NameMatch]:
        sims = self.similarities(names)
        out = []
        for row in sims:
            j = int(row.argmax())
            value = float(row[j])
            out.append(NameMatch(key=self.catalogue.keys[j] if value >= self.threshold else None,
                                similarity=value, best=self.catalogue.keys[j]))
        return out


class LLMComplements:
    """The LLM proposes complementary category *names*; :class:`CategoryMapper` maps them to keys.

    A name mapping to nothing, to the source itself, or to a category already proposed goes to
    ``unmapped`` (with the reason) and is never written. Confidence = the mapping similarity.
    """

    name = "llm"

    def __init__(self, llm: LLM, catalogue: CategoryCatalogue, mapper: CategoryMapper, *,
                 max_categories: int = 10, site: str | None = None):
        from kg_builder.llm.prompts import get_prompt

        self.llm, self.catalogue, self.mapper = llm, catalogue, mapper
        self.max_categories = max_categories
        self.site = site or catalogue.domain
        self.prompt = get_prompt(PROMPT)

    def messages(self, source: str) -> list:
        return self.prompt.render(site=self.site, category=self.catalogue.label(source),
                                  examples=self.catalogue.titles.get(source, [])[:8],
                                  max_categories=self.max_categories)

    def run(self, source: str, *, k: int = 10) -> C2CProposal:
        """Ask the LLM once and map its names.

        Raises:
            InvalidInputError: ``source`` is not a category of the catalogue.
            LLMError: the call failed (see :class:`~kg_builder.llm.base.LLM`).
        """
        if source not in self.catalogue.index():
            raise InvalidInputError("source", f"{source!r} is not a category of {self.catalogue.domain}")
        response = self.llm.invoke(self.messages(source), schema=ComplementaryCategoryNames)
        answer = response.parsed
        proposed = [c for c in (answer.categories if answer else []) if c.name]
        if answer is None:
            log.warning("LLM answer for %s was not usable: %s", source, response.error)
        mapped = self.mapper.map([c.name for c in proposed])
        results: list[C2CResult] = []
        unmapped: list[UnmappedName] = []
        seen = {source}
        for generated, m in zip(proposed, mapped):
            if m.key is None:
                unmapped.append(UnmappedName(name=generated.name, reason="no category above the threshold "
                                             f"{self.mapper.threshold}", best=m.best, similarity=round(m.similarity, 4)))
            elif m.key in seen:
                why = "maps to the source category" if m.key == source else "maps to a category already proposed"
                unmapped.append(UnmappedName(name=generated.name, reason=why, best=m.key,
                                             similarity=round(m.similarity, 4)))
            else:
                seen.add(m.key)
                results.append(C2CResult(
                    target=m.key, name=generated.name, score=m.similarity,
                    confidence=min(1.0, max(0.0, m.similarity)), calibrated=False, sources=(self.name,),
                    evidence=(f"LLM ({self.prompt.id}): {generated.reason}",
                              f"'{generated.name}' mapped to '{self.catalogue.label(m.key)}' "
                              f"(cosine {m.similarity:.3f})")))
        if unmapped:
            log.info("C2C %s: %d generated name(s) mapped to no new category: %s", source, len(unmapped),
                     ", ".join(repr(u.name) for u in unmapped))
        return C2CProposal(source=source, method=self.name, results=results[:k], unmapped=unmapped)


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------
def write_complementary(store: GraphStore, source_key: str, results: Iterable[C2CResult], *, job_id: str | None,
                        skipped: list[str] | None = None) -> int:
    """Write ``(source)-[:COMPLEMENTARY_TO]->(target)`` for each result whose target exists.

    Targets are read back first: a target that is not a Category node, is the source itself, or
    belongs to another domain (when both nodes carry a ``domain``) is skipped with a log line and
    appended to ``skipped`` when given. Returns the number of edges written.

    Raises:
        InvalidInputError: the source category is not in the graph.
    """
    source = store.get_node(source_key, CATEGORY)
    if source is None:
        raise InvalidInputError("source", f"category {source_key!r} is not in the graph")
    domain = source.properties.get("domain")
    rows: list[TripleWrite] = []
    for result in results:
        target = store.get_node(result.target, CATEGORY) if result.target != source_key else None
        other = target.properties.get("domain") if target else None
        if target is None or (domain and other and other != domain):
            why = "is the source" if result.target == source_key else (
                "is not in the graph" if target is None else f"belongs to {other}, not {domain}")
            log.warning("COMPLEMENTARY_TO %s -> %s not written: the target %s", source_key, result.target, why)
            if skipped is not None:
                skipped.append(result.target)
            continue
        rows.append(TripleWrite(head=source_key, relation=RELATION, tail=result.target, head_label=CATEGORY,
                                tail_label=CATEGORY, rel_type=REL_TYPE, confidence=result.confidence,
                                sources=tuple(result.sources), evidence=tuple(result.evidence), job_id=job_id))
    return store.upsert_triples(rows) if rows else 0


__all__ = [
    "COPURCHASE_NORMS",
    "C2CProposal",
    "C2CResult",
    "CategoryCatalogue",
    "CategoryLabel",
    "CategoryMapper",
    "ComplementaryCategoryName",
    "ComplementaryCategoryNames",
    "CoPurchase",
    "CorpusCooccurrence",
    "LLMComplements",
    "LearnedCombination",
    "MatrixMethod",
    "TextSimilarity",
    "UnmappedName",
    "category_catalogue",
    "category_vectors",
    "characteristic_terms",
    "item_category_key",
    "label_categories",
    "pair_labels",
    "write_category_labels",
    "write_complementary",
]
