"""Fixtures for the retrieval tests: one MiniLM encoder per session and a tiny hand-made corpus.

The encoder is loaded once (about 2 s) and shared read-only: retrieval code only calls
``encode()``, which restores the module's train/eval mode, so tests cannot leak state through it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kg_builder.datasets import Dataset, load_dataset
from kg_builder.models.encoder import TextEncoder
from kg_builder.retrieval import Corpus, Document, HybridRetriever, corpus_from_dataset

REPO = Path(__file__).resolve().parents[3]
DATA_DIR = Path(os.environ.get("KGFORGE_DATA_DIR", REPO.parent / "shared" / "data")).resolve()

TINY_TEXTS = {
    "t:aspirin": "Aspirin is a medication used to reduce pain, fever and inflammation.",
    "t:insulin": "Insulin is a hormone that regulates glucose in the blood.",
    "t:flu": "Influenza is a contagious respiratory illness caused by a virus.",
    "t:retriever": "The golden retriever is a friendly dog breed often trained as a guide dog.",
    "t:bridge": "The Golden Gate Bridge spans the strait at the entrance to San Francisco Bay.",
    "t:volcano": "A volcano erupts when molten rock reaches the surface of the earth.",
    "t:paris": "Paris is the capital of France and is known for the Eiffel Tower.",
}


@pytest.fixture(scope="session")
def encoder() -> TextEncoder:
    return TextEncoder()


@pytest.fixture
def tiny_corpus() -> Corpus:
    """Seven one-sentence documents on unrelated topics (a fresh copy per test)."""
    return Corpus(Document(id=doc_id, text=text, source="test") for doc_id, text in TINY_TEXTS.items())


@pytest.fixture(scope="session")
def umls_dir() -> Path:
    if not (DATA_DIR / "kg" / "umls").is_dir():
        pytest.skip(f"real datasets not found in {DATA_DIR} (set KGFORGE_DATA_DIR to the shared data folder)")
    return DATA_DIR


@pytest.fixture(scope="session")
def umls(umls_dir) -> Dataset:
    return load_dataset("umls", umls_dir)


@pytest.fixture(scope="session")
def umls_retriever(umls, encoder) -> HybridRetriever:
    """The UMLS description corpus indexed once per session (about 2 s); tests must not add to it."""
    return HybridRetriever.build(corpus_from_dataset(umls), encoder)
