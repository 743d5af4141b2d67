"""The slate policy's torch modules: a shared candidate scorer (CandidateEncoder, CandidateHead),
Plackett-Luce slates (SlateDistribution), the actor-critic policy (SlatePolicy), and the callback
that keeps the best validation weights (KeepBest).

Ordinary classes at module level, so SB3 zips pickle them by their import path. Importing this
module imports torch and stable_baselines3 (the ``rl`` extra).
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from typing import Any, Iterator

import numpy as np
import torch as th
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.distributions import MultiCategoricalDistribution
from stable_baselines3.common.policies import MultiInputActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, MlpExtractor
from torch import nn

from recoworld.world.observation import CANDIDATE_FEATURES

N_FEATURES = len(CANDIDATE_FEATURES)
NEG = -1e9  # logit of a candidate already in the slate
PRECISIONS = ("float32", "bfloat16")  # SlatePolicy's precision choices


class CandidateEncoder(BaseFeaturesExtractor):
    """Scores every candidate with one shared network (permutation-equivariant).

    Per candidate: its topic one-hot and features, whether its topic is the one the user asked
    for / asked to avoid, the surprise flag, and a context embedding of the user, topic and
    instruction arrays. The compact observation (RecoWorld-Compact-v0) gives the topic as an index: the
    one-hot is made here, so the same network (and the same weights) reads either observation. Output: ``[per-candidate (hidden, own inputs) (M x (H + I)), context (C),
    mean over candidates (H + I)]``; the head scores each candidate linearly from its block, so
    a score can lean on the raw inputs (affinity, consumed, asked-for topic) from the start.
    """

    def __init__(self, observation_space, hidden: int = 64, candidate_dim: int = 32, context_dim: int = 32):
        n_instr = observation_space["instruction"].shape[0]
        n_topics = (n_instr - 1) // 2
        width = n_topics + N_FEATURES
        self.compact = "candidate_topics" in observation_space.spaces
        n_cand = observation_space["candidates"].shape[0] // (N_FEATURES if self.compact else width)
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
        """(B, M*H + C + H): each candidate's hidden vector (its features with how it matches the pending
        instruction, and those inputs again), the user context, and the mean over candidates."""
        t = self.n_topics
        if self.compact:
            feats = obs["candidates"].reshape(-1, self.n_candidates, N_FEATURES)
            hot = nn.functional.one_hot(obs["candidate_topics"].long(), t).to(feats.dtype)
            cand = th.cat([hot, feats], dim=2)
        else:
            cand = obs["candidates"].reshape(-1, self.n_candidates, self.width)
        instr = obs["instruction"]
        # (B, M, 2): whether each candidate's topic is the one asked for / asked to avoid, as one batched product of
        # 0/1 values (exact in any precision)
        more_less = th.matmul(cand[..., :t], instr[:, : 2 * t].reshape(-1, 2, t).transpose(1, 2)).float()
        surprise = instr[:, None, 2 * t :].expand(-1, self.n_candidates, 1)
        ctx = self.context(th.cat([obs["user"], obs["topics"], instr], dim=1))
        x = th.cat([cand, more_less, surprise], dim=2)
        h = self.candidate[1:](self._first_layer(x, ctx))
        h = th.cat([h, x], dim=2)
        return th.cat([h.flatten(1), ctx, h.mean(1)], dim=1)

    def _first_layer(self, x: th.Tensor, ctx: th.Tensor) -> th.Tensor:
        """``candidate[0]`` on ``[x, ctx]`` per candidate, without copying the context into every row: the
        context's part of the product is taken once per user and broadcast (same weights, same result)."""
        layer, n_in = self.candidate[0], x.shape[-1]
        per_user = nn.functional.linear(ctx, layer.weight[:, n_in:], layer.bias)
        return th.matmul(x, layer.weight[:, :n_in].t()) + per_user[:, None, :]

class CandidateHead(nn.Module):
    """One shared linear score per candidate from its hidden vector: (B, M*H + ...) -> (B, M)."""

    def __init__(self, n_candidates: int, candidate_dim: int):
        super().__init__()
        self.n_candidates, self.candidate_dim = n_candidates, candidate_dim
        self.score = nn.Linear(candidate_dim, 1)

    def forward(self, latent: th.Tensor) -> th.Tensor:
        """(B, M) scores, one per candidate, from the encoder's output; in float32 even under autocast (a
        slate's log-probability sums ten slots of these scores, and PPO's ratio compares it across updates)."""
        h = latent[:, : self.n_candidates * self.candidate_dim].reshape(-1, self.n_candidates, self.candidate_dim)
        with th.autocast("cpu", enabled=False):
            return self.score(h.float()).squeeze(-1)


class FullPrecisionLinear(nn.Linear):
    """``nn.Linear`` that stays in float32 under autocast (the value head; same parameters and state dict)."""

    def forward(self, x: th.Tensor) -> th.Tensor:
        with th.autocast("cpu", enabled=False):
            return super().forward(x.float())

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
        """Set the candidates' scores (B, M) the slate is drawn from; returns self, as SB3 expects."""
        self.scores, self._last = action_logits, None
        return self

    def _slot_log_probs(self, actions: th.Tensor) -> th.Tensor:
        """(B, K, M) log-probabilities of each slot given the candidates placed before it."""
        onehot = nn.functional.one_hot(actions.long(), self.n_candidates).to(self.scores.dtype)
        before = onehot.cumsum(1) - onehot
        logits = self.scores[:, None, :].masked_fill(before > 0, NEG)
        return th.log_softmax(logits, dim=-1)

    def log_prob(self, actions: th.Tensor) -> th.Tensor:
        """(B,) log-probability of each slate: the sum over slots of each slot's log-probability given the
        slots before it."""
        actions = actions.long()
        self._last = self._slot_log_probs(actions)
        return self._last.gather(2, actions[..., None]).squeeze(-1).sum(1)

    def entropy(self) -> th.Tensor:
        """Chain rule along the slate just evaluated: sum_k H(slot k | slots < k) (an unbiased
        estimate of the slate entropy when the slate was sampled from this distribution); reuses the
        slot log-probabilities :meth:`log_prob` computed."""
        logp = self._last if self._last is not None else self._slot_log_probs(self.mode())
        return -(logp.exp() * logp).sum(-1).sum(-1)

    def sample(self) -> th.Tensor:
        """(B, K) slates of distinct candidates drawn without replacement from softmax(scores) (Gumbel top-K)."""
        u = th.rand_like(self.scores).clamp_(1e-10, 1.0 - 1e-7)
        return th.topk(self.scores - th.log(-th.log(u)), self.slate_size, dim=1).indices

    def mode(self) -> th.Tensor:
        """(B, K) the K highest-scoring candidates, best first."""
        return th.topk(self.scores, self.slate_size, dim=1).indices

class PooledCritic(MlpExtractor):
    """The slate policy's MLP extractor when the critic reads the pooled features only: the actor gets
    every feature (its head scores each candidate's block), the critic's MLP only the last
    ``pooled_dim`` (the user context and the mean over candidates), not the M per-candidate blocks."""

    def __init__(
        self, feature_dim: int, pooled_dim: int, net_arch: dict[str, list[int]], activation_fn: type[nn.Module],
        device: th.device | str = "cpu",
    ):
        super().__init__(pooled_dim, net_arch, activation_fn, device)
        self.pooled_dim, self.latent_dim_pi = pooled_dim, feature_dim

    def forward_actor(self, features: th.Tensor) -> th.Tensor:
        """The actor's latent: every feature, through the policy MLP (empty by default: the head scores them)."""
        return self.policy_net(features)

    def forward_critic(self, features: th.Tensor) -> th.Tensor:
        """The critic's latent from the last ``pooled_dim`` features only (context and candidate mean)."""
        return self.value_net(features[:, -self.pooled_dim :])


class SlatePolicy(MultiInputActorCriticPolicy):
    """Actor-critic for ``action_mode="slate"``: a shared candidate scorer and a Plackett-Luce slate
    (distinct items, no duplicates). The critic has its own encoder by default (its large,
    noisy value loss would otherwise drown the actor's gradient in shared features).

    ``critic_input="pooled"``: the critic's MLP reads the user context and the mean over candidates
    only (:class:`PooledCritic`), not every candidate's block (``"all"``, the default, which saved
    models without the key load with); its first layer then costs ~60x less and an update ~1/3 less,
    but on the default problem it learnt worse (docs/figures/rl.md, training throughput).

    ``precision="bfloat16"``: the encoder and the critic's MLP run under CPU autocast (their matrix products
    in bfloat16, weights and gradients in float32); the candidate scores and the value stay float32. An
    update then costs about 40% less on a CPU with bfloat16 instructions (AVX-512 BF16, AMX); on one
    without, autocast is slower. Level days active on average over three seeds, with more spread, so not
    the default (docs/figures/rl.md, bfloat16)."""

    def __init__(
        self, observation_space, action_space, lr_schedule, head_gain: float = 0.01, critic_input: str = "all",
        precision: str = "float32", **kwargs
    ):
        if critic_input not in ("all", "pooled"):
            raise ValueError(f"policy_kwargs.critic_input: '{critic_input}' is not 'all' or 'pooled'")
        if precision not in PRECISIONS:
            raise ValueError(f"policy_kwargs.precision: '{precision}' is not one of {', '.join(PRECISIONS)}")
        kwargs.setdefault("features_extractor_class", CandidateEncoder)
        kwargs.setdefault("net_arch", {"pi": [], "vf": [64, 64]})
        kwargs.setdefault("share_features_extractor", False)
        self.head_gain, self.critic_input, self.precision = head_gain, critic_input, precision
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            head_gain=self.head_gain, share_features_extractor=self.share_features_extractor, critic_input=self.critic_input,
            precision=self.precision,
        )
        return data

    @contextlib.contextmanager
    def _autocast(self) -> Iterator[None]:
        """CPU autocast to the policy's precision (nothing for float32)."""
        with th.autocast("cpu", dtype=th.bfloat16, enabled=self.precision == "bfloat16"):
            yield

    def forward(self, obs, deterministic: bool = False):
        """SB3's forward pass (action, value, log-probability), under the policy's precision."""
        with self._autocast():
            return super().forward(obs, deterministic)

    def evaluate_actions(self, obs, actions: th.Tensor):
        """SB3's (value, log-probability, entropy) of ``actions``, under the policy's precision."""
        with self._autocast():
            return super().evaluate_actions(obs, actions)

    def get_distribution(self, obs):
        """SB3's action distribution, under the policy's precision."""
        with self._autocast():
            return super().get_distribution(obs)

    def predict_values(self, obs) -> th.Tensor:
        """SB3's value estimate, under the policy's precision."""
        with self._autocast():
            return super().predict_values(obs)

    def _build_mlp_extractor(self) -> None:
        if self.critic_input == "all":
            super()._build_mlp_extractor()
            return
        enc = self.pi_features_extractor
        pooled = self.features_dim - enc.n_candidates * enc.candidate_dim
        self.mlp_extractor = PooledCritic(self.features_dim, pooled, self.net_arch, self.activation_fn, self.device)

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
        self.value_net = FullPrecisionLinear(self.mlp_extractor.latent_dim_vf, 1)
        if self.ortho_init:
            from functools import partial

            gains = {self.mlp_extractor: math.sqrt(2), self.action_net: self.head_gain, self.value_net: 1.0}
            for extractor in {self.pi_features_extractor, self.vf_features_extractor}:
                gains[extractor] = math.sqrt(2)
            for module, gain in gains.items():
                module.apply(partial(self.init_weights, gain=gain))
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)


class StageProgress(BaseCallback):
    """Advances a :func:`recoworld.progress.stage` by the environment steps taken (shown only when a command
    turned reporting on), about 200 times over the run rather than every step."""

    def __init__(self, stage: Any, total: int) -> None:
        super().__init__()
        self.stage, self.every = stage, max(1, total // 200)

    def _on_step(self) -> bool:
        if self.num_timesteps - self.stage.done >= self.every:
            self.stage.advance(self.num_timesteps - self.stage.done)
        return True


class Snapshots(BaseCallback):
    """Copies the policy's weights once an update has seen each further ``every`` environment steps (and
    at the end), with the wall seconds since training started: ``snapshots`` is a list of (steps, seconds, state dict), for
    scoring the policy as a function of training time afterwards."""

    def __init__(self, every: int) -> None:
        super().__init__()
        if every < 1:
            raise ValueError("every: must be at least 1 step")
        self.every, self.snapshots, self._start, self._next = every, [], 0.0, every

    def _on_training_start(self) -> None:
        self._start, self._next = time.perf_counter(), self.every

    def _take(self) -> None:
        state = copy.deepcopy(self.model.policy.state_dict())
        self.snapshots.append((int(self.num_timesteps), time.perf_counter() - self._start, state))

    def _on_rollout_start(self) -> None:  # after the update: the weights have learnt from every step so far
        if self.num_timesteps >= self._next:
            self._take()
            self._next = (self.num_timesteps // self.every + 1) * self.every

    def _on_step(self) -> bool:
        return True

    def _on_training_end(self) -> None:
        if not self.snapshots or self.snapshots[-1][0] != self.num_timesteps:
            self._take()


class KeepBest(BaseCallback):
    """EvalCallback's ``callback_on_new_best``: copies the best-scoring weights into ``best``."""

    def __init__(self, best: dict[str, Any]) -> None:
        super().__init__()
        self.best = best

    def _on_step(self) -> bool:
        self.best["state"] = copy.deepcopy(self.model.policy.state_dict())
        self.best["reward"] = float(self.parent.best_mean_reward)
        self.best["step"] = int(self.num_timesteps)
        return True
