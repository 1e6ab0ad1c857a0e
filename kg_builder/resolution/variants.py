"""Lexical variants of a normalised name: the forms under which the same entity may already exist.

:func:`name_variants` turns one normalised name (:func:`~kg_builder.graphdb.schema.normalize_name`)
into a bounded set of other normalised names to look up through the ``name_norm`` index: singular
and plural of each word (regular, irregular, Latin), the words in another order, without function
words (``or``, ``and``, ``of``...), and the words joined. A variant found in the graph is only a
*candidate*: the resolver decides whether to merge (see ``EntityResolver``).
"""

from __future__ import annotations

import itertools

# Function words whose presence does not change which entity a name denotes ("amino acid, peptide,
# or protein" = "amino acid peptide protein").
STOPWORDS = frozenset({"a", "an", "and", "the", "of", "or", "for", "in", "on", "to", "with", "by"})
MAX_PERMUTED_WORDS = 4  # 4! = 24 orders; longer names only get rotations
MAX_VARIANTS = 128


# Irregular and Latin plurals (singular -> plural): "bacteria" is the plural of "bacterium".
IRREGULAR_PLURALS = {"child": "children", "man": "men", "woman": "women", "person": "people", "mouse": "mice",
                     "foot": "feet", "tooth": "teeth", "goose": "geese", "ox": "oxen"}
_IRREGULAR_SINGULARS = {plural: singular for singular, plural in IRREGULAR_PLURALS.items()}
# (singular ending, plural ending): bacterium/bacteria, fungus/fungi, alga/algae, analysis/analyses,
# phenomenon/phenomena, index/indices, matrix/matrices
_LATIN = (("um", "a"), ("us", "i"), ("a", "ae"), ("is", "es"), ("on", "a"), ("ex", "ices"), ("ix", "ices"))


def _singulars(word: str) -> set[str]:
    out: set[str] = set()
    if word in _IRREGULAR_SINGULARS:
        out.add(_IRREGULAR_SINGULARS[word])
    if len(word) <= 3 or not word.isalpha():
        return out
    for singular, plural in _LATIN:
        if word.endswith(plural) and len(word) > len(plural) + 2:
            out.add(word[: -len(plural)] + singular)
    if word.endswith("ies"):
        out.add(word[:-3] + "y")
    if word.endswith(("ses", "xes", "zes", "ches", "shes")):
        out.add(word[:-2])
    if word.endswith("s") and not word.endswith("ss"):
        out.add(word[:-1])  # also "virus" -> "viru": a lookup that finds nothing costs nothing
    return out


def _plurals(word: str) -> set[str]:
    out = {IRREGULAR_PLURALS[word]} if word in IRREGULAR_PLURALS else set()
    if len(word) <= 2 or not word.isalpha():
        return out
    for singular, plural in _LATIN:
        if word.endswith(singular) and len(word) > len(singular) + 2:
            out.add(word[: -len(singular)] + plural)
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return out
    if word.endswith("y") and word[-2] not in "aeiou":
        out.add(word[:-1] + "ies")
    elif word.endswith(("s", "x", "z", "ch", "sh")):
        out.add(word + "es")
    else:
        out.add(word + "s")
    return out


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
    ['air jordan', 'airjordans', 'airs jordans', 'jordan air', 'jordans air']
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
    # 2. without function words while two content words remain ("amino acid, peptide, or protein";
    #    not "The Piano" -> "piano", "The Police" -> "police"), and words joined ("e mail" -> "email")
    content = [w for w in words if w not in STOPWORDS]
    if len(content) >= 2 and content != words:
        out.append(" ".join(content))
    if 1 < len(words) <= 4:
        out.append("".join(words))
    # 3. other orders of all the words, as given and in the singular (function words stay: "university
    #    of miami" is not "miami university")
    for base in (words, all_singular):
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
    """The shortest singular of ``word`` (``word`` itself when it has none)."""
    return min(_singulars(word), key=len, default=word)


def single_word_inflection(norm: str, other: str) -> bool:
    """True when ``norm`` and ``other`` are one content word in two inflections ("glasses" / "glass"):
    the variant where a plural most often names another thing ("news", "goods", "arms")."""
    a = [w for w in norm.split() if w not in STOPWORDS]
    b = [w for w in other.split() if w not in STOPWORDS]
    return len(a) == 1 and len(b) == 1 and a != b


# Plurals with a sense of their own (pluralia tantum and plural senses): "goods" are not "good",
# "customs" is not "custom". MiniLM cannot tell these from ordinary plurals ("news"/"new" 0.37,
# "scarcities"/"scarcity" 0.37), so a list decides. General English, not tuned on any dataset.
PLURAL_SENSES = frozenset({
    "arms", "belongings", "clothes", "customs", "damages", "earnings", "glasses", "goods", "grounds",
    "headquarters", "letters", "manners", "means", "news", "odds", "outskirts", "pains", "premises",
    "quarters", "remains", "riches", "savings", "scissors", "series", "spirits", "species", "surroundings",
    "thanks", "troops", "wages", "works", "spectacles", "minutes", "forces", "papers", "colors", "colours",
})


def distinct_plural(norm: str, other: str) -> bool:
    """True when the two names are one content word each and one of them is a plural with a sense
    of its own ("goods" / "good"). Inside longer names the plural keeps its plain sense ("police
    works" are police work)."""
    a = [w for w in norm.split() if w not in STOPWORDS]
    b = [w for w in other.split() if w not in STOPWORDS]
    return len(a) == 1 and len(b) == 1 and bool({a[0], b[0]} & PLURAL_SENSES)


def same_words(norm: str, other: str) -> bool:
    """True when the two names have the same content words (only order or function words differ)."""
    return sorted(w for w in norm.split() if w not in STOPWORDS) == sorted(w for w in other.split() if w not in STOPWORDS)


__all__ = ["MAX_VARIANTS", "PLURAL_SENSES", "STOPWORDS", "distinct_plural", "lemma", "name_variants", "same_words",
           "single_word_inflection"]
