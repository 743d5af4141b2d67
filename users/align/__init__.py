"""Preference-aligned LLM users from logged feedback (Mirroring Users, arXiv 2508.18142)."""
