"""Who lives in the world: profiles, population sampling, mindsets and user simulators."""

from recoworld.users.diverse import density, profile_vectors, sample_population
from recoworld.users.extraction import extract_profiles, extract_profiles_llm
from recoworld.users.instructions import Instruction, InstructionIntent
from recoworld.users.mindset import MemoryEntry, Mindset
from recoworld.users.parametric import ParametricUserModel, ParametricUserParams, UserBatch
from recoworld.users.profile import Traits, UserProfile
from recoworld.users.sampler import PopulationSampler, SegmentConfig

__all__ = [
    "density",
    "extract_profiles",
    "extract_profiles_llm",
    "profile_vectors",
    "sample_population",
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
