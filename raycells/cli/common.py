"""What every command shares: the consoles, turning library errors into exit codes, progress bars
and finding the dataset a command should work on."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..data.demo import demo_dataset
from ..errors import RaycellsError
from ..data.index import index_dataset
from ..data.manifest import Manifest, read_manifest
from ..runs.rundir import RunDir

console = Console(soft_wrap=True)
"""Results: tables and summaries (lines of text are not wrapped, so paths stay whole)."""
status = Console(stderr=True, soft_wrap=True)
"""Progress, warnings and errors, kept off stdout so results can be piped."""

EXIT_UNREADABLE = 1
"""The work finished, but some images could not be read (they are listed)."""
EXIT_BAD_INPUT = 2
"""Nothing was done: the input is wrong; the message says how to fix it."""


@contextmanager
def reported_errors() -> Iterator[None]:
    """Print a RaycellsError as one clear message and exit with EXIT_BAD_INPUT."""
    try:
        yield
    except RaycellsError as error:
        status.print(f"[bold red]error:[/] {error}", highlight=False)
        raise typer.Exit(EXIT_BAD_INPUT) from None


@contextmanager
def ray_messages_to(log: Path) -> Iterator[None]:
    """Send Ray's own messages to the file `log` while the block runs; the consoles keep the
    terminal. Ray's C++ core writes straight to file descriptor 2 and its log listener prints
    raylet warnings to sys.stdout, none of which a user of the CLI needs to read. The messages
    are collected in a temporary file and added to `log` at the end if its folder exists by
    then (a run that could not start leaves nothing behind)."""
    out, err = sys.stdout, sys.stderr
    out.flush()
    err.flush()
    terminal_err = _own_handle(err)
    saved_fd = os.dup(2)
    console.file, status.file = out, terminal_err
    with tempfile.TemporaryFile("w+", buffering=1) as sink:
        os.dup2(sink.fileno(), 2)
        sys.stdout = sys.stderr = sink
        try:
            yield
        finally:
            sys.stdout, sys.stderr = out, err
            os.dup2(saved_fd, 2)
            os.close(saved_fd)
            console.file = status.file = None  # back to following sys.stdout / sys.stderr
            if terminal_err is not err:
                terminal_err.close()
            if log.parent.is_dir():
                sink.seek(0)
                with open(log, "a") as kept:
                    shutil.copyfileobj(sink, kept)


def _own_handle(stream):
    """`stream`, or a new handle on its terminal when it writes to file descriptor 2 (which is
    about to be redirected)."""
    try:
        if stream.fileno() != 2:
            return stream
    except (AttributeError, OSError, ValueError):
        return stream  # a test runner's capture object
    return open(os.dup(2), "w", buffering=1, encoding=getattr(stream, "encoding", None) or "utf-8")


def new_progress(description: str) -> tuple[Progress, Any]:
    """A started rich progress bar on stderr and its task id."""
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), console=status, transient=True)
    bar.start()
    return bar, bar.add_task(description, total=None)


@contextmanager
def progress_bar(description: str) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar; yields a progress(done, total) callback for the library."""
    bar, task = new_progress(description)
    try:
        yield lambda done, total: bar.update(task, completed=done, total=total)
    finally:
        bar.stop()


def dataset_path(path: Path | None) -> Path:
    """`path`, or the built-in synthetic demo dataset (generated on first use) when None."""
    if path is not None:
        return path
    status.print("[yellow]No dataset given: using the built-in SYNTHETIC demo dataset "
                 "(drawn cells, not real images).[/]")
    with status.status("Preparing the demo dataset (generated once, then cached)"):
        return demo_dataset()


def load_dataset(path: Path | None) -> Manifest:
    """The manifest for `path`: a Parquet manifest is read, a folder or CSV is indexed, and no
    path means the built-in synthetic demo dataset."""
    path = dataset_path(path)
    if path.suffix.lower() == ".parquet" and path.is_file():
        return read_manifest(path)
    with progress_bar(f"Reading images in {path}") as update:
        return index_dataset(path, progress=update)


class LiveDisplay:
    """Turns a library command's events into status lines and a live table. Subclasses define
    `_table()` and `_on_<event>` handlers; unknown events are ignored."""

    unit = "fold"
    """What runs at once, in the resources line: fold or trial."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: Live | None = None
        self._cache: tuple | None = None

    def event(self, kind: str, **info: Any) -> None:
        with self._lock:
            getattr(self, f"_on_{kind}", lambda **_: None)(**info)
            if self._live:
                self._live.update(self._table())

    def close(self) -> None:
        with self._lock:
            if self._cache:
                self._cache[0].stop()
            if self._live:
                self._live.stop()
                self._live = None
                if not status.is_terminal:  # rich leaves the last line open in a log file
                    status.line()

    def run(self, work: Callable[[], Any], run_dir: Path, interrupted: str) -> Any:
        """`work()` with this display live and Ray's messages in `run_dir`/ray.log. Ctrl-C
        prints `interrupted` (what was kept, how to go on) and exits with 130."""
        try:
            with ray_messages_to(RunDir(run_dir).ray_log):
                return work()
        except KeyboardInterrupt:
            self.close()
            status.print(f"[yellow]Interrupted.[/] {interrupted}")
            raise typer.Exit(130) from None
        finally:
            self.close()

    def _table(self):
        raise NotImplementedError

    def _on_prepared(self, run_dir, images, classes, synthetic, source, extra) -> None:
        if synthetic:
            status.print("[bold yellow]SYNTHETIC demo data:[/] drawn cells, not real images. "
                         "Use it to check the set-up, never to judge a model.")
        status.print(f"Run directory {run_dir}: {images:,} images, {len(classes)} classes ({source}).")
        if extra:
            counts = ", ".join(f"{code} {n:,}" for code, n in extra.items())
            status.print(f"Extra training images (every fold's training part only): "
                         f"{sum(extra.values()):,} ({counts}).")

    def _on_cache(self, done, total) -> None:
        if self._cache is None:
            self._cache = new_progress("Decoding images into the cache (once per dataset and size)")
        bar, task = self._cache
        bar.update(task, completed=done, total=total)
        if done >= total:
            bar.stop()

    def _on_resources(self, workers, cpus_per_worker, gpus_per_worker, threads, concurrent_folds) -> None:
        where = f"{gpus_per_worker:g} GPU" if gpus_per_worker else f"{cpus_per_worker:g} CPU ({threads} threads)"
        status.print(f"Each {self.unit}: {workers} worker(s) x {where}; "
                     f"{concurrent_folds} {self.unit}(s) at a time.")
        self._live = Live(self._table(), console=status, refresh_per_second=2, transient=False,
                          redirect_stdout=False, redirect_stderr=False)
        self._live.start()
