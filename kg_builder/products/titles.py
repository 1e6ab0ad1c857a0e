"""Normalised product titles: an offline normaliser, an LLM rewrite, graph storage, BERT-whitening.

Amazon titles are written for search engines, not for encoders: the brand twice
(``"Rubbermaid Commercial Products FG263100GRAY Rubbermaid Commercial Round Brute Container Lid"``),
model numbers and pack sizes in the middle, HTML entities (``"Universal&reg;"``, ``"&ndash;"``),
mojibake (``"ScotchÂ®"``), ALL CAPS, and in Office's ``Office.text`` the leaf category and the brand
run on after the title without any separator (``"... 3-Pack Highlighters Post-It"``). Before an item
is encoded its title becomes one coherent description plus typed attributes (:class:`NormalisedTitle`).

* :class:`TitleNormaliser` (method ``offline-normaliser``) -- rules chosen on real titles of
  Scientific, Office and the 2018 product corpus:

  1. clean: HTML tags and entities (twice: the corpus has ``&amp;reg;``), mojibake ``Â``,
     ``®™©``, ``|`` separators, whitespace;
  2. trailing runs (Office): a trailing repeat of the known brand or of the title's first words
     (``"Clover Wonder Clips, 50 Per Pack Clips Clover"``) is cut, then a category phrase learnt
     per domain by :func:`learn_trailing_phrases` (the word n-gram found near the end of most
     texts of one ``i_category``) when it ends what is left. Conservative on purpose: Office's
     ``i_category`` groups are coarse (39 groups, leaves differ inside a group), so a phrase is
     only cut where it ends the text; ``"... Scientific Calculator Scientific"`` keeps its leaf;
  3. attributes, each removed from the text where found: ``count`` (``Pack of 8``, ``5 PCS``,
     ``(5,000 per box)``, ``100-Count``, ``Box of 100``, ``12 Rolls``), ``size`` (numbers with a
     unit: ``4 1/2-Inch x 10yd``, ``10.1oz``, ``1kg``, ``80 Grit``), ``colour`` (a closed word list),
     ``model`` (codes that mix letters and at least three digits, ``DW4524``, ``FG263100GRAY``,
     long digit runs, ``(W55567)``); codes with fewer digits (``RJ45``, ``Cat5``, ``3D``) stay;
  4. brand: the known brand (the dataset's) or, without one, the first word(s) when they recur;
     every occurrence in the text is removed (case, hyphens and ``&`` spacing ignored) and the brand
     is put once in front;
  5. ALL CAPS titles (more than 70% upper-case letters) become title case, words of at most three
     letters (``USB``, ``LED``, ``PVC``) kept;
  6. ``product_type``: the last one or two words of the first clause (before ``,``, ``(``, ``-``,
     `` for ``, `` with ``) of what is left; ``"Adhesive-Backed Sanding Roll"`` -> ``"Sanding Roll"``.

  The text is ``"{brand} {rest}, {size}, {colour}"``: model numbers and pack counts stay in
  ``attributes`` only (a choice made by reading titles, not measured against keeping them).

* :class:`LLMTitleRewriter` (method ``llm-rewrite``) -- prompt ``title_rewrite@v1`` with the
  structured answer :class:`TitleRewrite`; an answer that is invalid, empty, longer than the
  limit, or that drops the brand falls back to the offline result with a ``note`` saying why.
* :func:`write_normalised_titles` stores results on existing ``Item`` nodes (``title_normalised``,
  ``title_brand``, ``title_type``, ``title_attributes`` as ``key=value`` strings, ``title_source``
  = ``method@version``, ``title_note``) through :meth:`GraphStore.upsert_nodes`; ``name`` (the raw
  title) is never given, and the upsert statement keeps a name it is not given
  (``coalesce(row.name, n.name)``). :func:`item_text` is the text every later item encoding uses.
* :class:`Whitening` -- BERT-whitening (Su et al. 2021, arXiv:2103.15316): ``W = U diag(1/sqrt(S))``
  of the covariance of one domain's item embeddings, first ``k`` columns, saved as ``whitening.npz``.

Measured (dev numbers, ``kgforge eval titles --dataset amazon18_scientific --split valid``; protocol
and table in :mod:`kg_builder.evaluation.titles`): NDCG@10 raw 0.0672, normalised 0.0678,
raw+whitening 0.0765, normalised+whitening 0.0766. Whitening helps; the normaliser does not measurably
help retrieval (within noise). Known misses: a brand that looks like a size (``3M``) is read as
3 metres; Office titles keep their leaf category unless it ends the text after the brand is cut.
"""

from __future__ import annotations

import html
import json
import logging
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kg_builder.datasets.text import clean_text
from kg_builder.errors import InvalidInputError, KGForgeError

logger = logging.getLogger(__name__)

OFFLINE_METHOD = "offline-normaliser"
OFFLINE_VERSION = "1"
LLM_METHOD = "llm-rewrite"
PROMPT_NAME = "title_rewrite"
MAX_TITLE_CHARS = 2000

# --------------------------------------------------------------------------------------------
# Results


class TitleSource(BaseModel):
    """Who produced a normalised title: ``method`` and ``version`` (for the LLM: the prompt id),
    the model for an LLM rewrite, and a ``note`` when something fell back."""

    model_config = ConfigDict(frozen=True)

    method: str
    version: str
    model: str | None = None
    note: str | None = None

    @property
    def tag(self) -> str:
        """``method@version``: what the graph stores in ``title_source``."""
        return f"{self.method}@{self.version}"


class NormalisedTitle(BaseModel):
    """One title after normalisation.

    Attributes:
        item_id: the item's graph id (``amazon:<ASIN>``), when known.
        raw: the title as given.
        text: the normalised description to encode.
        brand, product_type: extracted (``None`` when not found).
        attributes: ``size``, ``colour``, ``count``, ``model``, ``category`` (Office's trailing leaf
            category) where found.
        source: provenance.
    """

    item_id: str | None = None
    raw: str
    text: str
    brand: str | None = None
    product_type: str | None = None
    attributes: dict[str, str] = Field(default_factory=dict)
    source: TitleSource


# --------------------------------------------------------------------------------------------
# Offline normaliser: patterns

_MOJIBAKE = re.compile(r"Â(?=[\s®™©°])|Â$")
_MARKS = re.compile(r"[®™©]|\((?:R|TM|C)\)", re.IGNORECASE)
_NUM = r"\d[\d,]*(?:\.\d+)?"
_FRACTION = r"\d+(?:[ -]\d+)?/\d+|\d*\.\d+|\d[\d,]*"  # 4 1/2, 1-1/2, 3/8, .131, 10
_UNIT = (
    r"(?:inch(?:es)?|in\b|''|\"|ft\b|feet|foot|yds?\b|yards?|mm\b|cm\b|m\b|mils?\b|oz\b|ounces?|fl\.? ?oz|"
    r"lbs?\b|pounds?|kgs?\b|g\b|grams?|gal(?:lons?)?\b|ml\b|l\b|liters?|litres?|psi\b|watts?|w\b|v\b|volts?|"
    r"vac\b|vdc\b|amps?\b|a\b|ah\b|mah\b|gauge|ga\b|awg\b|grit|degrees?|°[cf]?|microns?|um\b|ppm\b|mp\b|"
    r"cubic feet|sq\.? ?ft|rpm\b|hz\b|khz\b|mhz\b|ohms?\b)"
)
_ONE_SIZE = rf"(?:{_FRACTION})\s*-?\s*{_UNIT}"
_SIZE = re.compile(
    rf"(?<![\w/.-]){_ONE_SIZE}(?:\s*(?:x|by|/)\s*(?:(?:{_FRACTION})\s*-?\s*{_UNIT}|(?:{_FRACTION})(?![\w/])))*"
    rf"|(?<![\w/.-])(?:{_FRACTION})\s*(?:x|by)\s*{_ONE_SIZE}(?:\s*(?:x|by)\s*(?:{_FRACTION})\s*-?\s*{_UNIT}?)*",
    re.IGNORECASE,
)
_CONTAINER = r"(?:pack|pk|box|set|case|bag|roll|tub|carton|bottle|kit|package|dozen|lot)"
_COUNT = re.compile(
    rf"\(?\b(?:{_CONTAINER}|qty|quantity)\s*(?:of|:)?\s*(?P<a>{_NUM})\b\)?"
    rf"|\(?\b(?P<b>{_NUM})\s*-?\s*(?:{_CONTAINER}s?|pcs|pc|pieces?|count|ct|ea|each|sheets|rolls|pens|pairs?)\b"
    rf"(?:\s*(?:per|/|a|in)\s*(?:{_CONTAINER}|bag|tub)\b)?\)?"
    rf"|\(?\b(?P<c>{_NUM})\s*(?:per|/|a)\s*{_CONTAINER}\b\)?",
    re.IGNORECASE,
)
_COLOURS = (
    "black", "white", "blue", "red", "green", "yellow", "orange", "purple", "pink", "brown", "gray", "grey",
    "silver", "gold", "clear", "beige", "tan", "teal", "navy", "violet", "ivory", "assorted", "multicolor",
    "multicolour", "multi-color", "transparent", "natural", "chrome", "bronze", "maroon", "aqua",
)
_COLOUR = re.compile(rf"\b(?:{'|'.join(_COLOURS)})\b", re.IGNORECASE)
# A model code: letters and >= 4 digits (optionally joined by - / . #), or >= 5 digits joined by hyphens
# (which of the matches count is decided by _is_code).
_MODEL = re.compile(
    r"(?<![\w/.-])(?=[\w./#-]*\d)(?=(?:[^\d\s]*\d){4})(?=[\w./#-]*[A-Za-z])[A-Za-z0-9]+(?:[-./#][A-Za-z0-9]+)*(?![\w/])"
    r"|(?<![\w/.,-])\d+(?:-\d+)*(?![\w/.,])"
)
_UNIT_TOKEN = re.compile(rf"^(?:{_FRACTION})\s*-?\s*{_UNIT}$", re.IGNORECASE)
_PAREN_CODE = re.compile(r"\(\s*[A-Z0-9][A-Z0-9#/.-]{3,}\s*\)")
_EMPTY_PARENS = re.compile(r"\(\s*[,;:/-]*\s*\)|\[\s*\]")
_SEPARATORS = re.compile(r"\s*(?:\|+|\s-\s|–|—)\s*")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,;:)\]])")
_REPEATED_PUNCT = re.compile(r"([,;:])(?:\s*[,;:])+")
_CLAUSE = re.compile(r",|\(|\s-\s|\s(?:for|with|w/|includes?|and)\s", re.IGNORECASE)
_DANGLING = re.compile(r"(?<=[\s,(])(?:x|by|\+/-|\+|-)(?=\s*(?:[,);]|$))|\(\s*(?:x|by)\s*\)", re.IGNORECASE)
_WORD = re.compile(r"(?<![\w])[A-Za-z][A-Za-z'&-]*")


def _brand_pattern(brand: str) -> re.Pattern[str]:
    """The brand as a case-insensitive pattern that ignores hyphens, spaces and ``&`` spacing
    (``Shop-Vac`` = ``Shop Vac``, ``B&C Eagle`` = ``B & C Eagle``)."""
    parts = [re.escape(p) for p in re.split(r"[\s\-&]+", brand.strip()) if p]
    joiner = r"[\s\-]*&?[\s\-]*"
    return re.compile(rf"(?<![\w]){joiner.join(parts)}(?![\w])", re.IGNORECASE)


def _words(text: str) -> list[str]:
    return text.split()


def _strip_tail(text: str) -> str:
    return text.strip(" ,;:-/|.").strip()


def clean_title(title: str) -> str:
    """HTML tags and entities (twice), mojibake ``Â``, ``®™©``, ``|`` and dash separators, spaces."""
    text = clean_text(title)
    text = html.unescape(text)  # the corpus has double-escaped entities (&amp;reg;)
    text = _MOJIBAKE.sub("", text)
    text = _MARKS.sub("", text)
    text = _SEPARATORS.sub(", ", text)
    return _tidy(text)


def _tidy(text: str) -> str:
    text = _EMPTY_PARENS.sub(" ", text)
    text = re.sub(r"\s+", " ", text)
    text = _SPACE_BEFORE_PUNCT.sub(r"\1", text)
    text = _REPEATED_PUNCT.sub(r"\1", text)
    text = re.sub(r"\(\s+", "(", text)
    text = re.sub(r"^[\s,;:/-]+", "", text)
    return _strip_tail(text)


def _fix_caps(text: str) -> str:
    letters = [c for c in text if c.isalpha()]
    if len(letters) < 8 or sum(c.isupper() for c in letters) / len(letters) <= 0.7:
        return text
    return re.sub(r"[A-Za-z][A-Za-z']*", lambda m: m.group() if len(m.group()) <= 3 else m.group().capitalize(), text)


# --------------------------------------------------------------------------------------------
# Office: trailing category phrases


def learn_trailing_phrases(groups: Mapping[str, Sequence[str]], *, window: int = 8, max_len: int = 5,
                           min_share: float = 0.5) -> dict[str, str]:
    """The category phrase that Office-style texts (title + leaf category + brand, no separators)
    carry near their end, learnt per category group.

    For each group (e.g. an ``i_category`` id with its items' cleaned texts), every word n-gram
    (n <= ``max_len``) among the last ``window`` words of a text is a candidate; the phrase is the
    longest candidate found in at least ``min_share`` of the group's texts and at least 80% as often
    as the most frequent one. Groups of one text, or with no such phrase, get none.

    Returns:
        group -> phrase (original casing of its most common spelling).
    """
    phrases: dict[str, str] = {}
    for group, texts in groups.items():
        if len(texts) < 2:
            continue
        df: Counter[str] = Counter()
        after: Counter[str] = Counter()  # words after the phrase's last occurrence, summed over texts
        spelling: dict[str, Counter[str]] = {}
        for text in texts:
            words = _words(text)[-window:]
            last: dict[str, int] = {}
            for n in range(1, max_len + 1):
                for start in range(0, len(words) - n + 1):
                    gram = " ".join(words[start:start + n])
                    key = gram.casefold()
                    if any(c.isalpha() for c in key):
                        if key not in last:
                            spelling.setdefault(key, Counter())[gram] += 1
                        last[key] = len(words) - start - n
            df.update(last.keys())
            after.update(last)
        if not df:
            continue
        top = max(df.values())
        if top < max(2, min_share * len(texts)):
            continue
        # longest, then most frequent, then nearest the end (a brand or a word such as "per" is not it)
        best = max((key for key, count in df.items() if count >= 0.8 * top),
                   key=lambda key: (len(key.split()), df[key], -after[key] / df[key]))
        phrases[group] = spelling[best].most_common(1)[0][0]
    return phrases


# --------------------------------------------------------------------------------------------
# The offline normaliser


class TitleNormaliser:
    """Offline title normaliser (cleaning plus attribute extraction); see the module docstring.

    Args:
        trailing_phrases: category phrases that may run on at the end of a title (Office), e.g. the
            values of :func:`learn_trailing_phrases`; one that ends the title, once a trailing
            repeat of the brand is cut, is cut too and kept as ``attributes["category"]``.

    Example:
        >>> TitleNormaliser().run("DEWALT DW4524 4-1/2-Inch by 1/4-Inch Grinding Wheel", brand="DEWALT").text
        'DEWALT Grinding Wheel, 4-1/2-Inch by 1/4-Inch'
    """

    version = OFFLINE_VERSION

    def __init__(self, *, trailing_phrases: Iterable[str] = ()):
        self.trailing_phrases = sorted({p.strip() for p in trailing_phrases if p and p.strip()},
                                       key=lambda p: -len(p.split()))
        self._trailing = [(p, re.compile(rf"(?<!\w){re.escape(p)}(?!\w)", re.IGNORECASE))
                          for p in self.trailing_phrases]

    @property
    def source(self) -> TitleSource:
        return TitleSource(method=OFFLINE_METHOD, version=self.version)

    def run(self, title: str, *, brand: str | None = None, item_id: str | None = None) -> NormalisedTitle:
        """Normalise one title; ``brand`` is the dataset's brand when it has one.

        Raises:
            InvalidInputError: ``title`` is not a non-empty string or is longer than 2,000 characters.
        """
        if not isinstance(title, str) or not title.strip():
            raise InvalidInputError("title", "must be a non-empty string")
        if len(title) > MAX_TITLE_CHARS:
            raise InvalidInputError("title", f"is longer than {MAX_TITLE_CHARS} characters")
        known_brand = clean_title(brand) if isinstance(brand, str) and brand.strip() else None
        attributes: dict[str, str] = {}
        text = clean_title(title)

        brand_name = known_brand or _leading_repeat(text)
        if brand_name:
            text = _strip_trailing_brand(text, brand_name)
        text, category = self._cut_trailing_category(text)
        if category:
            attributes["category"] = category

        text, counts = _extract(_COUNT, text, lambda m: (m.group("a") or m.group("b") or m.group("c")).replace(",", ""))
        text, codes = _extract(_PAREN_CODE, text, lambda m: m.group().strip("() "),
                               keep=lambda m: _is_code(m.group().strip("() ")))
        text, models = _extract(_MODEL, text, lambda m: m.group(), keep=lambda m: _is_code(m.group()))
        text, sizes = _extract(_SIZE, text, lambda m: _tidy(m.group()))
        text = _DANGLING.sub(" ", text)
        colours = list(dict.fromkeys(c.group().lower() for c in _COLOUR.finditer(text)))
        text = _COLOUR.sub(" ", text)
        if counts:
            attributes["count"] = counts[0]
        if sizes:
            attributes["size"] = "; ".join(dict.fromkeys(sizes))
        if colours:
            attributes["colour"] = ", ".join(colours)
        model_codes = [m for m in dict.fromkeys([*codes, *models]) if not brand_name or m.casefold() != brand_name.casefold()]
        if model_codes:
            attributes["model"] = "; ".join(model_codes)

        if brand_name:
            text = _brand_pattern(brand_name).sub(" ", text)
        text = _fix_caps(_tidy(text))
        product_type = _product_type(text)
        shown_brand = _fix_caps(brand_name) if brand_name else None
        lead = shown_brand
        if shown_brand and text.split() and text.split()[0].casefold() == shown_brand.split()[0].casefold():
            lead = None  # a variant of the brand already starts the text (Micro Essential Labs / Laboratories)
        parts = [" ".join(p for p in (lead, text) if p)]
        parts += [attributes[k] for k in ("size", "colour") if k in attributes]
        normalised = ", ".join(p for p in parts if p) or _tidy(clean_title(title))
        return NormalisedTitle(item_id=item_id, raw=title, text=normalised, brand=shown_brand,
                               product_type=product_type, attributes=attributes, source=self.source)

    def run_many(self, items: Iterable[tuple[str | None, str, str | None]]) -> list[NormalisedTitle]:
        """Normalise ``(item_id, title, brand)`` triples."""
        return [self.run(title, brand=brand, item_id=item_id) for item_id, title, brand in items]

    def _cut_trailing_category(self, text: str) -> tuple[str, str | None]:
        """Cut a learnt category phrase that ends the text (Office, once a trailing brand is gone)."""
        for _phrase, pattern in self._trailing:
            hits = [m for m in pattern.finditer(text) if not _strip_tail(text[m.end():])]
            if hits and _strip_tail(text[:hits[-1].start()]):
                return _strip_tail(text[:hits[-1].start()]), hits[-1].group()
        return text, None


def dataset_normaliser(dataset: Any) -> TitleNormaliser:
    """The offline normaliser for one dataset: with the trailing category phrases learnt from the
    titles of each of its ``category_ids`` groups (Office's run-on texts; none for other sets)."""
    groups: dict[str, list[str]] = {}
    for item in dataset.items:
        for category in item.category_ids:
            if item.title:
                groups.setdefault(category, []).append(item.title)
    return TitleNormaliser(trailing_phrases=learn_trailing_phrases(groups).values())


def _extract(pattern: re.Pattern[str], text: str, value: Any, keep: Any = None) -> tuple[str, list[str]]:
    found: list[str] = []

    def replace(match: re.Match[str]) -> str:
        if keep is not None and not keep(match):
            return match.group()
        found.append(value(match))
        return " "

    return pattern.sub(replace, text), found


def _is_code(token: str) -> bool:
    """A model code rather than a measurement (``10yd``, ``1.75MM``) or a plain number (``2016``)."""
    digits = sum(c.isdigit() for c in token)
    has_letter = any(c.isalpha() for c in token)
    return not _UNIT_TOKEN.match(token) and digits >= (4 if has_letter else 5)


def _leading_repeat(text: str) -> str | None:
    """The first one to three words when they occur again later (a brand written twice)."""
    words = _words(text)
    for n in (3, 2, 1):
        if len(words) <= n + 1:
            continue
        lead = " ".join(words[:n]).strip(",.;:")
        if len(lead) < 2 or not any(c.isalpha() for c in lead):
            continue
        if len(list(_brand_pattern(lead).finditer(text))) >= 2:
            return lead
    return None


def _strip_trailing_brand(text: str, brand: str) -> str:
    """Cut a brand that ends the text when it also occurs earlier (Office: ``... Clips Clover``)."""
    hits = list(_brand_pattern(brand).finditer(text))
    if len(hits) >= 2 and not text[hits[-1].end():].strip(" .,;"):
        return _strip_tail(text[:hits[-1].start()])
    return text


def _product_type(text: str) -> str | None:
    clause = _CLAUSE.split(text, maxsplit=1)[0]
    words = [w for w in _WORD.findall(clause) if len(w) > 1 or w.isupper()]
    if not words:
        return None
    return " ".join(words[-2:]) if len(words) >= 2 else words[0]


# --------------------------------------------------------------------------------------------
# LLM rewrite


from kg_builder.llm.schemas import TitleRewrite  # noqa: E402  (the answer model lives with the others)


class LLMTitleRewriter:
    """Rewrites titles with an LLM (prompt ``title_rewrite@v1``, answer :class:`TitleRewrite`).

    The offline normaliser runs first: its result is shown to the LLM as a hint and is what an item
    gets when the answer is unusable. An answer is unusable when the call fails (:class:`LLMError`),
    it does not validate, its title is longer than ``max_chars`` or than three times the raw title,
    or it drops a known brand; the fallback carries ``note`` = why, and the warning is logged.

    Args:
        llm: any :class:`kg_builder.llm.LLM`.
        offline: the offline normaliser (default: a plain :class:`TitleNormaliser`).
        max_chars: longest accepted rewrite.
    """

    def __init__(self, llm: Any, *, offline: TitleNormaliser | None = None, max_chars: int = 300):
        from kg_builder.llm.prompts import get_prompt

        self.llm = llm
        self.offline = offline or TitleNormaliser()
        self.max_chars = max_chars
        self.prompt = get_prompt(PROMPT_NAME, 1)

    def run(self, title: str, *, brand: str | None = None, item_id: str | None = None) -> NormalisedTitle:
        """Rewrite one title; never raises for a bad answer (falls back), only for bad input."""
        base = self.offline.run(title, brand=brand, item_id=item_id)
        return self._rewrite(base, brand)

    def run_many(self, items: Iterable[tuple[str | None, str, str | None]]) -> list[NormalisedTitle]:
        """Rewrite ``(item_id, title, brand)`` triples, ``llm.max_concurrency`` at a time."""
        from concurrent.futures import ThreadPoolExecutor

        items = list(items)
        workers = max(1, int(getattr(self.llm, "max_concurrency", 4)))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(lambda row: self.run(row[1], brand=row[2], item_id=row[0]), items))

    def _rewrite(self, base: NormalisedTitle, brand: str | None) -> NormalisedTitle:
        from kg_builder.llm.base import LLMError, OnError, parse_structured

        messages = self.prompt.render(
            title=clean_title(base.raw), brand=brand or "(unknown)",
            hint=json.dumps({"title": base.text, "brand": base.brand, "product_type": base.product_type,
                             "attributes": base.attributes}, ensure_ascii=False),
        )
        try:
            response = self.llm.invoke(messages, schema=TitleRewrite, on_error=OnError.IGNORE)
        except LLMError as e:
            return self._fallback(base, f"LLM call failed: {e}")
        parsed = response.parsed
        if parsed is None:
            if response.error:
                return self._fallback(base, f"invalid LLM answer: {response.error}")
            try:
                parsed = parse_structured(response.content, TitleRewrite)
            except LLMError as e:
                return self._fallback(base, f"invalid LLM answer: {e}")
        if not isinstance(parsed, TitleRewrite):
            try:
                parsed = TitleRewrite.model_validate(parsed.model_dump())
            except ValidationError as e:
                return self._fallback(base, f"invalid LLM answer: {e.errors()[0]['msg']}")
        text = " ".join(parsed.title.split())
        limit = min(self.max_chars, max(3 * len(base.raw), 60))
        if len(text) > limit:
            return self._fallback(base, f"LLM title has {len(text)} characters (limit {limit})")
        expected = brand or base.brand
        if expected and not _brand_pattern(expected).search(text):
            return self._fallback(base, f"LLM title drops the brand {expected!r}")
        attributes = {str(k).strip().lower(): str(v).strip() for k, v in parsed.attributes.items()
                      if str(k).strip() and str(v).strip()}
        return NormalisedTitle(
            item_id=base.item_id, raw=base.raw, text=text, brand=parsed.brand or base.brand,
            product_type=parsed.product_type or base.product_type, attributes=attributes or base.attributes,
            source=TitleSource(method=LLM_METHOD, version=self.prompt.id, model=getattr(response, "model", None)
                               or getattr(self.llm, "model_name", None)),
        )

    def _fallback(self, base: NormalisedTitle, note: str) -> NormalisedTitle:
        logger.warning("title rewrite of %r fell back to the offline normaliser: %s", base.raw[:120], note)
        return base.model_copy(update={"source": base.source.model_copy(update={"note": f"llm fallback: {note}"})})


# --------------------------------------------------------------------------------------------
# Storage on Item nodes

TITLE_PROPERTIES = ("title_normalised", "title_brand", "title_type", "title_attributes", "title_source",
                    "title_model", "title_note")


class TitleWriteReport(BaseModel):
    """What :func:`write_normalised_titles` did: nodes written, and ids with no ``Item`` node."""

    written: int
    missing: list[str] = Field(default_factory=list)


def title_properties(result: NormalisedTitle) -> dict[str, Any]:
    """The node properties of one result (``None`` values leave a property as it is)."""
    return {
        "title_normalised": result.text,
        "title_brand": result.brand,
        "title_type": result.product_type,
        "title_attributes": [f"{k}={v}" for k, v in sorted(result.attributes.items())],
        "title_source": result.source.tag,
        "title_model": result.source.model,
        "title_note": result.source.note,
    }


def write_normalised_titles(store: Any, results: Iterable[NormalisedTitle], *, job_id: str | None = None,
                            existing: set[str] | None = None) -> TitleWriteReport:
    """Store normalised titles on existing ``Item`` nodes beside the raw title (``name``).

    Only items that exist are written (a write must not create a bare ``Item``): ids are checked
    against ``existing`` (the caller's bounded read) or else the store's ``Item`` ids (one read of
    every Item id and name), and the ones missing are returned, not written. ``name`` is never sent, so the raw title stays.

    Raises:
        InvalidInputError: a result has no ``item_id``.
    """
    from kg_builder.graphdb import NodeWrite
    from kg_builder.graphdb.schema import ITEM

    results = list(results)
    for i, result in enumerate(results):
        if not result.item_id:
            raise InvalidInputError(f"results[{i}].item_id", "is needed to find the Item node")
    if existing is None:  # a job passes the ids it read (bounded); the CLI reads every Item id once
        existing = {node_id for node_id, _name, _type in store.node_names(ITEM)}
    missing = sorted({r.item_id for r in results if r.item_id not in existing})
    source = tuple(dict.fromkeys(f"titles:{r.source.tag}" for r in results))
    nodes = [NodeWrite(label=ITEM, id=r.item_id, props=title_properties(r), job_id=job_id,
                       sources=(f"titles:{r.source.tag}",))
             for r in results if r.item_id in existing]
    if missing:
        logger.warning("%d normalised title(s) name no Item node and were not written: %s", len(missing),
                       ", ".join(missing[:10]))
    written = store.upsert_nodes(nodes) if nodes else 0
    logger.info("wrote %d normalised titles (%s)", written, ", ".join(source))
    return TitleWriteReport(written=written, missing=missing)


def item_text(item: Any, *, normalised: bool = True) -> str:
    """The text an item encoding should use: the normalised title when present (and wanted), else
    the raw title (``name`` / ``title``), else ``""``.

    ``item`` may be a graph node (:class:`~kg_builder.graphdb.GraphNode`, or its property dict with
    ``title_normalised`` / ``name``), an :class:`~kg_builder.datasets.records.ItemRecord`, or a
    :class:`NormalisedTitle`.
    """
    if isinstance(item, NormalisedTitle):
        return item.text if normalised else item.raw
    props = getattr(item, "properties", None)
    if isinstance(props, Mapping):
        item = props
    if isinstance(item, Mapping):
        if normalised and item.get("title_normalised"):
            return str(item["title_normalised"])
        return str(item.get("name") or item.get("title") or "")
    normalised_text = getattr(item, "title_normalised", None)
    if normalised and normalised_text:
        return str(normalised_text)
    return str(getattr(item, "title", None) or getattr(item, "name", None) or "")


# --------------------------------------------------------------------------------------------
# BERT-whitening


class Whitening:
    """BERT-whitening (Su et al. 2021): ``x -> (x - mu) W[:, :k]``, rows re-normalised.

    ``fit`` takes one domain's item text embeddings (never interactions, so no target leaks in):
    ``mu`` their mean, ``W = U diag(1/sqrt(S))`` from the SVD of their covariance. Saved as
    ``whitening.npz`` (``mu``, ``W``, ``k``) in a folder, e.g. beside a model's files.

    Shapes:
        fit(E: [n, d]) with n > 1; transform(X: [m, d]) -> [m, k], rows L2-normalised
    """

    FILE = "whitening.npz"

    def __init__(self, k: int = 256):
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise InvalidInputError("k", f"must be a positive integer, got {k!r}")
        self.k = k
        self.mu: np.ndarray | None = None
        self.W: np.ndarray | None = None

    def fit(self, embeddings: np.ndarray) -> Whitening:
        E = np.asarray(embeddings, dtype=np.float64)
        if E.ndim != 2 or E.shape[0] < 2:
            raise InvalidInputError("embeddings", f"need a [n, d] matrix with n >= 2, got shape {E.shape}")
        if self.k > E.shape[1]:
            raise InvalidInputError("k", f"{self.k} is more than the {E.shape[1]} embedding dimensions")
        if not np.isfinite(E).all():
            raise InvalidInputError("embeddings", "contain NaN or infinite values")
        mu = E.mean(axis=0, keepdims=True)
        cov = np.cov((E - mu).T)
        U, S, _ = np.linalg.svd(cov)
        S = np.maximum(S, 1e-12)  # fewer items than dimensions: zero variance directions
        self.mu = mu.astype(np.float32)
        self.W = (U[:, :self.k] / np.sqrt(S[:self.k])).astype(np.float32)
        return self

    def transform(self, embeddings: np.ndarray) -> np.ndarray:
        if self.mu is None or self.W is None:
            raise KGForgeError("Whitening is not fitted: call fit() or load() first")
        X = np.asarray(embeddings, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self.mu.shape[1]:
            raise InvalidInputError("embeddings", f"need [m, {self.mu.shape[1]}], got shape {X.shape}")
        Y = (X - self.mu) @ self.W
        norms = np.linalg.norm(Y, axis=1, keepdims=True)
        return Y / np.maximum(norms, 1e-12)

    def save(self, folder: Path | str) -> Path:
        if self.mu is None or self.W is None:
            raise KGForgeError("Whitening is not fitted: nothing to save")
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / self.FILE
        np.savez(path, mu=self.mu, W=self.W, k=np.array(self.k))
        return path

    @classmethod
    def load(cls, folder: Path | str) -> Whitening:
        path = Path(folder) / cls.FILE
        if not path.exists():
            raise KGForgeError(f"no {cls.FILE} in {folder}; fit a Whitening and save() it there first")
        with np.load(path) as data:
            whitening = cls(int(data["k"]))
            whitening.mu, whitening.W = data["mu"], data["W"]
        return whitening


__all__ = [
    "LLM_METHOD",
    "dataset_normaliser",
    "OFFLINE_METHOD",
    "OFFLINE_VERSION",
    "LLMTitleRewriter",
    "NormalisedTitle",
    "TitleNormaliser",
    "TitleRewrite",
    "TitleSource",
    "TitleWriteReport",
    "Whitening",
    "clean_title",
    "item_text",
    "learn_trailing_phrases",
    "title_properties",
    "write_normalised_titles",
]
