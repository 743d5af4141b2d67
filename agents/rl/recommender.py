"""A trained SB3 model as a recommender."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from recoworld.agents.baselines import BaseRecommender
from recoworld.agents.protocol import SlateChoice, UserView
from recoworld.agents.rl.envs import Algo
from recoworld.agents.rl.training import load
from recoworld.world.observation import compact_observation

if TYPE_CHECKING:  # pragma: no cover
    from stable_baselines3.common.base_class import BaseAlgorithm


class SB3Recommender(BaseRecommender):
    """A trained SB3 model serving slates: a deterministic batched ``predict`` on the views'
    RecoWorld-v0 observations (in the compact layout for a model trained on RecoWorld-Compact-v0). Give a model,
    or a path (and algo) to load on first use.

    Slate-mode models only: a topic-mode model's topics need the env's in-topic ranker, which is
    not yet shared with recommenders (NotImplementedError).
    """

    name = "sb3"
    needs_observation = True

    def __init__(self, model: BaseAlgorithm | None = None, path: str | Path | None = None, algo: Algo = "ppo", seed: int = 0) -> None:
        super().__init__(seed)
        if model is None and path is None:
            raise ValueError("sb3: give a trained model or a path to one")
        self._model, self.path, self.algo = model, path, algo

    @property
    def model(self) -> BaseAlgorithm:
        """The SB3 model, loaded from the zip on first use."""
        if self._model is None:
            self._model = load(self.path, self.algo)
        return self._model

    def _check(self, view: UserView) -> None:
        nvec = np.asarray(self.model.action_space.nvec)
        m, k, t = view.candidates.shape[1], view.slate_size, view.catalog.n_topics
        if len(nvec) == k and np.all(nvec == m):
            return
        if len(nvec) == k and np.all(nvec == t):
            raise NotImplementedError(
                "sb3: this model was trained with action_mode='topic'; filling its topics needs the env's in-topic "
                "ranker (RecoWorldEnv.fill_topics), which recommenders cannot call yet. Use a slate-mode model."
            )
        raise ValueError(f"sb3: the model's action space {nvec.tolist()} does not fit slates of {k} from {m} candidates")

    def slate(self, view: UserView) -> SlateChoice:
        """The model's deterministic slate for each user in ``view`` (needs the numeric observation)."""
        if view.observation is None:
            raise ValueError("sb3: the view has no observation (build it with with_observation=True)")
        self._check(view)
        obs = view.observation
        if "candidate_topics" in self.model.observation_space.spaces:  # trained on RecoWorld-Compact-v0
            obs = compact_observation(obs, view.catalog.n_topics)
        actions, _ = self.model.predict(obs, deterministic=True)
        pos = np.asarray(actions, dtype=np.int64).reshape(len(view), view.slate_size)
        return SlateChoice(pos, np.ones(pos.shape, dtype=np.float32))

    def scores(self, view: UserView) -> np.ndarray:
        """Rank-based scores of the slate this model would serve (K, K-1, ... for its picks, 0 elsewhere)."""
        pos = self.slate(view).positions
        out = np.zeros(view.candidates.shape)
        np.put_along_axis(out, pos, np.arange(view.slate_size, 0, -1, dtype=float)[None, :], axis=1)
        return out
