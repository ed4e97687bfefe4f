"""AppTest: nothing a platform controls is interpreted on any dashboard page.

Findings whose platform, subject, labels and evidence hold Markdown links and images, HTML,
script, formulas, Streamlit directives and bidi/zero-width characters are shown on every
page; each text element's Markdown source is rendered with a CommonMark parser and must
produce no link, no image and no HTML, and the hostile text must still be there to read.
(tests/dashboard/test_browser.py checks the same in Chromium, with the network log.)
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import pandas as pd
import pytest
from markdown_it import MarkdownIt

from dashboard.csvsafe import neutralise, to_csv
from tests import hostile_text as H
from tests.dashboard import factories as F
from tests.dashboard.conftest import Dash, unmd

_MD = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
# what remark-gfm turns into links in plain text (mdast-util-gfm-autolink-literal)
_AUTOLINK_LITERAL = re.compile(r"(?i)(https?://|www\.)|[\w.+-]@[\w-]+\.")
_TEXT_ELEMENTS = (
    "markdown",
    "caption",
    "header",
    "subheader",
    "title",
    "info",
    "warning",
    "error",
    "success",
)


def hostile_findings() -> list[F.Finding]:
    out = []
    for i, text in enumerate(H.EVERY):
        evidence = {**F.series_evidence(), "note": text, "label": H.FORMULA}
        evidence["disclosures_checked"] = [
            {
                "platform": H.PLATFORM,
                "intervention": text,
                "label": H.HTML,
                "actors": [text],
                "groups": [],
                "regions": ["DE"],
            }
        ]
        out.append(
            F.finding(
                text,
                platform=H.PLATFORM,
                severity="high",
                evidence=evidence,
                detector="holdout_shift" if i % 2 else "rank_uplift",
            )
        )
    return out


@pytest.fixture
def hostile(dash: Dash) -> Dash:
    findings = hostile_findings()
    F.write_db(dash.data, findings)
    dash.ids.update({f.subject: f.finding_id for f in findings})
    return dash


def text_elements(at) -> list[str]:  # noqa: ANN001
    values = []
    for kind in _TEXT_ELEMENTS:
        values += [str(e.value) for e in getattr(at, kind)]
    values += [str(e.value) for e in at.sidebar.markdown]
    return values


def assert_inert(at) -> None:  # noqa: ANN001
    assert not at.exception
    for source in text_elements(at):
        for token in _MD.parse(source):
            kinds = {t.type for t in [token, *(token.children or [])]}
            assert not kinds & {"link_open", "image", "html_inline", "html_block", "autolink"}, (
                source
            )
            for child in token.children or []:  # GFM autolink literals, found in the text
                if child.type == "text":
                    assert not _AUTOLINK_LITERAL.search(child.content), source
        for directive in (
            ":red[ALERT]",
            ":material/warning:",
            "$\\frac",
            "<script",
            "<img",
            "www.evil",
        ):
            assert not re.search(r"(?<!\\)" + re.escape(directive), source), source


def test_alerts_page_shows_hostile_text_as_text(hostile: Dash) -> None:
    at = hostile.app("analyst")
    assert_inert(at)
    shown = " ".join(unmd(v) for v in text_elements(at))
    assert H.LINK in shown and H.IMAGE in shown and H.SCRIPT in shown
    assert "acc⟨U+202E⟩gnp.exe⟨U+200B⟩" in shown and "\u202e" not in shown


@pytest.mark.parametrize("which", range(len(H.EVERY)))
def test_finding_page_shows_hostile_text_as_text(hostile: Dash, which: int) -> None:
    at = hostile.open("analyst", H.EVERY[which])
    assert_inert(at)
    at.button(key="prepare_pack").click().run()
    assert_inert(at)


@pytest.mark.parametrize("page", ["overview", "registries", "health"])
def test_other_pages_stay_inert(hostile: Dash, page: str) -> None:
    at = hostile.app("admin")
    at.switch_page(f"routes/{page}.py").run()
    assert_inert(at)


def test_a_hostile_deep_link_is_text(dash: Dash) -> None:
    at = dash.app("viewer")
    at.query_params["id"] = H.LINK
    at.switch_page("routes/finding.py").run()
    assert_inert(at)
    assert unmd(at.warning[0].value) == f"Finding {H.LINK} is not in the data."


@pytest.mark.parametrize(
    "value",
    ["=1+2", "+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1", "  =1", '\u200b=HYPERLINK("x")', H.FORMULA],
)
def test_csv_neutralises_formulas(value: str) -> None:
    assert neutralise(value) == "'" + value
    frame = pd.DataFrame({"note": [value], "n": [-3]})
    back = pd.read_csv(io.BytesIO(to_csv(frame)), keep_default_na=False)
    assert back["note"].iloc[0] == "'" + value and back["n"].iloc[0] == -3


def test_csv_leaves_plain_text_alone() -> None:
    for value in ("checked the holdout", "a=b", "1.5", "", "user@example.org"):
        assert neutralise(value) == value


def test_pack_csvs_are_neutralised(hostile: Dash, tmp_path: Path) -> None:
    import zipfile

    at = hostile.open("analyst", H.FORMULA)
    at.text_area[0].input(H.FORMULA)
    at.button(key="triage-acknowledge").click().run()
    at.button(key="prepare_pack").click().run()
    _, built = at.session_state["pack"]
    zf = zipfile.ZipFile(io.BytesIO(built.data))
    csvs = {
        i.filename.split("/", 1)[1]: zf.read(i).decode()
        for i in zf.infolist()
        if i.filename.endswith(".csv")
    }
    assert "'=HYPERLINK" in csvs["triage/history.csv"]
    for name, text in csvs.items():
        for line in text.splitlines():
            for cell in line.split(","):
                assert not cell.lstrip('"').startswith(("=", "@", "+")), (name, line)
