"""Seeded trajectories of RecoWorld-v0 and of its vector env are pinned by SHA-256 digests.

Recorded from the code before the speed work of issue 27; every speed change must keep them. Re-recorded
once since, when the user tastes and logged rewards stopped using BLAS (``recoworld.fixed_order``): a BLAS
product rounds by the CPU's kernel, so the old digests held only on the machine that recorded them. The
last test checks that two OpenBLAS kernels give the same digests. A digest
covers every observation, reward, terminated/truncated flag and the info fields a user reads (rewards
by component, items or catalog rows shown, per-item actions and watch seconds, compliance, session
end, day, session, session step, the instruction). Arrays enter by value (floats as float64, integers
as int64, flags as bytes), so a change of a buffer's dtype that keeps every value keeps the digest;
plain Python values enter as JSON (``repr`` of a float is exact). Random actions come from a seeded
generator and may repeat an item, so the duplicate-slot rule is covered too; episodes end by churn many
times within each trajectory, so resets are covered. A deliberate change of the world's behaviour
re-records the digests and says why in its commit.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import recoworld  # noqa: F401  (registers RecoWorld-v0)

CONFIG = {"catalog": {"synthetic": {"n_items": 2000}}}


def _update(h: "hashlib._Hash", value: Any) -> None:
    """Feed ``value`` into ``h`` by value: dicts in key order, arrays as canonical bytes, the rest as JSON."""
    if isinstance(value, dict):
        for key in sorted(value):
            h.update(f"<{key}>".encode())
            _update(h, value[key])
    elif isinstance(value, np.ndarray):
        if value.dtype.kind == "f":
            data = value.astype(np.float64)
        elif value.dtype.kind in "iu":
            data = value.astype(np.int64)
        elif value.dtype.kind == "b":
            data = value.astype(np.uint8)
        else:
            h.update(json.dumps(value.tolist(), default=str).encode())
            return
        h.update(f"{data.dtype}{data.shape}".encode())
        h.update(np.ascontiguousarray(data).tobytes())
    elif isinstance(value, (np.floating, np.integer, np.bool_)):
        h.update(json.dumps(value.item()).encode())
    else:
        h.update(json.dumps(value, default=str).encode())


def single_digest(action_mode: str, seed: int, n_steps: int) -> tuple[str, int]:
    """Digest of ``n_steps`` steps of one env from ``reset(seed)``, reset again whenever an episode ends,
    and the number of episodes that ended."""
    env = gym.make("RecoWorld-v0", config=CONFIG, action_mode=action_mode)
    width, k = int(env.action_space.nvec[0]), env.action_space.shape[0]
    rng = np.random.default_rng(seed + 1000)
    h = hashlib.sha256()
    obs, info = env.reset(seed=seed)
    _update(h, {"obs": obs, "info": info})
    ended = 0
    for _ in range(n_steps):
        obs, reward, terminated, truncated, info = env.step(rng.integers(0, width, k))
        _update(h, {"obs": obs, "reward": reward, "terminated": terminated, "truncated": truncated, "info": info})
        if terminated or truncated:
            ended += 1
            obs, info = env.reset()
            _update(h, {"obs": obs, "info": info})
    env.close()
    return h.hexdigest(), ended


def vector_digest(n: int, autoreset_mode: str, seed: int, n_steps: int) -> tuple[str, int]:
    """Digest of ``n_steps`` steps of a vector env of ``n`` users from ``reset(seed)`` (autoreset on), and
    the number of episodes that ended."""
    env = gym.make_vec(
        "RecoWorld-v0", num_envs=n, vectorization_mode="vector_entry_point", config=CONFIG, autoreset_mode=autoreset_mode
    )
    width, k = int(env.single_action_space.nvec[0]), env.single_action_space.shape[0]
    rng = np.random.default_rng(seed + 1000)
    h = hashlib.sha256()
    obs, infos = env.reset(seed=seed)
    _update(h, {"obs": obs, "infos": infos})
    ended = 0
    for _ in range(n_steps):
        obs, reward, terminated, truncated, infos = env.step(rng.integers(0, width, (n, k)))
        _update(h, {"obs": obs, "reward": reward, "terminated": terminated, "truncated": truncated, "infos": infos})
        ended += int((terminated | truncated).sum())
    env.close()
    return h.hexdigest(), ended


SINGLE = {
    ("slate", 7, 400): "e4791da224afcbf8afef4701c3ce1472b17b8397288727479353c16ddc8be1b8",
    ("topic", 8, 200): "359f13324041a4dd82c3dcb0f40b83e4fde3ab604fc3ce7e1b29c9588d99086f",
}
VECTOR = {
    (64, "next_step", 3, 80): "294cee1c0d6cd7bff30d842696986a54282ce83c8b4e716560210df2c59e87bd",
    (16, "same_step", 4, 60): "ba17b5b029343ad9ac0ad10ed698bead1b6b630f447c5d401f2731c019fd187d",
    # the parallel kernel (batches of 256 users and more)
    (512, "next_step", 5, 30): "c4f936ccc5014b3df468f4cac576406d7bd5b03fc5a970b72de7d41975b2d52a",
}


@pytest.mark.parametrize("case", sorted(SINGLE), ids=lambda c: f"{c[0]}-seed{c[1]}")
def test_single_env_trajectory_is_the_recorded_one(case) -> None:
    digest, ended = single_digest(*case)
    assert ended >= 3, "the trajectory must cross several resets"
    assert digest == SINGLE[case]


@pytest.mark.parametrize("case", sorted(VECTOR), ids=lambda c: f"n{c[0]}-{c[1]}")
def test_vector_env_trajectory_is_the_recorded_one(case) -> None:
    digest, ended = vector_digest(*case)
    assert ended >= case[0] // 4, "the trajectory must cross many resets"
    assert digest == VECTOR[case]


def _openblas_kernels() -> list[str]:
    """Two OpenBLAS kernels this CPU can run: an AVX-512 and an AVX2 one where AVX-512 is there, else AVX2 and AVX
    (a forced kernel the CPU cannot run would crash the child)."""
    flags = Path("/proc/cpuinfo").read_text().split() if Path("/proc/cpuinfo").is_file() else []
    return ["Haswell", "SkylakeX"] if "avx512f" in flags else ["Sandybridge", "Haswell"]


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="OpenBLAS's kernels named here are x86-64's")
def test_trajectories_do_not_depend_on_the_cpus_blas_kernel() -> None:
    """The same seed gives the same trajectory whichever kernel OpenBLAS picks for this CPU (forced here to two
    kernels of different vector widths): no product that feeds the world uses BLAS."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import test_trajectory_digests as t; "
        "print(t.single_digest('slate', 7, 400)[0]); print(t.vector_digest(64, 'next_step', 3, 80)[0])"
    )
    for kernel in _openblas_kernels():
        env = {**os.environ, "OPENBLAS_CORETYPE": kernel}
        out = subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent)], env=env, capture_output=True,
                             text=True, check=True, timeout=500)
        assert out.stdout.split() == [SINGLE[("slate", 7, 400)], VECTOR[(64, "next_step", 3, 80)]], kernel
