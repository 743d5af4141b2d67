"""Who lives in the world (import: ``recoworld.users``).

What lives here: profiles (``profile``), populations (``population``: segments, density sampling, pools), the
hidden mindset (``mindset``), reflective instructions (``instructions``), the parametric user
model and its compiled part of the step (``parametric``, ``kernels``), LLM and hybrid users
(``llm_user``), CreAgent creators (``creators``), profile extraction from logs (``extraction``)
and calibration against logged data (``calibration``).

May import: numpy, numba, pydantic, ``recoworld.llm`` and ``recoworld.world.catalog`` /
``recoworld.world.platform`` types; never ``recoworld.runs``, ``recoworld.env`` or
``recoworld.agents`` at module level. Names below are re-exported lazily.
"""

from recoworld.lazy import lazy_exports

_EXPORTS = {
    "density": "population",
    "profile_vectors": "population",
    "sample_population": "population",
    "extract_profiles": "extraction",
    "extract_profiles_llm": "extraction",
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
