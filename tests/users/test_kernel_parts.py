"""The users' compiled parts of the world step on hand-made cases: the actions on a reviewed item,
the return gap, following up an instruction, speaking up, and rest between sessions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recoworld.users import ParametricUserParams
from recoworld.users import layout as L
from recoworld.users.choice import decide_click, decide_engagement, record_click, record_review, return_gap
from recoworld.users.instructions import NO_TOPIC
from recoworld.users.mindset_update import emit_instruction, follow_up_instruction, rest, speak_up

T = 4  # topics


def params(**overrides: float) -> np.ndarray:
    return ParametricUserParams(**overrides).as_vector()


def test_the_parameter_names_are_one_list_pinned_to_the_model() -> None:
    """PARAM_ORDER is the only list of the model's parameter names: every field of ParametricUserParams is
    packed once, and each index constant finds its own parameter in the packed vector."""
    fields = list(ParametricUserParams.model_fields)
    assert len(L.PARAM_ORDER) == len(set(L.PARAM_ORDER)) == len(fields) == 56
    assert set(L.PARAM_ORDER) == set(fields)
    distinct = ParametricUserParams.model_construct(**{name: float(k) for k, name in enumerate(fields)})
    vector = distinct.as_vector()
    assert [fields[int(v)] for v in vector] == list(L.PARAM_ORDER)
    assert vector[L.W_TASTE] == fields.index("w_taste") and vector[L.SAT_GAIN] == fields.index("satiation_gain")
    assert vector[L.SIMILARITY_TOLERANCE] == fields.index("similarity_tolerance")


def one_user(d: int = 2) -> L.UserArrays:
    traits = np.full((1, 8), 0.5)
    mind = np.zeros((1, 4))
    mind[0, L.SATISFACTION] = mind[0, L.TRUST] = 0.5
    instr = np.array([[NO_TOPIC, NO_TOPIC, 0, -1, 0]], dtype=np.int64)
    return L.UserArrays(
        np.ones((1, d), np.float32) / math.sqrt(d), np.zeros((1, d), np.float32), traits, mind,
        np.zeros((1, 5, T)), instr, np.zeros((1, 1), np.uint8),
    )


def test_clicks_follow_utility_and_forced_actions_are_taken_as_given():
    p = params()
    assert decide_click(p, 10.0, 0.5, False, np.zeros(5))
    assert not decide_click(p, -10.0, 0.5, False, np.zeros(5))
    forced = np.array([0.0, 1.5, 1.0, 0.0, 1.0])  # no click, even at a high utility
    assert not decide_click(p, 10.0, 0.0, True, forced)
    wf, like, share, comment = decide_engagement(p, np.full(8, 0.5), -10.0, np.zeros(5), True, forced)
    assert (wf, like, share, comment) == (1.0, True, False, True)  # watch fraction clipped to 1


def test_item_output_row_records_the_strongest_action_and_seconds_watched():
    o = np.zeros(L.ITEM_OUTPUTS)
    record_review(o, 0.7)
    assert o[L.O_ACTION] == L.A_SKIP and o[L.O_UTILITY] == 0.7 and o[L.O_REVIEWED] == 1
    record_click(o, 0.5, True, False, True, 120.0)
    assert o[L.O_ACTION] == L.A_COMMENT and o[L.O_WATCH_SECONDS] == 60.0 and o[L.O_LIKE] == 1
    record_click(o, 0.5, True, True, True, 120.0)
    assert o[L.O_ACTION] == L.A_SHARE


def test_return_gap_is_geometric_in_days():
    assert return_gap(1.0, 0.99) == 1.0
    assert return_gap(0.5, 0.0) == 1.0
    assert return_gap(0.5, 0.9) == 4.0  # inverse CDF: ceil(log(1 - u) / log(1 - q)) = ceil(3.32)
    gaps = [return_gap(0.25, u) for u in (np.arange(100_000) + 0.5) / 100_000]
    assert np.mean(gaps) == pytest.approx(4.0, rel=0.01)  # mean of a geometric gap is 1 / q


def test_a_followed_instruction_is_resolved_and_raises_trust():
    p = params()
    users = one_user()
    instr, md = users.instr[0], users.mind[0]
    instr[L.MORE], instr[L.AGE] = 2, 0
    md[L.BOREDOM] = 3.0
    familiar = np.zeros(T, dtype=np.bool_)
    sat, trust, c, resolved, ignored = follow_up_instruction(p, users.traits[0], md, instr, np.full(5, 2), familiar, 0.5, 0.5)
    assert c == 1.0 and resolved and not ignored
    assert trust > 0.5 and sat > 0.5 and md[L.BOREDOM] == 0.0
    assert instr[L.MORE] == NO_TOPIC and instr[L.AGE] == -1 and instr[L.COOLDOWN] == ParametricUserParams().instruction_cooldown + 1


def test_an_instruction_ignored_past_patience_is_dropped_and_costs_trust():
    p = params()
    users = one_user()
    instr = users.instr[0]
    instr[L.MORE], instr[L.AGE] = 2, ParametricUserParams().instruction_patience - 1
    familiar = np.zeros(T, dtype=np.bool_)
    _, trust, c, resolved, ignored = follow_up_instruction(p, users.traits[0], users.mind[0], instr, np.zeros(5, np.int64), familiar, 0.5, 0.5)
    expected = 0.5 + p[L.COMPLIANCE_TRUST] * (0.0 - 0.5) - p[L.IGNORED_TRUST_PENALTY]
    assert c == 0.0 and ignored and not resolved and trust == pytest.approx(expected)
    assert instr[L.MORE] == NO_TOPIC and instr[L.AGE] == -1


def test_speaking_up_waits_for_the_cooldown_and_names_the_satiated_and_the_fresh_topic():
    p = params()
    users = one_user()
    tr, ts, instr = users.traits[0], users.topic_state[0], users.instr[0]
    tr[L.VERBOSITY] = 1.0
    ts[L.SAT_SHORT, 1] = 1.0  # satiated with topic 1
    ts[L.INTEREST, 3] = 0.9  # interested in topic 3, never shown
    instr[L.COOLDOWN] = 1
    assert not speak_up(p, tr, ts, instr, 1.0, 1.0, False, 0.0) and instr[L.COOLDOWN] == 0
    assert not speak_up(p, tr, ts, instr, 1.0, 1.0, True, 0.0)  # a forced (LLM) user speaks for itself
    assert speak_up(p, tr, ts, instr, 1.0, 1.0, False, 0.0)
    assert (instr[L.LESS], instr[L.MORE], instr[L.SURPRISE], instr[L.AGE]) == (1, 3, 0, 0)
    emit_instruction(p, np.zeros((5, T)), instr, 0.0)  # nothing satiated, nothing of interest
    assert (instr[L.LESS], instr[L.MORE], instr[L.SURPRISE]) == (NO_TOPIC, NO_TOPIC, 1)


def test_rest_resets_the_session_mood_and_fades_satiation_per_day_away():
    p = params()
    users = one_user()
    ts, md = users.topic_state[0], users.mind[0]
    ts[L.SAT_SHORT, 0], ts[L.SAT_LONG, 0] = 1.0, 1.0
    md[L.FATIGUE], md[L.BOREDOM], md[L.SATISFACTION] = 2.0, 4.0, 0.9
    users.recent[0] = 1.0
    rest(p, users, 0, 2.0)
    assert md[L.FATIGUE] == 0.0 and md[L.BOREDOM] == 0.0
    assert ts[L.SAT_SHORT, 0] == pytest.approx(p[L.SAT_DAY_DECAY] ** 2)
    assert ts[L.SAT_LONG, 0] == pytest.approx(p[L.SAT_LONG_DAY_DECAY] ** 2)
    assert md[L.SATISFACTION] == pytest.approx(0.5 + 0.4 * p[L.SATISFACTION_DAY_REVERSION] ** 2)
    assert users.recent[0, 0] == pytest.approx(p[L.SIMILARITY_DAY_DECAY] ** 2)
