"""Charts as matplotlib figures (object API, no pyplot state: safe in Streamlit's threads).

Each function takes the frame :mod:`dashboard.chartdata` (or :mod:`dashboard.overview`)
built and returns a :class:`~matplotlib.figure.Figure`; the page shows it and the evidence
pack stores it as PNG and SVG.  Colours are the Okabe–Ito palette (colour-blind safe) and
every encoding is also given in words (legend, labels).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import matplotlib
import matplotlib.dates as mdates
import matplotlib.ticker as mticker
import pandas as pd
from matplotlib.figure import Figure

# Labels hold platform- and registry-controlled text: "$…$" in it is text, never mathtext
# (which would also fail to parse and take the chart down).  A decorator, because tick labels
# are created when the figure is drawn, not only when it is built.
_PLAIN_TEXT = matplotlib.rc_context({"text.parse_math": False})

__all__ = [
    "effect_ci",
    "exposure_over_time",
    "exposure_per_period",
    "forest",
    "png",
    "sequential_statistic",
    "svg",
    "timeline",
]

RANKED, HOLDOUT, GREY = "#D55E00", "#0072B2", "#999999"
SEVERITY_COLOURS = {"critical": "#CC0000", "high": "#E69F00", "medium": "#56B4E9", "low": "#999999"}
DISCLOSED = "#009E73"


def _naive(values: Any) -> Any:
    """UTC timestamps without tz for matplotlib (axes are labelled UTC)."""
    s = pd.to_datetime(pd.Series(values), utc=True)
    return s.dt.tz_localize(None)


def _figure(
    width: float = 6.4, height: float = 3.2, labels: Sequence[str] = (), bottom: float = 0.55
) -> tuple[Figure, Any]:
    """A figure with margins computed from the y tick labels (a layout engine costs a second
    draw per figure; these charts are redrawn on every refresh)."""
    fig = Figure(figsize=(width, height))
    left_in = 0.75 if not labels else 0.35 + 0.075 * max(len(str(t)) for t in labels)
    fig.subplots_adjust(
        left=min(0.6, left_in / width),
        right=1 - 0.25 / width,
        top=1 - 0.4 / height,
        bottom=min(0.45, bottom / height),
    )
    return fig, fig.add_subplot()


def _legend_right(fig: Figure, ax: Any, width: float = 6.4) -> None:
    """Legend outside the plot, on the right, so it never hides data or labels."""
    fig.subplots_adjust(right=1 - 1.45 / width)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False)


def _log_ratio_axis(ax: Any, values: Sequence[float]) -> None:
    """Log x axis with plain tick labels (0.5, 1, 2) and 1 always in view."""
    finite = [v for v in values if v is not None and v == v and v > 0] + [1.0]
    lo, hi = min(finite), max(finite)
    ax.set_xscale("log")
    ax.set_xlim(lo / 1.25, hi * 1.25)
    ax.xaxis.set_major_locator(mticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(mticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(mticker.NullFormatter())


def _time_axis(ax: Any, maxticks: int | None = None) -> None:
    locator = (
        mdates.AutoDateLocator()
        if maxticks is None
        else mdates.AutoDateLocator(minticks=3, maxticks=maxticks)
    )
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.set_xlabel("event time (UTC)")


def _marks(axes: Sequence[Any], df: pd.DataFrame, t: pd.Series) -> None:
    """The onset (dotted) and the crossing (dashed) as vertical lines on every axis, named
    in the top axis's legend."""
    for col, style, label in (("is_onset", ":", "onset"), ("is_crossing", "--", "crossed")):
        at = t[df[col].astype(bool)] if col in df else t.iloc[:0]
        for n, ax in enumerate(axes):
            for x in at:
                ax.axvline(
                    x, color="black", linestyle=style, linewidth=1, label=label if n == 0 else None
                )


@_PLAIN_TEXT
def exposure_over_time(df: pd.DataFrame) -> Figure:
    """The finding's time series (:func:`dashboard.chartdata.series`): exposure per active
    user in each arm (when the detector has arms) above, ``log E`` against its threshold
    below, the onset and the crossing marked on both."""
    t = _naive(df["t"])
    arms = bool(df["ranked_per_user"].notna().any() or df["holdout_per_user"].notna().any())
    stat = bool(df["log_e"].notna().any())
    panels = int(arms) + int(stat) or 1
    fig = Figure(figsize=(6.4, 2.0 + 1.7 * panels))
    fig.subplots_adjust(
        left=0.75 / 6.4,
        right=1 - 1.45 / 6.4,
        top=0.92,
        bottom=0.5 / (2.0 + 1.7 * panels) + 0.05,
        hspace=0.12,
    )
    axes = fig.subplots(panels, 1, sharex=True, squeeze=False)[:, 0]
    ax_iter = iter(axes)

    def line(ax: Any, col: str, **style: Any) -> None:
        known = df[col].notna().to_numpy()  # a look without this value is no gap
        ax.plot(t[known], df[col][known], **style)

    if arms:
        ax = next(ax_iter)
        line(ax, "ranked_per_user", color=RANKED, label="ranked feed")
        line(ax, "holdout_per_user", color=HOLDOUT, linestyle="--", label="holdout")
        ax.set_ylabel("exposures per\nactive user")
    if stat:
        ax = next(ax_iter)
        line(ax, "log_e", color=RANKED, label="log e-value")
        line(ax, "log_threshold", color=GREY, label="threshold")
        ax.set_ylabel("log e-value")
    _marks(list(axes), df, t)
    for ax in axes:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False)
    _time_axis(axes[-1], maxticks=6)
    axes[0].set_title(
        "Exposure per user and the test over time"
        if arms and stat
        else "Exposure per user: ranked vs holdout"
        if arms
        else "The test over time: log e-value vs threshold"
    )
    return fig


@_PLAIN_TEXT
def exposure_per_period(df: pd.DataFrame) -> Figure:
    multi = df["region"].nunique() > 1
    fig, ax = _figure(bottom=0.75 if multi else 0.5)
    labels = [
        f"{p}\n{r}" if multi else str(p) for p, r in zip(df["period"], df["region"], strict=True)
    ]
    x = range(len(df))
    w = 0.38
    ax.bar(
        [i - w / 2 for i in x],
        df["ranked_per_user"].fillna(0),
        w,
        color=RANKED,
        label="ranked feed",
    )
    ax.bar(
        [i + w / 2 for i in x],
        df["holdout_per_user"].fillna(0),
        w,
        color=HOLDOUT,
        label="holdout",
        hatch="//",
        edgecolor="white",
    )
    top = float(pd.concat([df["ranked_per_user"], df["holdout_per_user"]]).max() or 0)
    for i, (ratio, lo, hi) in enumerate(zip(df["ratio"], df["ci_low"], df["ci_high"], strict=True)):
        if pd.notna(ratio):
            ci = f"\n[{lo:.2f}–{hi:.2f}]" if pd.notna(lo) and pd.notna(hi) else ""
            ax.annotate(
                f"{ratio:.2f}×{ci}", (i, top * 1.02), ha="center", va="bottom", fontsize="small"
            )
    ax.set_xticks(list(x), labels)
    ax.set_ylim(0, top * 1.35 if top > 0 else 1)
    ax.set_ylabel("exposures per active user")
    ax.set_title(
        "Exposure per user by period\n(ratio ranked ÷ holdout, 95 % CI)", fontsize="medium"
    )
    fig.subplots_adjust(top=1 - 0.6 / 3.2)
    _legend_right(fig, ax)
    return fig


@_PLAIN_TEXT
def sequential_statistic(df: pd.DataFrame) -> Figure:
    timed = bool(df["t"].notna().any())
    fig, ax = _figure(
        6.4, 3.2 if timed else 1.2 + 0.35 * len(df), labels=[] if timed else list(df["label"])
    )
    if timed:
        t = _naive(df["t"])
        ax.plot(t, df["statistic"], color=RANKED, label="statistic")
        ax.step(t, df["threshold"], color="black", linestyle="--", where="post", label="threshold")
        crossed = df.index[df["statistic"] >= df["threshold"]]
        if len(crossed):
            i = crossed[0]
            ax.axvline(t.iloc[i], color=GREY, linestyle=":")
            ax.annotate(
                "crossed",
                (t.iloc[i], df["statistic"].iloc[i]),
                fontsize="small",
                xytext=(4, -12),
                textcoords="offset points",
            )
        _time_axis(ax)
    else:
        thr = float(df["threshold"].iloc[0])
        y = list(range(len(df)))[::-1]
        colours = [RANKED if v >= thr else GREY for v in df["statistic"]]
        ax.barh(y, df["statistic"], height=0.5, color=colours, label="log e-value")
        ax.set_yticks(y, list(df["label"]))
        ax.axvline(thr, color="black", linestyle="--", label=f"threshold {thr:.2f}")
        for yi, v in zip(y, df["statistic"], strict=True):
            ax.annotate(
                f"{v:.1f}",
                (max(v, 0), yi),
                xytext=(3, -3),
                textcoords="offset points",
                fontsize="small",
            )
        ax.set_xlabel("log e-value")
    ax.set_title("Sequential statistic vs threshold")
    _legend_right(fig, ax)
    return fig


@_PLAIN_TEXT
def effect_ci(df: pd.DataFrame) -> Figure:
    ratio = df[df["scale"] == "ratio"]
    rows = ratio if not ratio.empty else df[df["scale"] == "share"]
    fig, ax = _figure(
        6.4, 1.5 + 0.4 * max(1, len(rows)), labels=list(rows["estimate"]), bottom=0.8
    )  # a two-line axis label
    y = list(range(len(rows)))[::-1]
    lo = (rows["value"] - rows["ci_low"].astype(float)).fillna(0).clip(lower=0)
    hi = (rows["ci_high"].astype(float) - rows["value"]).fillna(0).clip(lower=0)
    ax.errorbar(rows["value"], y, xerr=[lo, hi], fmt="o", color=RANKED, capsize=4)
    ax.set_yticks(y, list(rows["estimate"]))
    if not ratio.empty:
        ax.axvline(1.0, color="black", linewidth=0.8)
        _log_ratio_axis(ax, [*rows["value"], *rows["ci_low"].dropna(), *rows["ci_high"].dropna()])
        measures = str(rows["measures"].iloc[0]) if "measures" in rows else "ranked ÷ holdout"
        ax.set_xlabel(f"{measures}\n(1 = none; log scale)")
    else:
        ax.set_xlim(0, 1)
        ax.set_xlabel("share of exposures without the required label")
    ax.set_title("Effect with 95 % confidence interval")
    return fig


@_PLAIN_TEXT
def timeline(
    rows: Sequence[dict[str, Any]], markers: pd.DataFrame | None = None, now: Any = None
) -> Figure:
    """Election windows (solid) with their baselines (hatched); findings as dots."""
    labels = {r["window_id"]: f"{r['name']} ({r['jurisdiction']})" for r in rows}
    fig, ax = _figure(10, 1.5 + 0.45 * max(1, len(rows)), labels=list(labels.values()))
    fig.subplots_adjust(right=0.86)
    ys = {}
    for i, r in enumerate(reversed(list(rows))):
        ys[r["window_id"]] = i
        if r.get("baseline_start") is not None and r.get("baseline_end") is not None:
            b0, b1 = _naive([r["baseline_start"], r["baseline_end"]])
            ax.barh(
                i,
                b1 - b0,
                left=b0,
                height=0.5,
                color="#DDDDDD",
                hatch="..",
                edgecolor=GREY,
                label="baseline" if i == 0 else None,
            )
        if r.get("start") is not None and r.get("end") is not None:
            s0, s1 = _naive([r["start"], r["end"]])
            ax.barh(
                i,
                s1 - s0,
                left=s0,
                height=0.5,
                color=HOLDOUT,
                alpha=0.35,
                edgecolor=HOLDOUT,
                label="election window" if i == 0 else None,
            )
    if markers is not None and not markers.empty:
        for sev, colour in SEVERITY_COLOURS.items():
            m = markers[
                (markers["severity"] == sev)
                & markers["window_id"].isin(ys)
                & markers["event_time"].notna()
            ]
            if not m.empty:
                ax.scatter(
                    _naive(m["event_time"]),
                    [ys[w] for w in m["window_id"]],
                    color=colour,
                    edgecolor="black",
                    zorder=3,
                    s=28,
                    label=sev,
                )
    if now is not None:
        ax.axvline(_naive([now]).iloc[0], color="black", linestyle=":", label="latest event")
    ax.set_yticks(list(ys.values()), [labels[w] for w in ys])
    _time_axis(ax)
    ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title("Election windows, baselines and findings")
    return fig


@_PLAIN_TEXT
def forest(df: pd.DataFrame, measure: str = "ratio") -> Figure:
    """Huszár-style forest plot: one row per subject, baseline (hollow) and window (filled)
    estimates with 95 % CIs on a log axis; disclosed subjects in green, marked ◆."""
    subjects = list(dict.fromkeys(df["label"]))
    fig, ax = _figure(9, 1.3 + 0.3 * max(1, len(subjects)), labels=[f"◆ {s}" for s in subjects])
    ys = {s: len(subjects) - 1 - i for i, s in enumerate(subjects)}
    offsets = {"baseline": 0.16, "window": -0.16}
    for period, fill in (("baseline", False), ("window", True)):
        part = df[df["period"] == period]
        for _, r in part.iterrows():
            v = r[measure]
            if pd.isna(v) or v <= 0:
                continue
            colour = DISCLOSED if r["disclosed"] else (RANKED if fill else GREY)
            y = ys[r["label"]] + offsets[period]
            if measure == "ratio" and pd.notna(r["ci_low"]) and pd.notna(r["ci_high"]):
                ax.plot([max(r["ci_low"], 1e-3), r["ci_high"]], [y, y], color=colour, lw=1.2)
            ax.plot([v], [y], "o", color=colour, mfc=colour if fill else "white", ms=5)
    ax.axvline(1.0, color="black", linewidth=0.8)
    _log_ratio_axis(
        ax,
        [
            *df[measure].dropna(),
            *(df["ci_low"].dropna() if measure == "ratio" else []),
            *(df["ci_high"].dropna() if measure == "ratio" else []),
        ],
    )
    ax.set_yticks(
        list(ys.values()),
        [f"◆ {s}" if df.loc[df["label"] == s, "disclosed"].any() else s for s in ys],
    )
    what = "exposure ratio" if measure == "ratio" else "reach ratio (Huszár)"
    ax.set_xlabel(f"{what}: ranked ÷ holdout (log scale; 1 = none)")
    ax.plot([], [], "o", color=GREY, mfc="white", label="baseline")
    ax.plot([], [], "o", color=RANKED, label="window")
    ax.plot([], [], "o", color=DISCLOSED, label="◆ disclosed")
    _legend_right(fig, ax, width=9)
    ax.set_title(f"Amplification by subject, 95 % CI ({what})")
    return fig


@_PLAIN_TEXT
def png(fig: Figure, dpi: int = 120) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()


@_PLAIN_TEXT
def svg(fig: Figure) -> bytes:
    buf = io.BytesIO()
    with matplotlib.rc_context({"svg.hashsalt": "amplimon"}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    return buf.getvalue()
