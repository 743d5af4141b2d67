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
# uniforms per item (after the 2K normal draws in the user stream)
R_CLICK, R_LIKE, R_SHARE, R_COMMENT, R_LEAVE = range(5)

# order of ParametricUserParams fields packed into the float vector the kernel reads
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
(W_TASTE, W_QUALITY, W_POPULARITY, W_NOVELTY, W_SATIATION, W_FATIGUE, W_DISLIKE, W_REPEAT,
 NOISE_SD, NOVELTY_SCALE, CLICK_THRESHOLD, CLICK_TEMPERATURE, WATCH_MIDPOINT, WATCH_SLOPE,
 LIKE_THRESHOLD, SHARE_THRESHOLD, COMMENT_THRESHOLD, SAT_GAIN, SAT_EXPOSURE_GAIN,
 SAT_LONG_GAIN, SAT_STEP_DECAY, EXPOSURE_STEP_DECAY, FATIGUE_PER_ITEM, FATIGUE_PER_MINUTE,
 SATISFACTION_RATE, SATISFACTION_VALUE_SCALE, TASTE_DRIFT, HAZARD_BIAS, HAZARD_FATIGUE, HAZARD_BOREDOM,
 HAZARD_SATIATION, HAZARD_SATISFACTION, HAZARD_TRUST, HAZARD_PATIENCE, VOICE_THRESHOLD, INSTRUCTION_RISK,
 INSTRUCTION_SATIATION, INSTRUCTION_PATIENCE, INSTRUCTION_COOLDOWN, COMPLIANCE_RESOLVE,
 COMPLIANCE_SATISFACTION, COMPLIANCE_TRUST, IGNORED_TRUST_PENALTY, PLATFORM_DECAY,
 RETURN_BIAS, RETURN_SATISFACTION, RETURN_TRUST, RETURN_ACTIVITY, SAT_DAY_DECAY,
 SAT_LONG_DAY_DECAY, EXPOSURE_DAY_DECAY, SATISFACTION_DAY_REVERSION,
 W_SIMILARITY, SIMILARITY_STEP_DECAY, SIMILARITY_DAY_DECAY, SIMILARITY_TOLERANCE) = range(len(PARAM_ORDER))

UserArrays = namedtuple("UserArrays", "taste recent traits mind topic_state instr consumed")
UserArrays.__doc__ = """The users' arrays the kernel reads and writes (rows = users): taste and recent (B, D) float32,
traits (B, 8), mind (B, 4), topic_state (B, 5, T), instr (B, 5) int64, consumed (B, ceil(N / 8)) uint8 bitset."""
Decisions = namedtuple("Decisions", "forced actions leave_at")
Decisions.__doc__ = """Actions decided outside the model (LLM users): forced (b,) bool, actions (b, K, 5) F_* columns,
leave_at (b,) slot left at or -1."""
