"""The leaderboard page and the README's table are what the result files say, and nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest

from recoworld.tasks import evaluate_task, get_task
from recoworld.tasks import leaderboard as L

ROOT = Path(__file__).resolve().parents[2]
SEEDS = range(100_000, 100_030)


@pytest.fixture(scope="module")
def results_folder(tmp_path_factory) -> Path:
    """Three policies on cold-start-v1 (a few users, marked official for the test) and a meta file."""
    folder = tmp_path_factory.mktemp("leaderboard")
    for name in ("random", "greedy", "linucb"):
        result = evaluate_task(name, "cold-start-v1", seeds=SEEDS).model_copy(update={"official": True, "wall_seconds": 1.5})
        result.note = "online LinUCB, alpha 1" if name == "linucb" else ""
        result.write(folder / "cold-start-v1" / f"{name}.json")
    meta = L.Meta(machine="2 cores", load_average=[1.0, 2.0], total_seconds=120,
                  missing=[L.Missing(task="cold-start-v1", policy="ppo", reason="no PPO model fits 8 of 80")])
    (folder / "meta.json").write_text(meta.model_dump_json())
    return folder


def test_the_page_ranks_the_policies_and_names_any_that_beats_the_reference(results_folder) -> None:
    by_task, meta = L.load_results(results_folder)
    ranked = [r.policy_name for r in by_task["cold-start-v1"]]
    assert ranked == sorted(ranked, key=lambda n: -next(r.score.value for r in by_task["cold-start-v1"] if r.policy_name == n))
    page = L.render_page(by_task, meta)
    linucb = next(r for r in by_task["cold-start-v1"] if r.policy_name == "linucb")
    assert linucb.score.value > linucb.reference_score  # LinUCB learns a newcomer's taste faster than greedy
    assert f"Beat the reference: **linucb** ({linucb.normalised.value:.0f})." in page
    assert "| greedy (reference) |" in page and "| **linucb** |" in page
    assert f"{linucb.score.value:.3f} [{linucb.score.low:.3f}, {linucb.score.high:.3f}]" in page
    assert "- linucb: online LinUCB, alpha 1" in page and "- ppo: no PPO model fits 8 of 80" in page
    assert "load average 1.0 → 2.0" in page and "No results yet." in page  # the other tasks
    block = L.render_readme_block(by_task)
    assert block.startswith(L.START) and block.endswith(L.END) and "| cold-start-v1 | ctr | greedy | linucb (" in block


def test_the_generator_writes_then_checks_the_page_and_the_readme(results_folder, tmp_path, capsys) -> None:
    page, readme = tmp_path / "leaderboard.md", tmp_path / "README.md"
    readme.write_text(f"# Title\n\n{L.START}\nold table\n{L.END}\n\nmore text\n")
    args = ["--results", str(results_folder), "--page", str(page), "--readme", str(readme)]
    assert L.main([*args, "--check"]) == 1
    assert L.main(args) == 0 and L.main([*args, "--check"]) == 0
    assert "old table" not in readme.read_text() and readme.read_text().endswith("\n\nmore text\n")
    page.write_text(page.read_text().replace("linucb", "linUCB"))
    assert L.main([*args, "--check"]) == 1 and "out of date" in capsys.readouterr().out


def test_results_of_another_definition_or_other_users_are_refused(results_folder, tmp_path) -> None:
    source = results_folder / "cold-start-v1" / "greedy.json"
    for field, value, message in (("fingerprint", "0000", "scored on another definition of task cold-start-v1"),
                                  ("official", False, "not scored on task cold-start-v1's own held-out set")):
        folder = tmp_path / field
        result = L.TaskResult.model_validate_json(source.read_text()).model_copy(update={field: value})
        result.write(folder / "cold-start-v1" / "greedy.json")
        with pytest.raises(ValueError, match=message):
            L.load_results(folder)


def test_results_scored_in_two_calibrated_worlds_are_refused(results_folder, tmp_path) -> None:
    for name, world in (("random", "a" * 64), ("greedy", "a" * 64), ("linucb", None)):
        result = L.TaskResult.model_validate_json((results_folder / "cold-start-v1" / f"{name}.json").read_text())
        if world is not None:
            result.settings["world_sha256"] = world
        result.write(tmp_path / "cold-start-v1" / f"{name}.json")
    assert len(L.load_results(tmp_path)[0]["cold-start-v1"]) == 3  # one world (a result without a digest predates them)
    result = L.TaskResult.model_validate_json((tmp_path / "cold-start-v1" / "linucb.json").read_text())
    result.settings["world_sha256"] = "b" * 64
    result.write(tmp_path / "cold-start-v1" / "linucb.json")
    with pytest.raises(ValueError, match="task cold-start-v1: results scored in different calibrated worlds"):
        L.load_results(tmp_path)


def test_the_project_page_and_readme_table_are_generated_from_the_kept_result_files() -> None:
    by_task, meta = L.load_results(ROOT / "leaderboard")
    assert (ROOT / "docs" / "leaderboard.md").read_text(encoding="utf-8") == L.render_page(by_task, meta)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert L.replace_block(readme, L.render_readme_block(by_task)) == readme
    page = L.render_page(by_task, meta)  # a population task is one run of one seed, not a range of users' seeds
    assert "5,000 held-out users (one population drawn from seed 100,000)" in page and "100,000–100,000" not in page
    shipped = {"random", "popular", "greedy", "mmr", "linucb", "instruction_following", "toolrec", "lerl", "sasrec", "ppo"}
    for task_id, results in by_task.items():
        task = get_task(task_id)
        scored = {r.policy_name for r in results}
        missing = {m.policy for m in meta.missing if m.task == task_id}
        assert shipped <= scored | missing, f"{task_id}: no result and no reason for {sorted(shipped - scored - missing)}"
        assert {"random", task.reference.name} <= scored or not results


@pytest.mark.slow
def test_a_kept_result_is_reproduced_digit_for_digit() -> None:
    """greedy on cold-start-v1, scored again now: the same file as the one kept (wall time aside). When the world's
    code changes what users do, this fails: regenerate the results (python benchmarks/leaderboard.py)."""
    kept = L.TaskResult.model_validate_json((ROOT / "leaderboard" / "cold-start-v1" / "greedy.json").read_text())
    again = evaluate_task("greedy", "cold-start-v1")
    strip = {"wall_seconds": 0.0, "versions": {}, "note": ""}
    assert again.model_copy(update=strip).model_dump_json() == kept.model_copy(update=strip).model_dump_json()
