"""Where a trained utility reranker lives on disk, with the retriever and name matcher it was trained on.

``kgforge train utility --dataset D`` writes ``KGFORGE_HOME/models/utility-<D>/``:

* ``retriever/``: the :class:`~.hybrid.HybridRetriever` (corpus, BM25, dense embeddings; its own layout),
* ``reranker/``: the :class:`~.utility.UtilityReranker` weights (``config.json`` + ``model.safetensors``),
* ``mentions.json``: the entity names the mention matcher knows (a filtered subset on WN18RR),
* ``training.json``: metrics, counts, coefficients, seed, config of the run (when given).

The three parts only make sense together (the reranker's features come from that corpus and that
matcher), so :func:`save_utility` writes them into a fresh folder and swaps it in whole, and
:func:`load_utility` rebuilds the reranker with its ``.retriever`` attached.

Documents posted through the API never enter this folder (retraining replaces it whole): they live
in ``KGFORGE_HOME/documents/<D>/`` (:mod:`.documents`) and :func:`load_utility` joins them to the
trained corpus, so the retriever it returns searches both.

:func:`filtered_mentions` builds the matcher used on large corpora of common words (WN18RR lemmas
such as ``"take"``): names under ``min_name_chars`` characters, names made of stopwords only, and
names found in more than ``max_document_share`` of the documents are left out (the settings of the
WN18RR measurement in :mod:`.utility`).
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from kg_builder.datasets import Dataset
from kg_builder.errors import InvalidInputError, KGForgeError
from kg_builder.models.encoder import TextEncoder
from kg_builder.models.saved import ModelNotTrainedError, model_dir
from kg_builder.settings import Settings

from .corpus import Corpus
from .documents import API_PREFIX, join_posted
from .hybrid import HybridRetriever
from .utility import EntityMentions, UtilityReranker, UtilityTrainingResult, normalise_tokens

RETRIEVER_DIR = "retriever"
RERANKER_DIR = "reranker"
MENTIONS_FILE = "mentions.json"
TRAINING_FILE = "training.json"
# The WN18RR settings (utility.py's docstring): at 0.5 % a name may appear in ~200 of 40,943 glosses.
DEFAULT_MAX_DOCUMENT_SHARE = 0.005
MIN_NAME_CHARS = 4


def utility_model_name(dataset: str) -> str:
    return f"utility-{dataset}"


def train_command(dataset: str) -> str:
    return f"kgforge train utility --dataset {dataset}"


def utility_model_dir(settings: Settings, dataset: str) -> Path:
    """``KGFORGE_HOME/models/utility-<dataset>`` (the name is checked like every model name)."""
    return model_dir(settings, utility_model_name(dataset))


def filtered_mentions(dataset: Dataset, corpus: Corpus, *, max_document_share: float = DEFAULT_MAX_DOCUMENT_SHARE,
                      min_name_chars: int = MIN_NAME_CHARS,
                      progress: Callable[[int], None] | None = None) -> EntityMentions:
    """A mention matcher without the names that would match everywhere.

    Args:
        dataset: the KG whose entity names are matched.
        corpus: the documents the reranker will read (document frequencies are counted on it).
        max_document_share: names found in more than this share of ``corpus`` are dropped.
        min_name_chars: shorter names are dropped.
        progress: called with the number of documents scanned, per batch.

    Returns:
        An :class:`EntityMentions` over the kept names (``.names``: entity id -> name).
    """
    if not 0 < max_document_share <= 1:
        raise InvalidInputError("max_document_share", f"must be in (0, 1], got {max_document_share}")
    from bm25s.stopwords import STOPWORDS_EN

    stopwords = frozenset(normalise_tokens(" ".join(STOPWORDS_EN)))
    candidates = {}
    for entity in dataset.entities:
        tokens = normalise_tokens(entity.name)
        if len(entity.name.strip()) >= min_name_chars and tokens and not set(tokens) <= stopwords:
            candidates[entity.id] = entity.name
    matcher = EntityMentions(candidates)
    frequency: Counter[str] = Counter()
    batch = 1000
    for start in range(0, len(corpus), batch):
        texts = corpus.search_texts(range(start, min(start + batch, len(corpus))))
        for text in texts:
            frequency.update(matcher.find(text))
        if progress:
            progress(len(texts))
    limit = max_document_share * len(corpus)
    return EntityMentions({i: name for i, name in candidates.items() if frequency[i] <= limit})


def trained_corpus_size(settings: Settings, dataset: str) -> int | None:
    """Documents in the saved retriever of ``dataset`` (None when no utility model is saved), read
    from the dense index's config without loading the corpus."""
    config = utility_model_dir(settings, dataset) / RETRIEVER_DIR / "dense" / "config.json"
    if not (utility_model_dir(settings, dataset) / MENTIONS_FILE).exists() or not config.exists():
        return None
    return int(json.loads(config.read_text())["size"])


def save_utility(settings: Settings, dataset: str, reranker: UtilityReranker, *,
                 result: UtilityTrainingResult | None = None, min_alias_chars: int = 4) -> Path:
    """Write the reranker, its retriever and its name matcher to :func:`utility_model_dir`.

    The parts are written into a sibling folder first and swapped in at the end, so an interrupted
    save never leaves a new retriever beside an old reranker. ``min_alias_chars`` must be the value
    the reranker's :class:`EntityMentions` was built with (the matcher is rebuilt from its names).
    """
    posted = next((doc_id for doc_id in reranker.retriever.corpus.ids if doc_id.startswith(API_PREFIX)), None)
    if posted is not None:
        raise KGForgeError(f"the retriever holds posted document {posted!r}; save the one built from the "
                           "dataset (posted documents stay in KGFORGE_HOME/documents/<domain>, not in models)")
    directory = utility_model_dir(settings, dataset)
    staging = directory.with_name(directory.name + ".partial")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    reranker.retriever.save(staging / RETRIEVER_DIR)
    reranker.save(staging / RERANKER_DIR)
    (staging / MENTIONS_FILE).write_text(json.dumps(
        {"dataset": dataset, "min_alias_chars": min_alias_chars, "names": reranker.mentions.names}))
    if result is not None:
        summary = {"model_name": utility_model_name(dataset), "dataset": dataset,
                   **json.loads(result.model_dump_json())}
        (staging / TRAINING_FILE).write_text(json.dumps(summary, indent=2))
    if directory.exists():
        shutil.rmtree(directory)
    staging.rename(directory)
    return directory


def load_utility(settings: Settings, dataset: str, encoder: TextEncoder) -> UtilityReranker:
    """The reranker saved by ``kgforge train utility --dataset D``; ``.retriever`` is its HybridRetriever
    over the trained corpus followed by the documents posted for ``D`` (:func:`.documents.join_posted`).

    Args:
        encoder: the MiniLM the retriever's dense index was built with (queries are embedded with it).

    Raises:
        ModelNotTrainedError: nothing saved for ``dataset``; the message names the training command.
    """
    directory = utility_model_dir(settings, dataset)
    parts = (directory / RETRIEVER_DIR / "config.json", directory / RERANKER_DIR / "config.json",
             directory / MENTIONS_FILE)
    if not all(part.exists() for part in parts):
        raise ModelNotTrainedError(f"no trained utility reranker in {directory}; train it with "
                                   f"`{train_command(dataset)}`")
    saved = json.loads((directory / MENTIONS_FILE).read_text())
    if saved.get("dataset") not in (None, dataset):
        raise KGForgeError(f"{directory} holds the utility reranker of {saved['dataset']!r}, not {dataset!r}; "
                           f"retrain it with `{train_command(dataset)}`")
    mentions = EntityMentions(saved["names"], min_alias_chars=saved.get("min_alias_chars", 4))
    retriever = join_posted(HybridRetriever.load(directory / RETRIEVER_DIR, encoder), settings, dataset)
    return UtilityReranker.load(directory / RERANKER_DIR, retriever=retriever, mentions=mentions)


__all__ = ["DEFAULT_MAX_DOCUMENT_SHARE", "filtered_mentions", "load_utility", "save_utility", "train_command",
           "trained_corpus_size", "utility_model_dir", "utility_model_name"]
