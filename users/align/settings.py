"""Fine-tuning settings and logs (no torch needed to read or write them)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]


class FinetuneConfig(BaseModel):
    """LoRA and optimiser settings (defaults sized for a 135M model on one CPU core)."""

    model_config = ConfigDict(extra="forbid")

    lora_r: int = Field(8, ge=1)
    lora_alpha: int = Field(16, ge=1)
    lora_dropout: float = Field(0.05, ge=0, lt=1)
    lora_targets: list[str] = Field(default_factory=lambda: list(LORA_TARGETS),
                                    description="Module names that get adapters (e.g. add gate_proj, up_proj, down_proj).")
    lora_top_layers: int | None = Field(None, ge=1, description="Adapt only the top k layers (backward stops there: faster).")
    objective: Literal["trace", "choice"] = Field(
        "trace", description="trace: the answer's first max_answer_tokens tokens (the choice letter, then the trace); "
                             "choice: cross-entropy of the real choice over the listed letters only.")
    sft_steps: int = Field(100, ge=0, description="Optimiser steps of SFT (one example per step, cycling).")
    sft_lr: float = Field(5e-4, gt=0)
    sft_warmup: float = Field(0.1, ge=0, lt=1, description="Choice objective: share of the steps the learning rate "
                                                               "warms up over; it then decays linearly to zero.")
    grad_accum: int = Field(1, ge=1, description="Choice objective: examples per optimiser step (gradient accumulation).")
    dpo_steps: int = Field(0, ge=0, description="Optimiser steps of DPO after SFT (0: no DPO).")
    dpo_lr: float = Field(5e-5, gt=0)
    dpo_beta: float = Field(0.1, gt=0)
    max_answer_tokens: int = Field(48, ge=4, description="Answer tokens trained on (the choice comes first).")
    seed: int = 0


class TrainLog(BaseModel):
    """What a fine-tune did."""

    model_config = ConfigDict(extra="forbid")

    stage: str
    steps: int
    examples: int
    seconds: float
    first_loss: float
    last_loss: float = Field(description="Mean loss of the last tenth of the steps.")
