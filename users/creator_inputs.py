"""What creators start from and see: their config (a scenario's ``creators``) and the platform's
feedback on their own items (:func:`creator_feedback`; information asymmetry lives here)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

_DEFAULT_REFERENCE = {"ctr": 0.2, "clicks": 2.0}
_DEFAULT_SCALE = {"ctr": 0.1, "clicks": 2.0}


class CreatorsConfig(BaseModel):
    """Creators who publish during a run (CreAgent); ``count: 0`` keeps the catalog static."""

    model_config = ConfigDict(extra="forbid")

    count: int = Field(0, ge=0, description="Creators who publish during a run; 0 = a static catalog.")
    niches: tuple[int, int] = Field((1, 2), description="Inclusive range of niche topics (high skill) per creator.")
    backend: Literal["parametric", "llm"] = Field("parametric", description="Who decides and writes items: rules or a language model.")
    items_per_day: float = Field(0.3, gt=0, description="Mean creation frequency (items per day) over creators.")
    frequency_shape: float = Field(2.0, gt=0, description="Gamma shape of creators' frequencies (mean items_per_day); smaller = more unequal.")
    feedback: Literal["ctr", "clicks"] = Field("ctr", description="What beliefs and recent feedback are measured in: CTR of own items, or clicks per own item.")
    full_information: bool = Field(False, description="Ablation: creators also see the platform-wide CTR (or clicks per item) of every topic.")
    quit_after: int = Field(5, ge=1, description="Consecutive evaluated items without a click after which a creator quits.")
    belief_rate: float = Field(0.3, gt=0, le=1, description="EMA rate of per-topic beliefs.")
    exploit_bias: float = Field(0.5, description="Logit of p_exploit at the reference feedback and before any feedback (0.5: p = 0.62).")
    exploit_slope: float = Field(1.5, description="How strongly p_exploit rises with recent feedback (logit per feedback_scale).")
    feedback_reference: float | None = Field(None, ge=0, description="Feedback level that counts as 'typical'; default 0.2 CTR or 2 clicks per item.")
    feedback_scale: float | None = Field(None, gt=0, description="Feedback units per logit step; default 0.1 CTR or 2 clicks per item.")
    recent_items: int = Field(5, ge=1, description="Most recent evaluated own items that make up 'recent feedback'.")
    niche_skill: float = Field(0.75, gt=0, lt=1, description="Mean skill in niche topics (Beta distributed).")
    other_skill: float = Field(0.3, gt=0, lt=1, description="Mean skill outside the niches (Beta distributed).")
    skill_concentration: float = Field(10.0, gt=0, description="Beta concentration (a + b) of skills.")
    quality_noise: float = Field(0.1, ge=0, description="Std of the Gaussian noise on quality = skill[topic] + noise.")
    settle_days: int = Field(1, ge=1, description="Feedback reports listing an item after which it counts as evaluated even without impressions.")

    @model_validator(mode="after")
    def _check(self) -> CreatorsConfig:
        lo, hi = self.niches
        if not 1 <= lo <= hi:
            raise ValueError("niches must be a range [min, max] with 1 <= min <= max")
        return self

    @property
    def reference(self) -> float:
        """The feedback value creators treat as neutral (the setting, else the feedback kind's default)."""
        return self.feedback_reference if self.feedback_reference is not None else _DEFAULT_REFERENCE[self.feedback]

    @property
    def scale(self) -> float:
        """The feedback difference that moves a creator's belief by one unit (the setting, else the kind's default)."""
        return self.feedback_scale if self.feedback_scale is not None else _DEFAULT_SCALE[self.feedback]


@dataclass(frozen=True, eq=False)
class CreatorFeedback:
    """What the platform shows one creator: their own items' cumulative impressions and clicks to date.

    ``topic_ctr`` / ``topic_clicks`` (per-topic platform CTR and clicks per item, NaN where unknown)
    are set only with full information, else None.
    """

    creator: str
    item_ids: np.ndarray
    impressions: np.ndarray
    clicks: np.ndarray
    topic_ctr: np.ndarray | None = None
    topic_clicks: np.ndarray | None = None


def creator_feedback(
    creator_names: Sequence[str],
    item_creators: np.ndarray,
    item_ids: np.ndarray,
    item_topics: np.ndarray,
    impressions: np.ndarray,
    clicks: np.ndarray,
    n_topics: int,
    full_information: bool = False,
) -> list[CreatorFeedback]:
    """One :class:`CreatorFeedback` per name in ``creator_names`` (in order), from platform-wide item arrays.

    ``item_creators`` are creator names, or integer codes into ``creator_names``; items of other
    creators only enter the per-topic platform figures (full information).
    """
    names = list(creator_names)
    owners = np.asarray(item_creators)
    if owners.dtype.kind in "iu":
        codes = owners.astype(np.int64)
    else:
        codes = pd.Categorical(owners.astype(str), categories=names).codes.astype(np.int64)
    imp = np.asarray(impressions, dtype=np.float64)
    clk = np.asarray(clicks, dtype=np.float64)
    ids = np.asarray(item_ids, dtype=object)
    topic_ctr = topic_clicks = None
    if full_information:
        topics = np.asarray(item_topics, dtype=np.int64)
        imp_t = np.bincount(topics, imp, n_topics)
        clk_t = np.bincount(topics, clk, n_topics)
        n_t = np.bincount(topics, minlength=n_topics)
        with np.errstate(invalid="ignore", divide="ignore"):
            topic_ctr = np.where(imp_t > 0, clk_t / imp_t, np.nan)
            topic_clicks = np.where(n_t > 0, clk_t / np.maximum(n_t, 1), np.nan)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(names) + 1))
    out = []
    for c, name in enumerate(names):
        rows = order[bounds[c] : bounds[c + 1]]
        out.append(CreatorFeedback(name, ids[rows], imp[rows], clk[rows], topic_ctr, topic_clicks))
    return out
