"""The end of a session (compiled part of the world step): the user's return gap, then rest until
that day, or churn (gap beyond the churn window), or the end of the horizon.

Imports: numba, ``recoworld.users`` (choice, mindset_update, jit), ``recoworld.world`` (layout, platform_log).
"""

from __future__ import annotations

from numba import njit

from recoworld.users.choice import return_gap, return_probability
from recoworld.users.jit import FASTMATH
from recoworld.users.mindset_update import rest
from recoworld.world.layout import (
    E_CHURN_WINDOW, E_HORIZON, E_MAX_SLATES, U_CHURN, U_ENDED, U_FINISHED, U_GAP, U_RETURN,
)
from recoworld.world.platform_log import log_new_session


@njit(cache=True, inline="always", fastmath=FASTMATH)
def end_slate(p, env_vec, users, log, clock, r: int, left: bool, u: float, ou) -> None:
    """After a slate, user ``r``'s session goes on, or ends (they left, or hit the session's slate
    limit): then a return gap is drawn (uniform ``u``) and the user churns, finishes the horizon,
    or rests and comes back ``gap`` days later. Writes U_ENDED, U_GAP, U_CHURN, U_RETURN, U_FINISHED of ``ou``."""
    clock.session_step[r] += 1
    if left or clock.session_step[r] >= env_vec[E_MAX_SLATES]:
        ou[U_ENDED] = 1.0
        gap = return_gap(return_probability(p, users.traits[r], users.mind[r]), u)
        ou[U_GAP] = gap
        if gap > env_vec[E_CHURN_WINDOW]:
            clock.churned[r] = True
            ou[U_CHURN] = 1.0
        else:
            ou[U_RETURN] = 1.0 / gap
            if clock.day[r] + gap >= env_vec[E_HORIZON]:
                clock.finished[r] = True
                ou[U_FINISHED] = 1.0
            else:
                rest(p, users, r, gap)
                log_new_session(log, r, clock.session_step[r], gap)
                clock.day[r] += int(gap)
                clock.days_active[r] += 1
        clock.session_step[r] = 0
