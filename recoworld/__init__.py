"""RecoWorld: a simulated world for recommender systems that converse with their users."""

from gymnasium.envs.registration import register, registry

__version__ = "0.1.0"

if "RecoWorld-v0" not in registry:
    register(
        id="RecoWorld-v0",
        entry_point="recoworld.env.single:RecoWorldEnv",
        vector_entry_point="recoworld.env.vector:RecoWorldVectorEnv",
    )
