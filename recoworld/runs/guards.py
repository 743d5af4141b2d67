"""Guards of LLM runs: the configuration is checked before anything is simulated (an LLM that cannot
answer fails here, in one line), and a run stops when too many decisions fall back to the
parametric model, instead of finishing with parametric users under an LLM label."""

from __future__ import annotations

from collections import deque

from recoworld.llm.preflight import check_llm_config

__all__ = ["FallbackStop", "FallbackWindow", "check_llm_config"]


class FallbackStop(RuntimeError):
    """Too many LLM decisions fell back to the parametric model; the run stops (it can be resumed)."""


class FallbackWindow:
    """The share of LLM decisions that fell back over the last ``window`` decisions; ``add`` raises
    :class:`FallbackStop` once a full window's share passes ``max_share`` (``None``: never)."""

    def __init__(self, max_share: float | None, window: int) -> None:
        self.max_share, self.window = max_share, window
        self._steps: deque[tuple[int, int]] = deque()
        self.decisions = self.fallbacks = 0

    def add(self, decisions: int, fallbacks: int, where: str = "") -> None:
        """Counts a step's decisions and fallbacks; FallbackStop when the share that fell back over the last
        ``window`` decisions exceeds ``max_share``."""
        if decisions == 0 or self.max_share is None:
            return
        self._steps.append((decisions, fallbacks))
        self.decisions += decisions
        self.fallbacks += fallbacks
        while len(self._steps) > 1 and self.decisions - self._steps[0][0] >= self.window:
            d, f = self._steps.popleft()
            self.decisions -= d
            self.fallbacks -= f
        share = self.fallbacks / self.decisions
        if self.decisions >= self.window and share > self.max_share:
            raise FallbackStop(f"{share:.0%} of the last {self.decisions} LLM user decisions fell back to the parametric "
                               f"model{where} (llm.max_fallback_share {self.max_share:g} over llm.fallback_window "
                               f"{self.window}); check the model, key and server")
