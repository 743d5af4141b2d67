"""Lazy re-exports for package ``__init__`` files: ``import recoworld.agents`` loads nothing until a
name is used, so a package's import cost is that of what the caller actually touches (PEP 562)."""

from __future__ import annotations

import importlib
from collections.abc import Callable


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: ``exports`` maps a public name to the submodule
    (relative to ``package``) that defines it; the submodule is imported on first access."""

    def __getattr__(name: str) -> object:
        if name not in exports:
            raise AttributeError(f"module '{package}' has no attribute '{name}'")
        value = getattr(importlib.import_module(f"{package}.{exports[name]}"), name)
        globals_ = importlib.import_module(package).__dict__
        globals_[name] = value  # later lookups skip __getattr__
        return value

    def __dir__() -> list[str]:
        return sorted({*importlib.import_module(package).__dict__, *exports})

    return __getattr__, __dir__
