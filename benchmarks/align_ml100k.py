"""Aligned small-LLM users on the real MovieLens-100K: held-out choice accuracy on exposure lists.

The Mirroring Users pipeline (``recoworld.users.align``) end to end on CPU:

1. exposure-list samples from ML-100K ratings (each user's latest 20% held out; N-1 unchosen
   candidates drawn by training popularity among movies the user had not rated by then); the prompt
   gives the profile, the recent choices with their genres, and each candidate's genres, mean
   training rating and rating count (the same prompt for the base and the aligned model);
2. parametric teacher traces (conditional-logit weights fitted on the training samples);
3. the student's choice distribution on a training pool (the base LLM's letter probabilities, or
   the parametric model's with ``--student parametric``), the uncertainty filter;
4. tuning SmolLM2-135M-Instruct (packaged GGUF, dequantised) on the kept samples: a choice head on
   the candidates' hidden states (``--objective head``, the default), or LoRA SFT of the choice
   letter only over shuffled copies of each list (``--objective choice``), or of the letter and the
   trace (``--objective trace``, + DPO if asked);
5. accuracy of the real choice on held-out lists: random (1/N), popularity, the calibrated parametric
   user, the base small LLM and the aligned one, raw and position-debiased (``--rotations``: all N
   rotations averaged; always: the label-free prior correction), with bootstrap 95% intervals and
   paired intervals for aligned minus base.

    python benchmarks/align_ml100k.py --base-cache base.npz   # the README's run (about 25 min on one thread)
    python benchmarks/align_ml100k.py --objective choice      # the LoRA choice objective instead (about 45 min)
    python benchmarks/align_ml100k.py --objective trace --pool 160 --keep 0.5 --noise-floor 0.5 --sft-steps 120 \
        --test 200 --lora-r 8 --lora-modules attention --top-layers 30 --student smollm2   # the first run's settings
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

from recoworld.users.align.adapter import TransformersModel  # noqa: E402
from recoworld.users.align.api import student_probs  # noqa: E402
from recoworld.users.align.choice_head import train_head  # noqa: E402
from recoworld.users.align.distill import DistillConfig, select, student_table  # noqa: E402
from recoworld.stats import mean_interval  # noqa: E402
from recoworld.users.align.evaluate import hits, pick_shares, prior_debiased, rotation_probs, without_tuning  # noqa: E402
from recoworld.users.align.export import choice_examples, preference_records, sft_records, validate_records  # noqa: E402
from recoworld.users.align.finetune import add_lora, dpo, sft, sft_choice  # noqa: E402
from recoworld.users.align.prompts import LETTERS, decision_messages  # noqa: E402
from recoworld.users.align.samples import ItemTable, SampleConfig, SampleSet, rating_samples  # noqa: E402
from recoworld.users.align.settings import FinetuneConfig, HeadConfig  # noqa: E402
from recoworld.users.align.traces import all_terms, softmax, teach  # noqa: E402
from recoworld.world.readers import read_atomic  # noqa: E402

ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pool", type=int, default=5000, help="Training lists the student scores for the filter.")
    ap.add_argument("--student", choices=["smollm2", "parametric"], default="parametric",
                    help="Whose uncertainty drives the filter (smollm2 costs one forward pass per pool list).")
    ap.add_argument("--keep", type=float, default=1.0)
    ap.add_argument("--noise-floor", type=float, default=1.5, help="Drop lists where the teacher's p(real) < this / N.")
    ap.add_argument("--test", type=int, default=400, help="Held-out lists evaluated.")
    ap.add_argument("--candidates", type=int, default=5)
    ap.add_argument("--history", type=int, default=5)
    ap.add_argument("--no-item-facts", action="store_true", help="Leave out each candidate's mean rating and count.")
    ap.add_argument("--objective", choices=["head", "choice", "trace"], default="head",
                    help="head: a linear choice head on the candidates' hidden states; choice / trace: LoRA SFT.")
    ap.add_argument("--head-layers", type=int, nargs="*", default=None, help="Head objective: layers tried (default 15 20 25).")
    ap.add_argument("--copies", type=int, default=1, help="Choice objective: shuffled copies of each kept list.")
    ap.add_argument("--sft-steps", type=int, default=226, help="Optimiser steps (x --accum examples each).")
    ap.add_argument("--dpo-steps", type=int, default=0)
    ap.add_argument("--answer-tokens", type=int, default=48, help="Trace objective: answer tokens trained on.")
    ap.add_argument("--lr", type=float, default=5e-4, help="SFT learning rate.")
    ap.add_argument("--warmup", type=float, default=0.1, help="Choice objective: warm-up share of the steps (then linear decay).")
    ap.add_argument("--accum", type=int, default=8, help="Choice objective: examples per optimiser step.")
    ap.add_argument("--lora-r", type=int, default=16)
    ap.add_argument("--lora-modules", choices=["attention", "all-linear"], default="all-linear",
                    help="Adapters on the attention projections only, or on the MLP projections too.")
    ap.add_argument("--top-layers", type=int, default=10, help="Adapt only the top k of the 30 layers.")
    ap.add_argument("--rotations", action="store_true", help="Also score every list under all N rotations (N x cost).")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--base-cache", type=Path, default=None,
                    help="An .npz of the base model's held-out distributions: read if it exists (same settings), else written.")
    ap.add_argument("--out", type=Path, default=None, help="Write the results as JSON here.")
    return ap.parse_args()


def scorer(model: TransformersModel, items: ItemTable, history: int):
    def score(samples):
        return model.choice_probs_many([(decision_messages(s, items, history), len(s.candidates)) for s in samples])
    return score


def evaluate(model: TransformersModel, test, items: ItemTable, args) -> dict[str, list[np.ndarray]]:
    """The model's held-out distributions: raw, prior-debiased, and rotation-averaged if asked."""
    score = scorer(model, items, args.history)
    start = time.perf_counter()
    raw = score(test)
    out = {"raw": raw, "prior-debiased": prior_debiased(raw)}
    if args.rotations:
        out["rotations"] = rotation_probs(score, test)
    print(f"  scored {len(test)} held-out lists in {time.perf_counter() - start:.0f} s", flush=True)
    return out


def base_distributions(model: TransformersModel, test, items: ItemTable, args) -> dict[str, list[np.ndarray]]:
    """The base model's held-out distributions, from ``--base-cache`` when it holds the same lists."""
    ids = np.array([f"{s.sample_id}|{','.join(s.candidates)}" for s in test])
    if args.base_cache and args.base_cache.is_file():
        saved = np.load(args.base_cache)
        views = [k for k in saved.files if k != "sample_id"]
        if np.array_equal(saved["sample_id"], ids) and ("rotations" in views or not args.rotations):
            print(f"  read from {args.base_cache.name}", flush=True)
            return {k: list(saved[k]) for k in views}
    out = evaluate(model, test, items, args)
    if args.base_cache:
        np.savez(args.base_cache, sample_id=ids, **{k: np.array(v) for k, v in out.items()})
    return out


def distil(ss: SampleSet, model: TransformersModel, args):
    """The filter's kept samples, their traces, the table, and the teacher's weights."""
    train = ss.split("train")
    weights, traces = teach(ss)
    start = time.perf_counter()
    probs = student_probs(ss, train, args.student, weights, model)
    table = select(student_table(train, traces, probs), DistillConfig(keep_share=args.keep, noise_floor=args.noise_floor))
    kept = np.flatnonzero(table["keep"].to_numpy())
    strata = table[table["keep"]].groupby("stratum").size().to_dict()
    print(f"filter ({args.student} student, {time.perf_counter() - start:.0f} s): kept {len(kept)} of {len(table)} "
          f"({int(table['noisy'].sum())} noisy); strata {strata}", flush=True)
    return [train[k] for k in kept], [traces[k] for k in kept], table, weights, strata


def finetune(model: TransformersModel, ss: SampleSet, kept, k_traces, table, weights, args) -> list:
    fcfg = FinetuneConfig(sft_steps=args.sft_steps, dpo_steps=args.dpo_steps, max_answer_tokens=args.answer_tokens,
                          sft_lr=args.lr, sft_warmup=args.warmup, grad_accum=args.accum, seed=args.seed,
                          lora_r=args.lora_r, lora_alpha=2 * args.lora_r,
                          lora_targets=ALL_LINEAR if args.lora_modules == "all-linear" else FinetuneConfig().lora_targets,
                          lora_top_layers=args.top_layers, objective=args.objective)
    if args.objective == "head":
        head, log = train_head(model.net, model.tok, choice_examples(kept, ss.items, args.history, 1, args.seed),
                               HeadConfig(layers=args.head_layers))
        print(f"choice head: layer {head.layer}, l2 {head.l2}, validation accuracy {head.validation_accuracy:.3f}", flush=True)
        model.head, logs = head, [log]
    else:
        logs = lora_finetune(model, ss, kept, k_traces, table, weights, args, fcfg)
    for log in logs:
        steps = "" if log.stage == "choice-head" else f"{log.steps} steps ({log.seconds / max(log.steps, 1):.2f} s a step), "
        print(f"{log.stage}: {steps}{log.examples} examples, {log.seconds:.0f} s, loss {log.first_loss:.3f} -> {log.last_loss:.3f}",
              flush=True)
    return logs


def lora_finetune(model: TransformersModel, ss: SampleSet, kept, k_traces, table, weights, args, fcfg) -> list:
    """LoRA SFT (choice or trace objective), then DPO if asked; ``model.net`` becomes the adapted network."""
    net = add_lora(model.net, fcfg)
    if args.objective == "choice":
        logs = [sft_choice(net, model.tok, choice_examples(kept, ss.items, args.history, args.copies, args.seed), fcfg)]
    else:
        records = sft_records(kept, k_traces, ss.items, args.history)
        validate_records(records, "sft")
        logs = [sft(net, model.tok, records, fcfg)]
        if args.dpo_steps:
            keep = table["keep"].to_numpy()
            pairs = preference_records(kept, k_traces, table["rejected"].to_numpy()[keep].tolist(), ss.items,
                                       all_terms(ss, kept), weights, args.history)
            logs.append(dpo(net, model.tok, pairs, fcfg))
    model.net = net
    return logs


def report(test, ss: SampleSet, weights, base: dict, aligned: dict, args) -> dict:
    truth = np.array([s.chosen for s in test])
    terms = all_terms(ss, test)
    rng = np.random.default_rng(args.seed)
    rows = {"random (1/N)": (1.0 / args.candidates, 1.0 / args.candidates, 1.0 / args.candidates)}
    for name, probs in (("popularity", [softmax(50 * x[:, 4]) for x in terms]),
                        ("parametric (calibrated)", [softmax(x @ weights.vector()) for x in terms])):
        h = hits(probs, truth)
        rows[name] = (h.mean(), *mean_interval(h, rng))
    paired = {}
    for view in base:
        hb, ha = hits(base[view], truth), hits(aligned[view], truth)
        rows[f"SmolLM2-135M base, {view}"] = (hb.mean(), *mean_interval(hb, rng))
        rows[f"SmolLM2-135M aligned, {view}"] = (ha.mean(), *mean_interval(ha, rng))
        paired[view] = (float((ha - hb).mean()), *mean_interval(ha - hb, rng))
    print(f"\nheld-out choice accuracy, ML-100K, {len(test)} lists of {args.candidates} (bootstrap 95% intervals)\n")
    print("| user model | accuracy | 95% interval |\n|---|---|---|")
    for name, (acc, lo, hi) in rows.items():
        print(f"| {name} | {acc:.3f} | {lo:.3f}-{hi:.3f} |")
    for view, (d, lo, hi) in paired.items():
        print(f"aligned - base, {view}: {d:+.3f} (paired 95% interval {lo:+.3f} to {hi:+.3f})")
    p_true = {}
    for name, probs in (("base", base["raw"]), ("aligned", aligned["raw"])):
        p_true[name] = float(np.mean([p[c] for p, c in zip(probs, truth)]))
        shares = " ".join(f"{LETTERS[j]} {v:.0%}" for j, v in enumerate(pick_shares(probs)))
        print(f"{name}: mean p(real choice) {p_true[name]:.3f}; top picks by position {shares}")
    return {"accuracy": {k: list(map(float, v)) for k, v in rows.items()}, "aligned_minus_base": paired, "p_true": p_true}


def main() -> None:
    args = parse()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    folder = fetch_ml100k()
    cfg = SampleConfig(n_candidates=args.candidates, history=args.history, max_train=args.pool, max_test=args.test,
                       seed=args.seed, item_facts=not args.no_item_facts)
    ss = rating_samples(read_atomic(folder / "ml-100k.inter"), ItemTable.from_atomic(folder / "ml-100k.item"),
                        read_atomic(folder / "ml-100k.user"), cfg)
    test = ss.split("test")
    print(f"samples: {len(ss.split('train'))} training (pool), {len(test)} held-out, {args.candidates} candidates", flush=True)
    model = TransformersModel.load(batch_size=1)
    kept, k_traces, table, weights, strata = distil(ss, model, args)
    logs = finetune(model, ss, kept, k_traces, table, weights, args)
    print("base model:", flush=True)
    with without_tuning(model):  # the same network without its head or LoRA adapters is the base model
        base = base_distributions(model, test, ss.items, args)
    print("aligned model:", flush=True)
    aligned = evaluate(model, test, ss.items, args)
    result = report(test, ss, weights, base, aligned, args)
    print(f"total {time.perf_counter() - t0:.0f} s on {args.threads} thread(s)")
    if args.out:
        args.out.write_text(json.dumps({
            "args": {k: str(v) for k, v in vars(args).items()}, **result, "kept": len(kept), "strata": strata,
            "training": [log.model_dump() for log in logs], "weights": weights.model_dump()}, indent=2))


if __name__ == "__main__":
    main()
