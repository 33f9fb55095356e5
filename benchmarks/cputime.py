"""CPU seconds of this process and every process it started (a local Ray cluster's raylet and
workers included, also those that have exited), read from /proc a few times a second. Linux only.

CPU seconds, not wall time: on a shared machine another job slows a measured step down but does
not make it use more CPU, so CPU-seconds per image compare across runs where images/s do not.

    meter = TreeCpu()
    ...
    meter.seconds()                 # CPU seconds of the tree since the meter started
    meter.between(t0, t1)           # CPU seconds between two time.time() stamps (interpolated)
"""

from __future__ import annotations

import bisect
import os
import threading
import time
from collections import defaultdict

_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds of all its threads) of a process, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as file:
            text = file.read()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICK


class TreeCpu:
    """Keeps the last CPU time seen of every process that was ever in this process's tree, and a
    time series of the tree's total for `between`."""

    def __init__(self, period: float = 0.2):
        self._root = os.getpid()
        self._last: dict[int, float] = {}
        self._own = 0.0  # what the sampling itself costs, left out of the totals
        self._times: list[float] = []
        self._totals: list[float] = []
        self._lock = threading.Lock()
        self._sample()
        threading.Thread(target=self._run, args=(period,), daemon=True).start()

    def seconds(self) -> float:
        """CPU seconds the tree used since the meter started."""
        return self._sample()

    def between(self, start: float, end: float) -> float:
        """CPU seconds the tree used between two `time.time()` stamps (linear between samples)."""
        self._sample()
        with self._lock:
            return self._at(end) - self._at(start)

    def _at(self, when: float) -> float:
        index = bisect.bisect_left(self._times, when)
        if index == 0:
            return self._totals[0]
        if index == len(self._times):
            return self._totals[-1]
        t0, t1 = self._times[index - 1], self._times[index]
        c0, c1 = self._totals[index - 1], self._totals[index]
        return c0 + (c1 - c0) * (when - t0) / max(t1 - t0, 1e-9)

    def _run(self, period: float) -> None:
        while True:
            time.sleep(period)
            self._sample()

    def _sample(self) -> float:
        began = time.thread_time()
        stats = {}
        for name in os.listdir("/proc"):
            if name.isdigit() and (stat := _stat(int(name))) is not None:
                stats[int(name)] = stat
        children = defaultdict(list)
        for pid, (parent, _) in stats.items():
            children[parent].append(pid)
        with self._lock:
            todo = [self._root]
            while todo:
                pid = todo.pop()
                if pid in stats:
                    self._last[pid] = max(stats[pid][1], self._last.get(pid, 0.0))
                todo.extend(children.get(pid, ()))
            self._own += time.thread_time() - began
            total = sum(self._last.values()) - self._own
            self._times.append(time.time())
            self._totals.append(total)
            return total - self._totals[0]
