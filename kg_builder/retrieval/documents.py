"""Adding documents to a domain's saved corpus (``POST /v1/documents``).

The pipeline retrieves S's documents through the retriever saved with the domain's utility
reranker (``KGFORGE_HOME/models/utility-<domain>/retriever``, see :mod:`.store`), so that is where
posted documents go: they become retrievable (BM25 rebuilt, only the new documents embedded) for
every job that starts after the call returns. Jobs already running keep the retriever they loaded.

Choices:

* Posted ids are namespaced ``api:<id>`` (unless already so), so a client can never replace a
  dataset document such as ``umls:doc:virus``; re-posting an id replaces that document in place.
* The retriever folder is rewritten beside the old one and swapped in under an exclusive file
  lock (``utility-<domain>.lock``), so concurrent posts (several API processes) serialise and a
  reader never sees half a retriever.
* The utility reranker itself is not retrained: its features are computed per retrieved document,
  so it scores new documents as it scores the old ones.
"""

from __future__ import annotations

import fcntl
import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from pydantic import BaseModel

from kg_builder.errors import InvalidInputError
from kg_builder.models.encoder import TextEncoder
from kg_builder.models.saved import ModelNotTrainedError
from kg_builder.settings import Settings

from .corpus import Document
from .hybrid import HybridRetriever
from .store import MENTIONS_FILE, RETRIEVER_DIR, load_utility, train_command, utility_model_dir

API_SOURCE = "api"
API_PREFIX = "api:"


def api_document_id(doc_id: str) -> str:
    """``api:<id>``: the provenance id a posted document gets (kept when already prefixed)."""
    doc_id = doc_id.strip()
    if not doc_id:
        raise InvalidInputError("documents.id", "must not be empty")
    return doc_id if doc_id.startswith(API_PREFIX) else API_PREFIX + doc_id


class DocumentsAdded(BaseModel):
    """Ids added and replaced (in corpus order), identical re-posts, and the corpus size after."""

    added: list[str]
    replaced: list[str]
    unchanged: int
    corpus_size: int


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    lock = directory.with_name(directory.name + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def add_documents(
    settings: Settings,
    domain: str,
    documents: Sequence[Document],
    *,
    encoder: TextEncoder | Callable[[], TextEncoder] | None = None,
) -> DocumentsAdded:
    """Add ``documents`` to ``domain``'s saved retriever (see the module docstring).

    Args:
        encoder: the MiniLM the retriever was built with, or a function that returns it (called
            only once the domain's model is known to exist); default: a new one.

    Raises:
        ModelNotTrainedError: the domain has no utility model yet (the message names the command).
    """
    directory = utility_model_dir(settings, domain)
    if not (directory / MENTIONS_FILE).exists():
        raise ModelNotTrainedError(
            f"no trained utility reranker in {directory}; train it with `{train_command(domain)}`"
        )
    if encoder is None:
        encoder = TextEncoder(settings.encoder_path)
    elif not isinstance(encoder, TextEncoder):
        encoder = encoder()
    target = directory / RETRIEVER_DIR
    staging, old = target.with_name(RETRIEVER_DIR + ".partial"), target.with_name(RETRIEVER_DIR + ".old")
    with _locked(directory):
        if not target.exists() and old.exists():  # a crash between the two renames below
            old.rename(target)
        retriever: HybridRetriever = load_utility(settings, domain, encoder).retriever
        update = retriever.add_documents(documents)
        if update.changed:
            for path in (staging, old):
                if path.exists():
                    shutil.rmtree(path)
            retriever.save(staging)
            target.rename(old)
            staging.rename(target)
            shutil.rmtree(old)
        corpus = retriever.corpus
        return DocumentsAdded(
            added=[corpus[i].id for i in sorted(update.added)],
            replaced=[corpus[i].id for i in sorted(update.replaced)],
            unchanged=update.unchanged,
            corpus_size=len(corpus),
        )


__all__ = ["API_PREFIX", "API_SOURCE", "DocumentsAdded", "add_documents", "api_document_id"]
