"""Who lives in the world: profiles, population sampling, mindsets and user simulators."""

from recoworld.users.instructions import Instruction, InstructionIntent
from recoworld.users.mindset import MemoryEntry, Mindset
from recoworld.users.parametric import ParametricUserModel, ParametricUserParams, UserBatch
from recoworld.users.profile import Traits, UserProfile
from recoworld.users.sampler import PopulationSampler, SegmentConfig

__all__ = [
    "Instruction",
    "InstructionIntent",
    "MemoryEntry",
    "Mindset",
    "ParametricUserModel",
    "ParametricUserParams",
    "PopulationSampler",
    "SegmentConfig",
    "Traits",
    "UserBatch",
    "UserProfile",
]
