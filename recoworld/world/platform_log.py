"""What the platform records of each user during a step (compiled parts of the world step):
decay of the log, one line per reviewed item, the session counters after a slate, and the
summary of a finished session. ``log`` is a :class:`recoworld.world.layout.LogArrays`.

Imports: numba, ``recoworld.users`` (jit, layout: the decay parameter), ``recoworld.world.layout``.
"""

from __future__ import annotations

from numba import njit

from recoworld.users.jit import FASTMATH, decay
from recoworld.users.layout import PLATFORM_DECAY
from recoworld.world.layout import (
    P_CLICK, P_SHOWN, S_CLICKS, S_DAYS_SINCE, S_LAST_CTR, S_LAST_LENGTH, S_REVIEWED, S_SESSIONS, S_SKIP_STREAK,
)


@njit(cache=True, inline="always", fastmath=FASTMATH)
def decay_log(p, log, r: int) -> None:
    """User ``r``'s per-topic counts and estimated taste fade by one slate's step."""
    for t in range(log.topics.shape[2]):
        log.topics[r, P_CLICK, t] = decay(log.topics[r, P_CLICK, t], p[PLATFORM_DECAY])
        log.topics[r, P_SHOWN, t] = decay(log.topics[r, P_SHOWN, t], p[PLATFORM_DECAY])
    for d in range(log.est_taste.shape[1]):
        log.est_taste[r, d] = decay(log.est_taste[r, d], p[PLATFORM_DECAY])


@njit(cache=True, inline="always", fastmath=FASTMATH)
def log_click(log, cat, r: int, it: int, engagement: float) -> None:
    """User ``r`` clicked item ``it`` (``engagement`` = watch fraction + liked): topic clicks, estimated taste."""
    log.topics[r, P_CLICK, cat.topic[it]] += 1.0
    for d in range(log.est_taste.shape[1]):
        log.est_taste[r, d] += engagement * cat.embeddings[it, d]


@njit(cache=True, inline="always")
def log_shown(log, r: int, it: int, t: int, engagement: float) -> None:
    """Item ``it`` (topic ``t``) was reviewed by user ``r``: topic impressions and the history ring buffer."""
    log.topics[r, P_SHOWN, t] += 1.0
    slot = log.hist_next[r]
    log.hist_items[r, slot] = it
    log.hist_engagement[r, slot] = engagement
    log.hist_next[r] = (slot + 1) % log.hist_items.shape[1]


@njit(cache=True, inline="always")
def log_slate(log, r: int, n_reviewed: int, clicks: int, skip_streak: float) -> None:
    """The session counters after a slate: items reviewed, clicks, the current skip streak."""
    st = log.stats[r]
    st[S_REVIEWED] += n_reviewed
    st[S_CLICKS] += clicks
    st[S_SKIP_STREAK] = skip_streak


@njit(cache=True, inline="always", fastmath=FASTMATH)
def log_new_session(log, r: int, slates: int, gap: float) -> None:
    """A session of ``slates`` slates ended and the next starts ``gap`` days later: its CTR and length
    become the 'last session' stats, the session counters reset."""
    st = log.stats[r]
    st[S_LAST_CTR] = st[S_CLICKS] / max(st[S_REVIEWED], 1.0)
    st[S_LAST_LENGTH] = slates
    st[S_DAYS_SINCE] = gap
    st[S_REVIEWED] = 0.0
    st[S_CLICKS] = 0.0
    st[S_SKIP_STREAK] = 0.0
    st[S_SESSIONS] += 1.0
