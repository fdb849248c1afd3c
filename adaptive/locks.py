"""Exclusive advisory file locks: one holder at a time, for as long as it lives.

`fcntl.flock` on a lock file: the kernel drops the lock when the holder's file is closed, which happens
however the process ends (exit, exception, kill -9). A pid file alone would outlive a crashed holder and
block everyone after it. The holder writes its pid into the file so a refused process can name it.

The lock file is never deleted: unlinking it while another process waits on it would let that process
lock the orphaned file while a newcomer locks a fresh one, and both would believe they hold the lock.
POSIX only (fcntl), like the rest of the run-directory machinery.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

from .errors import BusyError


def holder_pid(path: str | Path) -> int | None:
    """The pid written by the lock's current (or last) holder; None if unknown."""
    try:
        text = Path(path).read_text().strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None


class FileLock:
    """`with FileLock(path, what="run directory runs/x"):` — raises BusyError if another process holds it
    (or, with blocking=True, waits for it)."""

    def __init__(self, path: str | Path, *, what: str, blocking: bool = False,
                 hint: str = "wait for it to finish"):
        self.path, self.what, self.blocking, self.hint = Path(path), what, blocking, hint
        self._fd: int | None = None

    def acquire(self) -> "FileLock":
        if self._fd is not None:
            raise RuntimeError(f"{self.path}: lock acquired twice")
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by exec'd children
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if self.blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            pid = holder_pid(self.path)
            raise BusyError(f"{self.what} is in use by another process "
                            f"({f'pid {pid}' if pid else 'pid unknown'}; lock {self.path}); {self.hint}") from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing drops the lock; the file (and its stale pid) stays

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> "FileLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

