"""What the platform can see about each user: engagement history, session stats, instructions told.

The compiled world-step kernel (``recoworld.world.kernel``) writes these arrays in place;
this module owns them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recoworld.columns import column_view
from recoworld.world.catalog import Catalog
from recoworld.world import layout as WL


@dataclass
class PlatformState:
    """Observed, per-user arrays (B users). Nothing here comes from the hidden mindset."""

    est_taste: np.ndarray  # (B, D) decayed engagement-weighted sum of clicked item embeddings
    topics: np.ndarray  # (B, 2, T) decayed clicks and items shown per topic
    hist_items: np.ndarray  # (B, H) last H items reviewed (ring buffer), -1 = empty
    hist_engagement: np.ndarray  # (B, H) 0 = skipped, else watch fraction (+1 if liked)
    hist_next: np.ndarray  # (B,) ring position
    stats: np.ndarray  # (B, 7) float64, columns recoworld.world.layout.S_*

    session_reviewed = column_view("stats", WL.S_REVIEWED, "Items reviewed this session.")
    session_clicks = column_view("stats", WL.S_CLICKS, "Clicks this session.")
    session_skip_streak = column_view("stats", WL.S_SKIP_STREAK, "Consecutive skips seen by the platform.")
    last_ctr = column_view("stats", WL.S_LAST_CTR, "CTR of the previous session.")
    last_length = column_view("stats", WL.S_LAST_LENGTH, "Slates in the previous session.")
    days_since_last = column_view("stats", WL.S_DAYS_SINCE, "Gap before the current session (0 for the first).")
    sessions = column_view("stats", WL.S_SESSIONS, "Sessions started so far.")

    @property
    def click_topics(self) -> np.ndarray:
        """(B, T) decayed clicks per topic (a view of ``topics``)."""
        return self.topics[:, WL.P_CLICK, :]

    @property
    def shown_topics(self) -> np.ndarray:
        """(B, T) decayed items shown per topic (a view of ``topics``)."""
        return self.topics[:, WL.P_SHOWN, :]

    @classmethod
    def empty(cls, b: int, catalog: Catalog, history: int = 20) -> "PlatformState":
        """The platform's log of ``b`` users who have not been seen yet."""
        stats = np.zeros((b, 7), dtype=np.float64)
        stats[:, WL.S_SESSIONS] = 1.0
        return cls(
            est_taste=np.zeros((b, catalog.embeddings.shape[1]), dtype=np.float32),
            topics=np.zeros((b, 2, catalog.n_topics), dtype=np.float64),
            hist_items=np.full((b, history), -1, dtype=np.int64),
            hist_engagement=np.zeros((b, history), dtype=np.float32),
            hist_next=np.zeros(b, dtype=np.int64),
            stats=stats,
        )

    def history(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(b, H) reviewed items and engagement of users ``rows``, oldest first, -1 padded at the front."""
        h = self.hist_items.shape[1]
        order = (self.hist_next[rows][:, None] + np.arange(h)) % h
        return np.take_along_axis(self.hist_items[rows], order, 1), np.take_along_axis(self.hist_engagement[rows], order, 1)


@dataclass
class Clock:
    """Each user's calendar: day of the current (or next) session, position in it, and how it ended."""

    day: np.ndarray  # (B,) int64
    session_step: np.ndarray  # (B,) int64 slates served in the current session
    days_active: np.ndarray  # (B,) int64 days with a session
    churned: np.ndarray  # (B,) bool: did not come back within the churn window
    finished: np.ndarray  # (B,) bool: the next session would fall after the horizon

    @classmethod
    def start(cls, b: int) -> "Clock":
        """The calendars of ``b`` users on their first day, first session."""
        return cls(
            day=np.zeros(b, dtype=np.int64),
            session_step=np.zeros(b, dtype=np.int64),
            days_active=np.ones(b, dtype=np.int64),
            churned=np.zeros(b, dtype=bool),
            finished=np.zeros(b, dtype=bool),
        )

    @property
    def alive(self) -> np.ndarray:
        """(b,) users neither churned nor past the horizon."""
        return ~(self.churned | self.finished)
