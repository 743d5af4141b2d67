"""Named views of packed per-user arrays (below every layer that packs them: the platform's, the users')."""

from __future__ import annotations


def column_view(array: str, col: int, doc: str) -> property:
    """A property reading column ``col`` of the instance's ``(B, k)`` array attribute ``array``: a view, so
    that writing into it writes the packed array."""
    return property(lambda self: getattr(self, array)[:, col], doc=doc)
