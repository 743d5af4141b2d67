"""The instruction-following recommender: parsing words into constraints, following and holding them."""

from __future__ import annotations

import numpy as np
import pytest

from recoworld.agents import make_recommender
from recoworld.agents.baselines import GreedyRelevance
from recoworld.agents.instruction_following import InstructionFollowing, parse_rules
from recoworld.llm.base import LLMTimeout
from recoworld.llm.scripted import ScriptedModel
from recoworld.runs.runner import run_population
from recoworld.scenario import load_scenario
from recoworld.world.simulation import Simulation
from recoworld.users.instructions import InstructionIntent, instruction_text

TOPICS = ["cooking", "fitness", "gaming", "music", "travel", "tech"]
INTENTS = [
    InstructionIntent(more_topic="cooking", less_topic="gaming"),
    InstructionIntent(more_topic="music"),
    InstructionIntent(less_topic="tech"),
    InstructionIntent(surprise=True),
]


@pytest.mark.parametrize("tone", ["casual", "polite", "blunt", "enthusiastic"])
def test_rule_parser_reads_every_phrasing_users_produce(tone) -> None:
    for intent in INTENTS:
        for variant in range(2):
            text = instruction_text(intent, tone, variant)
            c = parse_rules(text, TOPICS)
            assert c.include_topics == ([intent.more_topic] if intent.more_topic else []), text
            assert c.exclude_topics == ([intent.less_topic] if intent.less_topic else []), text
            assert c.more_novelty == intent.surprise, text


def test_rule_parser_on_free_text() -> None:
    c = parse_rules("Honestly I'm tired of Gaming; could I get something short about travel?", TOPICS)
    assert c.exclude_topics == ["gaming"] and c.include_topics == ["travel"] and c.shorter
    assert parse_rules("what a nice day", TOPICS).empty


@pytest.fixture(scope="module")
def runs():
    scenario = load_scenario("quickstart")
    follow = InstructionFollowing(GreedyRelevance(), parser="rules")
    return {
        "greedy": run_population(scenario, GreedyRelevance(), n_users=1500, seed=4).summary(),
        "follow": run_population(scenario, follow, n_users=1500, seed=4).summary(),
        "recommender": follow,
    }


@pytest.mark.slow
def test_parsed_instructions_are_followed_and_users_stay_longer(runs) -> None:
    rec = runs["recommender"]
    assert rec.parsed > 1000 and rec.unparsed == 0  # every instruction of the population was read
    assert runs["follow"]["compliance"] >= 0.8
    assert runs["follow"]["days_active"] > runs["greedy"]["days_active"] + 2.0
    assert runs["follow"]["churn_rate"] < runs["greedy"]["churn_rate"]


def _sim_with_instruction(text: str, more: str | None, less: str | None):
    scenario = load_scenario("quickstart", {"catalog": {"synthetic": {"n_items": 2000}}})
    sim = Simulation.sample(scenario, 1, np.random.default_rng(0))
    sim.retrieve(np.array([0]))
    sim.tell(0, more, less, False, text)
    return sim


def test_constraints_hold_after_the_instruction_is_settled_then_expire() -> None:
    sim = _sim_with_instruction("No more cooking. Give me travel.", "travel", "cooking")
    rec = InstructionFollowing(GreedyRelevance(), parser="rules", hold=3)
    cooking = sim.catalog.topic_names.index("cooking")
    travel = sim.catalog.topic_names.index("travel")
    shown, same_as_base = [], []
    for step in range(5):
        view = sim.view(np.array([0]), with_text=True)
        items = rec.recommend(view).items
        shown.append(sim.catalog.topic[view.candidates[0, items]])
        same_as_base.append(items == GreedyRelevance().recommend(view).items)
        sim.users.instr[0, 3] = -1  # the user stops repeating it: the instruction is settled
        sim.retrieve(np.array([0]))
    for topics in shown[:3]:  # held for 3 slates: no cooking, travel lifted
        assert cooking not in topics and travel in topics
    assert same_as_base == [False, False, False, True, True]  # then it is the base ranker again


def test_llm_parser_uses_the_model_and_falls_back_to_rules() -> None:
    answers = iter([{"include_topics": ["Travel", "atlantis"], "exclude_topics": ["cooking"]}, LLMTimeout("slow")])
    model = ScriptedModel(lambda m, s: next(answers))
    rec = InstructionFollowing(GreedyRelevance(), parser="llm", language_model=model)
    sim = _sim_with_instruction("enough cooking, I'd like travel", "travel", "cooking")
    view = sim.view(np.array([0]), with_text=True)
    (constraints,) = rec.constraints_for(view)
    assert constraints.include_topics == ["travel"] and constraints.exclude_topics == ["cooking"]  # unknown topic dropped
    assert "<<< enough cooking" in model.last_messages[-1]["content"]
    sim.tell(0, "music", None, False, "more music please")
    (constraints,) = rec.constraints_for(sim.view(np.array([0]), with_text=True))
    assert rec.fallbacks == 1 and constraints.include_topics == ["music"]  # the rules read it instead


def test_usable_from_the_registry_with_plain_parameters() -> None:
    rec = make_recommender("instruction_following", {"base": "mmr", "parser": "oracle", "share": 0.3})
    assert isinstance(rec, InstructionFollowing) and rec.parser == "oracle" and rec.base.name == "mmr"
    with pytest.raises(ValueError, match="parser"):
        make_recommender("instruction_following", {"parser": "telepathy"})
