"""The compiled profile draws are numpy's own draws, bit for bit, and leave the generator where numpy would."""

from __future__ import annotations

import numpy as np
import pytest

from recoworld.users.population import PopulationSampler, SegmentConfig
from recoworld.users.profile import TONES, TRAIT_NAMES
from recoworld.users.profile_draws import N_UNIFORMS, generator_address

TOPICS = [f"topic{i}" for i in range(12)]


def addresses(rngs: list[np.random.Generator]) -> np.ndarray:
    """The generators' ``generator_address`` rows (the caller keeps ``rngs`` alive while they are used)."""
    return np.array([generator_address(rng) for rng in rngs])


def numpy_draw(sampler: PopulationSampler, rng: np.random.Generator, segment: int) -> dict:
    """One profile's draws made with the Generator's methods, in the sampler's documented order."""
    seg = sampler.segments[segment]
    pool = np.isin(TOPICS, seg.interest_topics or TOPICS)
    u = rng.random(N_UNIFORMS)
    order = rng.permutation(len(TOPICS))
    candidates = order[pool[order]]
    lo, hi = seg.n_interests
    k = min(lo + int(u[0] * (hi - lo + 1)), len(candidates))
    weights = rng.dirichlet(np.full(k, seg.interest_concentration))
    rest = order[~np.isin(order, candidates[:k])]
    d_lo, d_hi = seg.n_dislikes
    n_dis = min(d_lo + int(u[1] * (d_hi - d_lo + 1)), len(rest))
    priors = [getattr(seg.traits, t) for t in TRAIT_NAMES]
    a, b = np.array([p.mean * p.concentration for p in priors]), np.array([(1 - p.mean) * p.concentration for p in priors])
    traits = np.round(rng.beta(a, b), 4)
    names = list(seg.tones)
    cum = np.cumsum(list(seg.tones.values()))
    tone = TONES.index(names[int(np.searchsorted(cum, u[7] * cum[-1], side="right"))])
    return {"u": u, "interests": candidates[:k], "weights": weights, "dislikes": rest[:n_dis], "traits": traits, "tone": tone}


def sampler_with(concentration: float) -> PopulationSampler:
    return PopulationSampler(
        [
            SegmentConfig(name="wide", weight=2.0, n_interests=(1, 5), n_dislikes=(0, 3), interest_concentration=concentration),
            SegmentConfig(name="narrow", weight=1.0, n_interests=(2, 3), interest_topics=TOPICS[:4],
                          tones={"blunt": 3.0, "polite": 0.0, "casual": 0.5},
                          traits={"patience": {"mean": 0.2, "concentration": 1.5}, "activity": {"mean": 0.9, "concentration": 40}}),
        ],
        TOPICS,
    )


@pytest.mark.parametrize("concentration", [0.05, 0.7, 3.0])  # below 0.1 numpy's Dirichlet breaks a stick with Betas
def test_draw_each_is_numpys_draws_then_the_noise_and_a_raw_draw(concentration) -> None:
    sampler = sampler_with(concentration)
    seeds = list(range(40))
    rngs = [np.random.default_rng(s) for s in seeds]
    draws, noise, raws = sampler.draw_each(addresses(rngs), 16)
    for s, d, z, raw in zip(seeds, draws, noise, raws):
        rng = np.random.default_rng(s)
        segment = int(np.searchsorted(sampler._cum_weights, rng.random() * sampler._cum_weights[-1], side="right"))
        want = numpy_draw(sampler, rng, segment)
        assert d.segment == segment
        for key in ("u", "interests", "weights", "dislikes", "traits"):
            np.testing.assert_array_equal(getattr(d, key), want[key], err_msg=key)
        assert d.tone == want["tone"]
        np.testing.assert_array_equal(z, rng.standard_normal(16))
        assert int(raw) == rng.bit_generator.random_raw()
        assert d.traits.shape == (len(TRAIT_NAMES),)


def test_draw_leaves_the_generator_where_numpy_leaves_it() -> None:
    """Drawing a population from one generator consumes it exactly as the Generator methods would: the next
    numbers drawn after the population are the same."""
    sampler = sampler_with(1.0)
    ours, theirs = np.random.default_rng(5), np.random.default_rng(5)
    draws = sampler.draw(25, ours)
    segments = np.searchsorted(sampler._cum_weights, theirs.random(25) * sampler._cum_weights[-1], side="right")
    for d, s in zip(draws, segments.tolist()):
        want = numpy_draw(sampler, theirs, s)
        np.testing.assert_array_equal(d.weights, want["weights"])
        np.testing.assert_array_equal(d.traits, want["traits"])
    np.testing.assert_array_equal(ours.random(5), theirs.random(5))  # the PCG64 state, buffered 32-bit half included
    assert ours.integers(0, 1000, 7).tolist() == theirs.integers(0, 1000, 7).tolist()


def test_sized_segments_give_one_user_the_largest_remainder_segment() -> None:
    sampler = PopulationSampler([SegmentConfig(name="a", size=1), SegmentConfig(name="b", size=3)], TOPICS)
    rngs = [np.random.default_rng(0), np.random.default_rng(1)]
    draws, _, _ = sampler.draw_each(addresses(rngs), 4)
    assert [d.segment for d in draws] == [sampler.draw(1, np.random.default_rng(9))[0].segment] * 2 == [1, 1]


@pytest.mark.parametrize("tones", [{}, {"blunt": 0.0}, {"blunt": 1.0, "casual": -1.0}])
def test_a_segment_without_a_tone_to_draw_is_refused_in_one_line(tones) -> None:
    with pytest.raises(ValueError, match="tones must give at least one tone a positive weight"):
        SegmentConfig(tones=tones)
