"""Reading a scenario's text: strict YAML (no duplicate keys, no depth bombs) and the checks on its raw
values that pydantic's coercion would hide (NaN, infinities, huge magnitudes, yes/no where a number belongs)."""

from __future__ import annotations

import math
from typing import Any

import yaml
from pydantic import BaseModel


class ScenarioError(ValueError):
    """A scenario that cannot be used; the message names the offending field."""


MAX_ABS_NUMBER = 1e12  # no field of a scenario means anything beyond this
MAX_DEPTH = 24  # YAML nesting: a scenario is a few levels deep; deeper is a mistake or a bomb


def check_numbers(node: Any, path: tuple[str, ...]) -> None:
    """A ValueError naming the first number under ``node`` that is NaN, infinite or beyond ``MAX_ABS_NUMBER``
    (seeds excepted: any 64-bit integer)."""
    if isinstance(node, dict):
        for key, value in node.items():
            check_numbers(value, (*path, str(key)))
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            check_numbers(value, (*path, str(i)))
    elif isinstance(node, float) or (isinstance(node, int) and not isinstance(node, bool) and path[-1:] != ("seed",)):
        where = ".".join(path) or "(top level)"
        if isinstance(node, float) and not math.isfinite(node):
            raise ValueError(f"{where}: {node} is not a finite number")
        if abs(node) > MAX_ABS_NUMBER:
            raise ValueError(f"{where}: {node:g} is out of range (|x| <= {MAX_ABS_NUMBER:g})")


def check_no_bool_numbers(raw: Any, parsed: Any, path: tuple[str, ...] = ()) -> None:
    """A ValueError naming the first yes/no value (``true``, ``false``) in ``raw`` that pydantic turned into a
    number in ``parsed`` (``n_topics: true`` would silently mean 1). Walks the input beside the model."""
    if isinstance(raw, bool):
        if isinstance(parsed, (int, float)) and not isinstance(parsed, bool):
            raise ValueError(f"{'.'.join(path) or '(top level)'}: {str(raw).lower()} is not a number")
        return
    if isinstance(raw, dict):
        names = {(f.alias or n): n for n, f in type(parsed).model_fields.items()} if isinstance(parsed, BaseModel) else {}
        for key, value in raw.items():
            if isinstance(parsed, BaseModel) and str(key) in names:
                check_no_bool_numbers(value, getattr(parsed, names[str(key)]), (*path, str(key)))
            elif isinstance(parsed, dict) and key in parsed:
                check_no_bool_numbers(value, parsed[key], (*path, str(key)))
    elif isinstance(raw, (list, tuple)) and isinstance(parsed, (list, tuple)) and len(raw) == len(parsed):
        for i, (value, child) in enumerate(zip(raw, parsed)):
            check_no_bool_numbers(value, child, (*path, str(i)))


class _StrictLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses duplicate keys and nesting deeper than MAX_DEPTH."""

    _depth = 0

    def compose_node(self, parent, index):  # type: ignore[no-untyped-def]
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise ScenarioError(f"nested more than {MAX_DEPTH} levels deep (line {self.get_mark().line + 1})")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):  # type: ignore[no-untyped-def]
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:
                raise ScenarioError(f"line {key_node.start_mark.line + 1}: a key must be a plain value") from None
            if duplicate:
                raise ScenarioError(f"duplicate key '{key}' (line {key_node.start_mark.line + 1})")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def safe_load_strict(text: str) -> Any:
    """YAML to Python like ``yaml.safe_load``, refusing duplicate keys and depth bombs (ScenarioError)."""
    loader = _StrictLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()
