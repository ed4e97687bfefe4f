"""Who an actor id in the logs is: the registered actor, or a look-alike of one.

The registry (contract §2, v1.1 §5) names each actor's id and the ``aliases`` under which
the platform logs the same account.  :class:`IdentityIndex` answers two questions about an
id seen in a stream:

* :meth:`~IdentityIndex.resolve`: which actor the id *officially* denotes — the actor's own
  id or a declared alias, compared exactly (a declared alias counts for its actor);
* :meth:`~IdentityIndex.near_miss`: for an id that is *not* registered, whether it mimics one
  that is, and why (a :class:`NearMiss`).  A registered id is never a near miss of another
  registered id, however alike they are (``party-a`` and ``party-b``).

An unregistered id is a near miss by one of two rules, tried in this order:

1. **Normalisation**: its look-alike key (:func:`monitor.core.lookalike.key`: NFKC, invisible
   characters, white space, diacritics, UTS #39 confusables, punctuation and symbols, case)
   equals the key of a registered id or alias.  ``reasons`` names the stages needed
   (:func:`monitor.core.lookalike.reasons`), ``characters`` the code points of the observed id
   that the registered one does not have — the disguise, spelled out.
2. **Edit distance**: the optimal-string-alignment distance (Levenshtein plus adjacent
   transpositions) between the keys with digits kept as digits is at least 1 and at most
   ``max_edits(n)`` — 0 for a registered key of ``n < 6`` characters (short ids: one
   character is too much of them), 1 for ``6 <= n < 12``, 2 for ``n >= 12`` — and every
   edit is cosmetic: it involves no digit (``acc-123456`` and ``acc-123457`` are two
   accounts), it falls inside a run of at least four letters of the registered id
   (``party-a``/``party-x`` and ``cdu-bayern``/``csu-bayern`` differ in a short token, a label
   that carries the meaning), and it leaves the run's first letter alone (``ghagazo`` and
   ``whagazo`` are two people's initials; a reader anchors on a word's first letter, so a
   disguise keeps it — Rayner et al. 2006).  An insertion between two runs extends the first
   and counts only if both are long.  Edits are counted between keys, where ``m`` is ``rn``
   and ``i`` is ``l``: deleting an ``m`` is two edits.  Measured: 99.0 % of single typing
   errors inside that scope are found, 12 % of those outside it.

When the best match is equally close to two registered actors (two actors whose ids read
alike — :func:`monitor.core.config.registry_warnings` warns of that when the configuration is
read — or an edit equally far from both), the near miss is *ambiguous*: ``actor`` is None
and ``candidates`` names them all; it never picks one.

The trade-off: normalisation has few false positives (see :mod:`monitor.core.lookalike`); the
edit-distance rule trades some: it reports an honest unrelated account whose name differs by
one letter inside a long word (``greens-de`` beside ``greeks-de``), and it misses typing
disguises in a short token or a number (``jane-dxe``, ``acc-1234`` for ``acc-123``).  The
false-positive rate on unrelated ids is measured in ``tests/monitor/core/test_identity.py`` and
``benchmarks/bench_identity.py``: with a registry of 500 ids, none of 20,000 uniform random
ids, account numbers or simulator-style ids, 0.17 % of made-up personal handles and 2.4 %
of handles built from Zipf-distributed names (namesakes: mostly the same name with other
separators, which *reads* as the actor by design) are reported.

Cost: the indexes are built once (:meth:`IdentityIndex.from_config`); a call is one
dictionary look-up, one key, and at worst one edit-distance scan over the registered keys
of similar length (rapidfuzz, in C), so it is O(registry) per *distinct* id — callers
memoise per id.

References: Unicode Technical Standard #39, *Unicode Security Mechanisms*, §4 Confusable
Detection; F. J. Damerau, "A technique for computer detection and correction of spelling
errors", CACM 7(3), 1964 (transpositions); K. Rayner, S. J. White, R. L. Johnson and S. P.
Liversedge, "Raeding wrods with jubmled lettres: there is a cost", Psychological Science
17(3), 2006 (exterior letters anchor word recognition).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal

import msgspec
from rapidfuzz import process
from rapidfuzz.distance import OSA, Levenshtein

from monitor.core.config import Config
from monitor.core.lookalike import Stage, describe, key, minimal_stages, reasons

__all__ = ["IdentityIndex", "NearMiss", "max_edits"]

_LONG_RUN: Final = 4  # letters: a shorter run is a label (party-a, cdu), not a typing target


def max_edits(length: int) -> int:
    """Edits allowed against a registered key of ``length`` characters: 0 below 6, 1 below
    12, else 2."""
    return 0 if length < 6 else 1 if length < 12 else 2


class NearMiss(msgspec.Struct, frozen=True, kw_only=True):
    """An unregistered actor id that mimics a registered one.

    ``candidates`` are the registered actors it resembles, equally closely (registry order);
    ``matched[i]`` is the id or alias of ``candidates[i]`` that it resembles.  ``actor`` is
    the one actor, or None when the match is ambiguous.  ``rule`` is ``"normalisation"``
    (``distance`` 0, ``reasons`` the look-alike stages needed) or ``"edit_distance"``
    (``distance`` the number of edits between the keys, ``reasons`` the stages that bring
    the two ids to those keys).  ``characters`` lists the observed id's code points that
    the matched id does not contain (``U+0430 CYRILLIC SMALL LETTER A``); ``detail`` is one
    sentence for a reader."""

    observed: str
    actor: str | None
    candidates: tuple[str, ...]
    matched: tuple[str, ...]
    rule: Literal["normalisation", "edit_distance"]
    distance: int
    reasons: tuple[Stage, ...]
    characters: tuple[str, ...]
    detail: str

    @property
    def ambiguous(self) -> bool:
        """True when the id resembles more than one registered actor equally."""
        return len(self.candidates) > 1


@dataclass(frozen=True, slots=True)
class _Target:
    """A registered id or alias, prepared for the edit-distance rule."""

    registered: str
    actor: str
    key: str  # look-alike key with digits kept (concatenated per-character keys)
    run: tuple[int, ...]  # per key character: its run's number (runs: letters or digits)
    size: tuple[int, ...]  # per key character: its letter run's length, 0 in a digit run


def _pieces(text: str) -> list[str]:
    """Per character of the NFKC form, its look-alike key with the digits kept: the
    concatenation is the key used for edit distances, the pieces say where runs end."""
    return [key(c, fold_digits=False) for c in unicodedata.normalize("NFKC", text)]


def _edit_key(text: str) -> str:
    return "".join(_pieces(text))


def _target(registered: str, actor: str) -> _Target:
    """Split the key into runs of letters and runs of digits; a character that vanishes
    from the key (punctuation, a space) ends a run too (``jane-doe``: ``jane``, ``doe``)."""
    runs: list[str] = []
    previous: str | None = None
    for piece in _pieces(registered):
        kind = None if not piece else "digit" if piece.isascii() and piece.isdigit() else "letter"
        if kind is not None and kind == previous:
            runs[-1] += piece
        elif kind is not None:
            runs.append(piece)
        previous = kind
    run: list[int] = []
    size: list[int] = []
    for n, text in enumerate(runs):
        run.extend([n] * len(text))
        size.extend([0 if text.isascii() and text.isdigit() else len(text)] * len(text))
    return _Target(registered, actor, "".join(runs), tuple(run), tuple(size))


def _cosmetic(target: _Target, observed: str) -> bool:
    """Every edit from the registered key to ``observed`` is cosmetic: it involves no digit
    and stays inside a run of at least ``_LONG_RUN`` letters without touching the run's
    first letter (a reader anchors on it); an insertion between two runs extends the
    first, and counts only if both are long (``maria-garcia``, not ``party-a``)."""
    n = len(target.key)
    for op in Levenshtein.editops(target.key, observed):
        if op.tag == "insert":
            left, right = op.src_pos - 1, op.src_pos
            if observed[op.dest_pos].isdigit() or left < 0 or target.size[left] < _LONG_RUN:
                return False
            if (
                right < n
                and target.run[right] != target.run[left]
                and 0 < target.size[right] < _LONG_RUN
            ):
                return False
            continue
        q = op.src_pos
        if target.key[q].isdigit() or (op.tag == "replace" and observed[op.dest_pos].isdigit()):
            return False
        first = q == 0 or target.run[q - 1] != target.run[q]
        if target.size[q] < _LONG_RUN or first:
            return False
    return True


def _characters(observed: str, matched: str) -> tuple[str, ...]:
    """The observed id's distinct code points absent from ``matched``, as ``U+XXXX NAME``,
    leaving out ASCII letters that ``matched`` has in the other case (upper case is plain
    to see; an invisible or foreign character is not)."""
    seen: dict[str, None] = {}
    folded = matched.lower()
    for char in observed:
        if char in matched or (char.isascii() and char.isalpha() and char.lower() in folded):
            continue
        seen.setdefault(char)
    return tuple(f"U+{ord(c):04X} {unicodedata.name(c, 'unnamed')}" for c in seen)


class IdentityIndex:
    """The registry's ids and aliases, indexed for exact resolution and look-alike search.

    Built once per configuration; :meth:`resolve` and :meth:`near_miss` are pure and
    thread-safe.  See the module docstring for the rules."""

    def __init__(self, entries: Iterable[tuple[str, str]]) -> None:
        """``entries``: ``(registered id or alias, actor id)`` pairs, registry order first."""
        self._exact: dict[str, str] = {}
        self._by_key: dict[str, list[tuple[str, str]]] = {}
        self._targets: list[_Target] = []
        for registered, actor in entries:
            if registered in self._exact:
                continue
            self._exact[registered] = actor
            k = key(registered)
            if k:
                self._by_key.setdefault(k, []).append((registered, actor))
            target = _target(registered, actor)
            if target.key:
                self._targets.append(target)
        # by key length: a key within two edits of another is within two of its length
        self._by_length: dict[int, tuple[list[str], list[_Target]]] = {}
        for t in self._targets:
            if max_edits(len(t.key)):
                keys, targets = self._by_length.setdefault(len(t.key), ([], []))
                keys.append(t.key)
                targets.append(t)
        self._order = {t.registered: n for n, t in enumerate(self._targets)}

    @classmethod
    def from_config(cls, config: Config) -> IdentityIndex:
        """The index of ``config``'s registry: each actor's id, then its aliases."""
        return cls((name, a.actor) for a in config.actors for name in (a.actor, *a.aliases))

    def resolve(self, actor_id: str) -> str | None:
        """The registered actor ``actor_id`` denotes: an actor's own id or a declared alias,
        exactly as written; None for anything else."""
        return self._exact.get(actor_id)

    def near_miss(self, actor_id: str) -> NearMiss | None:
        """How an unregistered ``actor_id`` mimics a registered id or alias, or None: for a
        registered id or alias, for an id that resembles none, and for an id whose key is
        empty (nothing but punctuation, spaces or invisible characters)."""
        if actor_id in self._exact:
            return None
        k = key(actor_id)
        if not k:
            return None
        hits = self._by_key.get(k)
        if hits:
            return self._result(actor_id, hits, "normalisation", 0)
        return self._nearest(actor_id)

    def _nearest(self, actor_id: str) -> NearMiss | None:
        observed = _edit_key(actor_id)
        best: list[tuple[str, str]] = []
        best_distance = 0
        for length in range(len(observed) - 2, len(observed) + 3):
            if length not in self._by_length:
                continue
            keys, targets = self._by_length[length]
            for _, distance, i in process.extract(
                observed, keys, scorer=OSA.distance, score_cutoff=2, limit=None
            ):
                target = targets[i]
                if not 0 < distance <= max_edits(length) or not _cosmetic(target, observed):
                    continue
                if not best or distance < best_distance:
                    best, best_distance = [], distance
                if distance == best_distance:
                    best.append((target.registered, target.actor))
        if not best:
            return None
        best.sort(key=lambda hit: self._order[hit[0]])
        return self._result(actor_id, best, "edit_distance", best_distance)

    def _result(
        self,
        observed: str,
        hits: list[tuple[str, str]],
        rule: Literal["normalisation", "edit_distance"],
        distance: int,
    ) -> NearMiss:
        first: dict[str, str] = {}  # actor → the first of its ids/aliases that matched
        for registered, actor in hits:
            first.setdefault(actor, registered)
        candidates = tuple(first)
        matched = tuple(first.values())
        shown = matched[0]
        if rule == "normalisation":
            why = reasons(observed, shown)
            detail = f"{observed!r} reads as {shown!r}: they differ only in {describe(why)}"
        else:
            why = minimal_stages(
                lambda stages: (
                    OSA.distance(
                        key(observed, stages, fold_digits=False),
                        key(shown, stages, fold_digits=False),
                    )
                    <= distance
                )
            )
            plural = "s" if distance > 1 else ""
            aside = f" once differences in {describe(why)} are set aside" if why else ""
            detail = f"{observed!r} is {distance} edit{plural} from {shown!r}{aside}"
        if len(candidates) > 1:
            detail += (
                f"; ambiguous: it resembles {len(candidates)} registered actors "
                f"({', '.join(map(repr, candidates))}) equally"
            )
        return NearMiss(
            observed=observed,
            actor=None if len(candidates) > 1 else candidates[0],
            candidates=candidates,
            matched=matched,
            rule=rule,
            distance=distance,
            reasons=why,
            characters=_characters(observed, shown),
            detail=detail,
        )
