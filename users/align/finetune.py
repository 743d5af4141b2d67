"""LoRA fine-tuning of the small simulator on CPU: SFT on the distilled traces, then DPO on the pairs.

A plain PyTorch loop over ``peft`` LoRA adapters on the attention projections (the loss only on the
assistant's answer), small enough to read in one sitting and to run on a laptop CPU in minutes.
The JSONL it reads is TRL's conversational format, so the same files train with TRL's
``SFTTrainer`` / ``DPOTrainer`` on a GPU for larger models (UserMirrorer, MIT, trains with
LLaMA-Factory; the method is from Mirroring Users, arXiv 2508.18142).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from recoworld.progress import stage
from recoworld.users.align.prompts import ANSWER_PREFIX, LETTERS
from recoworld.users.align.settings import FinetuneConfig, TrainLog


def add_lora(model, config: FinetuneConfig):
    """The model wrapped with fresh LoRA adapters on ``config.lora_targets`` (of the top layers if set),
    initialised from ``config.seed`` (torch's global random state is left as it was)."""
    import torch
    from peft import LoraConfig, get_peft_model

    layers = None
    if config.lora_top_layers:
        n = model.config.num_hidden_layers
        layers = list(range(max(0, n - config.lora_top_layers), n))
    lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=config.lora_targets, layers_to_transform=layers, task_type="CAUSAL_LM")
    with torch.random.fork_rng():
        torch.manual_seed(config.seed)
        return get_peft_model(model, lora)


def letter_ids(tok, n: int) -> list[int]:
    """Token ids of the first ``n`` choice letters right after the answer prefix (each must be one token)."""
    base = tok.encode(ANSWER_PREFIX, add_special_tokens=False)
    ids = []
    for ch in LETTERS[:n]:
        full = tok.encode(ANSWER_PREFIX + ch, add_special_tokens=False)
        if full[: len(base)] != base or len(full) != len(base) + 1:
            raise ValueError(f"the letter {ch} is not one token after the answer prefix")
        ids.append(full[-1])
    return ids


def decoder_stack(model):
    """The decoder stack (the module holding ``layers``) inside a causal LM, PEFT-wrapped or not."""
    m = model
    for _ in range(6):
        if hasattr(m, "layers") and hasattr(m, "rotary_emb"):
            return m
        m = getattr(m, "model", None) or getattr(m, "base_model", None)
        if m is None:
            break
    raise ValueError("cannot find the decoder layers of this model (a Llama-style causal LM is needed)")


def run_layers(dec, h: torch.Tensor, layers) -> torch.Tensor:
    """``h`` through ``layers`` with the model's causal mask and rotary positions (one unpadded sequence)."""
    from transformers.masking_utils import create_causal_mask

    pos = torch.arange(h.shape[1])[None]
    mask = create_causal_mask(config=dec.config, inputs_embeds=h, attention_mask=None, cache=None, position_ids=pos)
    rope = dec.rotary_emb(h, position_ids=pos)
    for layer in layers:
        h = layer(h, attention_mask=mask, position_embeddings=rope, position_ids=pos)
    return h


class _ChoiceLogits:
    """Letter logits after the answer prefix. With adapters on the top layers only, the frozen lower layers'
    output is computed once per example and reused on every later pass (exact: those layers have no
    adapters and no dropout), so an epoch after the first costs only the top layers."""

    def __init__(self, model, tok, config: FinetuneConfig) -> None:
        self.model, self.tok = model, tok
        self.dec = decoder_stack(model) if config.lora_top_layers else None
        self.split = max(0, len(self.dec.layers) - config.lora_top_layers) if self.dec is not None else 0
        self.cache: dict[int, torch.Tensor] = {}

    def __call__(self, key: int, messages: list[dict], letters: list[int]) -> torch.Tensor:
        text = self.tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False) + ANSWER_PREFIX
        if self.dec is None:
            ids = torch.tensor([self.tok.encode(text, add_special_tokens=False)])
            return self.model(input_ids=ids, logits_to_keep=1).logits[0, -1, letters]
        if key not in self.cache:
            ids = torch.tensor([self.tok.encode(text, add_special_tokens=False)])
            with torch.no_grad():
                self.cache[key] = run_layers(self.dec, self.dec.embed_tokens(ids), self.dec.layers[:self.split])
        h = run_layers(self.dec, self.cache[key], self.dec.layers[self.split:])
        return self.model.get_output_embeddings()(self.dec.norm(h[:, -1]))[0, letters]


def sft_choice(model, tok, examples: list[tuple[list[dict], int, int]], config: FinetuneConfig) -> TrainLog:
    """Cross-entropy of the real choice over the listed letters, read right after the answer prefix, for
    ``(prompt messages, n candidates, chosen index)`` examples; ``grad_accum`` examples per optimiser step
    (so one step does not chase one list's letter), cycling through the examples in a fresh seeded order each
    epoch. The learning rate warms up over the first ``sft_warmup`` of the steps, then decays linearly to
    zero. With ``lora_top_layers`` the frozen lower layers run once per example (see ``_ChoiceLogits``)."""
    if not examples:
        raise ValueError("sft_choice: no examples")
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    ids_all = letter_ids(tok, max(n for _, n, _ in examples))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.sft_lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _warmup_decay(config.sft_steps, config.sft_warmup))
    logits_of = _ChoiceLogits(model, tok, config)
    model.train()
    losses, start, order = [], time.perf_counter(), np.zeros(0, dtype=np.int64)
    with stage("LoRA SFT of the choice letter", total=config.sft_steps) as progress:
        for _ in range(config.sft_steps):
            total = 0.0
            for _ in range(config.grad_accum):
                if len(order) == 0:
                    order = rng.permutation(len(examples))
                k, order = int(order[0]), order[1:]
                messages, n, chosen = examples[k]
                logits = logits_of(k, messages, ids_all[:n])
                loss = F.cross_entropy(logits.float()[None], torch.tensor([chosen])) / config.grad_accum
                loss.backward()
                total += loss.item()
            opt.step()
            sched.step()
            opt.zero_grad()
            losses.append(total)
            progress.advance()
    model.eval()
    return _log("sft-choice", losses, len(examples), time.perf_counter() - start)


def _warmup_decay(steps: int, warmup: float):
    """Learning-rate factor: linear warm-up over ``warmup`` of ``steps``, then linear decay to zero at the end."""
    w = int(round(warmup * steps))

    def factor(step: int) -> float:
        if step < w:
            return (step + 1) / w
        return max(0.0, (steps - step) / max(1, steps - w))
    return factor


def encode(tok, prompt: list[dict], answer: str, max_answer_tokens: int) -> tuple[torch.Tensor, int]:
    """(ids, n_prompt): the chat-templated prompt followed by the answer (cut) and the end-of-turn token."""
    head = tok.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
    p_ids = tok.encode(head, add_special_tokens=False)
    a_ids = tok.encode(answer, add_special_tokens=False)[:max_answer_tokens]
    if len(a_ids) < max_answer_tokens and tok.eos_token_id is not None:
        a_ids = a_ids + [tok.eos_token_id]
    return torch.tensor([p_ids + a_ids]), len(p_ids)


def answer_logp(model, ids: torch.Tensor, n_prompt: int) -> torch.Tensor:
    """Summed log-probability of the answer tokens (positions n_prompt..)."""
    logits = model(input_ids=ids).logits[0, n_prompt - 1:-1]
    target = ids[0, n_prompt:]
    return torch.log_softmax(logits.float(), dim=-1).gather(1, target[:, None]).sum()


def _log(stage: str, losses: list[float], examples: int, seconds: float) -> TrainLog:
    tail = losses[-max(1, len(losses) // 10):] if losses else [float("nan")]
    return TrainLog(stage=stage, steps=len(losses), examples=examples, seconds=round(seconds, 1),
                    first_loss=losses[0] if losses else float("nan"), last_loss=float(np.mean(tail)))


def sft(model, tok, records: list[dict], config: FinetuneConfig) -> TrainLog:
    """Cross-entropy on the assistant answer of each ``{"messages": [...]}`` record, one example per step."""
    if not records:
        raise ValueError("sft: no records")
    torch.manual_seed(config.seed)
    order = np.random.default_rng(config.seed).permutation(len(records))
    data = [encode(tok, records[k]["messages"][:-1], records[k]["messages"][-1]["content"], config.max_answer_tokens)
            for k in order]
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.sft_lr)
    model.train()
    losses, start = [], time.perf_counter()
    with stage("LoRA SFT on the traces", total=config.sft_steps) as progress:
        for step in range(config.sft_steps):
            ids, n_prompt = data[step % len(data)]
            labels = ids.clone()
            labels[:, :n_prompt] = -100
            loss = model(input_ids=ids, labels=labels).loss
            loss.backward()
            opt.step()
            opt.zero_grad()
            losses.append(loss.item())
            progress.advance()
    model.eval()
    return _log("sft", losses, len(records), time.perf_counter() - start)


def dpo(model, tok, records: list[dict], config: FinetuneConfig) -> TrainLog:
    """Direct preference optimisation on ``{"prompt", "chosen", "rejected"}`` records, continuing the same
    adapters; the reference is the model as it is when DPO starts (the SFT model), its margins precomputed."""
    if not records:
        raise ValueError("dpo: no records")
    torch.manual_seed(config.seed)
    order = np.random.default_rng(config.seed + 1).permutation(len(records))
    pairs = []
    with stage("DPO: the reference margins", total=len(order)) as progress:
        for k in order:
            r = records[k]
            c_ids, n = encode(tok, r["prompt"], r["chosen"][0]["content"], config.max_answer_tokens)
            j_ids, _ = encode(tok, r["prompt"], r["rejected"][0]["content"], config.max_answer_tokens)
            with torch.no_grad():
                ref = (answer_logp(model, c_ids, n) - answer_logp(model, j_ids, n)).item()
            pairs.append((c_ids, j_ids, n, ref))
            progress.advance()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.dpo_lr)
    model.train()
    losses, start = [], time.perf_counter()
    with stage("DPO", total=config.dpo_steps) as progress:
        for step in range(config.dpo_steps):
            c_ids, j_ids, n, ref = pairs[step % len(pairs)]
            margin = answer_logp(model, c_ids, n) - answer_logp(model, j_ids, n) - ref
            loss = -F.logsigmoid(config.dpo_beta * margin)
            loss.backward()
            opt.step()
            opt.zero_grad()
            losses.append(loss.item())
            progress.advance()
    model.eval()
    return _log("dpo", losses, len(records), time.perf_counter() - start)


def save_adapter(model, tok, folder: str | Path) -> Path:
    """The LoRA adapter and the tokenizer, loadable with ``TransformersModel.load(adapter=folder)``."""
    folder = Path(folder)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder
