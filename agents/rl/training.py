"""Training SB3 (PPO, A2C) on RecoWorld-v0 for retention, and saving / loading the models."""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recoworld.agents.rl.envs import DQN_ERROR, VALIDATION_SEEDS, Algo, make_env, make_vec_env
from recoworld.progress import stage

if TYPE_CHECKING:  # pragma: no cover
    from stable_baselines3.common.base_class import BaseAlgorithm


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
# PPO_VECTOR's batches in about a third of the time on a CPU with bfloat16 instructions (AVX-512 BF16, AMX): the
# candidate encoder and critic under bfloat16 autocast, one epoch over each rollout in two minibatches, and a
# learning rate falling linearly from 3e-3 to 0. One epoch makes a third of PPO_VECTOR's gradient steps; the higher
# start makes up for them (from 1e-3 its models kept held-out users 0.8 days less than PPO_VECTOR's), and the decay
# holds it (a constant rate drifted down after its first 100-300k steps). Over twenty training seeds its models keep
# held-out users 1.6 days longer than PPO_VECTOR's, with half the spread (docs/figures/rl.md). On a CPU without
# bfloat16 instructions autocast is slower: drop the precision there.
PPO_FAST: dict[str, Any] = {
    "n_envs": 64,
    "hyperparams": {"n_steps": 32, "batch_size": 1024, "n_epochs": 1, "learning_rate": 3e-3},
    "policy_kwargs": {"share_features_extractor": True, "precision": "bfloat16"},
    "lr_decay": True,
}
PPO_SETTINGS: dict[str, dict[str, Any]] = {"vector": PPO_VECTOR, "fast": PPO_FAST}  # by the name a command takes
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
    callbacks: list[Any] | None = None,
    torch_threads: int = 1,
    lr_decay: bool = False,
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
    did not help in the retention setting. ``callbacks`` (SB3 callbacks) run after the validation one.
    ``torch_threads``: threads torch uses while training (1 by default: with 2 cores, two threads fight the
    env's and any other job's; on a machine with idle cores more make the update faster, as the env waits for it).
    ``lr_decay``: the learning rate falls linearly from its value to 0 over the ``timesteps`` (SB3's LinearSchedule).
    """
    cls = _algo_class(algo)
    if timesteps < 1:
        raise ValueError("timesteps: must be at least 1")
    if torch_threads < 1:
        raise ValueError(f"torch_threads: {torch_threads} is not a positive number of threads")
    import torch as th
    from stable_baselines3.common.vec_env import VecMonitor, VecNormalize

    mode = _action_mode(scenario, config)
    if policy == "auto":
        policy = _slate_policy() if mode == "slate" else "MultiInputPolicy"
    elif policy == "slate":
        policy = _slate_policy()
    if "precision" in (policy_kwargs or {}) and not (isinstance(policy, type) and issubclass(policy, _slate_policy())):
        raise ValueError("policy_kwargs.precision: only the slate policy has a precision (action_mode slate, policy 'auto')")
    log_path = Path(log_dir) if log_dir is not None else None
    if log_path is not None:
        log_path.mkdir(parents=True, exist_ok=True)
    # episode statistics from one VecMonitor per vec env (training and validation are wrapped alike)
    env = VecMonitor(
        make_vec_env(n_envs, scenario, config, seed=seed, monitor=False, vectorized=vectorized),
        str(log_path / "train") if log_path else None,
    )
    params = {**(PPO_DEFAULTS if algo == "ppo" else A2C_DEFAULTS), **(hyperparams or {})}
    if lr_decay:
        from stable_baselines3.common.utils import LinearSchedule

        params["learning_rate"] = LinearSchedule(params["learning_rate"], 0.0, 1.0)
    if normalize_reward:
        env = VecNormalize(env, norm_obs=False, norm_reward=True, gamma=params["gamma"])
    model = cls(policy, env, policy_kwargs=policy_kwargs, seed=seed, verbose=verbose, device="cpu", **params)

    best: dict[str, Any] = {}
    callback = _validation_callback(
        scenario, config, eval_freq, eval_episodes, n_envs, normalize_reward, keep_best, best, log_path, verbose, vectorized
    )
    from stable_baselines3.common.callbacks import CallbackList

    from recoworld.agents.rl.policy import StageProgress

    start = time.perf_counter()
    threads = th.get_num_threads()
    th.set_num_threads(torch_threads)
    try:
        with stage(f"training {algo}", total=timesteps) as progress:
            every = [c for c in (callback, *(callbacks or []), StageProgress(progress, timesteps)) if c is not None]
            model.learn(total_timesteps=timesteps, callback=CallbackList(every))
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


def _validation_callback(
    scenario: str, config: dict[str, Any] | None, eval_freq: int, eval_episodes: int, n_envs: int,
    normalize_reward: bool, keep_best: bool, best: dict[str, Any], log_path: Path | None, verbose: int,
    vectorized: bool = True,
) -> Any:
    """SB3's EvalCallback on the validation users (None when ``eval_freq`` is 0); with ``keep_best``,
    ``best`` receives the weights that scored best."""
    if not eval_freq or eval_freq <= 0:
        return None
    from stable_baselines3.common.callbacks import EvalCallback
    from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor, VecNormalize

    from recoworld.agents.rl.policy import KeepBest

    parts = validation_seeds(eval_episodes)
    if vectorized:
        from recoworld.env.sb3 import RecoWorldVecEnv

        cfg = copy.deepcopy(config) if config else None
        eval_env = VecMonitor(RecoWorldVecEnv(len(parts), scenario, cfg, episode_seeds=parts))
    else:
        eval_env = VecMonitor(
            DummyVecEnv([lambda s=seeds: make_env(scenario, config, monitor=False, episode_seeds=s) for seeds in parts])
        )
    if normalize_reward:  # wrapped like the training env (SB3 syncs them); rewards stay raw here
        eval_env = VecNormalize(eval_env, training=False, norm_obs=False, norm_reward=False)
    return EvalCallback(
        eval_env,
        callback_on_new_best=KeepBest(best) if keep_best else None,
        n_eval_episodes=eval_episodes,
        eval_freq=max(1, eval_freq // n_envs),  # counted in vec-env steps
        log_path=str(log_path) if log_path else None,
        best_model_save_path=str(log_path) if log_path else None,
        deterministic=True,
        verbose=verbose,
    )


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
    _slate_policy()  # the slate policy's classes, for unpickling
    return cls.load(str(path), device="cpu")


def _slate_policy() -> type:
    from recoworld.agents.rl.policy import SlatePolicy  # torch: only when a model is trained or loaded

    return SlatePolicy
