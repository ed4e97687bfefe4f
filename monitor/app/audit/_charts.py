"""The report's charts: matplotlib figures (object API, no pyplot state) as inline SVG.

Colours are the Okabe–Ito palette (colour-blind safe); every encoding is also named in a
legend or label.  Text stays text in the SVG (small files, selectable, searchable).
"""

from __future__ import annotations

import datetime as dt
import io
import itertools
import math
import re
from collections.abc import Sequence
from typing import Any

import matplotlib
import matplotlib.dates as mdates
import matplotlib.ticker as mticker
from matplotlib.figure import Figure

from detectors.evidence import Series
from monitor.core.textsafe import spell_format_chars

# Labels hold platform- and registry-controlled text: "$…$" in it is text, never mathtext
# (which would also fail to parse and take the chart down).  A decorator, because tick labels
# are created when the figure is drawn, not only when it is built.
_PLAIN_TEXT = matplotlib.rc_context({"text.parse_math": False})

__all__ = [
    "bars",
    "effect_point",
    "estimates",
    "forest",
    "gaps",
    "series",
    "share_by_region",
    "svg",
    "trajectory",
]

RANKED, HOLDOUT, GREY, RED, GREEN = "#D55E00", "#0072B2", "#999999", "#CC0000", "#009E73"
BASELINE, WINDOW = "#56B4E9", "#E69F00"
_salt = itertools.count(1)


@_PLAIN_TEXT
def svg(fig: Figure) -> str:
    """The figure as an ``<svg>`` element (no XML prolog); its ids (and the references to
    them) get a per-figure prefix, so several inline SVGs never share an id in one page."""
    prefix = f"c{next(_salt)}-"
    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": prefix}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r'\bid="', f'id="{prefix}', text)
    text = text.replace("url(#", f"url(#{prefix}").replace('href="#', f'href="#{prefix}')
    return spell_format_chars(text)  # labels hold platform text: no hidden bidi overrides


def _finite(v: Any) -> bool:
    return isinstance(v, int | float) and math.isfinite(v) and v > 0


def _log_axis(ax: Any, values: Sequence[Any], axis: str = "x") -> None:
    vals = [v for v in values if _finite(v)] + [1.0]
    lo, hi = min(vals), max(vals)
    set_scale, set_lim = (
        (ax.set_xscale, ax.set_xlim) if axis == "x" else (ax.set_yscale, ax.set_ylim)
    )
    set_scale("log")
    set_lim(lo / 1.2, hi * 1.2)
    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_locator(mticker.LogLocator(subs=(1.0, 1.5, 2.0, 3.0, 5.0, 7.0)))
    target.set_major_formatter(mticker.FuncFormatter(lambda v, _: f"{v:g}"))
    target.set_minor_locator(mticker.NullLocator())


@_PLAIN_TEXT
def forest(rows: Sequence[dict[str, Any]], title: str) -> Figure:
    """Huszár-style forest plot: per subject the ranked÷holdout exposure ratio with its 95 %
    CI in the baseline (blue) and the window (orange); flagged subjects in red type.

    ``rows``: ``label``, ``flagged`` and ``baseline``/``window`` = (ratio, lo, hi) or None.
    """
    n = max(len(rows), 1)
    fig = Figure(figsize=(7.2, 0.8 + 0.26 * n))
    ax = fig.add_subplot()
    values: list[Any] = []
    for i, row in enumerate(rows):
        y = n - 1 - i
        for period, colour, dy in (("baseline", BASELINE, 0.17), ("window", WINDOW, -0.17)):
            est = row.get(period)
            if est is None or not _finite(est[0]):
                continue
            r, lo, hi = est
            lo = lo if _finite(lo) else r
            hi = hi if _finite(hi) else r
            ax.plot([lo, hi], [y + dy, y + dy], color=colour, lw=1.6)
            ax.plot(
                [r],
                [y + dy],
                "o",
                color=colour,
                ms=4.5,
                label=period
                if i == 0 or not ax.get_legend_handles_labels()[1].count(period)
                else None,
            )
            values += [r, lo, hi]
    ax.axvline(1.0, color=GREY, lw=1, ls="--")
    ax.set_yticks(range(n))
    labels = [r["label"] for r in rows][::-1]
    ax.set_yticklabels(labels, fontsize=8)
    for tick, row in zip(ax.get_yticklabels(), rows[::-1], strict=False):
        if row.get("flagged"):
            tick.set_color(RED)
            tick.set_fontweight("bold")
    _log_axis(ax, values)
    ax.set_ylim(-0.6, n - 0.4)
    ax.set_xlabel(
        "exposures per active user, ranked ÷ holdout (log scale; 1 = no amplification)", fontsize=8
    )
    fig.suptitle(title, fontsize=9, x=0.01, ha="left")
    handles, names = ax.get_legend_handles_labels()
    uniq = dict(zip(names, handles, strict=True))
    ax.legend(uniq.values(), uniq.keys(), fontsize=7, loc="lower right", frameon=False)
    ax.tick_params(axis="x", labelsize=7)
    ax.grid(axis="x", color="#eeeeee")
    longest = max((len(r["label"]) for r in rows), default=10)
    _margins(fig, left_in=0.3 + 0.066 * longest, bottom_in=0.5, top_in=0.4)
    return fig


def _margins(
    fig: Figure,
    left_in: float = 0.6,
    bottom_in: float = 0.5,
    top_in: float = 0.35,
    right_in: float = 0.2,
) -> None:
    """Fixed margins in inches (a tight bounding box would draw every figure twice)."""
    w, h = fig.get_size_inches()
    fig.subplots_adjust(
        left=min(left_in / w, 0.6),
        right=1 - right_in / w,
        bottom=min(bottom_in / h, 0.45),
        top=1 - min(top_in / h, 0.3),
    )


def _naive(t: dt.datetime) -> dt.datetime:
    return t.astimezone(dt.UTC).replace(tzinfo=None)


def _time_axis(ax: Any) -> None:
    locator = mdates.AutoDateLocator(minticks=3, maxticks=6)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.tick_params(labelsize=7)


@_PLAIN_TEXT
def trajectory(
    measurements: Sequence[dict[str, Any]],
    updates: Sequence[dict[str, Any]],
    crossed: dt.datetime | None,
    title: str,
) -> Figure:
    """What was known when: the subject's cumulative ranked÷holdout ratio (95 % CI band) tick
    by tick in the baseline and the window, and the finding's effect after it crossed."""
    fig = Figure(figsize=(7.2, 2.5))
    ax = fig.add_subplot(1, 2, 1)
    values: list[Any] = []
    for period, colour in (("baseline", BASELINE), ("window", WINDOW)):
        rows = [m for m in measurements if m["period"] == period and _finite(m["ratio"])]
        if not rows:
            continue
        t: Any = [_naive(m["tick_end"]) for m in rows]
        r = [m["ratio"] for m in rows]
        lo = [m["ci_low"] if _finite(m["ci_low"]) else m["ratio"] for m in rows]
        hi = [m["ci_high"] if _finite(m["ci_high"]) else m["ratio"] for m in rows]
        ax.fill_between(t, lo, hi, color=colour, alpha=0.25, lw=0)
        ax.plot(t, r, color=colour, lw=1.4, label=period)
        values += r + lo + hi
    ax.axhline(1.0, color=GREY, lw=1, ls="--")
    if crossed is not None:
        ax.axvline(mdates.date2num(_naive(crossed)), color=RED, lw=1, label="crossed")
    if values:
        _log_axis(ax, values, axis="y")
    _time_axis(ax)
    ax.set_title("ranked ÷ holdout exposure ratio (cumulative)", fontsize=8, loc="left")
    ax.legend(fontsize=6.5, frameon=False, loc="best")
    bx = fig.add_subplot(1, 2, 2)
    rows = [u for u in updates if _finite(u["effect"])]
    if rows:
        tu: Any = [_naive(u["tick_end"]) for u in rows]
        e = [u["effect"] for u in rows]
        lo = [u["ci_low"] if _finite(u["ci_low"]) else u["effect"] for u in rows]
        hi = [u["ci_high"] if _finite(u["ci_high"]) else u["effect"] for u in rows]
        bx.fill_between(tu, lo, hi, color=RANKED, alpha=0.2, lw=0, label="confidence sequence")
        bx.plot(tu, e, color=RANKED, lw=1.4, label="effect")
        bx.axhline(1.0, color=GREY, lw=1, ls="--")
        _log_axis(bx, e + lo + hi, axis="y")
        _time_axis(bx)
        bx.legend(fontsize=6.5, frameon=False, loc="best")
    else:
        _empty(bx, "no effect estimate")
    bx.set_title("finding's effect since it crossed", fontsize=8, loc="left")
    fig.suptitle(title, fontsize=9, x=0.01, ha="left")
    _margins(fig, left_in=0.45, bottom_in=0.45, top_in=0.55)
    fig.subplots_adjust(wspace=0.25)
    return fig


def _empty(ax: Any, text: str) -> None:
    """A panel with nothing to draw: says so, no axes."""
    ax.text(
        0.5, 0.5, text, ha="center", va="center", fontsize=8, color=GREY, transform=ax.transAxes
    )
    ax.set_axis_off()


def _marks(ax: Any, s: Series) -> None:
    """The onset (dotted) and the crossing (solid red) of a finding's series."""
    if s.onset is not None:
        ax.axvline(mdates.date2num(_naive(s.onset)), color=GREY, lw=1, ls=":", label="onset")
    if s.crossing is not None:
        ax.axvline(mdates.date2num(_naive(s.crossing)), color=RED, lw=1, label="crossed")


@_PLAIN_TEXT
def series(s: Series, title: str) -> Figure:
    """The finding's own time series (typed evidence, :class:`detectors.evidence.Series`),
    look by look from the baseline through detection.  Left: exposure per active user in each
    arm (detectors with arms) or the detector's estimate against the value at which it would
    cross; the window's looks on a tinted band.  Right: the monitored statistic ``log E``
    against its boundary ``log(1/α)``: the finding is raised where the line meets it."""
    fig = Figure(figsize=(7.2, 2.5))
    ax = fig.add_subplot(1, 2, 1)
    pts = s.points
    t: Any = [_naive(p.t) for p in pts]
    window = [x for x, p in zip(t, pts, strict=True) if p.period == "window"]
    if window:
        ax.axvspan(window[0], window[-1], color=WINDOW, alpha=0.12, lw=0, label="window")
    if s.arms:
        for name, colour, values in (
            ("ranked", RANKED, [p.exposures_per_user_ranked for p in pts]),
            ("holdout", HOLDOUT, [p.exposures_per_user_holdout for p in pts]),
        ):
            xs = [x for x, v in zip(t, values, strict=True) if v is not None]
            ax.plot(xs, [v for v in values if v is not None], color=colour, lw=1.3, label=name)
        ax.set_title("exposures per active user, by arm", fontsize=8, loc="left")
    else:
        xs = [x for x, p in zip(t, pts, strict=True) if p.statistic is not None]
        ax.plot(
            xs,
            [p.statistic for p in pts if p.statistic is not None],
            color=RANKED,
            lw=1.3,
            label="estimate",
        )
        xb = [x for x, p in zip(t, pts, strict=True) if p.boundary is not None]
        ax.plot(
            xb,
            [p.boundary for p in pts if p.boundary is not None],
            color=GREY,
            lw=1,
            ls="--",
            label="crossing value",
        )
        ax.set_title("the detector's estimate (log scale)", fontsize=8, loc="left")
    _marks(ax, s)
    _time_axis(ax)
    ax.legend(fontsize=6.5, frameon=False, loc="best")
    bx = fig.add_subplot(1, 2, 2)
    looks = [(x, p.log_e, p.log_threshold) for x, p in zip(t, pts, strict=True)]
    log_e = [(x, v) for x, v, _ in looks if v is not None]
    if log_e:
        bx.plot([x for x, _ in log_e], [v for _, v in log_e], color=RANKED, lw=1.3, label="log E")
        thr = [(x, v) for x, _, v in looks if v is not None]
        if thr:
            bx.plot(
                [x for x, _ in thr],
                [v for _, v in thr],
                color=GREY,
                lw=1,
                ls="--",
                label="boundary log(1/α)",
            )
        _marks(bx, s)
        _time_axis(bx)
        bx.legend(fontsize=6.5, frameon=False, loc="best")
    else:
        _empty(bx, "no sequential statistic per look")
    bx.set_title("sequential statistic against its boundary", fontsize=8, loc="left")
    note = f" ({s.points_total} looks, {len(pts)} shown)" if s.points_total > len(pts) else ""
    fig.suptitle(title + note, fontsize=9, x=0.01, ha="left")
    _margins(fig, left_in=0.45, bottom_in=0.45, top_in=0.55)
    fig.subplots_adjust(wspace=0.25)
    return fig


@_PLAIN_TEXT
def estimates(
    rows: Sequence[tuple[str, float | None, Sequence[float | None]]], title: str
) -> Figure:
    """Several estimates of one ratio, each with its interval, on a log axis against 1.

    ``rows``: (label, estimate, [low, high]); a missing estimate is drawn as "no estimate"."""
    n = max(len(rows), 1)
    fig = Figure(figsize=(7.2, 0.9 + 0.32 * n))
    ax = fig.add_subplot()
    values: list[Any] = []
    for i, (_label, est, ci) in enumerate(rows):
        y = n - 1 - i
        if est is None or not _finite(est):
            ax.text(1.0, y, "no estimate", ha="center", va="center", fontsize=7, color=GREY)
            continue
        bounds = (list(ci) + [None, None])[:2]
        lo: float = bounds[0] if _finite(bounds[0]) else est  # type: ignore[assignment]
        hi: float = bounds[1] if _finite(bounds[1]) else est  # type: ignore[assignment]
        colour = HOLDOUT if i == 0 else RANKED
        ax.plot([lo, hi], [y, y], color=colour, lw=1.8)
        ax.plot([est], [y], "o", color=colour, ms=5)
        values += [est, lo, hi]
    ax.axvline(1.0, color=GREY, lw=1, ls="--")
    _log_axis(ax, values, axis="x")
    ax.set_yticks(range(n))
    ax.set_yticklabels([r[0] for r in reversed(rows)], fontsize=7)
    ax.set_ylim(-0.6, n - 0.4)
    fig.suptitle(title, fontsize=9, x=0.01, ha="left")
    _margins(fig, left_in=2.0, bottom_in=0.4, top_in=0.45)
    return fig


@_PLAIN_TEXT
def effect_point(effect: float | None, lo: float | None, hi: float | None, label: str) -> Figure:
    """One effect with its confidence interval against 1 (no effect)."""
    fig = Figure(figsize=(7.2, 1.1))
    ax = fig.add_subplot()
    values = [effect, lo, hi]
    if effect is not None and _finite(effect):
        left = lo if lo is not None and _finite(lo) else effect
        right = hi if hi is not None and _finite(hi) else effect
        ax.plot([left, right], [0, 0], color=RANKED, lw=2)
        ax.plot([effect], [0], "o", color=RANKED)
    ax.axvline(1.0, color=GREY, ls="--", lw=1)
    _log_axis(ax, values)
    ax.set_yticks([])
    ax.set_xlabel(label, fontsize=8)
    ax.tick_params(labelsize=7)
    _margins(fig, left_in=0.2, bottom_in=0.5, top_in=0.1)
    return fig


@_PLAIN_TEXT
def share_by_region(evidence: dict[str, Any], title: str) -> Figure:
    """Holdout share of active users per region against the declared share."""
    regions = evidence.get("by_region") or {}
    names = list(regions) + ["all"]
    shares = [regions[r]["holdout_share"] for r in regions] + [
        evidence.get("observed_holdout_share")
    ]
    fig = Figure(figsize=(7.2, 0.9 + 0.32 * len(names)))
    ax = fig.add_subplot()
    y = list(range(len(names)))[::-1]
    ax.barh(y, shares, color=[HOLDOUT] * (len(names) - 1) + [RANKED], height=0.6)
    lo, hi = evidence.get("observed_share_ci95") or (None, None)
    if lo is not None and hi is not None:
        ax.plot([lo, hi], [0, 0], color="black", lw=1.5)
    declared = evidence.get("declared_holdout_share")
    if declared:
        ax.axvline(declared, color=RED, ls="--", lw=1.2, label=f"declared {declared:g}")
        ax.legend(fontsize=7, frameon=False, loc="lower right")
    ax.set_yticks(y)
    ax.set_yticklabels(names, fontsize=8)
    ax.set_xlabel("holdout arm's share of active users", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_title(title, fontsize=9, loc="left")
    _margins(fig, left_in=0.1 + 0.07 * max(len(n) for n in names), bottom_in=0.45)
    return fig


@_PLAIN_TEXT
def bars(labels: Sequence[str], values: Sequence[float], title: str, xlabel: str) -> Figure:
    """Horizontal bars (counts of an evidence breakdown)."""
    fig = Figure(figsize=(7.2, 0.8 + 0.3 * max(len(labels), 1)))
    ax = fig.add_subplot()
    y = list(range(len(labels)))[::-1]
    ax.barh(y, values, color=HOLDOUT, height=0.6)
    for yy, v in zip(y, values, strict=True):
        ax.text(v, yy, f" {v:,.0f}", va="center", fontsize=7)
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_xlim(0, max([*values, 1]) * 1.18)
    ax.tick_params(labelsize=7)
    ax.set_title(title, fontsize=9, loc="left")
    _margins(fig, left_in=0.1 + 0.065 * max((len(x) for x in labels), default=5), bottom_in=0.45)
    return fig


@_PLAIN_TEXT
def gaps(
    spans: Sequence[tuple[dt.datetime, dt.datetime]],
    periods: Sequence[tuple[str, dt.datetime, dt.datetime]],
    title: str,
) -> Figure:
    """Silent stretches of the event stream (red) on the monitored periods."""
    fig = Figure(figsize=(7.2, 1.3))
    ax = fig.add_subplot()
    for name, a, b in periods:
        colour = BASELINE if name == "baseline" else WINDOW
        ax.barh(
            1,
            mdates.date2num(_naive(b)) - mdates.date2num(_naive(a)),
            left=mdates.date2num(_naive(a)),
            color=colour,
            height=0.5,
            label=name,
        )
    for a, b in spans:
        ax.barh(
            0,
            mdates.date2num(_naive(b)) - mdates.date2num(_naive(a)),
            left=mdates.date2num(_naive(a)),
            color=RED,
            height=0.5,
        )
    ax.set_yticks([0, 1])
    ax.set_yticklabels(["no events", "monitored"], fontsize=8)
    ax.xaxis_date()
    _time_axis(ax)
    ax.legend(fontsize=7, frameon=False, loc="upper right", ncols=2)
    ax.set_ylim(-0.5, 1.9)
    ax.set_title(title, fontsize=9, loc="left")
    _margins(fig, left_in=0.8, bottom_in=0.4)
    return fig
