"""A finished day written on a thread while the next one is simulated: the day files, then the
manifest, then the checkpoint (or, on the last day, the manifest and no checkpoint). An error in the
thread is raised again in the main thread at the next :meth:`DayWriter.wait`."""

from __future__ import annotations

import threading

import pyarrow as pa

from recoworld.logs.folder import RunFolder, RunManifest


class DayWriter:
    """Writes one day at a time into a run folder, on a thread."""

    def __init__(self, folder: RunFolder | None) -> None:
        self.folder = folder
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def submit(self, manifest: RunManifest, day: int, tables: dict[str, pa.Table], last: bool, snapshot,
               stopped: str = "") -> None:
        """Start writing ``day`` (call :meth:`wait` first: one day at a time)."""
        self._thread = threading.Thread(target=self._write, args=(manifest, day, tables, last, snapshot, stopped),
                                        name="recoworld-log-writer")
        self._thread.start()

    def _write(self, manifest: RunManifest, day: int, tables: dict[str, pa.Table], last: bool, snapshot,
               stopped: str = "") -> None:
        assert self.folder is not None
        try:
            for name, table in tables.items():
                manifest.files.append(self.folder.write_day(name, day, table))
            manifest.days_completed = day + 1
            if last:
                manifest.status = "complete"
            elif stopped:
                manifest.status, manifest.stopped = "stopped", stopped
            if last:
                self.folder.write_manifest(manifest)
                self.folder.remove_checkpoints()
            else:
                self.folder.write_manifest(manifest)
                self.folder.save_checkpoint(snapshot)
        except BaseException as exc:  # raised again in the main thread
            self._error = exc

    def wait(self) -> None:
        """Until the day being written is written; its error, if it failed, raised here."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def join(self) -> None:
        """Until the day being written is written, whatever happened; its error is kept for :meth:`raise_error`."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def raise_error(self) -> None:
        """The error the last day's writing ended in, raised (nothing when it was written)."""
        if self._error is not None:
            raise self._error
