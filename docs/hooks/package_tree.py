"""A mkdocs hook: lets the API reference (mkdocstrings, which reads source files statically) find
``recoworld.users``, ``recoworld.agents`` and ``recoworld.scenarios``.

Those packages live in top-level folders mapped into ``recoworld`` by setuptools' ``package-dir``
(see pyproject.toml), a mapping the static reader does not follow. Before the build, this hook lays
out the package as it installs, a folder of symbolic links in a temporary directory, and points the
Python handler's ``paths`` at it. The mapping is read from pyproject.toml, so it is written once.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import tomllib
from pathlib import Path

from mkdocs.plugins import event_priority


def package_tree(root: Path, into: Path) -> Path:
    """``into/recoworld``: links to every entry of the package folder, plus one per mapped subpackage."""
    mapping = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    top = into / "recoworld"
    top.mkdir(parents=True)
    for entry in (root / mapping["recoworld"]).iterdir():
        if entry.name != "__pycache__":
            (top / entry.name).symlink_to(entry.resolve())
    for name, folder in mapping.items():
        parts = name.split(".")
        if len(parts) == 2:  # recoworld.users = users
            (top / parts[1]).symlink_to((root / folder).resolve())
    return into


@event_priority(100)  # before mkdocstrings creates its handler
def on_config(config):
    root = Path(config.config_file_path).parent
    into = Path(tempfile.mkdtemp(prefix="recoworld-api-"))
    atexit.register(shutil.rmtree, into, ignore_errors=True)
    package_tree(root, into)
    config.plugins["mkdocstrings"].config.handlers.setdefault("python", {})["paths"] = [str(into)]
    return config
