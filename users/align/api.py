"""``align()``: logged feedback in, distilled TRL JSONL (and optionally a tuned small simulator) out.

    from recoworld.users.align.api import AlignConfig, align
    report = align("ml-100k/", "align-out/", AlignConfig(student="parametric"))

Sources: a RecoWorld run folder (exposures from its impressions), a folder of RecBole atomic files
(``*.inter`` + ``*.item`` [+ ``*.user``]), a MovieLens folder, or an interactions file with an items file.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from recoworld.llm.base import LanguageModel
from recoworld.progress import stage
from recoworld.world.readers import load_interactions, load_items, load_movielens, read_atomic
from recoworld.logs.folder import read_table
from recoworld.users.align.distill import DistillConfig, select, student_table
from recoworld.users.align.evaluate import HeldOutAccuracy, held_out_accuracy, without_tuning
from recoworld.users.align.export import choice_examples, preference_records, sft_records, write_jsonl
from recoworld.users.align.prompts import decision_messages
from recoworld.users.align.samples import ChoiceSample, ItemTable, SampleConfig, SampleSet, exposure_samples, rating_samples
from recoworld.users.align.settings import FinetuneConfig, TrainLog
from recoworld.users.align.traces import ChoiceWeights, all_terms, softmax, teach


class AlignConfig(BaseModel):
    """The whole pipeline's settings."""

    model_config = ConfigDict(extra="forbid")

    samples: SampleConfig = Field(default_factory=SampleConfig)
    distill: DistillConfig = Field(default_factory=DistillConfig)
    finetune: FinetuneConfig = Field(default_factory=FinetuneConfig)
    student: Literal["smollm2", "parametric"] = Field(
        "smollm2", description="Whose uncertainty drives the filter: the packaged small LLM, or the parametric model (no torch).")
    train: bool = Field(False, description="Tune the small model on the kept samples: LoRA SFT (then DPO if dpo_steps > 0), "
                                                "or a choice head (finetune.objective head).")


class AlignReport(BaseModel):
    """What ``align`` produced."""

    model_config = ConfigDict(extra="forbid")

    source: str
    train_samples: int
    test_samples: int
    kept: int
    noisy: int
    strata: dict[str, int] = Field(description="Kept samples per decision stratum.")
    teachers: dict[str, int] = Field(description="Traces per teacher (an LLM's name, parametric, parametric-fallback).")
    weights: ChoiceWeights
    files: dict[str, str]
    training: list[TrainLog] = Field(default_factory=list)
    held_out: HeldOutAccuracy | None = Field(None, description="With train: the base and tuned model on the held-out lists.")
    seconds: float


def load_source(path: str | Path, items: str | Path | None = None, config: SampleConfig | None = None) -> SampleSet:
    """Samples from a run folder, RecBole atomic folder, MovieLens folder, or interactions + items files."""
    p = Path(path)
    if not p.exists():
        raise ValueError(f"{p}: not found")
    if p.is_dir() and (p / "manifest.json").is_file():
        catalog = read_table(p, "catalog")
        return exposure_samples(read_table(p, "impressions"), ItemTable.from_frame(catalog), config)
    if p.is_dir() and list(p.glob("*.inter")):
        inter, item_files = next(iter(p.glob("*.inter"))), list(p.glob("*.item"))
        if not item_files:
            raise ValueError(f"{p}: has {inter.name} but no .item file")
        users = list(p.glob("*.user"))
        return rating_samples(read_atomic(inter), ItemTable.from_atomic(item_files[0]),
                              read_atomic(users[0]) if users else None, config)
    if p.is_dir():
        catalog, inter = load_movielens(p)
        return rating_samples(inter, _catalog_items(catalog), None, config)
    if items is None:
        raise ValueError(f"{p.name}: an interactions file needs --items")
    catalog = load_items(items)
    return rating_samples(load_interactions(p, catalog), _catalog_items(catalog), None, config)


def _catalog_items(catalog) -> ItemTable:
    return ItemTable(np.asarray(catalog.item_id).astype(str), [str(t) for t in catalog.title],
                     [list(t) for t in catalog.tags])


def student_probs(sample_set: SampleSet, samples, student: str, weights: ChoiceWeights, model=None) -> list[np.ndarray]:
    """The student's choice distribution per sample: the small LLM's letter probabilities or the parametric softmax."""
    if student == "parametric":
        return [softmax(x @ weights.vector()) for x in all_terms(sample_set, samples)]
    if model is None:
        from recoworld.users.align.adapter import TransformersModel

        model = TransformersModel.load()
    hist = sample_set.config.history
    return probs_in_steps(model, [(decision_messages(s, sample_set.items, hist), len(s.candidates)) for s in samples],
                          "the small model's choice probabilities")


def probs_in_steps(model, requests: list, name: str, step: int = 32) -> list[np.ndarray]:
    """``model.choice_probs_many`` over ``requests`` in slices of ``step`` lists, as one named stage with a count."""
    out: list[np.ndarray] = []
    with stage(name, total=len(requests)) as progress:
        for start in range(0, len(requests), step):
            out += model.choice_probs_many(requests[start:start + step])
            progress.advance(len(requests[start:start + step]))
    return out


def score_held_out(model, sample_set: SampleSet, weights: ChoiceWeights) -> HeldOutAccuracy:
    """The tuned model, its base model and the parametric user on the held-out lists."""
    test = sample_set.split("test")
    requests = [(decision_messages(s, sample_set.items, sample_set.config.history), len(s.candidates)) for s in test]
    aligned = probs_in_steps(model, requests, "held-out lists, tuned model")
    with without_tuning(model):
        base = probs_in_steps(model, requests, "held-out lists, base model")
    parametric = [softmax(x @ weights.vector()) for x in all_terms(sample_set, test)]
    return held_out_accuracy(np.array([s.chosen for s in test]), parametric, base, aligned, sample_set.config.seed)


def align(source: str | Path, out: str | Path, config: AlignConfig | None = None, items: str | Path | None = None,
          teacher: LanguageModel | None = None) -> AlignReport:
    """Samples, traces, distillation and JSONL export into ``out`` (and an adapter in ``out/adapter`` with train)."""
    config = config or AlignConfig()
    start = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ss = load_source(source, items, config.samples)  # outside a stage: bad input is one error line, nothing before it
    train = ss.split("train")
    if not train:
        raise ValueError(f"{Path(source).name}: no training samples (too few choices per user for min_history)")
    with stage("writing decision traces"):
        weights, traces = teach(ss, teacher)
    model = None
    if config.student == "smollm2" or config.train:
        from recoworld.users.align.adapter import TransformersModel

        with stage("loading the small model"):
            model = TransformersModel.load()
    probs = student_probs(ss, train, config.student, weights, model)
    with stage("distilling and writing the JSONL"):
        table = select(student_table(train, traces, probs), config.distill)
        kept = np.flatnonzero(table["keep"].to_numpy())
        k_samples, k_traces = [train[k] for k in kept], [traces[k] for k in kept]
        hist = config.samples.history
        sft = sft_records(k_samples, k_traces, ss.items, hist)
        pref = preference_records(k_samples, k_traces, table["rejected"].to_numpy()[kept].tolist(), ss.items,
                                  all_terms(ss, k_samples), weights, hist)
        files = {"sft": str(write_jsonl(out / "sft.jsonl", sft, "sft")),
                 "preference": str(write_jsonl(out / "preference.jsonl", pref, "preference"))}
        table.to_csv(out / "distill.csv", index=False)
        files["distill"] = str(out / "distill.csv")
        (out / "samples.jsonl").write_text("".join(s.model_dump_json() + "\n" for s in ss.samples), encoding="utf-8")
        files["samples"] = str(out / "samples.jsonl")
    logs = []
    if config.train and config.finetune.objective == "head":
        from recoworld.users.align.choice_head import train_head

        head, log = train_head(model.net, model.tok, choice_examples(k_samples, ss.items, hist), config.finetune.head)
        logs.append(log)
        files["adapter"] = str(head.save(out / "adapter").parent)
        model.head = head
    elif config.train:
        from recoworld.users.align.finetune import add_lora, dpo, save_adapter, sft_choice
        from recoworld.users.align.finetune import sft as run_sft

        net = add_lora(model.net, config.finetune)
        if config.finetune.objective == "choice":
            examples = choice_examples(k_samples, ss.items, hist, copies=2, seed=config.finetune.seed)
            logs.append(sft_choice(net, model.tok, examples, config.finetune))
        else:
            logs.append(run_sft(net, model.tok, sft, config.finetune))
        if config.finetune.dpo_steps:
            logs.append(dpo(net, model.tok, pref, config.finetune))
        files["adapter"] = str(save_adapter(net, model.tok, out / "adapter"))
        model.net = net
    held_out = None
    if config.train and ss.split("test"):
        with stage("scoring the held-out lists"):
            held_out = score_held_out(model, ss, weights)
    report = AlignReport(
        source=str(Path(source).name), train_samples=len(train), test_samples=len(ss.split("test")), kept=len(kept),
        noisy=int(table["noisy"].sum()),
        strata={str(k): int(v) for k, v in table[table["keep"]].groupby("stratum").size().items()},
        teachers=dict(Counter(t.teacher for t in traces)), weights=weights, files=files, training=logs, held_out=held_out,
        seconds=round(time.perf_counter() - start, 1))
    (out / "report.json").write_text(json.dumps(report.model_dump(), indent=2), encoding="utf-8")
    return report


def read_samples(path: str | Path) -> list[ChoiceSample]:
    """The samples an ``align`` run wrote (``samples.jsonl``)."""
    return [ChoiceSample.model_validate_json(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line]
