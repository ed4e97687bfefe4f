"""Look-alike keys (``monitor.core.lookalike``): which spellings of an id read as the same account."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.core.lookalike import STAGES, describe, key, minimal_stages, prototypes, reasons

ANY_TEXT = st.text(st.characters(blacklist_categories=()), max_size=24)


@pytest.mark.parametrize(
    ("disguised", "plain"),
    [
        ("ACC-123", "acc-123"),
        ("ＡＣＣ－１２３", "acc-123"),  # full-width
        ("acc-123\u00a0", "acc-123"),  # no-break space
        ("acc\u200b-123", "acc-123"),  # zero-width space
        ("\u202eacc-123\u202c", "acc-123"),  # right-to-left override
        ("@acc_123", "acc-123"),
        ("\u0430cc-123", "acc-123"),  # Cyrillic а
        ("acc-I23", "acc-123"),  # capital I for 1
        ("paypaI", "paypal"),  # capital I for l
        ("JAIL", "jail"),  # capital I for i
        ("ВОВ", "bob"),  # Cyrillic capitals Ve, O
        ("𝐣𝐚𝐧𝐞", "jane"),  # mathematical bold
        ("ja\u0301ne", "jane"),  # combining acute
        ("jane\ufe0f", "jane"),  # variation selector
        ("ja\u3164ne", "jane"),  # Hangul filler (a letter that renders as nothing)
        ("j\u0430n\u0435-d\u043e\u0435", "jane-doe"),
    ],
)
def test_disguises_share_the_key(disguised: str, plain: str) -> None:
    assert key(disguised) == key(plain) != ""


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("acc-123", "acc-124"),
        ("party-a", "party-b"),
        ("cdu", "csu"),
        ("jane", "june"),
        ("acc-12", "acc-123"),
        ("rn", "n"),
    ],
)
def test_different_ids_keep_different_keys(a: str, b: str) -> None:
    assert key(a) != key(b)


def test_the_bundled_table_is_unicodes() -> None:
    # rows of confusables.txt (UTS #39): source → prototype, through the package's data
    assert key("\u0430", ["confusable"]) == "a"  # CYRILLIC SMALL LETTER A
    assert key("0", ["confusable"]) == "O"
    assert key("1", ["confusable"]) == key("|", ["confusable"]) == "l"
    assert key("m", ["confusable"]) == "rn"
    assert key("\u2013", ["confusable"]) == "-"  # EN DASH
    assert key("\u03bf", ["confusable"]) == "o"  # GREEK SMALL LETTER OMICRON


def test_digits_can_be_kept_apart() -> None:
    assert key("acc-10") == key("acc-lo")
    assert key("acc-10", fold_digits=False) != key("acc-lo", fold_digits=False)
    assert key("ACC_\uff11\uff10", fold_digits=False) == "acc10"  # full-width digits


def test_prototypes_from_a_symmetric_table() -> None:
    table = {
        "a": {"\u0430", "\u03b1"},
        "\u0430": {"a"},
        "\u03b1": {"a"},  # a star: a is the centre
        "\u0561": {"\u0570"},
        "\u0570": {"\u0561"},  # a pair: lower code point
        "x": {"\u0445"},
        "\u0445": {"x"},  # a pair with ASCII: x
        "m": {"rn"},
        "rn": {"m", "\U0001d426"},
        "\U0001d426": {"rn"},  # a longer target
    }
    assert prototypes(table) == {
        "\u0430": "a",
        "\u03b1": "a",
        "\u0570": "\u0561",
        "\u0445": "x",
        "m": "rn",
        "\U0001d426": "rn",
    }


@settings(max_examples=300, deadline=None)
@given(ANY_TEXT)
def test_key_is_idempotent_on_any_text(text: str) -> None:
    once = key(text)
    assert key(once) == once
    assert key(text, fold_digits=False) == key(key(text, fold_digits=False), fold_digits=False)


@settings(max_examples=200, deadline=None)
@given(ANY_TEXT)
def test_key_has_no_invisible_space_punctuation_or_capital(text: str) -> None:
    for char in key(text):
        assert unicodedata.category(char) not in ("Cc", "Cf", "Zs", "Mn", "Me"), repr(char)
        assert unicodedata.category(char)[0] not in "PS", repr(char)
        assert char.casefold() == char, repr(char)


@pytest.mark.parametrize(
    ("observed", "registered", "expected"),
    [
        ("ACC-123", "acc-123", ("case",)),
        ("acc-123 ", "acc-123", ("whitespace",)),
        ("acc\u200b-123", "acc-123", ("invisible",)),
        ("acc\u00ad-123", "acc-123", ("invisible",)),  # soft hyphen
        ("@acc-123", "acc-123", ("punctuation",)),
        ("acc\u2013123", "acc-123", ("punctuation",)),  # en dash: punctuation suffices
        ("acc 123", "acc-123", ("whitespace", "punctuation")),
        ("\u0430cc-123", "acc-123", ("confusable",)),
        ("\u0391CC-123", "acc-123", ("confusable", "case")),  # Greek capital alpha
        ("ＡＣＣ-123", "acc-123", ("compatibility", "case")),
        ("ac\u0107-123", "acc-123", ("diacritics",)),
        ("acc-123", "acc-123", ()),
    ],
)
def test_reasons_are_a_minimal_set_of_stages(
    observed: str, registered: str, expected: tuple[str, ...]
) -> None:
    assert reasons(observed, registered) == expected
    if expected:  # minimal: without any one of them the two no longer read alike
        for stage in expected:
            rest = [s for s in STAGES if s in expected and s != stage]
            assert key(observed, rest) != key(registered, rest)


def test_reasons_refuse_ids_that_do_not_read_alike() -> None:
    with pytest.raises(ValueError, match="does not read as"):
        reasons("acc-124", "acc-123")
    with pytest.raises(ValueError, match="does not read as"):
        reasons("--", "\u2014")  # both empty keys: nothing to read


def test_unknown_stage_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown stage 'kase'"):
        key("x", ["kase"])  # type: ignore[list-item]


def test_minimal_stages_keeps_what_is_needed() -> None:
    assert minimal_stages(lambda s: "case" in s and "whitespace" in s) == ("whitespace", "case")
    assert minimal_stages(lambda s: True) == ()


def test_describe() -> None:
    assert describe(()) == ""
    assert describe(("case",)) == "letter case"
    assert (
        describe(("invisible", "whitespace", "case"))
        == "invisible characters, spaces and letter case"
    )
