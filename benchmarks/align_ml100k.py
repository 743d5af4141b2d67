"""Aligned small-LLM users on the real MovieLens-100K: held-out choice accuracy on exposure lists.

The Mirroring Users pipeline (``recoworld.users.align``) end to end on CPU:

1. exposure-list samples from ML-100K ratings (each user's latest 20% held out; N-1 unchosen
   candidates drawn by training popularity among movies the user had not rated by then);
2. parametric teacher traces (conditional-logit weights fitted on the training samples);
3. the base model's choice distribution on a training pool, the uncertainty filter;
4. LoRA SFT of SmolLM2-135M-Instruct (packaged GGUF, dequantised) on the kept traces (+ DPO if asked);
5. accuracy of the real choice on held-out lists: random (1/N), popularity, the calibrated
   parametric user, the base small LLM and the aligned one, with bootstrap 95% intervals and a
   paired interval for aligned minus base.

    python benchmarks/align_ml100k.py                    # defaults sized for one CPU core
    python benchmarks/align_ml100k.py --pool 400 --test 400 --sft-steps 300 --dpo-steps 100
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ml100k import fetch_ml100k  # noqa: E402

from recoworld.world.loaders import read_atomic  # noqa: E402
from recoworld.users.align.adapter import TransformersModel  # noqa: E402
from recoworld.users.align.distill import DistillConfig, select, student_table  # noqa: E402
from recoworld.users.align.export import preference_records, sft_records, validate_records  # noqa: E402
from recoworld.users.align.finetune import add_lora, dpo, sft  # noqa: E402
from recoworld.users.align.prompts import decision_messages  # noqa: E402
from recoworld.users.align.samples import ItemTable, SampleConfig, rating_samples  # noqa: E402
from recoworld.users.align.settings import FinetuneConfig  # noqa: E402
from recoworld.users.align.traces import all_terms, teach  # noqa: E402


def bootstrap(hits: np.ndarray, rng: np.random.Generator, n: int = 2000) -> tuple[float, float]:
    idx = rng.integers(0, len(hits), (n, len(hits)))
    means = hits[idx].mean(axis=1)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def score(model: TransformersModel, samples, items, history: int) -> tuple[list[np.ndarray], float]:
    start = time.perf_counter()
    probs = model.choice_probs_many([(decision_messages(s, items, history), len(s.candidates)) for s in samples])
    return probs, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pool", type=int, default=160, help="Training samples the base model scores for the filter.")
    ap.add_argument("--test", type=int, default=200, help="Held-out samples evaluated.")
    ap.add_argument("--candidates", type=int, default=5)
    ap.add_argument("--history", type=int, default=5)
    ap.add_argument("--keep", type=float, default=0.5)
    ap.add_argument("--sft-steps", type=int, default=120)
    ap.add_argument("--dpo-steps", type=int, default=0)
    ap.add_argument("--answer-tokens", type=int, default=48, help="Answer tokens trained on (the choice letter comes first).")
    ap.add_argument("--lr", type=float, default=5e-4, help="SFT learning rate.")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="Write the results as JSON here.")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()

    folder = fetch_ml100k()
    items = ItemTable.from_atomic(folder / "ml-100k.item")
    cfg = SampleConfig(n_candidates=args.candidates, history=args.history, max_train=args.pool, max_test=args.test,
                       seed=args.seed)
    ss = rating_samples(read_atomic(folder / "ml-100k.inter"), items, read_atomic(folder / "ml-100k.user"), cfg)
    train, test = ss.split("train"), ss.split("test")
    weights, traces = teach(ss)
    print(f"samples: {len(train)} training (pool), {len(test)} held-out, {args.candidates} candidates; "
          f"parametric weights {weights.model_dump()}", flush=True)

    model = TransformersModel.load()
    base_test, t_base = score(model, test, items, args.history)
    pool_probs, t_pool = score(model, train, items, args.history)
    table = select(student_table(train, traces, pool_probs), DistillConfig(keep_share=args.keep))
    kept = np.flatnonzero(table["keep"].to_numpy())
    k_samples, k_traces = [train[k] for k in kept], [traces[k] for k in kept]
    records = sft_records(k_samples, k_traces, items, args.history)
    pairs = preference_records(k_samples, k_traces, table["rejected"].to_numpy()[kept].tolist(), items,
                               all_terms(ss, k_samples), weights, args.history)
    validate_records(records, "sft")
    validate_records(pairs, "preference")
    strata = table[table["keep"]].groupby("stratum").size().to_dict()
    print(f"filter: kept {len(kept)} of {len(table)} ({int(table['noisy'].sum())} noisy); strata {strata}; "
          f"base scored {len(test) + len(train)} lists in {t_base + t_pool:.0f} s", flush=True)

    fcfg = FinetuneConfig(sft_steps=args.sft_steps, dpo_steps=args.dpo_steps, max_answer_tokens=args.answer_tokens,
                          sft_lr=args.lr, seed=args.seed)
    net = add_lora(model.net, fcfg)
    logs = [sft(net, model.tok, records, fcfg)]
    if args.dpo_steps:
        logs.append(dpo(net, model.tok, pairs, fcfg))
    for log in logs:
        print(f"{log.stage}: {log.steps} steps, {log.examples} examples, {log.seconds:.0f} s, "
              f"loss {log.first_loss:.3f} -> {log.last_loss:.3f}", flush=True)
    model.net = net
    aligned_test, t_aligned = score(model, test, items, args.history)

    truth = np.array([s.chosen for s in test])
    terms = all_terms(ss, test)
    preds = {
        "popularity": np.array([int(np.argmax(x[:, 4])) for x in terms]),
        "parametric (calibrated)": np.array([int(np.argmax(x @ weights.vector())) for x in terms]),
        "SmolLM2-135M base": np.array([int(np.argmax(p)) for p in base_test]),
        "SmolLM2-135M aligned": np.array([int(np.argmax(p)) for p in aligned_test]),
    }
    rng = np.random.default_rng(args.seed)
    rows = [("random (1/N)", 1.0 / args.candidates, (1.0 / args.candidates,) * 2)]
    hits = {name: (p == truth).astype(float) for name, p in preds.items()}
    rows += [(name, h.mean(), bootstrap(h, rng)) for name, h in hits.items()]
    diff = hits["SmolLM2-135M aligned"] - hits["SmolLM2-135M base"]
    lo, hi = bootstrap(diff, rng)
    p_true = {"base": float(np.mean([p[c] for p, c in zip(base_test, truth)])),
              "aligned": float(np.mean([p[c] for p, c in zip(aligned_test, truth)]))}

    print(f"\nheld-out choice accuracy, ML-100K, {len(test)} lists of {args.candidates} (bootstrap 95% intervals)\n")
    print("| user model | accuracy | 95% interval |\n|---|---|---|")
    for name, acc, (a, b) in rows:
        print(f"| {name} | {acc:.3f} | {a:.3f}-{b:.3f} |")
    print(f"\naligned - base: {diff.mean():+.3f} (paired 95% interval {lo:+.3f} to {hi:+.3f}); "
          f"mean probability of the real choice: base {p_true['base']:.3f}, aligned {p_true['aligned']:.3f}")
    print(f"most frequent pick (share): base {_mode(preds['SmolLM2-135M base'])}, aligned {_mode(preds['SmolLM2-135M aligned'])}")
    print(f"scoring: base {t_base / len(test):.2f} s/list, aligned {t_aligned / len(test):.2f} s/list; "
          f"total {time.perf_counter() - t0:.0f} s on {args.threads} thread(s)")
    if args.out:
        args.out.write_text(json.dumps({
            "args": {k: str(v) for k, v in vars(args).items()}, "accuracy": {n: [a, lh[0], lh[1]] for n, a, lh in rows},
            "aligned_minus_base": [float(diff.mean()), lo, hi], "p_true": p_true, "kept": len(kept), "strata": strata,
            "training": [log.model_dump() for log in logs], "weights": weights.model_dump()}, indent=2))


def _mode(pred: np.ndarray) -> str:
    values, counts = np.unique(pred, return_counts=True)
    return f"{'ABCDEFGHIJ'[int(values[np.argmax(counts)])]} ({counts.max() / len(pred):.0%})"


if __name__ == "__main__":
    main()
