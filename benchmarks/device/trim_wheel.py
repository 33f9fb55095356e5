"""Remove folders from a wheel in place, and their lines from its RECORD, so that pip installs
the rest as usual.

    python benchmarks/device/trim_wheel.py WHEEL PREFIX [PREFIX ...]
"""

from __future__ import annotations

import os
import sys
import zipfile
from pathlib import Path


def trim(wheel: Path, prefixes: tuple[str, ...]) -> int:
    """Rewrite `wheel` without the files whose names start with one of `prefixes`; returns how
    many bytes (compressed) were removed."""
    trimmed = wheel.with_suffix(".trimming")
    removed = 0
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(
            trimmed, "w", compression=zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            if item.filename.startswith(prefixes):
                removed += item.compress_size
                continue
            data = source.read(item)
            if item.filename.endswith(".dist-info/RECORD"):
                lines = data.decode().splitlines(keepends=True)
                data = "".join(line for line in lines if not line.startswith(prefixes)).encode()
            target.writestr(item, data)
    if not removed:
        trimmed.unlink()
        raise SystemExit(f"{wheel}: nothing starts with {', '.join(prefixes)}: is it the wheel meant?")
    os.replace(trimmed, wheel)
    return removed


if __name__ == "__main__":
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    wheel = Path(sys.argv[1])
    removed = trim(wheel, tuple(sys.argv[2:]))
    print(f"{wheel.name}: {removed / 2**20:.1f} MiB removed ({', '.join(sys.argv[2:])})")
