"""Fine-tuning settings and logs (no torch needed to read or write them)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]


class HeadConfig(BaseModel):
    """Which layers and L2 strengths the head's tuning tries."""

    model_config = ConfigDict(extra="forbid")

    layers: list[int] | None = Field(None, description="Layers whose states are tried (None: at 1/2, 2/3 and 5/6 of the depth).")
    l2: list[float] = Field(default_factory=lambda: [1e-2, 3e-2, 1e-1, 3e-1], description="L2 strengths tried.")
    validation: float = Field(0.2, gt=0, lt=1, description="Share of the training lists (the last ones) the tuning scores on.")


class FinetuneConfig(BaseModel):
    """LoRA and optimiser settings (defaults sized for a 135M model on one CPU core)."""

    model_config = ConfigDict(extra="forbid")

    lora_r: int = Field(8, ge=1)
    lora_alpha: int = Field(16, ge=1)
    lora_dropout: float = Field(0.05, ge=0, lt=1)
    lora_targets: list[str] = Field(default_factory=lambda: list(LORA_TARGETS),
                                    description="Module names that get adapters (e.g. add gate_proj, up_proj, down_proj).")
    lora_top_layers: int | None = Field(None, ge=1, description="Adapt only the top k layers (backward stops there: faster).")
    objective: Literal["trace", "choice", "head"] = Field(
        "trace", description="trace: the answer's first max_answer_tokens tokens (the choice letter, then the trace); "
                             "choice: cross-entropy of the real choice over the listed letters only; "
                             "head: a linear choice head on the candidates' hidden states (no LoRA; see choice_head).")
    head: HeadConfig = Field(default_factory=HeadConfig, description="The choice head's tuning (objective head).")
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

    @model_validator(mode="after")
    def _dpo_needs_lora(self) -> "FinetuneConfig":
        if self.objective == "head" and self.dpo_steps:
            raise ValueError("dpo_steps: DPO tunes LoRA adapters; the head objective has none (set dpo_steps 0)")
        return self


class TrainLog(BaseModel):
    """What a fine-tune did."""

    model_config = ConfigDict(extra="forbid")

    stage: str
    steps: int
    examples: int
    seconds: float
    first_loss: float
    last_loss: float = Field(description="Mean loss of the last tenth of the steps.")
