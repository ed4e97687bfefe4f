"""Simulation parameters: the platform model, the timeline, planted interventions, data faults.

Every knob of the simulator is a field of the frozen :class:`SimParams`; nothing is read from
the environment.  Times on the timeline are offsets from ``SimParams.start`` (stretched by
``time_scale``), so moving ``start`` shifts the whole run without changing anything else.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Final

__all__ = [
    "CONFOUNDER_KINDS",
    "INTERVENTION_KINDS",
    "TS_FORMATS",
    "Intervention",
    "SimParams",
    "WindowSpec",
]

#: Kinds that change the ranked arm's scores (``score += log(multiplier)``).
RANKING_KINDS: Final = (
    "hidden_boost",
    "hidden_suppression",
    "organic_logged_boost",
    "disclosed_boost",
    "unlabelled_disclosed_boost",
    "undeclared_intervention",
    "group_boost",
    "boost_outside_window",
)
#: Kinds that change the world, not the ranker: both arms see them; never amplification.
CONFOUNDER_KINDS: Final = ("posting_surge", "popularity_change")
INTERVENTION_KINDS: Final = RANKING_KINDS + CONFOUNDER_KINDS
#: Kinds whose intervention id appears in the ranking events' ``interventions`` arrays.
LOGGED_KINDS: Final = ("disclosed_boost", "unlabelled_disclosed_boost", "undeclared_intervention")
#: Kinds with a disclosure in the configuration.
DISCLOSED_KINDS: Final = ("disclosed_boost", "unlabelled_disclosed_boost")
TS_FORMATS: Final = ("z", "offset", "epoch_ms", "mixed")

When = dt.datetime | dt.timedelta | None


@dataclasses.dataclass(frozen=True)
class WindowSpec:
    """An election window and its baseline, as offsets from ``SimParams.start``.

    Attributes:
        id: Window id written to the configuration (``windows[].id``).
        jurisdiction: Country or subdivision code the window covers (``DE`` covers ``DE-BY``).
        name: Human-readable name.
        baseline_start: Offset of the baseline period's start; the baseline ends where the
            window starts (contract §2 default: same length right before the window).
        start: Offset of the window's start.
        end: Offset of the window's end (periods are half-open ``[start, end)``).
    """

    id: str
    jurisdiction: str
    name: str
    baseline_start: dt.timedelta
    start: dt.timedelta
    end: dt.timedelta

    def __post_init__(self) -> None:
        if not dt.timedelta(0) <= self.baseline_start < self.start < self.end:
            raise ValueError(f"window {self.id!r}: need 0 <= baseline_start < start < end")


_DAY = dt.timedelta(days=1)
DEFAULT_WINDOWS: Final = (
    WindowSpec(
        "de-bundestag-sim", "DE", "Bundestag election (simulated)", 0 * _DAY, 2 * _DAY, 4 * _DAY
    ),
    WindowSpec(
        "at-nationalrat-sim", "AT", "Nationalrat election (simulated)", 1 * _DAY, 3 * _DAY, 5 * _DAY
    ),
)


@dataclasses.dataclass(frozen=True)
class Intervention:
    """One planted intervention (or confounder) on one actor or group.

    Ranking kinds act on the ranked arm only (the holdout feed is reverse-chronological and
    never re-ranked): an affected item's ``score`` gains ``log(multiplier)``, which multiplies
    its selection odds by ``multiplier`` (Gumbel-top-k sampling is proportional to
    ``exp(score)``).  How the change is logged is what distinguishes the kinds:

    * ``hidden_boost`` / ``hidden_suppression`` / ``group_boost``: ``organic_score`` keeps the
      pre-intervention score, ``interventions`` stays empty, no label.
    * ``organic_logged_boost``: ``organic_score`` equals the boosted score; only the holdout
      comparison can reveal it.
    * ``disclosed_boost``: the id is logged in ``interventions``, the configuration discloses it
      and every exposure of a boosted item carries ``label``.
    * ``unlabelled_disclosed_boost``: as ``disclosed_boost`` but ``unlabelled_share`` of the
      boosted exposures lack the label.
    * ``undeclared_intervention``: the id is logged but the configuration has no disclosure.
    * ``boost_outside_window``: a hidden boost meant to lie outside every monitored period
      (give ``start``/``end`` accordingly, or ``regions`` where no window monitors the
      target); must not be flagged.

    The exposure effect of a ranking multiplier ``m`` is a little closer to 1 than ``m``: a
    user sees only the first ``D`` slots, so an item already likely to be seen cannot gain
    the full factor (measured ×1.5 → ≈ ×1.4 on the ranked/holdout ratio at default sizes).

    Confounders act on the world, identically in both arms, and must never be flagged:

    * ``posting_surge``: the actor posts ``multiplier`` times as often during ``[start, end)``.
      Raw exposures rise in both arms; the ranked/holdout ratio stays ≈ 1 (it dips by a few
      per cent because the ranked pool still holds pre-surge items for ``pool_hours``).
    * ``popularity_change``: the actor gains followers at ``start`` (followers ×
      ``multiplier``, drawn independently of arm).  A rise in item *quality* would instead
      raise the ranked/holdout ratio exactly like ``organic_logged_boost`` (the contract's
      data cannot tell them apart), so it cannot be a must-not-flag confounder.

    Attributes:
        kind: One of ``INTERVENTION_KINDS``.
        target: A registered actor id or a group name (e.g. ``de-a-cand-1``, ``de-party-a``).
        multiplier: Factor on selection odds (ranking kinds), posting rate (``posting_surge``)
            or follower count (``popularity_change``).  Must be > 0.
        platform: Platform the intervention runs on.
        regions: User regions it applies to (covers-semantics: ``DE`` covers ``DE-BY``);
            empty = the jurisdiction of the target's window.
        start: ``None`` = the target's window start; a ``timedelta`` = offset from that window
            start (stretched by ``time_scale``); a ``datetime`` = absolute (aware).
        end: As ``start``; ``None`` = the target's window end.
        id: Intervention id for logs, disclosures and ground truth; empty = ``kind-target``.
        label: Disclosure label shown with boosted items (disclosed kinds).
        unlabelled_share: Share of boosted exposures missing the label
            (``unlabelled_disclosed_boost`` only).
        surfaces: Surfaces it applies to (sessions on other surfaces are unaffected); empty =
            every surface.
    """

    kind: str
    target: str
    multiplier: float = 1.5
    platform: str = "chirp"
    regions: tuple[str, ...] = ()
    start: When = None
    end: When = None
    id: str = ""
    label: str = "promoted"
    unlabelled_share: float = 0.3
    surfaces: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in INTERVENTION_KINDS:
            raise ValueError(
                f"intervention kind: expected one of {INTERVENTION_KINDS}, got {self.kind!r}"
            )
        if not self.multiplier > 0:
            raise ValueError(f"intervention multiplier: expected > 0, got {self.multiplier!r}")
        if not 0.0 <= self.unlabelled_share <= 1.0:
            raise ValueError("intervention unlabelled_share: expected a share in [0, 1]")
        for name in ("start", "end"):
            value = getattr(self, name)
            if isinstance(value, dt.datetime) and value.tzinfo is None:
                raise ValueError(f"intervention {name}: datetime needs a time zone")
        if not self.id:
            object.__setattr__(self, "id", f"{self.kind.replace('_', '-')}-{self.target}")


@dataclasses.dataclass(frozen=True)
class SimParams:
    """All parameters of one simulation run; the run is a pure function of them.

    **Model.**  Users (pseudonymous ids ``u000123``) live in ``regions``; each is in the
    holdout arm with probability ``holdout_share``, else ranked, stable for the run.  Accounts
    are registered political actors (per jurisdiction ``parties_per_jurisdiction`` parties,
    each a ``party`` account plus ``candidates_per_party`` candidates, and
    ``media_per_jurisdiction`` media outlets) and ``n_background`` unregistered accounts.
    Users follow accounts (power-law popularity, political accounts mostly within their
    jurisdiction).  Accounts post items as diurnal Poisson processes; an item's latent
    quality is lognormal.  Users open sessions (diurnal Poisson); a session requests one slate
    of ``slate_size`` items from the pool of items posted by followed accounts in the last
    ``pool_hours``: the ranked arm samples ∝ ``exp(score)`` (Gumbel-top-k) with
    ``score = log(quality) + affinity + Σ log(multiplier)``; the holdout arm takes the newest
    items.  The user sees the first ``D`` slots (``D`` geometric with mean ``mean_seen``,
    capped by the slate), one exposure event each.

    Attributes:
        seed: Seed of every random draw; same params → identical output.
        platforms: Platform ids; each is simulated independently (own arms, follows, items).
        start: Aware datetime of the first emitted event: the timeline's zero.  The live demo
            passes "now".
        windows: Election windows with baselines (offsets from ``start``).
        time_scale: Stretches every timeline offset (windows, timedelta intervention times);
            with ``n_users`` the size knob for benchmarks.
        warmup_hours: Hours of posting simulated before ``start`` so the first pools are full.
        n_users: Number of users per platform.
        regions: User regions (ISO 3166-1/-2).
        region_weights: Relative share of users per region.
        holdout_share: Probability that a user is in the holdout arm.  Twitter's holdout was
            ~1 % of a huge population (Huszár et al. 2022); a small platform needs ~20 % for
            the holdout arm to have enough users per actor and period to measure anything.
        jurisdictions: Countries with registered actors (political actors are created per
            jurisdiction).
        parties_per_jurisdiction: Parties per jurisdiction (groups ``de-party-a``, …).
        candidates_per_party: Candidate accounts per party.
        media_per_jurisdiction: Registered media outlets per jurisdiction; the second outlet of
            the first jurisdiction is cross-border (regions = all jurisdictions).
        n_background: Unregistered background accounts (never monitored).
        follows_per_user: Mean number of accounts a user follows (Poisson, at least 5).
        popularity_exponent: Zipf exponent of background accounts' follow weights.
        political_weight: Follow weight of a political account relative to the most popular
            background account, for users in its jurisdiction.
        cross_jurisdiction_weight: Factor on that weight for users of another jurisdiction.
        affinity_sd: Standard deviation of the user-account affinity added to scores.
        posts_per_day: Mean posting rate by account kind (``party``, ``candidate``, ``media``,
            ``background``); individual rates are lognormal around it.
        rate_sd: Log-scale spread of individual posting and session rates.
        account_quality_sd: Spread of accounts' mean log-quality.
        quality_sd: Spread of items' log-quality around their account's mean.
        diurnal_amplitude: Relative amplitude of the daily cycle of posting and sessions.
        diurnal_peak_hour: UTC hour of peak activity.
        sessions_per_day: Mean sessions per user per day (one slate each).
        pool_hours: Age limit of items in a slate's candidate pool.
        slate_size: Items per slate ``K``.
        mean_seen: Mean number of slots a user sees ``D`` (geometric, capped at the slate).
        surface: Surface written on every event (when ``surface_shares`` is empty).
        surface_shares: ``(surface, weight)`` pairs: each session is on one surface, drawn
            with these weights (its slate and exposures carry it); empty = every session on
            ``surface``.
        quality_df: Degrees of freedom of a Student-t law for items' log-quality around their
            account's mean (heavy-tailed items: a few items do far better than the rest),
            scaled to standard deviation ``quality_sd``; 0 = normal.  Must be 0 or > 2.
        item_adjustment_sd: Per-item *legitimate* score adjustment (freshness, diversity,
            integrity re-ranking), ``N(0, sd)`` drawn once per item: added to the ranked
            arm's final ``score`` (and to selection) but not to ``organic_score``, so
            ``score - organic_score`` varies by item without any intervention.
        model_update_at: Offset from ``start`` (stretched by ``time_scale``) at which the
            platform deploys a new ranking model (see ``model_update_scale``).
        model_update_scale: The new model's scores are ``scale ×`` the old model's (both the
            logged ``score`` and ``organic_score``, and selection), for every account alike:
            a platform-wide change, not a targeted intervention.  1 = no update.
        informative_scores: ``False``: the ranking log's ``score`` and ``organic_score`` of
            ranked-arm entries carry no information (both are the same independent
            ``N(0, 1)`` draw per entry), as a platform that does not want to be audited
            could log them; selection is unchanged.
        log_interventions: ``False``: intervention ids are never written to the ranking
            log's ``interventions`` arrays (labels are still shown as specified).
        interventions: Planted interventions and confounders.
        duplicate_share: Share of events re-emitted as exact copies (same ``event_id``).
        late_share: Share of events delivered late (written after later events).
        max_late_minutes: Maximum delivery delay of a late event; keep it within the
            monitor's lateness allowance (10 minutes).
        malformed_per_kind: Malformed raw lines injected per malformation kind and topic
            (JSON Lines outputs only).
        ts_format: ``z`` (RFC 3339 UTC), ``offset`` (RFC 3339 with +01:00/+02:00/-04:00),
            ``epoch_ms`` (integers) or ``mixed`` (all of them, per record).
        holdout_log_drop: Log fault: share of holdout-arm users (drawn per platform) whose
            every event the platform fails to log, exposures and rankings alike — a platform
            under-logging its control group (what ``log_integrity``'s SRM test must flag).
        ranking_log_drop: Log fault: share of ranking events not logged; their exposures
            then reference unknown requests.
        log_outages: Log fault: ``(start, end)`` offsets from ``start`` (stretched by
            ``time_scale``) during which the platform logs nothing.
        log_fault_platforms: Platforms with the log faults above; empty = every platform.
        declare_holdout_share: Write ``platforms: {<id>: {holdout_share: …}}`` (the declared
            share, ``holdout_share``) into the configuration.
        adversaries: Ways a platform hides things in its logs, applied to the finished
            streams (:mod:`streams.simulator.adversary`, :data:`~.adversary.ADVERSARIES`).
        adversary_actor: The registered actor the adversaries disguise or falsify.
        adversary_share: How much they tamper (share of ranked users moved into the holdout
            arm, of holdout users deleted, of the registered actors' logged exposures
            removed).
        adversary_regions: Regions (user regions, e.g. ``DE-BY``) the holdout adversaries
            confine themselves to; empty = everywhere.
        adversary_surfaces: Surfaces the holdout adversaries confine themselves to; empty =
            every surface.
        panel_users: Panellists (users drawn at random) whose devices record what they
            were shown: the ``panel`` stream (contract v1.1 §5); 0 = no panel.
    """

    seed: int = 0
    platforms: tuple[str, ...] = ("chirp",)
    start: dt.datetime = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
    windows: tuple[WindowSpec, ...] = DEFAULT_WINDOWS
    time_scale: float = 1.0
    warmup_hours: float = 24.0
    n_users: int = 4000
    regions: tuple[str, ...] = ("DE-BY", "DE-BE", "AT")
    region_weights: tuple[float, ...] = (0.4, 0.25, 0.35)
    holdout_share: float = 0.2
    jurisdictions: tuple[str, ...] = ("DE", "AT")
    parties_per_jurisdiction: int = 3
    candidates_per_party: int = 4
    media_per_jurisdiction: int = 2
    n_background: int = 150
    follows_per_user: float = 40.0
    popularity_exponent: float = 1.0
    political_weight: float = 0.5
    cross_jurisdiction_weight: float = 0.05
    affinity_sd: float = 0.3
    posts_per_day: tuple[tuple[str, float], ...] = (
        ("party", 10.0),
        ("candidate", 12.0),
        ("media", 20.0),
        ("background", 5.0),
    )
    rate_sd: float = 0.3
    account_quality_sd: float = 0.3
    quality_sd: float = 0.3
    diurnal_amplitude: float = 0.4
    diurnal_peak_hour: float = 19.0
    sessions_per_day: float = 1.75
    pool_hours: float = 6.0
    slate_size: int = 10
    mean_seen: float = 8.0
    surface: str = "feed"
    surface_shares: tuple[tuple[str, float], ...] = ()
    quality_df: float = 0.0
    item_adjustment_sd: float = 0.0
    model_update_at: dt.timedelta = dt.timedelta(days=2)
    model_update_scale: float = 1.0
    informative_scores: bool = True
    log_interventions: bool = True
    interventions: tuple[Intervention, ...] = ()
    duplicate_share: float = 0.0
    late_share: float = 0.0
    max_late_minutes: float = 5.0
    malformed_per_kind: int = 0
    ts_format: str = "z"
    holdout_log_drop: float = 0.0
    ranking_log_drop: float = 0.0
    log_outages: tuple[tuple[dt.timedelta, dt.timedelta], ...] = ()
    log_fault_platforms: tuple[str, ...] = ()
    declare_holdout_share: bool = False
    adversaries: tuple[str, ...] = ()
    adversary_actor: str = "de-a-cand-1"
    adversary_share: float = 0.25
    adversary_regions: tuple[str, ...] = ()
    adversary_surfaces: tuple[str, ...] = ()
    panel_users: int = 0

    def __post_init__(self) -> None:
        if self.start.tzinfo is None:
            raise ValueError("start: expected a timezone-aware datetime")
        if not self.platforms or len(set(self.platforms)) != len(self.platforms):
            raise ValueError("platforms: expected distinct platform ids")
        if not self.windows:
            raise ValueError("windows: expected at least one window")
        if len(self.regions) != len(self.region_weights) or min(self.region_weights) < 0:
            raise ValueError("region_weights: expected one non-negative weight per region")
        for name in (
            "holdout_share",
            "duplicate_share",
            "late_share",
            "holdout_log_drop",
            "ranking_log_drop",
        ):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name}: expected a share in [0, 1)")
        if not 0.0 < self.holdout_share:
            raise ValueError("holdout_share: expected > 0")
        positive = (
            "time_scale",
            "n_users",
            "follows_per_user",
            "sessions_per_day",
            "pool_hours",
            "slate_size",
            "mean_seen",
        )
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: expected > 0, got {getattr(self, name)!r}")
        if not 0 <= self.max_late_minutes <= 10:
            raise ValueError("max_late_minutes: expected 0..10 (the monitor's lateness)")
        if self.pool_hours > 720:
            raise ValueError("pool_hours: expected at most 720 (30 days)")
        if not 0 <= self.diurnal_amplitude < 1:
            raise ValueError("diurnal_amplitude: expected [0, 1)")
        if self.ts_format not in TS_FORMATS:
            raise ValueError(f"ts_format: expected one of {TS_FORMATS}, got {self.ts_format!r}")
        if self.malformed_per_kind < 0:
            raise ValueError("malformed_per_kind: expected >= 0")
        kinds = {k for k, _ in self.posts_per_day}
        if kinds != {"party", "candidate", "media", "background"}:
            raise ValueError(
                "posts_per_day: expected rates for party, candidate, media, background"
            )
        ids = [iv.id for iv in self.interventions]
        if len(set(ids)) != len(ids):
            raise ValueError("interventions: ids must be distinct")
        if len({w.id for w in self.windows}) != len(self.windows):
            raise ValueError("windows: ids must be distinct")
        for a, b in self.log_outages:
            if not dt.timedelta(0) <= a < b:
                raise ValueError("log_outages: expected (start, end) offsets, 0 <= start < end")
        if self.surface_shares and (
            min(w for _, w in self.surface_shares) < 0
            or not sum(w for _, w in self.surface_shares) > 0
        ):
            raise ValueError("surface_shares: expected non-negative weights with a positive sum")
        if len({s for s, _ in self.surface_shares}) != len(self.surface_shares):
            raise ValueError("surface_shares: surfaces must be distinct")
        if not (self.quality_df == 0 or self.quality_df > 2):
            raise ValueError("quality_df: expected 0 (normal) or > 2")
        if self.item_adjustment_sd < 0 or not self.model_update_scale > 0:
            raise ValueError("item_adjustment_sd: expected >= 0; model_update_scale: > 0")
        from .adversary import ADVERSARIES  # the names live with their code

        bad = sorted(set(self.adversaries) - set(ADVERSARIES))
        if bad:
            raise ValueError(f"adversaries: unknown {bad}; expected some of {ADVERSARIES}")
        if not 0.0 < self.adversary_share < 1.0 or self.panel_users < 0:
            raise ValueError("adversary_share: expected (0, 1); panel_users: >= 0")
        unknown = set(self.log_fault_platforms) - set(self.platforms)
        if unknown:
            raise ValueError(f"log_fault_platforms: unknown platform(s) {sorted(unknown)}")

    @property
    def has_log_faults(self) -> bool:
        return bool(self.holdout_log_drop or self.ranking_log_drop or self.log_outages)

    @property
    def surface_names(self) -> tuple[str, ...]:
        """Surfaces in use: those of ``surface_shares``, else ``(surface,)``."""
        return tuple(s for s, _ in self.surface_shares) or (self.surface,)

    def rate(self, kind: str) -> float:
        """Mean posts per day of an account ``kind``."""
        return dict(self.posts_per_day)[kind]
