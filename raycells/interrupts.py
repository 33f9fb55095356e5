"""Signals held back while a block works with threads or starts Ray.

A signal handler that raises (Ctrl-C's KeyboardInterrupt, the CLI's SIGTERM) interrupts the main
thread between any two bytecodes, also inside `threading`'s lock and condition code: a thread
pool's semaphore left locked that way deadlocks the pool's threads, and the process hangs at exit
(seen with SIGTERM while indexing handed 8,562 images to its pool). Held back, the signal is
noted (the block can look and stop early) and delivered again once the block ends, where
nothing is half done.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def held_signals(*signums: int) -> Iterator[list[int]]:
    """Note `signums` instead of handling them while the block runs; yield the list of those
    received so far (the block may stop early when it is not empty); afterwards, restore the
    handlers and send each received signal again, for them to handle. A signal ignored stays
    ignored. Outside the main thread (where handlers cannot be set) the block runs as it is and
    the list stays empty."""
    if threading.current_thread() is not threading.main_thread():
        yield []
        return
    asked: list[int] = []
    previous = {signum: signal.signal(signum, lambda number, frame: asked.append(number))
                for signum in signums if signal.getsignal(signum) is not signal.SIG_IGN}
    try:
        yield asked
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    for signum in dict.fromkeys(asked):
        signal.raise_signal(signum)
