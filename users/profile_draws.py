"""Segment profiles' random draws in compiled code, bit for bit what numpy's ``Generator`` methods draw.

A reset of an env draws one profile from its own generator: a uniform for the segment, eight more, a
permutation of the topics, Dirichlet interest weights, ten Beta traits, the taste noise and one raw draw for
the first candidates. Made as numpy calls that is about ten calls of 1-7 µs each per user, most of a vector
env's reset. Here one compiled call draws them for a batch of users, each from its own generator, through
the generator's C interface (``BitGenerator.ctypes``) with numba's ports of numpy's distributions
(``numba.np.random``: the same algorithms, so the same numbers; ``tests/users/test_profile_draws.py`` checks
them against numpy). Only the Dirichlet is written out here, as numpy writes it (numba has none).

Imports: numpy, numba.
"""

from __future__ import annotations

import ctypes

import numpy as np
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np.random.distributions import random_beta, random_standard_gamma, random_standard_normal
from numba.np.random.generator_core import next_double, next_uint64
from numba.np.random.random_methods import random_interval

N_UNIFORMS = 8  # interest and dislike counts, age band, occupation, locale, two goals, tone
_BIT_GENERATOR = types.NumPyRandomBitGeneratorType("bit_generator")


_FUNCTIONS: dict[type, tuple[int, int, int]] = {}  # per BitGenerator class: its next_uint64, next_uint32, next_double


def generator_address(rng: np.random.Generator) -> np.ndarray:
    """(4,) uint64: the address of ``rng``'s bit generator state and of its next_uint64, next_uint32 and
    next_double functions; valid while ``rng`` lives (keep a reference to it)."""
    c = rng.bit_generator.ctypes  # made once per bit generator by numpy
    kind = type(rng.bit_generator)
    if kind not in _FUNCTIONS:  # the functions are the class's: cast them once (a ctypes cast costs microseconds)
        _FUNCTIONS[kind] = tuple(ctypes.cast(f, ctypes.c_void_p).value for f in (c.next_uint64, c.next_uint32, c.next_double))
    return np.array([c.state_address, *_FUNCTIONS[kind]], dtype=np.uint64)


@intrinsic
def _bit_generator(typingctx, address):
    """numba's bit generator value from a :func:`generator_address` row (what unboxing a Generator makes)."""

    def codegen(context, builder, sig, args):
        ptr = context.make_array(sig.args[0])(context, builder, args[0]).data
        state, next64, next32, next_double_fn = (builder.load(cgutils.gep(builder, ptr, k)) for k in range(4))
        g = cgutils.create_struct_proxy(_BIT_GENERATOR)(context, builder)
        g.parent = cgutils.get_null_value(g.parent.type)
        g.state_address, g.state, g.bit_generator = state, state, state
        g.fnptr_next_uint64, g.fnptr_next_uint32, g.fnptr_next_double = next64, next32, next_double_fn
        return g._getvalue()

    return _BIT_GENERATOR(address), codegen


@njit(cache=True)
def _dirichlet(g, alpha: float, k: int, out: np.ndarray) -> None:
    """``out[:k]`` = ``Generator.dirichlet(np.full(k, alpha))``: numpy's stick-breaking with Beta draws when
    every alpha is below 0.1, else normalised standard gammas."""
    if alpha < 0.1:
        csum = np.empty(k)
        s = 0.0
        for j in range(k - 1, -1, -1):
            s += alpha
            csum[j] = s
        acc = 1.0
        for j in range(k):
            out[j] = 0.0
        for j in range(k - 1):
            v = random_beta(g, alpha, csum[j + 1])
            out[j] = acc * v
            acc *= 1.0 - v
            if csum[j + 1] == 0:
                break
        out[k - 1] = acc
    else:
        acc = 0.0
        for j in range(k):
            out[j] = random_standard_gamma(g, alpha)
            acc = acc + out[j]
        inv = 1.0 / acc
        for j in range(k):
            out[j] = out[j] * inv


@njit(cache=True)
def draw_segment_users(
    gens, segment, cum_weights, in_pool, ranges, concentration, beta_a, beta_b, tone_index, tone_cum, tone_count,
    u, interests, n_interests, weights, dislikes, n_dislikes, traits, tone, noise, raws,
) -> None:
    """User i draws from the generator at ``gens[i]`` (rows may repeat one generator: its users then draw in
    turn), what ``PopulationSampler.draw`` draws for them: the segment when ``segment[i] < 0`` (written back),
    ``u[i]`` (N_UNIFORMS uniforms), a permutation of the topics, whose first ``n_interests[i]`` in-pool topics are
    ``interests[i]`` with Dirichlet ``weights[i]`` and whose first ``n_dislikes[i]`` other topics are
    ``dislikes[i]``, the Beta ``traits[i]`` (rounded to 4 decimals as ``np.round`` rounds) and ``tone[i]``, picked by
    ``u[i, 7]``; then, when ``noise`` has columns, ``noise[i]`` standard normals and ``raws[i]``, one raw draw.
    Segment tables: ``in_pool`` (S, T), ``ranges`` (S, 4) = interests lo, hi, dislikes lo, hi, ``concentration``
    (S,), ``beta_a``/``beta_b`` (S, traits), ``tone_index``/``tone_cum`` (S, tones) each segment's first
    ``tone_count[s]`` tones (TONES indices) and their cumulative weights."""
    n_topics = in_pool.shape[1]
    order = np.empty(n_topics, dtype=np.int64)
    chosen = np.zeros(n_topics, dtype=np.bool_)
    for i in range(len(gens)):
        g = _bit_generator(gens[i])
        if segment[i] < 0:
            x = next_double(g)
            segment[i] = np.searchsorted(cum_weights, x * cum_weights[-1], side="right")
        s = segment[i]
        for q in range(u.shape[1]):
            u[i, q] = next_double(g)
        for t in range(n_topics):
            order[t] = t
        for t in range(n_topics - 1, 0, -1):  # Generator.permutation(n_topics): numpy's shuffle
            j = np.int64(random_interval(g, t))
            order[t], order[j] = order[j], order[t]
        lo, hi = ranges[s, 0], ranges[s, 1]
        k = min(lo + int(u[i, 0] * (hi - lo + 1)), in_pool[s].sum())
        chosen[:] = False
        m = 0
        for t in range(n_topics):
            if m < k and in_pool[s, order[t]]:
                interests[i, m] = order[t]
                chosen[order[t]] = True
                m += 1
        n_interests[i] = k
        _dirichlet(g, concentration[s], k, weights[i])
        d_lo, d_hi = ranges[s, 2], ranges[s, 3]
        n_dis = min(d_lo + int(u[i, 1] * (d_hi - d_lo + 1)), n_topics - k)
        m = 0
        for t in range(n_topics):
            if m < n_dis and not chosen[order[t]]:
                dislikes[i, m] = order[t]
                m += 1
        n_dislikes[i] = n_dis
        for q in range(beta_a.shape[1]):
            traits[i, q] = np.round(random_beta(g, beta_a[s, q], beta_b[s, q]), 4)
        last = tone_count[s] - 1
        pick = np.searchsorted(tone_cum[s, : last + 1], u[i, 7] * tone_cum[s, last], side="right")
        tone[i] = tone_index[s, min(pick, last)]
        if noise.shape[1] > 0:
            for d in range(noise.shape[1]):
                noise[i, d] = random_standard_normal(g)
            raws[i] = next_uint64(g)
