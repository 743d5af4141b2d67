"""The one error a POLICY raises when it cannot be loaded, reached or trusted (kept apart so that the
dispatch in :mod:`recoworld.tasks.policies` and the URL client it dispatches to need not import each other)."""


class PolicyError(ValueError):
    """A policy that cannot be loaded or that misbehaves (one line)."""
