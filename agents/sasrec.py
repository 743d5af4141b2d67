"""SASRec: self-attentive sequential recommendation (Kang & McAuley, ICDM 2018) in torch.

Causal self-attention over a user's engaged-item sequence: learned item and position
embeddings, pre-norm transformer blocks (layer norm, dropout), and scores for the next item
from the last position's state against the same item embeddings (shared input/output).
Trained with cross-entropy over the whole catalog (the default, as RecBole's ``loss_type: CE``)
or binary cross-entropy against sampled negatives (the paper's loss).

The model API, independent of the simulation (the fidelity suite and the ML-100K benchmark use it):

    fitted = fit_sasrec(sequences, n_items, SASRecConfig(epochs=50), valid=(histories, targets))
    scores = fitted.score(histories)          # (n_users, n_items), one row per history
    fitted.save("model.pt"); FittedSASRec.load("model.pt")

Items are ints 0..n_items-1, sequences oldest first. A user with an empty history is scored by
item popularity in the training data. Fitting and scoring are deterministic on CPU for a seed:
torch's global seed is set from it, deterministic algorithms are on and ``threads`` (1 by default)
intra-op threads are used; the previous thread count is restored afterwards.
"""

from __future__ import annotations

import copy
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from recoworld.progress import stage

EVAL_USERS = 1024  # histories scored per forward pass


class SASRecConfig(BaseModel):
    """Architecture and training of one SASRec model."""

    model_config = ConfigDict(extra="forbid")

    max_len: int = Field(50, ge=1, description="Longest history the model reads (older items are dropped).")
    hidden: int = Field(64, ge=1, description="Embedding and hidden size.")
    blocks: int = Field(2, ge=1, description="Transformer blocks.")
    heads: int = Field(2, ge=1, description="Attention heads (must divide hidden).")
    inner: int = Field(256, ge=1, description="Feed-forward inner size.")
    dropout: float = Field(0.2, ge=0.0, lt=1.0, description="Dropout on embeddings, attention and feed-forward.")
    loss: Literal["ce", "bce"] = Field("ce", description="ce: softmax over the catalog; bce: sampled negatives.")
    negatives: int = Field(1, ge=1, description="Sampled negatives per position (loss='bce').")
    epochs: int = Field(200, ge=1, description="Most passes over the training windows.")
    batch_size: int = Field(128, ge=1, description="Windows per gradient step.")
    lr: float = Field(1e-3, gt=0.0, description="Adam learning rate.")
    weight_decay: float = Field(0.0, ge=0.0, description="Adam weight decay.")
    stride: int | None = Field(None, ge=1, description="Step between training windows of a long sequence (default max_len).")
    windows: int | None = Field(None, ge=1, description="Most recent training windows kept per sequence (default all).")
    targets: Literal["all", "new"] = Field(
        "all", description="all: every position of a window is a target; new: a window's last `stride` positions "
        "only (every item a target once an epoch, with at least max_len - stride items of context).")
    patience: int = Field(10, ge=1, description="Validations without a better NDCG@10 before stopping (with valid data).")
    eval_every: int = Field(1, ge=1, description="Epochs between validations.")
    seed: int = Field(0, description="Seeds initialisation, dropout, batch order and negatives.")
    threads: int = Field(1, ge=1, description="torch intra-op threads while fitting and scoring.")

    def model_post_init(self, _: object) -> None:
        """Refuse a hidden size that the heads do not divide."""
        if self.hidden % self.heads:
            raise ValueError(f"sasrec: hidden ({self.hidden}) must be a multiple of heads ({self.heads})")


# ----------------------------------------------------------------------------- the network
class SASRecBlock(nn.Module):
    """Pre-norm block: x + attention(LN(x)), then x + feed-forward(LN(x))."""

    def __init__(self, hidden: int, heads: int, inner: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        self.norm1 = nn.LayerNorm(hidden)
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.out = nn.Linear(hidden, hidden)
        self.norm2 = nn.LayerNorm(hidden)
        self.ff = nn.Sequential(nn.Linear(hidden, inner), nn.GELU(), nn.Dropout(dropout), nn.Linear(inner, hidden))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """Pre-norm self-attention (causal, masked by ``allowed``) and feed-forward, each with a residual."""
        b, length, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, length, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        p = self.dropout if self.training else 0.0
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=p)
        x = x + self.drop(self.out(att.transpose(1, 2).reshape(b, length, d)))
        return x + self.drop(self.ff(self.norm2(x)))


class SASRecModel(nn.Module):
    """Item sequences (b, L), left-padded with 0, items 1..n_items → hidden states (b, L, hidden)."""

    def __init__(self, n_items: int, config: SASRecConfig) -> None:
        super().__init__()
        self.n_items = n_items
        self.item = nn.Embedding(n_items + 1, config.hidden, padding_idx=0)
        self.position = nn.Embedding(config.max_len, config.hidden)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(
            SASRecBlock(config.hidden, config.heads, config.inner, config.dropout) for _ in range(config.blocks)
        )
        self.norm = nn.LayerNorm(config.hidden)
        self.apply(self._init)

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """(batch, length, hidden) states of left-padded item sequences (0 = padding): scaled item embeddings plus
        positions through the causal blocks, normalised."""
        length = seq.shape[1]
        pad = seq == 0
        x = self.item(seq) * self.item.embedding_dim**0.5 + self.position.weight[-length:]
        x = self.drop(x) * ~pad[..., None]
        # causal, never to a padded key (each position may always see itself, so no row is empty)
        causal = torch.ones(length, length, dtype=torch.bool, device=seq.device).tril()
        allowed = (causal & ~pad[:, None, :]) | torch.eye(length, dtype=torch.bool, device=seq.device)
        allowed = allowed[:, None]  # (b, 1, L, L), broadcast over heads
        for block in self.blocks:
            x = block(x, allowed) * ~pad[..., None]
        return self.norm(x)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """(..., hidden) states → (..., n_items) scores of items 1..n_items."""
        return hidden @ self.item.weight[1:].T


# ----------------------------------------------------------------------------- determinism
@contextmanager
def torch_settings(threads: int, seed: int | None = None) -> Iterator[None]:
    """Deterministic torch on ``threads`` threads (seeded when ``seed`` is given); restored on exit."""
    before_threads, before_det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    if seed is not None:
        torch.manual_seed(seed)
    try:
        yield
    finally:
        torch.set_num_threads(before_threads)
        torch.use_deterministic_algorithms(before_det)


def pad_histories(histories: Sequence[Sequence[int]], max_len: int) -> np.ndarray:
    """(n, max_len) model ids (item + 1), the last ``max_len`` items right-aligned, 0 = padding."""
    out = np.zeros((len(histories), max_len), dtype=np.int64)
    for r, h in enumerate(histories):
        tail = np.asarray(h, dtype=np.int64)[-max_len:]
        if len(tail):
            out[r, max_len - len(tail) :] = tail + 1
    return out


def training_windows(
    sequences: Sequence[Sequence[int]], max_len: int, stride: int, windows: int | None = None, new_only: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets), each (w, max_len) left-padded model ids: every window of a sequence predicts
    each next item. Windows end at the sequence's end and every ``stride`` items before it (at most
    ``windows`` of them per sequence). ``new_only``: a window's targets are its last ``stride`` positions
    (the oldest window kept keeps all of its own), so each item is a target once, with its longest context."""
    inputs, targets = [], []
    for seq in sequences:
        s = np.asarray(seq, dtype=np.int64) + 1
        ends = list(range(len(s), 1, -stride))[:windows]
        for end in ends:
            lo = max(0, end - 1 - max_len)
            inputs.append(s[lo : end - 1])
            target = s[lo + 1 : end].copy()
            if new_only and end != ends[-1]:
                target[: max(0, len(target) - stride)] = 0  # a target of an older window already
            targets.append(target)
    if not inputs:
        raise ValueError("sasrec: no sequence has two or more items to learn from")
    return pad_histories([r - 1 for r in inputs], max_len), pad_histories([r - 1 for r in targets], max_len)


# ----------------------------------------------------------------------------- fitted model
class FittedSASRec:
    """A trained model with what scoring needs: the config, the catalog size and item popularity."""

    def __init__(self, model: SASRecModel, config: SASRecConfig, popularity: np.ndarray) -> None:
        self.model = model.eval()
        self.config = config
        self.popularity = np.asarray(popularity, dtype=np.float64)
        self.log: list[dict[str, float]] = []  # per validation: epoch, loss, ndcg@10
        self.best_epoch = 0
        self.train_seconds = 0.0  # wall time of fit_sasrec
        self.train_cpu_seconds = 0.0  # CPU time of this process during fit_sasrec

    @property
    def n_items(self) -> int:
        """Items the network scores (the catalog it was fitted on)."""
        return self.model.n_items

    def states(self, histories: Sequence[Sequence[int]]) -> np.ndarray:
        """(n, hidden) the last position's state of each history (zeros for an empty history)."""
        padded = pad_histories(histories, self.config.max_len)
        out = np.zeros((len(histories), self.config.hidden), dtype=np.float32)
        with torch_settings(self.config.threads), torch.no_grad():
            for s in range(0, len(padded), EVAL_USERS):
                out[s : s + EVAL_USERS] = self.model(torch.from_numpy(padded[s : s + EVAL_USERS]))[:, -1].numpy()
        out[padded[:, -1] == 0] = 0.0
        return out

    def item_vectors(self) -> np.ndarray:
        """(n_items, hidden) output embeddings: score = state · item vector."""
        return self.model.item.weight[1:].detach().numpy()

    def score(self, histories: Sequence[Sequence[int]]) -> np.ndarray:
        """(n, n_items) next-item scores; an empty history gets item popularity (share of training items)."""
        out = self.states(histories) @ self.item_vectors().T
        empty = np.array([len(h) == 0 for h in histories], dtype=bool)
        out[empty] = self.popularity / max(self.popularity.sum(), 1.0)
        return out

    def save(self, path: str | Path) -> None:
        """Save the config, weights, popularity and best epoch to ``path`` (torch format)."""
        state = {"config": self.config.model_dump(), "n_items": self.n_items, "weights": self.model.state_dict(),
                 "popularity": torch.from_numpy(self.popularity), "best_epoch": self.best_epoch}
        torch.save(state, Path(path))

    @classmethod
    def load(cls, path: str | Path) -> "FittedSASRec":
        """The model saved by :meth:`save` (weights only: no code is unpickled)."""
        state = torch.load(Path(path), weights_only=True)
        config = SASRecConfig(**state["config"])
        model = SASRecModel(int(state["n_items"]), config)
        model.load_state_dict(state["weights"])
        fitted = cls(model, config, state["popularity"].numpy())
        fitted.best_epoch = int(state["best_epoch"])
        return fitted


def fit_sasrec(
    sequences: Sequence[Sequence[int]],
    n_items: int,
    config: SASRecConfig | None = None,
    seed: int | None = None,
    valid: tuple[Sequence[Sequence[int]], Sequence[int]] | None = None,
    verbose: bool = False,
) -> FittedSASRec:
    """Train on item sequences (ints in [0, n_items), oldest first). With ``valid`` = (histories, next
    items), validate NDCG@10 every ``eval_every`` epochs, stop after ``patience`` validations without
    improvement and keep the best weights; without it, train all ``epochs``. ``seed`` overrides config.seed."""
    config = config or SASRecConfig()
    if seed is not None:
        config = config.model_copy(update={"seed": int(seed)})
    flat = np.concatenate([np.asarray(s, dtype=np.int64) for s in sequences]) if len(sequences) else np.zeros(0, np.int64)
    if n_items < 1 or (len(flat) and (flat.min() < 0 or flat.max() >= n_items)):
        raise ValueError(f"sasrec: items must be ints in [0, n_items={n_items})")
    inputs, targets = training_windows(sequences, config.max_len, config.stride or config.max_len, config.windows,
                                       new_only=config.targets == "new")
    popularity = np.bincount(flat, minlength=n_items).astype(np.float64)
    rng = np.random.default_rng(config.seed)
    start, cpu = time.perf_counter(), time.process_time()
    with torch_settings(config.threads, config.seed), stage(f"training SASRec ({len(inputs):,} windows)", total=config.epochs) as progress:
        model = SASRecModel(n_items, config)
        fitted = FittedSASRec(model, config, popularity)
        optimiser = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        best, best_state, waited = -1.0, None, 0
        for epoch in range(1, config.epochs + 1):
            model.train()
            loss = _epoch(model, optimiser, inputs, targets, config, rng)
            progress.advance()
            if valid is None or epoch % config.eval_every:
                continue
            model.eval()
            ndcg = ranking_metrics(fitted.score(valid[0]), np.asarray(valid[1]))["ndcg@10"]
            fitted.log.append({"epoch": epoch, "loss": loss, "ndcg@10": ndcg})
            if verbose:
                print(f"  epoch {epoch:3d}  loss {loss:.4f}  valid NDCG@10 {ndcg:.4f}", flush=True)
            progress.note(f"epoch {epoch}: validation NDCG@10 {ndcg:.4f}")
            if ndcg > best:
                best, best_state, waited, fitted.best_epoch = ndcg, copy.deepcopy(model.state_dict()), 0, epoch
            else:
                waited += 1
                if waited >= config.patience:
                    break
        if best_state is not None:
            model.load_state_dict(best_state)
        else:
            fitted.best_epoch = config.epochs
        model.eval()
    fitted.train_seconds, fitted.train_cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    return fitted


def _epoch(model: SASRecModel, optimiser: torch.optim.Optimizer, inputs: np.ndarray, targets: np.ndarray,
           config: SASRecConfig, rng: np.random.Generator) -> float:
    """One pass over the windows in a seeded random order; the mean loss per batch."""
    order = rng.permutation(len(inputs))
    total, batches = 0.0, 0
    for s in range(0, len(order), config.batch_size):
        rows = order[s : s + config.batch_size]
        seq, tgt = torch.from_numpy(inputs[rows]), torch.from_numpy(targets[rows])
        hidden = model(seq)
        mask = tgt > 0
        if config.loss == "ce":
            loss = F.cross_entropy(model.logits(hidden[mask]), tgt[mask] - 1)
        else:
            neg = torch.from_numpy(rng.integers(1, model.n_items + 1, size=(*tgt.shape, config.negatives)))
            h = hidden[mask]
            pos_logit = (h * model.item(tgt[mask])).sum(-1)
            neg_logit = (h[:, None] * model.item(neg[mask])).sum(-1)
            loss = F.binary_cross_entropy_with_logits(pos_logit, torch.ones_like(pos_logit)) + \
                F.binary_cross_entropy_with_logits(neg_logit, torch.zeros_like(neg_logit))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        total, batches = total + float(loss.detach()), batches + 1
    return total / max(batches, 1)


def target_ranks(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Rank of each row's held-out item among all columns of ``scores`` (1 + items scored strictly higher)."""
    scores = np.asarray(scores)
    target_score = scores[np.arange(len(targets)), targets]
    return 1 + (scores > target_score[:, None]).sum(1)


def rank_metrics(rank: np.ndarray, k: int = 10) -> dict[str, np.ndarray]:
    """Per-row Hit@k, NDCG@k and MRR@k of held-out items at ``rank``."""
    rank = np.asarray(rank)
    hit = rank <= k
    return {f"hit@{k}": hit.astype(np.float64), f"ndcg@{k}": np.where(hit, 1.0 / np.log2(rank + 1), 0.0),
            f"mrr@{k}": np.where(hit, 1.0 / rank, 0.0)}


def ranking_metrics(scores: np.ndarray, targets: np.ndarray, k: int = 10) -> dict[str, float]:
    """Hit@k, NDCG@k and MRR@k of one held-out item per row, ranked among all columns of ``scores``
    (rank = 1 + items scored strictly higher), averaged over rows."""
    return {name: float(v.mean()) for name, v in rank_metrics(target_ranks(scores, targets), k).items()}
