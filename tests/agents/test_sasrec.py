"""SASRec: the model's guarantees (causality, learning, determinism, persistence, cold users) and its
uses as a population-run arm and as ToolRec's base ranker."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from recoworld.agents import PopularRecommender, make_recommender  # noqa: E402
from recoworld.agents.sasrec import SASRecConfig, SASRecModel, fit_sasrec, ranking_metrics, training_windows  # noqa: E402
from recoworld.agents.sasrec_arm import SASRecRecommender  # noqa: E402
from recoworld.runs.runner import PopulationRun  # noqa: E402
from recoworld.scenario import load_scenario  # noqa: E402

N_ITEMS = 30
TINY = SASRecConfig(max_len=10, hidden=32, blocks=2, heads=2, inner=64, dropout=0.1, epochs=30, batch_size=64)


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def cyclic_sequences(n_users: int = 200, seed: int = 0) -> list[list[int]]:
    """Each user walks the catalog in order from a random start: item i is always followed by i + 1."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_users):
        start, length = int(rng.integers(N_ITEMS)), int(rng.integers(3, 15))
        out.append([(start + j) % N_ITEMS for j in range(length)])
    return out


@pytest.fixture(scope="module")
def fitted():
    return fit_sasrec(cyclic_sequences(), N_ITEMS, TINY)


def test_a_later_item_never_changes_an_earlier_positions_output():
    torch.manual_seed(0)
    model = SASRecModel(N_ITEMS, TINY).eval()
    seq = torch.tensor([[0, 0, 3, 7, 1, 9, 4, 12, 5, 8]])
    changed = seq.clone()
    changed[0, 7:] = torch.tensor([20, 21, 22])
    with torch.no_grad():
        a, b = model(seq), model(changed)
    torch.testing.assert_close(a[:, :7], b[:, :7])
    assert not torch.allclose(a[:, 7:], b[:, 7:])  # the mask is not hiding everything


@pytest.mark.parametrize("length", [2, 5, 11, 12, 30])
def test_new_targets_make_every_item_a_target_once_with_its_longest_context(length):
    seq = list(range(100, 100 + length))
    inputs, targets = training_windows([seq], max_len=5, stride=2, new_only=True)
    pairs = [(tuple(x for x in row_in[: j + 1] if x), t) for row_in, row_t in zip(inputs, targets)
             for j, t in enumerate(row_t) if t]
    assert sorted(t - 1 for _, t in pairs) == seq[1:]  # each item after the first is a target exactly once
    for context, t in pairs:  # its context: the items just before it, at least max_len - stride + 1 of them
        before = seq[: seq.index(t - 1)]
        assert [c - 1 for c in context] == before[len(before) - len(context):]
        assert len(context) >= min(4, len(before))


def test_learns_that_item_i_is_followed_by_i_plus_one(fitted):
    histories = [[(s + j) % N_ITEMS for j in range(int(n))] for s, n in zip(range(N_ITEMS), np.tile([2, 5, 9], 10))]
    truth = np.array([(h[-1] + 1) % N_ITEMS for h in histories])
    hit1 = (fitted.score(histories).argmax(1) == truth).mean()
    assert hit1 > 0.9
    assert ranking_metrics(fitted.score(histories), truth)["hit@10"] == 1.0


def test_same_seed_same_scores_and_another_seed_differs():
    seqs = cyclic_sequences(60)
    config = TINY.model_copy(update={"epochs": 3})
    histories = seqs[:10]
    a = fit_sasrec(seqs, N_ITEMS, config, seed=5).score(histories)
    b = fit_sasrec(seqs, N_ITEMS, config, seed=5).score(histories)
    c = fit_sasrec(seqs, N_ITEMS, config, seed=6).score(histories)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_save_and_load_give_the_same_scores(fitted, tmp_path):
    fitted.save(tmp_path / "sasrec.pt")
    from recoworld.agents.sasrec import FittedSASRec

    loaded = FittedSASRec.load(tmp_path / "sasrec.pt")
    histories = [[1, 2, 3], [], [7]]
    np.testing.assert_array_equal(loaded.score(histories), fitted.score(histories))
    assert loaded.config == fitted.config


def test_an_empty_history_gets_the_popularity_ranking():
    seqs = [[0, 1, 2], [0, 1], [0, 3], [2, 0]]  # item 0 four times, 1 twice, 2 twice, 3 once, 4 never
    fitted = fit_sasrec(seqs, 5, TINY.model_copy(update={"epochs": 2}))
    empty, some = fitted.score([[], [1]])
    assert empty.argmax() == 0 and empty[4] == empty.min() and empty[0] > empty[3] > empty[4]
    assert not np.allclose(some, empty)


def test_bad_input_names_what_is_wrong():
    with pytest.raises(ValueError, match=r"items must be ints in \[0, n_items=5\)"):
        fit_sasrec([[1, 7]], 5, TINY)
    with pytest.raises(ValueError, match="no sequence has two or more items"):
        fit_sasrec([[1], [2]], 5, TINY)
    with pytest.raises(ValueError, match="multiple of heads"):
        SASRecConfig(hidden=30, heads=4)
    with pytest.raises(ValueError, match="sasrec: bad parameters"):
        make_recommender("sasrec", {"hiden": 8})


def test_the_arm_learns_each_users_next_item_from_impression_logs():
    """Log rows in serving order: each user engages with items 0,1,2,... from their own start, skipping others."""
    rows = []
    for u, seq in enumerate(cyclic_sequences(150)):
        for item in seq:
            rows.append((f"u{u}", f"i{(item + 13) % N_ITEMS}", "skip", 0.0))
            rows.append((f"u{u}", f"i{item}", "click", 30.0))
    rec = SASRecRecommender(**TINY.model_dump(exclude={"seed"}))
    rec.retrain(pd.DataFrame(rows, columns=["user", "item", "action", "watch_seconds"]))
    assert rec.trained and rec.learns_from_logs
    # the same model through the logged item ids: the user who clicked 4, 5, 6 is next scored highest on 7
    codes = {item: code for code, item in enumerate(rec.item_ids)}
    scores = rec.fitted.score([[codes["i4"], codes["i5"], codes["i6"]]])[0]
    assert rec.item_ids[scores.argmax()] == "i7"
    # run checkpoints and shard copies pickle the arm
    copy = pickle.loads(pickle.dumps(rec))
    np.testing.assert_array_equal(copy.fitted.score([[codes["i4"]]]), rec.fitted.score([[codes["i4"]]]))


def test_wrappers_retrain_their_sasrec_base():
    following = make_recommender("instruction_following", {"base": "sasrec", "base_params": {"epochs": 1}})
    assert following.learns_from_logs and not make_recommender("toolrec").learns_from_logs
    logs = pd.DataFrame({"user": ["a", "a", "a"], "item": ["x", "y", "z"], "action": ["click", "like", "skip"],
                         "watch_seconds": [5.0, 9.0, 0.0]})
    following.retrain(logs)
    assert following.base.trained and following.base.sequences == {"a": [0, 1]}


SMALL_RUN = {
    "name": "sasrec-small",
    "seed": 3,
    "catalog": {"synthetic": {"n_items": 500, "n_topics": 8, "n_creators": 30}},
    "env": {"num_candidates": 40, "slate_size": 5, "horizon_days": 4, "max_slates_per_session": 8},
    "users": {"n_users": 150},
}
SMALL_ARM = {"epochs": 10, "hidden": 32, "inner": 64, "max_len": 20}


@pytest.mark.slow
def test_a_sasrec_arm_retrained_on_logs_beats_popular_and_random_on_ctr():
    recs = [{"name": "random"}, {"name": "popular"}, {"name": "sasrec", "params": SMALL_ARM}]
    result = PopulationRun(load_scenario({**SMALL_RUN, "recommenders": recs})).run()
    ctr = {arm: s["ctr"] for arm, s in result.summaries().items()}
    assert ctr["sasrec"] > ctr["popular"] and ctr["sasrec"] > ctr["random"], ctr


def test_toolrec_with_a_sasrec_base_finishes_its_slates_in_a_scenario():
    from recoworld.agents.toolrec import ToolRec

    rec = ToolRec(base="sasrec", base_params=SMALL_ARM)
    data = {**SMALL_RUN, "users": {"n_users": 40}, "env": {**SMALL_RUN["env"], "horizon_days": 2},
            "recommenders": [{"name": "toolrec", "params": {"base": "sasrec"}}]}
    result = PopulationRun(load_scenario(data), [rec]).run()
    assert rec.learns_from_logs and rec.base.trained  # retrained underneath after day 1, served on day 2
    assert result.summaries()["toolrec"]["ctr"] > 0
    assert rec.trajectories and all(t[-1].action.kind == "finish" and not t[-1].error for t in rec.trajectories)


def test_the_arm_scores_thousands_of_users_in_one_call():
    from recoworld.agents.protocol import UserView
    from recoworld.world.synthetic import SyntheticCatalogConfig, generate_catalog
    from recoworld.users.instructions import NO_TOPIC

    catalog = generate_catalog(SyntheticCatalogConfig(n_items=200, n_topics=4, n_creators=10), seed=0)
    rng = np.random.default_rng(0)
    rows = [(f"u{u}", catalog.item_id[i], "click", 10.0) for u in range(50) for i in rng.choice(150, 8, replace=False)]
    rec = SASRecRecommender(**{**SMALL_ARM, "epochs": 2})
    rec.retrain(pd.DataFrame(rows, columns=["user", "item", "action", "watch_seconds"]))
    b, m, t, d = 3000, 40, catalog.n_topics, catalog.embeddings.shape[1]
    history = np.full((b, 6), -1)
    history[::2, -2:] = rng.integers(0, 200, size=(b // 2, 2))  # half the strangers engaged with two items
    consumed = np.zeros((b, m), dtype=bool)
    consumed[:, 0] = True
    view = UserView(
        catalog=catalog, candidates=rng.integers(0, 200, size=(b, m)), slate_size=5,
        user_ids=[f"u{k % 60}" if k < 120 else f"new{k}" for k in range(b)],
        est_taste=np.zeros((b, d), np.float32), click_topics=np.zeros((b, t)), shown_topics=np.zeros((b, t)),
        consumed=consumed, instr_more=np.full(b, NO_TOPIC), instr_less=np.full(b, NO_TOPIC),
        instr_surprise=np.zeros(b, dtype=bool), session_step=np.zeros(b, np.int64), day=np.zeros(b, np.int64),
        history_items=history, history_engagement=(history >= 0).astype(float),
    )
    scores = rec.scores(view)
    assert scores.shape == (b, m) and np.isfinite(scores).all()
    assert (scores.argmin(1) == 0).all()  # a watched candidate goes last
    popular = PopularRecommender().scores(view)
    nothing_known = np.array([k >= 120 and k % 2 == 1 for k in range(b)])  # strangers without engagement
    np.testing.assert_array_equal(scores[nothing_known], popular[nothing_known])
    assert not np.allclose(scores[~nothing_known], popular[~nothing_known])
