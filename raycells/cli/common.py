"""What every command shares: the consoles, turning library errors into exit codes, Ray's messages
kept off the terminal, progress bars, and the settings and dataset of a new or resumed run."""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..data.images import MAX_PIXELS
from ..errors import RaycellsError
from ..settings import Experiment, Placement, read_config_file, resolve_preset

if TYPE_CHECKING:
    from ..data.manifest import Manifest
    from ..runs.rundir import RunDir

class _Console(Console):
    """A rich console that wraps long lines between words on a terminal (the terminal would cut
    them at its edge, inside a word or a number) and never in a file or a pipe, where a line
    stays whole for the tools that read it."""

    @property
    def soft_wrap(self) -> bool:
        return not self.is_terminal

    @soft_wrap.setter
    def soft_wrap(self, value: bool) -> None:  # decided by where the output goes, as it goes
        pass


console = _Console()
"""Results: tables and summaries."""
status = _Console(stderr=True)
"""Progress, warnings and errors, kept off stdout so results can be piped."""

EXIT_UNREADABLE = 1
"""The work finished, but some images could not be read (they are listed)."""
EXIT_BAD_INPUT = 2
"""Nothing was done: the input is wrong; the message says how to fix it."""


class Terminated(SystemExit):
    """SIGTERM (what schedulers and `timeout` send) raised in the main thread while a command
    works: handled like Ctrl-C, exit status 143. Uncaught, it still ends the process with 143."""

    def __init__(self) -> None:
        super().__init__(143)


def _terminate(signum, frame) -> None:
    raise Terminated()


@contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM into `Terminated` while the block (a whole command) runs, in the main
    thread only: signal handlers live there. Where no display catches it (indexing), it ends
    the process quietly with 143."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def reported_errors() -> Iterator[None]:
    """Print a RaycellsError as one clear message and exit with EXIT_BAD_INPUT."""
    try:
        yield
    except RaycellsError as error:
        status.print(f"[bold red]error:[/] {error}", highlight=False)
        raise typer.Exit(EXIT_BAD_INPUT) from None


@contextmanager
def ray_messages_to(log: Path, run: tuple[Path, str] | None = None) -> Iterator[None]:
    """Send Ray's own messages to the file `log` while the block runs; the consoles keep the
    terminal. Ray's C++ core writes straight to file descriptor 2 and its log listener prints
    raylet warnings to sys.stdout, none of which a user of the CLI needs to read. The messages
    are collected in a temporary file and added to `log` at the end if there are any and its
    folder exists by then (a run that could not start leaves nothing behind).

    Ray ends the process at once, with no Python code run, when its raylet dies under it (its
    core worker's QuickExit, exit 1). For a `run` (its config.json, and what a stopped command
    keeps and how to go on), a watcher process (`raycells.cli.watcher`) then still adds the
    messages to `log` and prints, on the terminal, that the command ended abruptly and what was
    kept."""
    out, err = sys.stdout, sys.stderr
    out.flush()
    err.flush()
    terminal_err = _own_handle(err)
    saved_fd = os.dup(2)
    console.file, status.file = out, terminal_err
    with tempfile.TemporaryFile("w+", buffering=1) as sink:
        os.dup2(sink.fileno(), 2)
        sys.stdout = sys.stderr = sink
        watcher = _start_watcher(sink, log, terminal_err, run)
        try:
            yield
        finally:
            if watcher is not None:
                watcher.left_normally()
            sys.stdout, sys.stderr = out, err
            os.dup2(saved_fd, 2)
            os.close(saved_fd)
            console.file = status.file = None  # back to following sys.stdout / sys.stderr
            if terminal_err is not err:
                terminal_err.close()
            if log.parent.is_dir() and sink.tell():
                sink.seek(0)
                with open(log, "a") as kept:
                    shutil.copyfileobj(sink, kept)


def _start_watcher(sink, log: Path, terminal, run: tuple[Path, str] | None):
    """The watcher of an abrupt end, or None where it cannot print (no terminal handle with a
    file descriptor: a test runner's capture)."""
    if run is None:
        return None
    try:
        terminal_fd = terminal.fileno()
    except (AttributeError, OSError, ValueError):
        return None
    from .watcher import Watcher

    config, interrupted = run
    return Watcher.start(sink=sink.fileno(), log=log, terminal=terminal_fd, config=config,
                         interrupted=interrupted)


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


def dataset_path(path: str | Path | None) -> Path:
    """`path`, or the built-in synthetic demo dataset (generated on first use) when None."""
    if path is not None:
        return Path(path)
    from ..data.demo import demo_dataset

    status.print("[yellow]No dataset given: using the built-in SYNTHETIC demo dataset "
                 "(drawn cells, not real images).[/]")
    with status.status("Preparing the demo dataset (generated once, then cached)"):
        return demo_dataset()


def load_dataset(path: str | Path | None, max_pixels: int = MAX_PIXELS, *,
                 allow_outside: bool = False) -> Manifest:
    """The manifest for `path`: a Parquet manifest is read, a folder or CSV is indexed (images
    above `max_pixels` listed as unreadable; a CSV's images outside its folder refused unless
    `allow_outside`), and no path means the built-in synthetic demo dataset."""
    from ..data.index import open_dataset

    path = dataset_path(path)
    with progress_bar(f"Reading images in {path}") as update:
        return open_dataset(path, progress=update, max_pixels=max_pixels,
                            allow_outside=allow_outside)


def print_problems(manifest: Manifest) -> None:
    """Name the files indexing skipped or could not read, and its warnings."""
    if manifest.skipped:
        status.print(f"Skipped {len(manifest.skipped)} files that are not images.")
    for problem in manifest.unreadable:
        status.print(f"[red]unreadable:[/] {problem.path}: {problem.reason}", highlight=False)
    for warning in manifest.warnings:
        status.print(f"[yellow]warning:[/] {warning}", highlight=False)


def settings_and_data(run: RunDir, flags: dict[str, Any], *, preset: str | None,
                      config: Path | None, resume: bool, ignore: tuple[str, ...] = (),
                      ) -> tuple[Experiment, Placement, Manifest | None]:
    """The run's settings and, for a new run, its dataset (see `with_dataset`; a resumed run has
    its own manifest). `ignore`: tables of the config file that are not settings."""
    from ..runs.setup import run_settings
    from ..runs.tracking import check_server

    experiment, placement = run_settings(run, flags, preset=preset, config=config, resume=resume,
                                         ignore=ignore)
    if placement.tracking and placement.mlflow_uri:  # before the images are read (run_cv again)
        check_server(placement.mlflow_uri)
    if resume:
        return experiment, placement, None
    experiment, manifest = with_dataset(experiment)
    return experiment, placement, manifest


def chosen_preset(preset: str | None, config: Path | None, flags: dict[str, Any]) -> str:
    """The name of the preset the settings started from (recorded in config.json: the report's
    comparison with Matek et al. needs the paper's)."""
    return resolve_preset(preset, read_config_file(config) if config else {}, flags)


def with_dataset(experiment: Experiment) -> tuple[Experiment, Manifest]:
    """The experiment with its dataset's path (the demo dataset when none is named), and the
    dataset read."""
    path = dataset_path(experiment.data)
    return dataclasses.replace(experiment, data=str(path)), load_dataset(
        path, allow_outside=experiment.allow_outside)


def check_chosen_on_other_images(config: Path, manifest: Manifest, allow: bool) -> None:
    """Refuse (or with --allow-overlap, warn) when settings chosen by `raycells tune` (a
    best.json as --config) would be tested on images the search used to choose them."""
    from ..runs.tune import search_overlap

    found = search_overlap(config, manifest.frame)
    if not found or not found[0]:
        return
    count, search_run = found
    text = (f"{count:,} of this run's {len(manifest.frame):,} images were used by the search "
            f"in {search_run} that chose the settings in {config}; their test scores would "
            "report the winner on images that chose it.")
    if not allow:
        raise RaycellsError(f"{text} Use --search for nested selection (a search inside every "
                            "fold), tune on other images, or pass --allow-overlap to go on "
                            "knowing the scores are optimistic.")
    status.print(f"[yellow]warning:[/] {text} (--allow-overlap)", highlight=False)
