"""Crash-safe, multi-process JSON-lines files.

Writers append one complete line with one ``write()`` on an ``O_APPEND``
descriptor, then ``fsync``; they hold an exclusive ``flock`` on a lock file
while they do, so lines from different processes never interleave. Readers
take no lock: they read whole lines incrementally and leave an unterminated
tail alone (a line being written, or the remains of a killed writer).
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class CorruptLineWarning(UserWarning):
    """A line of a record file could not be read and was skipped."""


def warn_line(path: Path, line: int, why: str) -> None:
    """Warn that line ``line`` (1-based) of ``path`` was skipped, and why."""
    warnings.warn(f"{path}:{line}: skipped: {why}", CorruptLineWarning, stacklevel=3)


def first_line(exc: BaseException) -> str:
    """The first non-blank line of an exception's message (TVM's run to many lines)."""
    lines = [part.strip() for part in str(exc).splitlines() if part.strip()]
    return lines[0] if lines else type(exc).__name__


_THREAD_LOCKS: dict[Path, threading.Lock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


@contextmanager
def exclusive(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_path`` against other processes and threads.

    The lock file is opened afresh each time: ``flock`` locks belong to an
    open file description, which a forked child would otherwise share with
    its parent (and then neither would exclude the other). Threads of one
    process are serialised by a process-wide mutex per lock file first.
    """
    key = lock_path.resolve()
    with _THREAD_LOCKS_GUARD:
        thread_lock = _THREAD_LOCKS.setdefault(key, threading.Lock())
    with thread_lock:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the flock


class RecordWriteError(OSError):
    """A line could not be appended (a full disk, a file-size limit, a lost mount); the
    file is as it was before the attempt. The message is one line."""


def append_line(path: Path, text: str) -> None:
    """Append ``text`` and a newline as one write, then fsync. Call with the lock held.

    A write that fails part-way (a full disk) is cut back off, so the file never keeps a
    torn line, and :class:`RecordWriteError` says why.
    """
    if "\n" in text:
        raise ValueError("a JSON line must not contain a newline")
    data = (text + "\n").encode("utf-8")
    created = not path.exists()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError as exc:
        raise RecordWriteError(f"cannot open {path} to append: {exc.strerror}") from None
    size = os.fstat(fd).st_size
    try:
        written = os.write(fd, data)
        while written < len(data):  # only on a full disk or a signal; finish the line
            written += os.write(fd, data[written:])
        os.fsync(fd)
    except OSError as exc:
        truncate(path, size)
        raise RecordWriteError(f"cannot append to {path}: {exc.strerror}; the file is kept "
                               f"as it was ({size} bytes)") from None
    finally:
        os.close(fd)
    if created:  # make the new file's name durable too
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def truncate(path: Path, size: int) -> None:
    """Cut ``path`` back to ``size`` bytes (shrinking a file needs no space)."""
    fd = os.open(path, os.O_RDWR)
    try:
        os.ftruncate(fd, size)
        os.fsync(fd)
    finally:
        os.close(fd)


def drop_partial_tail(path: Path) -> None:
    """Cut an unterminated last line off ``path``. Call with the lock held.

    Under the lock no writer is mid-line, so such a tail is what a killed
    writer left. It must go before the next append, or the new line would be
    glued onto it and lost; and MetaSchedule's loader refuses a file with it.
    """
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return
    try:
        size = os.fstat(fd).st_size
        if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
            return
        data = os.pread(fd, size, 0)
        keep = data.rfind(b"\n") + 1
        line = data.count(b"\n") + 1
        os.ftruncate(fd, keep)
        os.fsync(fd)
    finally:
        os.close(fd)
    warnings.warn(
        f"{path}:{line}: removed an incomplete last line "
        f"({size - keep} bytes) left by an interrupted write",
        CorruptLineWarning, stacklevel=2)


class LineReader:
    """Reads the complete lines appended to a JSON-lines file since the last call."""

    def __init__(self, path: Path, lock_path: Path | None = None) -> None:
        self.path = path
        self.lock_path = lock_path  # to tell a line being written from an abandoned one
        self.offset = 0  # bytes consumed: always just after a newline
        self.lines = 0  # complete lines consumed
        self._inode: int | None = None
        self._warned_tail: tuple[int, int] | None = None

    def read_new(self) -> tuple[bool, list[tuple[int, Any]]]:
        """``(restarted, [(line_number, json_or_None), ...])`` for the new complete lines.

        ``restarted`` is True when the file was replaced or shrank below what
        was read, in which case reading started over and the caller must drop
        what it built from earlier lines. A line that is not JSON is warned
        about and returned as None, so line numbers (workload indices) hold.
        """
        try:
            with open(self.path, "rb") as handle:
                stat = os.fstat(handle.fileno())
                size = stat.st_size
                replaced = self._inode is not None and stat.st_ino != self._inode
                self._inode = stat.st_ino
                restarted = size < self.offset or (replaced and self.offset > 0)
                if restarted:
                    self.offset, self.lines = 0, 0
                handle.seek(self.offset)
                data = handle.read()
        except FileNotFoundError:
            restarted = self.offset > 0
            self.offset, self.lines = 0, 0
            return restarted, []
        out: list[tuple[int, Any]] = []
        start = 0
        while (end := data.find(b"\n", start)) >= 0:
            self.lines += 1
            out.append((self.lines, self._parse(data[start:end], self.lines)))
            start = end + 1
        self.offset += start
        tail = data[start:]
        if (tail and self._warned_tail != (self.lines + 1, len(tail))
                and not self._writer_active()):
            self._warned_tail = (self.lines + 1, len(tail))
            warn_line(self.path, self.lines + 1, "incomplete last line (an interrupted write)")
        return restarted, out

    def _writer_active(self) -> bool:
        """Whether someone holds the writers' lock (so an unterminated tail may be in flight)."""
        if self.lock_path is None:
            return False
        try:
            fd = os.open(self.lock_path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)

    def _parse(self, raw: bytes, line: int) -> Any:
        return parse_json_line(self.path, line, raw)


def parse_json_line(path: Path, line: int, raw: bytes, unreadable: Any = None) -> Any:
    """Line ``line`` of ``path`` as JSON; ``unreadable``, with a warning naming the line,
    if it is not."""
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        warn_line(path, line, f"not JSON ({exc})")
        return unreadable


def read_json_lines(path: Path) -> list[tuple[int, Any]]:
    """``[(line_number, json), ...]`` for each line of ``path`` that is JSON; every other
    line (binary garbage, a killed writer's tail) is warned about as ``path:line`` and
    skipped. No file: no lines."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    unreadable = object()
    parsed = [(number, parse_json_line(path, number, raw, unreadable))
              for number, raw in enumerate(data.split(b"\n"), 1) if raw.strip()]
    return [(number, entry) for number, entry in parsed if entry is not unreadable]
