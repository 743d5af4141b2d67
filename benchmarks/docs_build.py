"""The documentation: how long `mkdocs build --strict` takes (API reference included), how many pages it
writes, how long the README is, and how many code blocks the docs' checks run or skip, and why.

    python benchmarks/docs_build.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.docs.blocks import all_blocks  # noqa: E402  (the same reader the tests use)


def main() -> None:
    with tempfile.TemporaryDirectory() as site:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", site], cwd=ROOT,
                       check=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
        seconds = time.perf_counter() - start
        pages = sum(1 for _ in Path(site).rglob("index.html"))
    readme = (ROOT / "README.md").read_text(encoding="utf-8").count("\n")
    blocks = all_blocks(ROOT)
    skipped = Counter(b.page for b in blocks if b.needs is not None)
    print(f"mkdocs build --strict: {seconds:.1f} s, {pages} pages (load average {os.getloadavg()[0]:.1f})")
    print(f"README.md: {readme} lines")
    print(f"code blocks: {len(blocks)} in {len({b.page for b in blocks})} pages; {len(blocks) - sum(skipped.values())} run, "
          f"{sum(skipped.values())} marked '# needs:'")
    for block in blocks:
        if block.needs is not None:
            print(f"  {block.id}: needs {block.needs}")


if __name__ == "__main__":
    main()
