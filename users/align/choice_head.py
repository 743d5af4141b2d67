"""A choice head on the small LLM: the user model reads the prompt, a linear scorer picks.

The prompt is the same lettered exposure list the letter scorer reads (:func:`decision_messages`).
The head reads the model's hidden state of layer ``layer`` at the last token of each candidate's
line, a state that has seen the profile, the history and that candidate in context, and scores it
linearly; the choice distribution is the softmax over the list (a conditional logit, trained by
listwise cross-entropy on the real choices, like a reward model's scalar head). There is no letter
to bind the choice to, and the LLM's weights stay as they are; the head is a few hundred numbers,
fitted in seconds once the states are read (one partial forward pass per list).

The layer and the L2 strength are tuned on the last ``validation`` share of the training lists, then
the head is refitted on them all.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from recoworld.llm.base import Message
from recoworld.progress import stage
from recoworld.users.align.finetune import decoder_stack, run_layers
from recoworld.users.align.evaluate import hits
from recoworld.users.align.prompts import is_option
from recoworld.users.align.settings import HeadConfig, TrainLog
from recoworld.users.align.traces import softmax

HEAD_FILE = "choice_head.json"


class ChoiceHead(BaseModel):
    """A linear scorer of standardised hidden states at candidates' line ends (saved as JSON)."""

    model_config = ConfigDict(extra="forbid")

    layer: int = Field(ge=1)
    l2: float = Field(ge=0)
    mean: list[float]
    scale: list[float]
    weight: list[float]
    validation_accuracy: float | None = Field(None, description="Accuracy on the tuning's validation lists.")
    trained_lists: int = 0

    def scores(self, states: np.ndarray) -> np.ndarray:
        """Per candidate: its hidden state, standardised, times the head's weights (a logit)."""
        z = (np.asarray(states, dtype=np.float64) - np.asarray(self.mean)) / np.asarray(self.scale)
        return z @ np.asarray(self.weight)

    def probs(self, states: np.ndarray) -> np.ndarray:
        """The softmax of :meth:`scores` over the candidates."""
        return softmax(self.scores(states))

    def save(self, folder: str | Path) -> Path:
        """Write the head as JSON into ``folder`` (created); returns the file."""
        path = Path(folder) / HEAD_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.model_dump_json(), encoding="utf-8")
        return path

    @classmethod
    def load(cls, folder: str | Path) -> "ChoiceHead":
        """The head saved in ``folder`` by :meth:`save`."""
        return cls.model_validate(json.loads((Path(folder) / HEAD_FILE).read_text(encoding="utf-8")))


def line_end_positions(tok, text: str, content: str) -> tuple[list[int], list[int]]:
    """(token ids of ``text``, index of the last token of each lettered option line ("A. ...") of ``content``
    inside it), from one tokenisation."""
    enc = tok(text, return_offsets_mapping=True, add_special_tokens=False)
    ends = [b for _, b in enc["offset_mapping"]]
    base = text.find(content)
    if base < 0:
        raise ValueError("choice head: the user message is not in the templated prompt")
    positions, cursor = [], 0
    for line in content.splitlines(keepends=True):
        stripped = line.rstrip("\n")
        if is_option(stripped):
            end = base + cursor + len(stripped)
            positions.append(max(i for i, b in enumerate(ends) if b <= end))
        cursor += len(line)
    if not positions:
        raise ValueError("choice head: the prompt lists no lettered options")
    return enc["input_ids"], positions


@torch.no_grad()
def candidate_states(model, tok, messages: list[Message], layers: list[int]) -> dict[int, np.ndarray]:
    """Hidden states (n candidates x hidden) after each of ``layers`` at the candidates' line ends; the forward
    pass stops at the deepest layer asked for."""
    text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    ids, pos = line_end_positions(tok, text, messages[-1]["content"])
    dec = decoder_stack(model)
    h = dec.embed_tokens(torch.tensor([ids]))
    out, done = {}, 0
    for layer in sorted(set(layers)):
        h = run_layers(dec, h, dec.layers[done:layer])
        done = layer
        out[layer] = h[0, pos].double().numpy()
    return out


def default_layers(n_layers: int) -> list[int]:
    return sorted({max(1, n_layers // 2), max(1, 2 * n_layers // 3), max(1, 5 * n_layers // 6)})


def fit_head(states: list[np.ndarray], chosen: np.ndarray, layer: int, l2: float) -> ChoiceHead:
    """The conditional logit on standardised states (L-BFGS, L2 on the weights)."""
    if not states:
        raise ValueError("choice head: no training lists")
    flat = np.concatenate(states)
    mean, scale = flat.mean(0), flat.std(0) + 1e-6
    width = max(len(s) for s in states)
    z = torch.zeros(len(states), width, flat.shape[1], dtype=torch.float64)
    pad = torch.full((len(states), width), -torch.inf, dtype=torch.float64)
    for i, s in enumerate(states):
        z[i, :len(s)] = torch.from_numpy((s - mean) / scale)
        pad[i, :len(s)] = 0.0
    y = torch.as_tensor(np.asarray(chosen), dtype=torch.long)
    w = torch.zeros(flat.shape[1], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w], max_iter=300, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(z @ w + pad, y) + l2 * (w ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return ChoiceHead(layer=layer, l2=l2, mean=mean.tolist(), scale=scale.tolist(), weight=w.detach().numpy().tolist(),
                      trained_lists=len(states))


def accuracy(head: ChoiceHead, states: list[np.ndarray], chosen: np.ndarray) -> float:
    return float(hits([head.scores(s) for s in states], chosen).mean())


def cross_entropy(head: ChoiceHead, states: list[np.ndarray], chosen: np.ndarray) -> float:
    """Mean negative log-probability the head gives the real choices."""
    return float(-np.mean([np.log(head.probs(s)[c]) for s, c in zip(states, chosen, strict=True)]))


def tune_head(states: dict[int, list[np.ndarray]], chosen: np.ndarray, config: HeadConfig | None = None) -> ChoiceHead:
    """The (layer, L2) with the best accuracy on the last ``validation`` share of the lists (ties: lower
    cross-entropy), refitted on all of them."""
    config = config or HeadConfig()
    chosen = np.asarray(chosen)
    n = len(chosen)
    cut = n - max(1, int(round(config.validation * n)))
    if cut < 1:
        raise ValueError(f"choice head: {n} training lists are too few to tune on")
    best = None
    for layer, rows in sorted(states.items()):
        for l2 in config.l2:
            head = fit_head(rows[:cut], chosen[:cut], layer, l2)
            acc = accuracy(head, rows[cut:], chosen[cut:])
            ce = cross_entropy(head, rows[cut:], chosen[cut:])
            if best is None or (acc, -ce) > best[0]:
                best = ((acc, -ce), layer, l2)
    (acc, _), layer, l2 = best
    return fit_head(states[layer], chosen, layer, l2).model_copy(update={"validation_accuracy": acc})


def train_head(model, tok, examples: list[tuple[list[Message], int, int]],
               config: HeadConfig | None = None) -> tuple[ChoiceHead, TrainLog]:
    """Read every list's candidate states once (the model is not changed) and tune the head on the real choices
    of ``(prompt messages, n candidates, chosen index)`` examples; the log's losses are the training lists'
    cross-entropy before (uniform) and after."""
    config = config or HeadConfig()
    start = time.perf_counter()
    layers = config.layers or default_layers(model.config.num_hidden_layers)
    states: dict[int, list[np.ndarray]] = {layer: [] for layer in layers}
    with stage("reading the candidates' hidden states", total=len(examples)) as progress:
        for messages, n, _ in examples:
            got = candidate_states(model, tok, messages, layers)
            for layer in layers:
                if len(got[layer]) != n:
                    raise ValueError(f"choice head: the prompt lists {len(got[layer])} options, the example says {n}")
                states[layer].append(got[layer])
            progress.advance()
    chosen = np.array([c for _, _, c in examples])
    with stage("tuning the choice head (layer, L2)"):
        head = tune_head(states, chosen, config)
    rows = states[head.layer]
    log = TrainLog(stage="choice-head", steps=1, examples=len(examples), seconds=round(time.perf_counter() - start, 1),
                   first_loss=float(np.mean([np.log(len(s)) for s in rows])),
                   last_loss=cross_entropy(head, rows, chosen))
    return head, log
