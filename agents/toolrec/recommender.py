"""ToolRec as a recommender: the controller's loop over the tools, cut to a slate."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import ValidationError

from recoworld.agents.baselines import BaseRecommender, WrapsBase
from recoworld.agents.protocol import Recommendation, SlateChoice, UserView
from recoworld.agents.registry import make_recommender
from recoworld.agents.toolrec.actions import LLM_RERANK, ToolAction, ToolCall, ToolError, normalise_attribute
from recoworld.agents.toolrec.controllers import LLMToolController, ScriptedToolController, ToolContext, ToolController
from recoworld.agents.toolrec.tools import ToolBox, _CatalogFacts, user_view
from recoworld.llm.base import LanguageModel, LLMError


# ----------------------------------------------------------------------------- the recommender
class ToolRec(WrapsBase):
    """A controller runs up to ``max_steps`` retrieval / re-rank tool calls per user, then a final rank to K."""

    name = "toolrec"
    needs_text = True

    def __init__(
        self,
        controller: str | ToolController = "scripted",
        base: str | BaseRecommender = "greedy",
        max_steps: int = 7,
        seed: int = 0,
        language_model: LanguageModel | None = None,
        llm: dict[str, Any] | None = None,
        base_params: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(seed)
        if max_steps < 1:
            raise ValueError(f"toolrec.max_steps: must be >= 1, got {max_steps}")
        self.max_steps = int(max_steps)
        self.seed = seed
        if isinstance(base, str):
            base = make_recommender(base, base_params, seed)
        self.base = base
        self._llm_config = None
        self.language_model = language_model
        if isinstance(controller, str):
            if controller not in ("scripted", "llm"):
                raise ValueError(f"toolrec.controller: unknown controller '{controller}' (expected 'scripted' or 'llm')")
            if controller == "llm" and language_model is None:
                from recoworld.llm.config import LLMConfig  # validated now, the client is built on first use

                self._llm_config = LLMConfig(**(llm or {}))
            self._controller: ToolController | None = (
                ScriptedToolController()
                if controller == "scripted"
                else LLMToolController(language_model, seed=seed)
                if language_model is not None
                else None
            )
        else:
            self._controller = controller
        self.fallbacks = 0
        self.last_trajectory: list[ToolCall] = []
        self.trajectories: list[list[ToolCall]] = []
        self._facts: _CatalogFacts | None = None

    # -- plumbing ------------------------------------------------------------------------------
    @property
    def controller(self) -> ToolController:
        """The tool controller, an LLM one built from the config on first use when none was given."""
        if self._controller is None:  # an LLM controller without a model: build it now
            from recoworld.llm.config import build_language_model

            self.language_model = build_language_model(self._llm_config)
            self._controller = LLMToolController(self.language_model, seed=self.seed)
        return self._controller

    @property
    def llm_usage(self):
        """Calls, tokens and cost of the controller's model (when it is metered), else None."""
        return getattr(self.language_model, "total", None)

    def _catalog_facts(self, catalog) -> _CatalogFacts:
        if self._facts is None or self._facts.catalog is not catalog:
            self._facts = _CatalogFacts(catalog)
        return self._facts

    def tools(self, view: UserView, row: int = 0) -> ToolBox:
        """The tools for user ``row`` of ``view``, backed by the base ranker."""
        one = user_view(view, row) if len(view) != 1 else view
        return ToolBox(one, self.base.scores(one)[0], self._catalog_facts(view.catalog))

    def scores(self, view: UserView) -> np.ndarray:
        """The base ranker's scores (the tools start from them)."""
        return self.base.scores(view)


    # -- the loop ------------------------------------------------------------------------------
    def _apply(self, action: ToolAction, ctx: ToolContext, tools: ToolBox, pool: list[int]) -> list[int]:
        """What one retrieve or rerank action returns (ToolError on a bad action)."""
        if action.kind == "retrieve":
            return tools.retrieve(action.attribute or "", action.value, action.k, exclude=pool)
        if action.kind != "rerank":
            raise ToolError(f"unknown tool kind '{action.kind}' (known: retrieve, rerank, finish)")
        if normalise_attribute(action.attribute) != LLM_RERANK:
            return tools.rerank(pool, action.attribute or "", action.k)
        rerank = getattr(self.controller, "llm_rerank", None)
        if rerank is None:
            raise ToolError("rerank[llm] needs an LLM controller")
        k = len(pool) if action.k is None else int(action.k)
        if k <= 0 or not pool:
            raise ToolError(f"k must be > 0, got {k}" if k <= 0 else "the pool is empty: retrieve something first")
        return rerank(ctx, list(pool), k)

    def run(self, view: UserView, base_scores: np.ndarray | None = None) -> tuple[list[int], list[ToolCall]]:
        """Run the controller for a one-user view: (K distinct positions, trajectory). Never raises on
        bad controller output."""
        k_slate = view.slate_size
        if base_scores is None:
            base_scores = self.base.scores(view)[0]
        tools = ToolBox(view, base_scores, self._catalog_facts(view.catalog))
        pool: list[int] = []
        trajectory: list[ToolCall] = []
        ranked = finished = broken = False

        def failed(
            step: int, action: ToolAction | None, error: str, returned: list[int] | None = None, auto: bool = False
        ) -> None:
            self.fallbacks += 1
            trajectory.append(ToolCall(step=step, action=action, returned=returned or [], error=error, auto=auto))

        step = 0
        for step in range(self.max_steps):
            ctx = ToolContext(view, tools, k_slate, step, self.max_steps, list(pool), list(trajectory))
            try:
                action = self.controller.next_action(ctx)
                if not isinstance(action, ToolAction):
                    action = ToolAction.model_validate(action)
            except LLMError as exc:
                failed(step, None, f"{type(exc).__name__}: {exc}")
                broken = True
                break
            except ValidationError as exc:
                failed(step, None, f"invalid action: {exc.errors(include_url=False)[0]['msg']}")
                continue
            except Exception as exc:  # noqa: BLE001 - a controller bug must not take the world down
                failed(step, None, f"controller failed: {type(exc).__name__}: {exc}")
                broken = True
                break
            try:
                if action.kind == "finish":
                    finished = True
                    break
                returned = self._apply(action, ctx, tools, pool)
                if action.kind == "retrieve":
                    pool += returned
                else:
                    pool, ranked = list(returned), True
            except ToolError as exc:
                failed(step, action, str(exc))
                continue
            except LLMError as exc:
                failed(step, action, f"{type(exc).__name__}: {exc}")
                broken = True
                break
            except Exception as exc:  # noqa: BLE001 - a tool bug costs a step, not the run
                failed(step, action, f"tool failed: {type(exc).__name__}: {exc}")
                continue
            trajectory.append(ToolCall(step=step, action=action, returned=list(returned)))

        # final rank to K: the controller's order if it re-ranked the pool, else the base ranker's
        slate = (pool if ranked else tools.base_order(pool))[:k_slate]
        short = len(slate) < k_slate
        slate = tools.fill(slate, k_slate)
        problems = []
        if not finished:
            problems.append("loop ended by an error" if broken else f"no finish within {self.max_steps} steps")
        if short:
            problems.append(f"pool had {len(pool)} < {k_slate} items; filled by the base ranker")
        if finished:
            if short:
                failed(step, action, problems[-1], slate)
            else:
                trajectory.append(ToolCall(step=step, action=action, returned=slate))
        else:
            failed(len(trajectory), ToolAction(kind="finish", reason="auto"), "; ".join(problems), slate, auto=True)
        return slate, trajectory

    def recommend(self, view: UserView) -> Recommendation:
        """One user's slate with the tool trajectory that built it, as its reasoning."""
        if len(view) != 1:
            raise ValueError(f"recommend: expects a view of one user, got {len(view)}; use slate() for batches")
        slate, trajectory = self.run(view)
        self.last_trajectory = trajectory
        self.trajectories = [trajectory]
        return Recommendation(items=slate, reasoning=reasoning(trajectory))

    def slate(self, view: UserView) -> SlateChoice:
        """Each user's slate from a tool trajectory over the base's scores; marks users whose controller fell back."""
        scores = self.base.scores(view)
        b, k = len(view), view.slate_size
        positions = np.empty((b, k), dtype=np.int64)
        fell_back = np.zeros(b, dtype=bool)
        self.trajectories = []
        for i in range(b):
            one = user_view(view, i) if b != 1 else view
            before = self.fallbacks
            slate, trajectory = self.run(one, scores[i])
            positions[i] = slate
            fell_back[i] = self.fallbacks > before
            self.trajectories.append(trajectory)
        self.last_trajectory = self.trajectories[-1] if self.trajectories else []
        return SlateChoice(positions, np.ones(positions.shape, dtype=np.float32), fell_back)


def reasoning(trajectory: list[ToolCall]) -> str:
    """A compact log line: ``retrieve[topic, 'cooking', k=10]->10; rerank[diversity, k=20]->20; finish->10``."""
    return "; ".join(call.brief() for call in trajectory)
