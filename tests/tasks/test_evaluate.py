"""Scoring a policy on a task: the same score to the last digit, held-out users only, and one error line for a
bad task, a bad policy or a policy that returns invalid slates."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from recoworld.cli import app
from recoworld.tasks import PolicyError, evaluate_task, get_task
from recoworld.tasks import evaluate as E
from recoworld.tasks.policies import resolve_policy

SEEDS = range(100_000, 100_040)  # a few held-out users keep the tests fast (results then unofficial)
BAD = "tests.tasks.policies_for_tests"
runner = CliRunner()


def _comparable(result) -> str:
    return result.model_copy(update={"wall_seconds": 0.0}).model_dump_json()


def test_the_same_policy_task_and_seeds_give_the_same_result_to_the_last_digit() -> None:
    first = evaluate_task("linucb", "cold-start-v1", seeds=SEEDS)
    E._ANCHORS.clear()  # random and the reference are served again too
    second = evaluate_task("linucb", "cold-start-v1", seeds=SEEDS)
    assert _comparable(first) == _comparable(second)
    assert first.score.value == second.score.value and first.score.low < first.score.value < first.score.high
    other = evaluate_task("linucb", "cold-start-v1", seeds=range(100_040, 100_080))
    assert other.score.value != first.score.value  # other users, another score


def test_a_result_carries_the_normalised_score_the_secondary_metrics_and_what_it_was_run_with(tmp_path) -> None:
    task = get_task("cold-start-v1")
    result = evaluate_task(task.reference.name, task, seeds=SEEDS)
    assert result.normalised.value == pytest.approx(100.0) and result.reference_score == result.score.value
    random = evaluate_task("random", task, seeds=SEEDS)
    assert random.normalised.value == pytest.approx(0.0)
    assert set(result.secondary) >= {"ctr", "churn_rate", "compliance", "days_active"}
    assert result.secondary["ctr"] == result.score.value and not result.official
    assert result.seeds == [SEEDS.start, SEEDS.stop] and result.settings["horizon_days"] == 7
    assert {"recoworld", "numpy", "gymnasium", "python"} <= set(result.versions)
    saved = json.loads(result.write(tmp_path / "r.json").read_text())
    assert saved["fingerprint"] == task.fingerprint() and saved["score"]["value"] == result.score.value


@pytest.mark.parametrize("seeds", [range(0, 10), range(49_990, 50_010), range(50_000, 50_010), range(99_999, 100_010)])
def test_training_and_validation_seeds_are_refused(seeds) -> None:
    with pytest.raises(ValueError, match=r"evaluate on held-out seeds \(100000 and up\)") as err:
        evaluate_task("greedy", "retention-v1", seeds=seeds)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("cls, message", [
    ("OutOfRange", r"^policy '.*:OutOfRange' returned an invalid slate: slate: candidate positions must lie in \[0, 80\), "
                   r"got values from \d+ to 85$"),
    ("ShortSlate", r"^policy '.*:ShortSlate' returned an invalid slate: slate: expected shape \(1, 8\), got \(1, 7\)$"),
    ("ReturnsAList", r"^policy '.*:ReturnsAList': slate\(\) returned list, expected a SlateChoice$"),
    ("Raises", r"^policy '.*:Raises': slate\(\) raised KeyError: 'no such topic'$"),
])
def test_a_policy_that_returns_invalid_slates_is_one_line_naming_it(cls, message) -> None:
    with pytest.raises(PolicyError, match=message):
        evaluate_task(f"{BAD}:{cls}", "cold-start-v1", seeds=SEEDS)


def test_invalid_slates_are_caught_in_a_population_task_too() -> None:
    task = get_task("creator-economy-v1").model_copy(update={"held_out_users": 30})
    with pytest.raises(PolicyError, match="invalid slate"):
        E.serve(resolve_policy(f"{BAD}:OutOfRange", task), task, task.held_out_seeds)
    per_user, creators = E.serve(resolve_policy("greedy", task), task, task.held_out_seeds)
    value, secondary = E.score(task, per_user, creators, 30)
    assert len(per_user) == 30 and creators.shape == (300,)
    assert value.value == pytest.approx(secondary["days_active"] / 30 * creators.mean())
    assert 0 <= secondary["creators_kept"] <= 1


@pytest.mark.parametrize("policy, message", [
    ("gredy", r"^policy 'gredy': unknown recommender 'gredy' \(known: "),
    (f"{BAD}:NoSeed", r"^policy '.*:NoSeed': recommender '.*': its factory must accept seed="),
    ("recoworld.nowhere:Thing", r"^policy 'recoworld.nowhere:Thing': recommender '.*': no module named 'recoworld.nowhere'"),
    ("missing.zip", r"^policy 'missing.zip': no such file \(an SB3 model zip\)$"),
    ("http://127.0.0.1:9/agent", r"^policy 'http://127.0.0.1:9/agent': /info: cannot reach the server \(is it running\?\)"),
    ("./no/such/folder", r"^policy './no/such/folder': no such file or folder; expected a registered recommender"),
])
def test_a_bad_policy_is_one_line_naming_it(policy, message) -> None:
    with pytest.raises(PolicyError, match=message) as err:
        resolve_policy(policy, get_task("retention-v1"))
    assert "\n" not in str(err.value)


def test_a_tuned_agent_folder_is_a_policy_and_a_broken_one_is_one_line(tmp_path) -> None:
    pytest.importorskip("transformers")
    (tmp_path / "agent.json").write_text('{"share": 0.5, "hold": 3}')
    policy = resolve_policy(str(tmp_path), get_task("instruction-following-v1"))  # the model loads at its first instruction
    assert (policy.kind, policy.name) == ("agent_folder", f"language_agent[{tmp_path.name}]")
    assert (policy.recommender.base.share, policy.recommender.base.hold) == (0.5, 3)
    with pytest.raises(PolicyError, match=r"^--params: a language agent's folder sets its own \(got \['hold'\]\)$"):
        resolve_policy(str(tmp_path), get_task("instruction-following-v1"), {"hold": 1})
    (tmp_path / "agent.json").write_text('{"shares": 0.5}')
    with pytest.raises(PolicyError, match=r"^policy '.*': language agent: .*agent.json is not a valid agent file") as err:
        resolve_policy(str(tmp_path), get_task("instruction-following-v1"))
    assert "\n" not in str(err.value)


def test_bad_params_name_the_parameter() -> None:
    with pytest.raises(PolicyError, match=r"^--params.bogus: unknown parameter \(recommender 'mmr'\)$"):
        resolve_policy("mmr", get_task("retention-v1"), {"bogus": 1})


def test_an_sb3_model_for_other_slates_is_refused(tmp_path) -> None:
    pytest.importorskip("stable_baselines3")
    from recoworld.agents.rl import save, train

    model = train("ppo", 128, config={"env": {"num_candidates": 20, "slate_size": 5}}, n_envs=1, eval_freq=0,
                  hyperparams={"n_steps": 128, "batch_size": 64})
    path = save(model, tmp_path / "small.zip")
    with pytest.raises(PolicyError, match=r"^policy '.*small.zip': its actions MultiDiscrete\(\[20 20 20 20 20\]\) do not "
                                          r"fit task retention-v1's slates \(10 of 100 candidates"):
        evaluate_task(str(path), "retention-v1", seeds=SEEDS)
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    with pytest.raises(PolicyError, match=r"^policy '.*junk.zip': not a Stable-Baselines3 model zip"):
        resolve_policy(str(tmp_path / "junk.zip"), get_task("retention-v1"))


# ------------------------------------------------------------------ the command
def _error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def test_recoworld_evaluate_prints_the_score_and_writes_the_result(tmp_path) -> None:
    out = tmp_path / "mmr.json"
    result = runner.invoke(app, ["evaluate", "mmr", "--task", "cold-start", "--seeds", "100000:100040", "--out", str(out),
                                 "--note", "default parameters"])
    assert result.exit_code == 0, result.output
    saved = json.loads(out.read_text())
    assert saved["task"] == "cold-start-v1" and saved["note"] == "default parameters" and saved["official"] is False
    assert "clicks per reviewed impression" in result.stdout and f"{saved['score']['value']:.3f}" in result.stdout
    assert "not official" in result.stdout and np.isfinite(saved["normalised"]["value"])


@pytest.mark.parametrize("args, line", [
    (["greedy", "--task", "nope"], "error: unknown task 'nope' (known: cold-start-v1, creator-economy-v1, "
                                   "instruction-following-v1, ml100k-v2, retention-v1)"),
    (["greedy", "--task", "ml100k-v1"], "error: task 'ml100k-v1' was retired: its users came from the mini-batch "
     "calibration solver, which stopped short of the fit; ml100k-v2 is the same task on the converged (full-batch) "
     "calibration"),
    (["greedy", "--task", "retention", "--seeds", "10:20"], "error: --seeds 10..19: task retention-v1 trains on seeds "
     "0..49999 and validates on 50000..99999; evaluate on held-out seeds (100000 and up)"),
    (["greedy", "--task", "retention", "--seeds", "ten"], "error: --seeds: expected START:STOP (or one seed), got 'ten'"),
    (["mmr", "--task", "retention", "--params", "{lambda"], "error: --params: not JSON (Expecting property name enclosed "
     "in double quotes at character 1)"),
    (["gredy", "--task", "retention"], None),
    (["greedy", "--task", "ml100k", "--data", "/nonexistent/ml-100k"], None),
])
def test_recoworld_evaluate_bad_input_is_one_line(args, line) -> None:
    result = runner.invoke(app, ["evaluate", *args])
    lines = _error_lines(result)
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.output
    if line is not None:
        assert lines[0] == line
