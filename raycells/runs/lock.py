"""One command at a time in a run directory: a lock file holding the writer's pid and host.

A second command on a locked run directory is refused with the holder's pid and host. A lock left
by a process that no longer runs on this host (killed with SIGKILL, the machine restarted) is
taken over, and the taking over is reported. A lock held from another host cannot be checked from
here: it is refused with the path to delete once that process is known to be gone.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import RaycellsError

LOCK_FILE = "raycells.lock"


@contextmanager
def locked(run_dir: str | Path, command: str) -> Iterator[str | None]:
    """Hold `run_dir`'s lock while the block runs (creating the folder if needed); yields a note
    when a stale lock was taken over, else None. A folder this call created and the block left
    empty is removed again, so a refused start leaves nothing behind."""
    folder = Path(run_dir)
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:  # a file of that name, a missing mount, no permission
        raise RaycellsError(f"{folder}: cannot create the run directory ({error.strerror}). "
                            "Choose an --out on a mounted, writable file system.") from error
    lock = folder / LOCK_FILE
    try:
        note = _acquire(lock, command)
        try:
            yield note
        finally:
            _release(lock)
    finally:
        if created and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def _acquire(lock: Path, command: str) -> str | None:
    me = {"pid": os.getpid(), "host": socket.gethostname(), "command": command,
          "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    note = None
    for _ in range(2):  # a stale lock is removed once, then taken
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _holder(lock)
            if _alive(holder):
                raise _busy(lock, holder) from None
            note = (f"took over the lock of {_who(holder)}, which no longer runs "
                    f"({lock} was left behind).")
            lock.unlink(missing_ok=True)
            continue
        except OSError as error:
            raise RaycellsError(f"{lock.parent}: cannot write there ({error.strerror}). Choose "
                                "an --out on a mounted, writable file system.") from error
        with os.fdopen(fd, "w") as file:
            json.dump(me, file)
        return note
    raise _busy(lock, _holder(lock))  # another process took it between the two tries


def _release(lock: Path) -> None:
    """Remove `lock` if this process holds it (never another's)."""
    holder = _holder(lock)
    if holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname():
        lock.unlink(missing_ok=True)


def _holder(lock: Path) -> dict:
    try:
        holder = json.loads(lock.read_text())
    except (OSError, ValueError):
        return {}  # being written this instant, or damaged: decided by _alive
    return holder if isinstance(holder, dict) else {}


def _alive(holder: dict) -> bool:
    """Whether the lock's holder may still run: another host's, or a damaged lock's, are taken
    to be alive (they cannot be checked from here)."""
    pid, host = holder.get("pid"), holder.get("host")
    if not isinstance(pid, int) or host != socket.gethostname():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def _who(holder: dict) -> str:
    if not holder:
        return "an unknown process"
    return (f"`raycells {holder.get('command', '?')}` (pid {holder.get('pid')} on "
            f"{holder.get('host')}, since {holder.get('started', '?')})")


def _busy(lock: Path, holder: dict) -> RaycellsError:
    return RaycellsError(
        f"{lock.parent} is in use by {_who(holder)}: one command at a time writes to a run "
        f"directory. Wait for it to finish, or, if that process is gone (another machine, a "
        f"damaged lock), delete {lock} and try again.")
