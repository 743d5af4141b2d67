"""ToolRec: a controller drives attribute-oriented retrieval and ranking tools over a base ranker.

After Zhao et al., "Let Me Do It For You: Towards LLM Empowered Recommendation via Tool
Learning" (SIGIR 2024). For one user at a time a controller (a scripted policy, or an LLM with
one structured call per step) takes up to ``max_steps`` actions:

* ``retrieve[attribute, value, k]`` adds up to ``k`` candidates matching the attribute to the
  pool: ``topic`` (value = topic name), ``recency`` (newest first), ``duration``
  (value ``short`` / ``long``, split at the catalog median), ``popularity`` (most popular first),
  ``semantic_id`` (value = a code prefix such as ``"12"`` or ``"12-5"``) and ``text`` (value =
  free text, most similar first). Matching candidates are ordered by the base ranker's score
  (recency and popularity by the attribute first); already-watched candidates come last.
* ``rerank[attribute, k]`` re-orders the pool by ``relevance`` (base score), ``popularity``,
  ``recency``, ``quality``, ``diversity`` (MMR over the embeddings) or, with an LLM controller,
  ``llm``, and keeps the top ``k``.
* ``finish`` ends the loop.

The pool is then cut to the slate size K: in the order of the last re-rank when the controller
re-ranked it, otherwise ranked by the base ranker; a pool of fewer than K items is filled with
the base ranker's best remaining candidates. Bad controller output never raises: the step is
logged with ``error`` set and skipped (an LLMError ends the loop), and ``fallbacks`` counts it.

Modules: ``actions`` (vocabulary and logs), ``tools`` (the ToolBox), ``controllers`` (scripted,
LLM), ``recommender`` (ToolRec). Names below are re-exported lazily.
"""

from recoworld.lazy import lazy_exports

_EXPORTS = {
    "RETRIEVE_ATTRIBUTES": "actions",
    "RERANK_ATTRIBUTES": "actions",
    "LLM_RERANK": "actions",
    "TOP_UP": "actions",
    "MMR_LAMBDA": "actions",
    "ToolError": "actions",
    "ToolAction": "actions",
    "ToolCall": "actions",
    "normalise_attribute": "actions",
    "parse_sid_prefix": "actions",
    "ToolContext": "controllers",
    "ToolController": "controllers",
    "ScriptedToolController": "controllers",
    "PoolRanking": "controllers",
    "LLMToolController": "controllers",
    "ToolRec": "recommender",
    "reasoning": "recommender",
    "user_view": "tools",
    "ToolBox": "tools",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
