"""Running out of disk under a run folder: one line naming the disk and the file, nothing half-written left
behind, and what was written before kept, so the run resumes (``--resume``) once there is room again."""

from __future__ import annotations

import errno
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


class DiskFull(OSError):
    """No space left on the disk that holds the run folder (ENOSPC, or a quota): one line naming the disk and the
    file; the partial file is removed and what was written before is kept, so the run resumes once there is room."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.errno = errno.ENOSPC


def _mount_point(path: Path) -> Path:
    path = path.absolute()
    while not os.path.ismount(path) and path != path.parent:
        path = path.parent
    return path


@contextmanager
def room_for(path: Path, tmp: Path) -> Iterator[None]:
    """Turn running out of space while writing ``tmp`` (on its way to ``path``) into :class:`DiskFull`."""
    try:
        yield
    except OSError as exc:
        text = str(exc).lower()
        if isinstance(exc, DiskFull) or not (exc.errno in (errno.ENOSPC, errno.EDQUOT) or "no space left" in text
                                              or "quota exceeded" in text):  # pyarrow's errors carry it in the text
            raise
        tmp.unlink(missing_ok=True)  # give back what the partial file took
        disk = _mount_point(path.parent)
        try:
            left = shutil.disk_usage(disk).free
            free = f"{left / 1e6:.1f} MB free" if left >= 1e6 else f"{left / 1e3:.0f} kB free"
        except OSError:
            free = "free space unknown"
        raise DiskFull(f"disk full: no space left on the disk mounted at {disk} ({free}) while writing {path}; "
                       "what was written before is kept: free some space, then run the same command with --resume") from None
