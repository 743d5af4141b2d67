"""What every ``recoworld`` command prints with: the stdout console and the one-line error."""

from __future__ import annotations

import typer
from rich.console import Console

err_console = Console(stderr=True)


def make_console() -> Console:
    """A stdout console; pipes, files and CI logs get 160 columns so tables are not squeezed into 80."""
    console = Console()
    return console if console.is_terminal else Console(width=max(console.width, 160))


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print one red ``error:`` line to stderr; the caller raises the returned exit (code 2: bad input,
    3: a run stopped part-way and can be resumed)."""
    err_console.print(f"error: {message}", style="bold red", markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(code=code)
