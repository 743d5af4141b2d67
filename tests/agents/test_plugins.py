"""Recommenders from the user's own code: ``package.module:Class`` names and the ``recoworld.recommenders``
entry-point group, validated like built-in names, usable from ``recoworld run``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from recoworld.agents import registry
from recoworld.scenario import ScenarioError, load_scenario

PACKAGE = {
    "pyproject.toml": """
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "tiny-recs"
        version = "0.1"

        [project.entry-points."recoworld.recommenders"]
        tiny-fresh = "tiny_recs.policies:FreshFirst"

        [tool.setuptools]
        packages = ["tiny_recs"]
    """,
    "tiny_recs/__init__.py": "",
    "tiny_recs/policies.py": '''
        """A recommender outside RecoWorld: the newest candidates first, mixed with greedy relevance."""
        import numpy as np

        from recoworld.agents.baselines import BaseRecommender, GreedyRelevance


        class FreshFirst(BaseRecommender):
            name = "fresh_first"

            def __init__(self, freshness: float = 1.0, seed: int = 0) -> None:
                super().__init__(seed)
                self.freshness = freshness
                self.relevance = GreedyRelevance(seed=seed)

            def scores(self, view):
                return self.relevance.scores(view) - self.freshness * np.argsort(np.argsort(-view.candidates, axis=1), axis=1)
    ''',
}


def _write_package(root: Path) -> Path:
    for rel, text in PACKAGE.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    return root


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The tiny package installed into a folder of its own (no network: the venv's setuptools builds it)."""
    src = _write_package(tmp_path_factory.mktemp("tiny-recs-src"))
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(target), str(src)], check=True, capture_output=True, timeout=300)
    assert list(target.glob("tiny_recs-0.1.dist-info"))
    return target


def _env(site: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}


def test_recoworld_run_serves_a_recommender_from_an_installed_package(installed, tmp_path) -> None:
    scenario = tmp_path / "mine.yaml"
    scenario.write_text(textwrap.dedent("""
        name: mine
        catalog: {source: synthetic, synthetic: {n_items: 500, n_topics: 8}}
        users: {n_users: 30}
        env: {horizon_days: 2}
        recommenders:
          - {name: greedy}
          - {name: tiny-fresh, params: {freshness: 0.5}}
          - {name: "tiny_recs.policies:FreshFirst", arm: by-path}
    """))
    out = tmp_path / "run"
    cli = Path(sys.executable).with_name("recoworld")
    proc = subprocess.run([str(cli), "run", str(scenario), "--out", str(out), "--no-report", "--json", str(tmp_path / "s.json")],
                          env=_env(installed), capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summaries = json.loads((tmp_path / "s.json").read_text())
    assert set(summaries) == {"greedy", "tiny-fresh", "by-path"}
    assert summaries["tiny-fresh"]["ctr"] != summaries["greedy"]["ctr"]  # another policy served those users


def test_bad_parameters_of_an_installed_recommender_fail_in_one_line(installed, tmp_path) -> None:
    cli = Path(sys.executable).with_name("recoworld")
    proc = subprocess.run([str(cli), "run", "quickstart", "--users", "5", "--days", "1", "--out", str(tmp_path / "r"),
                           "--set", "recommenders=[{name: tiny-fresh, params: {freshnes: 2}}]"],
                          env=_env(installed), capture_output=True, text=True, timeout=300, cwd=tmp_path)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "recommenders.0.params.freshnes: unknown parameter (recommender 'tiny-fresh')" in lines[0]


def test_a_module_path_is_validated_like_a_built_in_name() -> None:
    name = "recoworld.agents.baselines:MMRDiversity"
    scenario = load_scenario("quickstart", {"recommenders": [{"name": name, "params": {"lambda_": 0.2}}]})
    rec = registry.make_recommender(scenario.recommenders[0].name, scenario.recommenders[0].params)
    assert type(rec).__name__ == "MMRDiversity" and rec.lambda_ == 0.2
    with pytest.raises(ScenarioError, match=r"recommenders\.0\.params\.lambda: unknown parameter"):
        load_scenario("quickstart", {"recommenders": [{"name": name, "params": {"lambda": 0.2}}]})


@pytest.mark.parametrize("name, message", [
    ("no_such_pkg.recs:Mine", "recommenders.0.name: recommender 'no_such_pkg.recs:Mine': no module named 'no_such_pkg'"),
    ("recoworld.agents.baselines:Nope", "'recoworld.agents.baselines' has no attribute 'Nope'"),
    ("recoworld.agents.baselines:BIG", "'recoworld.agents.baselines:BIG' is not a class or function"),
    ("recoworld.agents.baselines:top_k", "its factory must accept seed="),
    ("my recs:X", "expected package.module:Class"),
    ("grredy", "recommenders.0.name: unknown recommender 'grredy' (known: "),
])
def test_a_bad_name_is_one_line(name: str, message: str) -> None:
    with pytest.raises(ScenarioError) as err:
        load_scenario("quickstart", {"recommenders": [{"name": name}]})
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_module_that_raises_on_import_is_one_line(tmp_path, monkeypatch) -> None:
    (tmp_path / "broken_recs.py").write_text("raise RuntimeError('half-written module')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ScenarioError, match="importing 'broken_recs' failed: RuntimeError: half-written module"):
        load_scenario("quickstart", {"recommenders": [{"name": "broken_recs:Mine"}]})


def test_the_entry_point_group_is_read_once_and_imports_nothing(installed) -> None:
    code = ("import sys; from recoworld.agents.registry import known_recommenders; names = known_recommenders(); "
            "print('tiny-fresh' in names, 'tiny_recs' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], env=_env(installed), capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False"]


def test_a_name_two_packages_declare_is_refused_when_used(monkeypatch) -> None:
    monkeypatch.setattr(registry, "_installed", {"twin": ["a.recs:R (from a)", "b.recs:R (from b)"]})
    with pytest.raises(ValueError, match=r"recommender 'twin': declared by several installed packages \(a\.recs:R \(from a\); b"):
        registry.make_recommender("twin")
