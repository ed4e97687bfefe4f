"""Serving: candidate pools, the two arms' slates, and what users see.

For each session (user ``u`` at time ``t``) the candidate pool is every item posted in
``[t - pool_hours, t)`` by an account ``u`` follows at ``t``.

* **Ranked arm.**  ``organic = log(quality) + affinity(u, actor)`` (times
  ``model_update_scale`` after the model update); planted interventions add
  ``log(multiplier)``, a legitimate per-item adjustment (``item_adjustment_sd``) is added to
  ``score`` but not to ``organic_score``; the slate is the top ``K`` by
  ``score + Gumbel(0, 1)``.  Gumbel-top-k
  draws a Plackett-Luce ranking with weights ``exp(score)``, so ``+log(b)`` multiplies an
  item's odds at every slot by ``b`` (Yellott 1977; Kool et al. 2019, "Stochastic beams").
  The logged ``score`` excludes the noise: it is the platform's model output.
* **Holdout arm.**  The newest ``K`` items (reverse-chronological, no personalisation, no
  interventions); logged ``score`` = minus the item's age in hours, ``organic_score`` null.

The user sees the first ``D`` slots, ``D ~ Geometric(1 / mean_seen)`` capped by the slate;
slot ``p`` is seen ``2 (p - 1)`` seconds after the slate was served.

**Counterfactual exposures** (ground truth of an intervention's *exposure* effect): every
ranked session is also served with all planted ranking interventions removed, with the same
Gumbel noise and the same ``D``; per intervention the feed counts its target's seen entries
with and without the interventions.  Their ratio is the multiplicative change in exposure the
intervention caused (a ×1.5 selection-odds boost raises exposure by less: an item already
likely to be seen cannot gain the full factor).
"""

from __future__ import annotations

import dataclasses
from typing import Final

import numpy as np

from .params import SimParams
from .population import Follows, stream
from .posting import Items, Sessions
from .timeline import ResolvedIntervention, Timeline

__all__ = ["Feed", "serve"]

_CHUNK: Final = 4096  # sessions per chunk; must fit _SESSION_BITS
_MS_PER_HOUR: Final = 3_600_000
SLOT_GAP_MS: Final = 2_000
# Packed sort key: 12 bits session-in-chunk | 31 bits quantised key | 20 bits entry index.
_SESSION_BITS: Final = 12
_KEY_BITS: Final = 31
_INDEX_BITS: Final = 20
_KEY_BOUND: Final = 1_000.0
_KEY_SCALE: Final = ((1 << _KEY_BITS) - 1) / (2 * _KEY_BOUND)


@dataclasses.dataclass(frozen=True)
class Feed:
    """Columnar output of one platform.

    Slates (one ranking event each), in time order:
        slate_t, slate_user, slate_holdout, slate_ptr (entries ``ptr[i]:ptr[i+1]``).
    Slate entries, by slate then position:
        entry_item, entry_position, entry_score, entry_organic (NaN = null),
        entry_logged (bit ``i`` = intervention ``i`` logged on the entry).
    Exposures, by slate then position:
        exp_slate, exp_t, exp_item, exp_position, exp_label (intervention index whose label
        is shown, -1 = none), exp_applied (bit ``i`` = intervention ``i`` raised the item's
        score, logged or not).
    Per slate: slate_surface (index into ``params.surface_names``).
    Per intervention (index = position in ``params.interventions``): iv_seen = seen entries
    of its target in the sessions it applied to; iv_counterfactual = the same with every
    ranking intervention removed (same noise, same ``D``).
    """

    slate_t: np.ndarray
    slate_user: np.ndarray
    slate_holdout: np.ndarray
    slate_ptr: np.ndarray
    entry_item: np.ndarray
    entry_position: np.ndarray
    entry_score: np.ndarray
    entry_organic: np.ndarray
    entry_logged: np.ndarray
    exp_slate: np.ndarray
    exp_t: np.ndarray
    exp_item: np.ndarray
    exp_position: np.ndarray
    exp_label: np.ndarray
    exp_applied: np.ndarray
    slate_surface: np.ndarray
    iv_seen: np.ndarray
    iv_counterfactual: np.ndarray


def ragged_arange(counts: np.ndarray) -> np.ndarray:
    """``concatenate([arange(c) for c in counts])`` without the loop."""
    total = int(counts.sum())
    starts = np.cumsum(counts) - counts
    return np.arange(total) - np.repeat(starts, counts)


def serve(
    params: SimParams,
    name: str,
    platform: int,
    user_region: np.ndarray,
    holdout: np.ndarray,
    follows: Follows,
    items: Items,
    sessions: Sessions,
    timeline: Timeline,
) -> Feed:
    """Serve every session of one platform (in chunks, to bound memory)."""
    rng = stream(params.seed, 5, platform)
    ivs = [iv for iv in timeline.interventions if iv.ranks and iv.spec.platform == name]
    n_accounts = 1 + max(
        [
            int(follows.actor.max(initial=0)),
            int(items.actor.max(initial=0)),
            *(int(iv.members.max()) for iv in ivs),
        ]
    )
    member_masks = []
    for iv in ivs:
        mask = np.zeros(n_accounts, dtype=bool)
        mask[iv.members] = True
        member_masks.append(mask)
    shares = np.array([w for _, w in params.surface_shares], dtype=float)
    surface = (
        stream(params.seed, 9, platform).choice(
            shares.size, size=sessions.user.size, p=shares / shares.sum()
        )
        if shares.size
        else np.zeros(sessions.user.size, dtype=np.int64)
    )
    parts = [
        _serve_chunk(
            params,
            rng,
            user_region,
            holdout,
            follows,
            items,
            sessions.user[s : s + _CHUNK],
            sessions.t_ms[s : s + _CHUNK],
            surface[s : s + _CHUNK],
            timeline,
            ivs,
            member_masks,
        )
        for s in range(0, max(sessions.user.size, 1), _CHUNK)  # ≥ 1 chunk: typed empties
    ]
    if not params.informative_scores:
        noise = np.round(
            stream(params.seed, 11, platform).normal(
                0.0, 1.0, sum(p["entry_score"].size for p in parts)
            ),
            4,
        )
        at = 0
        for p in parts:
            ranked = ~np.isnan(p["entry_organic"])
            n = p["entry_score"].size
            p["entry_score"] = np.where(ranked, noise[at : at + n], p["entry_score"])
            p["entry_organic"] = np.where(ranked, noise[at : at + n], p["entry_organic"])
            at += n
    if not params.log_interventions:
        for p in parts:
            p["entry_logged"] = np.zeros_like(p["entry_logged"])
    return _concat(parts, len(timeline.interventions))


def _serve_chunk(
    params: SimParams,
    rng: np.random.Generator,
    user_region: np.ndarray,
    holdout: np.ndarray,
    follows: Follows,
    items: Items,
    su: np.ndarray,
    st: np.ndarray,
    ss: np.ndarray,
    timeline: Timeline,
    ivs: list[ResolvedIntervention],
    member_masks: list[np.ndarray],
) -> dict[str, np.ndarray]:
    k = params.slate_size
    # Follow edges of each session's user that exist at the session time.
    deg = follows.ptr[su + 1] - follows.ptr[su]
    pair_s = np.repeat(np.arange(su.size), deg)
    pair_e = follows.ptr[su][pair_s] + ragged_arange(deg)
    alive = (follows.since[pair_e] <= st[pair_s]) & (st[pair_s] < follows.until[pair_e])
    pair_s, pair_e = pair_s[alive], pair_e[alive]
    # Items of each followed account posted in [t - pool, t).
    pair_actor = follows.actor[pair_e]
    pair_t = st[pair_s]
    oldest = np.maximum(pair_t - timeline.pool_ms, items.t0)
    lo = items.position(pair_actor, oldest)
    hi = items.position(pair_actor, pair_t)
    n = hi - lo
    ent_pair = np.repeat(np.arange(n.size), n)
    item = items.by_actor[lo[ent_pair] + ragged_arange(n)]
    ent_s = pair_s[ent_pair]
    ent_hold = holdout[su[ent_s]]
    actor = items.actor[item]
    pre = items.log_quality[item] + follows.affinity[pair_e][ent_pair]
    if params.model_update_scale != 1.0:
        pre = np.where(st[ent_s] >= timeline.model_update_ms, params.model_update_scale * pre, pre)
    boost_organic = np.zeros(item.size)
    boost_hidden = np.zeros(item.size)
    logged = np.zeros(item.size, dtype=np.int64)
    applied = np.zeros(item.size, dtype=np.int64)
    hits: list[tuple[int, np.ndarray]] = []
    for iv, mask in zip(ivs, member_masks, strict=True):
        if not st.size or st[0] >= iv.interval.end_ms or st[-1] < iv.interval.start_ms:
            continue
        on_session = (
            iv.region_mask[user_region[su]]
            & (st >= iv.interval.start_ms)
            & (st < iv.interval.end_ms)
            & ~holdout[su]
            & iv.surface_mask[ss]
        )
        hit = np.flatnonzero(mask[actor])
        hit = hit[on_session[ent_s[hit]]]
        hits.append((iv.index, hit))
        if iv.spec.kind == "organic_logged_boost":
            boost_organic[hit] += iv.log_multiplier
        else:
            boost_hidden[hit] += iv.log_multiplier
        bit = np.int64(1) << iv.index
        applied[hit] |= bit
        if iv.logged:
            logged[hit] |= bit
    organic = pre + boost_organic
    score = organic + boost_hidden + items.adjustment[item]
    age_h = (st[ent_s] - items.t_ms[item]) / _MS_PER_HOUR
    # Gumbel(0, 1) = -log(Exp(1)); cheaper than rng.gumbel.
    gumbel = -np.log(np.maximum(rng.standard_exponential(item.size), 1e-300))
    key = np.where(ent_hold, -age_h, score + gumbel)
    order = _order_by_session_then_key(ent_s, key)
    counts = np.bincount(ent_s, minlength=su.size)
    rank = ragged_arange(counts)
    keep = order[rank < k]
    slate_len = np.minimum(counts, k)
    has = slate_len > 0
    seen = np.minimum(rng.geometric(1.0 / params.mean_seen, su.size), slate_len)
    iv_seen = np.zeros(len(timeline.interventions), dtype=np.int64)
    iv_cf = np.zeros(len(timeline.interventions), dtype=np.int64)
    if any(hit.size for _, hit in hits):
        entry_rank = np.empty(item.size, dtype=np.int64)
        entry_rank[order] = rank
        cf_key = np.where(ent_hold, -age_h, score - boost_organic - boost_hidden + gumbel)
        cf_rank = np.empty(item.size, dtype=np.int64)
        cf_rank[_order_by_session_then_key(ent_s, cf_key)] = rank
        for index, hit in hits:
            iv_seen[index] += int((entry_rank[hit] < seen[ent_s[hit]]).sum())
            iv_cf[index] += int((cf_rank[hit] < seen[ent_s[hit]]).sum())
    rank = rank[rank < k]
    e_s = ent_s[keep]
    hold = ent_hold[keep]
    out_score = np.where(hold, np.round(-age_h[keep], 4), np.round(score[keep], 4))
    out_organic = np.where(hold, np.nan, np.round(organic[keep], 4))
    exposed = rank < seen[e_s]
    x_keep = keep[exposed]
    label = np.full(x_keep.size, -1, dtype=np.int64)
    for iv in ivs:
        if not iv.disclosed:
            continue
        bit = (logged[x_keep] >> iv.index) & 1 == 1
        if iv.spec.kind == "unlabelled_disclosed_boost":
            shown = rng.random(x_keep.size) >= iv.spec.unlabelled_share
        else:
            shown = np.ones(x_keep.size, dtype=bool)
        label[(label < 0) & bit & shown] = iv.index
    slate_of_session = np.cumsum(has) - 1
    x_rank = rank[exposed]
    return {
        "slate_t": st[has],
        "slate_user": su[has],
        "slate_holdout": holdout[su[has]],
        "slate_len": slate_len[has],
        "slate_surface": ss[has],
        "iv_seen": iv_seen,
        "iv_counterfactual": iv_cf,
        "entry_item": item[keep],
        "entry_position": rank + 1,
        "entry_score": out_score,
        "entry_organic": out_organic,
        "entry_logged": logged[keep],
        "exp_slate": slate_of_session[ent_s[x_keep]],
        "exp_t": st[ent_s[x_keep]] + x_rank * SLOT_GAP_MS,
        "exp_item": item[x_keep],
        "exp_position": x_rank + 1,
        "exp_label": label,
        "exp_applied": applied[x_keep],
    }


def _order_by_session_then_key(session: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Entry indices ordered by session, then by descending key.

    Packs (session, quantised key, index) into one int64 and sorts values, ~3× faster than
    ``argsort``/``lexsort``.  Keys are clipped to ±_KEY_BOUND (scores and ages in hours lie
    far inside) and quantised to ~1e-6; exact ties fall back to entry order.
    """
    n = key.size
    if n >= 1 << _INDEX_BITS or session.size and int(session.max()) >= 1 << _SESSION_BITS:
        return np.lexsort((-key, session))
    q = np.rint((_KEY_BOUND - np.clip(key, -_KEY_BOUND, _KEY_BOUND)) * _KEY_SCALE)
    packed = (
        (session.astype(np.int64) << (_KEY_BITS + _INDEX_BITS))
        | (q.astype(np.int64) << _INDEX_BITS)
        | np.arange(n, dtype=np.int64)
    )
    return np.sort(packed) & ((1 << _INDEX_BITS) - 1)


def _concat(parts: list[dict[str, np.ndarray]], n_interventions: int) -> Feed:
    def cat(name: str) -> np.ndarray:
        return np.concatenate([p[name] for p in parts])

    offsets = np.cumsum([0] + [p["slate_t"].size for p in parts])[:-1]
    exp_slate = np.concatenate([p["exp_slate"] + o for p, o in zip(parts, offsets, strict=True)])
    slate_len = cat("slate_len")
    ptr = np.concatenate([[0], np.cumsum(slate_len)])
    return Feed(
        cat("slate_t"),
        cat("slate_user"),
        cat("slate_holdout").astype(bool),
        ptr,
        cat("entry_item"),
        cat("entry_position"),
        cat("entry_score"),
        cat("entry_organic"),
        cat("entry_logged"),
        exp_slate,
        cat("exp_t"),
        cat("exp_item"),
        cat("exp_position"),
        cat("exp_label"),
        cat("exp_applied"),
        cat("slate_surface"),
        sum((p["iv_seen"] for p in parts), np.zeros(n_interventions, dtype=np.int64)),
        sum((p["iv_counterfactual"] for p in parts), np.zeros(n_interventions, dtype=np.int64)),
    )
