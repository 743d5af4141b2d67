"""Seeded synthetic catalogs: topics, creators and items with readable titles and descriptions."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from recoworld.world.catalog import Catalog, popularity_percentile
from recoworld.world.embeddings import TextEncoder

# topic -> (keywords for titles/descriptions, tags, median duration in seconds)
TOPICS: dict[str, tuple[list[str], list[str], float]] = {
    "cooking": (["pasta", "curry", "bread", "ramen", "dumplings", "grill", "sauce", "baking", "noodles", "salad", "kitchen", "recipe"], ["food", "recipe", "chef"], 420),
    "fitness": (["workout", "squats", "cardio", "yoga", "stretching", "strength", "running", "pilates", "abs", "kettlebell", "mobility", "hiit"], ["gym", "health", "training"], 600),
    "gaming": (["speedrun", "boss", "quest", "strategy", "esports", "minecraft", "rpg", "shooter", "walkthrough", "console", "indie", "controller"], ["games", "playthrough", "gamer"], 900),
    "music": (["guitar", "piano", "concert", "cover", "beat", "vocals", "remix", "jazz", "drums", "melody", "album", "chords"], ["song", "live", "musician"], 240),
    "travel": (["tokyo", "lisbon", "backpacking", "island", "hostel", "roadtrip", "mountains", "beach", "passport", "itinerary", "market", "train"], ["trip", "vlog", "explore"], 720),
    "science": (["quantum", "biology", "experiment", "chemistry", "physics", "telescope", "molecule", "evolution", "neurons", "climate", "lab", "theory"], ["stem", "explained", "research"], 780),
    "comedy": (["sketch", "standup", "prank", "parody", "bloopers", "improv", "roast", "jokes", "satire", "sitcom", "punchline", "laughs"], ["funny", "humor", "lol"], 180),
    "tech": (["smartphone", "laptop", "unboxing", "gadget", "chip", "benchmark", "keyboard", "headphones", "review", "camera", "battery", "software"], ["gadgets", "reviews", "techtalk"], 540),
    "fashion": (["outfit", "sneakers", "streetwear", "thrift", "denim", "styling", "runway", "jacket", "lookbook", "accessories", "vintage", "tailoring"], ["style", "ootd", "wardrobe"], 360),
    "pets": (["puppy", "kitten", "parrot", "hamster", "training", "rescue", "grooming", "aquarium", "dogs", "cats", "vet", "tricks"], ["animals", "cute", "petcare"], 150),
    "finance": (["investing", "stocks", "budget", "savings", "crypto", "retirement", "taxes", "index", "dividends", "mortgage", "inflation", "portfolio"], ["money", "personalfinance", "markets"], 660),
    "diy": (["woodworking", "repair", "garden", "paint", "shelves", "workshop", "plumbing", "crafts", "restoration", "tools", "upcycle", "furniture"], ["howto", "maker", "homeimprovement"], 540),
    "history": (["empire", "medieval", "war", "ancient", "dynasty", "revolution", "archive", "castle", "pharaoh", "rome", "vikings", "treaty"], ["past", "documentary", "historyfacts"], 960),
    "sports": (["football", "basketball", "highlights", "tennis", "goal", "dunk", "match", "league", "cricket", "marathon", "cycling", "olympics"], ["athletes", "game", "fans"], 300),
    "beauty": (["makeup", "skincare", "lipstick", "haircut", "nails", "serum", "routine", "contour", "eyeliner", "curls", "moisturizer", "palette"], ["glam", "selfcare", "tutorial"], 420),
    "cars": (["engine", "supercar", "drift", "restoration", "electric", "turbo", "racing", "garage", "motorbike", "testdrive", "horsepower", "tuning"], ["auto", "motors", "drive"], 600),
    "books": (["novel", "poetry", "author", "fantasy", "mystery", "bookclub", "memoir", "chapter", "library", "thriller", "classics", "reading"], ["booktok", "literature", "readers"], 480),
    "art": (["painting", "sketching", "watercolor", "sculpture", "portrait", "canvas", "animation", "calligraphy", "ceramics", "mural", "digitalart", "gallery"], ["artist", "creative", "drawing"], 510),
    "nature": (["wildlife", "forest", "ocean", "birds", "volcano", "rainforest", "whales", "desert", "glacier", "insects", "safari", "reef"], ["planet", "outdoors", "earth"], 840),
    "news": (["election", "economy", "policy", "breaking", "summit", "interview", "analysis", "report", "debate", "headline", "briefing", "parliament"], ["current", "world", "politics"], 420),
    "dance": (["choreography", "salsa", "ballet", "hiphop", "tango", "routine", "freestyle", "breakdance", "kpop", "waltz", "moves", "studio"], ["dancer", "dancing", "moves"], 200),
    "education": (["calculus", "grammar", "lecture", "exam", "algebra", "language", "vocabulary", "studytips", "essay", "geometry", "tutoring", "flashcards"], ["learn", "study", "school"], 900),
    "parenting": (["toddler", "newborn", "bedtime", "homeschool", "tantrum", "family", "pregnancy", "lunchbox", "playtime", "nursery", "siblings", "routine"], ["parents", "kids", "momlife"], 480),
    "movies": (["trailer", "director", "blockbuster", "cinema", "sequel", "screenplay", "oscars", "horror", "scifi", "franchise", "casting", "boxoffice"], ["film", "moviereview", "cinephile"], 660),
}

_ADJECTIVES = ["ultimate", "quick", "honest", "surprising", "beginner", "advanced", "hidden", "perfect", "weird", "classic", "budget", "epic", "calm", "daily", "secret", "fresh"]
_FORMATS = ["guide", "challenge", "story", "breakdown", "tips", "tour", "reaction", "tutorial", "vlog", "compilation", "deep dive", "myths"]
_DESCRIPTIONS = [
    "A {adj} look at {k1} and {k2}, with {k3} along the way.",
    "Everything about {k1}: {k2}, {k3} and what most people miss.",
    "{Adj} {k1} session that ends with {k2}.",
    "We try {k1} and {k2} so you do not have to. Bonus: {k3}.",
]
_SYLLABLES = ["ka", "lo", "mi", "ren", "tas", "vo", "quin", "bel", "dor", "sa", "fi", "mun", "tre", "zan", "pol", "gri"]

TopicVocab = tuple[str, list[str], list[str], float]  # (name, keywords, tags, median duration in s on the TOPICS scale)
SHORT_VIDEO_SCALE = 0.25  # item durations are this fraction of a topic's TOPICS median (short-video scale)
_STOPWORDS = frozenset(
    ["the", "and", "for", "with", "from", "into", "about", "that", "this", "what", "your", "you", "are", "was", "were", "our", "their", "his", "her", "its", "not", "but", "all", "how", "why", "who", "when", "where", "one", "two", "three", "part", "les", "des", "der", "die", "das", "und", "del", "los", "las", "una", "uno"]
)


class SyntheticCatalogConfig(BaseModel):
    """Parameters of the synthetic catalog generator."""

    model_config = ConfigDict(extra="forbid")

    n_items: int = Field(5000, ge=1, description="Number of items.")
    n_topics: int = Field(16, ge=1, description="Number of topics (beyond the 24 named ones, synthetic names are made up).")
    n_creators: int = Field(200, ge=1, description="Number of creators; each has one or two niche topics.")
    history_days: int = Field(60, ge=0, description="Items were published uniformly over this many days before day 0.")
    popularity_skew: float = Field(1.0, ge=0, description="Zipf-like spread of creator fame (0 = flat).")


def _topic_vocab(n_topics: int, rng: np.random.Generator) -> list[TopicVocab]:
    named = list(TOPICS.items())
    out = [(name, kw, tags, dur) for name, (kw, tags, dur) in named[:n_topics]]
    for t in range(len(out), n_topics):
        def word(n: int) -> str:
            return "".join(rng.choice(_SYLLABLES, size=n))
        name = word(2)
        out.append((f"{name}{t}", [word(3) for _ in range(12)], [word(2) for _ in range(3)], float(rng.uniform(150, 900))))
    return out


def generate_catalog(
    config: SyntheticCatalogConfig | None = None,
    seed: int = 0,
    encoder: TextEncoder | None = None,
) -> Catalog:
    """A seeded synthetic catalog (10k items in a fraction of a second, embeddings included lazily)."""
    cfg = config or SyntheticCatalogConfig()
    rng = np.random.default_rng(seed)
    vocab = _topic_vocab(cfg.n_topics, rng)
    n, t_count, c_count = cfg.n_items, cfg.n_topics, cfg.n_creators

    # creators: a main niche topic, sometimes a second one; skill and fame
    main_topic = rng.integers(0, t_count, size=c_count)
    second_topic = np.where(rng.random(c_count) < 0.3, rng.integers(0, t_count, size=c_count), main_topic)
    skill = rng.beta(4, 3, size=c_count)
    fame = rng.pareto(1.0 + 1.0 / max(cfg.popularity_skew, 1e-3), size=c_count) if cfg.popularity_skew > 0 else np.ones(c_count)
    creator_names = [f"{''.join(rng.choice(_SYLLABLES, size=2)).capitalize()}{k}" for k in range(c_count)]

    creator = rng.integers(0, c_count, size=n)
    topic = np.where(rng.random(n) < 0.75, main_topic[creator], second_topic[creator]).astype(np.int32)
    quality = np.clip(rng.beta(2 + 4 * skill[creator], 2 + 4 * (1 - skill[creator])), 0.0, 1.0)
    medians = np.array([v[3] for v in vocab]) * SHORT_VIDEO_SCALE  # medians of 40 s to 4 min
    duration = np.clip(medians[topic] * rng.lognormal(0.0, 0.5, size=n), 10.0, 7200.0)
    created_day = -rng.integers(0, cfg.history_days + 1, size=n)
    raw_pop = fame[creator] * np.exp(2.0 * quality) * rng.lognormal(0.0, 1.0, size=n) * (1.0 + (-created_day) / (cfg.history_days + 1))

    titles, descriptions, tags = compose_texts(vocab, topic, *draw_text_choices(rng, n))

    return Catalog(
        item_id=np.array([f"i{i}" for i in range(n)], dtype=object),
        title=titles,
        description=descriptions,
        topic=topic,
        topic_names=[v[0] for v in vocab],
        tags=tags,
        creator=creator,
        creator_names=creator_names,
        duration=duration,
        quality=quality,
        created_day=created_day,
        popularity=popularity_percentile(raw_pop),
        encoder=encoder,
    )


def draw_text_choices(rng: np.random.Generator, n: int) -> tuple[np.ndarray, ...]:
    """The random choices behind ``n`` items' texts: keyword, adjective, format, description and tag picks."""
    first = rng.integers(0, 12, size=n)
    steps = rng.integers(1, 6, size=(n, 2))
    kw_idx = np.stack([first, first + steps[:, 0], first + steps[:, 0] + steps[:, 1]], axis=1) % 12  # distinct
    adj_idx = rng.integers(0, len(_ADJECTIVES), size=n)
    fmt_idx = rng.integers(0, len(_FORMATS), size=n)
    desc_idx = rng.integers(0, len(_DESCRIPTIONS), size=n)
    tag_pick = rng.random((n, 3)) < 0.6
    return kw_idx, adj_idx, fmt_idx, desc_idx, tag_pick


def compose_texts(
    vocab: Sequence[TopicVocab],
    topic: np.ndarray,
    kw_idx: np.ndarray,
    adj_idx: np.ndarray,
    fmt_idx: np.ndarray,
    desc_idx: np.ndarray,
    tag_pick: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Titles, descriptions and tag tuples of items in ``topic`` (codes into ``vocab``) from drawn choices.

    Keyword indices wrap around a topic's keyword list, so topics with fewer than 12 keywords work.
    """
    n = len(topic)
    titles = np.empty(n, dtype=object)
    descriptions = np.empty(n, dtype=object)
    tags = np.empty(n, dtype=object)
    for i in range(n):
        name, kws, topic_tags, _ = vocab[topic[i]]
        k1, k2, k3 = (kws[j % len(kws)] for j in kw_idx[i])
        adj = _ADJECTIVES[adj_idx[i]]
        titles[i] = f"The {adj} {k1} {_FORMATS[fmt_idx[i]]}".replace("The ", "", 1).capitalize()
        descriptions[i] = _DESCRIPTIONS[desc_idx[i]].format(adj=adj, Adj=adj.capitalize(), k1=k1, k2=k2, k3=k3)
        tags[i] = (name, *(tg for tg, keep in zip(topic_tags, tag_pick[i]) if keep))
    return titles, descriptions, tags


def topic_vocabulary(
    source: Catalog | Sequence[str],
    titles_by_topic: Mapping[str, Sequence[str]] | None = None,
    default_duration: float = 480.0,
) -> list[TopicVocab]:
    """Keywords, tags and duration per topic, for writing new items in any catalog's topics.

    A topic named in :data:`TOPICS` uses its entry. Otherwise the keywords are the 12 most frequent
    title words of the topic's items (from ``titles_by_topic``, or the catalog's own titles), falling
    back to the topic name; a catalog also supplies the most frequent tags and the median duration
    (stored divided by :data:`SHORT_VIDEO_SCALE`, so new items match the existing ones).
    """
    catalog = source if isinstance(source, Catalog) else None
    names = catalog.topic_names if catalog is not None else [str(t) for t in source]
    titles = {k: list(v) for k, v in (titles_by_topic or {}).items()}
    if catalog is not None and titles_by_topic is None:
        titles = {name: list(catalog.title[rows]) for name, rows in zip(names, catalog.topic_members)}
    skip = _STOPWORDS | set(_ADJECTIVES) | {w for f in _FORMATS for w in f.split()}
    out: list[TopicVocab] = []
    for t, name in enumerate(names):
        if name in TOPICS:
            kws, tags, dur = TOPICS[name]
            out.append((name, list(kws), list(tags), float(dur)))
            continue
        words = Counter(
            w for title in titles.get(name, []) for w in re.findall(r"[a-z][a-z']+", str(title).lower())
            if len(w) > 2 and w not in skip
        )
        kws = [w for w, _ in words.most_common(12)] or [name.lower()]
        tags, dur = [re.sub(r"\W+", "", name.lower()) or "topic"], default_duration
        if catalog is not None:
            rows = catalog.topic_members[t]
            common = Counter(g for r in rows for g in catalog.tags[r] if g != name).most_common(3)
            tags = [g for g, _ in common] or tags
            if len(rows):
                dur = float(np.median(catalog.duration[rows])) / SHORT_VIDEO_SCALE
        out.append((name, kws, tags, dur))
    return out
