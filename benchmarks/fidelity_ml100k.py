"""Fidelity to real users on the real MovieLens-100K: calibrated users against tuned baselines.

The data come from the ``recbole==1.2.1`` wheel at run time (``benchmarks/ml100k.py``; never
committed) and are read as RecBole atomic files. Split: the latest 20% of each user's ratings held
out; rating >= 4 is engagement. The suite (``recoworld.fidelity``) scores the parametric
calibrated users, the hybrid and LLM backends (through the scripted test double: a plumbing check,
not a language model's judgement; pass another ``LanguageModel``, e.g. a local one, in ``backends``
for real numbers),
popularity by like-rate and by count, the biased logistic MF tuned on a validation split carved
from the training period, and SASRec (``recoworld.agents.sasrec_fidelity``, plugged in by name; skipped without torch),
under every protocol. In the 1:m protocol each baseline picks by a Bernoulli draw of its probability
and by a threshold and a top share tuned on validation lists from the training period
(``recoworld.fidelity.pick_rules``), alone and combined with the selection stage; the calibrated
users pick by the kernel's draw and by the same two rules on the kernel's utility. Prints Markdown
tables and checks the targets, like rule against like rule.

    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python benchmarks/fidelity_ml100k.py
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from ml100k import fetch_ml100k  # noqa: E402

from recoworld.fidelity.baselines import use_baseline  # noqa: E402
from recoworld.fidelity.suite import FidelityReport, fidelity_suite, format_tables  # noqa: E402
from recoworld.llm.scripted import ScriptedModel  # noqa: E402
from recoworld.progress import reporting  # noqa: E402

BACKENDS = ("parametric", "hybrid", "llm")
FAMILIES = ("", " (tuned threshold)", " (tuned top share)")
SLOT = re.compile(r"^<<< \[(\d+)\]", re.MULTILINE)


def first_slot_user(messages, schema):
    """A scripted LLM user: clicks the first item of every slate, skips the rest, never leaves."""
    if schema.__name__ != "SlateDecision":
        return {name: "" for name in schema.model_fields}  # words for the hybrid user (text fields)
    k = len(SLOT.findall(messages[-1]["content"]))
    return {"items": [{"position": j, "action": "click" if j == 0 else "skip", "watch_seconds": 30.0 if j == 0 else 0.0,
                       "reason": "first"} for j in range(k)], "leave": False, "mindset": "fine", "instruction": None,
            "session_summary": None}


def targets(report: FidelityReport) -> list[str]:
    """The issue's "must show" checks, each with its margin."""
    e = report.engagement
    sim = "simulator"
    lines = [
        f"AUC simulator - MF = {e.auc[sim] - e.auc['mf']:+.4f} (target >= 0)",
        f"AUC simulator - (popularity + 0.05) = {e.auc[sim] - max(e.auc['popularity_rate'], e.auc['popularity_count']) - 0.05:+.4f} (target >= 0)",
        f"log-loss simulator - min(MF, popularity) = {e.log_loss[sim] - min(e.log_loss['mf'], e.log_loss['popularity_rate']):+.4f} (target < 0)",
    ]
    for ratio, scores in report.discrimination.items():
        for rule in FAMILIES:  # like against like: the kernel's own pick against Bernoulli draws, tuned against tuned
            best = max(("mf", "popularity_rate", "popularity_count"), key=lambda m: scores[m + rule].f1)
            lines.append(f"1:m F1 parametric{rule or ' (kernel pick)'} - best of MF and popularity{rule or ' (Bernoulli)'} at {ratio} = "
                         f"{scores['parametric' + rule].f1 - scores[best + rule].f1:+.4f} (target > 0; {best})")
            if "sasrec" + rule in scores:
                lines.append(f"1:m F1 parametric{rule} - SASRec{rule} at {ratio} = {scores['parametric' + rule].f1 - scores['sasrec' + rule].f1:+.4f}")
        rivals = {m: s for m, s in scores.items() if m.split(" (")[0] not in BACKENDS}
        top = max(rivals, key=lambda m: rivals[m].f1)
        ours = max((m for m in scores if m.startswith("parametric")), key=lambda m: scores[m].f1)
        lines.append(f"1:m F1 best parametric row ({ours}) - best of every baseline row (tuned picks, +selection, pick every "
                     f"item) at {ratio} = {scores[ours].f1 - rivals[top].f1:+.4f} (best: {top}, F1 {rivals[top].f1:.3f})")
    if "sasrec" in e.auc:
        lines.append(f"AUC simulator - SASRec = {e.auc[sim] - e.auc['sasrec']:+.4f}; log-loss simulator - SASRec = "
                     f"{e.log_loss[sim] - e.log_loss['sasrec']:+.4f}")
    dyn = report.behaviour.get("training period (dynamics fit)", {})
    for key, bar in (("session_length", 0.05), ("activity", 0.05), ("inter_visit_gap", 0.1)):
        if key in dyn:
            lines.append(f"JSD {key} = {dyn[key]:.3f} (target <= {bar})")
    return lines


def register_sasrec_baseline() -> None:
    """SASRec (light: 1 thread, early stopping) as a fidelity baseline, when torch is installed."""
    try:
        use_baseline("sasrec")
    except ImportError as exc:
        print(f"SASRec baseline skipped: torch is not installed ({exc}); pip install 'recoworld[rl]' to include it")


def main() -> None:
    folder = fetch_ml100k()
    register_sasrec_baseline()
    start = time.perf_counter()
    double = ScriptedModel(first_slot_user)
    with reporting():  # a line per stage when piped, a bar on a terminal
        report, calibration = fidelity_suite(folder, backends={"parametric": None, "hybrid": double, "llm": double})
    seconds = time.perf_counter() - start
    print(format_tables(report))
    fit = calibration.result
    print(f"\nfitted: factors {fit.weights.factors}, L2 {fit.weights.l2}, recency {fit.weights.recency}; dynamics "
          + ", ".join(f"{k} {v:g}" for k, v in (fit.dynamics.params if fit.dynamics else {}).items()))
    print("\n".join(["", "targets:", *targets(report)]))
    print(f"\nsuite ran in {seconds:.0f} s (1 thread); load average (1, 5, 15 min): {Path('/proc/loadavg').read_text().split()[:3]}")


if __name__ == "__main__":
    main()
