"""The fused compiled (numba) world step: the users' review of a slate, their mindset update, the
platform log, the session end, the next candidates and the observation, in one pass per user.

The users' compliance rule is inlined from ``recoworld.users.compliance``. Splitting the rest into
named parts with state in named structures is the next step of the restructuring (issue 11, step 5);
``_serve_user`` stays one long function until then because numba fuses it into one loop body.

One kernel serves every batch size: the Gym env calls it with one user, the population
runner with thousands. Items of a slate are reviewed strictly in order, so satiation,
fatigue and boredom after item j shape the decision on item j+1.

All random numbers are drawn by the caller from the world's seeded numpy Generator and
passed in, so trajectories depend only on the seed.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from recoworld.users.compliance import familiar_mask, slate_compliance
from recoworld.users.instructions import NO_TOPIC
from recoworld.users.jit import FASTMATH

# columns of UserBatch.traits
PATIENCE, NOVELTY, CONFORMITY, ACTIVITY, VERBOSITY, EXTRAVERSION, AGREEABLENESS, NEUROTICISM = range(8)
TRAIT_COLUMNS = ("patience", "novelty_seeking", "conformity", "activity", "verbosity", "extraversion", "agreeableness", "neuroticism")
# columns of UserBatch.mind
FATIGUE, SATISFACTION, TRUST, BOREDOM = range(4)
# rows of UserBatch.topic_state (B, 5, T)
SAT_SHORT, SAT_LONG, EXPOSURE, INTEREST, DISLIKE = range(5)
# columns of UserBatch.instr
MORE, LESS, SURPRISE, AGE, COOLDOWN = range(5)
# rows of PlatformState.topics (B, 2, T)
P_CLICK, P_SHOWN = range(2)
# columns of PlatformState.stats
S_REVIEWED, S_CLICKS, S_SKIP_STREAK, S_LAST_CTR, S_LAST_LENGTH, S_DAYS_SINCE, S_SESSIONS = range(7)
# columns of the per-item output (b, K, 9)
O_REVIEWED, O_CLICK, O_LIKE, O_SHARE, O_COMMENT, O_WATCH, O_UTILITY, O_ACTION, O_WATCH_SECONDS = range(9)
ITEM_OUTPUTS = 9
# action codes (O_ACTION): the strongest thing the user did with the item
ACTION_LABELS = ("unseen", "skip", "click", "like", "comment", "share", "leave")
A_UNSEEN, A_SKIP, A_CLICK, A_LIKE, A_COMMENT, A_SHARE, A_LEAVE = range(7)
# columns of the per-user output; the first N_COMPONENTS are the reward components in
# recoworld.world.rewards.COMPONENTS order
(U_CLICKS, U_LIKES, U_SHARES, U_COMMENTS, U_WATCH_MINUTES, U_SKIPS, U_LEFT, U_RETURN, U_CHURN,
 U_LEFT_AT, U_COMPLIANCE, U_RESOLVED, U_IGNORED, U_EMITTED, U_RISK, U_ENDED, U_GAP, U_FINISHED, U_REWARD) = range(19)
N_COMPONENTS = 9
USER_OUTPUTS = 19
# env_vec entries
E_MAX_SLATES, E_CHURN_WINDOW, E_HORIZON = range(3)
# columns of externally decided actions (an LLM user), (b, K, 5): click, watch fraction, like, share, comment
F_CLICK, F_WATCH, F_LIKE, F_SHARE, F_COMMENT = range(5)
# uniforms per item (after the 2K normal draws in the user stream)
R_CLICK, R_LIKE, R_SHARE, R_COMMENT, R_LEAVE = range(5)

# order of ParametricUserParams fields packed into the float vector the kernel reads
PARAM_ORDER = (
    "w_taste", "w_quality", "w_popularity", "w_novelty", "w_satiation", "w_fatigue", "w_dislike", "w_repeat",
    "noise_sd", "novelty_scale", "click_threshold", "click_temperature", "watch_midpoint", "watch_slope",
    "like_threshold", "share_threshold", "comment_threshold", "satiation_gain", "satiation_exposure_gain",
    "satiation_long_gain", "satiation_step_decay", "exposure_step_decay", "fatigue_per_item", "fatigue_per_minute",
    "satisfaction_rate", "satisfaction_value_scale", "taste_drift", "hazard_bias", "hazard_fatigue", "hazard_boredom",
    "hazard_satiation", "hazard_satisfaction", "hazard_trust", "hazard_patience", "voice_threshold", "instruction_risk",
    "instruction_satiation", "instruction_patience", "instruction_cooldown", "compliance_resolve",
    "compliance_satisfaction", "compliance_trust", "ignored_trust_penalty", "platform_decay",
    "return_bias", "return_satisfaction", "return_trust", "return_activity", "satiation_day_decay",
    "satiation_long_day_decay", "exposure_day_decay", "satisfaction_day_reversion",
    "w_similarity", "similarity_step_decay", "similarity_day_decay", "similarity_tolerance",
)
(W_TASTE, W_QUALITY, W_POPULARITY, W_NOVELTY, W_SATIATION, W_FATIGUE, W_DISLIKE, W_REPEAT,
 NOISE_SD, NOVELTY_SCALE, CLICK_THRESHOLD, CLICK_TEMPERATURE, WATCH_MIDPOINT, WATCH_SLOPE,
 LIKE_THRESHOLD, SHARE_THRESHOLD, COMMENT_THRESHOLD, SAT_GAIN, SAT_EXPOSURE_GAIN,
 SAT_LONG_GAIN, SAT_STEP_DECAY, EXPOSURE_STEP_DECAY, FATIGUE_PER_ITEM, FATIGUE_PER_MINUTE,
 SATISFACTION_RATE, SATISFACTION_VALUE_SCALE, TASTE_DRIFT, HAZARD_BIAS, HAZARD_FATIGUE, HAZARD_BOREDOM,
 HAZARD_SATIATION, HAZARD_SATISFACTION, HAZARD_TRUST, HAZARD_PATIENCE, VOICE_THRESHOLD, INSTRUCTION_RISK,
 INSTRUCTION_SATIATION, INSTRUCTION_PATIENCE, INSTRUCTION_COOLDOWN, COMPLIANCE_RESOLVE,
 COMPLIANCE_SATISFACTION, COMPLIANCE_TRUST, IGNORED_TRUST_PENALTY, PLATFORM_DECAY,
 RETURN_BIAS, RETURN_SATISFACTION, RETURN_TRUST, RETURN_ACTIVITY, SAT_DAY_DECAY,
 SAT_LONG_DAY_DECAY, EXPOSURE_DAY_DECAY, SATISFACTION_DAY_REVERSION,
 W_SIMILARITY, SIMILARITY_STEP_DECAY, SIMILARITY_DAY_DECAY, SIMILARITY_TOLERANCE) = range(len(PARAM_ORDER))

# reassociation lets loops over embedding dimensions vectorise; NaN and inf semantics are kept


@njit(cache=True, inline="always", fastmath=FASTMATH)
def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


@njit(cache=True, inline="always")
def has_consumed(bits, r: int, item: int) -> bool:
    """Did user ``r`` click ``item`` before? (``bits`` is the (B, ceil(N / 8)) uint8 bitset.)"""
    return (bits[r, item >> 3] >> (item & 7)) & 1 == 1


@njit(cache=True, inline="always", fastmath=FASTMATH)
def _decay(x: float, factor: float) -> float:
    y = x * factor
    return y if abs(y) > 1e-20 else 0.0


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
    return _sigmoid(
        p[RETURN_BIAS]
        + p[RETURN_SATISFACTION] * (mind_row[SATISFACTION] - 0.5)
        + p[RETURN_TRUST] * (mind_row[TRUST] - 0.5)
        + p[RETURN_ACTIVITY] * (traits_row[ACTIVITY] - 0.5)
    )


# Each user's uniforms for a step come from a splitmix64 stream seeded by one raw 64-bit draw of
# the world's numpy Generator: seeded, independent per user (safe across threads), ~1 ns a number.
# Layout of the stream: 2K for normals, 5K item decisions, 2 user draws, then M candidates.
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


@njit(cache=True, inline="always")
def draw_width(k: int, m: int) -> int:
    """Uniforms per user and step: 2K for normals, 5K item decisions, 2 user draws, M candidates."""
    return 7 * k + 2 + m


@njit(cache=True, inline="always", fastmath=FASTMATH)
def fill_uniforms(seed, out) -> None:
    """``out`` filled with uniforms in [0, 1) from the splitmix64 stream of ``seed``."""
    state = seed
    for q in range(len(out)):
        state += _GOLDEN
        z = state
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
        z = z ^ (z >> np.uint64(31))
        out[q] = (z >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@njit(cache=True, inline="always", fastmath=FASTMATH)
def _normal(u1: float, u2: float) -> float:
    """Box-Muller: a standard normal from two uniforms in [0, 1)."""
    return math.sqrt(-2.0 * math.log(1.0 - u1)) * math.cos(2.0 * math.pi * u2)


@njit(cache=True, inline="always", fastmath=FASTMATH)
def _candidates_from(r, uni, offset: int, candidates, n_items: int) -> None:
    """User ``r``'s candidates: uniform catalog rows (with replacement)."""
    for c in range(candidates.shape[1]):
        candidates[r, c] = min(int(uni[offset + c] * n_items), n_items - 1)


@njit(cache=True, fastmath=FASTMATH)
def retrieve_kernel(rows, seeds, candidates, n_items: int) -> None:
    """Fresh candidates for users ``rows`` (one seed each)."""
    uni = np.empty(candidates.shape[1])
    for i in range(len(rows)):
        fill_uniforms(seeds[i], uni)
        _candidates_from(rows[i], uni, 0, candidates, n_items)


@njit(cache=True, inline="always")
def _scratch(width: int, n_topics: int, k: int, dim: int):
    """Per-thread scratch: the user's uniforms, familiar topics, slate topics, liked embedding sum."""
    return (
        np.empty(width),
        np.zeros(n_topics, dtype=np.bool_),
        np.empty(k, dtype=np.int64),
        np.zeros(dim, dtype=np.float32),
    )


@njit(cache=True, fastmath=FASTMATH)
def world_step(
    rows, slates, seeds, p, env_vec, reward_weights, users, catalog, log, clock, candidates, out_item, out_user, obs, decisions
):
    """One world step for users ``rows``: each reviews their slate in order (mindset, platform log and
    clock update in place; an ended session leads to a return gap and rest, or churn), gets fresh
    candidates for the next decision, and, when ``obs`` buffers are given (non-empty), the
    observation of that decision.

    ``users``, ``catalog``, ``log``, ``clock`` and ``obs`` are tuples of arrays (see
    ``ParametricUserModel.serve``); ``decisions`` = (forced (b,) bool, actions (b, K, 5), leave_at (b,)):
    for a forced user (an LLM user) the actions and the leave slot come from outside instead of
    the model's draws, and the user does not speak up by itself; everything else is the same; ``seeds`` (b,) uint64: one raw draw of the world's Generator
    per user; ``env_vec`` = (max slates, churn window, horizon); ``reward_weights``: weights of the
    N_COMPONENTS reward components (the scalar goes to U_REWARD). No BLAS call anywhere in the step:
    idle BLAS threads spin and steal the other core.
    """
    _step_range(
        0, len(rows), rows, slates, seeds, p, env_vec, reward_weights, users, catalog, log, clock, candidates,
        out_item, out_user, decisions,
    )
    _observe_step(rows, users, catalog, log, clock, candidates, obs)


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def world_step_parallel(
    rows, slates, seeds, p, env_vec, reward_weights, users, catalog, log, clock, candidates, out_item, out_user, obs, decisions
):
    """:func:`world_step` with contiguous chunks of users spread over threads (same results)."""
    b = len(rows)
    n_chunks = min(b, 16)
    size = (b + n_chunks - 1) // n_chunks
    for c in prange(n_chunks):
        _step_range(
            c * size, min(b, (c + 1) * size), rows, slates, seeds, p, env_vec, reward_weights,
            users, catalog, log, clock, candidates, out_item, out_user, decisions,
        )
    _observe_step(rows, users, catalog, log, clock, candidates, obs)


@njit(cache=True, fastmath=FASTMATH)
def _step_range(
    lo, hi, rows, slates, seeds, p, env_vec, reward_weights, users, catalog, log, clock, candidates, out_item, out_user, decisions
):
    """Users ``rows[lo:hi]`` take their step, with one set of scratch buffers."""
    taste, recent, traits, mind, topic_state, instr, consumed = users
    cat_topic, cat_emb, cat_mean, cat_quality, cat_popularity, cat_duration, _, _ = catalog
    est_taste, p_topics, hist_items, hist_eng, hist_next, p_stats = log
    day, session_step, days_active, churned, finished = clock
    forced, forced_actions, forced_leave = decisions
    k = slates.shape[1]
    uni, familiar, slate_topics, liked = _scratch(draw_width(k, candidates.shape[1]), topic_state.shape[2], k, taste.shape[1])
    for i in range(lo, hi):
        fill_uniforms(seeds[i], uni)
        _serve_user(
            i, rows[i], slates, uni, p, env_vec,
            taste, recent, traits, mind, topic_state, instr, consumed,
            cat_topic, cat_emb, cat_mean, cat_quality, cat_popularity, cat_duration,
            est_taste, p_topics, hist_items, hist_eng, hist_next, p_stats,
            day, session_step, days_active, churned, finished, out_item, out_user,
            familiar, slate_topics, liked, forced[i], forced_actions[i], forced_leave[i],
        )
        reward = 0.0
        for q in range(N_COMPONENTS):
            reward += reward_weights[q] * out_user[i, q]
        out_user[i, U_REWARD] = reward
        _candidates_from(rows[i], uni, 7 * k + 2, candidates, len(cat_topic))


@njit(cache=True, fastmath=FASTMATH)
def _observe_step(rows, users, catalog, log, clock, candidates, obs):
    """The observation of the next decision, into ``obs`` = (scale, feats, user, topics, instruction) if non-empty."""
    scale, feats, user_obs, topics_obs, instr_obs = obs
    if feats.shape[0] == 0:
        return
    _, _, _, _, _, instr, consumed = users
    cat_topic, cat_emb, _, cat_quality, cat_popularity, _, cat_duration_scaled, cat_created = catalog
    est_taste, p_topics, _, _, _, p_stats = log
    day, session_step, _, _, _ = clock
    observe_kernel(
        rows, candidates, day, session_step, cat_topic, cat_emb, cat_quality, cat_popularity,
        cat_duration_scaled, cat_created, consumed, est_taste, p_topics, p_stats, instr, scale,
        feats, user_obs, topics_obs, instr_obs,
    )


@njit(cache=True, fastmath=FASTMATH)
def _serve_user(
    i, r, slates, uni, p, env_vec,
    taste, recent, traits, mind, topic_state, instr, consumed,
    cat_topic, cat_emb, cat_mean, cat_quality, cat_popularity, cat_duration,
    est_taste, p_topics, hist_items, hist_eng, hist_next, p_stats,
    day, session_step, days_active, churned, finished, out_item, out_user,
    familiar, slate_topics, liked, is_forced, forced_row, forced_leave_at,
):
    """User ``r`` (row i of the step) reviews slate i; see :func:`world_step`.

    One long compiled function (236 lines, over the ~80-line rule): numba compiles it as one loop body
    for the fused step; its split into named @njit parts (choice, mindset, platform log, session end)
    with named state structures is not done yet (issue 11, step 5).

    ``familiar`` (T,), ``slate_topics`` (K,) and ``liked`` (D,) are scratch buffers. With
    ``is_forced``, ``forced_row`` (K, 5) and ``forced_leave_at`` are the user's decisions.
    """
    k = slates.shape[1]
    n_topics = topic_state.shape[2]
    dim = taste.shape[1]
    h = hist_items.shape[1]
    tr, md, ts = traits[r], mind[r], topic_state[r]
    # decay of the previous slates' short-term satiation and exposure
    # (values are flushed to zero before they turn denormal: denormal arithmetic is ~100x slower)
    for t in range(n_topics):
        ts[SAT_SHORT, t] = _decay(ts[SAT_SHORT, t], p[SAT_STEP_DECAY])
        ts[EXPOSURE, t] = _decay(ts[EXPOSURE, t], p[EXPOSURE_STEP_DECAY])
        p_topics[r, P_CLICK, t] = _decay(p_topics[r, P_CLICK, t], p[PLATFORM_DECAY])
        p_topics[r, P_SHOWN, t] = _decay(p_topics[r, P_SHOWN, t], p[PLATFORM_DECAY])
    for d in range(dim):
        est_taste[r, d] = _decay(est_taste[r, d], p[PLATFORM_DECAY])
        recent[r, d] = _decay(recent[r, d], p[SIMILARITY_STEP_DECAY])
    familiar_mask(ts[EXPOSURE], familiar)
    fatigue, boredom = md[FATIGUE], md[BOREDOM]
    value = 0.0
    ou_counts = out_user[i]
    ou_counts[:] = 0.0
    liked[:] = 0.0
    n_liked = 0
    n_rev = 0
    clicks = 0
    left_at = -1
    for j in range(k):
        it = slates[i, j]
        t = cat_topic[it]
        slate_topics[j] = t
        out_item[i, j, :] = 0.0
        if left_at >= 0:
            continue
        aff = np.float32(0.0)  # float32 throughout, so the loop vectorises
        similar = np.float32(0.0)  # how much of this content the user watched lately
        for d in range(dim):
            aff += cat_emb[it, d] * taste[r, d]
            similar += (cat_emb[it, d] - cat_mean[d]) * recent[r, d]
        satiation = ts[SAT_SHORT, t] + ts[SAT_LONG, t]
        novelty = math.exp(-ts[EXPOSURE, t] / p[NOVELTY_SCALE])
        repeat = has_consumed(consumed, r, it)
        for jj in range(j):
            if slates[i, jj] == it:
                repeat = True
        u = (
            p[W_TASTE] * aff
            + p[W_QUALITY] * (cat_quality[it] - 0.5)
            + p[W_POPULARITY] * tr[CONFORMITY] * cat_popularity[it]
            + p[W_NOVELTY] * tr[NOVELTY] * novelty
            - p[W_SATIATION] * satiation
            - p[W_SIMILARITY] * max(similar - p[SIMILARITY_TOLERANCE], 0.0)
            - p[W_FATIGUE] * fatigue
            - p[W_DISLIKE] * ts[DISLIKE, t]
            - p[W_REPEAT] * repeat
            + p[NOISE_SD] * _normal(uni[2 * j], uni[2 * j + 1])
        )
        o = out_item[i, j]
        o[O_REVIEWED] = 1.0
        o[O_UTILITY] = u
        o[O_ACTION] = A_SKIP
        n_rev += 1
        engagement = 0.0
        if is_forced:
            clicked = forced_row[j, F_CLICK] > 0
        else:
            clicked = uni[2 * k + 5 * j + R_CLICK] < _sigmoid((u - p[CLICK_THRESHOLD]) / p[CLICK_TEMPERATURE])
        if clicked:
            if is_forced:
                wf = min(1.0, max(0.02, forced_row[j, F_WATCH]))
                like = forced_row[j, F_LIKE] > 0
                share = forced_row[j, F_SHARE] > 0
                comment = forced_row[j, F_COMMENT] > 0
            else:
                wf = _sigmoid(p[WATCH_SLOPE] * (u - p[WATCH_MIDPOINT])) * (0.6 + 0.4 * tr[PATIENCE])
                wf = min(1.0, max(0.02, wf))
                like = uni[2 * k + 5 * j + R_LIKE] < _sigmoid(u - p[LIKE_THRESHOLD] + 2.0 * (tr[AGREEABLENESS] - 0.5))
                share = uni[2 * k + 5 * j + R_SHARE] < _sigmoid(u - p[SHARE_THRESHOLD] + 2.0 * (tr[EXTRAVERSION] - 0.5))
                talk = 0.5 * (tr[EXTRAVERSION] + tr[VERBOSITY])
                comment = uni[2 * k + 5 * j + R_COMMENT] < _sigmoid(u - p[COMMENT_THRESHOLD] + 2.0 * (talk - 0.5))
            o[O_CLICK] = 1.0
            o[O_WATCH] = wf
            o[O_WATCH_SECONDS] = wf * cat_duration[it]
            o[O_LIKE] = like
            o[O_SHARE] = share
            o[O_COMMENT] = comment
            o[O_ACTION] = A_SHARE if share else A_COMMENT if comment else A_LIKE if like else A_CLICK
            ou_counts[U_LIKES] += like
            ou_counts[U_SHARES] += share
            ou_counts[U_COMMENTS] += comment
            ou_counts[U_WATCH_MINUTES] += wf * cat_duration[it] / 60.0
            consumed[r, it >> 3] |= np.uint8(1 << (it & 7))
            clicks += 1
            boredom = 0.0
            value += 0.5 + 0.5 * wf + 0.25 * like
            engagement = wf + like
            if like:
                n_liked += 1
                for d in range(dim):
                    liked[d] += cat_emb[it, d]
            ts[SAT_SHORT, t] += p[SAT_GAIN] * wf
            ts[SAT_LONG, t] += p[SAT_LONG_GAIN] * wf
            fatigue += p[FATIGUE_PER_MINUTE] * wf * cat_duration[it] / 60.0
            p_topics[r, P_CLICK, t] += 1.0
            for d in range(dim):
                est_taste[r, d] += engagement * cat_emb[it, d]
                recent[r, d] += wf * (cat_emb[it, d] - cat_mean[d])
        else:
            boredom += 1.0
        ts[SAT_SHORT, t] += p[SAT_EXPOSURE_GAIN]
        ts[EXPOSURE, t] += 1.0
        fatigue += p[FATIGUE_PER_ITEM]
        p_topics[r, P_SHOWN, t] += 1.0
        slot = hist_next[r]
        hist_items[r, slot] = it
        hist_eng[r, slot] = engagement
        hist_next[r] = (slot + 1) % h
        if is_forced:
            leaves = forced_leave_at == j
        else:
            leaves = uni[2 * k + 5 * j + R_LEAVE] < _sigmoid(hazard_logit(p, tr, md, fatigue, boredom, ts[SAT_SHORT, t] + ts[SAT_LONG, t]))
        if leaves:
            left_at = j
            if o[O_ACTION] == A_SKIP:
                o[O_ACTION] = A_LEAVE

    md[FATIGUE] = fatigue
    md[BOREDOM] = boredom
    target = min(1.0, max(0.0, value / max(n_rev, 1) / p[SATISFACTION_VALUE_SCALE]))
    satisfaction = md[SATISFACTION] + p[SATISFACTION_RATE] * (target - md[SATISFACTION])
    trust = md[TRUST]
    ou = out_user[i]
    ou[U_CLICKS] = clicks
    ou[U_SKIPS] = n_rev - clicks
    ou[U_LEFT] = left_at >= 0
    ou[U_LEFT_AT] = left_at
    ou[U_COMPLIANCE] = np.nan
    p_stats[r, S_REVIEWED] += n_rev
    p_stats[r, S_CLICKS] += clicks
    p_stats[r, S_SKIP_STREAK] = boredom

    # compliance with a pending instruction
    if instr[r, AGE] >= 0:
        c = slate_compliance(slate_topics, instr[r, MORE], instr[r, LESS], instr[r, SURPRISE] > 0, familiar)
        ou[U_COMPLIANCE] = c
        satisfaction += p[COMPLIANCE_SATISFACTION] * (c - 0.5)
        trust += p[COMPLIANCE_TRUST] * (c - 0.5) * (1.0 + 0.5 * (tr[NEUROTICISM] - 0.5))
        instr[r, AGE] += 1
        resolved = c >= p[COMPLIANCE_RESOLVE]
        ignored = (not resolved) and instr[r, AGE] >= p[INSTRUCTION_PATIENCE]
        if ignored:
            trust -= p[IGNORED_TRUST_PENALTY]
        if resolved:
            md[BOREDOM] = 0.0
        if resolved or ignored:
            instr[r, MORE] = NO_TOPIC
            instr[r, LESS] = NO_TOPIC
            instr[r, SURPRISE] = 0
            instr[r, AGE] = -1
            instr[r, COOLDOWN] = int(p[INSTRUCTION_COOLDOWN]) + 1
        ou[U_RESOLVED] = resolved
        ou[U_IGNORED] = ignored
    md[SATISFACTION] = min(1.0, max(0.0, satisfaction))
    md[TRUST] = min(1.0, max(0.0, trust))

    # taste drifts towards liked items
    if n_liked > 0:
        norm = 0.0
        for d in range(dim):
            taste[r, d] += p[TASTE_DRIFT] * liked[d]
            norm += taste[r, d] * taste[r, d]
        norm = math.sqrt(norm)
        for d in range(dim):
            taste[r, d] /= norm

    # disengagement risk: chance of leaving within a next slate like this one
    max_sat = 0.0
    for t in range(n_topics):
        max_sat = max(max_sat, ts[SAT_SHORT, t] + ts[SAT_LONG, t])
    haz = _sigmoid(hazard_logit(p, tr, md, md[FATIGUE], md[BOREDOM], max_sat))
    risk = 1.0 - (1.0 - haz) ** k
    ou[U_RISK] = risk
    if instr[r, COOLDOWN] > 0:
        instr[r, COOLDOWN] -= 1
    elif (
        instr[r, AGE] < 0
        and tr[VERBOSITY] >= p[VOICE_THRESHOLD]
        and risk > p[INSTRUCTION_RISK]
        and not is_forced
        and uni[7 * k] < 0.5 + 0.5 * tr[VERBOSITY]
    ):
        _emit(p, ts, instr[r], max_sat)
        ou[U_EMITTED] = 1.0

    # end of session: return gap (geometric by inverse CDF), rest, or churn
    session_step[r] += 1
    if left_at >= 0 or session_step[r] >= env_vec[E_MAX_SLATES]:
        ou[U_ENDED] = 1.0
        q = return_probability(p, tr, md)
        gap = 1.0 if q >= 1.0 else max(1.0, math.ceil(math.log1p(-uni[7 * k + 1]) / math.log1p(-q)))
        ou[U_GAP] = gap
        if gap > env_vec[E_CHURN_WINDOW]:
            churned[r] = True
            ou[U_CHURN] = 1.0
        else:
            ou[U_RETURN] = 1.0 / gap
            if day[r] + gap >= env_vec[E_HORIZON]:
                finished[r] = True
                ou[U_FINISHED] = 1.0
            else:
                _rest(p, ts, md, gap)
                keep = p[SIMILARITY_DAY_DECAY] ** gap
                for d in range(dim):
                    recent[r, d] = _decay(recent[r, d], keep)
                st = p_stats[r]
                st[S_LAST_CTR] = st[S_CLICKS] / max(st[S_REVIEWED], 1.0)
                st[S_LAST_LENGTH] = session_step[r]
                st[S_DAYS_SINCE] = gap
                st[S_REVIEWED] = 0.0
                st[S_CLICKS] = 0.0
                st[S_SKIP_STREAK] = 0.0
                st[S_SESSIONS] += 1.0
                day[r] += int(gap)
                days_active[r] += 1
        session_step[r] = 0


@njit(cache=True, inline="always", fastmath=FASTMATH)
def _rest(p, ts, md, gap: float) -> None:
    """Recovery between sessions: satiation and exposure decay per day away; fatigue and boredom reset."""
    short, long_, expo = p[SAT_DAY_DECAY] ** gap, p[SAT_LONG_DAY_DECAY] ** gap, p[EXPOSURE_DAY_DECAY] ** gap
    for t in range(ts.shape[1]):
        ts[SAT_SHORT, t] = _decay(ts[SAT_SHORT, t], short)
        ts[SAT_LONG, t] = _decay(ts[SAT_LONG, t], long_)
        ts[EXPOSURE, t] = _decay(ts[EXPOSURE, t], expo)
    md[FATIGUE] = 0.0
    md[BOREDOM] = 0.0
    md[SATISFACTION] = 0.5 + (md[SATISFACTION] - 0.5) * p[SATISFACTION_DAY_REVERSION] ** gap


@njit(cache=True, inline="always", fastmath=FASTMATH)
def _emit(p, ts, instr_row, max_sat: float) -> None:
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


@njit(cache=True, fastmath=FASTMATH)
def observe_kernel(
    rows, cands, day, session_step, cat_topic, cat_emb, cat_quality, cat_popularity, cat_log_duration, cat_created,
    consumed, est_taste, p_topics, p_stats, instr, env_scale, feats, user, topics_out, instruction,
):
    """Fill the observation arrays (row i for user ``rows[i]``; see recoworld.world.observation for the layout).

    ``cands`` is the (B, M) candidate table of all users; ``env_scale`` = (max_slates_per_session,
    churn_window_days, horizon_days, slate_size).
    """
    b, m = len(rows), cands.shape[1]
    n_topics = p_topics.shape[2]
    dim = est_taste.shape[1]
    width = n_topics + 8
    feats[:] = 0.0
    instruction[:] = 0.0
    for i in range(b):
        r = rows[i]
        norm = 0.0
        for d in range(dim):
            norm += est_taste[r, d] * est_taste[r, d]
        norm = math.sqrt(norm)
        inv = 1.0 / max(norm, 1e-9)
        click_total = max(p_topics[r, P_CLICK].sum(), 1e-6)
        shown_total = max(p_topics[r, P_SHOWN].sum(), 1e-6)
        for t in range(n_topics):
            topics_out[i, t] = p_topics[r, P_CLICK, t] / click_total
            topics_out[i, n_topics + t] = p_topics[r, P_SHOWN, t] / shown_total
        for c in range(m):
            it = cands[r, c]
            t = cat_topic[it]
            base = c * width
            feats[i, base + t] = 1.0
            aff = np.float32(0.0)
            for d in range(dim):
                aff += cat_emb[it, d] * est_taste[r, d]
            f = base + n_topics
            feats[i, f] = cat_quality[it]
            feats[i, f + 1] = cat_popularity[it]
            feats[i, f + 2] = cat_log_duration[it]
            feats[i, f + 3] = math.exp(-max(day[r] - cat_created[it], 0) / 30.0)
            feats[i, f + 4] = has_consumed(consumed, r, it)
            feats[i, f + 5] = min(1.0, max(-1.0, aff * inv))
            feats[i, f + 6] = topics_out[i, t]
            feats[i, f + 7] = topics_out[i, n_topics + t]
        st = p_stats[r]
        user[i, 0] = session_step[r] / env_scale[0]
        user[i, 1] = st[S_DAYS_SINCE] / env_scale[1]
        user[i, 2] = day[r] / env_scale[2]
        user[i, 3] = st[S_SESSIONS] / env_scale[2]
        user[i, 4] = st[S_CLICKS] / max(st[S_REVIEWED], 1.0)
        user[i, 5] = st[S_LAST_CTR]
        user[i, 6] = st[S_LAST_LENGTH] / env_scale[0]
        user[i, 7] = st[S_SKIP_STREAK] / (3.0 * env_scale[3])
        user[i, 8] = 1.0 - math.exp(-norm)
        for q in range(user.shape[1]):
            user[i, q] = min(1.0, max(0.0, user[i, q]))
        if instr[r, MORE] != NO_TOPIC:
            instruction[i, instr[r, MORE]] = 1.0
        if instr[r, LESS] != NO_TOPIC:
            instruction[i, n_topics + instr[r, LESS]] = 1.0
        instruction[i, 2 * n_topics] = instr[r, SURPRISE]
