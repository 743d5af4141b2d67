"""Malformed scenarios and Gym input: one clear line naming the field, never a traceback, a hang or
a MemoryError; and a seeded fuzzer of a few hundred mutated scenario files."""

from __future__ import annotations

import copy
import resource
from importlib import resources
import time

import numpy as np
import pytest
import yaml

from recoworld.runs.runner import PopulationRun
from recoworld.scenario import ScenarioError, deep_merge, load_scenario, parse_overrides, safe_load_strict

TINY = {
    "name": "fuzz", "seed": 1,
    "catalog": {"synthetic": {"n_items": 200, "n_topics": 5, "n_creators": 8}, "embedding": {"dim": 16}},
    "env": {"num_candidates": 20, "slate_size": 3, "horizon_days": 1, "max_slates_per_session": 3, "history_length": 5},
    "users": {"n_users": 6, "taste_noise": 0.1},
    "rewards": {"click": 1.0, "comment": 0.5},
    "creators": {"count": 2, "items_per_day": 0.5},
    "recommenders": [{"name": "greedy", "arm": "g"}, {"name": "random"}],
    "run": {"retrain_every": 1},
}


def refused(path_or_data, field: str, overrides=None) -> str:
    with pytest.raises(ScenarioError) as err:
        load_scenario(path_or_data, overrides)
    message = str(err.value)
    assert "\n" not in message and field in message, message
    return message


def write(tmp_path, text: str, name: str = "s.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("value, field", [
    (".nan", "rewards.click"), (".inf", "rewards.click"), ("-.inf", "rewards.click"), ("1e300", "rewards.click"),
])
def test_non_finite_and_huge_floats_are_refused(value, field):
    refused(TINY, field, parse_overrides([f"{field}={value}"]))


@pytest.mark.parametrize("field", ["catalog.synthetic.n_items", "catalog.synthetic.n_creators",
                                   "env.history_length", "catalog.embedding.dim", "users.n_users"])
def test_huge_sizes_are_refused_before_anything_is_allocated(field):
    start = time.monotonic()
    refused(TINY, field, parse_overrides([f"{field}=1000000000"]))
    assert time.monotonic() - start < 5


def test_empty_comment_only_duplicate_and_deep_files_are_refused(tmp_path):
    refused(write(tmp_path, ""), "empty")
    refused(write(tmp_path, "# nothing\n   # here\n"), "empty")
    refused(write(tmp_path, "name: a\nseed: 1\nname: b\n"), "duplicate key 'name' (line 3)")
    refused(write(tmp_path, "env:\n  slate_size: 3\n  slate_size: 4\n"), "duplicate key 'slate_size'")
    refused(write(tmp_path, "x: " + "[" * 100_000), "nested more than")
    refused(write(tmp_path, "a:\n" + "".join(" " * i + "b:\n" for i in range(1, 60))), "nested more than")
    (tmp_path / "bin.yaml").write_bytes(b"name: \xff\xfe\n")
    refused(tmp_path / "bin.yaml", "not UTF-8")


def test_a_ten_megabyte_name_is_refused_at_once(tmp_path):
    start = time.monotonic()
    refused(write(tmp_path, "name: " + "x" * 10_000_000 + "\n"), "at most")
    refused(TINY, "name", {"name": "x" * 50_000})
    assert time.monotonic() - start < 5


def test_empty_cache_path_and_unknown_recommender_params_are_refused():
    refused(TINY, "llm.cache_path", {"llm": {"cache_path": ""}})
    refused(TINY, "recommenders.0.params.bogus", {"recommenders": [{"name": "instruction_following", "params": {"bogus": 1}}]})


def test_markup_in_names_and_arm_labels_prints_as_text(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from recoworld.cli import app

    monkeypatch.chdir(tmp_path)
    data = {**TINY, "name": "exp [/] 1", "recommenders": [{"name": "greedy", "arm": "[bold]x[/]"}]}
    path = write(tmp_path, yaml.safe_dump(data))
    result = CliRunner().invoke(app, ["run", str(path), "--out", "r", "--no-report"])
    assert result.exit_code == 0, result.output
    assert "exp [/] 1" in result.output and "[bold]x[/]" in result.output


# -- Gym input ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def env():
    from recoworld.env.single import RecoWorldEnv

    e = RecoWorldEnv(config={k: TINY[k] for k in ("catalog", "env", "users")})
    e.reset(seed=0)
    return e


def test_gym_inf_and_huge_actions_are_reported_as_given(env):
    for bad in ([np.inf, 0.0, 1.0], [1e30, 0.0, 1.0]):
        with pytest.raises(ValueError) as err:
            env.step(np.array(bad))
        assert "9223372036854775808" not in str(err.value) and "must lie in [0, 20)" in str(err.value)


def test_gym_config_as_a_list_and_nan_reward_weights_are_clear_errors():
    from recoworld.env.single import RecoWorldEnv

    with pytest.raises(ValueError, match="config: expected a mapping"):
        RecoWorldEnv(config=[("env", {"slate_size": 3})])
    with pytest.raises(ScenarioError, match="rewards.click: nan is not a finite number"):
        RecoWorldEnv(config={"rewards": {"click": float("nan")}})


# -- the fuzzer ----------------------------------------------------------------------------------------

HOSTILE = [float("nan"), float("inf"), -float("inf"), 1e300, -1, 0, 10**13, 2**70, 0.5, "12", True, None, "",
           "[/]", "x" * 300, [], {}, [1, [2, [3]]], {"deep": {"er": {}}}, "0x10", -0.0]


def leaves(node, path=()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from leaves(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from leaves(value, (*path, i))
    yield path


def mutate(rng: np.random.Generator, base: dict | None = None) -> str:
    """One mutated scenario file (of ``base``, default TINY): a hostile value in a random place, a key dropped
    or invented, or text damage."""
    data = copy.deepcopy(TINY if base is None else base)
    paths = [p for p in leaves(data) if p]
    kind = rng.integers(0, 6)
    path = paths[rng.integers(len(paths))]
    parent = data
    for part in path[:-1]:
        parent = parent[part]
    if kind <= 2:
        parent[path[-1]] = HOSTILE[rng.integers(len(HOSTILE))]
    elif kind == 3 and isinstance(parent, dict):
        del parent[path[-1]]
    elif kind == 3:
        parent.append(copy.deepcopy(parent[0]))
    elif kind == 4 and isinstance(parent, dict):
        parent[f"{path[-1]}_typo"] = 1
    text = yaml.safe_dump(data, sort_keys=False)
    if kind == 5:
        lines = text.splitlines()
        i = int(rng.integers(len(lines)))
        damage = rng.integers(0, 4)
        if damage == 0:
            lines.insert(i, lines[i])  # a duplicated line: a duplicate key
        elif damage == 1:
            return text[: int(rng.integers(len(text)))]  # truncated
        elif damage == 2:
            lines[i] = lines[i].replace(":", "", 1)
        else:
            lines[i] = "\t" + lines[i]
        text = "\n".join(lines) + "\n"
    return text


@pytest.mark.slow
def test_fuzzed_scenarios_run_or_fail_with_one_line_naming_the_field(tmp_path):
    rng = np.random.default_rng(2026)
    outcomes = {"ran": 0, "refused": 0}
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for case in range(300):
        text = mutate(rng)
        path = write(tmp_path, text, f"case{case}.yaml")
        start = time.monotonic()
        try:
            scenario = load_scenario(path)
        except ScenarioError as exc:
            message = str(exc)
            assert "\n" not in message and message.startswith(f"scenario 'case{case}.yaml': "), (case, message)
            assert len(message) < 600, (case, message)
            outcomes["refused"] += 1
        else:
            PopulationRun(scenario, output=tmp_path / f"run{case}").run()
            outcomes["ran"] += 1
        assert time.monotonic() - start < 60, (case, text)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    assert grown_mb < 1500
    assert outcomes["ran"] > 20 and outcomes["refused"] > 100, outcomes
    print(f"fuzz: 300 cases, {outcomes}")


# -- the fuzzer on the LLM scenarios: every field is checked before the key and the server -------------

LLM_USERS = deep_merge(safe_load_strict(resources.files("recoworld.scenarios").joinpath("llm_users.yaml").read_text()), {
    "catalog": {"synthetic": {"n_items": 200}},
    "env": {"horizon_days": 1, "max_slates_per_session": 3},
    "users": {"n_users": 3, "segments": [{  # interest_topics: a field only the built catalog can check
        "name": "casual", "n_interests": [1, 2], "interest_topics": ["cooking", "music", "travel"],
        "traits": {"verbosity": {"mean": 0.7, "concentration": 8}}}]},
    "llm": {"cache_path": None, "max_retries": 0, "max_fallback_share": None},
})
LLM_BASES = {
    "llm users": LLM_USERS,
    "hybrid users": deep_merge(LLM_USERS, {"users": {"backend": "hybrid"}}),
    "llm creators": deep_merge(LLM_USERS, {"users": {"backend": "parametric"}, "creators": {"count": 2, "backend": "llm"}}),
}
KEY_LINE = "llm.model: openai/gpt-4o-mini needs OPENAI_API_KEY in the environment"


def first_refusal(make, language_model=None) -> str | None:
    """The one-line refusal of building and living the world (None: it got past every check)."""
    from recoworld.runs.guards import FallbackStop

    try:
        make(language_model)
    except ValueError as exc:
        message = str(exc)
        assert "\n" not in message and len(message) < 600, message
        return message
    except FallbackStop:  # the double never answers; a mutated fallback share may stop the run: it was past the checks
        pass
    return None


@pytest.mark.slow
def test_fuzzed_llm_scenarios_name_every_bad_field_before_the_missing_key(tmp_path, monkeypatch):
    """Without a key, a mutated LLM scenario is refused naming its bad field, exactly as it is when the model
    answers (a test double, which needs no key); only a scenario whose every field passes hears about the key."""
    from recoworld.env.single import RecoWorldEnv
    from recoworld.llm.base import LLMServerError
    from recoworld.llm.scripted import ScriptedModel

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    rng = np.random.default_rng(30)
    counts = {"refused on load": 0, "refused naming a field": 0, "refused naming an llm setting": 0, "refused for the key": 0,
              "misnamed": 0}
    for case in range(200):
        name = list(LLM_BASES)[case % len(LLM_BASES)]
        path = write(tmp_path, mutate(rng, LLM_BASES[name]), f"llm{case}.yaml")
        try:
            scenario = load_scenario(path)
        except ScenarioError as exc:
            assert "\n" not in str(exc) and str(exc).startswith(f"scenario 'llm{case}.yaml': "), (case, str(exc))
            counts["refused on load"] += 1
            continue
        surfaces = [lambda m, s=scenario, c=case: PopulationRun(s, output=tmp_path / f"run{c}", language_model=m).run()]
        if scenario.users.backend != "parametric":
            surfaces.append(lambda m, p=path: RecoWorldEnv(str(p), language_model=m).reset(seed=0))
        for make in surfaces:
            without_key = first_refusal(make)
            answered = first_refusal(make, ScriptedModel(lambda m, s: LLMServerError("down")))
            if answered is not None:  # a bad field: named first, whatever the key
                counts["refused naming a field" if without_key == answered else "misnamed"] += 1
                assert without_key == answered, (case, name, without_key, answered)
            elif scenario.users.backend == "parametric" and scenario.creators.backend == "parametric":
                assert without_key is None, (case, name, without_key)  # the mutation took the LLM away
            else:  # every field passed: only now the LLM's own settings (the key, or a mutated model string)
                assert without_key is not None and without_key.startswith("llm."), (case, name, without_key)
                counts["refused for the key" if without_key.startswith(KEY_LINE) else "refused naming an llm setting"] += 1
    assert counts["misnamed"] == 0 and counts["refused on load"] > 80 and counts["refused for the key"] > 20, counts
    print(f"llm fuzz: 200 cases, {counts}")
