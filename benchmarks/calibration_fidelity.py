"""Calibration and held-out fidelity on two data sets with a known origin.

1. A MovieLens-layout folder generated from a known parametric ground truth
   (``recoworld.users.calibration.write_ground_truth``): recovered weights vs the truth.
2. Logs of RecoWorld's own simulated users (a greedy-recommender quickstart run), as a platform's
   interaction log: reviewed impressions with their clicks.

For each: held-out AUC and log-loss of the calibrated simulator vs popularity and matrix
factorisation, and the held-out replay's action F1 and Jensen–Shannon divergences.

    python benchmarks/calibration_fidelity.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pandas as pd

from recoworld.progress import reporting
from recoworld.logs.folder import read_table
from recoworld.runs.runner import PopulationRun
from recoworld.scenario import load_scenario
from recoworld.users.calibration import GROUND_TRUTH, calibrate_dataset, write_ground_truth


def show(name: str, cal, seconds: float) -> None:
    f = cal.result.fidelity
    print(f"\n== {name}: {f.users} users, {f.n_train:,} training / {f.n_test:,} held-out interactions, "
          f"engagement rate {f.positive_rate_test:.3f} held out ({f.positive_rate_train:.3f} training), calibrated in {seconds:.1f} s")
    print(f"{'model':<18}{'AUC':>8}{'log-loss':>10}")
    for model in f.auc:
        print(f"{model:<18}{f.auc[model]:>8.3f}{f.log_loss[model]:>10.3f}")
    for rep in cal.result.replays:
        jsd = "  ".join(f"{k} {v:.3f}" for k, v in rep.jsd.items())
        print(f"replay ({rep.backend}): action F1 {rep.f1:.3f}; JSD {jsd}")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, reporting():  # a line per stage when piped, a bar on a terminal
        tmp = Path(tmp)
        write_ground_truth(tmp / "ml-ground-truth")
        start = time.perf_counter()
        cal = calibrate_dataset(tmp / "ml-ground-truth")
        show("MovieLens layout, known ground truth", cal, time.perf_counter() - start)
        w = cal.result.weights
        print("recovered vs true:", ", ".join(f"{k} {getattr(w, k):+.3f} (true {GROUND_TRUTH[k]:+.3f})" for k in ("satiation", "fatigue")))

        scenario = load_scenario("quickstart", {"users": {"n_users": 1000}, "env": {"horizon_days": 30},
                                                "recommenders": [{"name": "greedy"}]})
        PopulationRun(scenario, output=tmp / "run").run()
        imp = read_table(tmp / "run", "impressions", ["user", "item", "day", "step", "position", "action", "clicked"])
        imp = imp[imp["action"] != "unseen"]
        pd.DataFrame({
            "user_id": imp["user"].astype(str), "item_id": imp["item"].astype(str),
            "timestamp": imp["day"].astype("int64") * 86_400 + imp["step"].astype("int64") * 300 + imp["position"].astype("int64") * 20,
            "click": imp["clicked"].astype(int),
        }).to_csv(tmp / "interactions.csv", index=False)
        pd.read_parquet(tmp / "run" / "catalog.parquet").to_csv(tmp / "items.csv", index=False)
        start = time.perf_counter()
        cal = calibrate_dataset(tmp / "interactions.csv", items=tmp / "items.csv")
        show("RecoWorld's own users (quickstart, greedy, 1,000 users x 30 days)", cal, time.perf_counter() - start)


if __name__ == "__main__":
    main()
