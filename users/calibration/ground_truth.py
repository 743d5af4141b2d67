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
    from recoworld.world.loaders import load_movielens
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
    rows = []
    for u in range(n_users):
        taste = rng.dirichlet(np.full(catalog.n_topics, 0.3)) @ centroids + rng.normal(0, 0.3 / 8, emb.shape[1])
        taste /= np.linalg.norm(taste)
        for s in range(sessions):
            items = rng.integers(0, len(catalog), length)
            topics = catalog.topic[items]
            for j, item in enumerate(items):
                same = int(np.sum(topics[:j] == topics[j]))
                logit = GROUND_TRUTH["taste"] * emb[item] @ taste + GROUND_TRUTH["satiation"] * same + GROUND_TRUTH["fatigue"] * j + GROUND_TRUTH["intercept"]
                engaged = rng.random() < 1.0 / (1.0 + np.exp(-logit))
                rows.append((f"u{u}", catalog.item_id[item], 5.0 if engaged else 2.0, 1_600_000_000 + u * 997 + s * 86_400 + j * 60))
    pd.DataFrame(rows, columns=["userId", "movieId", "rating", "timestamp"]).to_csv(folder / "ratings.csv", index=False)
