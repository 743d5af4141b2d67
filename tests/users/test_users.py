"""Users: profiles, population sampling, reflective instructions and the dynamics of the user model."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from pydantic import ValidationError

from recoworld.scenario import load_scenario
from recoworld.users import ParametricUserParams, PopulationSampler, SegmentConfig, Traits, UserProfile
from recoworld.users.compliance import compliance, familiar_topics
from recoworld.users.instructions import NO_TOPIC, InstructionIntent, instruction_text
from recoworld.world.simulation import Simulation

ALL = slice(None)
TOPICS = ["cooking", "fitness", "gaming", "music", "travel", "science", "comedy", "tech"]
TONES = ["casual", "polite", "blunt", "enthusiastic"]


# ------------------------------------------------------------------------------- profiles
def test_profile_text_has_facts_and_traits_paragraphs():
    profile = UserProfile(
        user_id="u7",
        occupation="nurse",
        interests={"gaming": 0.2, "cooking": 0.7, "travel": 0.1},
        dislikes=["finance"],
        traits=Traits(patience=0.9, verbosity=0.1, tone="blunt"),
    )
    paragraphs = profile.text().split("\n\n")
    assert len(paragraphs) == 2
    facts, traits = paragraphs
    assert "cooking" in facts and "nurse" in facts and "finance" in facts
    assert facts.index("cooking") < facts.index("gaming")  # top interest first
    assert "patience" in traits and "blunt" in traits
    assert "cooking" not in traits


@pytest.mark.parametrize("value", [-0.01, 1.01, 5])
def test_traits_reject_out_of_range(value):
    with pytest.raises(ValidationError, match="patience"):
        Traits(patience=value)


def test_traits_reject_unknown_keys():
    with pytest.raises(ValidationError, match="patiense"):
        Traits(patiense=0.5)
    with pytest.raises(ValidationError):
        UserProfile(user_id="x", interests={"cooking": 1.0}, hobbies=["chess"])


# ------------------------------------------------------------------------------- sampler
def test_sampler_is_seeded():
    sampler = PopulationSampler([SegmentConfig()], TOPICS)
    a = sampler.sample(50, np.random.default_rng(3))
    b = sampler.sample(50, np.random.default_rng(3))
    c = sampler.sample(50, np.random.default_rng(4))
    assert [p.model_dump() for p in a] == [p.model_dump() for p in b]
    assert [p.model_dump() for p in a] != [p.model_dump() for p in c]
    assert len({p.user_id for p in a}) == 50


def test_sampler_respects_segment_weights():
    segments = [SegmentConfig(name="big", weight=7.0), SegmentConfig(name="small", weight=3.0)]
    profiles = PopulationSampler(segments, TOPICS).sample(2000, np.random.default_rng(0))
    counts = Counter(p.segment for p in profiles)
    assert set(counts) == {"big", "small"}
    assert counts["big"] / 2000 == pytest.approx(0.7, abs=0.05)
    assert counts["small"] / 2000 == pytest.approx(0.3, abs=0.05)


def test_sampler_respects_interest_topics_and_ranges():
    segments = [
        SegmentConfig(name="narrow", interest_topics=["music", "tech"], n_interests=(1, 2)),
        SegmentConfig(name="wide", n_interests=(3, 5), n_dislikes=(1, 2)),
    ]
    profiles = PopulationSampler(segments, TOPICS).sample(400, np.random.default_rng(1))
    for p in profiles:
        assert sum(p.interests.values()) == pytest.approx(1.0, abs=1e-3)
        assert all(w >= 0 for w in p.interests.values())
        assert not set(p.dislikes) & set(p.interests)
        assert set(p.interests) | set(p.dislikes) <= set(TOPICS)
        if p.segment == "narrow":
            assert set(p.interests) <= {"music", "tech"} and 1 <= len(p.interests) <= 2
        else:
            assert 3 <= len(p.interests) <= 5 and 1 <= len(p.dislikes) <= 2
            for name in ("patience", "activity", "verbosity"):
                assert 0.0 <= getattr(p.traits, name) <= 1.0


def test_sampler_rejects_unknown_topic():
    with pytest.raises(ValueError, match="knitting"):
        PopulationSampler([SegmentConfig(interest_topics=["music", "knitting"])], TOPICS)


def test_segment_config_validates_ranges():
    with pytest.raises(ValidationError, match="n_interests"):
        SegmentConfig(n_interests=(3, 1))
    with pytest.raises(ValidationError, match="weight"):
        SegmentConfig(weight=0)


# ---------------------------------------------------------------------------- instructions
@pytest.mark.parametrize("tone", TONES)
def test_instruction_text_in_each_tone(tone):
    both = InstructionIntent(more_topic="cooking", less_topic="gaming")
    more = InstructionIntent(more_topic="travel")
    less = InstructionIntent(less_topic="finance")
    surprise = InstructionIntent(surprise=True)
    for variant in range(4):
        text = instruction_text(both, tone, variant)
        assert "cooking" in text and "gaming" in text
        assert "travel" in instruction_text(more, tone, variant)
        assert "finance" in instruction_text(less, tone, variant)
        s = instruction_text(surprise, tone, variant)
        assert s and "None" not in s
    # the same variant in each tone reads differently
    others = {instruction_text(both, t, 0) for t in TONES if t != tone}
    assert instruction_text(both, tone, 0) not in others


def slate(*topics: int) -> np.ndarray:
    return np.array([topics])


def score(slate_topics, more=NO_TOPIC, less=NO_TOPIC, surprise=False, familiar=None) -> float:
    t_count = 8
    fam = np.zeros((1, t_count), dtype=bool) if familiar is None else familiar
    return float(compliance(slate_topics, np.array([more]), np.array([less]), np.array([surprise]), fam)[0])


def test_compliance_more_and_less():
    assert score(slate(*[2] * 10), more=2) == pytest.approx(1.0)
    assert score(slate(*[5] * 10), more=2) == pytest.approx(0.0)
    assert score(slate(*[3] * 10), less=3) == pytest.approx(0.0)
    assert score(slate(*[1] * 10), less=3) == pytest.approx(1.0)
    # mixed slates land in between, monotone in the number of matching items
    more_scores = [score(slate(*([2] * n + [5] * (10 - n))), more=2) for n in range(0, 4)]
    assert more_scores[0] == pytest.approx(0.0) and all(0 < s < 1 for s in more_scores[1:3])
    assert more_scores[3] == pytest.approx(1.0)  # full marks once 30% of the slate is the wanted topic
    assert more_scores == sorted(more_scores) and len(set(more_scores)) == 4
    less_scores = [score(slate(*([3] * n + [1] * (10 - n))), less=3) for n in range(0, 4)]
    assert less_scores[0] == pytest.approx(1.0) and all(0 <= s < 1 for s in less_scores[1:])
    assert less_scores == sorted(less_scores, reverse=True)
    assert 0 < less_scores[1] < 1
    # both parts asked: following one and ignoring the other is half-way
    assert score(slate(*[2] * 10), more=2, less=2) == pytest.approx(0.5)
    assert score(slate(*([2] * 5 + [4] * 5)), more=2, less=3) == pytest.approx(1.0)
    mixed = score(slate(*([2] * 2 + [3] * 2 + [4] * 6)), more=2, less=3)
    assert 0 < mixed < 1


def test_compliance_batched_rows_are_independent():
    topics = np.array([[2] * 10, [3] * 10])
    got = compliance(topics, np.array([2, 2]), np.array([NO_TOPIC, NO_TOPIC]), np.array([False, False]), np.zeros((2, 8), bool))
    assert got.tolist() == pytest.approx([1.0, 0.0])


def test_familiar_topics_and_surprise():
    exposure = np.array([[10.0, 8.0, 6.0, 1.0, 0.0, 0.0, 0.0, 0.0], [5.0, 0, 0, 0, 0, 0, 0, 0]])
    fam = familiar_topics(exposure)
    assert fam[0].tolist() == [True, True, True, False, False, False, False, False]
    assert fam[1].tolist() == [True] + [False] * 7  # never-shown topics are not familiar
    f0 = fam[:1]
    assert score(slate(*[6] * 10), surprise=True, familiar=f0) == pytest.approx(1.0)
    assert score(slate(*[0, 1, 2, 0, 1, 2, 0, 1, 2, 0]), surprise=True, familiar=f0) == pytest.approx(0.0)
    assert score(slate(*([0] * 5 + [5] * 5)), surprise=True, familiar=f0) == pytest.approx(1.0)
    partial = score(slate(*([0] * 8 + [5] * 2)), surprise=True, familiar=f0)
    assert 0 < partial < 1
    assert score(slate(*([0] * 9 + [5])), surprise=True, familiar=f0) < partial


# ------------------------------------------------------------------------- user dynamics
def scenario(segments: list[dict], env: dict | None = None):
    overrides = {"catalog": {"synthetic": {"n_items": 2000}}, "users": {"segments": segments}}
    if env:
        overrides["env"] = env
    return load_scenario("quickstart", overrides)


def sample(segments: list[dict], n: int, seed: int = 0, env: dict | None = None):
    sim = Simulation.sample(scenario(segments, env), n, np.random.default_rng(seed))
    catalog = sim.view(ALL).catalog
    return sim, catalog, list(catalog.topic_names)


def topic_items(catalog, topic: int, rng: np.random.Generator) -> np.ndarray:
    return rng.permutation(np.flatnonzero(catalog.topic == topic))


def ctr(out, mask=None) -> float:
    reviewed = out.response.reviewed if mask is None else out.response.reviewed & mask
    return float(out.response.click[reviewed].mean())


def serve_topic_sequence(sim, catalog, names, topic_of_step, n_steps: int, seed: int) -> list[float]:
    """Fresh items each slate, of topic topic_of_step(user_row, step); CTR per slate over users still in session."""
    rng = np.random.default_rng(seed)
    pools = {t: topic_items(catalog, t, rng) for t in range(len(names))}
    in_session = np.ones(len(sim.profiles), dtype=bool)
    rates = []
    for s in range(n_steps):
        rows = np.flatnonzero(in_session)
        slates = np.array([pools[topic_of_step(r, s)][10 * s: 10 * s + 10] for r in rows])
        out = sim.step(rows, slates)
        rates.append(ctr(out))
        in_session[rows[out.session_ended]] = False
    return rates


def test_satiation_lowers_clicks_on_a_one_topic_feed():
    seg = [{"name": "two", "n_interests": [2, 2], "interest_concentration": 50.0,
            "traits": {"patience": {"mean": 0.8, "concentration": 20}}}]
    sim, catalog, names = sample(seg, 500, seed=0)
    interests = [[names.index(t) for t in p.interests] for p in sim.profiles]
    one = serve_topic_sequence(sim, catalog, names, lambda r, s: interests[r][0], 3, seed=1)
    # the same users, alternating between their two interests
    sim, catalog, names = sample(seg, 500, seed=0)
    alt = serve_topic_sequence(sim, catalog, names, lambda r, s: interests[r][s % 2], 3, seed=1)
    assert one[0] == alt[0]  # identical first slates and state
    assert one[0] > 0.15
    assert np.mean(one[1:]) < 0.5 * one[0]
    assert one[1] < 0.5 * alt[1]  # switching topic escapes the satiation


def interest_slates(sim, catalog, names, seed: int) -> np.ndarray:
    """Per user: 5 items of each of their two interests, interleaved."""
    rng = np.random.default_rng(seed)
    out = []
    for p in sim.profiles:
        a, b = (names.index(t) for t in p.interests)
        s = np.empty(10, dtype=np.int64)
        s[0::2] = rng.choice(np.flatnonzero(catalog.topic == a), 5, replace=False)
        s[1::2] = rng.choice(np.flatnonzero(catalog.topic == b), 5, replace=False)
        out.append(s)
    return np.array(out)


def test_repeat_penalty_on_items_already_clicked():
    sim, catalog, names = sample([{"name": "two", "n_interests": [2, 2], "interest_concentration": 50.0}], 500)
    slates = interest_slates(sim, catalog, names, seed=2)
    first = sim.step(ALL, slates)
    rows = np.flatnonzero(~first.session_ended)
    again = sim.step(rows, slates[rows])  # the very same slate again
    clicked_before = first.response.click[rows]
    both = again.response.reviewed & first.response.reviewed[rows]
    assert (both & clicked_before).sum() > 500 and (both & ~clicked_before).sum() > 500
    reclick = again.response.click[both & clicked_before].mean()
    other = again.response.click[both & ~clicked_before].mean()
    # items the user liked enough to click are clicked less than the ones they skipped
    assert reclick < 0.25 * other
    assert reclick < 0.05


def test_disliked_topics_are_clicked_less():
    sim, catalog, names = sample([{"name": "d", "n_interests": [1, 1], "n_dislikes": [1, 1]}], 500)
    rng = np.random.default_rng(3)
    kinds = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])  # interest, neutral, disliked
    slates = []
    for p in sim.profiles:
        interest, disliked = names.index(next(iter(p.interests))), names.index(p.dislikes[0])
        neutral = rng.choice([t for t in range(len(names)) if t not in (interest, disliked)])
        by_kind = {k: iter(rng.choice(np.flatnonzero(catalog.topic == t), 4, replace=False))
                   for k, t in enumerate((interest, neutral, disliked))}
        slates.append([next(by_kind[k]) for k in kinds])
    out = sim.step(ALL, np.array(slates))
    rates = [ctr(out, np.broadcast_to(kinds == k, out.response.click.shape)) for k in range(3)]
    interest_ctr, neutral_ctr, disliked_ctr = rates
    assert disliked_ctr < 0.5 * interest_ctr
    assert disliked_ctr < 0.5 * neutral_ctr  # the dislike itself costs clicks, not just the lack of interest
    assert neutral_ctr < interest_ctr


def test_active_users_return_sooner():
    segs = [
        {"name": "low", "weight": 1, "traits": {"activity": {"mean": 0.15, "concentration": 30}}},
        {"name": "high", "weight": 1, "traits": {"activity": {"mean": 0.85, "concentration": 30}}},
    ]
    sim, catalog, names = sample(segs, 600, seed=0, env={"max_slates_per_session": 1})
    segment = np.array([p.segment for p in sim.profiles])
    top = [names.index(next(iter(p.interests))) for p in sim.profiles]
    rng = np.random.default_rng(4)
    gaps: dict[str, list[int]] = {"low": [], "high": []}
    alive = np.ones(len(segment), dtype=bool)
    for _ in range(3):
        rows = np.flatnonzero(alive)
        slates = np.array([rng.choice(np.flatnonzero(catalog.topic == top[r]), 10, replace=False) for r in rows])
        out = sim.step(rows, slates)
        assert out.session_ended.all()  # one slate per session
        assert (out.gap_days[out.session_ended] >= 1).all()
        for name in gaps:
            gaps[name] += out.gap_days[segment[rows] == name].tolist()
        alive[rows[out.churned | out.finished]] = False
    assert len(gaps["low"]) > 300 and len(gaps["high"]) > 300
    assert np.mean(gaps["high"]) < 0.7 * np.mean(gaps["low"])


def test_only_users_with_a_voice_give_instructions():
    threshold = ParametricUserParams().voice_threshold
    sim, catalog, names = sample([{"name": "v", "traits": {"verbosity": {"mean": 0.35, "concentration": 4}}}], 500)
    verbosity = np.array([p.traits.verbosity for p in sim.profiles])
    assert (verbosity < threshold).sum() > 100 and (verbosity >= threshold).sum() > 100
    rng = np.random.default_rng(5)
    emitted = np.zeros(len(verbosity))
    alive = np.ones(len(verbosity), dtype=bool)
    for _ in range(40):
        rows = np.flatnonzero(alive)
        if not len(rows):
            break
        topic = rng.integers(len(names))  # the same topic for everyone: a monotonous feed
        slates = np.array([rng.choice(np.flatnonzero(catalog.topic == topic), 10, replace=False) for _ in rows])
        out = sim.step(rows, slates)
        emitted[rows] += out.effects.emitted
        alive[rows[out.churned | out.finished]] = False
    assert emitted[verbosity < threshold].sum() == 0
    assert (emitted[verbosity >= threshold] > 0).mean() > 0.5


def test_mindset_snapshot_reflects_hidden_state_and_memory() -> None:
    """Simulation.mindset() reads the hidden state: satiation of the watched topic, recent items in order."""
    from recoworld.scenario import load_scenario
    from recoworld.world.simulation import Simulation

    scenario = load_scenario("quickstart", {"catalog": {"synthetic": {"n_items": 2000}}})
    sim = Simulation.sample(scenario, 1, np.random.default_rng(3))
    fresh = sim.mindset(0)
    assert fresh.satiation == {} and fresh.memory == [] and fresh.satisfaction == 0.5
    topic = sim.catalog.topic_members[0][:10]
    sim.step(np.array([0]), topic[None, :])
    mind = sim.mindset(0)
    name = sim.catalog.topic_names[0]
    assert name in mind.satiation and mind.satiation[name] == max(mind.satiation.values())
    assert len(mind.memory) >= 1  # at least the first item was reviewed
    assert [m.item_id for m in mind.memory] == [str(sim.catalog.item_id[i]) for i in topic[: len(mind.memory)]]
    assert "satisfaction" in mind.text()
