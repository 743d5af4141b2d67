"""Decision traces: the reasoning that leads a user to the item they really chose.

A trace removes the ambiguity of a raw click ("why this one?") before the student learns from it
(Mirroring Users, arXiv 2508.18142; UserMirrorer, MIT, asks a large LLM for the decision process).
Two teachers:

* :func:`parametric_trace` needs no LLM: it reads the parametric user's utility terms for the user
  and the exposure list — taste match, satiation, novelty, quality, popularity — and says, in the
  user's voice, which of them set the chosen item apart and which alternative was passed over;
* :func:`llm_trace` asks any ``LanguageModel`` (a large one when configured) and keeps its answer
  only if it names the chosen item and does not claim another; otherwise the parametric trace.

The utility terms are computed here from the user's taste vector (the unit mean embedding of their
earlier choices minus the catalog mean) and item embeddings, with weights fitted by a conditional
logit on the training samples (:func:`fit_choice_weights`), so the same model is the "calibrated
parametric user" baseline. (The calibration module's engagement fit scores single items, not
lists, and lives in another embedding space, so its terms are not reused here.)
"""

from __future__ import annotations

import re

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from recoworld.world.catalog import popularity_percentile
from recoworld.llm.base import LanguageModel, LLMError, Message
from recoworld.users.align.prompts import decision_messages, letter
from recoworld.users.align.samples import ChoiceSample, ItemTable, SampleSet

TERMS = ("taste", "satiation", "novelty", "quality", "popularity")
RECENT = 5  # earlier choices that count for satiation


class ChoiceWeights(BaseModel):
    """Conditional-logit weights of the utility terms (per unit of each term)."""

    model_config = ConfigDict(extra="forbid")

    taste: float = 3.0
    satiation: float = 0.5
    novelty: float = 0.0
    quality: float = 1.0
    popularity: float = 1.0

    def vector(self) -> np.ndarray:
        """The weights as an array, in ``TERMS`` order."""
        return np.array([getattr(self, t) for t in TERMS])


class DecisionTrace(BaseModel):
    """Why the user chose what they chose, with the decision's stratum and the teacher's odds."""

    model_config = ConfigDict(extra="forbid")

    sample_id: str
    text: str
    driver: str = Field(description="The utility term that most set the chosen item apart (the behaviour stratum).")
    teacher: str = Field(description="'parametric', the LLM's name, or 'parametric-fallback' when the LLM's trace was rejected.")
    teacher_p: float = Field(description="The parametric model's probability of the real choice.")


class TraceText(BaseModel):
    """An LLM teacher's decision process for a known choice."""

    model_config = ConfigDict(extra="forbid")

    reasoning: str = Field(max_length=1200, description="First-person decision process ending with the choice.")


def utility_terms(sample: ChoiceSample, items: ItemTable, popularity_pct: np.ndarray, quality: np.ndarray) -> np.ndarray:
    """(n_candidates, 5) terms in TERMS order for one exposure list."""
    emb = items.embeddings
    cand = items.rows(sample.candidates)
    hist = items.rows(sample.history) if sample.history else np.zeros(0, dtype=np.int64)
    x = np.zeros((len(cand), len(TERMS)))
    if len(hist):
        taste = emb[hist].mean(axis=0) - emb.mean(axis=0)
        taste = taste / max(float(np.linalg.norm(taste)), 1e-12)
        x[:, 0] = emb[cand] @ taste
        recent = hist[-RECENT:]
        x[:, 1] = (emb[cand] @ emb[recent].T > 1e-6).mean(axis=1)
        x[:, 2] = 1.0 - (emb[cand] @ emb[hist].T).max(axis=1)
    x[:, 3] = quality[cand] - 0.5
    x[:, 4] = popularity_pct[cand]
    return x


def softmax(u: np.ndarray) -> np.ndarray:
    e = np.exp(u - u.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def fit_choice_weights(terms: list[np.ndarray], chosen: np.ndarray, l2: float = 1e-2, iterations: int = 30) -> ChoiceWeights:
    """Maximum-likelihood conditional logit (Newton's method, L2 ``l2`` per sample) of the real choices."""
    n = len(terms)
    if n == 0:
        raise ValueError("fit_choice_weights: no training samples")
    w = np.zeros(len(TERMS))
    for _ in range(iterations):
        grad = -l2 * n * w
        hess = -l2 * n * np.eye(len(w))
        for x, c in zip(terms, chosen):
            p = softmax(x @ w)
            mean = p @ x
            grad += x[c] - mean
            hess -= (x * p[:, None]).T @ x - np.outer(mean, mean)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-6:
            break
    return ChoiceWeights(**dict(zip(TERMS, w.round(6).tolist())))


def _reason(term: str, title: str, weight: float, genres: str) -> str:
    if term == "taste":
        return f"{title} is right up my street: I keep coming back to {genres}" if genres else f"{title} suits my taste"
    if term == "satiation":
        return f"I am still in the mood for more of what I watched lately, and {title} is more of that" if weight > 0 \
            else f"I have had my fill of the same thing lately, and {title} is a change"
    if term == "novelty":
        return f"{title} is something different from what I have seen" if weight > 0 else f"{title} feels familiar, which I like"
    if term == "quality":
        return f"{title} is well rated" if weight > 0 else f"{title} is not one of those overrated films"
    return f"everyone seems to be watching {title}" if weight > 0 else f"{title} is a bit off the beaten track"


def parametric_trace(sample: ChoiceSample, items: ItemTable, x: np.ndarray, weights: ChoiceWeights) -> DecisionTrace:
    """A first-person trace naming the chosen item, the terms that set it apart and the alternative passed over."""
    w = weights.vector()
    u = x @ w
    p = softmax(u)
    c = sample.chosen
    contrib = w * (x[c] - x.mean(axis=0))
    order = [k for k in np.argsort(-contrib) if contrib[k] > 0][:2]
    driver = TERMS[order[0]] if order else "impulse"
    title = items.title[items.index[sample.chosen_item]]
    hist = items.rows(sample.history[-RECENT:]) if sample.history else []
    genres = ", ".join(dict.fromkeys(t for r in hist for t in items.tags[r][:1]))
    if order:
        body = " and ".join(_reason(TERMS[k], title if j == 0 else "it", w[k], genres) for j, k in enumerate(order))
    else:
        body = f"nothing on the list is quite my usual thing, but {title} caught my eye anyway"
    others = [j for j in np.argsort(-u) if j != c]
    alt = others[0]
    gap = w * (x[c] - x[alt])
    why_not = TERMS[int(np.argmax(gap))] if gap.max() > 0 else None
    not_phrase = {"taste": "it is less my kind of thing", "satiation": "it does not fit my mood right now",
                  "novelty": "it is not what I am after right now", "quality": "it does not look as good",
                  "popularity": "fewer people are talking about it"}
    alt_title = items.title[items.index[sample.candidates[alt]]]
    alt_text = f"I also looked at {alt_title}, but " + (not_phrase[why_not] if why_not else "I just fancied the other one")
    text = f"{body[0].upper()}{body[1:]}. {alt_text}. So I choose {letter(c)}: {title}."
    return DecisionTrace(sample_id=sample.sample_id, text=text, driver=driver, teacher="parametric", teacher_p=float(p[c]))


def check_trace(text: str, sample: ChoiceSample, items: ItemTable) -> bool:
    """The trace names the chosen item and never states another candidate as the choice."""
    chosen_title = items.title[items.index[sample.chosen_item]]
    if chosen_title.lower() not in text.lower():
        return False
    claims = re.findall(r"\b(?:choose|chose|pick|picked|go with|going with|select|selected)\s+([^.;,\n]{1,120})", text, re.I)
    claims = [c.strip().lower().replace(chosen_title.lower(), " ") for c in claims]
    for j, item in enumerate(sample.candidates):
        if j == sample.chosen:
            continue
        mark = letter(j).lower()
        title = re.escape(items.title[items.index[item]].lower())
        for c in claims:
            if c == mark or c.startswith((f"{mark}:", f"{mark} ", f"({mark})")) or re.search(rf"(?<!\w){title}(?!\w)", c):
                return False
    return True


def llm_trace(model: LanguageModel, sample: ChoiceSample, items: ItemTable, fallback: DecisionTrace,
              seed: int = 0) -> DecisionTrace:
    """The teacher LLM's decision process for the real choice, or ``fallback`` when it fails or contradicts the label."""
    title = items.text(sample.chosen_item)
    ask: list[Message] = decision_messages(sample, items) + [{"role": "user", "content": (
        f"In reality this user chose {letter(sample.chosen)}: {title}. Write, in their voice and in 2-4 sentences, the "
        f"thinking that led to that choice (what they noticed, what they passed over and why), ending with "
        f"'So I choose {letter(sample.chosen)}: {title}.' Return JSON with a 'reasoning' field.")}]
    try:
        text = model.generate(ask, TraceText, seed=seed).value.reasoning.strip()
    except LLMError:
        text = ""
    if text and check_trace(text, sample, items):
        return fallback.model_copy(update={"text": text, "teacher": model.model})
    return fallback.model_copy(update={"teacher": "parametric-fallback"})


def all_terms(sample_set: SampleSet, samples: list[ChoiceSample] | None = None) -> list[np.ndarray]:
    """Utility terms of every sample (training popularity percentile; quality 0.5 without ratings)."""
    pct = popularity_percentile(sample_set.popularity).astype(np.float64)
    pct[sample_set.popularity == 0] = 0.0
    quality = sample_set.quality if sample_set.quality is not None else np.full(len(sample_set.items), 0.5)
    return [utility_terms(s, sample_set.items, pct, quality) for s in (sample_set.samples if samples is None else samples)]


def teach(sample_set: SampleSet, teacher: LanguageModel | None = None, weights: ChoiceWeights | None = None,
          seed: int = 0) -> tuple[ChoiceWeights, list[DecisionTrace]]:
    """Fit the parametric weights on the training samples (unless given) and trace every training sample."""
    train = sample_set.split("train")
    terms = all_terms(sample_set, train)
    if weights is None:
        weights = fit_choice_weights(terms, np.array([s.chosen for s in train]))
    traces = []
    for k, (s, x) in enumerate(zip(train, terms)):
        trace = parametric_trace(s, sample_set.items, x, weights)
        traces.append(trace if teacher is None else llm_trace(teacher, s, sample_set.items, trace, seed=seed + k))
    return weights, traces
