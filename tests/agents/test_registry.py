"""The registry: names, duplicate refusal, params validated before a run starts; the protocol."""

from __future__ import annotations

import pytest

from recoworld.agents import registry
from recoworld.agents.protocol import Recommender
from recoworld.scenario import ScenarioError, load_scenario


def test_every_registered_recommender_meets_the_protocol() -> None:
    for name in sorted(registry.known_recommenders() - {"sb3"}):  # sb3 needs a trained model
        rec = registry.make_recommender(name)
        assert isinstance(rec, Recommender), name


def test_a_name_is_registered_once() -> None:
    with pytest.raises(ValueError, match="'greedy': already registered"):
        registry.register("greedy", lambda seed=0: None)
    with pytest.raises(ValueError, match="already registered"):
        registry.register("instruction_following", lambda seed=0: None)


def test_register_adds_a_new_name() -> None:
    from recoworld.agents.baselines import GreedyRelevance

    registry.register("greedy_test_copy", GreedyRelevance)
    try:
        assert type(registry.make_recommender("greedy_test_copy", {"popularity_weight": 0.2})) is GreedyRelevance
        load_scenario("quickstart", {"recommenders": [{"name": "greedy_test_copy", "params": {"popularity_weight": 0.2}}]})
    finally:
        del registry.RECOMMENDERS["greedy_test_copy"]


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"name": "mmr", "params": {"lambda": 0.3}}, "recommenders.1.params.lambda: unknown parameter"),
        ({"name": "mmr", "params": {"lambda_": "much"}}, "recommenders.1.params.lambda_: Input should be a valid number"),
        ({"name": "toolrec", "params": {"max_steps": "seven"}}, "recommenders.1.params.max_steps: Input should be a valid integer"),
        (
            {"name": "instruction_following", "params": {"base": "mmr", "base_params": {"eps": 1}}},
            "recommenders.1.params.base_params.eps: unknown parameter",
        ),
        ({"name": "instruction_following", "params": {"bogus": 1}}, "recommenders.1.params.bogus: unknown parameter"),
    ],
)
def test_bad_params_fail_when_the_scenario_loads(spec: dict, message: str) -> None:
    with pytest.raises(ScenarioError, match=message.replace(".", r"\.")):
        load_scenario("quickstart", {"recommenders": [{"name": "greedy"}, spec]})


def test_good_params_pass_and_reach_the_recommender() -> None:
    scenario = load_scenario("quickstart", {"recommenders": [{"name": "mmr", "params": {"lambda_": 0.3}}]})
    spec = scenario.recommenders[0]
    assert registry.make_recommender(spec.name, spec.params).lambda_ == 0.3


def test_reading_the_names_imports_no_recommender() -> None:
    import subprocess
    import sys

    code = "import sys; from recoworld.agents.registry import known_recommenders; known_recommenders(); print(sorted(m for m in sys.modules if m.startswith('recoworld.agents.')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['recoworld.agents.registry']"
