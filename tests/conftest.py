"""Shared pytest fixtures."""

import os
import sys

# --- CPU: one thread for numba, OpenMP/BLAS and torch (two threads fight each other for 2 cores) --
# Set before anything imports numba or numpy's BLAS; a value already in the environment wins.
# tests/world/test_parallel_kernel.py runs the threaded kernel with two threads in a child process.
for _name in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import pytest  # noqa: E402


def pytest_runtest_setup(item):
    """torch, once any test module has imported it, runs on one thread (before the test's fixtures)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != 1:
        torch.set_num_threads(1)


# --- LLM layer: a local OpenAI-compatible server (recoworld.testing.fake_server) -----------------


@pytest.fixture
def llm_server(monkeypatch):
    """A started FakeLLMServer on 127.0.0.1 (OS-chosen port), stopped after the test.

    Use it through litellm as model "openai/test-model" with api_base=llm_server.base_url;
    OPENAI_API_KEY is set to "sk-test" for the test only (no real key is ever needed).
    Set ``llm_server.responder``, ``.latency`` and ``.fault`` in the test.
    """
    from recoworld.testing.fake_server import FakeLLMServer

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    server = FakeLLMServer().start()
    try:
        yield server
    finally:
        server.stop()


# --- the command line -----------------------------------------------------------------------


@pytest.fixture
def runner():
    """A typer CliRunner that keeps stderr apart from stdout."""
    from typer.testing import CliRunner

    try:  # click < 8.2 mixes stderr into stdout unless told not to
        return CliRunner(mix_stderr=False)
    except TypeError:
        return CliRunner()
