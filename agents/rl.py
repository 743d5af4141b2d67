"""Reinforcement learning on RecoWorld-v0 with Stable-Baselines3: retention rewards, env factories,
training, save/load, evaluation on held-out users, and a trained model as a recommender.

Seeds. Every episode is one user, drawn by ``reset(seed=s)``; the three ranges never overlap:

* training episodes use seeds in ``TRAIN_SEEDS`` = [0, 50_000) (each vec-env worker takes its
  own slice of a seeded permutation of the range, one seed per episode);
* the ``EvalCallback`` that picks the best checkpoint during training uses the first
  ``eval_episodes`` seeds of ``VALIDATION_SEEDS`` = [50_000, 100_000);
* :func:`evaluate` uses ``seed_offset + i`` for user i, with ``seed_offset >= HELD_OUT_OFFSET``
  (100_000) enforced, so held-out users are never seen in training or model selection.

``stable_baselines3`` and ``torch`` are imported lazily (the ``rl`` extra), so importing this
module is cheap and never fails for lack of them until a model is trained or loaded.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import gymnasium as gym
import numpy as np

import recoworld  # noqa: F401  (registers RecoWorld-v0)
from recoworld.agents.baselines import BaseRecommender
from recoworld.agents.protocol import SlateChoice, UserView

if TYPE_CHECKING:  # pragma: no cover
    from stable_baselines3.common.base_class import BaseAlgorithm
    from stable_baselines3.common.vec_env import VecEnv

Algo = Literal["ppo", "a2c", "dqn"]

TRAIN_SEEDS = range(50_000)
VALIDATION_SEEDS = range(50_000, 100_000)
HELD_OUT_OFFSET = 100_000

DQN_ERROR = "dqn: RecoWorld-v0's action space is MultiDiscrete; use ppo or a2c"


def retention_rewards() -> dict[str, float]:
    """Reward weights that put long-term retention first (pass as ``config={"rewards": ...}``).

    Coming back (``return``, paid as 1/gap days at the end of a session) and not churning dominate;
    in-session engagement keeps a small weight so early learning has a signal to follow.
    """
    return {
        "return": 5.0,
        "churn": -20.0,
        "click": 0.2,
        "like": 0.1,
        "share": 0.1,
        "comment": 0.1,
        "watch_minutes": 0.02,
        "leave": -0.5,
        "skip": 0.0,
    }


def retention_config(num_candidates: int = 20, slate_size: int = 5) -> dict[str, Any]:
    """Config overrides of the retention comparison: retention rewards and a smaller candidate set
    and slate than quickstart's (100 / 10), so PPO learns within minutes on 2 cores (on the default
    100 / 10 problem, train with ``PPO_VECTOR``: see benchmarks/rl_retention.py). Use the same
    config for the RL policy and every baseline it is compared with."""
    return {"env": {"num_candidates": num_candidates, "slate_size": slate_size}, "rewards": retention_rewards()}


# --------------------------------------------------------------------------- environments
class EpisodeSeeds(gym.Wrapper):
    """Resets episode n with ``seeds[n % len(seeds)]``, whatever seed the caller passes, so the users an
    env serves are exactly the ones listed."""

    def __init__(self, env: gym.Env, seeds: Sequence[int]) -> None:
        super().__init__(env)
        if len(seeds) == 0:
            raise ValueError("episode_seeds: expected at least one seed")
        self.seeds = seeds
        self.episodes = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        s = int(self.seeds[self.episodes % len(self.seeds)])
        self.episodes += 1
        return self.env.reset(seed=s, options=options)


class FirstResetSeed(gym.Wrapper):
    """Seeds the first reset with ``seed`` when the caller gives none (gymnasium's convention:
    later users then come from the env's own generator)."""

    def __init__(self, env: gym.Env, seed: int) -> None:
        super().__init__(env)
        self._seed: int | None = seed

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        seed, self._seed = (self._seed if seed is None else seed), None
        return self.env.reset(seed=seed, options=options)


def _gym_env(scenario: str, config: dict[str, Any] | None) -> gym.Env:
    return gym.make("RecoWorld-v0", scenario=scenario, config=copy.deepcopy(config) if config else None)


def make_env(
    scenario: str = "quickstart",
    config: dict[str, Any] | None = None,
    seed: int = 0,
    monitor: bool = True,
    episode_seeds: Sequence[int] | None = None,
) -> gym.Env:
    """``gym.make("RecoWorld-v0")``, Monitor-wrapped by default.

    Without ``episode_seeds`` the first reset is seeded with ``seed`` (unless the caller passes one)
    and later users come from the env's own generator; with them, episode n resets with
    ``episode_seeds[n % len(episode_seeds)]`` (how training and validation envs stay in their ranges).
    """
    env = _gym_env(scenario, config)
    env = FirstResetSeed(env, seed) if episode_seeds is None else EpisodeSeeds(env, episode_seeds)
    if monitor:
        from stable_baselines3.common.monitor import Monitor

        env = Monitor(env)
    return env


def training_seeds(n_envs: int, seed: int = 0, seeds: range = TRAIN_SEEDS) -> list[np.ndarray]:
    """Disjoint per-worker episode seeds: worker i takes every n_envs-th seed of a permutation of ``seeds``."""
    order = np.random.default_rng(seed).permutation(np.arange(seeds.start, seeds.stop, seeds.step))
    return [order[i::n_envs] for i in range(n_envs)]


def make_vec_env(
    n_envs: int = 4,
    scenario: str = "quickstart",
    config: dict[str, Any] | None = None,
    seed: int = 0,
    monitor: bool = True,
    seeds: range = TRAIN_SEEDS,
    vectorized: bool = True,
) -> VecEnv:
    """``n_envs`` users, each user seed from ``seeds`` (the training range by default): one batched
    simulation (``recoworld.sb3_vec.RecoWorldVecEnv``, VecMonitor-wrapped with ``monitor``), or with
    ``vectorized=False`` SB3's DummyVecEnv of Monitor-wrapped single envs stepped one by one."""
    from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor

    if n_envs < 1:
        raise ValueError("n_envs: must be at least 1")
    parts = training_seeds(n_envs, seed, seeds)
    if vectorized:
        from recoworld.sb3_vec import RecoWorldVecEnv

        venv = RecoWorldVecEnv(n_envs, scenario, copy.deepcopy(config) if config else None, episode_seeds=parts)
        return VecMonitor(venv) if monitor else venv

    def factory(i: int) -> Callable[[], gym.Env]:
        return lambda: make_env(scenario, config, monitor=monitor, episode_seeds=parts[i])

    return DummyVecEnv([factory(i) for i in range(n_envs)])


# --------------------------------------------------------------------------- the slate policy
def _torch_parts():
    """The torch modules of the slate policy, built on first use (torch is an optional dependency)."""
    global _PARTS
    if _PARTS is not None:
        return _PARTS
    import torch as th
    from stable_baselines3.common.distributions import MultiCategoricalDistribution
    from stable_baselines3.common.policies import MultiInputActorCriticPolicy
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
    from torch import nn

    from recoworld.observation import CANDIDATE_FEATURES

    n_feat = len(CANDIDATE_FEATURES)
    neg = -1e9  # logit of a candidate already in the slate

    class CandidateEncoder(BaseFeaturesExtractor):
        """Scores every candidate with one shared network (permutation-equivariant).

        Per candidate: its topic one-hot and features, whether its topic is the one the user asked
        for / asked to avoid, the surprise flag, and a context embedding of the user, topic and
        instruction arrays. Output: ``[per-candidate (hidden, own inputs) (M x (H + I)), context (C),
        mean over candidates (H + I)]``; the head scores each candidate linearly from its block, so
        a score can lean on the raw inputs (affinity, consumed, asked-for topic) from the start.
        """

        def __init__(self, observation_space, hidden: int = 64, candidate_dim: int = 32, context_dim: int = 32):
            n_instr = observation_space["instruction"].shape[0]
            n_topics = (n_instr - 1) // 2
            width = n_topics + n_feat
            n_cand = observation_space["candidates"].shape[0] // width
            n_in = width + 3  # the candidate's own inputs
            out_dim = candidate_dim + n_in  # hidden vector, then the inputs themselves (a linear skip path)
            super().__init__(observation_space, n_cand * out_dim + context_dim + out_dim)
            self.n_topics, self.n_candidates, self.width, self.candidate_dim = n_topics, n_cand, width, out_dim
            n_ctx = observation_space["user"].shape[0] + observation_space["topics"].shape[0] + n_instr
            self.context = nn.Sequential(nn.Linear(n_ctx, context_dim), nn.ReLU())
            self.candidate = nn.Sequential(
                nn.Linear(n_in + context_dim, hidden), nn.ReLU(), nn.Linear(hidden, candidate_dim), nn.ReLU()
            )

        def forward(self, obs: dict[str, th.Tensor]) -> th.Tensor:
            t = self.n_topics
            cand = obs["candidates"].reshape(-1, self.n_candidates, self.width)
            instr = obs["instruction"]
            onehot = cand[..., :t]
            more = (onehot * instr[:, None, :t]).sum(-1, keepdim=True)
            less = (onehot * instr[:, None, t : 2 * t]).sum(-1, keepdim=True)
            surprise = instr[:, None, 2 * t :].expand(-1, self.n_candidates, 1)
            ctx = self.context(th.cat([obs["user"], obs["topics"], instr], dim=1))
            x = th.cat([cand, more, less, surprise], dim=2)
            h = self.candidate(th.cat([x, ctx[:, None, :].expand(-1, self.n_candidates, -1)], dim=2))
            h = th.cat([h, x], dim=2)
            return th.cat([h.flatten(1), ctx, h.mean(1)], dim=1)

    class CandidateHead(nn.Module):
        """One shared linear score per candidate from its hidden vector: (B, M*H + ...) -> (B, M)."""

        def __init__(self, n_candidates: int, candidate_dim: int):
            super().__init__()
            self.n_candidates, self.candidate_dim = n_candidates, candidate_dim
            self.score = nn.Linear(candidate_dim, 1)

        def forward(self, latent: th.Tensor) -> th.Tensor:
            h = latent[:, : self.n_candidates * self.candidate_dim].reshape(-1, self.n_candidates, self.candidate_dim)
            return self.score(h).squeeze(-1)

    class SlateDistribution(MultiCategoricalDistribution):
        """Plackett-Luce over M candidates: a slate of K distinct positions drawn without replacement
        from softmax(scores) (Gumbel top-K); the mode is the top-K by score. The action is still a
        ``MultiDiscrete([M] * K)`` vector, so the env is unchanged."""

        def __init__(self, n_candidates: int, slate_size: int):
            super().__init__([n_candidates] * slate_size)
            self.n_candidates, self.slate_size = n_candidates, slate_size
            self.scores: th.Tensor | None = None
            self._last: th.Tensor | None = None

        def proba_distribution(self, action_logits: th.Tensor) -> SlateDistribution:
            self.scores, self._last = action_logits, None
            return self

        def _slot_log_probs(self, actions: th.Tensor) -> th.Tensor:
            """(B, K, M) log-probabilities of each slot given the candidates placed before it."""
            onehot = nn.functional.one_hot(actions.long(), self.n_candidates).to(self.scores.dtype)
            before = onehot.cumsum(1) - onehot
            logits = self.scores[:, None, :].masked_fill(before > 0, neg)
            return th.log_softmax(logits, dim=-1)

        def log_prob(self, actions: th.Tensor) -> th.Tensor:
            actions = actions.long()
            self._last = actions
            return self._slot_log_probs(actions).gather(2, actions[..., None]).squeeze(-1).sum(1)

        def entropy(self) -> th.Tensor:
            """Chain rule along the slate just evaluated: sum_k H(slot k | slots < k) (an unbiased
            estimate of the slate entropy when the slate was sampled from this distribution)."""
            actions = self._last if self._last is not None else self.mode()
            logp = self._slot_log_probs(actions)
            return -(logp.exp() * logp).sum(-1).sum(-1)

        def sample(self) -> th.Tensor:
            u = th.rand_like(self.scores).clamp_(1e-10, 1.0 - 1e-7)
            return th.topk(self.scores - th.log(-th.log(u)), self.slate_size, dim=1).indices

        def mode(self) -> th.Tensor:
            return th.topk(self.scores, self.slate_size, dim=1).indices

    class SlatePolicy(MultiInputActorCriticPolicy):
        """Actor-critic for ``action_mode="slate"``: a shared candidate scorer and a Plackett-Luce slate
        (distinct items, no duplicates). The critic has its own encoder by default (its large,
        noisy value loss would otherwise drown the actor's gradient in shared features)."""

        def __init__(self, observation_space, action_space, lr_schedule, head_gain: float = 0.01, **kwargs):
            kwargs.setdefault("features_extractor_class", CandidateEncoder)
            kwargs.setdefault("net_arch", {"pi": [], "vf": [64, 64]})
            kwargs.setdefault("share_features_extractor", False)
            self.head_gain = head_gain
            super().__init__(observation_space, action_space, lr_schedule, **kwargs)

        def _get_constructor_parameters(self) -> dict[str, Any]:
            data = super()._get_constructor_parameters()
            data.update(head_gain=self.head_gain, share_features_extractor=self.share_features_extractor)
            return data

        def _build(self, lr_schedule) -> None:
            nvec = np.asarray(self.action_space.nvec)
            enc = self.pi_features_extractor
            if not isinstance(enc, CandidateEncoder):
                raise TypeError("policy_kwargs.features_extractor_class: the slate policy needs CandidateEncoder")
            if len(set(nvec.tolist())) != 1 or int(nvec[0]) != enc.n_candidates or len(nvec) > enc.n_candidates:
                raise ValueError(
                    f"slate policy: action space {nvec.tolist()} is not a slate over the {enc.n_candidates} candidates "
                    "(topic mode? use policy='MultiInputPolicy')"
                )
            if self.net_arch.get("pi") if isinstance(self.net_arch, dict) else self.net_arch:
                raise ValueError("policy_kwargs.net_arch: the slate policy scores candidates itself; use dict(pi=[], vf=[...])")
            self.action_dist = SlateDistribution(int(nvec[0]), len(nvec))
            self._build_mlp_extractor()
            self.action_net = CandidateHead(enc.n_candidates, enc.candidate_dim)
            self.value_net = nn.Linear(self.mlp_extractor.latent_dim_vf, 1)
            if self.ortho_init:
                from functools import partial

                gains = {self.mlp_extractor: math.sqrt(2), self.action_net: self.head_gain, self.value_net: 1.0}
                for extractor in {self.pi_features_extractor, self.vf_features_extractor}:
                    gains[extractor] = math.sqrt(2)
                for module, gain in gains.items():
                    module.apply(partial(self.init_weights, gain=gain))
            self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)

    _PARTS = {
        "CandidateEncoder": CandidateEncoder,
        "CandidateHead": CandidateHead,
        "SlateDistribution": SlateDistribution,
        "SlatePolicy": SlatePolicy,
    }
    globals().update(_PARTS)  # so pickled policies (SB3 zips) find them as recoworld.agents.rl.<name>
    for cls in _PARTS.values():
        cls.__module__ = __name__
        cls.__qualname__ = cls.__name__
    return _PARTS


_PARTS: dict[str, Any] | None = None


def __getattr__(name: str) -> Any:  # lazy SlatePolicy & co. (module-level attribute access, PEP 562)
    if name in ("CandidateEncoder", "CandidateHead", "SlateDistribution", "SlatePolicy"):
        return _torch_parts()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --------------------------------------------------------------------------- training
# Tuned on the retention setting (retention_config(), 8 envs): 2,048 steps per update, few epochs on
# large batches (the update, not the world, is the bottleneck on 2 cores), and gamma 0.95: a return
# is earned by the last few slates of a session, and a shorter horizon cuts the noise of later ones.
PPO_DEFAULTS: dict[str, Any] = {
    "n_steps": 256, "batch_size": 512, "n_epochs": 5, "learning_rate": 1e-3, "gamma": 0.95, "gae_lambda": 0.95, "ent_coef": 0.0,
}
# The default problem (100 candidates, slates of 10) with the vector env: 64 users stepped as one
# batch, 32 steps each per update (2,048 samples), three epochs, and one candidate encoder shared by
# the actor and the critic (half the update's cost; the update is the bottleneck on 2 cores).
PPO_VECTOR: dict[str, Any] = {
    "n_envs": 64,
    "hyperparams": {"n_steps": 32, "batch_size": 1024, "n_epochs": 3},
    "policy_kwargs": {"share_features_extractor": True},
}
A2C_DEFAULTS: dict[str, Any] = {"n_steps": 16, "learning_rate": 7e-4, "gamma": 0.95, "gae_lambda": 0.95, "ent_coef": 0.0}


def _algo_class(algo: str):
    if algo == "dqn":
        raise ValueError(DQN_ERROR)
    from stable_baselines3 import A2C, PPO

    classes = {"ppo": PPO, "a2c": A2C}
    if algo not in classes:
        raise ValueError(f"algo: unknown '{algo}' (use ppo or a2c)")
    return classes[algo]


def _action_mode(scenario: str, config: dict[str, Any] | None) -> str:
    from recoworld.scenario import load_scenario

    return load_scenario(scenario, copy.deepcopy(config) if config else None).env.action_mode


def train(
    algo: Algo,
    timesteps: int,
    scenario: str = "quickstart",
    config: dict[str, Any] | None = None,
    seed: int = 0,
    eval_freq: int = 20_000,
    eval_episodes: int = 50,
    log_dir: str | Path | None = None,
    policy_kwargs: dict[str, Any] | None = None,
    *,
    policy: str | type = "auto",
    n_envs: int = 8,
    hyperparams: dict[str, Any] | None = None,
    keep_best: bool = True,
    normalize_reward: bool = False,
    verbose: int = 0,
    vectorized: bool = True,
) -> BaseAlgorithm:
    """Train ``algo`` on RecoWorld-v0 and return the model.

    ``policy="auto"`` uses :class:`SlatePolicy` (a shared candidate scorer with Plackett-Luce slates,
    a ``MultiInputActorCriticPolicy``) in slate mode and SB3's ``MultiInputPolicy`` in topic mode;
    ``"MultiInputPolicy"`` forces SB3's generic MLP. Training users come from ``TRAIN_SEEDS``; an
    ``EvalCallback`` scores the deterministic policy every ``eval_freq`` steps on ``eval_episodes``
    fixed users from ``VALIDATION_SEEDS`` and, with ``keep_best``, the returned model carries the
    weights that scored best there (``eval_freq=0`` disables it). ``log_dir`` gets Monitor CSVs, the
    evaluations and ``best_model.zip``. ``hyperparams`` override the algorithm's defaults.
    ``n_envs`` users are stepped as one batched simulation (``RecoWorldVecEnv``; ``vectorized=False``:
    SB3's DummyVecEnv of single envs, the former set-up): more of them batches the world step and
    the policy's forward pass, it takes no extra cores. ``normalize_reward`` divides training rewards by a running scale
    of the discounted return (SB3's ``VecNormalize``, observations untouched); off by default, as it
    did not help in the retention setting.
    """
    cls = _algo_class(algo)
    if timesteps < 1:
        raise ValueError("timesteps: must be at least 1")
    import torch as th
    from stable_baselines3.common.callbacks import BaseCallback, EvalCallback
    from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor, VecNormalize

    mode = _action_mode(scenario, config)
    if policy == "auto":
        policy = _torch_parts()["SlatePolicy"] if mode == "slate" else "MultiInputPolicy"
    elif policy == "slate":
        policy = _torch_parts()["SlatePolicy"]
    log_path = Path(log_dir) if log_dir is not None else None
    if log_path is not None:
        log_path.mkdir(parents=True, exist_ok=True)
    # episode statistics from one VecMonitor per vec env (training and validation are wrapped alike)
    env = VecMonitor(
        make_vec_env(n_envs, scenario, config, seed=seed, monitor=False, vectorized=vectorized),
        str(log_path / "train") if log_path else None,
    )
    params = {**(PPO_DEFAULTS if algo == "ppo" else A2C_DEFAULTS), **(hyperparams or {})}
    if normalize_reward:
        env = VecNormalize(env, norm_obs=False, norm_reward=True, gamma=params["gamma"])
    model = cls(policy, env, policy_kwargs=policy_kwargs, seed=seed, verbose=verbose, device="cpu", **params)

    callback = None
    best: dict[str, Any] = {}
    if eval_freq and eval_freq > 0:
        parts = validation_seeds(eval_episodes)
        if vectorized:
            from recoworld.sb3_vec import RecoWorldVecEnv

            cfg = copy.deepcopy(config) if config else None
            eval_env = VecMonitor(RecoWorldVecEnv(len(parts), scenario, cfg, episode_seeds=parts))
        else:
            eval_env = VecMonitor(
                DummyVecEnv([lambda s=seeds: make_env(scenario, config, monitor=False, episode_seeds=s) for seeds in parts])
            )
        if normalize_reward:  # wrapped like the training env (SB3 syncs them); rewards stay raw here
            eval_env = VecNormalize(eval_env, training=False, norm_obs=False, norm_reward=False)

        class KeepBest(BaseCallback):
            def _on_step(self) -> bool:
                best["state"] = copy.deepcopy(self.model.policy.state_dict())
                best["reward"] = float(self.parent.best_mean_reward)
                best["step"] = int(self.num_timesteps)
                return True

        callback = EvalCallback(
            eval_env,
            callback_on_new_best=KeepBest() if keep_best else None,
            n_eval_episodes=eval_episodes,
            eval_freq=max(1, eval_freq // n_envs),  # counted in vec-env steps
            log_path=str(log_path) if log_path else None,
            best_model_save_path=str(log_path) if log_path else None,
            deterministic=True,
            verbose=verbose,
        )
    start = time.perf_counter()
    threads = th.get_num_threads()
    th.set_num_threads(1)  # small networks: one thread beats two fighting the env for 2 cores
    try:
        model.learn(total_timesteps=timesteps, callback=callback)
    finally:
        th.set_num_threads(threads)
    if callback is not None and keep_best:
        final_reward = _validation_reward(model, callback)
        if "state" in best and best["reward"] > final_reward:
            model.policy.load_state_dict(best["state"])
    model.recoworld_info = {  # plain data about the run (not saved in the zip)
        "algo": algo,
        "timesteps": int(model.num_timesteps),
        "train_seconds": time.perf_counter() - start,
        "best_validation": best.get("reward"),
        "best_step": best.get("step"),
        "action_mode": mode,
    }
    return model


def validation_seeds(n_episodes: int, max_envs: int = 10) -> list[range]:
    """The EvalCallback's users: the first ``n_episodes`` of ``VALIDATION_SEEDS`` split over up to
    ``max_envs`` envs (stepped as one batch). Env i gets exactly as many seeds as SB3's
    ``evaluate_policy`` runs episodes on it ((n + i) // n_envs), so every evaluation round scores
    the same users whatever seed each env's cycle starts at."""
    if n_episodes < 1:
        raise ValueError("eval_episodes: must be at least 1")
    n_envs = min(max_envs, n_episodes)
    out, start = [], VALIDATION_SEEDS.start
    for i in range(n_envs):
        count = (n_episodes + i) // n_envs
        out.append(range(start, start + count))
        start += count
    return out


def _validation_reward(model: BaseAlgorithm, callback: Any) -> float:
    """The final weights' mean reward on the validation users (as the EvalCallback scores it)."""
    from stable_baselines3.common.evaluation import evaluate_policy

    mean, _std = evaluate_policy(model, callback.eval_env, n_eval_episodes=callback.n_eval_episodes, deterministic=True)
    return float(mean)


def save(model: BaseAlgorithm, path: str | Path) -> Path:
    """Write the model as an SB3 zip; returns the path written (``.zip`` added if missing)."""
    path = Path(path)
    if path.suffix != ".zip":
        path = path.with_name(path.name + ".zip")
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(str(path))
    return path


def load(path: str | Path, algo: Algo = "ppo") -> BaseAlgorithm:
    """Load an SB3 zip written by :func:`save` (or by SB3 itself)."""
    cls = _algo_class(algo)
    path = Path(path)
    if not path.exists() and path.with_name(path.name + ".zip").exists():
        path = path.with_name(path.name + ".zip")
    if not path.exists():
        raise FileNotFoundError(f"model: no file at {path}")
    _torch_parts()  # the slate policy's classes, for unpickling
    return cls.load(str(path), device="cpu")


# --------------------------------------------------------------------------- as a recommender
class SB3Recommender(BaseRecommender):
    """A trained SB3 model serving slates: a deterministic batched ``predict`` on the views'
    RecoWorld-v0 observations. Give a model, or a path (and algo) to load on first use.

    Slate-mode models only: a topic-mode model's topics need the env's in-topic ranker, which is
    not yet shared with recommenders (NotImplementedError).
    """

    name = "sb3"
    needs_observation = True

    def __init__(self, model: BaseAlgorithm | None = None, path: str | Path | None = None, algo: Algo = "ppo", seed: int = 0) -> None:
        super().__init__(seed)
        if model is None and path is None:
            raise ValueError("sb3: give a trained model or a path to one")
        self._model, self.path, self.algo = model, path, algo

    @property
    def model(self) -> BaseAlgorithm:
        if self._model is None:
            self._model = load(self.path, self.algo)
        return self._model

    def _check(self, view: UserView) -> None:
        nvec = np.asarray(self.model.action_space.nvec)
        m, k, t = view.candidates.shape[1], view.slate_size, view.catalog.n_topics
        if len(nvec) == k and np.all(nvec == m):
            return
        if len(nvec) == k and np.all(nvec == t):
            raise NotImplementedError(
                "sb3: this model was trained with action_mode='topic'; filling its topics needs the env's in-topic "
                "ranker (RecoWorldEnv.fill_topics), which recommenders cannot call yet. Use a slate-mode model."
            )
        raise ValueError(f"sb3: the model's action space {nvec.tolist()} does not fit slates of {k} from {m} candidates")

    def slate(self, view: UserView) -> SlateChoice:
        if view.observation is None:
            raise ValueError("sb3: the view has no observation (build it with with_observation=True)")
        self._check(view)
        actions, _ = self.model.predict(view.observation, deterministic=True)
        pos = np.asarray(actions, dtype=np.int64).reshape(len(view), view.slate_size)
        return SlateChoice(pos, np.ones(pos.shape, dtype=np.float32))

    def scores(self, view: UserView) -> np.ndarray:
        """Rank-based scores of the slate this model would serve (K, K-1, ... for its picks, 0 elsewhere)."""
        pos = self.slate(view).positions
        out = np.zeros(view.candidates.shape)
        np.put_along_axis(out, pos, np.arange(view.slate_size, 0, -1, dtype=float)[None, :], axis=1)
        return out


# --------------------------------------------------------------------------- evaluation
def _sem(x: np.ndarray) -> float:
    return float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else float("nan")


def _summary(name: str, per_user: dict[str, np.ndarray], seed_offset: int) -> dict[str, Any]:
    out: dict[str, Any] = {"policy": name, "n_users": len(per_user["days_active"]), "seeds": [seed_offset, seed_offset + len(per_user["days_active"])]}
    for key in ("days_active", "reward", "steps", "clicks"):
        out[f"{key}_mean"] = float(per_user[key].mean())
        out[f"{key}_sem"] = _sem(per_user[key])
    out["churned_share"] = float(per_user["churned"].mean())
    out["per_user"] = {k: v.tolist() for k, v in per_user.items()}
    return out


def evaluate(
    policy: BaseAlgorithm | BaseRecommender,
    n_users: int = 200,
    seed_offset: int = HELD_OUT_OFFSET,
    scenario: str = "quickstart",
    config: dict[str, Any] | None = None,
    batch: int = 50,
) -> dict[str, Any]:
    """One episode per held-out user i (``reset(seed=seed_offset + i)``) served by ``policy``.

    ``policy`` is an SB3 model (deterministic ``predict`` on the observation; ``batch`` users are
    stepped together) or a :class:`BaseRecommender` (served from the env's user view, one user after
    another, so learners such as LinUCB carry what they learnt to the next user; always through
    ``action_mode="slate"``, as recommenders answer with candidate positions; the world and its
    users are the same in both action modes).
    Returns means and standard errors of days active (``sim.days_active[0]`` at the end),
    episode reward, steps and clicks, the churned share, and the per-user values.
    """
    if n_users < 1:
        raise ValueError("n_users: must be at least 1")
    if seed_offset < HELD_OUT_OFFSET:
        raise ValueError(f"seed_offset: held-out users start at {HELD_OUT_OFFSET} (seeds below are used in training and validation)")
    if isinstance(policy, BaseRecommender):
        return _evaluate_recommender(policy, n_users, seed_offset, scenario, config)
    if hasattr(policy, "predict") and hasattr(policy, "policy"):
        return _evaluate_model(policy, n_users, seed_offset, scenario, config, batch)
    raise TypeError(f"policy: expected an SB3 model or a BaseRecommender, got {type(policy).__name__}")


def _new_totals(n: int) -> dict[str, np.ndarray]:
    return {k: np.zeros(n) for k in ("days_active", "reward", "steps", "clicks", "churned")}


CLICKED = frozenset({"click", "like", "comment", "share"})


def _evaluate_recommender(rec: BaseRecommender, n: int, offset: int, scenario: str, config: dict | None) -> dict[str, Any]:
    # a recommender answers with candidate positions, so it is served in slate mode even when the
    # config asks for topic mode (the world, its users and their seeds are the same in both modes)
    config = copy.deepcopy(config) if config else {}
    config["env"] = {**config.get("env", {}), "action_mode": "slate"}
    env = _gym_env(scenario, config)
    base = env.unwrapped
    totals = _new_totals(n)
    for i in range(n):
        env.reset(seed=offset + i)
        done = False
        while not done:
            view = base.sim.view(slice(None), with_text=rec.needs_text, with_observation=rec.needs_observation)
            choice = rec.slate(view)
            _obs, reward, terminated, truncated, info = env.step(choice.positions[0])
            labels = info["actions"]
            clicks = np.array([[a in CLICKED for a in labels]])
            rec.observe(view, choice.positions, clicks, np.array([[a != "unseen" for a in labels]]))
            totals["reward"][i] += reward
            totals["steps"][i] += 1
            totals["clicks"][i] += clicks.sum()
            done = terminated or truncated
        totals["days_active"][i] = base.sim.days_active[0]
        totals["churned"][i] = float(terminated)
    env.close()
    return _summary(rec.name, totals, offset)


def _evaluate_model(model: BaseAlgorithm, n: int, offset: int, scenario: str, config: dict | None, batch: int) -> dict[str, Any]:
    """Held-out user i (seed ``offset + i``) served by ``model``; ``batch`` users at a time in one vector env."""
    from gymnasium.vector import AutoresetMode

    from recoworld.vector_env import RecoWorldVectorEnv

    width = max(1, min(batch, n))
    env = RecoWorldVectorEnv(width, scenario, copy.deepcopy(config) if config else None, autoreset_mode=AutoresetMode.DISABLED)
    totals = _new_totals(n)
    user = np.arange(width)  # the held-out user each env is serving; -1 = idle (serving a spare user)
    obs, _ = env.reset(seed=[offset + i for i in range(width)])
    next_user = width
    while (user >= 0).any():
        actions, _ = model.predict(obs, deterministic=True)
        obs, reward, terminated, truncated, info = env.step(np.asarray(actions).reshape(width, -1))
        live = user >= 0
        np.add.at(totals["reward"], user[live], reward[live])
        np.add.at(totals["steps"], user[live], 1)
        np.add.at(totals["clicks"], user[live], info["rewards"]["click"][live])
        ended = terminated | truncated
        if not ended.any():
            continue
        seeds: list[int | None] = [None] * width
        for s in np.flatnonzero(ended):
            i = user[s]
            if i >= 0:
                totals["days_active"][i] = info["days_active"][s]
                totals["churned"][i] = float(terminated[s])
            if next_user < n:
                user[s], seeds[s] = next_user, offset + next_user
                next_user += 1
            else:  # no one left to serve: a spare user keeps the env stepping, unrecorded
                user[s], seeds[s] = -1, offset + n + int(s)
        obs, _ = env.reset(seed=seeds, options={"reset_mask": ended})
    env.close()
    return _summary(type(model).__name__.lower(), totals, offset)
