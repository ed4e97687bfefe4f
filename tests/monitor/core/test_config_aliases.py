"""Actor aliases in the configuration (contract v1.1 §5, issue 13 item 1): ``aliases`` on an
actor entry and as an ``actors_file`` column, validated; registry entries that read alike are
a warning."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fuzz.properties import check_config_obj
from monitor.core.config import ConfigError, ConfigWarning, parse_config, registry_warnings
from monitor.core.identity import IdentityIndex
from tests.factories import config, config_dict


def actors(*entries: dict) -> dict:
    return config_dict(actors=list(entries), disclosures=[])


def test_aliases_are_read_and_stripped_like_ids() -> None:
    cfg = parse_config(
        actors({"actor": " acc-1 ", "aliases": [" jane.doe ", "\u00a0JD-2026"]}, {"actor": "acc-2"})
    )
    assert cfg.registry["acc-1"].aliases == ("jane.doe", "JD-2026")
    assert cfg.registry["acc-2"].aliases == ()
    assert cfg.aliases == {"jane.doe": "acc-1", "JD-2026": "acc-1"}


def test_aliases_from_the_actors_file(tmp_path: Path) -> None:
    (tmp_path / "actors.csv").write_text(
        "actor,name,kind,group,regions,aliases\n"
        "acc-9,Nine,party,party-b,DE;AT,nine-official; 99001\n"
        'acc-10,Ten,candidate,party-b,DE,"ten,ten-2026"\n'
        "acc-11,Eleven,media,,DE,\n",
        encoding="utf-8",
    )
    cfg = parse_config(config_dict(actors_file="actors.csv"), base_dir=tmp_path)
    assert cfg.registry["acc-9"].aliases == ("nine-official", "99001")
    assert cfg.registry["acc-10"].aliases == ("ten", "ten-2026")
    assert cfg.registry["acc-11"].aliases == ()
    assert cfg.aliases["99001"] == "acc-9"


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([{"actor": "a", "aliases": ["b", ""]}], "c.yaml: actors[0].aliases[1]: empty id"),
        ([{"actor": "a", "aliases": ["b", "   "]}], "c.yaml: actors[0].aliases[1]: empty id"),
        (
            [{"actor": "a", "aliases": [" a"]}],
            "c.yaml: actors[0].aliases[0]: 'a' is the actor's own id",
        ),
        (
            [{"actor": "a", "aliases": ["b", "b "]}],
            "c.yaml: actors[0].aliases[1]: 'b' is listed twice",
        ),
        (
            [{"actor": "a"}, {"actor": "b", "aliases": ["a"]}],
            "c.yaml: actors[1].aliases: alias 'a' of 'b' is the id of actors[0]",
        ),
        (
            [{"actor": "a", "aliases": ["x"]}, {"actor": "b", "aliases": ["x"]}],
            "c.yaml: actors[1].aliases: alias 'x' of 'b' is also an alias of actors[0] ('a')",
        ),
        (
            [{"actor": "a", "aliases": [12345]}],
            "c.yaml: actors[0].aliases[0]: Input should be a valid string",
        ),
        (
            [{"actor": "a", "aliases": 5}],
            "c.yaml: actors[0].aliases: Input should be a valid tuple",
        ),
        (
            [{"actor": "a", "alias": ["b"]}],
            "c.yaml: actors[0].alias: unknown key; did you mean 'aliases'?",
        ),
    ],
)
def test_invalid_aliases_are_one_line(entries: list[dict], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(actors(*entries), source="c.yaml")
    assert str(err.value).startswith(message), str(err.value)
    assert "\n" not in str(err.value)


def test_a_disclosure_naming_an_alias_says_whose_it_is() -> None:
    d = config_dict()
    d["actors"][1]["aliases"] = ["john-roe"]
    d["disclosures"][0]["actors"] = ["john-roe"]
    with pytest.raises(
        ConfigError,
        match=r"^c.yaml: disclosures\[0\]\.actors: actor 'john-roe' "
        r"is not in the actor registry \(it is an alias of 'acc-2'; name the "
        r"actor id\)$",
    ):
        parse_config(d, source="c.yaml")


def test_ids_that_read_alike_are_a_warning() -> None:
    with pytest.warns(ConfigWarning) as found:
        parse_config(
            actors(
                {"actor": "acc-7"},
                {"actor": "ACC_7", "aliases": ["x-1"]},
                {"actor": "acc-8", "aliases": ["X1", "ACC 8"]},
            ),
            source="c.yaml",
        )
    assert [str(w.message) for w in found] == [
        "c.yaml: actors[0] (acc-7) and actors[1] (ACC_7) read alike (ignoring case, spacing, "
        "punctuation and look-alike characters): an unregistered id that resembles them is "
        "reported as ambiguous",
        "c.yaml: actors[1] alias x-1 and actors[2] alias X1 read alike (ignoring case, "
        "spacing, punctuation and look-alike characters): an unregistered id that resembles "
        "them is reported as ambiguous",
    ]  # acc-8 and its own alias "ACC 8" read alike too: one actor, nothing ambiguous


def test_an_id_with_nothing_readable_is_a_warning() -> None:
    cfg = parse_config(actors({"actor": "a"}), source="c.yaml")
    assert registry_warnings(cfg) == []
    with pytest.warns(ConfigWarning, match=r"actors\[1\] \(--\) has no letter or digit"):
        parse_config(actors({"actor": "a"}, {"actor": "--"}), source="c.yaml")


def test_one_character_apart_is_not_a_warning() -> None:
    # party-a/party-b, cand-1/cand-2: different actors, spelt differently
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cfg = parse_config(
            actors(
                {"actor": "party-a"},
                {"actor": "party-b"},
                {"actor": "de-a-cand-1"},
                {"actor": "de-a-cand-2"},
            )
        )
    assert registry_warnings(cfg) == []
    assert registry_warnings(config()) == []


_IDS = st.text(st.characters(blacklist_categories=()), max_size=6)
_ALIASES = st.one_of(
    st.none(), st.integers(), _IDS, st.lists(st.one_of(_IDS, st.integers(), st.none()), max_size=4)
)


@settings(max_examples=200, deadline=None)
@given(
    entries=st.lists(
        st.fixed_dictionaries({"actor": _IDS, "aliases": _ALIASES}), min_size=1, max_size=4
    )
)
def test_any_aliases_give_a_config_or_a_one_line_error(entries: list[dict]) -> None:
    # errors and warnings are one line naming the file (fuzz.properties); a valid registry
    # builds an identity index in which no registered id is a near miss of another
    result = check_config_obj(actors(*entries))
    if isinstance(result, ConfigError):
        return
    index = IdentityIndex.from_config(result)
    for entry in result.actors:
        for name in (entry.actor, *entry.aliases):
            assert index.resolve(name) == entry.actor
            assert index.near_miss(name) is None
