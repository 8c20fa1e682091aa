"""SIGINT and SIGTERM end a run the same way, even when they land inside TVM.

Python raises KeyboardInterrupt wherever the signal lands. Inside a Python callback that
TVM's C++ calls (a cost model's update, a postprocessor), its FFI turns the exception into
a RuntimeError, which isolation code then treats as that plugin's failure and tuning goes
on. So the signal is also remembered, and the scheduler checks between rounds.

A write that must be whole (a record and its side line) holds the signals off while it
runs (:func:`deferred`), and a process that received one exits at once after saying so
(:func:`exit_with`).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_received: list[int] = []
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _handler(signum, frame) -> None:
    _received.append(signum)
    raise KeyboardInterrupt


@contextmanager
def handled() -> Iterator[None]:
    """SIGINT and SIGTERM raise KeyboardInterrupt and are remembered, meanwhile (only in the
    main thread, where Python runs handlers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _handler) for sig in _SIGNALS}
    _received.clear()
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def received() -> int | None:
    """The first signal received since :func:`handled` began, or None."""
    return _received[0] if _received else None


def check() -> None:
    """Raise KeyboardInterrupt if a signal came, though something swallowed its exception."""
    if _received:
        raise KeyboardInterrupt


@contextmanager
def deferred() -> Iterator[None]:
    """SIGINT and SIGTERM held off for the length of the block: one that arrives meanwhile
    is delivered as the block ends, so no exception lands in the middle of it. (Main thread
    only, where Python runs handlers; elsewhere, or under handlers Python did not install,
    the block runs as it is.)"""
    previous = {sig: signal.getsignal(sig) for sig in _SIGNALS}
    if (threading.current_thread() is not threading.main_thread()
            or any(handler is None for handler in previous.values())):
        yield
        return
    held: list[int] = []
    for sig in _SIGNALS:
        signal.signal(sig, lambda signum, frame: held.append(signum))
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if held:
            signal.raise_signal(held[0])


def exit_with(status: int) -> None:
    """Exit with ``status``; after a signal, at once, the standard streams flushed. A signal
    that landed while an extension module was initialising (Cython runs module code through
    ``PyRun_String``) marks the interpreter as ended by an unhandled KeyboardInterrupt, and
    its normal exit would then kill itself with SIGINT instead of returning ``status``."""
    if _received:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    sys.exit(status)
