"""Sparse retrieval: a BM25 index over corpus texts, backed by ``bm25s``.

Tokenisation is ours (not bm25s's tokenizer) so the same function serves indexing, querying and the
utility features, and so a saved index knows exactly how it tokenised:

* lower-case, tokens are runs of 2+ word characters (``bm25s``'s default pattern),
* English stopwords removed (``bm25s``'s list) unless ``stopwords=False``,
* stemming is optional: ``"none"`` (default), ``"plural"`` (a dependency-free plural stripper after
  Harman's 1991 S-stemmer: ``viruses -> virus``, ``causes -> caus``, ``cells -> cell``) or
  ``"snowball"`` (needs ``PyStemmer``, not installed by default).

The index has no incremental update in ``bm25s``; :meth:`BM25Index.build` is rerun over the whole
corpus when documents are added (about 1 s per 10k short documents on one core).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from kg_builder import __version__
from kg_builder.errors import ConfigError, InvalidInputError, KGForgeError

BM25_KIND = "bm25_index"
_TOKEN = re.compile(r"(?u)\b\w\w+\b")
Stemming = Literal["none", "plural", "snowball"]


class BM25Config(BaseModel):
    """BM25 parameters (``bm25s`` defaults: Lucene variant, k1 = 1.5, b = 0.75) and tokenisation."""

    model_config = ConfigDict(frozen=True)

    k1: float = Field(1.5, gt=0)
    b: float = Field(0.75, ge=0, le=1)
    method: Literal["lucene", "robertson", "atire", "bm25l", "bm25+"] = "lucene"
    stopwords: bool = True
    stemming: Stemming = "none"


def plural_stem(token: str) -> str:
    """Strip English plural endings, then a final ``e`` (after Harman's S-stemmer, adapted so that
    singular and plural always meet): ``viruses, virus -> virus``, ``causes, cause -> caus``,
    ``studies -> study``, ``boxes -> box``, ``cells -> cell``; ``class``, ``analysis`` are left alone.
    Not idempotent: apply it once, to raw lower-case tokens."""
    if len(token) > 4 and token.endswith("ies") and not token.endswith(("eies", "aies")):
        token = token[:-3] + "y"
    elif len(token) > 4 and token.endswith(("sses", "uses", "xes", "zes", "ches", "shes")):
        token = token[:-2]
    elif len(token) > 3 and token.endswith("s") and not token.endswith(("us", "ss", "is")):
        token = token[:-1]
    return token[:-1] if len(token) > 3 and token.endswith("e") else token


def _stemmer(stemming: Stemming) -> Callable[[str], str] | None:
    if stemming == "none":
        return None
    if stemming == "plural":
        return plural_stem
    try:
        import Stemmer
    except ImportError as e:
        raise ConfigError("stemming='snowball' needs PyStemmer: `pip install PyStemmer`, "
                          "or use stemming='plural'") from e
    return Stemmer.Stemmer("english").stemWord


class Tokenizer:
    """Text -> BM25 tokens according to a :class:`BM25Config`."""

    def __init__(self, config: BM25Config | None = None):
        self.config = config or BM25Config()
        self._stem = _stemmer(self.config.stemming)

    @cached_property
    def _stopwords(self) -> frozenset[str]:
        if not self.config.stopwords:
            return frozenset()
        from bm25s.stopwords import STOPWORDS_EN

        return frozenset(STOPWORDS_EN)

    def __call__(self, text: str) -> list[str]:
        tokens = [t for t in _TOKEN.findall(text.lower()) if t not in self._stopwords]
        return [self._stem(t) for t in tokens] if self._stem else tokens


class BM25Index:
    """BM25 over a list of texts; hits are ``(position, score)`` with positions into those texts.

    Args:
        config: BM25 and tokenisation parameters.

    Example:
        >>> index = BM25Index().build(["Aspirin treats headache.", "Insulin regulates glucose."])
        >>> index.search("insulin", k=1)[0][0]
        1
    """

    def __init__(self, config: BM25Config | None = None):
        self.config = config or BM25Config()
        self.tokenize = Tokenizer(self.config)
        self._retriever = None
        self.size = 0

    def build(self, texts: Sequence[str]) -> BM25Index:
        """(Re)index ``texts`` from scratch; returns ``self``."""
        import bm25s

        retriever = bm25s.BM25(k1=self.config.k1, b=self.config.b, method=self.config.method)
        if texts:
            retriever.index([self.tokenize(text) for text in texts], show_progress=False)
        self._retriever = retriever if texts else None
        self.size = len(texts)
        return self

    def __len__(self) -> int:
        return self.size

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of ``query`` against every indexed text (float32 [size]; 0 = no term shared)."""
        if self._retriever is None:
            return np.zeros(0, dtype=np.float32)
        tokens = self.tokenize(query)
        if not tokens:
            return np.zeros(self.size, dtype=np.float32)
        return np.asarray(self._retriever.get_scores(tokens), dtype=np.float32)

    def search(self, query: str, k: int = 10) -> list[tuple[int, float]]:
        """The ``k`` best ``(position, score)`` pairs, best first; texts sharing no term are left out."""
        if k < 1:
            raise InvalidInputError("k", f"must be at least 1, got {k}")
        scores = self.scores(query)
        matched = np.flatnonzero(scores > 0)
        if not matched.size:
            return []
        # Stable order: score descending, then position (lexsort's last key is the primary one).
        order = matched[np.lexsort((matched, -scores[matched]))][:k]
        return [(int(i), float(scores[i])) for i in order]

    # --- persistence ---------------------------------------------------------------------------
    def save(self, directory: Path | str) -> Path:
        """``config.json`` (kind, version, parameters, size) + the ``bm25s`` arrays."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if self._retriever is not None:
            self._retriever.save(str(directory), show_progress=False)
        meta = {"kind": BM25_KIND, "version": __version__, "size": self.size,
                "config": self.config.model_dump(),
                "created": datetime.now(UTC).isoformat(timespec="seconds")}
        (directory / "config.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
        return directory

    @classmethod
    def load(cls, directory: Path | str) -> BM25Index:
        import bm25s

        directory = Path(directory)
        meta_path = directory / "config.json"
        if not meta_path.exists():
            raise KGForgeError(f"no BM25 index in {directory} (config.json missing); build one and save() it")
        meta = json.loads(meta_path.read_text())
        if meta.get("kind") != BM25_KIND:
            raise KGForgeError(f"{directory} holds a {meta.get('kind')!r}, not a {BM25_KIND!r}")
        index = cls(BM25Config.model_validate(meta["config"]))
        index.size = int(meta["size"])
        if index.size:
            index._retriever = bm25s.BM25.load(str(directory), show_progress=False)
        return index


__all__ = ["BM25Config", "BM25Index", "Tokenizer", "plural_stem"]
