"""How a parametric user acts on a reviewed slate item, leaves a session, and comes back (compiled parts).

Each function is a small ``@njit`` part inlined into the fused world step
(``recoworld.world.kernel``); each also runs on its own from Python (tests build a hand-made case).
``users`` is a :class:`recoworld.users.layout.UserArrays`, ``cat`` a
``recoworld.world.layout.CatalogArrays`` (any object with those array attributes), ``p`` the packed
parameter vector (``PARAM_ORDER``).

Imports: numpy, numba, ``recoworld.users.layout`` and ``recoworld.users.jit``.
"""

from __future__ import annotations

import math

from numba import njit

from recoworld.users.jit import FASTMATH, sigmoid
from recoworld.users.layout import (
    A_CLICK, A_COMMENT, A_LIKE, A_SHARE, A_SKIP, ACTIVITY, AGREEABLENESS, CLICK_TEMPERATURE, CLICK_THRESHOLD,
    COMMENT_THRESHOLD, EXTRAVERSION, F_CLICK, F_COMMENT, F_LIKE, F_SHARE, F_WATCH, HAZARD_BIAS, HAZARD_BOREDOM,
    HAZARD_FATIGUE, HAZARD_PATIENCE, HAZARD_SATIATION, HAZARD_SATISFACTION, HAZARD_TRUST, LIKE_THRESHOLD, O_ACTION,
    O_CLICK, O_COMMENT, O_LIKE, O_REVIEWED, O_SHARE, O_UTILITY, O_WATCH, O_WATCH_SECONDS, PATIENCE, R_COMMENT, R_LIKE,
    R_SHARE, RETURN_ACTIVITY, RETURN_BIAS, RETURN_SATISFACTION, RETURN_TRUST, SATISFACTION, SHARE_THRESHOLD, TRUST,
    VERBOSITY, WATCH_MIDPOINT, WATCH_SLOPE,
)


@njit(cache=True, inline="always", fastmath=FASTMATH)
def decide_click(p, u: float, draw: float, is_forced: bool, forced) -> bool:
    """Does the user click an item of utility ``u``? (uniform ``draw``; a forced user's F_CLICK instead)."""
    if is_forced:
        return forced[F_CLICK] > 0
    return draw < sigmoid((u - p[CLICK_THRESHOLD]) / p[CLICK_TEMPERATURE])


@njit(cache=True, inline="always", fastmath=FASTMATH)
def decide_engagement(p, tr, u: float, draws, is_forced: bool, forced):
    """How a clicked item of utility ``u`` is consumed: the watch fraction (patient users watch
    longer), like (agreeable), share (extraverted), comment (extraverted and verbose). ``draws`` are
    the item's five uniforms (R_* order); a forced user's actions come from ``forced`` (F_* columns).
    Returns (watch fraction, liked, shared, commented)."""
    if is_forced:
        wf = min(1.0, max(0.02, forced[F_WATCH]))
        return wf, forced[F_LIKE] > 0, forced[F_SHARE] > 0, forced[F_COMMENT] > 0
    wf = sigmoid(p[WATCH_SLOPE] * (u - p[WATCH_MIDPOINT])) * (0.6 + 0.4 * tr[PATIENCE])
    wf = min(1.0, max(0.02, wf))
    like = draws[R_LIKE] < sigmoid(u - p[LIKE_THRESHOLD] + 2.0 * (tr[AGREEABLENESS] - 0.5))
    share = draws[R_SHARE] < sigmoid(u - p[SHARE_THRESHOLD] + 2.0 * (tr[EXTRAVERSION] - 0.5))
    talk = 0.5 * (tr[EXTRAVERSION] + tr[VERBOSITY])
    comment = draws[R_COMMENT] < sigmoid(u - p[COMMENT_THRESHOLD] + 2.0 * (talk - 0.5))
    return wf, like, share, comment


@njit(cache=True, inline="always")
def record_review(o, u: float) -> None:
    """The item's output row ``o`` (O_* columns, zeroed) after a review: reviewed, utility, skipped so far."""
    o[O_REVIEWED] = 1.0
    o[O_UTILITY] = u
    o[O_ACTION] = A_SKIP


@njit(cache=True, inline="always", fastmath=FASTMATH)
def record_click(o, wf: float, like: bool, share: bool, comment: bool, duration: float) -> None:
    """The item's output row after a click: watch fraction and seconds, reactions, the strongest action."""
    o[O_CLICK] = 1.0
    o[O_WATCH] = wf
    o[O_WATCH_SECONDS] = wf * duration
    o[O_LIKE] = like
    o[O_SHARE] = share
    o[O_COMMENT] = comment
    o[O_ACTION] = A_SHARE if share else A_COMMENT if comment else A_LIKE if like else A_CLICK


@njit(cache=True, inline="always", fastmath=FASTMATH)
def hazard_logit(p, traits_row, mind_row, fatigue: float, boredom: float, satiation: float) -> float:
    """Logit of leaving after an item, given the state after it."""
    return (
        p[HAZARD_BIAS]
        - p[HAZARD_SATISFACTION] * (mind_row[SATISFACTION] - 0.5)
        - p[HAZARD_TRUST] * (mind_row[TRUST] - 0.5)
        - p[HAZARD_PATIENCE] * (traits_row[PATIENCE] - 0.5)
        + p[HAZARD_FATIGUE] * fatigue
        + p[HAZARD_BOREDOM] * boredom
        + p[HAZARD_SATIATION] * satiation
    )


@njit(cache=True, inline="always", fastmath=FASTMATH)
def return_probability(p, traits_row, mind_row) -> float:
    """Daily chance of coming back, from the last session's satisfaction, trust and the activity trait."""
    return sigmoid(
        p[RETURN_BIAS]
        + p[RETURN_SATISFACTION] * (mind_row[SATISFACTION] - 0.5)
        + p[RETURN_TRUST] * (mind_row[TRUST] - 0.5)
        + p[RETURN_ACTIVITY] * (traits_row[ACTIVITY] - 0.5)
    )


@njit(cache=True, inline="always", fastmath=FASTMATH)
def return_gap(q: float, u: float) -> float:
    """Days until the next session when each day brings the user back with chance ``q``
    (geometric, by inverse CDF of the uniform ``u``)."""
    return 1.0 if q >= 1.0 else max(1.0, math.ceil(math.log1p(-u) / math.log1p(-q)))
