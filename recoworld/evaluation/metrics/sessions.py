"""The sessions' part of the one-pass scan (``.scan``): per (arm, user), per (arm, day) and per arm sums."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from recoworld.evaluation.metrics.codes import Grid, Keys, numbers

SESSION_COLUMNS = ["arm", "user", "segment", "day", "slates", "reviewed", "clicks", "likes", "shares", "comments",
                   "watch_seconds", "reward", "churned", "return_gap_days", "instructions"]
SESSION_SUMS = ["slates", "reviewed", "clicks", "likes", "shares", "comments", "watch_minutes", "reward", "instructions",
                "returned"]


@dataclass
class SessionFigures:
    """Per (arm, user): sums of the sessions (``SESSION_SUMS``, with ``sessions``), first and last day, the churn
    flag of the last session, the segment and the rank of the first session in day order; per (arm, day):
    ``active_users``, ``sessions``, ``clicks``, ``reviewed``, ``watch_minutes``, ``instructions``; per arm: sessions
    that were returned, and those in which an instruction was voiced (``told``, ``told_returned``)."""

    arms: Keys
    users: Keys
    segments: Keys = field(default_factory=Keys)
    user_sums: Grid = field(default_factory=Grid)
    day_sums: Grid = field(default_factory=Grid)
    first: dict[str, np.ndarray] = field(default_factory=dict)  # flat (arm, user) key -> day, row, segment
    last: dict[str, np.ndarray] = field(default_factory=dict)  # day, row, churned
    _rows: int = 0
    _counted_day: dict[int, np.ndarray] = field(default_factory=dict)

    def add(self, batch: pa.RecordBatch) -> None:
        """Accumulate a batch of session rows: per arm and user, the sessions' slates, items and actions, and churn."""
        n = batch.num_rows
        arm, user = self.arms.codes(batch.column("arm")), self.users.codes(batch.column("user"))
        day = numbers(batch, "day", np.int64)
        row = self._rows + np.arange(n)
        self._rows += n
        churned = numbers(batch, "churned", bool)
        col = {c: numbers(batch, c, np.float64) for c in ("slates", "reviewed", "clicks", "likes", "shares", "comments",
                                                           "reward", "instructions")}
        col["watch_minutes"] = numbers(batch, "watch_seconds", np.float64) / 60.0
        col["returned"] = ((~churned) & (numbers(batch, "return_gap_days", np.int64) > 0)).astype(np.float64)
        for name in SESSION_SUMS:
            self.user_sums.add(name, arm, user, col[name])
        self.user_sums.add("sessions", arm, user)
        told = col["instructions"] > 0
        self.user_sums.add("told", arm, user, told.astype(np.float64))
        self.user_sums.add("told_returned", arm, user, (told & (col["returned"] > 0)).astype(np.float64))
        for name in ("clicks", "reviewed", "watch_minutes", "instructions"):
            self.day_sums.add(name, arm, day, col[name])
        self.day_sums.add("sessions", arm, day)
        self._count_active(arm, user, day)
        segment = self.segments.codes(batch.column("segment")) if "segment" in batch.schema.names else np.zeros(n, np.int64)
        self._extremes(self._flat(arm, user), day, row, segment, churned)

    def _flat(self, arm: np.ndarray, user: np.ndarray) -> np.ndarray:
        return arm * (1 << 32) + user

    def _count_active(self, arm: np.ndarray, user: np.ndarray, day: np.ndarray) -> None:
        """Distinct users per (arm, day); the day files come in day order, so a user met again on the same day
        in a later batch is recognised by the day it was last counted on."""
        if not len(arm):
            return
        days, users = int(day.max()) + 1, int(user.max()) + 1
        key = np.unique((arm * days + day) * users + user)
        k_arm, k_day, k_user = key // (days * users), key // users % days, key % users
        for a in np.unique(k_arm):
            mine = k_arm == a
            d, u = k_day[mine], k_user[mine]
            seen = self._counted_day.get(int(a), np.zeros(0, dtype=np.int64))
            if len(seen) <= u.max():
                seen = np.concatenate([seen, np.full(int(u.max()) + 1 - len(seen), -1, dtype=np.int64)])
            fresh = seen[u] != d
            seen[u[fresh]] = d[fresh]
            self._counted_day[int(a)] = seen
            self.day_sums.add("active_users", k_arm[mine][fresh], d[fresh])

    def _extremes(self, key: np.ndarray, day: np.ndarray, row: np.ndarray, segment: np.ndarray, churned: np.ndarray) -> None:
        """Each key's first session (earliest day, then row) and last one (latest day, then row)."""
        order = np.lexsort((row, day, key))
        k = key[order]
        starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
        ends = np.r_[starts[1:], len(k)] - 1
        first, last = order[starts], order[ends]
        self._update(self.first, key[first], {"day": day[first], "row": row[first], "segment": segment[first]}, earlier=True)
        self._update(self.last, key[last], {"day": day[last], "row": row[last], "churned": churned[last]}, earlier=False)

    @staticmethod
    def _update(store: dict[str, np.ndarray], key: np.ndarray, values: dict[str, np.ndarray], earlier: bool) -> None:
        if not store:
            store.update({"key": key, **values})
            return
        both = pd.Index(store["key"]).get_indexer(key)
        known = both >= 0
        old = both[known]
        day, row, old_day, old_row = values["day"][known], values["row"][known], store["day"][old], store["row"][old]
        if earlier:
            better = (day < old_day) | ((day == old_day) & (row < old_row))
        else:
            better = (day > old_day) | ((day == old_day) & (row > old_row))
        for name, v in values.items():
            store[name][old[better]] = v[known][better]
        store["key"] = np.concatenate([store["key"], key[~known]])
        for name, v in values.items():
            store[name] = np.concatenate([store[name], v[~known]])

    def frame(self) -> pd.DataFrame:
        """One row per (arm, user) with a session: the sums, ``first_day``, ``last_day``, ``churned`` (of the last
        session), ``segment``, ``order`` (the rank of the first session in day order, for the user table's order)."""
        if not self.first:
            return pd.DataFrame(columns=["arm_code", "user_code", "segment", *SESSION_SUMS, "sessions", "told", "told_returned",
                                         "first_day", "last_day", "churned", "order"])
        key = self.first["key"]
        arm, user = key >> 32, key & ((1 << 32) - 1)
        last = pd.Index(self.last["key"]).get_indexer(key)
        out = pd.DataFrame({"arm_code": arm, "user_code": user})
        for name in [*SESSION_SUMS, "sessions", "told", "told_returned"]:
            out[name] = self.user_sums.get(name)[arm, user]
        segments = np.asarray(self.segments.values or [None], dtype=object)
        out["segment"] = segments[self.first["segment"]] if self.segments.values else None
        out["first_day"] = self.first["day"]
        out["last_day"] = self.last["day"][last]
        out["churned"] = self.last["churned"][last].astype(bool)
        out["order"] = np.lexsort((self.first["row"], self.first["day"])).argsort()  # rank in day order
        return out
