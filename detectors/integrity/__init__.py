"""``log_integrity`` — can the platform's logs be trusted as the basis of the measurement?

Every statistic of amplimon rests on the platform's own logs: the holdout arm must be the
random share of users it claims to be, exposures must come from logged slates, the stream
must not fall silent, a registered actor's items must be logged under its ids, labels must
match the declared interventions, and what panellists saw must be what the log says they
saw.  One detector, ``log_integrity``, runs one small check per module, per platform and
window (region scope = the window's jurisdiction, both the baseline and the window period).
Each finding has kind ``log_integrity``, ``subject_kind = "log"``, ``subject`` = the
check's name (``actor_lookalike:<actor>`` for look-alike ids) and ``evidence["check"]`` =
the check's name.  Severities: :mod:`detectors.severity`.

Holdout share: sample-ratio mismatch (subject ``holdout_share``, :mod:`._holdout`)
------------------------------------------------------------------------------------
Each user active in the scope (≥ 1 exposure or ranking event) is a Bernoulli trial, holdout
or ranked (the arm of the user's first event).  The reference share ``π`` is

* **declared**: ``platforms.<id>.holdout_share``; every user of both periods is a trial;
* **estimated**, when none is declared: from the users first seen in the baseline period
  (``k_b`` holdout of ``n_b``, at least ``min_baseline_users``); the trials are the users
  *first seen in the window period* — a sample disjoint from the baseline's.  The null
  interval is the baseline's Clopper–Pearson interval at level ``1 − α_t/2`` widened by the
  tolerance, ``[π_lo(1−ε), π_hi(1+ε)]``, and the e-process gets the other ``α_t/2``.

With a relative tolerance ``ε`` (``srm_tolerance``, default 0.01) the null hypothesis is
``H0: p ∈ [lo, hi]`` (``[π(1−ε), π(1+ε)]`` when declared).  Two mixture likelihood ratios
use a Beta prior of mean ``π`` and relative standard deviation ``prior_sd``, truncated to
the alternative::

    E⁻_n = ∫_0^lo f(q) (q/lo)^k ((1−q)/(1−lo))^(n−k) dq          (holdout share p < lo)
         = B(a+k, b+n−k) I_lo(a+k, b+n−k) / (B(a, b) I_lo(a, b) lo^k (1−lo)^(n−k))
    E⁺_n  mirrored with upper tails                              (holdout share p > hi)
    E_n  = (E⁻_n + E⁺_n) / 2

For ``p ≥ lo`` each factor of ``E⁻`` has expectation ≤ 1, so ``E⁻`` is a supermartingale;
likewise ``E⁺`` for ``p ≤ hi``; their average is an e-process for ``H0``: an exact,
always-valid sequential SRM test (Lindon & Malek 2022, "Anytime-valid inference for
multinomial count data", NeurIPS; Fabijan et al. 2019, "Diagnosing sample ratio mismatch
in online controlled experiments", KDD).  With the estimated reference, a false alarm
needs the baseline interval to miss the true share (probability ≤ ``α_t/2``) or the
e-process to cross ``2/α_t`` under a null that holds (≤ ``α_t/2``, Ville): ≤ ``α_t`` by the
union bound, whatever the dependence.

*Returning users* (estimated reference only).  Users first seen in the window are few when
the periods are short; most of the window's users were active in the baseline.  Under H0
the next baseline user to come back is a holdout user with probability
``p(ρ) = ρH/(ρH + R)`` (``H``, ``R``: baseline users of each arm not yet back; ``ρ`` the
holdout arm's relative propensity to return, ``|ρ − 1| ≤ ε_r`` = ``return_tolerance``,
default 0.05) — exactly, whatever the users' activity levels, since the remaining users of
both arms are exchangeable given the past.  A plug-in likelihood ratio against the least
favourable ``ρ`` (:class:`._returns.ReturnTest`) is a test supermartingale ``E^ret``; the
share test uses ``(E^new + E^ret)/2`` (``E^new`` = 1 until the baseline interval exists),
still an e-process, still against ``2/α_t`` (Ville holds conditionally on the baseline).
This is what finds a holdout arm thinned from the window start (users deleted from it):
their absence among the returners.  Calibration: at most 1.1 % of 1,000 null runs
per setting reach ``1/0.05``, including at ``ρ = 1 ± ε_r`` with heavy-tailed activity.
Assumption: a user's arm does not change whether
(or when) the user is first active (``ε`` absorbs a small engagement effect of the ranked
feed).  ``effect`` = observed ÷ reference share with a 95 % Clopper–Pearson interval; the
minimum detectable share ratios are written to ``detectability``.  The evidence also shows
the holdout share of *exposed* users per period (the ledger) and per region (descriptive).

Holdout share between regions and surfaces (subjects ``holdout_share_region:<region>``,
``holdout_share_surface:<surface>``, :mod:`._between`)
------------------------------------------------------------------------------------------
The holdout assignment is per user and random, so every region (surface) of a scope has the
same holdout share of users; a platform that empties or thins its holdout arm in one
contested region only barely moves the scope's share.  Each user active in the *window
period* is one trial, counted at its first window event (the earliest of its first tick
there): its arm, its region and its surface.  A tick's trials form a block; for a cell ``c``
(a region, or a surface) the block has ``n_a`` users in ``c`` and ``n_b`` in the rest of the
scope, ``k`` of them holdout.  Conditional on these margins the number ``X`` of holdout users
in ``c`` has Fisher's noncentral hypergeometric law with parameter the odds ratio ``ψ``
(holdout odds in ``c`` ÷ in the rest), **whatever the common share**: the nuisance drops out
(the conditional likelihood of a 2 × 2 table, Cox 1958, "The regression analysis of binary
sequences", JRSS B 20(2); made sequential here as a product of per-block conditional
likelihood ratios — for the unconditional two-sample alternative see Turner, Ly & Grünwald
2024, "Generic e-variables for exact sequential k-sample tests that allow for optional
stopping", JSPI 230)::

    P_ψ(X = x) = C(n_a, x) C(n_b, k − x) ψ^x / Σ_s C(n_a, s) C(n_b, k − s) ψ^s

With a tolerance ``ε`` (``between_tolerance``, default 0.05: a 5 % difference of holdout
odds between regions, e.g. a region-specific engagement effect of the ranked feed on who
becomes active, is tolerated) ``H0: ψ ∈ [1 − ε, 1/(1 − ε)]``.  The e-process is a mixture
over 14 alternatives ``ψ_j`` (7 per side at ``|log ψ_j|`` 0.1 … 2.5 beyond the edge,
weights 1/14) of the products over blocks of ``P_ψj(x_t)/P_edge(x_t)`` (edge = H0's bound on
``ψ_j``'s side).  ``P_ψ(X = x)`` has monotone likelihood ratio in ``ψ``: for every ``ψ`` in H0
each factor has conditional expectation ≤ 1, given the past and the block's margins, so each
product, and their average, is a test supermartingale, exact in finite samples (a user's
region and surface are conditioned on; the arms are what is random).  Each dimension gets
half of the test's share of alpha, and its ``k``-th cell to appear ``1/(k(k+1))`` of that
half (weights that sum to 1 over any number of regions, so none is left untested; the first
cells — usually the largest regions — get the most): a cell is flagged when
``E ≥ 2k(k+1) m/α_d``.  With exactly two cells in a dimension (each the other's complement:
the same test) only the smaller is reported.  ``effect`` = the cell's share ÷ the rest's,
with a 95 % Katz interval.  Assumption (surfaces): a user's arm does not change which
surface it first uses (within ``ε``).  A platform that
deletes its holdout arm's records on one surface moves those users' first events to other
surfaces (or out of the window): the surface's holdout share falls to zero.

Holdout share of exposures (subject ``holdout_exposure_share``, :mod:`._exposures`)
----------------------------------------------------------------------------------
A platform can thin its holdout arm's *exposure* log and keep its users: the user-share
tests above do not see it, yet every ranked ÷ holdout ratio of the window grows.  The
statistic is the change, window vs baseline, of the arms' exposures per active user::

    θ_p = (S_h,p / N_h,p) ÷ (S_r,p / N_r,p)      (S: exposures, N: users with ≥ 1 exposure)
    Δ   = θ_window ÷ θ_baseline

A legitimate engagement change of one arm moves ``Δ`` too, hence an explicit relative
tolerance ``ε_x`` (``exposure_tolerance``, default 0.10: a one-arm engagement change of up to
10 % between baseline and window is tolerated; the honest simulated platforms move ``log Δ``
by at most ±0.08 at 1,500 users, ±0.1 sd at 8,000):
``H0: |log Δ| ≤ δ = −log(1 − ε_x)``.  Variance: users are the clusters, paired across the
periods (a user active in both is one cluster), by the linearised influence
``ψ_u = ±[(x_uw − m_w)/S_w − (x_ub − m_b)/S_b]`` of each user on ``log Δ̂``,
``V = Σ_arms G/(G−1) Σ_u ψ_u²``, floored at the Poisson ``Σ 1/S`` and by
:func:`detectors.sequential.guard_variance`.  The test is the two-sided normal-mixture
e-process of :func:`detectors.sequential.mixture_log_e` (``τ`` = ``exposure_tau``, 0.15)
with margin ``δ``: always valid asymptotically (Waudby-Smith et al. 2021, module
:mod:`detectors.sequential`), once every arm of both periods has ``min_arm_users`` (30)
users.  ``effect`` = ``Δ̂`` with the always-valid interval at the test's level.  The finding
says what it means: the holdout arm's log thinned per user, *or* a platform-wide engagement
change of one arm, and that every holdout comparison of the window (the amplification
table, ``holdout_shift``, reach ratios) is shifted alike by about ``1/Δ̂``.

Panel amplification (subjects ``panel_amplification:<actor>``,
``panel_amplification:group:<group>``, :mod:`._panel_amp`)
-------------------------------------------------------------------------------------
The panel is also an independent amplification estimate.  For each registered actor (and
group) monitored in the window, from the panel records of the window period alone::

    s_a = Σ_u a_u / Σ_u n_u       (a_u: panellist u's exposures of the subject, n_u: all
                                   its exposures; u over the panellists of arm a)
    R_panel = s_ranked / s_holdout

and ``R_log`` the same from the platform's log of the same panellists (from each one's
first panel record on, as the mismatch check).  ``D = log R_panel − log R_log``; its variance
with panellists as clusters and the two sources paired (one panellist = one cluster) is
``V = U/(U−1) Σ_u ψ_u²``, ``ψ_u`` = the panellist's linearised influence
``±(a_u − s n_u)/A`` on each of the four log shares.  ``H0: D ≤ log(1 + ε_a)``
(``panel_amplification_tolerance``, default 0.10: the devices' recording may differ from
the log by 10 % in a subject's ratio) is tested with the one-sided normal-mixture e-process
(``τ`` = ``panel_tau``, 0.3), asymptotically valid, once each arm has ``min_panel_users``
(10) panellists and each of the four shares is positive; the test's share of alpha is split
over the window's ``S`` monitored subjects (flagged at ``E ≥ mS/α_d``).  The finding's typed
evidence (:class:`detectors.evidence.PanelAmplification`, evidence version 2) gives both
estimates with 95 % intervals, the counts per arm and ``effect = R_panel ÷ R_log`` with its
always-valid interval.  It catches a log that hides a boost only where the panel looks: a
single actor's records are too few for the mismatch rate to reach its tolerance.

Holdout assignment and silence (subjects ``holdout_assignment``, ``holdout_silent``)
------------------------------------------------------------------------------------
Rules on logged facts (no alpha, ``p_value`` null).  The arm is assigned per user and fixed:
a user logged in both arms contradicts the design; ``holdout_assignment`` is raised once at
least ``min_switched_users`` users and ``switch_tolerance`` of the scope's users were seen in
both arms (a platform moving ranked users into its holdout arm).  ``holdout_silent``: the
holdout arm had exposed users in the baseline, and none in the window while the ranked arm
had enough users that ``λ = users_ranked · holdout/ranked (baseline) ≥ min_expected_users``
holdout users were expected (``P(none | honest) ≈ e^{−λ} ≤ e^{−20}``); the same per region
of the scope (users with any event, by the region of their event), so a holdout arm
deleted in one subdivision is named there (``regions`` in the evidence).

Exposure links (subject ``exposure_links``, :mod:`._links`)
----------------------------------------------------------
An exposure with a ``request`` is unexplained when no ranking event of that platform has
that ``request`` (within ``link_hours``, default 6, of event time, with one tick of grace for
a slate logged after its exposure) or the slate does not contain the exposed ``item``.  With
tolerance ``ε_l`` (``link_tolerance``, default 0.01) ``H0: unexplained share ≤ ε_l`` is
tested with the uniform-mixture e-process of :func:`detectors.stats.label_share_log_e`.
Exposures without ``request`` cannot be checked and are only counted; position and user
mismatches with the slate are counted in the evidence.  Memory: every slate of the last
``link_hours`` is kept, as one compact string (:mod:`._slates`), so the state grows with the
slate rate × ``link_hours``.

Event gaps (subject ``event_gaps``, :mod:`._gaps`)
-------------------------------------------------
A run of ``L > max_gap_ticks`` ticks inside the baseline or window period in which the
platform logged no event in the window's region scope (between the first and last event
time of the whole stream), long enough to be implausible for the platform's activity:
``L · λ̂ ≥ min_expected_users``, with ``λ̂`` the mean number of distinct active users per
tick so far.  (A small platform is quiet at night; with ``λ`` users per tick acting
independently, a silent run of ``L`` ticks has probability about ``exp(−L λ)``.)  A rule on
logged facts: it spends no false-alarm budget and its ``p_value`` is null.

Look-alike actor ids (subject ``actor_lookalike:<actor>``, :mod:`._lookalike`)
-----------------------------------------------------------------------------
Declared aliases already count for their actor in every detector (the analysis resolves
them before any detector sees a tick).  An *unregistered* id in an exposure or a ranking
item that :meth:`monitor.core.identity.IdentityIndex.near_miss` finds to mimic a registered id or
alias (normalisation or a small cosmetic edit distance; its false-positive rates are in
:mod:`monitor.core.identity`) is a finding naming the registered actor (``?<id>`` and every
candidate when ambiguous), with each disguised id, its rule, reasons and the characters
that differ, the exposures and slate entries involved and example event ids.  The evidence's
``sensitivity`` block — labelled as such — gives the actor's amplification ratio per period
with a 95 % user-clustered interval (:func:`detectors.stats.ratio_ci`) as logged and with
the look-alike ids' exposures counted for the actor.  A logged fact: no alpha.  Cost: one
``near_miss`` per distinct unregistered id (misses are remembered, up to 200,000 ids).

Conflicting duplicates (subject ``conflicting_duplicates``, :mod:`._duplicates`)
-------------------------------------------------------------------------------
Copies of one ``event_id`` with different content are dead letters at ingest (every copy,
raw text kept; none counted, so the order of arrival never matters).  When the stream ends
this check reports their number (``note_ingest``) if at least ``min_conflicting``.

Labels without intervention ids (subjects ``label_consistency``, ``label_without_intervention``)
-----------------------------------------------------------------------------------------------
From the exposure log alone (:mod:`._labels`), rules on logged facts.  A disclosure with a
label covers a ranked-arm exposure when it names the actor (or its group, or nobody), its
regions cover the exposure's region, and the exposure falls inside its period shrunk by
``label_grace_minutes`` at both ends (a session that began before the boundary).  Per
(item, surface, label), an item shown with the label on some covered exposures and without
it on others has missing labels: ``label_consistency`` is raised once
``min_missing_labels`` such unlabelled exposures were seen, ``effect`` = their share.  It
needs no intervention id in the ranking log, so stripping the ids does not hide it (the
``missing_label`` detector needs them); an item never labelled at all is not seen by this
rule.  ``label_without_intervention``: at least ``min_missing_labels`` exposures carry a
label that no disclosure declares for that actor, region and time (± the grace), of items
no ranking event logs an intervention on.

Panel (subject ``panel_mismatch``, :mod:`._panel`)
-------------------------------------------------
Panel records (contract v1.1 §5) are what panellists' devices recorded.  From a
panellist's first panel record on, every panel record is matched with a logged exposure of
the same platform, user and item within ``panel_match_seconds`` (default 120 s, or one tick
when ticks are shorter; at most one tick) (nearest first, each used
once, one tick of grace either side); a trial is a panel record or a logged exposure of a
panellist, mismatched when it has no twin (``missing_from_log``, ``not_seen_by_panel``) or
its twin has another position or label.  ``H0: mismatch rate ≤ ε_p`` (``panel_tolerance``,
default 0.02: a device's recording errors) is tested with the uniform-mixture e-process of
:func:`detectors.stats.label_share_log_e`; ``effect`` = the mismatch rate with a 95 %
Clopper–Pearson interval, and the evidence adds an interval with panellists as clusters
(delta method) and the rate per region.  Assumption: under H0 the recording errors are
independent across exposures (the clustered interval shows how far they are not).  The
evidence names no panellist and no (item, time) pair: a finding must not let the platform
find who is on the panel.  Measured power: ``docs/for-commissions-panel.md``.

Guarantee
---------
The statistical checks share this detector's budget ``α_d`` by Bonferroni over the ``m = 6``
tests of a platform in a window (holdout share, holdout share between regions and surfaces,
holdout share of exposures, exposure links, panel mismatch, panel amplification): a check is
flagged when ``E_t ≥ m/α_d`` (``2m/α_d`` for the estimated holdout share, ``2Km/α_d`` per
region or surface cell, ``mS/α_d`` per panel subject), so P(any false statistical
``log_integrity`` finding on a platform in a window) ≤ ``α_d`` under continuous monitoring
(Ville's inequality) — exactly for the four tests on Bernoulli trials, asymptotically for
the exposure share and the panel amplification (normal mixtures on cluster-robust
estimates).  ``p_value = min(1, m' / max_t E_t)`` with ``m'`` the check's multiplier above.
The rules spend no alpha; each states the logged fact it rests on.

Measured (``benchmarks/bench_integrity.py --runs 20``, small simulated elections, 1,500
users unless stated, 7.2 h windows, ``log_integrity`` alone at ``α = 0.05``, m = 6): honest
platforms raised no finding in 100 runs (a 300-user panel, none, 8,000 users, three
surfaces with 4,000 users, 6,000 users with 1,500 panellists: 0/20 each; and 0 of 30 in the
test suite, with a 40-user panel, plus 0 of 40 undeclared-share nulls of 1,500 and 8,000
users).  Each way of hiding was found: look-alike ids 20/20; deleted holdout logs 20/20
(``holdout_silent``, and ``holdout_share`` 20/20); half the holdout users deleted from the
window start, no share declared, 8,000 users: 20/20 (``holdout_share``, through the
returning users); a quarter of ranked users moved into the holdout arm 20/20
(``holdout_assignment``; ``holdout_share`` 12/20); stripped intervention ids 18/20
(``label_consistency``; the misses had fewer than ``min_missing_labels`` unlabelled
exposures); conflicting duplicates 20/20; a log falsified against a 300-user panel 20/20;
labels without an intervention 15/20 (one actor's items: too few exposures in the small
runs); half of one region's holdout users deleted (DE-BE, 8,000 users) 16/20
(``holdout_share_region``); every holdout record on one surface deleted (4,000 users)
20/20 (``holdout_share_surface``); 40 % of the holdout arm's exposures deleted, users kept
(8,000 users) 20/20 (``holdout_exposure_share``); one candidate's ×2 boost hidden in the
log for the panellists only (6,000 users, 1,500 panellists) 15/20
(``panel_amplification``; ``panel_mismatch`` 1/20).  A platform that drops every event of
a fifth of its holdout users all along is flagged only when it declares its share (the
baseline is then as under-logged as the window).
"""

from __future__ import annotations

from ._srm import beta_prior, srm_log_e
from .detector import LogIntegrity

__all__ = ["LogIntegrity", "beta_prior", "srm_log_e"]
