"""Headless Chromium for the tests that look at a page as a person would (Debian's chromium; .ci/run installs it)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

SKIP_REASON = "no chromium, chromium-browser or google-chrome on PATH (`apt-get install -y chromium`; .ci/run does)"


def chromium() -> str | None:
    """The browser's path, or None when none is installed."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    return None


def screenshot(browser: str, url: str, shot: Path, profile: Path, size: str = "1280,1600") -> list[str]:
    """Load ``url`` headless, let its scripts run, save a PNG; returns the console lines that report an error."""
    cmd = [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
           f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", f"--screenshot={shot}",
           f"--window-size={size}", "--virtual-time-budget=3000", url]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # Chromium logs page console messages as "...:CONSOLE:1] "msg", source: ..." (the level word varies by version);
    # dbus, GPU and sandbox warnings on headless machines are other lines, ignored
    console = [line for line in proc.stderr.splitlines() if "CONSOLE" in line]
    return [line for line in console if "Uncaught" in line or "ERROR" in line or "Failed to load" in line]
