"""RecoWorld-v0 throughput as ratios to CartPole-v1 measured in the same process.

Single env: steps/s of gym.make("RecoWorld-v0") with 10k items, 100 candidates, slate 10, random actions, against
CartPole-v1 in alternating rounds (the machine's speed drifts between runs; the ratio is the rounds' median).
Vector env: env-steps/s of gym.make_vec("RecoWorld-v0", N, vectorization_mode="vector_entry_point")
at N = 1, 64, 1,024 and 4,096, observations included, random actions, autoresets included; each
as a ratio to single CartPole-v1, to the bare batched world step of as many users (the Simulation
step without resets or observations: what the env adds on top of the world) and to Gymnasium's own
vectorized CartPole-v1 at the same N (its vector entry point). Observation bytes written per second are set against a measured
memory-copy bandwidth. Batched world step: user-steps/s of the shared Simulation step over 4,096
users without resets or observations (the world's own speed), and the vector env over as many
users whose episodes never end (observations, no resets). SB3: env-steps/s of PPO's ``learn`` with the
vector env (RecoWorldVecEnv) and with the former DummyVecEnv of single envs, same settings.
Where the time goes (``--no-breakdown`` skips it): the single env's steps and resets timed apart, the compiled
step of one user with and without its observation, and the dispatch of the kernel's arguments to a compiled
function that does nothing; the vector env's step at N = 1,024 with its resets timed apart, the observation of
1,024 users on one thread, and the gather of their candidates' embedding rows alone (the affinities' memory reads).

    python benchmarks/env_throughput.py [--seconds 3] [--rounds 3] [--sb3-steps 8192] [--sizes 1,64,1024,4096] [--no-breakdown]
"""

from __future__ import annotations

import argparse
import time
from typing import NamedTuple

import gymnasium as gym
import numpy as np
from numba import njit

import recoworld  # noqa: F401  (registers RecoWorld-v0)
from recoworld.scenario import load_scenario
from recoworld.world.simulation import Simulation

CONFIG = {"catalog": {"synthetic": {"n_items": 10_000}}, "env": {"num_candidates": 100, "slate_size": 10}}
ENDLESS = {**CONFIG, "env": {**CONFIG["env"], "horizon_days": 10_000, "churn_window_days": 10_000}}  # no episode ends


class Timing(NamedTuple):
    """A single env's timed loop: steps taken, wall seconds, seconds spent in resets, resets."""

    steps: int
    seconds: float
    reset_seconds: float
    resets: int

    @property
    def rate(self) -> float:
        """Steps per second, resets included."""
        return self.steps / self.seconds


def env_steps(env: gym.Env, seconds: float) -> Timing:
    """Random actions from a pre-drawn pool for ``seconds``, resetting where an episode ends (resets timed apart)."""
    env.reset(seed=0)
    env.action_space.seed(0)
    actions = [env.action_space.sample() for _ in range(1000)]
    env.step(actions[-1])  # compile (or load the cached kernels) outside the timed loop
    env.reset(seed=0)
    n, resets, in_reset, start = 0, 0, 0.0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        _, _, terminated, truncated, _ = env.step(actions[n % 1000])
        n += 1
        if terminated or truncated:
            t0 = time.perf_counter()
            env.reset()
            in_reset += time.perf_counter() - t0
            resets += 1
    return Timing(n, time.perf_counter() - start, in_reset, resets)


def vector_env_steps_per_second(env: gym.vector.VectorEnv, seconds: float) -> float:
    """Env-steps/s of a vector env (autoreset on), random actions from a pre-drawn pool."""
    env.reset(seed=0)
    env.action_space.seed(0)
    actions = [env.action_space.sample() for _ in range(16)]
    env.step(actions[0])
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        env.step(actions[steps % 16])
        steps += 1
    return steps * env.num_envs / (time.perf_counter() - start)


def batched_user_steps_per_second(n_users: int, seconds: float) -> float:
    scenario = load_scenario("quickstart", ENDLESS)
    sim = Simulation.sample(scenario, n_users, np.random.default_rng(0))
    k = scenario.env.slate_size
    sim.step(slice(None), sim.retrieve(slice(None))[:, :k])  # compile outside the timed loop
    user_steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        sim.step(slice(None), sim.candidates[:, :k])  # the step also draws the next candidates
        user_steps += n_users
    return user_steps / (time.perf_counter() - start)


def memcpy_bytes_per_second(seconds: float, megabytes: int = 256) -> float:
    """Bytes/s of ``np.copyto`` between two large float32 arrays (bytes written)."""
    src = np.ones(megabytes * 2**18, dtype=np.float32)
    dst = np.empty_like(src)
    np.copyto(dst, src)
    copies, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        np.copyto(dst, src)
        copies += 1
    return copies * src.nbytes / (time.perf_counter() - start)


def sb3_learn_steps_per_second(vectorized: bool, n_envs: int, timesteps: int) -> float:
    """Env-steps/s of ``PPO.learn`` with the slate policy and PPO_DEFAULTS (torch on one thread)."""
    import torch as th

    from recoworld.agents import rl

    threads = th.get_num_threads()
    th.set_num_threads(1)
    try:
        env = rl.make_vec_env(n_envs, config=CONFIG, vectorized=vectorized)
        params = {**rl.PPO_DEFAULTS, "n_steps": max(1, timesteps // (2 * n_envs))}
        model = rl._algo_class("ppo")(rl._torch_parts()["SlatePolicy"], env, seed=0, device="cpu", **params)
        start = time.perf_counter()
        model.learn(timesteps)
        return model.num_timesteps / (time.perf_counter() - start)
    finally:
        th.set_num_threads(threads)


def median_seconds(fn, repeats: int = 7, number: int = 1) -> float:
    """Median over ``repeats`` of the mean time of ``number`` calls of ``fn`` (seconds)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - start) / number)
    return float(np.median(times))


@njit
def _nothing(parallel, state, rows, slates, seeds, out_items, out_users, obs_candidates, obs_user, obs_topics,
             obs_instruction, obs_candidate_topics, forced, actions, leave_at) -> bool:
    """A compiled function that only takes the world step's arguments (their dispatch and unboxing cost; named one by
    one, as the step's entry takes them: numba's dispatch of ``*args`` holding a StructRef is a hundred times slower)."""
    return parallel


def single_env_breakdown(timing: Timing) -> None:
    """The single env's steps and resets apart (``timing``: its run in the throughput table), and the compiled step of
    its one user."""
    from recoworld.world import step as world_step

    n, resets = timing.steps, max(timing.resets, 1)
    print(f"single env: {1e6 * timing.seconds / n:.1f} µs a step with resets; steps alone "
          f"{1e6 * (timing.seconds - timing.reset_seconds) / n:.1f} µs, a reset every {n / resets:.0f} steps at "
          f"{1e6 * timing.reset_seconds / resets:.0f} µs ({1e6 * timing.reset_seconds / n:.1f} µs a step)")
    # the compiled call, timed on a user whose episode never ends (a finished user's step does less)
    endless = gym.make("RecoWorld-v0", config=ENDLESS)
    endless.reset(seed=0)
    endless.action_space.seed(0)
    sim = endless.unwrapped.sim
    slate = endless.unwrapped.slate_from_action(endless.action_space.sample())[None, :]
    whole = median_seconds(lambda: sim.step(slice(None), slate, observe=True), number=2000)
    captured: list[tuple] = []
    kernel = world_step.step_bound
    # the arguments run_step passes, with and without observation (STEP_OK: nothing refused)
    world_step.step_bound = lambda *args: captured.append(args) or world_step.STEP_OK
    try:
        sim.step(slice(None), slate, observe=True)
        sim.step(slice(None), slate, observe=False)
    finally:
        world_step.step_bound = kernel
    with_obs, without = (median_seconds(lambda a=args: kernel(*a), number=2000) for args in captured)
    _nothing(*captured[0])
    dispatch = median_seconds(lambda: _nothing(*captured[0]), number=2000)
    print(f"  Simulation.step of one user with the observation {1e6 * whole:.1f} µs; its compiled call {1e6 * with_obs:.1f} µs "
          f"({1e6 * without:.1f} µs without the observation), of which dispatching its {len(captured[0])} arguments to a compiled "
          f"function that does nothing {1e6 * dispatch:.1f} µs")
    endless.close()


def vector_steps_with_resets(env_id: str, n: int, seconds: float) -> tuple[gym.vector.VectorEnv, float, float, list]:
    """``env_id``'s vector env of ``n`` envs stepped for ``seconds`` with random actions: the env, the seconds a step,
    of which resets, and the actions."""
    env = gym.make_vec(env_id, num_envs=n, vectorization_mode="vector_entry_point", config=CONFIG)
    env.reset(seed=0)
    env.action_space.seed(0)
    actions = [env.action_space.sample() for _ in range(16)]
    env.step(actions[0])
    spent = [0.0]
    reset_rows = env._reset_rows

    def timed_reset(*args, **kwargs):
        t0 = time.perf_counter()
        reset_rows(*args, **kwargs)
        spent[0] += time.perf_counter() - t0

    env._reset_rows = timed_reset
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        env.step(actions[steps % 16])
        steps += 1
    env._reset_rows = reset_rows
    return env, (time.perf_counter() - start) / steps, spent[0] / steps, actions


def vector_env_breakdown(n: int, seconds: float) -> None:
    """The vector env's step at ``n`` envs with its resets timed apart, and its observation's parts; the same for
    RecoWorld-Compact-v0 (the compact observation)."""
    from recoworld.world.observation import observation_buffers, observe

    compact_env, compact_step, compact_resets, _ = vector_steps_with_resets("RecoWorld-Compact-v0", n, seconds)
    compact_buffers = observation_buffers(compact_env.sim, n, compact=True)
    compact_observation = median_seconds(lambda: observe(compact_env.sim, slice(None), out=compact_buffers), repeats=15)
    compact_env.close()
    env, per_step, resets, actions = vector_steps_with_resets("RecoWorld-v0", n, seconds)
    sim = env.sim
    buffers = observation_buffers(sim, n)
    observation = median_seconds(lambda: observe(sim, slice(None), out=buffers), repeats=15)
    embeddings, candidates = sim.catalog.embeddings, sim.candidates
    gather = median_seconds(lambda: np.take(embeddings, candidates, axis=0), repeats=15)
    # the ceiling of a smaller observation: the same env with none at all (its step and resets told to observe nothing;
    # the buffers it hands out then hold stale rows, which the timing loop never reads)
    step, replace = sim.step, sim.replace_users
    sim.step = lambda idx, slates, observe=False, decisions=None, **kw: step(idx, slates, False, decisions, seeds=kw["seeds"])
    sim.replace_users = lambda rows, profiles, users, seeds, obs_out=None: replace(rows, profiles, users, seeds)
    blind_steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        env.step(actions[blind_steps % 16])
        blind_steps += 1
    blind = (time.perf_counter() - start) / blind_steps
    sim.step, sim.replace_users = step, replace
    bare = n / batched_user_steps_per_second(n, seconds)
    print(f"vector env, N = {n}: {1e3 * per_step:.2f} ms a step ({bare / per_step:.3f}x the bare step), of which resets "
          f"{1e3 * resets:.2f} ms; the bare world step {1e3 * bare:.2f} ms")
    print(f"  without any observation {1e3 * blind:.2f} ms a step: {bare / blind:.3f}x the bare step, the ceiling of a "
          f"smaller observation with today's resets and Python")
    print(f"  the observation of {n} users on one thread {1e3 * observation:.2f} ms; gathering their candidates' embedding rows "
          f"alone ({candidates.size * embeddings.shape[1] * embeddings.itemsize / 1e6:.0f} MB, np.take) {1e3 * gather:.2f} ms")
    print(f"RecoWorld-Compact-v0, N = {n}: {1e3 * compact_step:.2f} ms a step ({bare / compact_step:.3f}x the bare step), of "
          f"which resets {1e3 * compact_resets:.2f} ms; its observation of {n} users on one thread {1e3 * compact_observation:.2f} ms")
    env.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--users", type=int, default=4096, help="users of the batched world step")
    parser.add_argument("--sizes", default="1,64,1024,4096", help="vector env sizes")
    parser.add_argument("--sb3-steps", type=int, default=8192, help="PPO.learn steps per set-up (0: skip)")
    parser.add_argument("--no-breakdown", action="store_true", help="skip where the time goes")
    parser.add_argument("--rounds", type=int, default=3, help="alternating CartPole / RecoWorld rounds of the single env")
    args = parser.parse_args()
    cart_single, reco_single = gym.make("CartPole-v1"), gym.make("RecoWorld-v0", config=CONFIG)
    rounds = [(env_steps(cart_single, args.seconds), env_steps(reco_single, args.seconds)) for _ in range(args.rounds)]
    ratios = sorted(r.rate / c.rate for c, r in rounds)
    single_timing = Timing(*(sum(getattr(r, f) for _, r in rounds) for f in Timing._fields))
    cartpole = sum(c.steps for c, _ in rounds) / sum(c.seconds for c, _ in rounds)
    single = single_timing.rate
    print(f"CartPole-v1 (gym.make)             {cartpole:12,.0f} steps/s")
    print(f"RecoWorld-v0 (gym.make)            {single:12,.0f} steps/s      ratio {float(np.median(ratios)):6.3f}x  (target >= 0.25x; "
          f"median of {args.rounds} alternating rounds, {ratios[0]:.3f}-{ratios[-1]:.3f})")
    bandwidth = memcpy_bytes_per_second(args.seconds)
    print(f"memory copy (np.copyto, 256 MB)    {bandwidth / 1e9:12.2f} GB/s written")
    print()
    print(
        f"{'N':>6} {'RecoWorld env-steps/s':>22} {'x CartPole-v1':>14} {'bare step/s':>12} {'x bare step':>12} "
        f"{'CartPole vec steps/s':>21} {'x CartPole vec':>15} {'obs GB/s':>9} {'% memcpy':>9}"
    )
    for n in [int(s) for s in args.sizes.split(",") if s]:
        reco_env = gym.make_vec("RecoWorld-v0", num_envs=n, vectorization_mode="vector_entry_point", config=CONFIG)
        reco = vector_env_steps_per_second(reco_env, args.seconds)
        bare = batched_user_steps_per_second(n, args.seconds)
        spaces = reco_env.single_observation_space.spaces.values()
        obs_bytes = sum(int(np.prod(s.shape)) * np.dtype(s.dtype).itemsize for s in spaces)
        reco_env.close()
        cart_env = gym.make_vec("CartPole-v1", num_envs=n, vectorization_mode="vector_entry_point")
        cart = vector_env_steps_per_second(cart_env, args.seconds)
        rate = reco * obs_bytes
        target = "  (target >= 0.75x the bare step)" if n == 1024 else ""
        print(
            f"{n:>6} {reco:>22,.0f} {reco / cartpole:>13.2f}x {bare:>12,.0f} {reco / bare:>11.3f}x {cart:>21,.0f} "
            f"{reco / cart:>14.4f}x {rate / 1e9:>9.3f} {100 * rate / bandwidth:>8.1f}%{target}"
        )
    batched = batched_user_steps_per_second(args.users, args.seconds)
    steady_env = gym.make_vec("RecoWorld-v0", num_envs=args.users, vectorization_mode="vector_entry_point", config=ENDLESS)
    steady = vector_env_steps_per_second(steady_env, args.seconds)
    print()
    n = args.users
    print(f"batched world step, N = {n}, no resets or observations {batched:12,.0f} user-steps/s  {batched / cartpole:6.2f}x")
    print(f"vector env, N = {n}, episodes never end (observations) {steady:12,.0f} env-steps/s   {steady / cartpole:6.2f}x")
    if not args.no_breakdown:
        print()
        single_env_breakdown(single_timing)
        vector_env_breakdown(1024, args.seconds)
    if args.sb3_steps > 0:
        print()
        print("SB3 PPO.learn (slate policy, PPO_DEFAULTS, torch 1 thread), env-steps/s:")
        for n_envs in (8, 64):
            vec = sb3_learn_steps_per_second(True, n_envs, args.sb3_steps)
            dummy = sb3_learn_steps_per_second(False, n_envs, args.sb3_steps)
            print(f"  n_envs {n_envs:>3}: vector env {vec:8,.0f}   DummyVecEnv {dummy:8,.0f}   ratio {vec / dummy:5.2f}x")


if __name__ == "__main__":
    main()
