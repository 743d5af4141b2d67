"""What the platform can see about each user: engagement history, session stats, instructions told."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recoworld.catalog import Catalog
from recoworld.users.parametric import Index, SlateResponse, topic_sums


@dataclass
class PlatformState:
    """Observed, per-user arrays (B users). Nothing here comes from the hidden mindset."""

    est_taste: np.ndarray  # (B, D) engagement-weighted sum of clicked item embeddings
    click_topics: np.ndarray  # (B, T) decayed clicks per topic
    shown_topics: np.ndarray  # (B, T) decayed items shown per topic
    hist_items: np.ndarray  # (B, H) last H items reviewed (ring buffer), -1 = empty
    hist_engagement: np.ndarray  # (B, H) 0 skip, else watch fraction (+1 if liked)
    hist_next: np.ndarray  # (B,) ring position
    session_reviewed: np.ndarray  # (B,) items reviewed this session
    session_clicks: np.ndarray
    session_skip_streak: np.ndarray  # consecutive skips seen by the platform
    last_ctr: np.ndarray  # CTR of the previous session
    last_length: np.ndarray  # slates in the previous session
    days_since_last: np.ndarray  # gap before the current session (0 for the first)
    sessions: np.ndarray  # sessions started so far

    @classmethod
    def empty(cls, b: int, catalog: Catalog, history: int = 20) -> "PlatformState":
        t_count, dim = catalog.n_topics, catalog.embeddings.shape[1]
        zf = np.zeros(b, dtype=np.float32)
        return cls(
            est_taste=np.zeros((b, dim), dtype=np.float32),
            click_topics=np.zeros((b, t_count), dtype=np.float32),
            shown_topics=np.zeros((b, t_count), dtype=np.float32),
            hist_items=np.full((b, history), -1, dtype=np.int64),
            hist_engagement=np.zeros((b, history), dtype=np.float32),
            hist_next=np.zeros(b, dtype=np.int64),
            session_reviewed=zf.copy(),
            session_clicks=zf.copy(),
            session_skip_streak=zf.copy(),
            last_ctr=zf.copy(),
            last_length=zf.copy(),
            days_since_last=zf.copy(),
            sessions=np.ones(b, dtype=np.int64),
        )

    def record(self, idx: Index, slates: np.ndarray, resp: SlateResponse, catalog: Catalog, decay: float = 0.95) -> None:
        """Log what was shown and what the user did with it."""
        topics = catalog.topic[slates]
        t_count = catalog.n_topics
        engagement = resp.watch_frac + resp.like.astype(np.float32)
        self.est_taste[idx] = self.est_taste[idx] * decay + np.einsum("bk,bkd->bd", engagement, catalog.embeddings[slates])
        self.click_topics[idx] = self.click_topics[idx] * decay + topic_sums(topics, resp.click.astype(np.float32), t_count)
        self.shown_topics[idx] = self.shown_topics[idx] * decay + topic_sums(topics, resp.reviewed.astype(np.float32), t_count)
        n_rev = resp.reviewed.sum(1)
        self.session_reviewed[idx] += n_rev
        self.session_clicks[idx] += resp.click.sum(1)
        # consecutive skips at the end of the reviewed part of the slate
        k = slates.shape[1]
        pos = np.arange(k)
        last_click = np.where(resp.click, pos, -1).max(1)
        streak = np.where(last_click >= 0, n_rev - 1 - last_click, self.session_skip_streak[idx] + n_rev)
        self.session_skip_streak[idx] = streak
        # ring buffer of reviewed items
        h = self.hist_items.shape[1]
        rows = np.arange(len(self.hist_next))[idx] if isinstance(idx, slice) else np.asarray(idx)
        r, s = np.nonzero(resp.reviewed)
        if len(r):
            offset = np.cumsum(resp.reviewed, axis=1)[r, s] - 1
            slot = (self.hist_next[rows][r] + offset) % h
            self.hist_items[rows[r], slot] = slates[r, s]
            self.hist_engagement[rows[r], slot] = engagement[r, s]
            self.hist_next[rows] = (self.hist_next[rows] + n_rev) % h

    def start_session(self, rows: np.ndarray, gap_days: np.ndarray, last_length: np.ndarray) -> None:
        """Close the current session's stats and open the next one after ``gap_days``."""
        self.last_ctr[rows] = self.session_clicks[rows] / np.maximum(self.session_reviewed[rows], 1.0)
        self.last_length[rows] = last_length
        self.days_since_last[rows] = gap_days
        self.session_reviewed[rows] = 0.0
        self.session_clicks[rows] = 0.0
        self.session_skip_streak[rows] = 0.0
        self.sessions[rows] += 1

    def history(self, row: int) -> tuple[np.ndarray, np.ndarray]:
        """One user's reviewed items and engagement, oldest first."""
        order = (self.hist_next[row] + np.arange(self.hist_items.shape[1])) % self.hist_items.shape[1]
        items, eng = self.hist_items[row, order], self.hist_engagement[row, order]
        keep = items >= 0
        return items[keep], eng[keep]
