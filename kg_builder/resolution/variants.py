"""Lexical variants of a normalised name: the forms under which the same entity may already exist.

:func:`name_variants` turns one normalised name (:func:`~kg_builder.store.schema.normalize_name`)
into a bounded set of other normalised names to look up through the ``name_norm`` index: singular
and plural of each word, the words in another order, without function words (``or``, ``and``,
``of``...), and the words joined. A variant found in the graph is only a *candidate*: the resolver
merges into it only when the embeddings of the two names agree and their types are compatible
("glasses" and "glass", "news" and "new" are variants of each other, not one entity).
"""

from __future__ import annotations

import itertools

# Function words whose presence does not change which entity a name denotes ("amino acid, peptide,
# or protein" = "amino acid peptide protein").
STOPWORDS = frozenset({"a", "an", "and", "the", "of", "or", "for", "in", "on", "to", "with", "by"})
MAX_PERMUTED_WORDS = 4  # 4! = 24 orders; longer names only get rotations
MAX_VARIANTS = 128


def _singulars(word: str) -> set[str]:
    out: set[str] = set()
    if len(word) <= 3 or not word.isalpha():
        return out
    if word.endswith("ies"):
        out.add(word[:-3] + "y")
    if word.endswith(("ses", "xes", "zes", "ches", "shes")):
        out.add(word[:-2])
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        out.add(word[:-1])
    return out


def _plurals(word: str) -> set[str]:
    if len(word) <= 2 or not word.isalpha() or (word.endswith("s") and not word.endswith("ss")):
        return set()
    if word.endswith("y") and word[-2] not in "aeiou":
        return {word[:-1] + "ies"}
    if word.endswith(("s", "x", "z", "ch", "sh")):
        return {word + "es"}
    return {word + "s"}


def _inflections(word: str) -> set[str]:
    return _singulars(word) | _plurals(word)


def _orders(words: list[str]) -> list[tuple[str, ...]]:
    if len(words) < 2:
        return []
    if len(words) <= MAX_PERMUTED_WORDS:
        return list(itertools.permutations(words))
    return [tuple(words[i:] + words[:i]) for i in range(1, len(words))] + [tuple(sorted(words))]


def name_variants(norm: str) -> set[str]:
    """Other normalised forms of ``norm`` (not including ``norm``), at most :data:`MAX_VARIANTS`.

    >>> sorted(name_variants("air jordans"))
    ['air jordan', 'airjordans', 'airs jordans', 'jordans air']
    """
    words = norm.split()
    if not words:
        return set()
    out: list[str] = []
    # 1. one word inflected at a time, then every word at once (singular / plural)
    for i, word in enumerate(words):
        for form in sorted(_inflections(word)):
            out.append(" ".join(words[:i] + [form] + words[i + 1:]))
    all_singular = [min(_singulars(w), key=len, default=w) for w in words]
    all_plural = [min(_plurals(w), key=len, default=w) for w in words]
    out += [" ".join(all_singular), " ".join(all_plural)]
    # 2. without function words, and words joined ("e mail" -> "email")
    content = [w for w in words if w not in STOPWORDS]
    if content and content != words:
        out.append(" ".join(content))
    if 1 < len(words) <= 4:
        out.append("".join(words))
    # 3. other word orders: of the words and the content words, as given and in the singular
    singular_content = [min(_singulars(w), key=len, default=w) for w in content]
    for base in (words, all_singular, content, singular_content):
        for order in _orders(base):
            out.append(" ".join(order))
    seen: set[str] = set()
    result: set[str] = set()
    for form in out:
        if form and form != norm and form not in seen:
            seen.add(form)
            result.add(form)
            if len(result) >= MAX_VARIANTS:
                break
    return result


def lemma(word: str) -> str:
    """The shortest regular singular of ``word`` (``word`` itself when it has none)."""
    return min(_singulars(word), key=len, default=word)


def single_word_inflection(norm: str, other: str) -> bool:
    """True when ``norm`` and ``other`` are one content word in two inflections ("glasses" / "glass"):
    the variant where a plural most often names another thing ("news", "goods", "arms")."""
    a = [w for w in norm.split() if w not in STOPWORDS]
    b = [w for w in other.split() if w not in STOPWORDS]
    return len(a) == 1 and len(b) == 1 and a != b


__all__ = ["MAX_VARIANTS", "STOPWORDS", "lemma", "name_variants", "single_word_inflection"]
