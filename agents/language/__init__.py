"""A language-model recommender: what it sees (:mod:`.protocol`, :mod:`.observe`), how it decides, and how it
learns in the world (GRPO through TRL). Nothing here loads torch or transformers on import."""
