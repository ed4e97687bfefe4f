"""Look-alike keys for account ids: which spellings a reader takes for the same account.

A platform that wants a registered actor's items to escape the monitor can log them under an
id that a person reads as the actor's and a computer does not: ``ACC-123``, ``acc-123 ``
(a trailing space), ``acc\\u200b-123`` (a zero-width space), ``@acc-123``, ``acc_123``,
``аcc-123`` (a Cyrillic ``а``).  :func:`key` maps every one of them to ``accl23``.  It
applies these stages, in this order, and repeats them until nothing changes:

=================  =========================================================================
stage              what it does
=================  =========================================================================
``compatibility``  Unicode NFKC (UAX #15): full-width ``ＡＣＣ`` → ``ACC``, ``ﬁ`` → ``fi``,
                   no-break space → space, mathematical ``𝐚`` → ``a``, ``²`` → ``2``
``invisible``      removes control and format characters (general categories Cc, Cf, Cs:
                   zero-width space, joiner and non-joiner, soft hyphen, word joiner, BOM,
                   bidirectional overrides and isolates, tag characters) and the
                   default-ignorable blanks that are not Cf (Hangul fillers, variation
                   selectors, combining grapheme joiner, Mongolian free variation
                   selectors, the braille blank)
``whitespace``     removes separators and white space (Z*, :meth:`str.isspace`)
``diacritics``     NFD, then removes non-spacing and enclosing marks (Mn, Me): ``ć`` → ``c``
``confusable``     each character of the NFD form → its prototype in Unicode's confusables
                   table, then NFD (the skeleton of UTS #39 §4): Cyrillic ``а`` → ``a``,
                   ``0`` and Greek ``Ο`` → ``O``, ``1``, ``I`` and ``|`` → ``l``,
                   ``m`` → ``rn``, ``–`` → ``-``
``punctuation``    removes punctuation and symbols (P*, S*): ``-``, ``_``, ``.``, ``@``, ``★``
``case``           full case folding (:meth:`str.casefold`); with the confusable stage,
                   also ``i`` → ``l``
=================  =========================================================================

The confusable stage runs *before* the case fold, as UTS #39 intends: a capital's glyph is
what the reader sees (Cyrillic ``В`` reads as ``B``, while its small letter ``в`` does not
read as ``b``).  One letter needs more: ``I`` is the capital of ``i`` and the look-alike of
``l`` (``JAIL`` reads as ``jail``, ``paypaI`` as ``paypal``), so a key that forgives case
and look-alikes together cannot keep ``i`` and ``l`` apart, and folds ``i`` into ``l``.

Guarantees: ``key(key(x)) == key(x)`` (tested on arbitrary text); the key depends on
nothing but ``x`` and the bundled data (nothing is downloaded); ``key(x) == ""`` for an id
with no letter, digit or other visible character, and an empty key never matches anything
(the callers' rule).  :func:`reasons` names the stages that two ids need to read alike.

The trade-off.  A false positive (two different honest accounts with one key) needs ids
that differ *only* in case, spacing, punctuation, accents or look-alike characters:
``jane.doe`` and ``janedoe``, ``rené`` and ``rene``, ``acc-10`` and ``acc-lo`` (UTS #39
merges ``1``/``l``/``I`` and ``0``/``O``: that is what a spoofing check needs), ``bill``
and ``biil`` (``i``/``l``, above).  On platforms
whose account ids are case-insensitive ASCII such pairs are rare, and where one occurs the
finding names both ids for an investigator to check.  A false negative is a look-alike
outside the table (it is curated: ``rn``/``m`` is in, ``cl``/``d`` and ``vv``/``w`` are
not), a character that NFKC rewrites into something else before the table sees it (79
of the table's sources, nearly all Arabic presentation forms; among Latin look-alikes the
Greek lunate sigma ``ϲ``, which NFKC makes a final sigma), a transliteration
(``Moskva``/``Москва``), or anything that is not a visual
look-alike at all, such as a different number; :mod:`monitor.core.identity` adds a small
edit distance for the typing errors, nothing for numbers.

Data.  The confusables table comes from the ``confusable-homoglyphs`` package, which ships
Unicode's ``confusables.txt`` as JSON (version 3.3.1: the file of January 2024, Unicode
15.1); nothing is fetched at run time.  That JSON lists, for every character, its
homoglyphs in *both* directions, so the prototype is recovered (:func:`prototypes`): in
``confusables.txt`` every source character maps to exactly one target and no target is
itself a source, so the classes are stars — the prototype and the characters mapping to
it.  A class of three or more has one centre, the prototype; a target of several
characters (``m`` → ``rn``) is recognisable by its length.  For a two-member class the
direction cannot be told, and the ASCII member (else the lower code point) stands for
both; which of the two stands for the class never changes which ids read alike under the
confusable stage.  Checked against the ``confusables.txt`` of Unicode 13.0: all of its
6,311 mappings are in the table except four that other stages cover (line and paragraph
separator → space, Hangul filler, circled CC).

References: Unicode Technical Standard #39, *Unicode Security Mechanisms*, §4 Confusable
Detection (https://www.unicode.org/reports/tr39/#Confusable_Detection); UAX #15,
*Unicode Normalization Forms*; UAX #44 (general categories).
"""

from __future__ import annotations

import functools
import json
import unicodedata
from collections.abc import Callable, Collection, Iterable, Mapping
from importlib.resources import files
from typing import Final, Literal

__all__ = ["STAGES", "Stage", "describe", "key", "minimal_stages", "prototypes", "reasons"]

Stage = Literal[
    "compatibility", "invisible", "whitespace", "diacritics", "confusable", "punctuation", "case"
]
STAGES: Final[tuple[Stage, ...]] = (
    "compatibility",
    "invisible",
    "whitespace",
    "diacritics",
    "confusable",
    "punctuation",
    "case",
)

# Default-ignorable characters (UAX #44 Default_Ignorable_Code_Point) that are not Cc/Cf and
# render as nothing, plus the braille blank, which renders as a space.
_BLANKS: Final = frozenset(
    "\u034f\u115f\u1160\u17b4\u17b5\u180b\u180c\u180d\u180f\u2800\u3164\uffa0"
    + "".join(map(chr, range(0xFE00, 0xFE10)))
    + "".join(map(chr, range(0xE0100, 0xE01F0)))
)
_DIGITS: Final = frozenset("0123456789")
_MAX_ROUNDS: Final = 8

_PHRASES: Final[dict[Stage, str]] = {
    "compatibility": "compatibility forms (full-width, styled or ligature letters)",
    "invisible": "invisible characters",
    "whitespace": "spaces",
    "diacritics": "accents or combining marks",
    "confusable": "look-alike characters",
    "punctuation": "punctuation or symbols",
    "case": "letter case",
}


def prototypes(table: Mapping[str, Iterable[str]]) -> dict[str, str]:
    """Character → its prototype, from a symmetric homoglyph table (each character → the
    strings it is confusable with, in both directions, as ``confusable-homoglyphs`` ships
    ``confusables.txt``).

    A character with a homoglyph of several characters maps to it (only targets are
    longer than one character); otherwise its class is the connected set of single
    characters, a star around the prototype, and every member maps to the centre (a class
    of two: its ASCII member, else its lower code point).  Characters not in the table
    are their own prototype and are left out."""
    single: dict[str, set[str]] = {}
    out: dict[str, str] = {}
    for char, glyphs in table.items():
        if len(char) != 1:
            continue
        others = set(glyphs)
        longer = sorted(g for g in others if len(g) > 1)
        if longer:
            out[char] = longer[0]
        else:
            single[char] = {g for g in others if len(g) == 1}
    seen: set[str] = set()
    for start in single:
        if start in seen:
            continue
        stack, members = [start], set()
        while stack:
            char = stack.pop()
            if char not in members and char in single:
                members.add(char)
                stack.extend(single[char])
        seen |= members
        if len(members) < 2:
            continue
        centres = [c for c in members if len(single[c] & members) == len(members) - 1]
        centre = (
            min(centres, key=ord)
            if len(members) > 2 and centres
            else min(members, key=lambda c: (not c.isascii(), ord(c)))
        )
        for char in members:
            if char != centre:
                out[char] = centre
    return out


@functools.cache
def _table() -> dict[str, str]:
    """The bundled confusables table as character → prototype (read once)."""
    raw = json.loads(
        (files("confusable_homoglyphs") / "confusables.json").read_text(encoding="utf-8")
    )

    def clean(text: str) -> str:
        # the package copies the left-to-right marks that confusables.txt's comments put
        # around right-to-left characters
        return text.replace("\u200e", "").replace("\u200f", "")

    table: dict[str, set[str]] = {}
    for char, glyphs in raw.items():
        table.setdefault(clean(char), set()).update(clean(g["c"]) for g in glyphs)
    return prototypes(table)


def _invisible(char: str) -> bool:
    return unicodedata.category(char) in ("Cc", "Cf", "Cs") or char in _BLANKS


def _space(char: str) -> bool:
    return char.isspace() or unicodedata.category(char).startswith("Z")


def _step(text: str, stages: frozenset[Stage], fold_digits: bool) -> str:
    """One pass of the per-character stages (all but ``compatibility``), in order."""
    if "invisible" in stages:
        text = "".join(c for c in text if not _invisible(c))
    if "whitespace" in stages:
        text = "".join(c for c in text if not _space(c))
    if "diacritics" in stages:
        text = "".join(
            c
            for c in unicodedata.normalize("NFD", text)
            if unicodedata.category(c) not in ("Mn", "Me")
        )
    if "confusable" in stages:
        table = _table()
        text = unicodedata.normalize(
            "NFD",
            "".join(
                c if not fold_digits and c in _DIGITS else table.get(c, c)
                for c in unicodedata.normalize("NFD", text)
            ),
        )
    if "punctuation" in stages:
        text = "".join(c for c in text if unicodedata.category(c)[0] not in "PS")
    if "case" in stages:
        text = text.casefold()
        if "confusable" in stages:
            text = text.replace("i", "l")  # I is the capital of i and the look-alike of l
    return text


@functools.lru_cache(maxsize=1 << 16)
def _char(char: str, stages: frozenset[Stage], fold_digits: bool) -> str:
    """The per-character stages applied to ``char`` until nothing changes (a case fold can
    produce a character the confusables table maps, and the other way round)."""
    text = char
    for _ in range(_MAX_ROUNDS):
        done = _step(text, stages, fold_digits)
        if done == text:
            break
        text = done
    return text


def key(text: str, stages: Collection[Stage] = STAGES, *, fold_digits: bool = True) -> str:
    """The look-alike key of ``text``: the ``stages`` (default: all, see the module
    docstring) applied until nothing changes.  Two ids read alike iff their keys are equal
    and not empty.

    ``fold_digits=False`` leaves the ASCII digits out of the confusable stage (``0`` stays
    ``0``, ``1`` stays ``1``): for comparing ids in which a different digit is a different
    account, not a disguise."""
    enabled = frozenset(stages)
    unknown = enabled.difference(STAGES)
    if unknown:
        raise ValueError(f"unknown stage {sorted(unknown)[0]!r} (known: {', '.join(STAGES)})")
    for _ in range(_MAX_ROUNDS):
        before = text
        if "compatibility" in enabled:
            text = unicodedata.normalize("NFKC", text)
        text = "".join(_char(c, enabled, fold_digits) for c in text)
        if text == before:
            break
    return text


_DROP_ORDER: Final[tuple[Stage, ...]] = (
    "confusable",
    "compatibility",
    "diacritics",
    "punctuation",
    "whitespace",
    "invisible",
    "case",
)


def minimal_stages(holds: Callable[[frozenset[Stage]], bool]) -> tuple[Stage, ...]:
    """A minimal set of stages for which ``holds`` stays true, in :data:`STAGES` order,
    found greedily: starting from all stages (``holds(all)`` is assumed), each is dropped
    when ``holds`` stays true without it, the most specific first (confusable,
    compatibility, diacritics, punctuation, whitespace, invisible, case) — so an en dash
    for a hyphen is explained as punctuation rather than a look-alike."""
    kept = frozenset(STAGES)
    for stage in _DROP_ORDER:
        trial = kept - {stage}
        if holds(trial):
            kept = trial
    return tuple(s for s in STAGES if s in kept)


def reasons(observed: str, registered: str) -> tuple[Stage, ...]:
    """The stages that ``observed`` and ``registered`` need to read alike (a minimal set,
    :func:`minimal_stages`): empty if they are equal, ``ValueError`` if they do not read
    alike at all.  Full-width capitals are ``("compatibility", "case")``; a Greek capital
    alpha for an ``a`` is ``("confusable", "case")``."""
    if observed == registered:
        return ()
    if not key(observed) or key(observed) != key(registered):
        raise ValueError(f"{observed!r} does not read as {registered!r}")
    return minimal_stages(lambda stages: key(observed, stages) == key(registered, stages))


def describe(stages: Iterable[Stage]) -> str:
    """``("invisible", "case")`` → ``"invisible characters and letter case"``."""
    words = [_PHRASES[s] for s in stages]
    if len(words) < 2:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]
