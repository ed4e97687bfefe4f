"""The self-contained HTML report: inline CSS, inline SVG charts, no script, no network.

Sections, in reading order: summary (what was found, how severe), amplification per window
and region (table + forest plot), every finding with its evidence and a chart, minimum
detectable effects of the registered actors that were not flagged, data quality, methods
(each registered detector's statistic and guarantee, from its docstring) and provenance.
A ``<script type="application/json" id="amplimon-data">`` block carries the same rows
machine-readably (it is data, not code: browsers do not execute it).
"""

from __future__ import annotations

import datetime as dt
import html
import json
import math
import re
from collections.abc import Callable, Iterable
from typing import Any

import monitor.app.audit._charts as charts
from detectors import evidence as E
from monitor.app.audit._data import AuditData
from monitor.core.textsafe import visible

__all__ = ["Names", "finding_figure", "forest_rows", "render_html", "sentence"]

_KIND_TEXT = {
    "amplification": "Undisclosed amplification",
    "suppression": "Undisclosed suppression",
    "undisclosed_intervention": "Undisclosed ranking intervention",
    "missing_label": "Disclosed intervention shown without its label",
    "log_integrity": "Log integrity",
    "disclosed": "Declared intervention (informational)",
}
_CSS = """
:root { --ink:#1d2329; --muted:#5b6670; --line:#d9dee3; --bg:#f6f8fa; --crit:#b00020;
        --high:#c25e00; --med:#1f6fb2; --low:#6b7780; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color: var(--ink); margin: 0; background: #fff; }
main { max-width: 1080px; margin: 0 auto; padding: 24px 28px 60px; }
header.top { border-bottom: 3px solid var(--ink); padding-bottom: 10px; margin-bottom: 18px; }
h1 { font-size: 26px; margin: 0 0 4px; } h2 { font-size: 20px; margin: 34px 0 10px;
  border-bottom: 1px solid var(--line); padding-bottom: 4px; }
h3 { font-size: 16px; margin: 22px 0 8px; } h4 { font-size: 14px; margin: 14px 0 6px; }
.muted { color: var(--muted); } .small { font-size: 12px; }
nav.toc { font-size: 13px; margin: 8px 0 0; } nav.toc a { margin-right: 14px; }
table { border-collapse: collapse; width: 100%; margin: 8px 0 14px; font-size: 12.5px; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 7px; text-align: left;
         vertical-align: top; }
th { background: var(--bg); font-weight: 600; } td.num, th.num { text-align: right;
  font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.flagged td { background: #fff4f4; }
#amplification td:first-child, #mde td:first-child { min-width: 190px; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; color: #fff;
         font-size: 11.5px; font-weight: 600; text-transform: uppercase; letter-spacing: .03em; }
.sev-critical { background: var(--crit); } .sev-high { background: var(--high); }
.sev-medium { background: var(--med); } .sev-low { background: var(--low); }
.cards { display: flex; gap: 12px; flex-wrap: wrap; margin: 10px 0 16px; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; min-width: 130px;
        background: var(--bg); }
.card .n { font-size: 26px; font-weight: 700; } .card .l { font-size: 12px; color: var(--muted); }
.verdict { font-size: 16px; padding: 12px 16px; border-left: 5px solid var(--crit);
           background: #fff4f4; margin: 12px 0; }
.verdict.clean { border-color: #2e7d32; background: #f1f8f1; }
section.finding { border: 1px solid var(--line); border-radius: 8px; padding: 12px 16px;
                  margin: 14px 0; break-inside: avoid; }
section.finding h3 { margin-top: 0; }
dl.kv { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 6px 0;
        font-size: 12.5px; }
dl.kv dt { color: var(--muted); } dl.kv dd { margin: 0; }
details { margin: 6px 0; } summary { cursor: pointer; color: var(--med); font-size: 13px; }
.chart svg { max-width: 100%; height: auto; }
pre, code { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 12px; }
pre { background: var(--bg); padding: 8px 10px; border-radius: 6px; overflow-x: auto;
      white-space: pre-wrap; }
.method { border-left: 3px solid var(--line); padding-left: 14px; margin: 16px 0; }
.method .doc p { margin: 6px 0; }
@page { size: A4; margin: 14mm 12mm; }
@media print { main { padding: 0; max-width: none; } h2 { break-after: avoid; }
  section.finding, .chart, table { break-inside: avoid; } details { display: block; }
  details > summary { display: none; } nav.toc { display: none; } }
"""


# -- formatting ----------------------------------------------------------------------------------
def esc(value: Any) -> str:
    """HTML text or attribute value: escaped, with invisible characters made visible."""
    return html.escape(visible(value), quote=True)


def _ok(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def ratio(v: Any) -> str:
    """Multiplicative effects and ratios: ``1.42×`` (``> 100×`` / ``< 0.01×`` at the ends)."""
    if not _ok(v):
        return "—"
    return "> 100×" if v > 100 else "< 0.01×" if v < 0.01 else f"{v:.2f}×"


def ci(lo: Any, hi: Any) -> str:
    if not _ok(lo) and not _ok(hi):
        return ""
    left = f"{lo:.2f}" if _ok(lo) else "0"
    right = f"{hi:.2f}" if _ok(hi) else "∞"
    return f"{left}–{right}"


def pval(p: Any) -> str:
    if not _ok(p):
        return "—"
    return "< 1e-12" if p < 1e-12 else f"{p:.2g}"


def count(v: Any) -> str:
    return f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else "—"


def share(v: Any, digits: int = 1) -> str:
    return f"{v:.{digits}%}" if _ok(v) else "—"


def when(t: Any) -> str:
    if isinstance(t, dt.datetime):
        return t.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    if isinstance(t, str):
        try:
            return when(dt.datetime.fromisoformat(t))
        except ValueError:
            return t
    return "—"


def _badge(severity: str) -> str:
    return f'<span class="badge sev-{esc(severity)}">{esc(severity)}</span>'


def _table(
    head: Iterable[str],
    rows: Iterable[Iterable[str]],
    num: set[int] | None = None,
    row_attrs: Iterable[str] | None = None,
) -> str:
    num = num or set()
    head_html = "".join(
        f'<th class="num">{h}</th>' if i in num else f"<th>{h}</th>" for i, h in enumerate(head)
    )
    attrs = list(row_attrs) if row_attrs is not None else None
    body = []
    for r, cells in enumerate(rows):
        tds = "".join(
            f'<td class="num">{c}</td>' if i in num else f"<td>{c}</td>"
            for i, c in enumerate(cells)
        )
        body.append(f"<tr{attrs[r] if attrs else ''}>{tds}</tr>")
    return f"<table><thead><tr>{head_html}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _chart(fig: Any, caption: str = "") -> str:
    cap = f'<div class="small muted">{esc(caption)}</div>' if caption else ""
    return f'<div class="chart">{charts.svg(fig)}{cap}</div>'


class Names:
    def __init__(self, data: AuditData) -> None:
        self.registry = data.config.registry
        self.windows = {w.id: w for w in data.config.windows}

    def subject(self, subject_kind: str, subject: str) -> str:
        if subject_kind == "actor":
            entry = self.registry.get(subject)
            if entry is not None and entry.name:
                return f"{entry.name} ({subject})"
            return f"actor {subject}"
        if subject_kind == "group":
            return f"group {subject}"
        if subject_kind == "log":
            check, _, of = subject.partition(":")
            if check == "actor_lookalike":
                return f"look-alike ids of {of}"
            if check == "panel_amplification":
                kind, _, name = of.rpartition(":")
                return f"amplification of {self.subject(kind or 'actor', name)}: panel vs log"
            if check in ("holdout_share_region", "holdout_share_surface"):
                return f"holdout arm's share of users in {check.rpartition('_')[2]} {of}"
            return {
                "holdout_share": "holdout arm's share of users",
                "holdout_assignment": "holdout assignment",
                "holdout_silent": "holdout arm",
                "exposure_links": "exposure → slate links",
                "event_gaps": "event-time stream",
                "conflicting_duplicates": "event ids",
                "label_consistency": "labels of disclosed items",
                "label_without_intervention": "labels",
                "panel_mismatch": "exposure log vs panel",
                "holdout_exposure_share": "holdout arm's share of exposures",
            }.get(subject, subject)
        return f"{subject_kind} {subject}"

    def window(self, window_id: str) -> str:
        w = self.windows.get(window_id)
        return f"{w.name} ({window_id})" if w is not None and w.name else window_id


# -- sections ------------------------------------------------------------------------------------
def _details(ev: E.Evidence | None) -> dict[str, Any]:
    """A log-integrity check's own keys (its evidence is permissive by design)."""
    return ev.details if isinstance(ev, E.IntegrityEvidence) else {}


_INTEGRITY_TEXT: dict[str, Callable[[dict[str, Any], dict[str, Any], str], str]] = {
    "holdout_assignment": lambda f, ev, where: (
        f"{count(ev.get('users_in_both_arms'))} of {count(ev.get('users'))} users {where} were "
        "logged in both arms; the holdout assignment is per user and fixed."
    ),
    "holdout_silent": lambda f, ev, where: (
        f"The holdout arm logged no exposed user in the window {where}, where "
        f"{ev.get('expected_holdout_users', 0):,.0f} were expected from the baseline."
    ),
    "actor_lookalike": lambda f, ev, where: (
        f"{count(ev.get('exposures'))} exposures {where} were logged under "
        f"{len(ev.get('ids', []))} id(s) that read as "
        f"{ev.get('actor') or ' or '.join(ev.get('candidates', []))} but are not registered."
    ),
    "conflicting_duplicates": lambda f, ev, where: (
        f"{count(f['n_exposures'])} records shared an event id with a copy of different "
        "content; none was counted."
    ),
    "label_consistency": lambda f, ev, where: (
        f"{count(ev.get('exposures_without_label'))} exposures of {count(ev.get('items'))} "
        f"disclosed items {where} lacked the label that other exposures of the same items "
        "carried."
    ),
    "label_without_intervention": lambda f, ev, where: (
        f"{count(ev.get('exposures'))} exposures {where} carried a label that no disclosure "
        "or logged intervention explains."
    ),
    "holdout_share_region": lambda f, ev, where: _between_text(f, ev, where),
    "holdout_share_surface": lambda f, ev, where: _between_text(f, ev, where),
    "holdout_exposure_share": lambda f, ev, where: (
        f"Window against baseline {where}, holdout exposures per active holdout user changed "
        f"{ratio(f['effect'])} relative to ranked exposures per active ranked user (always-"
        f"valid interval {ratio(f['ci_low'])}–{ratio(f['ci_high'])}): the holdout log was "
        "thinned per user, or one arm's engagement changed platform-wide; every holdout "
        "comparison of this window is shifted by it."
    ),
    "panel_amplification": lambda f, ev, where: (
        f"What panellists' devices recorded {where} shows this subject amplified "
        f"{ratio(f['effect'])} more than the platform's log of the same panellists does "
        f"(interval {ratio(f['ci_low'])}–{ratio(f['ci_high'])}): the log understates the "
        "amplification the panel saw."
    ),
    "panel_mismatch": lambda f, ev, where: (
        f"{share(ev.get('mismatch_rate'), 1)} of {count(ev.get('compared'))} exposures "
        f"compared with the panel {where} disagree with the platform's log (95 % CI "
        f"{share(f['ci_low'], 1)}–{share(f['ci_high'], 1)})."
    ),
}


def _between_text(f: dict[str, Any], ev: dict[str, Any], where: str) -> str:
    return (
        f"In {ev.get('dimension', 'cell')} {ev.get('value', '?')} {where}, "
        f"{share(ev.get('holdout_share'), 1)} of the users active in the window are in the "
        f"holdout arm against {share(ev.get('holdout_share_elsewhere'), 1)} elsewhere "
        f"(ratio {ratio(f['effect'])}): the holdout arm is not the same random share of users "
        "everywhere."
    )


def sentence(f: dict[str, Any], names: Names) -> str:
    typed, kind = E.decode_finding(f).evidence, f["kind"]
    ev = _details(typed)
    who = names.subject(f["subject_kind"], f["subject"])
    where = f"on {f['platform']} in {f['region']}"
    if kind in ("amplification", "suppression"):
        verb = "more" if kind == "amplification" else "less"
        return (
            f"{who} received {ratio(f['effect'])} exposure (95 % CI "
            f"{ci(f['ci_low'], f['ci_high'])}) {where} — {verb} than the detector's "
            f"reference allows — from {when(f['event_time'])}."
        )
    if kind == "undisclosed_intervention":
        u = typed if isinstance(typed, E.UndisclosedEvidence) else None
        ivs = ", ".join(u.interventions if u else ()) or "an intervention"
        return (
            f"The ranking log shows {ivs} applied to {who}'s items {where} "
            f"({count(u.placements if u else None)} slate placements); no disclosure "
            "covers it."
        )
    if kind == "missing_label":
        m = typed if isinstance(typed, E.MissingLabelEvidence) else None
        return (
            f"{share(m.unlabelled_share if m else None)} of "
            f"{count(m.exposures if m else None)} exposures of a disclosed intervention on "
            f"{who} {where} were shown without the required label."
        )
    if kind == "log_integrity" and f["subject"] == "holdout_share":
        declared = ev.get("reference", "declared") == "declared"
        reference = ev.get("declared_holdout_share", ev.get("reference_holdout_share"))
        return (
            f"The holdout arm holds {share(ev.get('observed_holdout_share'))} of the "
            f"{'active' if declared else 'newly active'} users {where}; "
            f"{'the platform declared' if declared else 'in the baseline it held'} "
            f"{share(reference, 0 if declared else 1)} "
            f"(observed ÷ {'declared' if declared else 'baseline'} "
            f"{ratio(f['effect'])}, 95 % CI "
            f"{ci(f['ci_low'], f['ci_high'])}). The logs "
            f"{'under' if ev.get('direction') == 'low' else 'over'}-represent the holdout "
            "arm: events of some of its users are missing (or of ranked users, if over)."
        )
    if kind == "log_integrity" and f["subject"] == "exposure_links":
        return (
            f"{count(ev.get('unexplained'))} of {count(ev.get('exposures_checked'))} exposures "
            f"{where} ({share(ev.get('unexplained_share'), 2)}) reference a slate that the "
            "ranking log does not contain."
        )
    check = typed.check if isinstance(typed, E.IntegrityEvidence) else None
    if kind == "log_integrity" and check in _INTEGRITY_TEXT:
        return _INTEGRITY_TEXT[check](f, ev, where)
    if kind == "log_integrity" and f["subject"] == "event_gaps":
        gaps = ev.get("gaps") or []
        return (
            f"The platform logged no event {where} for {len(gaps)} stretch(es) inside the "
            f"monitored periods; the longest lasted {ev.get('longest_gap_minutes', 0):,.0f} "
            "minutes."
        )
    if kind == "disclosed":
        return (
            f"{who}'s exposure changed {ratio(f['effect'])} {where}; a declared intervention "
            "covers it (informational, not a violation)."
        )
    return f"{_KIND_TEXT.get(kind, kind)} for {who} {where}."


def _summary(data: AuditData, names: Names) -> str:
    sev = data.severity_counts()
    n = len(data.findings)
    stats = data.stats
    accepted = stats.get("accepted", {})
    platforms = sorted(
        {r["platform"] for r in data.amplification} | {f["platform"] for f in data.findings}
    )
    if n:
        top = ", ".join(f"{k} {s}" for s, k in sev.items() if k)
        verdict = (
            f'<div class="verdict"><b>{n} finding{"s" if n != 1 else ""}</b> '
            f"({top}) on {esc(', '.join(platforms) or 'the platform')}. "
            "Each is listed below with the evidence needed to verify it.</div>"
        )
    else:
        verdict = (
            '<div class="verdict clean"><b>No finding.</b> No detector crossed its '
            "threshold; the minimum detectable effects below say how large an undisclosed "
            "intervention would have had to be to show.</div>"
        )
    cards = "".join(
        f'<div class="card"><div class="n">{k}</div><div class="l">{_badge(s)}</div></div>'
        for s, k in sev.items()
    )
    cards += (
        f'<div class="card"><div class="n">{count(sum(accepted.values()) if accepted else 0)}'
        '</div><div class="l">events accepted</div></div>'
        f'<div class="card"><div class="n">{count(len(data.deadletters))}</div>'
        '<div class="l">dead letters</div></div>'
    )
    kinds = (
        _table(
            ["kind of finding", "findings", "critical", "high", "medium", "low"],
            [
                [esc(_KIND_TEXT.get(k, k)), str(c)]
                + [
                    str(sum(1 for f in data.findings if f["kind"] == k and f["severity"] == s))
                    for s in ("critical", "high", "medium", "low")
                ]
                for k, c in data.kind_counts().items()
            ],
            num={1, 2, 3, 4, 5},
        )
        if n
        else ""
    )
    rows, attrs = [], []
    for f in data.findings:
        rows.append(
            [
                _badge(f["severity"]),
                esc(_KIND_TEXT.get(f["kind"], f["kind"])),
                f'<a href="#f-{esc(f["finding_id"])}">'
                f"{esc(names.subject(f['subject_kind'], f['subject']))}</a>",
                esc(f"{f['platform']} · {f['region']} · {f['window_id']}"),
                ratio(f["effect"]),
                ci(f["ci_low"], f["ci_high"]),
                pval(f["p_value"]),
                esc(when(f["event_time"])),
                esc(f["detector"]),
            ]
        )
        attrs.append(f' data-finding-id="{esc(f["finding_id"])}"')
    listing = (
        _table(
            ["severity", "what", "subject", "where", "effect", "95 % CI", "p", "since", "detector"],
            rows,
            num={4, 5, 6},
            row_attrs=attrs,
        )
        if n
        else ""
    )
    period = ""
    if stats.get("first_ts") is not None and stats.get("last_ts") is not None:
        first = dt.datetime.fromtimestamp(stats["first_ts"] / 1000, tz=dt.UTC)
        last = dt.datetime.fromtimestamp(stats["last_ts"] / 1000, tz=dt.UTC)
        period = f"Event time covered: {when(first)} – {when(last)}. "
    windows = "; ".join(
        f"{esc(w.name or w.id)} ({esc(w.jurisdiction)}, {when(w.start)} – {when(w.end)})"
        for w in data.config.windows
    )
    return (
        f'<section id="summary"><h2>Summary</h2>{verdict}<div class="cards">{cards}</div>'
        f'<p class="small muted">{period}Election windows: {windows}. False-alarm budget '
        f"α = {data.config.detection.alpha:g} per window, all subjects, detectors and looks "
        f"together.</p>{kinds}{listing}</section>"
    )


def _amplification(data: AuditData, names: Names) -> str:
    flagged = data.flagged_subjects()
    parts = [
        '<section id="amplification"><h2>Amplification by window and region</h2>'
        '<p class="small muted">Huszár et al. (2022) measure: exposures per active user in '
        "the ranked arm ÷ the same in the holdout arm (reverse-chronological feed), with a "
        "95 % user-clustered CI; reach ratio = share of active users reached, ranked ÷ "
        "holdout (amplification % = (reach ratio − 1)·100). Rows with a finding are "
        "highlighted.</p>"
    ]
    for platform, window_id, region in data.cells():
        subjects = data.amplification_of(platform, window_id)
        rows, attrs = [], []
        forest = forest_rows(data, names, platform, window_id)
        for (sk, subject), periods in subjects.items():
            b, w = periods.get("baseline"), periods.get("window")
            is_flagged = (platform, window_id, sk, subject) in flagged
            label = names.subject(sk, subject)
            cur = w or b
            assert cur is not None
            rows.append(
                [
                    esc(label),
                    esc(sk),
                    ratio(b["ratio"]) if b else "—",
                    ci(b["ci_low"], b["ci_high"]) if b else "",
                    ratio(w["ratio"]) if w else "—",
                    ci(w["ci_low"], w["ci_high"]) if w else "",
                    ratio(cur["reach_ratio"]),
                    count(cur["n_ranked"]),
                    count(cur["n_holdout"]),
                    "yes" if is_flagged else "",
                ]
            )
            attrs.append(
                f' class="{"flagged" if is_flagged else ""}"'
                f' data-platform="{esc(platform)}"'
                f' data-window="{esc(window_id)}" data-subject="{esc(subject)}"'
                f' data-ratio="{"" if not w else esc(repr(w["ratio"]))}"'
                f' data-n-ranked="{"" if not w else w["n_ranked"]}"'
                f' data-n-holdout="{"" if not w else w["n_holdout"]}"'
            )
        users = (
            f"Active users (window): ranked "
            f"{count(_users(subjects, 'window', 'users_ranked'))}, holdout "
            f"{count(_users(subjects, 'window', 'users_holdout'))}."
        )
        parts.append(
            f'<h3 id="amp-{esc(platform)}-{esc(window_id)}">{esc(platform)} · '
            f"{esc(names.window(window_id))} · region {esc(region)}</h3>"
            f'<p class="small muted">{users}</p>'
        )
        parts.append(
            _chart(
                charts.forest(
                    forest,
                    f"{platform} · {window_id}: ranked ÷ holdout "
                    "exposure ratio, baseline vs window",
                )
            )
        )
        parts.append(
            _table(
                [
                    "subject",
                    "kind",
                    "baseline ratio",
                    "95 % CI",
                    "window ratio",
                    "95 % CI",
                    "reach ratio",
                    "exposures ranked",
                    "exposures holdout",
                    "finding",
                ],
                rows,
                num={2, 3, 4, 5, 6, 7, 8},
                row_attrs=attrs,
            )
        )
    if not data.amplification:
        parts.append("<p>No exposure fell in a monitored period.</p>")
    parts.append("</section>")
    return "".join(parts)


def forest_rows(
    data: AuditData, names: Names, platform: str, window_id: str
) -> list[dict[str, Any]]:
    """Rows of the forest plot of one platform and window (:func:`charts.forest`)."""
    flagged = data.flagged_subjects()
    out = []
    for (sk, subject), periods in data.amplification_of(platform, window_id).items():
        b, w = periods.get("baseline"), periods.get("window")
        label = names.subject(sk, subject)
        out.append(
            {
                "label": label if len(label) < 38 else label[:36] + "…",
                "flagged": (platform, window_id, sk, subject) in flagged,
                "baseline": (b["ratio"], b["ci_low"], b["ci_high"]) if b else None,
                "window": (w["ratio"], w["ci_low"], w["ci_high"]) if w else None,
            }
        )
    return out


def _users(subjects: dict[Any, dict[str, dict[str, Any]]], period: str, col: str) -> int | None:
    for periods in subjects.values():
        row = periods.get(period)
        if row is not None:
            value = row[col]
            return int(value) if value is not None else None
    return None


def _evidence_html(value: Any, depth: int = 0) -> str:
    if isinstance(value, dict):
        if not value:
            return '<span class="muted">—</span>'
        items = "".join(
            f"<dt>{esc(k)}</dt><dd>{_evidence_html(v, depth + 1)}</dd>" for k, v in value.items()
        )
        return f'<dl class="kv">{items}</dl>'
    if isinstance(value, list):
        if not value:
            return '<span class="muted">none</span>'
        if all(isinstance(v, dict) for v in value) and depth < 3:
            keys = list(dict.fromkeys(k for v in value for k in v))
            shown = value[:25]
            table = _table(
                [esc(k) for k in keys], [[_scalar(v.get(k)) for k in keys] for v in shown]
            )
            more = (
                f'<div class="small muted">… {len(value) - 25} more</div>'
                if len(value) > 25
                else ""
            )
            return table + more
        return esc(", ".join(_scalar(v, raw=True) for v in value[:50]))
    return _scalar(value)


def _scalar(v: Any, raw: bool = False) -> str:
    if isinstance(v, float):
        text = f"{v:.6g}"
    elif isinstance(v, dict | list):
        text = json.dumps(v, default=str)[:300]
    elif v is None:
        text = "—"
    else:
        text = str(v)
    return text if raw else esc(text)


def _finding_chart(f: dict[str, Any], data: AuditData, names: Names) -> str:
    fig, caption = finding_figure(f, data, names)
    return "" if fig is None else _chart(fig, caption)


def finding_figure(f: dict[str, Any], data: AuditData, names: Names) -> tuple[Any, str]:
    """The chart of one finding and its caption (``None`` when there is nothing to draw)."""
    typed, kind, subject = E.decode_finding(f).evidence, f["kind"], f["subject"]
    ev = _details(typed)
    title = f"{names.subject(f['subject_kind'], subject)} · {f['platform']} · {f['window_id']}"
    key = (f["platform"], f["window_id"], f["subject_kind"], subject)
    own = getattr(typed, "series", None)
    if isinstance(own, E.Series) and own.points:
        return (
            charts.series(own, title),
            "The finding's own evidence, look by look (signed with it): left, what the "
            "detector compares; right, its sequential statistic against the boundary "
            "(crossed = the finding). Dotted: the estimated onset.",
        )
    if f["subject_kind"] in ("actor", "group") and key in data.history:
        return (
            charts.trajectory(
                data.history[key],
                data.finding_history.get(f["finding_id"], []),
                f["event_time"],
                title,
            ),
            "Left: what was known at each tick (cumulative ratio with 95 % CI, from the "
            "history table). Right: the finding's effect and confidence sequence.",
        )
    if isinstance(typed, E.IntegrityEvidence) and typed.panel_amplification is not None:
        part = typed.panel_amplification
        rows = [
            ("panellists' devices", part.panel.ratio, part.panel.ci95),
            ("platform's log, same panellists", part.log.ratio, part.log.ci95),
        ]
        return (
            charts.estimates(rows, f"{title}: ranked ÷ holdout exposure-share ratio"),
            "Two estimates of one amplification, 95 % intervals, panellists as clusters: "
            "the platform's log should agree with what its users' devices recorded.",
        )
    if kind == "log_integrity" and subject == "holdout_share":
        return charts.share_by_region(ev, title), ""
    if kind == "log_integrity" and subject == "exposure_links":
        labels = [
            "unknown request",
            "item not in slate",
            "position mismatch",
            "user mismatch",
            "without request",
        ]
        keys = [
            "unknown_request",
            "item_not_in_slate",
            "position_mismatch",
            "user_mismatch",
            "exposures_without_request",
        ]
        return charts.bars(
            labels,
            [ev.get(k, 0) for k in keys],
            title,
            f"exposures (of {ev.get('exposures_checked', 0):,} checked)",
        ), ""
    if kind == "log_integrity" and subject == "event_gaps":
        window = names.windows.get(f["window_id"])
        periods = (
            []
            if window is None
            else [(name, p.start, p.end) for name, p in window.periods().items()]
        )
        spans = [
            (dt.datetime.fromisoformat(g["start"]), dt.datetime.fromisoformat(g["end"]))
            for g in ev.get("gaps", [])
        ]
        return charts.gaps(spans, periods, title), ""
    if isinstance(typed, E.MissingLabelEvidence) and typed.labels_shown:
        shown = typed.labels_shown
        return charts.bars(
            [k or "(no label)" for k in shown],
            list(shown.values()),
            title,
            "exposures by label shown",
        ), ""
    if _ok(f["effect"]):
        return charts.effect_point(
            f["effect"], f["ci_low"], f["ci_high"], f"{title}: effect with 95 % CI (1 = none)"
        ), ""
    return None, ""


def _findings(data: AuditData, names: Names, progress: Callable[[], None]) -> str:
    parts = ['<section id="findings"><h2>Findings</h2>']
    if not data.findings:
        parts.append("<p>None.</p>")
    for f in data.findings:
        facts = {
            "detector": f["detector"],
            "kind": f["kind"],
            "platform · region · window": f"{f['platform']} · {f['region']} · "
            f"{names.window(f['window_id'])}",
            "subject": f"{f['subject_kind']} {f['subject']}",
            "effect (95 % CI)": f"{ratio(f['effect'])} ({ci(f['ci_low'], f['ci_high'])})"
            if _ok(f["effect"])
            else "—",
            "p-value (always valid, adjusted)": pval(f["p_value"]),
            "exposures behind the evidence": count(f["n_exposures"]),
            "threshold first crossed (event time)": when(f["event_time"]),
            "first written": when(f["detected_at"]),
            "status": f["status"],
            "finding id": f["finding_id"],
        }
        dl = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in facts.items())
        parts.append(
            f'<section class="finding" id="f-{esc(f["finding_id"])}" '
            f'data-finding-id="{esc(f["finding_id"])}" data-effect="{esc(repr(f["effect"]))}" '
            f'data-p-value="{esc(repr(f["p_value"]))}" data-n-exposures="{f["n_exposures"]}">'
            f"<h3>{_badge(f['severity'])} {esc(_KIND_TEXT.get(f['kind'], f['kind']))} — "
            f"{esc(names.subject(f['subject_kind'], f['subject']))}</h3>"
            f"<p>{esc(sentence(f, names))}</p>{_finding_chart(f, data, names)}"
            f'<dl class="kv">{dl}</dl><details open><summary>evidence</summary>'
            f"{_evidence_html(f['evidence'])}</details></section>"
        )
        progress()
    parts.append("</section>")
    return "".join(parts)


def _mde(data: AuditData, names: Names) -> str:
    rows = data.actor_mde()
    detectors = [m.name for m in data.methods if any(m.name in r["by_detector"] for r in rows)]
    head = (
        ["actor", "platform · window"] + [f"{esc(d)}: up / down" for d in detectors] + ["exposures"]
    )
    body, attrs = [], []
    for r in rows:
        cells = [
            esc(names.subject("actor", r["actor"])),
            esc(f"{r['platform']} · {r['window_id']}"),
        ]
        n = 0
        for d in detectors:
            row = r["by_detector"].get(d)
            if row is None:
                cells.append("—")
                continue
            n = max(n, row["n_exposures"] or 0)
            up = "not detectable" if not _ok(row["mde_up"]) else ratio(row["mde_up"])
            down = "not detectable" if not _ok(row["mde_down"]) else ratio(row["mde_down"])
            cells.append(f"{up} / {down}")
        cells.append(count(n))
        body.append(cells)
        attrs.append(f' data-actor="{esc(r["actor"])}" data-window="{esc(r["window_id"])}"')
    unlisted = [
        a.actor
        for a in data.config.actors
        if not any(r["actor"] == a.actor for r in rows)
        and not any(f["subject"] == a.actor for f in data.findings)
    ]
    note = (
        (
            f'<p class="small muted">No detectability estimate (no exposure in a monitored '
            f"period): {esc(', '.join(unlisted))}.</p>"
        )
        if unlisted
        else ""
    )
    intro = (
        '<p class="small muted">For each registered actor with no finding: the smallest '
        "multiplicative change, up and down, that each detector would have flagged with "
        "the evidence it had at the end of the run (at its share of the false-alarm "
        "budget). An undisclosed intervention smaller than this could have gone "
        "unnoticed.</p>"
    )
    table = (
        _table(head, body, num=set(range(2, len(head))), row_attrs=attrs)
        if rows
        else "<p>No detector reported minimum detectable effects.</p>"
    )
    return (
        f'<section id="mde"><h2>Minimum detectable effects (actors not flagged)</h2>'
        f"{intro}{table}{note}</section>"
    )


def _quality(data: AuditData, names: Names) -> str:
    s = data.stats
    topics = ("exposure", "ranking")
    stream = _table(
        ["", *topics],
        [
            [label, *(count((s.get(key) or {}).get(t)) for t in topics)]
            for label, key in (
                ("accepted", "accepted"),
                ("duplicates (counted once)", "duplicates"),
                ("late (after their tick closed)", "late"),
                ("rejected (contract breaches)", "rejected"),
            )
        ],
        num={1, 2},
    )
    extra = (
        f'<p class="small muted">Out-of-order arrivals within the lateness allowance: '
        f"{count(s.get('out_of_order'))}; event-time ticks closed: {count(s.get('ticks'))} "
        f"of {data.config.detection.tick_minutes:g} min.</p>"
    )
    reasons = data.deadletter_reasons()
    dead = (
        _table(
            ["field named by the reason", "dead letters", "example reason"],
            [[esc(k), count(n), f"<code>{esc(ex[:160])}</code>"] for k, n, ex in reasons],
            num={1},
        )
        if reasons
        else "<p>No dead letters.</p>"
    )
    balance = data.arm_balance()
    srm = {
        (f["platform"], f["window_id"]): f
        for f in data.findings
        if f["kind"] == "log_integrity" and f["subject"] == "holdout_share"
    }
    srm_mde = {
        (d["platform"], d["window_id"]): d
        for d in data.detectability
        if d["detector"] == "log_integrity" and d["subject"] == "holdout_share"
    }
    arm_rows = []
    for b in balance:
        key = (b["platform"], b["window_id"])
        test = "—"
        if key in srm:
            test = f'<a href="#f-{esc(srm[key]["finding_id"])}">mismatch flagged</a>'
        elif key in srm_mde:
            d = srm_mde[key]
            test = f"no mismatch (detectable: {ratio(d['mde_down'])} / {ratio(d['mde_up'])})"
        elif b["declared"] is None:
            test = "no declared share"
        arm_rows.append(
            [
                esc(b["platform"]),
                esc(b["window_id"]),
                esc(b["period"]),
                count(b["users_ranked"]),
                count(b["users_holdout"]),
                share(b["holdout_share"]),
                share(b["declared"], 0) if b["declared"] else "—",
                test,
            ]
        )
    arms = _table(
        [
            "platform",
            "window",
            "period",
            "users ranked",
            "users holdout",
            "holdout share",
            "declared",
            "sample-ratio test (window scope)",
        ],
        arm_rows,
        num={3, 4, 5, 6},
    )
    integrity = [f for f in data.findings if f["kind"] == "log_integrity"]
    li = "".join(
        f'<li><a href="#f-{esc(f["finding_id"])}">{esc(sentence(f, names))}</a></li>'
        for f in integrity
    )
    li_html = f"<ul>{li}</ul>" if li else "<p>No log-integrity finding.</p>"
    return (
        f'<section id="quality"><h2>Data quality</h2><h3>Stream</h3>{stream}{extra}'
        f"<h3>Dead letters by reason</h3>{dead}<h3>Arm balance</h3>{arms}"
        f"<h3>Log integrity</h3>{li_html}</section>"
    )


def _doc_html(doc: str) -> str:
    """Docstring (reST-ish) → paragraphs, headings and preformatted formula blocks."""
    out: list[str] = []
    lines = doc.splitlines()
    i = 0
    para: list[str] = []

    def inline(text: str) -> str:
        return re.sub(r"``(.+?)``", r"<code>\1</code>", esc(text))

    def flush() -> None:
        if para:
            out.append(f"<p>{inline(' '.join(x.strip() for x in para))}</p>")
            para.clear()

    while i < len(lines):
        line = lines[i]
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if (
            line.strip()
            and nxt.strip()
            and set(nxt.strip()) <= set("-=~")
            and len(nxt.strip()) >= 3
        ):
            flush()
            out.append(f"<h4>{inline(line.strip())}</h4>")
            i += 2
            continue
        if line.startswith("    ") and line.strip():
            flush()
            block = []
            while i < len(lines) and (lines[i].startswith("    ") or not lines[i].strip()):
                block.append(lines[i][4:] if lines[i].strip() else "")
                i += 1
            while block and not block[-1]:
                block.pop()
            out.append(f"<pre>{esc(chr(10).join(block))}</pre>")
            continue
        if not line.strip():
            flush()
        else:
            para.append(line)
        i += 1
    flush()
    return "".join(out)


def _methods(data: AuditData) -> str:
    parts = [
        '<section id="methods"><h2>Methods</h2><p>The whole-window false-alarm budget '
        f"α = {data.config.detection.alpha:g} is split between the statistical detectors "
        "in proportion to their registry weight (Bonferroni across detectors); each "
        "controls its share across its subjects and every look with always-valid tests. "
        "Rule-based detectors (weight 0) report logged facts and spend no budget. The "
        "text below is each detector's own documentation.</p>"
    ]
    for m in data.methods:
        kinds = ", ".join(m.kinds) or "measurement table"
        budget = (
            f"α share {m.alpha_share:.3g} (weight {m.budget_weight:g})"
            if m.budget_weight > 0
            else "no α (logged facts / measurement)"
        )
        ran = "" if m.ran else " — <b>not run</b>"
        parts.append(
            f'<div class="method" id="m-{esc(m.name)}"><h3>{esc(m.display_name)} '
            f'<span class="small muted">({esc(m.name)}; {esc(kinds)}; {budget})'
            f"{ran}</span></h3><p><i>{esc(m.description)}</i></p>"
            f'<div class="doc">{_doc_html(m.doc)}</div></div>'
        )
    parts.append("</section>")
    return "".join(parts)


def _provenance(data: AuditData) -> str:
    info = data.run.get("info", {})
    inputs = info.get("inputs", [])
    rows = [
        [
            esc(i.get("path")),
            esc(i.get("topic")),
            count(i.get("bytes")),
            f"<code>{esc(i.get('sha256') or 'not recorded')}</code>",
        ]
        for i in inputs
    ]
    dets = ", ".join(f"{d['name']} v{d['version']}" for d in info.get("detectors", []))
    facts = {
        "run id": data.run.get("run_id", "—"),
        "command": data.run.get("command", "—"),
        "store": _store_text(data.db),
        "configuration sha256": info.get("config_sha256", "—"),
        "detectors": dets or "—",
        "report generated": when(data.generated_at),
    }
    dl = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in facts.items())
    return (
        f'<section id="provenance"><h2>Provenance</h2><dl class="kv">{dl}</dl>'
        f"{_table(['input', 'topic', 'bytes', 'sha256'], rows, num={2}) if rows else ''}"
        "</section>"
    )


def _store_text(db: str) -> str:
    """Where the run's tables are: the DuckDB file kept, or that none was."""
    if db:
        return f"{db} (DuckDB)"
    return (
        "none kept: the run's DuckDB file was deleted after this report was written "
        "(amplimon audit --db PATH keeps it)"
    )


def _json_block(data: AuditData) -> str:
    def plain(v: Any) -> Any:
        if isinstance(v, dt.datetime):
            return v.astimezone(dt.UTC).isoformat()
        if isinstance(v, float) and not math.isfinite(v):
            return None
        return v

    payload = {
        "findings": [{k: plain(v) for k, v in f.items()} for f in data.findings],
        "amplification": [{k: plain(v) for k, v in r.items()} for r in data.amplification],
        "detectability": [{k: plain(v) for k, v in r.items()} for r in data.detectability],
        "deadletter_reasons": [{"field": k, "count": n} for k, n, _ in data.deadletter_reasons()],
        "stats": data.stats,
    }
    # "<", ">" and "&" as JSON escapes: no "</script" and no "<!--" can end or confuse the
    # element, whatever a platform put in a string
    text = (
        json.dumps(payload, default=str, sort_keys=True)
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
    )
    return f'<script type="application/json" id="amplimon-data">{text}</script>'


def render_html(
    data: AuditData, *, title: str | None = None, progress: Callable[[], None] | None = None
) -> str:
    """The whole report as one HTML document (see module docstring).

    ``progress`` is called once per finding rendered (charts are the slow part).
    """
    names = Names(data)
    inputs = data.run.get("info", {}).get("inputs", [])
    tick = progress or (lambda: None)
    platforms = sorted(
        {r["platform"] for r in data.amplification} | {f["platform"] for f in data.findings}
    )
    heading = title or f"Self-audit report — {', '.join(platforms) or 'platform'}"
    toc = "".join(
        f'<a href="#{a}">{t}</a>'
        for a, t in (
            ("summary", "Summary"),
            ("amplification", "Amplification"),
            ("findings", "Findings"),
            ("mde", "Detectable effects"),
            ("quality", "Data quality"),
            ("methods", "Methods"),
            ("provenance", "Provenance"),
        )
    )
    body = "".join(
        (
            _summary(data, names),
            _amplification(data, names),
            _findings(data, names, tick),
            _mde(data, names),
            _quality(data, names),
            _methods(data),
            _provenance(data),
        )
    )
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(heading)}</title><style>{_CSS}</style></head><body><main>"
        f'<header class="top"><h1>{esc(heading)}</h1><div class="muted">amplimon · '
        f"generated {esc(when(data.generated_at))} · {len(inputs)} input file"
        f"{'s' if len(inputs) != 1 else ''} (SHA-256 under Provenance) · store "
        f"{esc(_store_text(data.db))}</div>"
        f'<nav class="toc">{toc}</nav></header>{body}{_json_block(data)}</main></body></html>'
    )
