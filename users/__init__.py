"""Who lives in the world (import: ``recoworld.users``).

What lives here:
- ``protocol``: the UserBackend contract that parametric, LLM and hybrid users implement;
- ``profile``, ``mindset``, ``instructions`` (what a disengaging user says), ``compliance`` (how
  well a slate follows it, written once in numba);
- ``population``: segments and USP density sampling; ``sources``: where a world's users come from
  (segments, a log, a calibration);
- ``parametric``: the parametric user model (its params and state; the fused compiled step it runs
  lives in ``recoworld.world.kernel``); ``jit``: compile settings;
- ``llm_user``: LLM and hybrid users; ``creators`` and ``creator_inputs``: CreAgent creators;
- ``extraction`` and ``llm_extraction``: profiles from logs; ``calibration``: fitting users to logged data.

May import: numpy, numba, pydantic, ``recoworld.llm`` and ``recoworld.world`` catalog / platform
types; never ``recoworld.runs``, ``recoworld.env`` or ``recoworld.agents`` at module level. Names
below are re-exported lazily.
"""

from recoworld.lazy import lazy_exports

_EXPORTS = {
    "density": "population",
    "profile_vectors": "population",
    "sample_population": "population",
    "extract_profiles": "extraction",
    "extract_profiles_llm": "llm_extraction",
    "Instruction": "instructions",
    "InstructionIntent": "instructions",
    "MemoryEntry": "mindset",
    "Mindset": "mindset",
    "ParametricUserModel": "parametric",
    "ParametricUserParams": "parametric",
    "UserBatch": "parametric",
    "Traits": "profile",
    "UserProfile": "profile",
    "PopulationSampler": "population",
    "SegmentConfig": "population",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
