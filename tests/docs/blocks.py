"""Fenced code blocks of the documentation, found and run the way a reader would run them.

Every fenced Python or shell block of ``docs/**/*.md`` and ``README.md`` is executed; a block whose first
line is ``# needs: <what>`` is skipped with that reason (a key, a GPU, a large model, a data set it would
download). The blocks of one page run in order in one temporary folder, as a reader following the page
would, so a block may use the files an earlier one wrote. Each block runs in its own process group with
a time limit; whatever it leaves running (a server started with ``&``) is stopped when it ends.

The fences are read line by line rather than with a CommonMark parser: inside admonitions and content tabs
pymdownx.superfences treats indented fences as code blocks, which a CommonMark parser takes for indented
text, and this reader has to see the same blocks as the site does.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYTHON = {"python", "py", "python3"}
SHELL = {"bash", "sh", "shell", "zsh"}
NEEDS = re.compile(r"#\s*needs:\s*(?P<reason>.*)$")
_OPEN = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\n]*)$")
TIMEOUT = float(os.environ.get("RECOWORLD_DOCS_BLOCK_TIMEOUT", "300"))


@dataclass
class Block:
    """One fenced block: where it is, its language (``python`` or ``shell``) and its code."""

    page: str  # path relative to the repository
    line: int  # 1-based line of the opening fence
    language: str
    code: str

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"

    @property
    def needs(self) -> str | None:
        """The reason of a leading ``# needs:`` line ('' when the line gives none); None without one."""
        first = next((line.strip() for line in self.code.splitlines() if line.strip()), "")
        match = NEEDS.fullmatch(first)
        return match["reason"].strip() if match else None


def fenced_blocks(text: str, page: str) -> list[Block]:
    """The Python and shell blocks of a Markdown page (other languages, and blocks with none, are not code to run)."""
    lines = text.splitlines()
    blocks, i = [], 0
    while i < len(lines):
        opening = _OPEN.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        info = opening["info"].strip().lstrip("{").lstrip(".")
        language = re.split(r"[\s}]", info, maxsplit=1)[0].lower() if info else ""
        close = re.compile(rf"^[ \t]{{0,{len(indent)}}}{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        j = i + 1
        while j < len(lines) and not close.match(lines[j]):
            j += 1
        body = textwrap.dedent("\n".join(line[len(indent):] if line.startswith(indent) else line for line in lines[i + 1:j]))
        kind = "python" if language in PYTHON else "shell" if language in SHELL else None
        if kind:
            blocks.append(Block(page, i + 1, kind, body + "\n"))
        i = j + 1
    return blocks


def pages(root: Path = ROOT) -> list[Path]:
    """README.md and every Markdown page of the site."""
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def all_blocks(root: Path = ROOT) -> list[Block]:
    out = []
    for page in pages(root):
        out += fenced_blocks(page.read_text(encoding="utf-8"), page.relative_to(root).as_posix())
    return out


def block_env() -> dict[str, str]:
    """The environment a reader of the docs has after installing RecoWorld: its commands first on PATH,
    no hub downloads, one thread per library (the suite's rule), no display."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update({"LITELLM_LOCAL_MODEL_COST_MAP": "True", "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1"})
    for name in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(name, "1")
    return env


@dataclass
class Outcome:
    returncode: int | None  # None: stopped at the time limit
    output: str
    seconds: float


def run_block(block: Block, folder: Path, timeout: float = TIMEOUT) -> Outcome:
    """Run ``block`` in ``folder`` in a process group of its own; everything left in the group is stopped after."""
    if block.language == "python":
        cmd = [sys.executable, "-c", block.code]
    else:
        cmd = ["bash", "-e", "-u", "-o", "pipefail", "-c", block.code]
    start = time.monotonic()
    # output goes to a file, not a pipe: a server the block left running in the background keeps a pipe open
    with tempfile.TemporaryFile(mode="w+") as out:
        proc = subprocess.Popen(cmd, cwd=folder, env=block_env(), stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, text=True, start_new_session=True)
        try:
            code: int | None = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            code = None
        _stop_group(proc.pid)
        proc.wait()
        out.seek(0)
        output = out.read()
    return Outcome(code, output, time.monotonic() - start)


def _stop_group(pgid: int) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        time.sleep(0.2)


@dataclass
class PageRun:
    """The blocks of one page, run in order in one folder; a block's result is computed once."""

    folder: Path
    blocks: list[Block]
    outcomes: dict[int, Outcome] = field(default_factory=dict)

    def outcome(self, index: int) -> tuple[Outcome | None, str | None]:
        """(the outcome of block ``index``, or None; the id of an earlier block that failed, or None)."""
        for k in range(index + 1):
            block = self.blocks[k]
            if block.needs is not None:
                continue
            if k not in self.outcomes:
                self.outcomes[k] = run_block(block, self.folder)
            if k < index and self.outcomes[k].returncode != 0:
                return None, block.id
        return self.outcomes[index], None
