"""USP-style user profiles: objective facts, subjective traits, and a latent taste."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Tone = Literal["casual", "polite", "blunt", "enthusiastic"]
TONES: tuple[str, ...] = ("casual", "polite", "blunt", "enthusiastic")
TRAIT_NAMES: tuple[str, ...] = (
    "openness",
    "conscientiousness",
    "extraversion",
    "agreeableness",
    "neuroticism",
    "patience",
    "novelty_seeking",
    "conformity",
    "activity",
    "verbosity",
)


def _unit(description: str) -> object:
    return Field(0.5, ge=0.0, le=1.0, description=description)


class Traits(BaseModel):
    """Subjective traits in [0, 1] (Big Five plus platform behaviour) and a conversational tone."""

    model_config = ConfigDict(extra="forbid")

    openness: float = _unit("Big Five openness.")
    conscientiousness: float = _unit("Big Five conscientiousness.")
    extraversion: float = _unit("Big Five extraversion; drives sharing and commenting.")
    agreeableness: float = _unit("Big Five agreeableness; drives liking.")
    neuroticism: float = _unit("Big Five neuroticism; makes trust fall faster.")
    patience: float = _unit("Tolerance for poor slates before leaving; longer watching.")
    novelty_seeking: float = _unit("Appetite for topics not seen lately.")
    conformity: float = _unit("Pull of popular items.")
    activity: float = _unit("How often the user comes back.")
    verbosity: float = _unit("How readily the user tells the recommender what they want.")
    tone: Tone = Field("casual", description="How the user phrases instructions.")


class UserProfile(BaseModel):
    """One simulated user as the world knows them (the recommender sees none of this)."""

    model_config = ConfigDict(extra="forbid")

    user_id: str = Field(description="Stable identifier.")
    segment: str = Field("default", description="Population segment the user was sampled from.")
    age_band: str = Field("25-34", description="Age band, e.g. '18-24'.")
    occupation: str = Field("", description="Occupation.")
    locale: str = Field("en-US", description="Language and region.")
    goals: list[str] = Field(default_factory=list, description="What the user comes to the platform for.")
    interests: dict[str, float] = Field(description="Topic -> weight (weights sum to 1).")
    dislikes: list[str] = Field(default_factory=list, description="Topics the user avoids.")
    topic_history: dict[str, float] = Field(
        default_factory=dict, description="Topic -> items of it the user met before the simulation starts (seeds topic "
        "exposure, so a topic they know well is not novel to them; calibrated users carry their training period's).")
    traits: Traits = Field(default_factory=Traits)
    taste: list[float] | None = Field(
        None, description="Latent taste in the catalog's embedding space; derived from interests when absent."
    )
    facts_paragraph: str | None = Field(None, description="Facts paragraph written by an extractor (else rendered from fields).")
    traits_paragraph: str | None = Field(None, description="Traits paragraph written by an extractor (else rendered from fields).")

    def facts_text(self) -> str:
        """First paragraph: objective facts."""
        if self.facts_paragraph:
            return self.facts_paragraph
        top = sorted(self.interests.items(), key=lambda kv: -kv[1])
        interests = ", ".join(f"{t} ({w:.0%})" for t, w in top[:5])
        parts = [f"User {self.user_id} is in the {self.age_band} age band"]
        if self.occupation:
            parts[0] += f", works as {self.occupation}"
        parts[0] += f" and uses the platform in {self.locale}."
        if self.goals:
            parts.append(f"They come here for {', '.join(self.goals)}.")
        parts.append(f"Main interests: {interests}.")
        if self.dislikes:
            parts.append(f"They avoid {', '.join(self.dislikes)}.")
        return " ".join(parts)

    def traits_text(self) -> str:
        """Second paragraph: subjective traits in words."""
        if self.traits_paragraph:
            return self.traits_paragraph
        t = self.traits

        def level(x: float) -> str:
            return "very low" if x < 0.2 else "low" if x < 0.4 else "moderate" if x < 0.6 else "high" if x < 0.8 else "very high"

        return (
            f"Personality: openness {level(t.openness)}, conscientiousness {level(t.conscientiousness)}, "
            f"extraversion {level(t.extraversion)}, agreeableness {level(t.agreeableness)}, "
            f"neuroticism {level(t.neuroticism)}. On the platform they show {level(t.patience)} patience, "
            f"{level(t.novelty_seeking)} appetite for novelty, {level(t.conformity)} pull towards popular items "
            f"and {level(t.activity)} activity; when they speak up it is in a {t.tone} tone "
            f"({level(t.verbosity)} verbosity)."
        )

    def text(self) -> str:
        """The two-paragraph profile given to LLMs."""
        return f"{self.facts_text()}\n\n{self.traits_text()}"
