"""How a parametric user's hidden mindset moves: within a session (satiation, exposure, fatigue,
boredom, recent viewing), after a slate (satisfaction, trust, taste drift, the urge to speak up)
and between sessions (rest). Small ``@njit`` parts inlined into the fused world step
(``recoworld.world.kernel``), each callable on its own.

``users`` is a :class:`recoworld.users.layout.UserArrays`, ``cat`` the kernel's catalog arrays,
``p`` the packed parameter vector; rows ``ts`` = topic_state[r] (5, T), ``md`` = mind[r],
``tr`` = traits[r].

Imports: numpy, numba, ``recoworld.users`` (layout, jit, compliance, instructions, choice).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from recoworld.users.choice import hazard_logit
from recoworld.users.compliance import slate_compliance
from recoworld.users.instructions import NO_TOPIC
from recoworld.users.jit import FASTMATH, decay, sigmoid
from recoworld.users.layout import (
    AGE, BOREDOM, COMPLIANCE_RESOLVE, COMPLIANCE_SATISFACTION, COMPLIANCE_TRUST, COOLDOWN, DISLIKE, EXPOSURE,
    EXPOSURE_DAY_DECAY, EXPOSURE_STEP_DECAY, FATIGUE, FATIGUE_PER_ITEM, FATIGUE_PER_MINUTE, IGNORED_TRUST_PENALTY,
    INSTRUCTION_COOLDOWN, INSTRUCTION_PATIENCE, INSTRUCTION_RISK, INSTRUCTION_SATIATION, INTEREST, LESS, MORE,
    NEUROTICISM, NOVELTY_SCALE, SAT_DAY_DECAY, SAT_EXPOSURE_GAIN, SAT_GAIN, SAT_LONG, SAT_LONG_DAY_DECAY,
    SAT_LONG_GAIN, SAT_SHORT, SAT_STEP_DECAY, SATISFACTION, SATISFACTION_DAY_REVERSION, SATISFACTION_RATE,
    SATISFACTION_VALUE_SCALE, SIMILARITY_DAY_DECAY, SIMILARITY_STEP_DECAY, SURPRISE, TASTE_DRIFT, VERBOSITY,
    VOICE_THRESHOLD,
)


@njit(cache=True, inline="always", fastmath=FASTMATH)
def fade_between_slates(p, users, r: int) -> None:
    """Short-term satiation, exposure and recent viewing fade by one slate's step."""
    ts = users.topic_state[r]
    for t in range(ts.shape[1]):
        ts[SAT_SHORT, t] = decay(ts[SAT_SHORT, t], p[SAT_STEP_DECAY])
        ts[EXPOSURE, t] = decay(ts[EXPOSURE, t], p[EXPOSURE_STEP_DECAY])
    for d in range(users.recent.shape[1]):
        users.recent[r, d] = decay(users.recent[r, d], p[SIMILARITY_STEP_DECAY])


@njit(cache=True, inline="always", fastmath=FASTMATH)
def after_click(p, users, cat, r: int, it: int, wf: float, like: bool, fatigue: float, liked) -> float:
    """The mindset after watching a fraction ``wf`` of item ``it``: it is consumed, its topic
    satiates, the minutes watched tire, recent viewing moves towards it, and a liked item adds
    to ``liked`` (the (D,) sum taste drifts towards). Returns the fatigue."""
    t = cat.topic[it]
    ts = users.topic_state[r]
    users.consumed[r, it >> 3] |= np.uint8(1 << (it & 7))
    if like:
        for d in range(len(liked)):
            liked[d] += cat.embeddings[it, d]
    ts[SAT_SHORT, t] += p[SAT_GAIN] * wf
    ts[SAT_LONG, t] += p[SAT_LONG_GAIN] * wf
    fatigue += p[FATIGUE_PER_MINUTE] * wf * cat.duration[it] / 60.0
    for d in range(users.recent.shape[1]):
        users.recent[r, d] += wf * (cat.embeddings[it, d] - cat.mean_embedding[d])
    return fatigue


@njit(cache=True, inline="always", fastmath=FASTMATH)
def after_review(p, ts, t: int, fatigue: float) -> float:
    """Any reviewed item exposes (and a little satiates) its topic ``t`` and tires. Returns the fatigue."""
    ts[SAT_SHORT, t] += p[SAT_EXPOSURE_GAIN]
    ts[EXPOSURE, t] += 1.0
    return fatigue + p[FATIGUE_PER_ITEM]


@njit(cache=True, inline="always", fastmath=FASTMATH)
def satisfaction_after_slate(p, md, value: float, n_reviewed: int) -> float:
    """Satisfaction moves towards the slate's mean value per reviewed item (scaled into [0, 1])."""
    target = min(1.0, max(0.0, value / max(n_reviewed, 1) / p[SATISFACTION_VALUE_SCALE]))
    return md[SATISFACTION] + p[SATISFACTION_RATE] * (target - md[SATISFACTION])


@njit(cache=True, inline="always", fastmath=FASTMATH)
def follow_up_instruction(p, tr, md, instr_row, slate_topics, familiar, satisfaction: float, trust: float):
    """The user judges how well the slate (``slate_topics``) followed their pending instruction:
    satisfaction and trust move with compliance; a resolved or ignored (too old) instruction is
    dropped and a cooldown starts. Returns (satisfaction, trust, compliance, resolved, ignored)."""
    c = slate_compliance(slate_topics, instr_row[MORE], instr_row[LESS], instr_row[SURPRISE] > 0, familiar)
    satisfaction += p[COMPLIANCE_SATISFACTION] * (c - 0.5)
    trust += p[COMPLIANCE_TRUST] * (c - 0.5) * (1.0 + 0.5 * (tr[NEUROTICISM] - 0.5))
    instr_row[AGE] += 1
    resolved = c >= p[COMPLIANCE_RESOLVE]
    ignored = (not resolved) and instr_row[AGE] >= p[INSTRUCTION_PATIENCE]
    if ignored:
        trust -= p[IGNORED_TRUST_PENALTY]
    if resolved:
        md[BOREDOM] = 0.0
    if resolved or ignored:
        instr_row[MORE] = NO_TOPIC
        instr_row[LESS] = NO_TOPIC
        instr_row[SURPRISE] = 0
        instr_row[AGE] = -1
        instr_row[COOLDOWN] = int(p[INSTRUCTION_COOLDOWN]) + 1
    return satisfaction, trust, c, resolved, ignored


@njit(cache=True, inline="always", fastmath=FASTMATH)
def drift_taste(p, taste_row, liked) -> None:
    """Taste moves towards the sum of liked item embeddings ``liked`` and is renormalised."""
    norm = 0.0
    for d in range(len(taste_row)):
        taste_row[d] += p[TASTE_DRIFT] * liked[d]
        norm += taste_row[d] * taste_row[d]
    norm = math.sqrt(norm)
    for d in range(len(taste_row)):
        taste_row[d] /= norm


@njit(cache=True, inline="always", fastmath=FASTMATH)
def disengagement_risk(p, tr, md, ts, k: int):
    """Chance of leaving within a next slate of ``k`` items like this one, and the top topic satiation.
    Returns (risk, max satiation)."""
    max_sat = 0.0
    for t in range(ts.shape[1]):
        max_sat = max(max_sat, ts[SAT_SHORT, t] + ts[SAT_LONG, t])
    haz = sigmoid(hazard_logit(p, tr, md, md[FATIGUE], md[BOREDOM], max_sat))
    return 1.0 - (1.0 - haz) ** k, max_sat


@njit(cache=True, inline="always", fastmath=FASTMATH)
def speak_up(p, tr, ts, instr_row, risk: float, max_sat: float, is_forced: bool, u: float) -> bool:
    """After a cooldown, a verbose enough user at risk of leaving may tell the platform what they
    want (chance from verbosity, uniform ``u``); a forced (LLM) user speaks only for itself.
    Returns whether an instruction was emitted."""
    if instr_row[COOLDOWN] > 0:
        instr_row[COOLDOWN] -= 1
        return False
    if (
        instr_row[AGE] < 0
        and tr[VERBOSITY] >= p[VOICE_THRESHOLD]
        and risk > p[INSTRUCTION_RISK]
        and not is_forced
        and u < 0.5 + 0.5 * tr[VERBOSITY]
    ):
        emit_instruction(p, ts, instr_row, max_sat)
        return True
    return False


@njit(cache=True, inline="always", fastmath=FASTMATH)
def emit_instruction(p, ts, instr_row, max_sat: float) -> None:
    """Less of the most satiated topic (if satiated enough), more of a fresh interest, else surprise me."""
    n_topics = ts.shape[1]
    less = NO_TOPIC
    if max_sat >= p[INSTRUCTION_SATIATION]:
        best = 0.0
        for t in range(n_topics):
            s = ts[SAT_SHORT, t] + ts[SAT_LONG, t]
            if s > best:
                best, less = s, t
    more, best = NO_TOPIC, 0.05
    for t in range(n_topics):
        if t == less or ts[DISLIKE, t] > 0:
            continue
        appeal = ts[INTEREST, t] * math.exp(-ts[EXPOSURE, t] / p[NOVELTY_SCALE]) * math.exp(-(ts[SAT_SHORT, t] + ts[SAT_LONG, t]))
        if appeal > best:
            best, more = appeal, t
    instr_row[MORE] = more
    instr_row[LESS] = less
    instr_row[SURPRISE] = more == NO_TOPIC
    instr_row[AGE] = 0


@njit(cache=True, inline="always", fastmath=FASTMATH)
def rest(p, users, r: int, gap: float) -> None:
    """Recovery over ``gap`` days away: satiation, exposure and recent viewing decay per day;
    fatigue and boredom reset; satisfaction reverts towards neutral."""
    ts, md = users.topic_state[r], users.mind[r]
    short, long_, expo = p[SAT_DAY_DECAY] ** gap, p[SAT_LONG_DAY_DECAY] ** gap, p[EXPOSURE_DAY_DECAY] ** gap
    for t in range(ts.shape[1]):
        ts[SAT_SHORT, t] = decay(ts[SAT_SHORT, t], short)
        ts[SAT_LONG, t] = decay(ts[SAT_LONG, t], long_)
        ts[EXPOSURE, t] = decay(ts[EXPOSURE, t], expo)
    md[FATIGUE] = 0.0
    md[BOREDOM] = 0.0
    md[SATISFACTION] = 0.5 + (md[SATISFACTION] - 0.5) * p[SATISFACTION_DAY_REVERSION] ** gap
    keep = p[SIMILARITY_DAY_DECAY] ** gap
    for d in range(users.recent.shape[1]):
        users.recent[r, d] = decay(users.recent[r, d], keep)
