"""SIGINT and SIGTERM end a run the same way, even when they land inside TVM.

Python raises KeyboardInterrupt wherever the signal lands. Inside a Python callback that
TVM's C++ calls (a cost model's update, a postprocessor), its FFI turns the exception into
a RuntimeError, which isolation code then treats as that plugin's failure and tuning goes
on. So the signal is also remembered, and the scheduler checks between rounds.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_received: list[int] = []


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
    previous = {sig: signal.signal(sig, _handler) for sig in (signal.SIGINT, signal.SIGTERM)}
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
