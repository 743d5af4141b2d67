"""Reinforcement learning on RecoWorld-v0 with Stable-Baselines3 (the ``rl`` extra).

What lives here: seeds, retention rewards and env factories (``envs``), the slate policy's torch
modules (``policy``), training and save / load (``training``), a trained model as a recommender
(``recommender``) and held-out evaluation (``evaluation``).

May import: ``recoworld.agents`` (baselines, protocol), ``recoworld.world.observation`` (the
observation layout), ``recoworld.scenario``, gymnasium; torch and stable_baselines3 only in
``policy`` and inside functions, so importing this package never imports torch. Names below are
re-exported lazily (old SB3 zips that name ``recoworld.agents.rl.SlatePolicy`` still load).
"""

from recoworld.lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(
        ("Algo", "DQN_ERROR", "HELD_OUT_OFFSET", "TRAIN_SEEDS", "VALIDATION_SEEDS", "EpisodeSeeds", "FirstResetSeed",
         "make_env", "make_vec_env", "retention_config", "retention_rewards", "training_seeds"),
        "envs",
    ),
    **dict.fromkeys(("CandidateEncoder", "CandidateHead", "KeepBest", "PooledCritic", "SlateDistribution", "SlatePolicy", "Snapshots"), "policy"),
    **dict.fromkeys(("A2C_DEFAULTS", "PPO_DEFAULTS", "PPO_FAST", "PPO_SETTINGS", "PPO_VECTOR", "load", "save", "train", "validation_seeds"), "training"),
    "SB3Recommender": "recommender",
    "evaluate": "evaluation",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
