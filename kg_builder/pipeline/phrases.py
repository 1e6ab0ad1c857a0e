"""Candidate entity names in free text, without a tagger: noun phrases and attribute spans.

The corpus generator proposes *new* entities from S's retrieved documents (issue 9, point 5). No
POS tagger or parser model can be installed here, so this is a small rule-based chunker over word
tokens; what it finds is a candidate list for the generator to score (salience, the relation's
range), not a parse. Rules, in order:

* **Tokens**: words (letters, digits, inner hyphens and apostrophes), numbers, punctuation;
  ``e.g.`` / ``i.e.`` / ``etc.`` are single tokens. A possessive ``'s`` ends its phrase
  ("Ivanovsky's article" gives "Ivanovsky" and "article").
* **Chunks** are maximal runs of *content* tokens. A token breaks a run when it is a function word
  (determiner, pronoun, preposition, conjunction, auxiliary, a listed common verb or vague
  modifier such as "many", "other"), an adverb in ``-ly``, punctuation, or a ``-ed`` / ``-ing``
  word after a content word ("article describing", "cells infected": a verb, not a modifier).
  ``-ed`` / ``-ing`` words may *open* a phrase as modifiers ("infected cell", "living cells").
  A vague modifier that is capitalised inside a sentence stays content ("New Guinea"). The word
  after a modal ("can infect"), a listed common verb (:data:`COMMON_VERBS`, unless a determiner
  precedes it: "the cause") and a verb after a pronoun subject break runs too.
* **Heads**: English noun phrases are head-final, so trailing tokens that look like adjectives
  (``-ous``, ``-ful``, ``-less``, ``-able``, ``-ible``, ``-ive``, ``-ic``, ``-al`` minus listed
  nouns such as "material", "animal") or participles are trimmed; runs longer than
  ``max_tokens`` keep their last ``max_tokens`` tokens; numbers are trimmed from both ends.
* **Patterns** mark why a span is a likely entity name (``Phrase.pattern``): ``"chunk"``;
  ``"of"`` for "X of Y" ("structure of proteins"; after a vague head, "a type of X", only "X"
  is marked); ``"list"`` for the items after "such as", "including", "e.g.", "for example"
  ("such as aphids, mites and thrips"); ``"paren"`` for a short parenthesised name ("(HIV)");
  ``"attribute"`` for ``Key: value`` spans (product texts: "Brand: Logitech") with the key in
  ``Phrase.attribute``; ``"number"`` for quantities with a unit ("5,000 species", "2.4 GHz").

Known limits: a bare present-tense verb after a noun ("the virus acts") is kept as a phrase
head, and adjectives without a listed suffix ("chronic" is caught, "large" is not) stay in the
phrase; the generator's scoring against the relation's range is what discards most such noise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import pairwise
from typing import Literal

from kg_builder.retrieval.utility import normalise_tokens


def _words(text: str) -> frozenset[str]:
    """A word list written as one whitespace-separated string."""
    return frozenset(text.split())


Pattern = Literal["chunk", "of", "list", "paren", "attribute", "number"]

_TOKEN = re.compile(
    r"(?P<abbr>\b(?:[eE]\.g\.|[iI]\.e\.|etc\.))"
    r"|(?P<num>\d+(?:[.,]\d+)*%?)"
    r"|(?P<word>[^\W\d_](?:[\w]|[-'’](?=\w))*)"
    r"|(?P<punct>[^\w\s])")

FUNCTION_WORDS = _words("""
a an the this that these those there here it its it's they them their theirs he him his she her hers we us our
ours you your yours i me my mine who whom whose which what whatever whichever where when why how
and or nor but if then else than because since while whereas although though unless until so yet also
of in on at by for with from to into onto upon within without about above below over under between among
through during before after against across along around behind beyond beside besides near toward towards
via per amid despite except unlike like as
is are was were be been being am has have had having do does did done doing can cannot could may might
must shall should will would
not no none any all both each either neither every some such same own only just very too quite rather
more most less least much many few fewer several various other another certain different
one two three four five six seven eight nine ten first second third
become becomes became include includes included including contain contains contained containing consist
consists consisting call calls called know knows known knew name named termed consider considers considered
describe describes described use uses used using find finds found see sees seen saw make makes made give
gives given take takes taken said say says occur occurs occurred occurring produce produces produced
refer refers referred involve involves involved remain remains remained seem seems seemed tend tends tended
appear appears appeared lead leads led allow allows allowed provide provides provided require requires
required show shows shown showed help helps helped keep keeps kept get gets got mean means meant
regard regarded defined define defines according due able unable often usually sometimes always never
generally typically mainly mostly especially particularly well however thus therefore hence e.g. i.e. etc.
inside outside even almost further whether either yet still already again instead respectively unclear
""")

#: Common verbs in their base, -s and past forms. Without a tagger "viruses cause diseases" is one
#: run of content words; these split it. Many are nouns too ("cause", "form", "spread"), so right
#: after a determiner ("the cause", "its spread") they stay content.
COMMON_VERBS = frozenset(f"{verb}{ending}" for verb in _words("""
cause affect hold act arise vary die spread live grow treat infect invade enter attack carry feed exist differ
depend result begin end follow reach form play change increase decrease reduce prevent protect surround encode
replicate reproduce evolve express release bind block inhibit regulate control stimulate support develop
create build move remove add connect link lack share belong relate represent indicate suggest cover serve
work run come go turn look emerge survive kill destroy damage injure transmit produce secrete absorb
digest convert transform consume eat drink breathe infest inhabit occupy own manage operate perform
""") for ending in ("", "s", "es", "ed", "d")) | _words("""
held arose grew began ran came went fed ate drank built spread bound led
""")
_DETERMINER_BEFORE_NOUN = _words("the a an this that these those its their his her our your my each every")

#: Dropped as modifiers, kept when capitalised inside a sentence ("New Guinea", "Great Britain").
VAGUE_MODIFIERS = _words("""
new old great large small big little good bad main major minor common high low long short early late
whole full general specific similar related particular important usual possible known simple complex
""")

#: Heads that say "a kind / amount / part of": alone they are not entities; "X of Y" marks Y.
GENERIC_HEADS = _words("""
type types kind kinds form forms sort sorts part parts number numbers group groups member members
example examples way ways case cases thing things lot lots variety varieties class classes set sets
amount amounts piece pieces portion series collection range aspect aspects feature features term terms
name names word words sense use uses fact facts time times year years area areas field fields order
means process result results state level levels system something anything everything nothing
someone anyone everyone instance instances majority minority deal rest
""")

_ADJ_SUFFIXES = ("ous", "ful", "less", "able", "ible", "ive", "ic", "al")
#: Nouns with an adjective-like ending (they may head a phrase).
_NOUNS_WITH_ADJ_SUFFIX = _words("""
material materials animal animals chemical chemicals signal signals hospital hospitals individual individuals
mineral minerals capital journal metal metals crystal crystals festival rival arrival approval proposal
trial trials canal terminal principal criminal manual ritual interval total mammal mammals cereal meal
petal portal tribunal vital vitals removal disposal survival referral withdrawal rental denial dental
clinic clinics arsenic antibiotic antibiotics topic topics logic music republic mechanic epidemic pandemic
graphic graphics fabric traffic critic cosmetic cosmetics diuretic narcotic narcotics anesthetic
antiseptic plastic plastics physic tunic mosaic arithmetic rhetoric attic panic picnic
relative relatives objective derivative derivatives sedative preservative additive additives laxative
explosive explosives native natives detective representative alternative initiative executive olive
olives hive archive motive adhesive contraceptive sedatives
table cable fable stable vegetable vegetables bible variable variables constable
""")
_PARTICIPLE_NOUNS = _words("""
building buildings bleeding clothing signaling signalling screening training learning feeling feelings
meeting painting paintings processing swelling wedding morning evening ring spring string strings thing
things king wing wings sibling siblings seedling seedlings pudding ceiling offspring bed seed seeds need
needs speed feed breed weed shed hundred kindred creed reed steed sled
""")
_LIST_TRIGGERS = (("such", "as"), ("including",), ("e.g.",), ("for", "example"), ("for", "instance"),
                  ("especially",), ("notably",))
_LIST_GLUE = frozenset({",", "and", "or", "the", "a", "an", "as", "well"})
_UNITS = _words("""
mm cm m km kg g mg µg mcg ml l oz lb lbs inch inches ft feet foot yard yards mile miles pound pounds
gb mb tb kb ghz mhz hz w kw v mah hours hour minutes minute seconds second days day weeks week months
month years year percent % species people cases patients genes proteins cells
""")
#: The next word is a verb: after a modal ("can infect"), or after a pronoun subject when a
#: determiner or preposition follows it ("which surrounds and protects", "they carry the").
_BEFORE_VERB = _words("can cannot could may might must shall should will would does did do not to")
_SUBJECTS = _words("he she it they we i you who which that")
_AFTER_VERB = _words("""the a an this these those their its his her our all some and or by in into to with
from on at as them it him her us me""")
_DETERMINERS = _words("the a an this these those their its his her our all some them it him us me")
_ROMAN = re.compile(r"^(?:[ivxlcdm]+|[a-z])$")
_ATTRIBUTE = re.compile(r"(?:^|[\n|;•]|\.\s)\s*(?P<key>[A-Z][\w ]{1,24}?)\s*:\s*(?P<value>[^\n|;:.,]{1,60})")


@dataclass(frozen=True, slots=True)
class Phrase:
    """One candidate name in a text: its surface ``text`` and character span, the normalised token
    ``key`` two phrases are the same under, why it was found (``pattern``), and for attribute
    spans the attribute's name."""

    text: str
    key: tuple[str, ...]
    start: int
    end: int
    pattern: Pattern = "chunk"
    attribute: str | None = None
    sentence_start: bool = False


@dataclass(frozen=True, slots=True)
class _Token:
    text: str
    lower: str
    kind: str
    start: int
    end: int
    sentence_start: bool


def tokens(text: str) -> list[_Token]:
    """Word, number and punctuation tokens with character offsets (see the module docstring)."""
    out: list[_Token] = []
    new_sentence = True
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup or "punct"
        value = match.group()
        if kind == "word" and value.lower().endswith(("'s", "’s")) and len(value) > 2:
            out.append(_Token(value[:-2], value[:-2].lower(), "word", match.start(), match.end() - 2, new_sentence))
            out.append(_Token("'s", "'s", "punct", match.end() - 2, match.end(), False))
            new_sentence = False
            continue
        out.append(_Token(value, value.lower(), kind, match.start(), match.end(), new_sentence))
        new_sentence = kind == "punct" and value in ".!?"
    return out


def _adjective_like(lower: str) -> bool:
    return len(lower) > 4 and lower.endswith(_ADJ_SUFFIXES) and lower not in _NOUNS_WITH_ADJ_SUFFIX


def _participle(lower: str) -> bool:
    return len(lower) > 4 and lower.endswith(("ed", "ing")) and lower not in _PARTICIPLE_NOUNS


def _is_content(token: _Token) -> bool:
    if token.kind == "num":
        return True
    if token.kind != "word":
        return False
    lower = token.lower
    if lower in FUNCTION_WORDS:
        return False
    if lower in VAGUE_MODIFIERS:
        return token.text[0].isupper() and not token.sentence_start
    if len(lower) > 4 and lower.endswith("ly") and lower not in {"family", "assembly", "supply", "anomaly",
                                                                   "italy", "july", "monopoly", "ally"}:
        return False
    return len(lower) > 2 or token.text.isupper()


def _verb_slot(toks: list[_Token], i: int) -> bool:
    """Whether toks[i] stands where a verb goes (see ``_BEFORE_VERB``, ``_SUBJECTS``)."""
    if i == 0 or toks[i].kind != "word" or toks[i].text[0].isupper():
        return False
    before = toks[i - 1].lower
    after = toks[i + 1].lower if i + 1 < len(toks) else "."
    if before == "to":  # "to infect the host", not "to animals and plants"
        return after in _DETERMINERS
    if before in _BEFORE_VERB:
        return True
    if before in {"and", "or"} and i >= 2 and _verb_slot(toks, i - 2):  # "to create and understand"
        return after in _AFTER_VERB or after in {",", "."}
    return before in _SUBJECTS and (after in _AFTER_VERB or after in {",", "."})


def _listed_verb(toks: list[_Token], i: int) -> bool:
    token = toks[i]
    return (token.kind == "word" and token.lower in COMMON_VERBS
            and not (i > 0 and toks[i - 1].lower in _DETERMINER_BEFORE_NOUN))


def _runs(toks: list[_Token]) -> list[tuple[int, int]]:
    """Maximal content runs as [start, end) token indices, split before a participle that follows
    a content word (it is the verb of a clause: "article describing"), at a verb slot and at a
    listed common verb."""
    runs, start = [], None
    for i, token in enumerate(toks):
        content = _is_content(token) and not _verb_slot(toks, i) and not _listed_verb(toks, i)
        if content and start is not None and token.kind == "word" and _participle(token.lower):
            runs.append((start, i))
            start = None
            continue  # the verb itself opens nothing
        if content and start is None:
            start = i
        elif not content and start is not None:
            runs.append((start, i))
            start = None
    if start is not None:
        runs.append((start, len(toks)))
    return runs


def _trim(toks: list[_Token], start: int, end: int, max_tokens: int) -> tuple[int, int] | None:
    """Trim numbers from both ends and adjective-like / participle heads from the right; keep the
    last ``max_tokens`` tokens (head-final)."""
    while start < end and toks[start].kind == "num":
        start += 1
    while end > start and (toks[end - 1].kind == "num" or _adjective_like(toks[end - 1].lower)
                           or _participle(toks[end - 1].lower)):
        end -= 1
    if end - start > max_tokens:
        start = end - max_tokens
    if start >= end:
        return None
    if end - start == 1 and (_ROMAN.match(toks[start].lower) and not toks[start].text.isupper()):
        return None
    return start, end


def _phrase(text: str, toks: list[_Token], start: int, end: int, pattern: Pattern) -> Phrase | None:
    surface = text[toks[start].start:toks[end - 1].end]
    key = tuple(normalise_tokens(surface))
    if not key:
        return None
    return Phrase(surface, key, toks[start].start, toks[end - 1].end, pattern,
                  sentence_start=toks[start].sentence_start)


def noun_phrases(text: str, *, max_tokens: int = 4) -> list[Phrase]:
    """Noun-phrase candidates of ``text`` in order of appearance (one per occurrence; a span may
    appear twice when two patterns find it, e.g. as a chunk and as "X of Y").

    Example:
        >>> [p.text for p in noun_phrases("Viruses infect living cells, such as bacteria and archaea.")]
        ['Viruses', 'living cells', 'bacteria', 'archaea']
    """
    toks = tokens(text)
    chunks: list[tuple[int, int]] = []
    for start, end in _runs(toks):
        trimmed = _trim(toks, start, end, max_tokens)
        if trimmed is not None:
            chunks.append(trimmed)
    patterns: dict[tuple[int, int], Pattern] = {c: "chunk" for c in chunks}
    # lists after a trigger: chunks separated only by commas / and / or
    lowers = [t.lower for t in toks]
    for i in range(len(toks)):
        for trigger in _LIST_TRIGGERS:
            if tuple(lowers[i:i + len(trigger)]) != trigger:
                continue
            position = i + len(trigger)
            for chunk in chunks:
                if chunk[0] < position:
                    continue
                if any(lowers[j] not in _LIST_GLUE for j in range(position, chunk[0])):
                    break
                patterns[chunk] = "list"
                position = chunk[1]
    # parenthesised names: "( X )" where X is exactly one chunk
    for chunk in chunks:
        s, e = chunk
        if s > 0 and e < len(toks) and toks[s - 1].text == "(" and toks[e].text == ")":
            patterns[chunk] = "paren"
    out: list[Phrase] = []
    for chunk in chunks:
        phrase = _phrase(text, toks, *chunk, patterns[chunk])
        if phrase is not None:
            out.append(phrase)
    # "X of Y": Y after a generic head, the whole span otherwise
    for (s1, e1), (s2, e2) in pairwise(chunks):
        between = lowers[e1:s2]
        if not between or between[0] != "of" or any(w not in {"of", "the", "a", "an"} for w in between):
            continue
        if lowers[e1 - 1] in GENERIC_HEADS:
            phrase = _phrase(text, toks, s2, e2, "of")
        elif (e1 - s1) + (e2 - s2) + 1 <= max_tokens + 2:
            phrase = _phrase(text, toks, s1, e2, "of")
        else:
            phrase = None
        if phrase is not None:
            out.append(phrase)
    out.sort(key=lambda p: (p.start, p.end))
    return out


def attribute_spans(text: str) -> list[Phrase]:
    """``Key: value`` spans (the value, with the key as ``attribute``) and quantities with a unit.

    Example:
        >>> [(p.attribute, p.text) for p in attribute_spans("Brand: Logitech | Color: Black")]
        [('Brand', 'Logitech'), ('Color', 'Black')]
    """
    out: list[Phrase] = []
    for match in _ATTRIBUTE.finditer(text):
        value = match.group("value").strip()
        key = tuple(normalise_tokens(value))
        if key and len(key) <= 6:
            start = match.start("value") + match.group("value").index(value)
            out.append(Phrase(value, key, start, start + len(value), "attribute", match.group("key").strip()))
    toks = tokens(text)
    for i, token in enumerate(toks[:-1]):
        unit = toks[i + 1]
        if token.kind == "num" and unit.kind in ("word", "punct") and unit.lower in _UNITS:
            surface = text[token.start:unit.end]
            out.append(Phrase(surface, tuple(normalise_tokens(surface)), token.start, unit.end, "number"))
    out.sort(key=lambda p: (p.start, p.end))
    return out


def extract_phrases(text: str, *, max_tokens: int = 4) -> list[Phrase]:
    """:func:`noun_phrases` and :func:`attribute_spans` of ``text``, in order of appearance."""
    return sorted(noun_phrases(text, max_tokens=max_tokens) + attribute_spans(text),
                  key=lambda p: (p.start, p.end))


__all__ = ["COMMON_VERBS", "FUNCTION_WORDS", "GENERIC_HEADS", "Phrase", "attribute_spans", "extract_phrases", "noun_phrases",
           "tokens"]
