"""Account ids for the identity tests and ``benchmarks/bench_identity.py``: hostile disguises of a
registered id, and unrelated honest ids of the shapes platforms use.

Disguises are the ones a platform can apply to hide an actor (issue 13): each takes the id and
a ``random.Random`` and returns a new spelling that a reader takes for the same account.
Unrelated ids are drawn from generators that make *different* accounts: the false-positive
rate of ``IdentityIndex.near_miss`` is measured on them.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable

Disguise = Callable[[str, random.Random], str]

# Latin letter → look-alikes from other scripts whose capitals also look like the Latin
# capital (so that upper-casing after substituting keeps the disguise a look-alike).
HOMOGLYPHS: dict[str, tuple[str, ...]] = {
    "a": ("\u0430", "\u03b1"),  # Cyrillic а, Greek α
    "c": ("\u0441", "\u2ca5"),  # Cyrillic с, Coptic ⲥ
    "e": ("\u0435",),  # Cyrillic е
    "i": ("\u0456", "\u03b9"),  # Cyrillic і, Greek ι
    "j": ("\u0458",),  # Cyrillic ј
    "o": ("\u043e", "\u03bf", "0"),  # Cyrillic о, Greek ο, digit zero
    "p": ("\u0440", "\u03c1"),  # Cyrillic р, Greek ρ
    "s": ("\u0455",),  # Cyrillic ѕ
    "x": ("\u0445", "\u2179"),  # Cyrillic х, small roman numeral ten ⅹ
    "y": ("\u0443",),  # Cyrillic у
    "l": ("1", "I", "\u04cf"),  # digit one, capital I, Cyrillic palochka ӏ
    "1": ("l", "I"),
    "0": ("O", "o", "\u041e"),  # Latin O/o, Cyrillic О
}
INVISIBLE = ("\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u200e", "\u200f")
MARKS = ("\u0301", "\u0300", "\u0308", "\u0327", "\u0323", "\u030c")


def _at(text: str, rng: random.Random) -> int:
    return rng.randrange(len(text) + 1)


def _insert(text: str, rng: random.Random, piece: str) -> str:
    i = _at(text, rng)
    return text[:i] + piece + text[i:]


def upper(text: str, rng: random.Random) -> str:
    return text.upper()


def upper_one(text: str, rng: random.Random) -> str:
    i = rng.randrange(len(text))
    return text[:i] + text[i].upper() + text[i + 1 :]


def edge_space(text: str, rng: random.Random) -> str:
    return rng.choice((" " + text, text + " ", "\t" + text, text + "\u3000"))


def nbsp(text: str, rng: random.Random) -> str:
    return _insert(text, rng, rng.choice(("\u00a0", "\u202f", "\u2009")))


def invisible(text: str, rng: random.Random) -> str:
    return _insert(text, rng, rng.choice(INVISIBLE))


def at_prefix(text: str, rng: random.Random) -> str:
    return "@" + text


def separators(text: str, rng: random.Random) -> str:
    if "-" in text:
        return text.replace("-", rng.choice(("_", ".", "", " ", "\u2010", "\u2013")))
    return _insert(text, rng, rng.choice(("_", ".", "-")))


def homoglyph(text: str, rng: random.Random) -> str:
    spots = [i for i, c in enumerate(text) if c in HOMOGLYPHS]
    if not spots:
        return text
    i = rng.choice(spots)
    return text[:i] + rng.choice(HOMOGLYPHS[text[i]]) + text[i + 1 :]


def fullwidth(text: str, rng: random.Random) -> str:
    def wide(c: str) -> str:
        return chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c

    if rng.random() < 0.5:
        return "".join(map(wide, text))
    i = rng.randrange(len(text))
    return text[:i] + wide(text[i]) + text[i + 1 :]


def combining(text: str, rng: random.Random) -> str:
    i = rng.randrange(len(text))
    return text[: i + 1] + rng.choice(MARKS) + text[i + 1 :]


def rtl_override(text: str, rng: random.Random) -> str:
    if rng.random() < 0.5:
        return "\u202e" + text + "\u202c"
    return _insert(text, rng, rng.choice(("\u202e", "\u2067", "\u2066", "\u2069", "\u061c")))


DISGUISES: dict[str, Disguise] = {
    "upper": upper,
    "upper_one": upper_one,
    "edge_space": edge_space,
    "nbsp": nbsp,
    "invisible": invisible,
    "at_prefix": at_prefix,
    "separators": separators,
    "homoglyph": homoglyph,
    "fullwidth": fullwidth,
    "combining": combining,
    "rtl_override": rtl_override,
}


def disguise(text: str, names: list[str], rng: random.Random) -> str:
    """``text`` with the named disguises applied in order."""
    for name in names:
        text = DISGUISES[name](text, rng)
    return text


# --- unrelated honest ids ------------------------------------------------------------------

_CONSONANTS = "bcdfghjklmnprstvwz"
_VOWELS = "aeiou"


def pseudo_name(rng: random.Random, syllables: tuple[int, int] = (2, 4)) -> str:
    """A pronounceable made-up name (about 90**3 of three syllables): a large name space."""
    return "".join(
        rng.choice(_CONSONANTS) + rng.choice(_VOWELS) for _ in range(rng.randint(*syllables))
    )


class _Names:
    """Zipf-distributed name pools (weight 1/rank), as real first and family names are: a
    few names are shared by many people, so namesakes are common."""

    def __init__(self, seed: int = 7, first: int = 1_000, last: int = 3_000) -> None:
        rng = random.Random(seed)
        self.first = [pseudo_name(rng, (2, 3)) for _ in range(first)]
        self.last = [pseudo_name(rng, (2, 4)) for _ in range(last)]
        self.w_first = [1 / r for r in range(1, first + 1)]
        self.w_last = [1 / r for r in range(1, last + 1)]

    def pick(self, rng: random.Random) -> tuple[str, str]:
        return (rng.choices(self.first, self.w_first)[0], rng.choices(self.last, self.w_last)[0])


_NAMES = _Names()


def _handle(first: str, last: str, rng: random.Random) -> str:
    """``first.last``, ``firstlast84``, ``f_last``, ``last-official``…"""
    sep = rng.choice(("", ".", "_", "-"))
    shape = rng.random()
    if shape < 0.4:
        out = f"{first}{sep}{last}"
    elif shape < 0.6:
        out = f"{first[0]}{sep}{last}"
    elif shape < 0.8:
        out = f"{first}{sep}{last}{rng.randint(1, 99)}"
    else:
        out = f"{last}{sep}{rng.choice(('official', 'mp', 'news', 'team', 'info'))}"
    return out


def handle(rng: random.Random) -> str:
    """A person's handle, from made-up names that rarely repeat (a large name space)."""
    return _handle(pseudo_name(rng), pseudo_name(rng), rng)


def namesake(rng: random.Random) -> str:
    """A person's handle, from Zipf-distributed names: namesakes of registered actors."""
    return _handle(*_NAMES.pick(rng), rng)


def uniform(rng: random.Random) -> str:
    """Random characters of the usual id alphabet, 6 to 16 of them."""
    alphabet = string.ascii_lowercase + string.digits + "_-"
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(6, 16)))


def numbered(rng: random.Random) -> str:
    """Platform account numbers: ``acc-482913``, ``user_1029384``, ``7731029384``."""
    number = rng.randint(100_000, 9_999_999_999)
    return rng.choice((f"acc-{number}", f"user_{number}", str(number)))


def simulator_like(rng: random.Random) -> str:
    """The simulator's shapes: ``de-c-cand-3``, ``fr-media-4``, ``bg-0042``."""
    j = rng.choice(("de", "fr", "at", "pl", "it"))
    x = rng.choice(string.ascii_lowercase[:8])
    return rng.choice(
        (
            f"{j}-{x}-cand-{rng.randint(1, 40)}",
            f"{j}-{x}-party",
            f"{j}-media-{rng.randint(1, 20)}",
            f"bg-{rng.randint(1, 9999):04d}",
        )
    )


UNRELATED: dict[str, Callable[[random.Random], str]] = {
    "handle": handle,
    "namesake": namesake,
    "uniform": uniform,
    "numbered": numbered,
    "simulator": simulator_like,
}


def registry_ids(rng: random.Random, n: int) -> list[str]:
    """``n`` distinct registered ids, a mix of all the unrelated shapes."""
    makers = list(UNRELATED.values())
    out: dict[str, None] = {}
    while len(out) < n:
        out.setdefault(makers[len(out) % len(makers)](rng))
    return list(out)


def false_positives(seed: int, n_registry: int, n_unrelated: int) -> dict[str, dict[str, int]]:
    """Per unrelated shape: how many of ``n_unrelated`` fresh ids (none registered) are
    reported as near misses of a registry of ``n_registry`` mixed ids, by rule."""
    from monitor.core.identity import IdentityIndex
    from monitor.core.lookalike import key

    rng = random.Random(seed)
    registered: list[str] = []
    keys: set[str] = set()
    for name in registry_ids(rng, n_registry * 2):
        if len(registered) < n_registry and key(name) not in keys:
            registered.append(name)
            keys.add(key(name))
    index = IdentityIndex((name, name) for name in registered)
    taken = set(registered)
    out: dict[str, dict[str, int]] = {}
    for shape, make in UNRELATED.items():
        counts = {"n": 0, "normalisation": 0, "edit_distance": 0}
        while counts["n"] < n_unrelated:
            name = make(rng)
            if name in taken:
                continue
            counts["n"] += 1
            hit = index.near_miss(name)
            if hit is not None:
                counts[hit.rule] += 1
        out[shape] = counts
    return out
