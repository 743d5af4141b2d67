"""The fused compiled (numba) world step: one pass per user through small named parts.

Per user and step: the slate is reviewed item by item (``recoworld.users.choice``: utility and
actions; ``recoworld.users.mindset_update``: satiation, fatigue, boredom; the platform log,
``recoworld.world.platform_log``), then the slate's aftermath (satisfaction, trust, instruction
compliance from ``recoworld.users.compliance``, taste drift, speaking up), the session end
(``recoworld.world.session``: return, rest or churn), fresh candidates
(``recoworld.world.retrieval``), and optionally the next observation (``recoworld.world.observation_kernel``).
The parts are ``inline="always"`` numba functions, so the step compiles into one fused loop body.

State travels as namedtuples of arrays (``recoworld.users.layout.UserArrays``, and
``recoworld.world.layout``'s CatalogArrays, LogArrays, ClockArrays, ObsArrays, Outputs).
The index constants of both layouts are defined once, in those layout modules, and imported from
there (``from recoworld.world import layout as WL; WL.U_REWARD``).

One kernel serves every batch size: the Gym env calls it with one user, the population runner
with thousands. Items of a slate are reviewed strictly in order, so satiation, fatigue and
boredom after item j shape the decision on item j+1. All random numbers come from the world's
seeded numpy Generator (one raw draw per user), so trajectories depend only on the seed.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from recoworld.users.choice import (  # noqa: F401  (hazard_logit, return_probability: re-exported)
    decide_click, decide_engagement, hazard_logit, record_click, record_review, return_probability,
)
from recoworld.users.compliance import familiar_mask
from recoworld.users.jit import FASTMATH, has_consumed, normal, sigmoid
from recoworld.users.layout import (
    CONFORMITY, DISLIKE, NOISE_SD, NOVELTY, NOVELTY_SCALE, SIMILARITY_TOLERANCE, W_DISLIKE, W_FATIGUE, W_NOVELTY,
    W_POPULARITY, W_QUALITY, W_REPEAT, W_SATIATION, W_SIMILARITY, W_TASTE,
    FORCED_COLUMNS, ITEM_OUTPUTS, A_LEAVE, A_SKIP, AGE, BOREDOM, EXPOSURE, FATIGUE, O_ACTION, R_CLICK,
    R_LEAVE, SAT_LONG, SAT_SHORT, SATISFACTION, TRUST,
    Decisions,
)
from recoworld.users.mindset_update import (
    after_click, after_review, disengagement_risk, drift_taste, fade_between_slates, follow_up_instruction, satisfaction_after_slate,
    speak_up,
)
from recoworld.world.bound import borrowed, observation_fits, observation_views, rows_in_range, views
from recoworld.world.layout import (
    Outputs,
    USER_OUTPUTS, N_COMPONENTS, U_COMMENTS, U_COMPLIANCE, U_CLICKS, U_EMITTED, U_IGNORED, U_LEFT, U_LEFT_AT, U_LIKES, U_RESOLVED,
    U_REWARD, U_RISK, U_SHARES, U_SKIPS, U_WATCH_MINUTES,
)
from recoworld.world.observation_kernel import observe_kernel, observe_rows
from recoworld.world.platform_log import decay_log, log_click, log_shown, log_slate
from recoworld.world.retrieval import (  # noqa: F401  (retrieve_kernel: the simulation's entry to retrieval)
    DECISION_DRAWS, candidate_draws, candidates_from, decision_draws, draw_width, fill_uniforms, noise_draw, probe_table,
    retrieve_kernel, session_end_draw, speak_draw,
)
from recoworld.world.session import end_slate


@njit(cache=True, fastmath=FASTMATH)
def world_step(rows, slates, seeds, p, env_vec, reward_weights, users, cat, log, clock, candidates, out, obs, decisions):
    """One world step for users ``rows``: each reviews their slate (catalog rows, (b, K)) in order
    (mindset, platform log and clock update in place; an ended session leads to a return gap and
    rest, or churn), gets fresh candidates for the next decision, and, when the ``obs`` buffers are
    non-empty, the observation of that decision.

    ``users``: UserArrays; ``cat``, ``log``, ``clock``, ``out``, ``obs``: the world layout's
    namedtuples; ``decisions``: users.layout.Decisions (a forced user, an LLM user, takes its
    actions and leave slot from there and does not speak up by itself); ``seeds`` (b,) uint64: one
    raw draw of the world's Generator per user; ``p``: the packed user parameters (PARAM_ORDER);
    ``env_vec`` = (max slates, churn window, horizon); ``reward_weights``: weights of the
    N_COMPONENTS reward components (the scalar goes to U_REWARD). No BLAS call anywhere in the step:
    idle BLAS threads spin and steal the other core.
    """
    _step_range(0, len(rows), rows, slates, seeds, p, env_vec, reward_weights, users, cat, log, clock, candidates, out, decisions)
    if obs.candidates.shape[0] > 0:
        observe_kernel(rows, candidates, clock, cat, users, log, obs)


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def world_step_parallel(
    rows, slates, seeds, p, env_vec, reward_weights, users, cat, log, clock, candidates, out, obs, decisions
):
    """:func:`world_step` with contiguous chunks of users spread over threads (same results; ``rows``
    holds each user once)."""
    b = len(rows)
    n_chunks = min(b, 16)
    size = (b + n_chunks - 1) // n_chunks
    observe = obs.candidates.shape[0] > 0
    for c in prange(n_chunks):
        lo, hi = c * size, min(b, (c + 1) * size)
        _step_range(lo, hi, rows, slates, seeds, p, env_vec, reward_weights, users, cat, log, clock, candidates, out, decisions)
        if observe:  # a user's observation reads only their own rows, so each chunk observes its users
            observe_rows(lo, hi, rows, candidates, clock, cat, users, log, obs)


# what step_bound found wrong with its arguments, before it touched anything (recoworld.world.step words each)
STEP_OK, WRONG_LENGTHS, ROW_OUT_OF_RANGE, ITEM_OUT_OF_RANGE, WRONG_OUTPUTS, WRONG_OBSERVATION, WRONG_DECISIONS = range(7)


@njit(cache=True, inline="always")
def step_problem(candidates, cat, log, rows, slates, seeds, out, obs, decisions) -> int:
    """STEP_OK, or the first thing wrong with a step's arguments (the world's candidate table, catalog and log, and
    the step's own arrays). Compiled code does not check bounds: a row, a catalog row or a buffer of the wrong size
    would read or write past an array instead of failing."""
    b, k = slates.shape
    if len(rows) != b or len(seeds) != b:
        return WRONG_LENGTHS
    if not rows_in_range(rows, candidates.shape[0]):
        return ROW_OUT_OF_RANGE
    n_items = len(cat.topic)
    for i in range(b):
        for j in range(k):
            if slates[i, j] < 0 or slates[i, j] >= n_items:
                return ITEM_OUT_OF_RANGE
    if out.items.shape != (b, k, ITEM_OUTPUTS) or out.users.shape != (b, USER_OUTPUTS):
        return WRONG_OUTPUTS
    if not observation_fits(candidates.shape[1], log.topics.shape[2], b, obs):
        return WRONG_OBSERVATION
    actions = decisions.actions
    if (len(decisions.forced) != b or len(decisions.leave_at) != b or actions.shape[0] != b or actions.shape[1] != k
            or actions.shape[2] != FORCED_COLUMNS):
        return WRONG_DECISIONS
    return STEP_OK


@njit(cache=True)
def step_bound(
    parallel, w, rows, slates, seeds, out_items, out_users, obs_candidates, obs_user, obs_topics, obs_instruction,
    obs_candidate_topics, forced, actions, leave_at,
) -> int:
    """``world_step`` (``world_step_parallel`` when ``parallel``) of users ``rows`` on the world ``w`` (a
    :class:`WorldState`); empty observation buffers (0 rows) mean no observation. Returns STEP_OK, or what
    :func:`step_problem` found wrong (then nothing was stepped). Every array is borrowed
    (``recoworld.world.bound.borrowed``): the caller holds them all for the call."""
    b = borrowed
    users, cat, log, clock = views(w)
    out = Outputs(b(out_items), b(out_users))
    obs = observation_views(w, obs_candidates, obs_user, obs_topics, obs_instruction, obs_candidate_topics)
    decisions = Decisions(b(forced), b(actions), b(leave_at))
    rows, slates, seeds, candidates = b(rows), b(slates), b(seeds), b(w.candidates)
    problem = step_problem(candidates, cat, log, rows, slates, seeds, out, obs, decisions)
    if problem != STEP_OK:
        return problem
    p, env_vec, weights = b(w.params), b(w.env_vec), b(w.reward_weights)
    if parallel:
        world_step_parallel(rows, slates, seeds, p, env_vec, weights, users, cat, log, clock, candidates, out, obs, decisions)
    else:
        world_step(rows, slates, seeds, p, env_vec, weights, users, cat, log, clock, candidates, out, obs, decisions)
    return STEP_OK


@njit(cache=True, fastmath=FASTMATH)
def _step_range(lo, hi, rows, slates, seeds, p, env_vec, reward_weights, users, cat, log, clock, candidates, out, decisions):
    """Users ``rows[lo:hi]`` take their step, with one set of scratch buffers: the user's uniforms,
    familiar topics (T,), slate topics (K,) and the liked embedding sum (D,)."""
    k = slates.shape[1]
    uni = np.empty(draw_width(k, candidates.shape[1]))
    familiar = np.zeros(users.topic_state.shape[2], dtype=np.bool_)
    slate_topics = np.empty(k, dtype=np.int64)
    liked = np.zeros(users.taste.shape[1], dtype=np.float32)
    table = probe_table(candidates.shape[1])
    for i in range(lo, hi):
        fill_uniforms(seeds[i], uni)
        _serve_user(
            i, rows[i], slates[i], uni, p, env_vec, users, cat, log, clock, out, familiar, slate_topics, liked,
            decisions.forced[i], decisions.actions[i], decisions.leave_at[i],
        )
        reward = 0.0
        for q in range(N_COMPONENTS):
            reward += reward_weights[q] * out.users[i, q]
        out.users[i, U_REWARD] = reward
        candidates_from(rows[i], uni, candidate_draws(k), candidates, len(cat.topic), table)


@njit(cache=True, fastmath=FASTMATH)
def _serve_user(
    i, r, slate, uni, p, env_vec, users, cat, log, clock, out, familiar, slate_topics, liked,
    is_forced, forced_actions, forced_leave_at,
):
    """User ``r`` (row i of the step) reviews ``slate``: the between-slates fade, the review, the
    aftermath and the session end. ``familiar``, ``slate_topics`` and ``liked`` are scratch."""
    fade_between_slates(p, users, r)
    decay_log(p, log, r)
    familiar_mask(users.topic_state[r, EXPOSURE], familiar)
    ou = out.users[i]
    ou[:] = 0.0
    liked[:] = 0.0
    n_rev, clicks, n_liked, value, left_at, fatigue, boredom = _review_slate(
        i, r, slate, uni, p, users, cat, log, out, slate_topics, liked, is_forced, forced_actions, forced_leave_at
    )
    users.mind[r, FATIGUE] = fatigue
    users.mind[r, BOREDOM] = boredom
    ou[U_CLICKS] = clicks
    ou[U_SKIPS] = n_rev - clicks
    ou[U_LEFT] = left_at >= 0
    ou[U_LEFT_AT] = left_at
    log_slate(log, r, n_rev, clicks, boredom)
    _after_slate(p, users, r, len(slate), value, n_rev, n_liked, slate_topics, familiar, liked, is_forced, uni[speak_draw(len(slate))], ou)
    end_slate(p, env_vec, users, log, clock, r, left_at >= 0, uni[session_end_draw(len(slate))], ou)


@njit(cache=True, inline="always", fastmath=FASTMATH)
def _review_slate(i, r, slate, uni, p, users, cat, log, out, slate_topics, liked, is_forced, forced_actions, forced_leave_at):
    """The user reviews ``slate`` in order until they leave: utility and actions per item (written
    to ``out.items[i]``), the mindset and the platform log after each. Uniforms: each slot's noise,
    then each slot's decisions (recoworld.world.retrieval's draw offsets). Returns (reviewed, clicks, liked count, value, left_at, fatigue, boredom).

    The item's utility is written out here, in the loop, not as a part: under fastmath
    reassociation the rounding of its sum depends on where its terms are defined, and as an
    inlined function it differs from the reference logs in the last bit."""
    k = len(slate)
    tr, md, ts = users.traits[r], users.mind[r], users.topic_state[r]
    ou = out.users[i]
    fatigue, boredom = md[FATIGUE], md[BOREDOM]
    value = 0.0
    n_liked = n_rev = clicks = 0
    left_at = -1
    for j in range(k):
        it = slate[j]
        t = cat.topic[it]
        slate_topics[j] = t
        o = out.items[i, j]
        o[:] = 0.0
        if left_at >= 0:
            continue
        aff = np.float32(0.0)
        similar = np.float32(0.0)
        for d in range(users.taste.shape[1]):
            aff += cat.embeddings[it, d] * users.taste[r, d]
            similar += (cat.embeddings[it, d] - cat.mean_embedding[d]) * users.recent[r, d]
        satiation = ts[SAT_SHORT, t] + ts[SAT_LONG, t]
        novelty = math.exp(-ts[EXPOSURE, t] / p[NOVELTY_SCALE])
        repeat = has_consumed(users.consumed, r, it)
        for jj in range(j):
            if slate[jj] == it:
                repeat = True
        u = (
            p[W_TASTE] * aff
            + p[W_QUALITY] * (cat.quality[it] - 0.5)
            + p[W_POPULARITY] * tr[CONFORMITY] * cat.popularity[it]
            + p[W_NOVELTY] * tr[NOVELTY] * novelty
            - p[W_SATIATION] * satiation
            - p[W_SIMILARITY] * max(similar - p[SIMILARITY_TOLERANCE], 0.0)
            - p[W_FATIGUE] * fatigue
            - p[W_DISLIKE] * ts[DISLIKE, t]
            - p[W_REPEAT] * repeat
            + p[NOISE_SD] * normal(uni[noise_draw(j)], uni[noise_draw(j) + 1])
        )
        draws = uni[decision_draws(k, j): decision_draws(k, j) + DECISION_DRAWS]
        record_review(o, u)
        n_rev += 1
        engagement = 0.0
        if decide_click(p, u, draws[R_CLICK], is_forced, forced_actions[j]):
            wf, like, share, comment = decide_engagement(p, tr, u, draws, is_forced, forced_actions[j])
            record_click(o, wf, like, share, comment, cat.duration[it])
            ou[U_LIKES] += like
            ou[U_SHARES] += share
            ou[U_COMMENTS] += comment
            ou[U_WATCH_MINUTES] += wf * cat.duration[it] / 60.0
            clicks += 1
            boredom = 0.0
            value += 0.5 + 0.5 * wf + 0.25 * like
            engagement = wf + like
            n_liked += like
            fatigue = after_click(p, users, cat, r, it, wf, like, fatigue, liked)
            log_click(log, cat, r, it, engagement)
        else:
            boredom += 1.0
        fatigue = after_review(p, ts, t, fatigue)
        log_shown(log, r, it, t, engagement)
        if is_forced:
            leaves = forced_leave_at == j
        else:
            leaves = draws[R_LEAVE] < sigmoid(hazard_logit(p, tr, md, fatigue, boredom, ts[SAT_SHORT, t] + ts[SAT_LONG, t]))
        if leaves:
            left_at = j
            if o[O_ACTION] == A_SKIP:
                o[O_ACTION] = A_LEAVE
    return n_rev, clicks, n_liked, value, left_at, fatigue, boredom


@njit(cache=True, inline="always", fastmath=FASTMATH)
def _after_slate(p, users, r, k, value, n_rev, n_liked, slate_topics, familiar, liked, is_forced, u_speak, ou):
    """The slate's aftermath in the mindset: satisfaction, compliance with a pending instruction
    (and trust), taste drift towards liked items, the disengagement risk and perhaps a new instruction."""
    tr, md, ts, instr_row = users.traits[r], users.mind[r], users.topic_state[r], users.instr[r]
    satisfaction = satisfaction_after_slate(p, md, value, n_rev)
    trust = md[TRUST]
    ou[U_COMPLIANCE] = np.nan
    if instr_row[AGE] >= 0:
        satisfaction, trust, c, resolved, ignored = follow_up_instruction(
            p, tr, md, instr_row, slate_topics, familiar, satisfaction, trust
        )
        ou[U_COMPLIANCE] = c
        ou[U_RESOLVED] = resolved
        ou[U_IGNORED] = ignored
    md[SATISFACTION] = min(1.0, max(0.0, satisfaction))
    md[TRUST] = min(1.0, max(0.0, trust))
    if n_liked > 0:
        drift_taste(p, users.taste[r], liked)
    risk, max_sat = disengagement_risk(p, tr, md, ts, k)
    ou[U_RISK] = risk
    if speak_up(p, tr, ts, instr_row, risk, max_sat, is_forced, u_speak):
        ou[U_EMITTED] = 1.0
