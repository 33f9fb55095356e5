"""Telling the user when a command ends abruptly. Ray ends the driver at once, running no Python
code, when its raylet dies under it (the core worker's QuickExit, exit 1); a SIGKILL does the
same. A small process started beside the command (`Watcher.start`) waits on a pipe: the command
writes "done" into it when it leaves normally (an error or Ctrl-C included). If the pipe closes
without it, the watcher adds Ray's messages to the run's ray.log and prints, on the terminal,
that the command ended abruptly and what was kept.

Run as a script by its path (standard library only), so that it starts in milliseconds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

NOTHING_KEPT = "Nothing was written yet: start the command again."


def kept(config_written: bool, interrupted: str) -> str:
    """What a stopped command kept and how to go on (`interrupted`); before the run directory's
    config.json was written, nothing was kept."""
    return interrupted if config_written else NOTHING_KEPT


class Watcher:
    """The command's end of the pipe to its watcher process."""

    def __init__(self, process: subprocess.Popen, pipe: int):
        self._process, self._pipe = process, pipe

    @classmethod
    def start(cls, *, sink: int, log: Path, terminal: int, config: Path, interrupted: str) -> Watcher:
        """Watch this process: Ray's messages are in the file descriptor `sink` (read from its
        start), to be added to `log`; the watcher prints on `terminal`; `config` and
        `interrupted` decide what it says was kept (`kept`)."""
        read, write = os.pipe()  # not inherited: Ray's processes never hold the write end
        try:
            process = subprocess.Popen(
                [sys.executable, "-I", "-S", __file__, str(read), str(sink), str(log), str(config),
                 interrupted],
                pass_fds=(read, sink), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=terminal)
        finally:
            os.close(read)
        return cls(process, write)

    def left_normally(self) -> None:
        """The command leaves the watched block on its own: the watcher ends, saying nothing."""
        try:
            os.write(self._pipe, b"done")
        finally:
            os.close(self._pipe)
            self._process.wait()


def _read_all(fd: int) -> str:
    chunks, offset = [], 0
    while chunk := os.pread(fd, 1 << 20, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


def _watch(pipe: int, sink: int, log: Path, config: Path, interrupted: str) -> None:
    for stop in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # they are the command's to handle
        signal.signal(stop, signal.SIG_IGN)
    said = b""
    while chunk := os.read(pipe, 16):
        said += chunk
    if said == b"done":
        return
    messages = _read_all(sink)
    where = ""
    if messages and log.parent.is_dir():
        with open(log, "a") as kept_log:
            kept_log.write(messages)
        where = f" Ray's messages are in {log}."
    sys.stderr.write(f"\nerror: the command ended abruptly (killed, or its Ray processes stopped "
                     f"under it).{where} {kept(config.is_file(), interrupted)}\n")
    sys.stderr.flush()


if __name__ == "__main__":
    _watch(int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]), sys.argv[5])
