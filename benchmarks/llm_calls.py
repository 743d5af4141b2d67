"""LLM users at a researcher's budget: calls per user-step, cache replay, concurrency, predicted cost.

Runs LLM and hybrid users of the quickstart scenario through the real litellm client against a
local OpenAI-compatible server (recoworld.testing.fake_server; no key, no network), then:
- LLM calls per user-step for llm users (target <= 1) and hybrid users (target <= 0.1);
- calls made by a second run replaying the answer cache (target 0);
- achieved concurrency at 64 requests in flight against a server with a fixed latency:
  throughput / (in-flight / latency) (target >= 0.8);
- the cost per 1,000 user-sessions the accounting predicts for openai/gpt-4o-mini, with the
  prompts and answers of the run counted by litellm's tokenizer and priced from litellm's
  (local) cost map.

    python benchmarks/llm_calls.py [--users 40] [--days 7]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("OPENAI_API_KEY", "sk-local-benchmark")  # the local server ignores it

from recoworld.agents import make_recommender  # noqa: E402
from recoworld.testing.fake_server import FakeLLMServer  # noqa: E402
from recoworld.testing.responders import plausible_answer  # noqa: E402
from recoworld.llm.litellm_model import LiteLLMModel  # noqa: E402
from recoworld.llm.wrappers import generate_many  # noqa: E402
from recoworld.runs.runner import run_population  # noqa: E402
from recoworld.scenario import load_scenario  # noqa: E402
from pydantic import BaseModel  # noqa: E402


class Words(BaseModel):
    """The fake server's default answer ({"text": ..., "score": ...}), extra fields ignored."""

    text: str

PRICED_MODEL = "gpt-4o-mini"


def run(backend: str, users: int, days: int, server: FakeLLMServer, cache: Path) -> tuple[float, float, int, object]:
    scenario = load_scenario(
        "quickstart",
        {
            "users": {"backend": backend},
            "env": {"horizon_days": days},
            "llm": {"model": f"openai/{PRICED_MODEL}", "api_base": server.base_url, "cache_path": str(cache), "max_retries": 1},
        },
    )
    before = server.count
    result = run_population(scenario, make_recommender("greedy"), n_users=users, seed=0)
    steps = float(result.totals["slates"].sum())
    sessions = float(result.totals["days_active"].sum())
    return steps, sessions, server.count - before, result


def predicted_cost(server: FakeLLMServer, first: int, last: int) -> tuple[int, int, float]:
    """Tokens of the recorded requests/answers by litellm's tokenizer, priced for PRICED_MODEL."""
    import litellm

    prompt = completion = 0
    for body, answer in zip(server.requests[first:last], server.responses[first:last]):
        prompt += litellm.token_counter(model=PRICED_MODEL, messages=body["messages"])
        content = answer["choices"][0]["message"]["content"] if isinstance(answer, dict) else str(answer)
        completion += litellm.token_counter(model=PRICED_MODEL, text=content)
    p_cost, c_cost = litellm.cost_per_token(model=PRICED_MODEL, prompt_tokens=prompt, completion_tokens=completion)
    return prompt, completion, p_cost + c_cost


def concurrency(in_flight: int, latency: float, n: int) -> float:
    """Throughput / (in-flight / latency) against a server in its own process (no shared interpreter)."""
    server = subprocess.Popen(
        [sys.executable, "-m", "recoworld.testing.fake_server", "--latency", str(latency)], stdout=subprocess.PIPE, text=True
    )
    try:
        base_url = server.stdout.readline().strip()
        model = LiteLLMModel("openai/test-model", api_base=base_url, timeout=60)
        messages = [{"role": "user", "content": "say ok"}]
        asyncio.run(generate_many(model, [(messages, Words, None)] * in_flight, max_in_flight=in_flight))  # warm up
        start = time.perf_counter()
        results = asyncio.run(generate_many(model, [(messages, Words, i) for i in range(n)], max_in_flight=in_flight))
        throughput = n / (time.perf_counter() - start)
        failed = sum(isinstance(r, Exception) for r in results)
        if failed:
            raise RuntimeError(f"{failed} of {n} requests failed")
        return throughput / (in_flight / latency)
    finally:
        server.terminate()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=40)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--latency", type=float, nargs="+", default=[0.25, 1.0, 2.0])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, FakeLLMServer(responder=plausible_answer) as server:
        cache = Path(tmp) / "answers.sqlite"
        steps, sessions, calls, result = run("llm", args.users, args.days, server, cache)
        prompt, completion, cost = predicted_cost(server, 0, calls)
        steps2, _, replay_calls, _ = run("llm", args.users, args.days, server, cache)
        h_steps, _, h_calls, _ = run("hybrid", args.users, args.days, server, Path(tmp) / "hybrid.sqlite")
    ratios = {lat: concurrency(args.in_flight, lat, n=args.in_flight * 6) for lat in args.latency}
    print(f"llm users:    {calls} calls / {steps:.0f} user-steps = {calls / steps:.3f} calls per user-step (target <= 1)")
    print(f"              fallbacks {result.totals['llm_fallbacks'].sum():.0f}; accounting: {result.llm_usage.calls} calls, "
          f"{result.llm_usage.total_tokens} tokens (server-reported)")
    print(f"hybrid users: {h_calls} calls / {h_steps:.0f} user-steps = {h_calls / h_steps:.3f} calls per user-step (target <= 0.1)")
    print(f"replay:       {replay_calls} calls on the second run from the cache ({steps2:.0f} user-steps, target 0)")
    for lat, ratio in ratios.items():
        print(f"concurrency:  {args.in_flight} in flight, server latency {lat:.2f} s: {ratio:.2f} of ideal throughput (target >= 0.8)")
    per_session = cost / max(sessions, 1)
    print(f"cost:         {PRICED_MODEL}: {prompt / calls:.0f} prompt + {completion / calls:.0f} completion tokens per call, "
          f"{calls / sessions:.2f} calls per session -> ${per_session * 1000:.2f} per 1,000 user-sessions")


if __name__ == "__main__":
    main()
