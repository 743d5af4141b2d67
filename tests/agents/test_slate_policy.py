"""The slate policy's cheaper update: the candidate encoder's split first layer, the entropy that reuses
the slot log-probabilities, the critic on pooled features, the bfloat16 option, and the weight snapshots of a training run."""

from __future__ import annotations

import copy

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("stable_baselines3")

import torch as th
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback

from recoworld.agents import rl

CONFIG = rl.retention_config()  # 20 candidates, slates of 5
K, M = 5, 20


def observations(n: int = 6, seed: int = 100_000) -> dict[str, th.Tensor]:
    env = gym.make("RecoWorld-v0", config=CONFIG)
    rows = [env.reset(seed=seed + i)[0] for i in range(n)]
    return {k: th.as_tensor(np.stack([r[k] for r in rows])) for k in rows[0]}


def model(**policy_kwargs) -> PPO:
    env = rl.make_vec_env(2, config=CONFIG)
    return PPO(rl.SlatePolicy, env, policy_kwargs=policy_kwargs, n_steps=64, batch_size=64, seed=0, device="cpu")


def test_encoder_first_layer_equals_the_layer_on_the_concatenated_inputs() -> None:
    enc = model().policy.pi_features_extractor
    th.manual_seed(0)
    for p in enc.parameters():  # random weights and biases, so every part of the layer counts
        p.data.normal_()
    x = th.randn(6, M, enc.candidate[0].in_features - 32)
    ctx = th.randn(6, 32)
    whole = enc.candidate[0](th.cat([x, ctx[:, None, :].expand(-1, M, -1)], dim=2))
    assert th.allclose(enc._first_layer(x, ctx), whole, atol=1e-5)


def test_entropy_reuses_the_log_probabilities_and_equals_a_fresh_computation() -> None:
    scores = th.randn(16, M, generator=th.Generator().manual_seed(1))
    dist = rl.SlateDistribution(M, K).proba_distribution(scores)
    slate = dist.sample()
    dist.log_prob(slate)
    fresh = rl.SlateDistribution(M, K).proba_distribution(scores)
    logp = fresh._slot_log_probs(slate)
    assert th.allclose(dist.entropy(), -(logp.exp() * logp).sum(-1).sum(-1))
    other = scores.flip(1)
    dist.proba_distribution(other)  # new scores: the last slate's log-probabilities are forgotten (the mode's are used)
    logp = fresh.proba_distribution(other)._slot_log_probs(th.topk(other, K).indices)
    assert th.allclose(dist.entropy(), -(logp.exp() * logp).sum(-1).sum(-1))


def test_pooled_critic_reads_the_context_and_the_mean_only(tmp_path) -> None:
    ppo = model(share_features_extractor=True, critic_input="pooled")
    policy, enc = ppo.policy, ppo.policy.pi_features_extractor
    pooled = policy.features_dim - enc.n_candidates * enc.candidate_dim
    assert isinstance(policy.mlp_extractor, rl.PooledCritic)
    assert policy.mlp_extractor.value_net[0].in_features == pooled
    assert policy.mlp_extractor.latent_dim_pi == policy.features_dim
    features = th.randn(4, policy.features_dim)
    changed = features.clone()
    changed[:, : enc.n_candidates * enc.candidate_dim] += 1.0  # per-candidate blocks only
    with th.no_grad():
        assert th.equal(policy.mlp_extractor.forward_critic(features), policy.mlp_extractor.forward_critic(changed))
        assert not th.equal(policy.mlp_extractor.forward_actor(features), policy.mlp_extractor.forward_actor(changed))
    path = rl.save(ppo, tmp_path / "pooled")
    loaded = rl.load(path)
    assert loaded.policy.critic_input == "pooled"
    obs = observations()
    with th.no_grad():
        assert th.allclose(ppo.policy.predict_values(obs), loaded.policy.predict_values(obs))


def test_default_critic_reads_every_feature_and_a_bad_name_is_refused() -> None:
    policy = model().policy
    assert policy.critic_input == "all"
    assert policy.mlp_extractor.value_net[0].in_features == policy.features_dim
    with pytest.raises(ValueError, match="critic_input"):
        model(critic_input="mean")


def test_snapshots_keep_the_weights_every_n_steps() -> None:
    snaps = rl.Snapshots(500)  # updates every 256 steps: copies after 512, 1024 and at the end (1280)
    trained = rl.train("ppo", 1280, config=CONFIG, n_envs=2, eval_freq=0, hyperparams={"n_steps": 128, "batch_size": 128},
                       callbacks=[snaps])
    steps = [s for s, _, _ in snaps.snapshots]
    assert steps == [512, 1024, 1280]
    seconds = [t for _, t, _ in snaps.snapshots]
    assert seconds == sorted(seconds) and seconds[0] > 0
    assert any(not th.equal(a, b) for a, b in zip(snaps.snapshots[0][2].values(), snaps.snapshots[-1][2].values()))
    final = trained.policy.state_dict()
    assert all(th.equal(final[k], v) for k, v in snaps.snapshots[-1][2].items())
    with pytest.raises(ValueError, match="every"):
        rl.Snapshots(0)


def test_bfloat16_policy_keeps_scores_and_values_in_float32_and_close_to_float32(tmp_path) -> None:
    """The bfloat16 policy has the float32 policy's parameters (same state dict keys, float32 weights); its candidate
    scores, log-probabilities and values are float32 tensors, close to the float32 policy's on the same weights; it
    trains, and it is saved and loaded with its precision."""
    full, low = model(share_features_extractor=True), model(share_features_extractor=True, precision="bfloat16")
    assert low.policy.precision == "bfloat16" and full.policy.precision == "float32"
    low.policy.load_state_dict(full.policy.state_dict())
    assert all(v.dtype == th.float32 for v in low.policy.state_dict().values())
    obs = observations()
    slates = th.topk(th.randn(len(obs["user"]), M, generator=th.Generator().manual_seed(2)), K).indices
    with th.no_grad():
        (v32, lp32, _), (v16, lp16, ent16) = (m.policy.evaluate_actions(obs, slates) for m in (full, low))
        scores = low.policy.get_distribution(obs).scores
    assert {v16.dtype, lp16.dtype, ent16.dtype, scores.dtype} == {th.float32}
    assert not th.equal(lp16, lp32)  # it did run in bfloat16 ...
    assert th.allclose(lp16, lp32, atol=0.05) and th.allclose(v16, v32, atol=0.05)  # ... close to float32
    before = copy.deepcopy(low.policy.state_dict())
    low.learn(128)
    assert any(not th.equal(before[k], v) for k, v in low.policy.state_dict().items())
    loaded = rl.load(rl.save(low, tmp_path / "bf16"))
    assert loaded.policy.precision == "bfloat16"
    with th.no_grad():
        assert th.equal(low.policy.predict_values(obs), loaded.policy.predict_values(obs))
    with pytest.raises(ValueError, match="policy_kwargs.precision: 'half'"):
        model(precision="half")


def test_training_uses_the_threads_asked_for_and_gives_them_back() -> None:
    seen: list[int] = []

    class Threads(BaseCallback):
        def _on_step(self) -> bool:
            seen.append(th.get_num_threads())
            return True

    before = th.get_num_threads()
    rl.train("ppo", 128, config=CONFIG, n_envs=2, eval_freq=0, hyperparams={"n_steps": 64, "batch_size": 64},
             callbacks=[Threads()], torch_threads=2)
    assert set(seen) == {2} and th.get_num_threads() == before
    with pytest.raises(ValueError, match="torch_threads: 0"):
        rl.train("ppo", 64, config=CONFIG, n_envs=2, eval_freq=0, torch_threads=0)
