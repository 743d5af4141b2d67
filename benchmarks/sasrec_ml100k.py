"""SASRec on the real MovieLens-100K in the standard sequential protocol, with Pop alongside.

Protocol (as RecBole's ``eval_args: {split: {LS: valid_and_test}, order: TO, mode: full}``):
each user's ratings in time order (ties kept in file order) are the engaged sequence; the last
item is the test target, the second last the validation target, the rest trains. Every item of
the catalog is ranked (full ranking, nothing masked, as RecBole does for sequential models);
Hit@10, NDCG@10 and MRR@10 are averaged over users. SASRec: max length 50, hidden 64, 2 blocks,
2 heads, dropout 0.5, CE loss, early stopping on validation NDCG@10 (patience 10); windows every
10 items, each item a target once an epoch with at least 41 items of context where it has them.

    python benchmarks/sasrec_ml100k.py                 # this SASRec and Pop
    python benchmarks/sasrec_ml100k.py --recbole       # also RecBole 1.2.1's SASRec (CE), compared user by user
    python benchmarks/sasrec_ml100k.py --recbole-checkpoint saved/SASRec-X.pth   # compare with a saved RecBole model

``--recbole`` builds a throwaway venv in the data cache (torch==2.13.0 first, then
recbole==1.2.1; never a project dependency), trains RecBole on the same atomic file, then ranks
each test user's item with RecBole's best checkpoint as RecBole's evaluator does, so the two
models compare paired by user (mean difference and a bootstrap interval).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ml100k import cache_dir, fetch_ml100k  # noqa: E402

from recoworld.agents.sasrec import SASRecConfig, fit_sasrec, rank_metrics, ranking_metrics, target_ranks  # noqa: E402
from recoworld.stats import mean_interval  # noqa: E402
from recoworld.world.readers import read_atomic  # noqa: E402

RECBOLE = "recbole==1.2.1"
TORCH = "torch==2.13.0"
# RecBole 1.2.1 imports ray 2.6, which needs pkg_resources and numpy 1 (np.bool8)
RECBOLE_PINS = ["setuptools<81", "numpy<2", "pandas<2.2", "scipy<1.14"]


def load_sequences(folder: Path) -> tuple[list[np.ndarray], int, list[str]]:
    """Per-user item sequences (codes 0..n-1) in time order, the number of items, and the user ids."""
    inter = read_atomic(folder / "ml-100k.inter")
    inter["timestamp"] = inter["timestamp"].astype(np.float64)
    inter = inter.reset_index().sort_values(["user_id", "timestamp", "index"], kind="mergesort")
    codes, items = np.unique(inter["item_id"].to_numpy(), return_inverse=True)
    inter["code"] = items
    groups = inter.groupby("user_id", sort=True)["code"]
    return [g.to_numpy() for _, g in groups], len(codes), [str(u) for u, _ in groups]


def split(sequences: list[np.ndarray]) -> dict[str, tuple[list, np.ndarray]]:
    """Leave-one-out by time: train sequences, (history, target) for validation and test."""
    train = [s[:-2] for s in sequences]
    return {
        "train": (train, np.zeros(0)),
        "valid": (train, np.array([s[-2] for s in sequences])),
        "test": ([s[:-1] for s in sequences], np.array([s[-1] for s in sequences])),
    }


def popularity_metrics(data: dict) -> dict[str, float]:
    """Pop: every user gets the training interaction counts (validation item added for test)."""
    n = 1 + max(int(max(s.max() for s in data["test"][0] if len(s))), int(data["test"][1].max()))
    pop = np.bincount(np.concatenate(data["test"][0]), minlength=n).astype(np.float64)
    return ranking_metrics(np.tile(pop, (len(data["test"][1]), 1)), data["test"][1])


def run_ours(data: dict, n_items: int, config: SASRecConfig) -> dict:
    fitted = fit_sasrec(data["train"][0], n_items, config, valid=data["valid"], verbose=True)
    # the test history includes the validation item, as in RecBole's leave-one-out
    return {"test": ranking_metrics(fitted.score(data["test"][0]), data["test"][1]),
            "test_ranks": target_ranks(fitted.score(data["test"][0]), data["test"][1]),
            "valid": ranking_metrics(fitted.score(data["valid"][0]), data["valid"][1]),
            "best_epoch": fitted.best_epoch, "epochs_run": fitted.log[-1]["epoch"], "seconds": fitted.train_seconds,
            "cpu_seconds": fitted.train_cpu_seconds}


# ----------------------------------------------------------------------------- RecBole
RECBOLE_SCRIPT = r"""
import json, sys, time
import torch
torch.set_num_threads(int(sys.argv[3]))
from recbole.quick_start import run_recbole
config = {
    "data_path": sys.argv[1], "checkpoint_dir": sys.argv[2], "device": "cpu", "use_gpu": False, "seed": 0,
    "reproducibility": True, "show_progress": False, "save_dataset": False, "save_dataloaders": False,
    "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full", "group_by": "user"},
    "train_neg_sample_args": None, "loss_type": "CE", "MAX_ITEM_LIST_LENGTH": 50,
    "metrics": ["Hit", "NDCG", "MRR"], "topk": [10], "valid_metric": "NDCG@10",
    "epochs": int(sys.argv[4]), "stopping_step": 10, "worker": 0,
}
start = time.perf_counter()
result = run_recbole(model="SASRec", dataset="ml-100k", config_dict=config)
result["seconds"] = time.perf_counter() - start
print("RESULT " + json.dumps(result, default=float))
"""


RECBOLE_EVAL_SCRIPT = r"""
import json, shutil, sys, tempfile
import numpy as np
import torch
torch.set_num_threads(int(sys.argv[2]))
if not hasattr(np, "float"):  # RecBole 1.2.1's NDCG uses the alias numpy 1.24 removed
    np.float = float
from recbole.quick_start import load_data_and_model
from recbole.utils import get_trainer
with tempfile.TemporaryDirectory() as tmp:  # a copy: the training run may rewrite the file meanwhile
    model_file = shutil.copy(sys.argv[1], tmp)
    epoch = torch.load(model_file)["epoch"]
    config, model, dataset, train_data, valid_data, test_data = load_data_and_model(model_file)
trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
result = {"best_epoch": epoch, "valid": trainer.evaluate(valid_data, load_best_model=False),
          "test": trainer.evaluate(test_data, load_best_model=False), "ranks": {}}
model.eval()
with torch.no_grad():  # each test user's rank, scored as RecBole's full-sort evaluation scores it
    for interaction, history_index, positive_u, positive_i in test_data:
        scores = model.full_sort_predict(interaction).view(-1, dataset.item_num)
        scores[:, 0] = -np.inf
        if history_index is not None:
            scores[history_index] = -np.inf
        target = scores[positive_u, positive_i]
        ranks = 1 + (scores[positive_u] > target[:, None]).sum(1)
        users = dataset.id2token(dataset.uid_field, interaction[dataset.uid_field][positive_u].numpy())
        result["ranks"].update({str(u): int(r) for u, r in zip(users, ranks.tolist())})
print("RESULT " + json.dumps(result, default=float))
"""


def recbole_venv() -> Path:
    """A throwaway venv with torch==2.13.0 (pinned first) and recbole==1.2.1, built once in the cache."""
    venv = cache_dir() / "recbole-venv"
    python = venv / "bin" / "python"
    if not (venv / "ok").is_file():
        steps = [[sys.executable, "-m", "venv", str(venv)], [str(python), "-m", "pip", "install", "-q", TORCH],
                 [str(python), "-m", "pip", "install", "-q", RECBOLE, *RECBOLE_PINS]]
        for cmd in steps:
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"{' '.join(cmd[-2:])} failed: {done.stderr.strip().splitlines()[-1:]}")
        (venv / "ok").write_text("ok\n")
    return python


def run_recbole(folder: Path, threads: int, epochs: int = 300) -> Path:
    """Train RecBole 1.2.1's SASRec (CE loss) on the same atomic file and protocol; its best checkpoint."""
    python = recbole_venv()
    work = cache_dir() / "recbole-run"
    work.mkdir(parents=True, exist_ok=True)
    script = work / "run_sasrec.py"
    script.write_text(RECBOLE_SCRIPT)
    # torch >= 2.6 loads weights-only by default; RecBole 1.2.1 reloads its own full checkpoint
    env = {**os.environ, "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1", "OMP_NUM_THREADS": str(threads)}
    started = time.time()
    done = subprocess.run([str(python), str(script), str(folder.parent), str(work / "saved"), str(threads), str(epochs)],
                          capture_output=True, text=True, cwd=work, env=env)
    (work / "log.txt").write_text(done.stdout + done.stderr)
    saved = [f for f in (work / "saved").glob("SASRec-*.pth") if f.stat().st_mtime >= started]
    if done.returncode != 0 or not saved:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"RecBole failed (log: {work / 'log.txt'}): {' | '.join(tail)}")
    return max(saved, key=lambda f: f.stat().st_mtime)


def eval_recbole_checkpoint(model_file: Path, threads: int) -> dict:
    """Valid and test metrics of a saved RecBole SASRec checkpoint (e.g. the best one of a run still training)."""
    work = cache_dir() / "recbole-run"
    work.mkdir(parents=True, exist_ok=True)
    script = work / "eval_checkpoint.py"
    script.write_text(RECBOLE_EVAL_SCRIPT)
    env = {**os.environ, "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1", "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run([str(recbole_venv()), str(script), str(model_file.resolve()), str(threads)],
                          capture_output=True, text=True, cwd=work, env=env)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"RecBole checkpoint evaluation failed: {' | '.join(tail)}")
    return json.loads(lines[-1][len("RESULT "):])


def row(name: str, m: dict[str, float], extra: str = "") -> str:
    return f"{name:<22} {m['hit@10']:>8.4f} {m['ndcg@10']:>8.4f} {m['mrr@10']:>8.4f}   {extra}"


def paired(ours: np.ndarray, theirs: np.ndarray, seed: int = 0) -> str:
    """Mean of ours − theirs per user, with a 95% bootstrap interval over users."""
    diff = ours - theirs
    lo, hi = mean_interval(diff, np.random.default_rng(seed))
    return f"{diff.mean():+.4f} ({lo:+.4f} to {hi:+.4f})"


def compare(ours: dict, rb: dict, users: list[str]) -> None:
    """RecBole's test row, and ours − RecBole per metric, paired by user."""
    theirs = rank_metrics(np.array([rb["ranks"][u] for u in users]))
    mine = rank_metrics(ours["test_ranks"])
    print(row("SASRec (RecBole 1.2.1)", {k: float(v.mean()) for k, v in theirs.items()},
              f"best epoch {rb['best_epoch']}; RecBole's own test figures: {rb['test']}"))
    print("RecoWorld − RecBole, paired by user (95% bootstrap interval): "
          + ", ".join(f"{k} {paired(mine[k], theirs[k])}" for k in mine))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recbole", action="store_true", help="also train RecBole 1.2.1's SASRec (throwaway venv)")
    parser.add_argument("--recbole-checkpoint", type=Path, default=None,
                        help="compare with this saved RecBole SASRec checkpoint instead of training one")
    parser.add_argument("--recbole-epochs", type=int, default=300, help="RecBole's epoch cap (early stopping as ours)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for training")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--dropout", type=float, default=0.5, help="dropout (0.5 is RecBole's default)")
    parser.add_argument("--stride", type=int, default=10, help="step between training windows")
    parser.add_argument("--targets", choices=["all", "new"], default="new", help="targets of a window (SASRecConfig.targets)")
    args = parser.parse_args()

    folder = fetch_ml100k()
    sequences, n_items, users = load_sequences(folder)
    data = split(sequences)
    print(f"ML-100K: {len(sequences)} users, {n_items} items, {sum(map(len, sequences))} interactions")
    config = SASRecConfig(max_len=50, hidden=64, blocks=2, heads=2, dropout=args.dropout, epochs=args.epochs,
                          patience=10, seed=args.seed, threads=args.threads, stride=args.stride, targets=args.targets)
    ours = run_ours(data, n_items, config)
    print(f"\n{'model (test, full rank)':<22} {'Hit@10':>8} {'NDCG@10':>8} {'MRR@10':>8}")
    print(row("Pop", popularity_metrics(data)))
    print(row("SASRec (RecoWorld)", ours["test"],
              f"train {ours['seconds']:.0f} s wall ({ours['cpu_seconds']:.0f} s CPU), {ours['epochs_run']} epochs (best {ours['best_epoch']}), {args.threads} thread(s)"))
    checkpoint = args.recbole_checkpoint
    try:
        if args.recbole and checkpoint is None:
            start = time.perf_counter()
            checkpoint = run_recbole(folder, args.threads, args.recbole_epochs)
            print(f"RecBole trained in {time.perf_counter() - start:.0f} s wall, {args.threads} thread(s)")
        if checkpoint is not None:
            compare(ours, eval_recbole_checkpoint(checkpoint, args.threads), users)
    except RuntimeError as exc:
        print(f"SASRec (RecBole 1.2.1): did not run: {exc}")


if __name__ == "__main__":
    main()
