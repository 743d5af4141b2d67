"""A MovieLens-layout folder whose ratings come from a known parametric model (for tests and benchmarks)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

# a known parametric ground truth: engagement logit = taste·cos + satiation·(same-topic items earlier
# in the session) + fatigue·position + intercept
GROUND_TRUTH = {"taste": 4.0, "satiation": -0.6, "fatigue": -0.08, "intercept": -0.5}


def write_ground_truth(folder: Path, n_users: int = 300, sessions: int = 8, length: int = 15, seed: int = 0) -> None:
    """A MovieLens-layout folder (movies.csv, ratings.csv) whose ratings come from :data:`GROUND_TRUTH`:
    an engaged item is rated 5, another 2; sessions are a day apart, items a minute apart."""
    from recoworld.world.readers import load_movielens
    from recoworld.world.synthetic import SyntheticCatalogConfig, generate_catalog

    folder.mkdir(parents=True, exist_ok=True)
    synth = generate_catalog(SyntheticCatalogConfig(n_items=600, n_topics=8, n_creators=30), seed=seed)
    pd.DataFrame({"movieId": [f"m{i}" for i in range(len(synth))], "title": synth.title,
                  "genres": [synth.topic_names[t] for t in synth.topic]}).to_csv(folder / "movies.csv", index=False)
    pd.DataFrame(columns=["userId", "movieId", "rating", "timestamp"]).to_csv(folder / "ratings.csv", index=False)
    catalog, _ = load_movielens(folder)  # the embeddings the calibration will see
    emb = catalog.embeddings.astype(np.float64)
    centroids = catalog.topic_centroids.astype(np.float64)
    rng = np.random.default_rng(seed)
    out = folder / "ratings.csv"
    chunk: list[tuple[int, np.ndarray, np.ndarray, int]] = []
    position = np.arange(length)
    earlier = np.tril(np.ones((length, length), dtype=bool), k=-1)  # earlier[j, i]: item i comes before item j
    for u in range(n_users):
        taste = rng.dirichlet(np.full(catalog.n_topics, 0.3)) @ centroids + rng.normal(0, 0.3 / 8, emb.shape[1])
        taste /= np.linalg.norm(taste)
        for s in range(sessions):  # the same draws, in the same order, as one item at a time
            items = rng.integers(0, len(catalog), length)
            topics = catalog.topic[items]
            same = ((topics[None, :] == topics[:, None]) & earlier).sum(1)
            logit = (GROUND_TRUTH["taste"] * emb[items] @ taste + GROUND_TRUTH["satiation"] * same
                     + GROUND_TRUTH["fatigue"] * position + GROUND_TRUTH["intercept"])
            engaged = rng.random(length) < 1.0 / (1.0 + np.exp(-logit))
            chunk.append((u, items, engaged, s))
        if len(chunk) * length >= 200_000 or u == n_users - 1:  # written in chunks: memory stays flat at any size
            user = np.repeat([c[0] for c in chunk], length)
            day = np.repeat([c[3] for c in chunk], length)
            pd.DataFrame({"userId": np.char.add("u", user.astype(str)), "movieId": catalog.item_id[np.concatenate([c[1] for c in chunk])],
                          "rating": np.where(np.concatenate([c[2] for c in chunk]), 5.0, 2.0),
                          "timestamp": 1_600_000_000 + user * 997 + day * 86_400 + np.tile(position * 60, len(chunk))}
                         ).to_csv(out, mode="a", header=False, index=False)
            chunk = []
