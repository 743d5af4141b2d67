"""Uncertainty-based distillation: keep challenging yet denoised samples, every kind of decision represented.

The student's choice distribution over an exposure list comes either from its answer
log-likelihoods (:class:`ChoiceScorer`, one forward pass) or from K sampled answers of any
``LanguageModel`` (:func:`sampled_choice_probs`). The rule (after Mirroring Users,
arXiv 2508.18142, and UserMirrorer's filtering, MIT: entropy of the choice distribution as
uncertainty, proportional allocation over behaviour groups):

1. **denoise**: drop samples whose real choice the teacher finds implausible — the parametric
   model's probability of it is below ``noise_floor / N`` (a choice no utility term explains);
2. **stratify**: a sample's stratum is its decision's driver (the utility term that set the chosen
   item apart: taste, satiation, novelty, quality, popularity, impulse); the kept count
   ``round(keep_share * n)`` is split across strata in proportion to their size (largest
   remainders), at least one per stratum;
3. **challenge**: within each stratum keep the samples the student is most uncertain about
   (highest entropy of its choice distribution), ties broken by lower probability of the real choice.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from recoworld.llm.base import LanguageModel, LLMError, Message
from recoworld.users.align.prompts import ChoiceAnswer, LETTERS
from recoworld.users.align.samples import ChoiceSample
from recoworld.users.align.traces import DecisionTrace


@runtime_checkable
class ChoiceScorer(Protocol):
    """A student that returns its probability of each of the first ``n`` letters as the answer."""

    def choice_probs(self, messages: list[Message], n: int) -> np.ndarray:
        """(n,) probabilities of the letters A, B, ... as the answer to ``messages``, summing to 1."""
        ...


class DistillConfig(BaseModel):
    """The filtering rule."""

    model_config = ConfigDict(extra="forbid")

    keep_share: float = Field(0.5, gt=0, le=1, description="Share of the samples kept.")
    noise_floor: float = Field(0.5, ge=0, description="Teacher probability below noise_floor / N marks a sample as noise.")


def entropy_bits(p: np.ndarray) -> float:
    p = np.asarray(p, dtype=np.float64)
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def sampled_choice_probs(model: LanguageModel, messages: list[Message], n: int, k: int = 5, temperature: float = 1.0,
                         seed: int = 0) -> np.ndarray:
    """Choice frequencies over ``k`` sampled answers (failed or out-of-list answers dropped; uniform if none is valid)."""
    counts = np.zeros(n)
    for j in range(k):
        try:
            choice = model.generate(messages, ChoiceAnswer, seed=seed + j, temperature=temperature).value.choice
        except LLMError:
            continue
        idx = LETTERS.find(choice)
        if 0 <= idx < n:
            counts[idx] += 1
    return counts / counts.sum() if counts.sum() else np.full(n, 1.0 / n)


def student_table(samples: list[ChoiceSample], traces: list[DecisionTrace], probs: list[np.ndarray]) -> pd.DataFrame:
    """One row per sample: stratum, student entropy, its probability of the real choice, whether its top pick
    is right, its most probable wrong pick (the rejected answer), and the teacher's probability."""
    if not (len(samples) == len(traces) == len(probs)):
        raise ValueError(f"student_table: {len(samples)} samples, {len(traces)} traces and {len(probs)} distributions")
    rows = []
    for s, t, p in zip(samples, traces, probs):
        p = np.asarray(p, dtype=np.float64)
        wrong = p.copy()
        wrong[s.chosen] = -1.0
        rows.append({"sample_id": s.sample_id, "stratum": t.driver, "n": len(s.candidates), "entropy": entropy_bits(p),
                     "p_true": float(p[s.chosen]), "correct": bool(np.argmax(p) == s.chosen),
                     "rejected": int(np.argmax(wrong)), "teacher_p": t.teacher_p})
    return pd.DataFrame(rows)


def allocate(sizes: pd.Series, total: int) -> pd.Series:
    """Integer quotas proportional to ``sizes`` summing to ``total`` (largest remainders), each >= 1 when possible."""
    if total <= 0 or sizes.sum() == 0:
        return sizes * 0
    raw = sizes / sizes.sum() * total
    quota = np.floor(raw).astype(int)
    if total >= len(sizes):
        quota = quota.clip(lower=1)
    while quota.sum() > total:  # the minimum of one pushed us over: take from the largest quotas
        quota[quota.idxmax()] -= 1
    order = (raw - np.floor(raw)).sort_values(ascending=False).index
    for key in order:
        if quota.sum() >= total:
            break
        if quota[key] < sizes[key]:
            quota[key] += 1
    return quota.clip(upper=sizes)


def select(table: pd.DataFrame, config: DistillConfig | None = None) -> pd.DataFrame:
    """The table with ``noisy`` and ``keep`` columns set by the rule above."""
    config = config or DistillConfig()
    out = table.copy()
    out["noisy"] = out["teacher_p"] < config.noise_floor / out["n"]
    clean = out[~out["noisy"]]
    total = min(int(round(config.keep_share * len(out))), len(clean))
    quota = allocate(clean.groupby("stratum").size(), total)
    keep = []
    for stratum, group in clean.groupby("stratum"):
        ranked = group.sort_values(["entropy", "p_true"], ascending=[False, True], kind="stable")
        keep.extend(ranked.index[: int(quota[stratum])])
    out["keep"] = out.index.isin(keep)
    return out
