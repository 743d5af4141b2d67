"""The world: catalog, synthetic generator, file readers and data sets, embeddings, semantic IDs, platform state and
clock, observation, rewards, and the simulation that composes a step.

Imports: numpy, numba, pandas, pydantic, gymnasium's spaces, ``recoworld.users`` (the user's part
of the step) and ``recoworld.scenario``; never ``recoworld.runs``, ``recoworld.env`` or
``recoworld.agents`` at module level. Import the modules themselves; this file re-exports nothing.
"""
