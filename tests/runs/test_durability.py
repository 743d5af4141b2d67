"""A run folder under attack: SIGKILL at write points across the days (before, inside and after every
file, the manifest and the checkpoint), for parametric users and for LLM users against the scripted
double, each resumed byte-identical to an uninterrupted run; damaged folders resume or are refused
with one line naming the file."""

from __future__ import annotations

import hashlib
import os
import signal
import time
import traceback
from pathlib import Path

import pytest

from recoworld.llm.scripted import ScriptedModel
from recoworld.logs import durable
from recoworld.logs.durable import KILL_ENV
from recoworld.logs.folder import RunFolder
from recoworld.runs.runner import PopulationRun
from recoworld.scenario import deep_merge, load_scenario
from tests.users.test_llm_users import decision

BASE = {
    "name": "durable", "seed": 11,
    "catalog": {"synthetic": {"n_items": 300, "n_topics": 6, "n_creators": 10}},
    "env": {"num_candidates": 20, "slate_size": 3, "horizon_days": 3, "max_slates_per_session": 4},
    "users": {"n_users": 40},
    "creators": {"count": 6, "items_per_day": 0.5},
    "recommenders": [{"name": "greedy"}],
}
LLM = deep_merge(BASE, {"users": {"n_users": 8, "backend": "llm"}, "llm": {"max_retries": 0}})


def memory_sensitive(messages, schema):
    """Clicks the slot picked by a hash of the whole prompt (memory lines included), so a lost memory shows
    in the logs; leaves with a summary now and then, so summaries reach later prompts."""
    text = messages[-1]["content"]
    h = int(hashlib.sha256(text.encode()).hexdigest(), 16)
    leave = 2 if h % 5 == 0 else None
    return decision(messages, click=(h % 3,), leave_at=leave, summary=f"session {h % 97}" if leave else None)


def model_for(data: dict):
    return ScriptedModel(memory_sensitive) if data["users"].get("backend") == "llm" else None


def live(data: dict, out: Path, resume: bool = False) -> None:
    PopulationRun(load_scenario(data), output=out, language_model=model_for(data)).run(resume=resume)


def killed_at(data: dict, out: Path, point: int) -> int:
    """Run in a forked child that SIGKILLs itself at write point ``point``; the child's exit status."""
    pid = os.fork()
    if pid == 0:  # the child
        code = 0
        try:
            os.environ[KILL_ENV] = str(point)
            durable.reset_write_points()
            live(data, out)
        except BaseException:  # noqa: BLE001
            traceback.print_exc()
            code = 1
        os._exit(code)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    raise AssertionError(f"the run killed at point {point} hung")


def folder_bytes(out: Path) -> dict[str, str]:
    """SHA-256 of every file of a finished run folder (the manifest's list and the whole-run files)."""
    manifest = RunFolder(out).read_manifest()
    files = {f.path: f.sha256 for f in manifest.files}
    for name in ("users.parquet", "catalog.parquet", "profiles.pkl", "scenario.yaml"):
        files[name] = hashlib.sha256((out / name).read_bytes()).hexdigest()
    for f in manifest.files:
        assert hashlib.sha256((out / f.path).read_bytes()).hexdigest() == f.sha256, f.path
    return files


def reference(data: dict, out: Path, monkeypatch) -> tuple[dict[str, str], int]:
    """An uninterrupted run's files, and how many write points it passed."""
    return reference_points(data, out, monkeypatch)[:2]


def reference_points(data: dict, out: Path, monkeypatch) -> tuple[dict[str, str], int, list[str]]:
    """An uninterrupted run's files, how many write points it passed, and their labels."""
    monkeypatch.setenv(KILL_ENV, str(10**9))  # count the points, never kill
    durable.reset_write_points()
    live(data, out)
    points, labels = durable._write_points, list(durable._write_labels)
    monkeypatch.delenv(KILL_ENV)
    return folder_bytes(out), points, labels


def spread(n: int, k: int, labels: list[str] | None = None) -> list[int]:
    """k write points spread over 1..n, always including the first few (setup and day 0), with ``labels``
    every point of the checkpoint (before, inside, written, renamed, removed) and the last day's manifest."""
    picks = set(range(1, min(n, 8) + 1)) | {1 + round(i * (n - 1) / (k - 1)) for i in range(k)}
    if labels is not None:
        picks |= {i for i, label in enumerate(labels, 1) if "checkpoint" in label}
        picks |= {i for i, label in enumerate(labels, 1) if i > n - 6 and "manifest.json" in label}
    return sorted(p for p in picks if 1 <= p <= n)


@pytest.mark.parametrize("data", [BASE, LLM], ids=["parametric", "llm"])
def test_sigkill_at_write_points_across_the_days_resumes_byte_identical(data, tmp_path, monkeypatch):
    expected, n_points, labels = reference_points(data, tmp_path / "whole", monkeypatch)
    assert n_points >= 40  # setup files, then per day: 4 points per file, the manifest and the checkpoint
    assert labels[-1] == "removed checkpoint.pkl" and labels[-2] == "renamed manifest.json"
    kills = resumes = 0
    for point in spread(n_points, 26, labels):
        out = tmp_path / f"k{point}"
        status = killed_at(data, out, point)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, f"point {point}: {status}"
        kills += 1
        if RunFolder(out).exists() and RunFolder(out).read_manifest().status == "complete":
            # killed after the last manifest: nothing to redo; a resume says so and removes what is left over
            assert folder_bytes(out) == expected
            with pytest.raises(ValueError, match="already complete"):
                live(data, out, resume=True)
        else:
            live(data, out, resume=True)
            resumes += 1
        assert folder_bytes(out) == expected, f"killed at write point {point} ({labels[point - 1]}) of {n_points}"
        assert not list(out.glob("checkpoint*")) and not list(out.rglob("*.tmp")), f"leftovers at {labels[point - 1]}"
    assert kills >= resumes >= 20
    print(f"sigkill: {kills} kills at {n_points} write points, {resumes} resumes, {kills - resumes} complete runs")
    assert {"written checkpoint.pkl", "renamed checkpoint.pkl", "removed checkpoint.pkl"} <= {
        labels[p - 1] for p in spread(n_points, 26, labels)}


def test_profiles_pickle_is_byte_identical_whatever_the_hash_seed(tmp_path):
    import subprocess
    import sys

    digests = set()
    for seed in ("1", "2"):
        code = ("import sys, yaml; from recoworld.runs.runner import PopulationRun; from recoworld.scenario import "
                "load_scenario; PopulationRun(load_scenario(yaml.safe_load(sys.argv[1])), output=sys.argv[2]).run()")
        import yaml

        data = deep_merge(BASE, {"env": {"horizon_days": 1}, "users": {"n_users": 10}})
        out = tmp_path / f"h{seed}"
        subprocess.run([sys.executable, "-c", code, yaml.safe_dump(data), str(out)], check=True,
                       env={**os.environ, "PYTHONHASHSEED": seed}, cwd=Path(__file__).parents[2])
        digests.add(hashlib.sha256((out / "profiles.pkl").read_bytes()).hexdigest())
    assert len(digests) == 1


# -- damaged folders ---------------------------------------------------------------------------------


def interrupted(data: dict, out: Path, monkeypatch, point: int) -> None:
    status = killed_at(data, out, point)
    assert os.WIFSIGNALED(status)


def a_killed_run(tmp_path, monkeypatch) -> tuple[Path, dict[str, str]]:
    expected, n_points = reference(BASE, tmp_path / "whole", monkeypatch)
    out = tmp_path / "damaged"
    interrupted(BASE, out, monkeypatch, n_points - 3)  # on the last day: days 0 and 1 written and checkpointed
    assert RunFolder(out).read_manifest().days_completed >= 2
    return out, expected


def one_line_refusal(data: dict, out: Path, name: str) -> None:
    with pytest.raises(ValueError) as err:
        live(data, out, resume=True)
    message = str(err.value)
    assert "\n" not in message and name in message, message


def test_a_deleted_or_truncated_day_file_is_refused_naming_it(tmp_path, monkeypatch):
    out, _ = a_killed_run(tmp_path, monkeypatch)
    day0 = out / "impressions" / "day=000.parquet"
    day0.write_bytes(day0.read_bytes()[:100])
    one_line_refusal(BASE, out, "impressions/day=000.parquet")
    day0.unlink()
    one_line_refusal(BASE, out, "impressions/day=000.parquet")


def test_a_damaged_checkpoint_falls_back_to_the_one_before_and_resumes_identical(tmp_path, monkeypatch):
    out, expected = a_killed_run(tmp_path, monkeypatch)
    ckpt = out / "checkpoint.pkl"
    data = bytearray(ckpt.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped bit in the arrays
    ckpt.write_bytes(bytes(data))
    assert (out / "checkpoint.prev.pkl").is_file()
    live(BASE, out, resume=True)
    assert folder_bytes(out) == expected


@pytest.mark.parametrize("damage", ["flip", "truncate", "garbage"])
def test_damaged_checkpoints_with_none_good_are_refused_in_one_line(damage, tmp_path, monkeypatch):
    out, _ = a_killed_run(tmp_path, monkeypatch)
    for path in (out / "checkpoint.pkl", out / "checkpoint.prev.pkl"):
        data = bytearray(path.read_bytes())
        if damage == "flip":
            data[-5] ^= 0x01
        elif damage == "truncate":
            data = data[: len(data) // 3]
        else:
            data = bytearray(b"\x80\x05garbage" * 10)
        path.write_bytes(bytes(data))
    one_line_refusal(BASE, out, "checkpoint.pkl")


def test_stray_files_do_not_break_a_resume(tmp_path, monkeypatch):
    out, expected = a_killed_run(tmp_path, monkeypatch)
    (out / "impressions" / "day=x.parquet").write_bytes(b"stray")
    (out / "sessions" / "notes.txt").write_text("mine")
    live(BASE, out, resume=True)
    assert folder_bytes(out) == expected
    assert (out / "impressions" / "day=x.parquet").read_bytes() == b"stray"


def test_the_same_folder_as_absolute_or_relative_out_is_the_same_run(tmp_path, monkeypatch):
    out, expected = a_killed_run(tmp_path, monkeypatch)
    monkeypatch.chdir(tmp_path)
    PopulationRun(load_scenario(BASE), output=Path("damaged")).run(resume=True)
    assert folder_bytes(out) == expected
