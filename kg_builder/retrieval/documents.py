"""Documents posted through the API (``POST /v1/documents``), kept apart from trained models.

Posted documents live in their own per-domain store, ``KGFORGE_HOME/documents/<domain>/``
(``corpus/``: the documents as JSONL, ``dense/``: their MiniLM embeddings), never inside a trained
model's folder, so retraining the domain's utility model (which replaces its folder whole) keeps
them. :func:`join_posted` appends them to the trained corpus when the utility model is loaded
(:func:`.saved_utility.load_utility`): only BM25 is rebuilt over the union, nothing is re-embedded.
They are retrievable by every job that starts after the call returns; jobs already running keep
the retriever they loaded.

Choices:

* Posted ids are namespaced ``api:<id>`` (unless already so), so a client can never replace a
  dataset document such as ``umls:doc:virus``; re-posting an id replaces that document in place.
* The store is rewritten beside the old one and swapped in under an exclusive file lock
  (``documents/<domain>.lock``), so concurrent posts (several API processes) serialise and a reader
  never sees half a store.
* A domain must have a trained utility model before documents are posted to it (the model defines
  the domain's corpus and the encoder the documents are embedded with); the error names the command.
* The utility reranker is not retrained: its features are computed per retrieved document, so it
  scores posted documents as it scores the trained corpus's.
"""

from __future__ import annotations

import fcntl
import re
import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from pydantic import BaseModel

from kg_builder.errors import InvalidInputError
from kg_builder.models.encoder import TextEncoder
from kg_builder.models.saved import ModelNotTrainedError
from kg_builder.settings import Settings

from .corpus import Corpus, Document
from .dense import DenseIndex
from .hybrid import HybridRetriever

API_SOURCE = "api"
API_PREFIX = "api:"
DOCUMENTS_DIR = "documents"
CORPUS_DIR = "corpus"
DENSE_DIR = "dense"
_DOMAIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def api_document_id(doc_id: str) -> str:
    """``api:<id>``: the provenance id a posted document gets (kept when already prefixed)."""
    doc_id = doc_id.strip()
    if not doc_id:
        raise InvalidInputError("documents.id", "must not be empty")
    return doc_id if doc_id.startswith(API_PREFIX) else API_PREFIX + doc_id


def posted_documents_dir(settings: Settings, domain: str) -> Path:
    """``KGFORGE_HOME/documents/<domain>`` (the domain is checked: letters, digits, ``_ . -``)."""
    if not _DOMAIN.match(domain):
        raise InvalidInputError("domain", f"{domain!r} is not a valid domain name (letters, digits, _ . -)")
    return settings.home / DOCUMENTS_DIR / domain


class DocumentsAdded(BaseModel):
    """Ids added and replaced (in corpus order), identical re-posts, and the corpus size after
    (trained corpus + posted documents: what a job of the domain searches)."""

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


def _recover(directory: Path) -> None:
    """Finish a swap a crash interrupted (between the two renames of :func:`add_documents`)."""
    old = directory.with_name(directory.name + ".old")
    if not directory.exists() and old.exists():
        old.rename(directory)


def load_posted(settings: Settings, domain: str, encoder: TextEncoder) -> tuple[Corpus, DenseIndex] | None:
    """The posted documents of ``domain`` and their embeddings, or None when none were posted."""
    directory = posted_documents_dir(settings, domain)
    _recover(directory)
    if not (directory / CORPUS_DIR).exists():
        return None
    return Corpus.load(directory / CORPUS_DIR), DenseIndex.load(directory / DENSE_DIR, encoder)


def join_posted(retriever: HybridRetriever, settings: Settings, domain: str) -> HybridRetriever:
    """``retriever`` (a trained corpus) joined with ``domain``'s posted documents (itself when none)."""
    posted = load_posted(settings, domain, retriever.dense.encoder)
    if posted is None or not len(posted[0]):
        return retriever
    return retriever.joined(*posted)


def add_documents(
    settings: Settings,
    domain: str,
    documents: Sequence[Document],
    *,
    encoder: TextEncoder | Callable[[], TextEncoder] | None = None,
) -> DocumentsAdded:
    """Add ``documents`` to ``domain``'s posted-document store (see the module docstring).

    Args:
        encoder: the MiniLM the domain's retriever was built with, or a function that returns it
            (called only once the domain's model is known to exist); default: a new one.

    Raises:
        ModelNotTrainedError: the domain has no utility model yet (the message names the command).
        InvalidInputError: a document id is not namespaced ``api:``.
    """
    from .saved_utility import train_command, trained_corpus_size, utility_model_dir

    trained = trained_corpus_size(settings, domain)
    if trained is None:
        raise ModelNotTrainedError(
            f"no trained utility reranker in {utility_model_dir(settings, domain)}; "
            f"train it with `{train_command(domain)}`"
        )
    bad = next((d.id for d in documents if not d.id.startswith(API_PREFIX)), None)
    if bad is not None:
        raise InvalidInputError("documents.id", f"{bad!r} is not a posted id; pass it through api_document_id()")
    if encoder is None:
        encoder = TextEncoder(settings.encoder_path)
    elif not isinstance(encoder, TextEncoder):
        encoder = encoder()
    directory = posted_documents_dir(settings, domain)
    staging, old = directory.with_name(directory.name + ".partial"), directory.with_name(directory.name + ".old")
    with _locked(directory):
        posted = load_posted(settings, domain, encoder)
        corpus, dense = posted if posted is not None else (Corpus(), DenseIndex(encoder))
        update = corpus.add(documents)
        if update.changed:
            dense.add([corpus[i].id for i in update.changed], corpus.search_texts(update.changed))
            for path in (staging, old):
                if path.exists():
                    shutil.rmtree(path)
            corpus.save(staging / CORPUS_DIR)
            dense.save(staging / DENSE_DIR)
            if directory.exists():
                directory.rename(old)
            staging.rename(directory)
            if old.exists():
                shutil.rmtree(old)
        return DocumentsAdded(
            added=[corpus[i].id for i in sorted(update.added)],
            replaced=[corpus[i].id for i in sorted(update.replaced)],
            unchanged=update.unchanged,
            corpus_size=trained + len(corpus),
        )


__all__ = ["API_PREFIX", "API_SOURCE", "DocumentsAdded", "add_documents", "api_document_id", "join_posted",
           "load_posted", "posted_documents_dir"]
