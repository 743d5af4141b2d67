"""Every LLM path on a real local model: LLM users, hybrid users, the LLM instruction parser, the
ToolRec LLM controller and the LERL LLM planner, each for a small but non-trivial run.

Per component it prints calls (requests that reached the model), the share of answers that were
schema-valid JSON before any fallback (no retries: ``max_retries=0``), the share of decisions that
fell back (invalid JSON, an answer that does not fit the slate or the topics, a prompt too long),
prompt and completion tokens per valid call, seconds per call and completion tokens per second
(end to end, prompt processing included). For LLM users it also compares the decisions with the
parametric model's on the same slates from the same state (a copy of the simulation), and for the
instruction parser its constraints with the platform's recorded intent, next to the rules parser.

    python benchmarks/llm_real.py [--model local/smollm2-135m] [--threads 1] [--users 4] [--steps 5]

Timings depend on the machine's load, printed before and after.
"""

from __future__ import annotations

import argparse
import copy
import os
import time
from collections import Counter
from dataclasses import dataclass, field

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402

import recoworld  # noqa: E402, F401
from recoworld.agents.baselines import GreedyRelevance  # noqa: E402
from recoworld.agents.instruction_following import InstructionFollowing, parse_oracle, parse_rules  # noqa: E402
from recoworld.agents.lerl import LLMPlanner  # noqa: E402
from recoworld.agents.toolrec import ToolRec  # noqa: E402
from recoworld.env.single import ALL, action_labels  # noqa: E402
from recoworld.llm.config import LLMConfig, build_language_model  # noqa: E402
from recoworld.llm.local_model import LocalStats, innermost  # noqa: E402
from recoworld.users.instructions import Instruction, InstructionIntent, instruction_text  # noqa: E402

WORLD = {
    "catalog": {"synthetic": {"n_items": 1500, "n_topics": 12}},
    "env": {"num_candidates": 30, "slate_size": 5, "max_slates_per_session": 6},
}
ENGAGED = {"click", "like", "share", "comment"}


@dataclass
class Row:
    """One component's figures."""

    name: str
    decisions: int = 0
    fallbacks: int = 0
    stats: LocalStats = field(default_factory=LocalStats)
    note: str = ""

    def add(self, stats: LocalStats) -> None:
        for name in LocalStats.__dataclass_fields__:
            value = getattr(stats, name)
            setattr(self.stats, name, max(self.stats.max_prompt_tokens, value) if name == "max_prompt_tokens"
                    else getattr(self.stats, name) + value)

    def cells(self) -> list[str]:
        s = self.stats
        per = lambda x, n: f"{x / n:.0f}" if n else "-"  # noqa: E731
        return [
            self.name, str(s.attempts), f"{s.valid / s.attempts:.0%}" if s.attempts else "-",
            f"{self.fallbacks}/{self.decisions} ({self.fallbacks / self.decisions:.0%})" if self.decisions else "-",
            per(s.prompt_tokens, s.valid), per(s.completion_tokens, s.valid),
            f"{s.seconds / s.attempts:.1f}" if s.attempts else "-",
            f"{s.completion_tokens / s.seconds:.1f}" if s.seconds else "-", self.note,
        ]


def llm_config(args: argparse.Namespace) -> dict:
    return {"model": args.model, "max_retries": 0, "local": {"n_threads": args.threads, "n_ctx": args.ctx}}


def llm_users(args: argparse.Namespace) -> Row:
    """LLM users for ``--steps`` slates each; every slate is also decided by a parametric twin."""
    row = Row("LLM users")
    agree = llm_engaged = par_engaged = compared = 0
    errors: Counter[str] = Counter()
    for u in range(args.users):
        env = gym.make("RecoWorld-v0", user_backend="llm", config={**WORLD, "llm": llm_config(args)})
        env.reset(seed=u)
        env.action_space.seed(u)
        world = env.unwrapped
        for _ in range(args.steps):
            action = env.action_space.sample()
            sim = world.sim
            twin = copy.deepcopy(sim)  # the same state and random stream; copied without catalog and backend
            twin.set_catalog(sim.catalog)
            twin.candidates = sim.candidates.copy()
            parametric = action_labels(twin.step(ALL, world.slate_from_action(action)[None, :]))
            _, _, terminated, truncated, info = env.step(action)
            row.decisions += 1
            if info["llm"]["fallback"]:
                row.fallbacks += 1
                errors[info["llm"]["error"]] += 1
            else:
                for mine, theirs in zip(info["actions"], parametric):
                    if "unseen" in (mine, theirs):
                        continue
                    compared += 1
                    agree += (mine in ENGAGED) == (theirs in ENGAGED)
                    llm_engaged += mine in ENGAGED
                    par_engaged += theirs in ENGAGED
            if terminated or truncated:
                env.reset()
        row.add(innermost(world.user_backend().model).stats)
    if compared:
        p, q = llm_engaged / compared, par_engaged / compared
        chance = p * q + (1 - p) * (1 - q)
        row.note = (f"engaged-or-not agreement with parametric {agree / compared:.0%} on {compared} items "
                    f"(chance at these rates {chance:.0%}); engaged LLM {p:.0%} vs parametric {q:.0%}")
    if errors:
        row.note += "; fallbacks: " + ", ".join(f"{name} {n}" for name, n in errors.most_common())
    return row


def hybrid_users(args: argparse.Namespace) -> Row:
    """Hybrid users until ``--hybrid-calls`` instructions were worded (parametric steps are fast)."""
    row = Row("hybrid users")
    env = gym.make("RecoWorld-v0", user_backend="hybrid", config={**WORLD, "llm": llm_config(args)})
    env.reset(seed=0)
    env.action_space.seed(0)
    steps = 0
    while row.decisions < args.hybrid_calls and steps < 5000:
        _, _, terminated, truncated, info = env.step(env.action_space.sample())
        steps += 1
        if info["llm"]["called"]:
            row.decisions += 1
            row.fallbacks += info["llm"]["fallback"]
        if terminated or truncated:
            env.reset()
    row.add(innermost(env.unwrapped.user_backend().model).stats)
    row.note = f"{row.decisions} instructions worded in {steps} user-steps"
    return row


def instructions(topics: list[str], n: int, rng: np.random.Generator) -> list[Instruction]:
    """Platform instructions with known intent, every tone and kind."""
    out = []
    for i in range(n):
        more, less = rng.choice(topics, size=2, replace=False).tolist()
        kind = i % 4
        intent = InstructionIntent(more_topic=more if kind in (0, 1) else None, less_topic=less if kind in (0, 2) else None,
                                   surprise=kind == 3)
        tone = ["casual", "polite", "blunt", "enthusiastic"][int(rng.integers(4))]
        out.append(Instruction(intent=intent, text=instruction_text(intent, tone, int(rng.integers(2)))))
    return out


def same(a, b) -> bool:
    return set(a.include_topics) == set(b.include_topics) and set(a.exclude_topics) == set(b.exclude_topics) \
        and a.more_novelty == b.more_novelty


def instruction_parser(args: argparse.Namespace) -> Row:
    """The LLM parser against the recorded intent, with the rules parser on the same instructions."""
    row = Row("instruction parser")
    env = gym.make("RecoWorld-v0", config=WORLD)
    topics = env.unwrapped.catalog.topic_names
    rec = InstructionFollowing(GreedyRelevance(), parser="llm", llm=llm_config(args))
    llm_right = rules_right = 0
    for instr in instructions(topics, args.instructions, np.random.default_rng(0)):
        truth = parse_oracle(instr)
        llm_right += same(rec.parse(instr, topics), truth)
        rules_right += same(parse_rules(instr.text, topics), truth)
    row.decisions, row.fallbacks = args.instructions, rec.fallbacks
    row.add(innermost(rec._model).stats)
    row.note = (f"constraints equal to the recorded intent: LLM path {llm_right}/{args.instructions} "
                f"(fallbacks parsed by the rules), rules parser {rules_right}/{args.instructions}")
    return row


def toolrec(args: argparse.Namespace) -> Row:
    """The ToolRec LLM controller builds ``--slates`` slates (up to 4 tool calls each)."""
    row = Row("ToolRec controller")
    env = gym.make("RecoWorld-v0", config=WORLD)
    env.reset(seed=0)
    rec = ToolRec(controller="llm", max_steps=4, seed=0, llm=llm_config(args))
    finished = 0
    for _ in range(args.slates):
        choice = rec.slate(env.unwrapped.user_view())
        traj = rec.last_trajectory
        steps = [c for c in traj if not c.auto]
        row.decisions += len(steps)
        row.fallbacks += sum(c.error is not None for c in steps)  # invalid, failed or impossible actions
        finished += any(c.action is not None and c.action.kind == "finish" for c in steps)
        _, _, terminated, truncated, _ = env.step(choice.positions[0])
        if terminated or truncated:
            env.reset()
    row.add(innermost(rec.language_model).stats)
    row.note = f"{finished}/{args.slates} slates ended with 'finish' (else at the step cap)"
    return row


def lerl_planner(args: argparse.Namespace) -> Row:
    """The LERL LLM planner picks categories for ``--plans`` views, with reflections in memory."""
    row = Row("LERL planner")
    planner = LLMPlanner(build_language_model(LLMConfig(**llm_config(args))), seed=0)
    for r in range(4):
        planner.reflect(f"Session {r}: the user watched cooking and travel, skipped finance.", float(r))
    env = gym.make("RecoWorld-v0", config=WORLD)
    for p in range(args.plans):
        env.reset(seed=p)
        for _ in range(p % 3):
            env.step(env.action_space.sample())
        planner.plan(env.unwrapped.user_view(), 0)
    row.decisions, row.fallbacks = planner.calls, planner.fallbacks  # invalid answers or fewer than 2 known topics
    row.add(innermost(planner.model).stats)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="local/smollm2-135m")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--ctx", type=int, default=4096)
    parser.add_argument("--users", type=int, default=4)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--hybrid-calls", type=int, default=6)
    parser.add_argument("--instructions", type=int, default=12)
    parser.add_argument("--slates", type=int, default=3)
    parser.add_argument("--plans", type=int, default=10)
    parser.add_argument("--only", nargs="*", default=None, help="run only these components (users hybrid parser toolrec lerl)")
    args = parser.parse_args()
    components = {"users": llm_users, "hybrid": hybrid_users, "parser": instruction_parser, "toolrec": toolrec, "lerl": lerl_planner}
    load = os.getloadavg()
    print(f"model {args.model}, n_threads {args.threads}, n_ctx {args.ctx}; load average before {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}"
          f" on {os.cpu_count()} cores", flush=True)
    head = ["component", "calls", "schema-valid", "fallbacks", "prompt tok/call", "completion tok/call", "s/call",
            "completion tok/s", "notes"]
    rows = []
    start = time.perf_counter()
    for key, run in components.items():
        if args.only and key not in args.only:
            continue
        t = time.perf_counter()
        rows.append(run(args))
        print(f"  {rows[-1].name}: {time.perf_counter() - t:.0f} s, largest prompt {rows[-1].stats.max_prompt_tokens} tokens",
              flush=True)
    load = os.getloadavg()
    print(f"\ntotal {time.perf_counter() - start:.0f} s; load average after {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}\n")
    print("| " + " | ".join(head) + " |")
    print("|" + " --- |" * len(head))
    for row in rows:
        print("| " + " | ".join(row.cells()) + " |")


if __name__ == "__main__":
    main()
