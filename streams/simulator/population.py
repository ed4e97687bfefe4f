"""Who is on the platform: the actor registry, users and the follow graph.

The registry of accounts is a deterministic function of the parameters (scenarios name their
targets by id, e.g. ``de-a-cand-1``); users, arms and follows are random draws.
"""

from __future__ import annotations

import dataclasses
import string
from typing import Final

import numpy as np

from .params import SimParams

__all__ = ["Accounts", "Follows", "Users", "covers", "draw_follows", "draw_users", "registry"]

_NEVER: Final = np.iinfo(np.int64).max
_ALWAYS: Final = np.iinfo(np.int64).min
# Follow-weight factor for a political account of the same country but another subdivision.
_SAME_COUNTRY: Final = 0.5


def covers(jurisdiction: str, region: str) -> bool:
    """True if ``jurisdiction`` covers ``region`` (equal, or ``DE`` covering ``DE-BY``)."""
    return region == jurisdiction or region.startswith(jurisdiction + "-")


def stream(seed: int, *names: int) -> np.random.Generator:
    """An independent, reproducible random stream for ``(seed, *names)``."""
    return np.random.default_rng([seed, *names])


@dataclasses.dataclass(frozen=True)
class Accounts:
    """All accounts: registered political actors first, then unregistered background ones.

    Attributes:
        ids: Account (actor) ids.
        names: Display names.
        kinds: ``party``, ``candidate``, ``media`` or ``background``.
        groups: Party group of each account (``None`` for media and background).
        regions: Registry regions of each account (empty for background accounts).
        registered: Boolean mask of registered political actors.
    """

    ids: tuple[str, ...]
    names: tuple[str, ...]
    kinds: tuple[str, ...]
    groups: tuple[str | None, ...]
    regions: tuple[tuple[str, ...], ...]
    registered: np.ndarray

    @property
    def n(self) -> int:
        return len(self.ids)

    @property
    def index(self) -> dict[str, int]:
        return {a: i for i, a in enumerate(self.ids)}

    @property
    def group_names(self) -> tuple[str, ...]:
        """Distinct group names in registry order."""
        return tuple(dict.fromkeys(g for g in self.groups if g is not None))

    def members(self, target: str) -> np.ndarray:
        """Account indices of ``target``, an actor id or a group name."""
        if target in self.ids:
            return np.array([self.ids.index(target)])
        found = [i for i, g in enumerate(self.groups) if g == target]
        if not found:
            raise ValueError(f"unknown intervention target {target!r}: not an actor or group")
        return np.array(found)

    def registry_rows(self) -> list[dict[str, object]]:
        """The registered actors as contract §2 ``actors`` entries."""
        rows: list[dict[str, object]] = []
        for i in np.flatnonzero(self.registered):
            row: dict[str, object] = {
                "actor": self.ids[i],
                "name": self.names[i],
                "kind": self.kinds[i],
            }
            if self.groups[i] is not None:
                row["group"] = self.groups[i]
            row["regions"] = list(self.regions[i])
            rows.append(row)
        return rows


def registry(params: SimParams) -> Accounts:
    """Build the accounts deterministically from the parameters.

    Per jurisdiction ``J`` (lower-case ``j``) and party letter ``x``: group ``j-party-x`` with
    party account ``j-x-party`` (regions ``[J]``) and candidates ``j-x-cand-1…``; even-numbered
    candidates stand in a subdivision of ``J`` when ``params.regions`` has one (``DE-BY``).
    Media outlets ``j-media-1…``; the second outlet of the first jurisdiction is cross-border.
    Background accounts ``bg-0001…`` have no registry entry.
    """
    ids: list[str] = []
    names: list[str] = []
    kinds: list[str] = []
    groups: list[str | None] = []
    regions: list[tuple[str, ...]] = []

    def add(actor: str, name: str, kind: str, group: str | None, where: tuple[str, ...]) -> None:
        ids.append(actor)
        names.append(name)
        kinds.append(kind)
        groups.append(group)
        regions.append(where)

    for jn, jur in enumerate(params.jurisdictions):
        j = jur.lower()
        subs = [r for r in params.regions if r.startswith(jur + "-")]
        for p in range(params.parties_per_jurisdiction):
            x = string.ascii_lowercase[p]
            group = f"{j}-party-{x}"
            add(f"{j}-{x}-party", f"Party {x.upper()} ({jur})", "party", group, (jur,))
            for c in range(1, params.candidates_per_party + 1):
                where: tuple[str, ...] = (
                    (subs[(c // 2 - 1) % len(subs)],) if subs and c % 2 == 0 else (jur,)
                )
                add(
                    f"{j}-{x}-cand-{c}",
                    f"Candidate {x.upper()}{c} ({jur})",
                    "candidate",
                    group,
                    where,
                )
        for m in range(1, params.media_per_jurisdiction + 1):
            where = tuple(params.jurisdictions) if jn == 0 and m == 2 else (jur,)
            add(f"{j}-media-{m}", f"Media {m} ({jur})", "media", None, where)
    n_registered = len(ids)
    for b in range(1, params.n_background + 1):
        add(f"bg-{b:04d}", f"Background {b}", "background", None, ())
    mask = np.zeros(len(ids), dtype=bool)
    mask[:n_registered] = True
    return Accounts(tuple(ids), tuple(names), tuple(kinds), tuple(groups), tuple(regions), mask)


@dataclasses.dataclass(frozen=True)
class Users:
    """Users shared by all platforms: ids (``u000123``) and region index into
    ``params.regions``."""

    ids: tuple[str, ...]
    region: np.ndarray

    @property
    def n(self) -> int:
        return len(self.ids)


def draw_users(params: SimParams) -> Users:
    """Draw each user's region from ``params.region_weights``."""
    rng = stream(params.seed, 1)
    w = np.asarray(params.region_weights, dtype=float)
    region = rng.choice(len(w), size=params.n_users, p=w / w.sum())
    width = max(6, len(str(params.n_users)))
    return Users(tuple(f"u{i:0{width}d}" for i in range(params.n_users)), region)


@dataclasses.dataclass(frozen=True)
class Follows:
    """Follow edges of one platform, sorted by user (CSR layout).

    Attributes:
        user, actor: Edge endpoints (indices).
        affinity: User-account affinity added to the ranked score, ``N(0, affinity_sd)``.
        since, until: The edge exists for session times in ``[since, until)`` (epoch ms).
        ptr: ``ptr[u]:ptr[u + 1]`` are user ``u``'s edges.
    """

    user: np.ndarray
    actor: np.ndarray
    affinity: np.ndarray
    since: np.ndarray
    until: np.ndarray
    ptr: np.ndarray


def follow_log_weights(params: SimParams, accounts: Accounts) -> np.ndarray:
    """Log follow weight per (user region, account): popularity × locality."""
    n_bg = int((~accounts.registered).sum())
    logw = np.empty((len(params.regions), accounts.n))
    bg_rank = np.arange(1, n_bg + 1)
    logw[:, ~accounts.registered] = -params.popularity_exponent * np.log(bg_rank)
    for a in np.flatnonzero(accounts.registered):
        base = np.log(params.political_weight) + (
            np.log(2.0) if accounts.kinds[a] == "party" else 0.0
        )
        for r, region in enumerate(params.regions):
            country = region.split("-")[0]
            if any(covers(ar, region) for ar in accounts.regions[a]):
                local = 0.0
            elif any(covers(country, ar) for ar in accounts.regions[a]):
                local = np.log(_SAME_COUNTRY)
            else:
                local = np.log(params.cross_jurisdiction_weight)
            logw[r, a] = base + local
    return logw


def draw_follows(
    params: SimParams,
    accounts: Accounts,
    users: Users,
    platform: int,
    growth: list[tuple[np.ndarray, float, int]],
) -> Follows:
    """Draw the follow graph of one platform.

    Each user follows ``max(5, Poisson(follows_per_user))`` distinct accounts sampled without
    replacement ∝ :func:`follow_log_weights` (Gumbel-top-k).  ``growth`` lists
    ``(account indices, multiplier, at_ms)`` of ``popularity_change`` confounders: an account
    with ``F`` followers gains ``round((m - 1) F)`` new ones (drawn ∝ weight among
    non-followers, independent of arm) from ``at_ms``; ``m < 1`` ends that share of its
    follows at ``at_ms`` instead.
    """
    rng = stream(params.seed, 2, platform)
    logw = follow_log_weights(params, accounts)[users.region]
    keys = logw + rng.gumbel(size=logw.shape)
    order = np.argsort(-keys, axis=1)
    n_follow = np.clip(rng.poisson(params.follows_per_user, users.n), 5, accounts.n)
    take = np.arange(accounts.n)[None, :] < n_follow[:, None]
    user = np.repeat(np.arange(users.n), n_follow)
    actor = order[take]
    since = np.full(user.size, _ALWAYS, dtype=np.int64)
    until = np.full(user.size, _NEVER, dtype=np.int64)
    follows = np.zeros((users.n, accounts.n), dtype=bool)
    follows[user, actor] = True
    extra_user, extra_actor, extra_since = [], [], []
    for members, mult, at_ms in growth:
        for a in members:
            mine = np.flatnonzero(actor == a)
            if mult >= 1:
                n_new = int(round((mult - 1) * mine.size))
                cand = np.flatnonzero(~follows[:, a])
                pick = cand[np.argsort(-keys[cand, a])[:n_new]]
                follows[pick, a] = True
                extra_user.append(pick)
                extra_actor.append(np.full(pick.size, a))
                extra_since.append(np.full(pick.size, at_ms, dtype=np.int64))
            else:
                drop = rng.choice(mine, size=int(round((1 - mult) * mine.size)), replace=False)
                until[drop] = at_ms
    if extra_user:
        user = np.concatenate([user, *extra_user])
        actor = np.concatenate([actor, *extra_actor])
        since = np.concatenate([since, *extra_since])
        until = np.concatenate([until, np.full(user.size - until.size, _NEVER, np.int64)])
    affinity = rng.normal(0.0, params.affinity_sd, user.size)
    by_user = np.argsort(user, kind="stable")
    ptr = np.concatenate([[0], np.cumsum(np.bincount(user, minlength=users.n))])
    return Follows(
        user[by_user], actor[by_user], affinity[by_user], since[by_user], until[by_user], ptr
    )
