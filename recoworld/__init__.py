"""RecoWorld: a simulated world for recommender systems that converse with their users."""

from gymnasium.envs.registration import register, registry

__version__ = "0.1.0"

if "RecoWorld-v0" not in registry:
    register(
        id="RecoWorld-v0",
        entry_point="recoworld.env.single:RecoWorldEnv",
        vector_entry_point="recoworld.env.vector:RecoWorldVectorEnv",
    )
if "RecoWorld-Compact-v0" not in registry:  # the same world with the compact observation (recoworld.world.observation)
    register(
        id="RecoWorld-Compact-v0",
        entry_point="recoworld.env.single:RecoWorldEnv",
        vector_entry_point="recoworld.env.vector:RecoWorldVectorEnv",
        kwargs={"observation": "compact"},
    )

# the registered tasks' training envs (recoworld.tasks.definitions; tests check the two lists agree)
TASK_ENVS = {
    "RecoWorld-Retention-v1": "retention-v1",
    "RecoWorld-InstructionFollowing-v1": "instruction-following-v1",
    "RecoWorld-ColdStart-v1": "cold-start-v1",
    "RecoWorld-CreatorEconomy-v1": "creator-economy-v1",
    "RecoWorld-ML100K-v2": "ml100k-v2",
}
for _gym_id, _task in TASK_ENVS.items():
    if _gym_id not in registry:
        register(
            id=_gym_id,
            entry_point="recoworld.tasks.env:TaskEnv",
            vector_entry_point="recoworld.tasks.env:TaskVectorEnv",
            kwargs={"task": _task},
        )
