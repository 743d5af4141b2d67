"""Scenario files: bundled scenarios load, bad keys and types get one clear line naming the field,
overrides deep-merge, and YAML paths, dicts and Scenario objects are all accepted."""

from __future__ import annotations

import copy

import pytest

from recoworld.agents import make_recommender
from recoworld.scenario import Scenario, ScenarioError, bundled_scenarios, load_scenario


def error_of(ref="quickstart", overrides=None) -> str:
    with pytest.raises(ScenarioError) as info:
        load_scenario(ref, overrides)
    message = str(info.value)
    assert "\n" not in message.strip(), f"error is not one line: {message!r}"
    return message


# --------------------------------------------------------------------------------- bundled
def test_bundled_scenarios_are_listed():
    names = bundled_scenarios()
    assert "quickstart" in names


@pytest.mark.parametrize("name", bundled_scenarios())
def test_every_bundled_scenario_loads(name):
    scenario = load_scenario(name)
    assert isinstance(scenario, Scenario)
    assert scenario.name == name
    assert scenario.env.slate_size <= scenario.env.num_candidates
    assert scenario.users.segments and scenario.recommenders
    for spec in scenario.recommenders:  # `recoworld run` builds these by name
        assert make_recommender(spec.name, spec.params).name


def test_quickstart_contents():
    s = load_scenario("quickstart")
    assert (s.catalog.synthetic.n_items, s.catalog.synthetic.n_topics) == (5000, 16)
    assert (s.env.num_candidates, s.env.slate_size, s.env.horizon_days) == (100, 10, 30)
    assert [seg.name for seg in s.users.segments] == ["casual", "enthusiast", "explorer"]
    assert s.users.segments[1].traits.activity.mean == 0.65
    assert s.rewards.return_ == 2.0 and s.rewards.churn == -10.0


def test_unknown_bundled_name():
    message = error_of("no_such_scenario")
    assert "no_such_scenario" in message and "quickstart" in message  # says what exists


# ------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "overrides, path",
    [
        ({"foo": 1}, "foo"),
        ({"env": {"slat_size": 3}}, "env.slat_size"),
        ({"catalog": {"synthetic": {"n_itemz": 10}}}, "catalog.synthetic.n_itemz"),
        ({"catalog": {"embedding": {"dims": 8}}}, "catalog.embedding.dims"),
        ({"rewards": {"clicks": 1.0}}, "rewards.clicks"),
        ({"user_model": {"w_tastee": 1.0}}, "user_model.w_tastee"),
        ({"users": {"segments": [{"name": "a", "traits": {"activty": {"mean": 0.5}}}]}}, "users.segments.0.traits.activty"),
        ({"users": {"segments": [{"traits": {"activity": {"mea": 0.5}}}]}}, "users.segments.0.traits.activity.mea"),
        ({"recommenders": [{"name": "greedy", "parms": {}}]}, "recommenders.0.parms"),
    ],
)
def test_unknown_key_names_the_full_path(overrides, path):
    message = error_of("quickstart", overrides)
    assert f"'{path}'" in message
    assert "unknown" in message


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"env": {"slate_size": "ten"}}, "env.slate_size"),
        ({"env": {"num_candidates": 0}}, "env.num_candidates"),
        ({"env": {"action_mode": "list"}}, "env.action_mode"),
        ({"env": {"observe_text": "maybe"}}, "env.observe_text"),
        ({"seed": "abc"}, "seed"),
        ({"rewards": {"return": "lots"}}, "rewards.return"),
        ({"catalog": {"source": "netflix"}}, "catalog.source"),
        ({"users": {"segments": [{"weight": -1}]}}, "users.segments.0.weight"),
        ({"users": {"segments": [{"traits": {"activity": {"mean": 1.5}}}]}}, "users.segments.0.traits.activity.mean"),
        ({"users": {"n_users": [1, 2]}}, "users.n_users"),
        ({"env": "big"}, "env"),
    ],
)
def test_wrong_type_names_the_field(overrides, field):
    message = error_of("quickstart", overrides)
    assert f"{field}:" in message


def test_several_errors_still_one_line():
    message = error_of("quickstart", {"env": {"slate_size": "x", "num_candidates": "y", "horizon_days": -1}})
    assert "env." in message


# ------------------------------------------------------------------------------ overrides
def test_overrides_deep_merge():
    base = load_scenario("quickstart")
    s = load_scenario("quickstart", {"env": {"slate_size": 5}, "catalog": {"synthetic": {"n_items": 2000}},
                                     "rewards": {"click": 0.0}})
    assert s.env.slate_size == 5
    assert s.env.num_candidates == base.env.num_candidates == 100  # siblings kept
    assert s.env.horizon_days == base.env.horizon_days
    assert s.catalog.synthetic.n_items == 2000
    assert s.catalog.synthetic.n_topics == base.catalog.synthetic.n_topics == 16
    assert s.rewards.click == 0.0 and s.rewards.churn == base.rewards.churn
    assert s.users == base.users and s.name == base.name


def test_lists_are_replaced_not_merged():
    s = load_scenario("quickstart", {"users": {"segments": [{"name": "only"}]}})
    assert [seg.name for seg in s.users.segments] == ["only"]


def test_overrides_are_not_mutated():
    overrides = {"env": {"slate_size": 5}, "users": {"segments": [{"name": "x"}]}}
    data = {"name": "d", "env": {"horizon_days": 4}}
    before_o, before_d = copy.deepcopy(overrides), copy.deepcopy(data)
    s = load_scenario(data, overrides)
    assert (s.env.slate_size, s.env.horizon_days) == (5, 4)
    assert overrides == before_o and data == before_d
    s.env.slate_size = 7  # a loaded scenario does not share state with the next load
    assert load_scenario(data, overrides).env.slate_size == 5


def test_scenario_object_round_trip_keeps_aliases():
    s = load_scenario("quickstart", {"rewards": {"return": 3.5}})
    again = load_scenario(s)
    assert again == s and again.rewards.return_ == 3.5
    shifted = load_scenario(s, {"env": {"horizon_days": 9}})
    assert shifted.env.horizon_days == 9 and shifted.rewards.return_ == 3.5


def test_dict_defaults():
    s = load_scenario({})
    assert s == Scenario()
    assert s.env.action_mode == "slate"


# --------------------------------------------------------------------------------- files
def test_yaml_path(tmp_path):
    path = tmp_path / "world.yaml"
    path.write_text(
        "name: tiny\nseed: 3\ncatalog:\n  synthetic:\n    n_items: 300\n    n_topics: 4\n"
        "env:\n  slate_size: 4\n  num_candidates: 20\nrewards:\n  return: 1.5\n"
    )
    for ref in (path, str(path)):
        s = load_scenario(ref)
        assert (s.name, s.seed, s.catalog.synthetic.n_items, s.env.slate_size, s.rewards.return_) == ("tiny", 3, 300, 4, 1.5)
    s = load_scenario(path, {"env": {"slate_size": 2}})
    assert s.env.slate_size == 2 and s.env.num_candidates == 20
    yml = tmp_path / "other.yml"
    yml.write_text("name: other\n")
    assert load_scenario(yml).name == "other"


def test_yaml_file_errors_name_the_file_and_field(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("env:\n  slate_size: 4\n  slat_size: 3\n")
    message = error_of(path)
    assert "bad.yaml" in message and "'env.slat_size'" in message

    path.write_text("env: [unclosed\n")
    message = error_of(path)
    assert "bad.yaml" in message and "YAML" in message

    path.write_text("- a\n- b\n")
    assert "bad.yaml" in error_of(path)

    missing = tmp_path / "missing.yaml"
    assert "missing.yaml" in error_of(missing)


def test_empty_yaml_is_refused_and_an_empty_mapping_is_the_default_scenario(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("")
    with pytest.raises(ScenarioError, match="empty"):
        load_scenario(path)
    path.write_text("{}\n")
    assert load_scenario(path) == Scenario()
