"""``recoworld train-agent``: tune a language-model recommender by GRPO in the world (the ``agent`` extra).

Registered on the main app by :func:`register` (this module imports nothing of ``recoworld.cli``)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import typer


def register(app: typer.Typer, fail: Callable[[str], typer.Exit]) -> None:
    """Add the agent commands to ``app``; ``fail`` prints the one-line error."""

    @app.command("train-agent")
    def train_agent(
        out: Path = typer.Option(Path("agent-out"), "--out", "-o", help="Folder for the tuned agent (agent.json + adapter)."),
        scenario: str = typer.Option("instruction_following", "--scenario", help="Bundled scenario the agent learns in."),
        model: Optional[str] = typer.Option(None, "--model", help="transformers model path (default: SmolLM2-135M-Instruct)."),
        prompts: int = typer.Option(64, "--prompts", help="Decision states (training users who speak)."),
        updates: int = typer.Option(16, "--updates", help="GRPO optimiser steps."),
        group: int = typer.Option(8, "--group", "-g", help="Plans per decision state (the group baseline)."),
        per_update: int = typer.Option(2, "--prompts-per-update", help="Decision states per update."),
        lr: float = typer.Option(1e-3, "--lr", help="Learning rate (LoRA)."),
        sft: int = typer.Option(0, "--sft", help="SFT warm start on this many rule-parser demonstrations (0: none)."),
        threads: int = typer.Option(1, "--threads", help="torch threads."),
        seed: int = typer.Option(0, "--seed", "-s"),
    ) -> None:
        """Tune a language-model recommender with TRL's GRPO against the simulated users (LoRA; CPU or GPU)."""
        from pydantic import ValidationError

        from recoworld.progress import reporting

        try:
            from recoworld.agents.language.training import AgentTrainConfig, train_agent as run
        except ImportError as exc:
            raise fail(f"train-agent: needs the agent extra (pip install 'recoworld[agent]'): {exc}")
        try:
            config = AgentTrainConfig(scenario=scenario, model=model, prompts=prompts, updates=updates, group=group,
                                      prompts_per_update=per_update, learning_rate=lr, sft_examples=sft, threads=threads,
                                      seed=seed)
            with reporting():
                summary = run(out, config)
        except ValidationError as exc:
            err = exc.errors()[0]
            raise fail(f"train-agent: {'.'.join(map(str, err['loc']))}: {err['msg']}")
        except ImportError as exc:
            raise fail(f"train-agent: needs the agent extra (pip install 'recoworld[agent]'): {exc}")
        except (ValueError, OSError) as exc:
            raise fail(str(exc).splitlines()[0])
        curve = summary["curve"]
        if curve:
            typer.echo(f"mean rollout return per update: {curve[0]:.2f} -> {curve[-1]:.2f} over {len(curve)} updates")
        typer.echo(f"{summary['decision_states']} decision states, {summary['seconds']:.0f} s; agent written to {out}")
