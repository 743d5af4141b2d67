"""Named layout of the users' state as the compiled step reads it, defined once.

The per-user arrays of :class:`recoworld.users.parametric.UserBatch` travel into the kernel as one
:class:`UserArrays` namedtuple; the column and row constants below name the packed axes that
Python code (UserBatch views, the LLM user, the world's simulation) also reads. The item-output
columns (``O_*``) and action codes (``A_*``) are what a user did with each slot.

Imports: nothing of the project.
"""

from __future__ import annotations

from collections import namedtuple

# columns of UserBatch.traits
PATIENCE, NOVELTY, CONFORMITY, ACTIVITY, VERBOSITY, EXTRAVERSION, AGREEABLENESS, NEUROTICISM = range(8)
TRAIT_COLUMNS = ("patience", "novelty_seeking", "conformity", "activity", "verbosity", "extraversion", "agreeableness", "neuroticism")
# columns of UserBatch.mind
FATIGUE, SATISFACTION, TRUST, BOREDOM = range(4)
# rows of UserBatch.topic_state (B, 5, T)
SAT_SHORT, SAT_LONG, EXPOSURE, INTEREST, DISLIKE = range(5)
# columns of UserBatch.instr
MORE, LESS, SURPRISE, AGE, COOLDOWN = range(5)
# columns of the per-item output (b, K, 9)
O_REVIEWED, O_CLICK, O_LIKE, O_SHARE, O_COMMENT, O_WATCH, O_UTILITY, O_ACTION, O_WATCH_SECONDS = range(9)
ITEM_OUTPUTS = 9
# action codes (O_ACTION): the strongest thing the user did with the item
ACTION_LABELS = ("unseen", "skip", "click", "like", "comment", "share", "leave")
A_UNSEEN, A_SKIP, A_CLICK, A_LIKE, A_COMMENT, A_SHARE, A_LEAVE = range(7)
# columns of externally decided actions (an LLM user), (b, K, 5): click, watch fraction, like, share, comment
F_CLICK, F_WATCH, F_LIKE, F_SHARE, F_COMMENT = range(5)
FORCED_COLUMNS = F_COMMENT + 1
# uniforms per item (after the 2K normal draws in the user stream)
R_CLICK, R_LIKE, R_SHARE, R_COMMENT, R_LEAVE = range(5)

# the ParametricUserParams fields packed into the float vector the kernel reads, in order: the one list of
# the model's parameter names (tests/users/test_kernel_parts.py pins it to the model's fields)
PARAM_ORDER = (
    "w_taste", "w_quality", "w_popularity", "w_novelty", "w_satiation", "w_fatigue", "w_dislike", "w_repeat",
    "noise_sd", "novelty_scale", "click_threshold", "click_temperature", "watch_midpoint", "watch_slope",
    "like_threshold", "share_threshold", "comment_threshold", "satiation_gain", "satiation_exposure_gain",
    "satiation_long_gain", "satiation_step_decay", "exposure_step_decay", "fatigue_per_item", "fatigue_per_minute",
    "satisfaction_rate", "satisfaction_value_scale", "taste_drift", "hazard_bias", "hazard_fatigue", "hazard_boredom",
    "hazard_satiation", "hazard_satisfaction", "hazard_trust", "hazard_patience", "voice_threshold", "instruction_risk",
    "instruction_satiation", "instruction_patience", "instruction_cooldown", "compliance_resolve",
    "compliance_satisfaction", "compliance_trust", "ignored_trust_penalty", "platform_decay",
    "return_bias", "return_satisfaction", "return_trust", "return_activity", "satiation_day_decay",
    "satiation_long_day_decay", "exposure_day_decay", "satisfaction_day_reversion",
    "w_similarity", "similarity_step_decay", "similarity_day_decay", "similarity_tolerance",
)


def _at(name: str) -> int:
    return PARAM_ORDER.index(name)


# each parameter's index in the packed vector, found by its name (so the list above is the only order)
W_TASTE = _at("w_taste")
W_QUALITY = _at("w_quality")
W_POPULARITY = _at("w_popularity")
W_NOVELTY = _at("w_novelty")
W_SATIATION = _at("w_satiation")
W_FATIGUE = _at("w_fatigue")
W_DISLIKE = _at("w_dislike")
W_REPEAT = _at("w_repeat")
NOISE_SD = _at("noise_sd")
NOVELTY_SCALE = _at("novelty_scale")
CLICK_THRESHOLD = _at("click_threshold")
CLICK_TEMPERATURE = _at("click_temperature")
WATCH_MIDPOINT = _at("watch_midpoint")
WATCH_SLOPE = _at("watch_slope")
LIKE_THRESHOLD = _at("like_threshold")
SHARE_THRESHOLD = _at("share_threshold")
COMMENT_THRESHOLD = _at("comment_threshold")
SAT_GAIN = _at("satiation_gain")
SAT_EXPOSURE_GAIN = _at("satiation_exposure_gain")
SAT_LONG_GAIN = _at("satiation_long_gain")
SAT_STEP_DECAY = _at("satiation_step_decay")
EXPOSURE_STEP_DECAY = _at("exposure_step_decay")
FATIGUE_PER_ITEM = _at("fatigue_per_item")
FATIGUE_PER_MINUTE = _at("fatigue_per_minute")
SATISFACTION_RATE = _at("satisfaction_rate")
SATISFACTION_VALUE_SCALE = _at("satisfaction_value_scale")
TASTE_DRIFT = _at("taste_drift")
HAZARD_BIAS = _at("hazard_bias")
HAZARD_FATIGUE = _at("hazard_fatigue")
HAZARD_BOREDOM = _at("hazard_boredom")
HAZARD_SATIATION = _at("hazard_satiation")
HAZARD_SATISFACTION = _at("hazard_satisfaction")
HAZARD_TRUST = _at("hazard_trust")
HAZARD_PATIENCE = _at("hazard_patience")
VOICE_THRESHOLD = _at("voice_threshold")
INSTRUCTION_RISK = _at("instruction_risk")
INSTRUCTION_SATIATION = _at("instruction_satiation")
INSTRUCTION_PATIENCE = _at("instruction_patience")
INSTRUCTION_COOLDOWN = _at("instruction_cooldown")
COMPLIANCE_RESOLVE = _at("compliance_resolve")
COMPLIANCE_SATISFACTION = _at("compliance_satisfaction")
COMPLIANCE_TRUST = _at("compliance_trust")
IGNORED_TRUST_PENALTY = _at("ignored_trust_penalty")
PLATFORM_DECAY = _at("platform_decay")
RETURN_BIAS = _at("return_bias")
RETURN_SATISFACTION = _at("return_satisfaction")
RETURN_TRUST = _at("return_trust")
RETURN_ACTIVITY = _at("return_activity")
SAT_DAY_DECAY = _at("satiation_day_decay")
SAT_LONG_DAY_DECAY = _at("satiation_long_day_decay")
EXPOSURE_DAY_DECAY = _at("exposure_day_decay")
SATISFACTION_DAY_REVERSION = _at("satisfaction_day_reversion")
W_SIMILARITY = _at("w_similarity")
SIMILARITY_STEP_DECAY = _at("similarity_step_decay")
SIMILARITY_DAY_DECAY = _at("similarity_day_decay")
SIMILARITY_TOLERANCE = _at("similarity_tolerance")

UserArrays = namedtuple("UserArrays", "taste recent traits mind topic_state instr consumed")
UserArrays.__doc__ = """The users' arrays the kernel reads and writes (rows = users): taste and recent (B, D) float32,
traits (B, 8), mind (B, 4), topic_state (B, 5, T), instr (B, 5) int64, consumed (B, ceil(N / 8)) uint8 bitset."""
Decisions = namedtuple("Decisions", "forced actions leave_at")
Decisions.__doc__ = """Actions decided outside the model (LLM users): forced (b,) bool, actions (b, K, 5) F_* columns,
leave_at (b,) slot left at or -1."""
