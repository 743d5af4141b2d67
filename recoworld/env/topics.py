"""The in-topic ranker behind ``action_mode="topic"``: a topic per slot, filled with that topic's best candidate."""

from __future__ import annotations

from typing import Any

import numpy as np


def fill_topics(view: Any, popularity: np.ndarray, topics: np.ndarray) -> np.ndarray:
    """In-topic ranker of ``action_mode="topic"`` for a batch: slot j of user i takes the best unused
    candidate of topic ``topics[i, j]`` by engagement affinity (plus a little popularity, minus
    consumed items), or the best unused candidate overall when the topic has none left. A candidate
    is used once its item is in the slate (candidates are drawn with replacement).
    Returns (b, K) candidate positions."""
    score = view.affinity() + 0.1 * popularity[view.candidates] - 10.0 * view.consumed
    cand_topics = view.candidate_topics
    b = len(score)
    rows = np.arange(b)
    used = np.zeros(score.shape, dtype=bool)
    out = np.empty(topics.shape, dtype=np.int64)
    for j in range(topics.shape[1]):
        masked = np.where(used, -np.inf, score)
        in_topic = np.where(cand_topics == topics[:, j : j + 1], masked, -np.inf)
        best = in_topic.argmax(1)
        pick = np.where(np.isfinite(in_topic[rows, best]), best, masked.argmax(1))
        out[:, j] = pick
        used |= view.candidates == view.candidates[rows, pick][:, None]
    return out
