"""Live displays of long work: a library command's events turned into status lines and a live
table (folds for cv and transfer, trials for tune, models for evaluate), and the tables printed
when the work is done."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.live import Live
from rich.table import Table as RichTable

from ..errors import RaycellsError, RayUnavailable
from ..files import WRITE_FAILURES
from ..runs.lock import locked
from ..settings import settings_text
from .common import Terminated, console, new_progress, ray_messages_to, status
from .watcher import kept

if TYPE_CHECKING:
    from ..report.writers import Table
    from ..runs.cv import CvResult


class LiveDisplay:
    """Turns a library command's events into status lines and a live table. Subclasses define
    `_table()` and `_on_<event>` handlers; unknown events are ignored."""

    unit = "fold"
    """What runs at once, in the resources line: fold or trial."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: Live | None = None
        self._resources = ""
        self._cache: tuple | None = None

    def event(self, kind: str, **info: Any) -> None:
        with self._lock:
            getattr(self, f"_on_{kind}", lambda **_: None)(**info)
            if self._live:
                self._live.update(self._table())

    def close(self) -> None:
        """Stop the live table and bars (again: nothing happens)."""
        with self._lock:
            if self._cache:
                self._cache[0].stop()
                self._cache = None
            if self._live:
                self._live.stop()
                self._live = None
                if not status.is_terminal:  # rich leaves the last line open in a log file
                    status.line()

    def run(self, work: Callable[[], Any], run_dir: Path, interrupted: str, *,
            command: str) -> Any:
        """`work()` with this display live, the run directory locked for `command` and Ray's
        messages in `run_dir`/ray.log; a Ray that `work()` started ends with it. Ctrl-C (exit
        130) and SIGTERM (exit 143) stop Ray and print `interrupted` (what was kept, how to go
        on); a Ray that cannot start gets the same hint, and so does a command that Ray ends
        abruptly (`raycells.cli.watcher`)."""
        from ..runs.rundir import RunDir
        from ..train.trainer import ray_running, stop_ray

        run = RunDir(run_dir)
        ray_was_up = ray_running()
        try:
            with locked(run.path, command) as note:
                if note:
                    status.print(f"[yellow]note:[/] {note}", highlight=False)
                with ray_messages_to(run.ray_log, (run.config, interrupted)):
                    try:
                        return work()
                    except (KeyboardInterrupt, Terminated):
                        stop_ray()  # while Ray's messages still go to ray.log
                        raise
                    finally:
                        if not ray_was_up:  # the Ray this command started, and the warnings
                            stop_ray()      # its raylet pushes, end here: not on the terminal
                        # Its bars draw on the terminal handle this block closes at its end.
                        self.close()
        except (KeyboardInterrupt, Terminated) as stop:
            self.close()
            code = 143 if isinstance(stop, Terminated) else 130
            said = "Terminated (SIGTERM)." if code == 143 else "Interrupted."
            status.print(f"[yellow]{said}[/] {kept(run.config.is_file(), interrupted)}")
            raise typer.Exit(code) from None
        except RayUnavailable as error:
            raise RaycellsError(f"{error} {kept(run.config.is_file(), interrupted)}") from None
        except OSError as error:
            if error.errno not in WRITE_FAILURES:
                raise
            where = error.filename or run.path
            raise RaycellsError(f"cannot write {where}: {error.strerror}. Every file is written "
                                f"whole or not at all. {kept(run.config.is_file(), interrupted)}") from None
        finally:
            self.close()

    def _table(self):
        raise NotImplementedError

    def _on_prepared(self, run_dir, images, classes, synthetic, source, extra, warnings=(),
                     weights=None) -> None:
        if synthetic:
            status.print("[bold yellow]SYNTHETIC demo data:[/] drawn cells, not real images. "
                         "Use it to check the set-up, never to judge a model.")
        status.print(f"Run directory {run_dir}: {images:,} images, {len(classes)} classes ({source}).")
        if extra:
            counts = ", ".join(f"{code} {n:,}" for code, n in extra.items())
            status.print(f"Extra training images (every fold's training part only): "
                         f"{sum(extra.values()):,} ({counts}).")
        if weights:
            head = ("a new head for these classes" if weights["head"] == "new"
                    else "its head as it is")
            status.print(f"Starting from {weights['file']}: every weight, {head}.", highlight=False)
        for warning in warnings:
            status.print(f"[yellow]warning:[/] {warning}", highlight=False)

    def _on_tracking(self, uri, run_id) -> None:
        where = f"`mlflow ui --backend-store-uri {uri}`" if uri.startswith("sqlite:") else uri
        status.print(f"Recording in MLflow (run {run_id}): {where}.", highlight=False)

    def _on_tracking_failed(self, uri, error) -> None:
        status.print(f"[yellow]warning:[/] MLflow tracking at {uri} stopped ({error}); training "
                     "goes on and the run directory holds every result.", highlight=False)

    def _on_cache(self, done, total) -> None:
        if self._cache is None:
            self._cache = new_progress("Decoding images (once per size)")
        bar, task = self._cache
        bar.update(task, completed=done, total=total)
        if done >= total:
            bar.stop()

    def _on_resources(self, workers, cpus_per_worker, gpus_per_worker, threads, concurrent_folds,
                      widths=(), slots=1) -> None:
        where = f"{gpus_per_worker:g} GPU" if gpus_per_worker else f"{cpus_per_worker:g} CPU ({threads} threads)"
        if widths:  # folds packed onto the GPUs: say each fold's workers
            line = (f"Workers per {self.unit}, in starting order: {', '.join(map(str, widths))} "
                    f"(each {where}; {slots} at a time).")
        else:
            line = f"Each {self.unit}: {workers} worker(s) x {where}; {concurrent_folds} {self.unit}(s) at a time."
        if line != self._resources:  # a nested search announces its trials', then each fold's
            status.print(line)
            self._resources = line
        if self._live:
            return
        self._live = Live(self._table(), console=status, refresh_per_second=2, transient=False,
                          redirect_stdout=False, redirect_stderr=False)
        self._live.start()


class FoldsDisplay(LiveDisplay):
    """Turns run_cv's events into a live table: each fold's phase, epoch, loss, images/s, scores,
    time so far and an estimate of the time left; the title adds the run's."""

    FIXED = ("done", "finished earlier", "predicting")
    """Phases the workers' status posts do not overwrite."""

    def __init__(self) -> None:
        super().__init__()
        self._folds: dict[int, dict[str, Any]] = {}
        self._searching: int | None = None
        self._started = time.monotonic()
        self._slots = 1

    def _on_resources(self, **info) -> None:
        self._slots = max(1, int(info.get("slots") or info.get("concurrent_folds") or 1))
        super()._on_resources(**info)

    def _on_todo(self, folds) -> None:
        for fold in folds:
            self._folds.setdefault(fold, {"phase": "waiting"})

    def _on_fold_skipped(self, fold) -> None:
        self._folds[fold] = {"phase": "finished earlier"}

    def _on_fold_started(self, fold) -> None:
        self._folds[fold] = {"phase": "starting", "started": time.monotonic()}

    def _on_status(self, folds) -> None:
        for fold, state in folds.items():
            row = self._folds.setdefault(fold, {})
            if row.get("phase") in self.FIXED:
                continue
            row.update(state)
            if "batches" in state:
                row.setdefault("training_since", time.monotonic())

    def _on_epochs(self, fold, records) -> None:
        """In a log (output not a terminal, such as a batch job's), where the live table is
        drawn only at the end, a line per finished epoch of every fold."""
        if status.is_terminal:
            return
        row = self._folds.setdefault(fold, {})
        for record in records:
            if record["epoch"] <= row.get("printed", 0):
                continue
            row["printed"] = record["epoch"]
            of = f"/{row['epochs']}" if "epochs" in row else ""
            status.print(
                f"Fold {fold}: epoch {record['epoch']}{of}"
                f"{'' if record['phase'] == 'train' else ' (' + record['phase'] + ')'}: train loss "
                f"{record['train_loss']:.3f}, val loss {record['val_loss']:.3f}, val F1 "
                f"{record['val_macro_f1']:.3f}; {record['steps']} steps, "
                f"{record['images_per_s']:.0f} img/s, {_clock(record['train_seconds'] + record['val_seconds'])}",
                highlight=False)

    def _on_fold_finished(self, fold, metrics) -> None:
        row = self._folds[fold]
        row.update(phase="done", result=metrics,
                   seconds=time.monotonic() - row.get("started", time.monotonic()))
        if not status.is_terminal:
            status.print(f"Fold {fold} finished in {_clock(row['seconds'])}: test accuracy "
                         f"{metrics['accuracy']:.3f}, macro F1 {metrics['macro_f1']:.3f}.",
                         highlight=False)

    def _on_search_started(self, fold) -> None:
        self._searching = fold
        self._folds[fold] = {"phase": "searching", "trials": set(), "started": time.monotonic()}

    def _on_trial_result(self, trial, params, fold, epoch, value) -> None:
        row = self._folds[self._searching]
        row["trials"].add(trial)
        row["phase"] = f"searching: {len(row['trials'])} trials, {settings_text(params)} epoch {epoch}"

    def _on_search_finished(self, fold, chosen, score) -> None:
        self._folds[fold] = {"phase": "starting", "started": time.monotonic()}
        status.print(f"Fold {fold} chose {settings_text(chosen)} (inner validation score "
                     f"{score:.3f}); training it on the fold's training part.", highlight=False)

    def _left(self, row: dict[str, Any]) -> float | None:
        """Seconds a training fold has left, from its pace since its first batch."""
        if "training_since" not in row or not row.get("epochs"):
            return None
        epoch, batches = row.get("epoch", 1), row.get("batches") or 1
        within = 1.0 if row.get("phase") in ("validate", "epoch done") else (
            row.get("batch", 0) / batches)
        done = (epoch - 1 + within) / row["epochs"]
        if done <= 0.02:
            return None
        return (time.monotonic() - row["training_since"]) * (1 - done) / done

    def _run_left(self) -> float | None:
        """Seconds the run has left: the running folds', then the waiting folds' at the pace of
        the folds so far, `slots` at a time."""
        rows = self._folds.values()
        running = [row for row in rows if "started" in row and row.get("phase") not in self.FIXED]
        lefts = [self._left(row) for row in running]
        if any(left is None for left in lefts):
            return None
        now = time.monotonic()
        lengths = [row["seconds"] for row in rows if "seconds" in row] or [
            now - row["started"] + left for row, left in zip(running, lefts)]
        waiting = sum(row.get("phase") == "waiting" for row in rows)
        if not lengths or not (running or waiting):
            return None
        return max(lefts, default=0.0) + -(-waiting // self._slots) * sum(lengths) / len(lengths)

    def _table(self) -> RichTable:
        elapsed, left = time.monotonic() - self._started, self._run_left()
        title = f"Folds: {_clock(elapsed)} so far" + (
            f", about {_clock(left)} left" if left is not None else "")
        table = RichTable(title=title, title_justify="left", box=None, header_style="bold")
        for header in ("fold", "phase", "epoch", "loss", "img/s", "val F1", "test acc", "time",
                       "left"):
            table.add_column(header, justify="left" if header == "phase" else "right",
                             no_wrap=header != "phase")
        now = time.monotonic()
        for fold in sorted(self._folds):
            s = self._folds[fold]
            last, result = s.get("last", {}), s.get("result", {})
            phase = s.get("phase", "")
            if phase not in self.FIXED and "batches" in s and phase not in ("validate", "epoch done"):
                phase = f"{phase} {s.get('batch', 0)}/{s['batches']}"
            spent = s.get("seconds", now - s["started"] if "started" in s else None)
            left = None if phase in self.FIXED else self._left(s)
            table.add_row(
                str(fold), phase,
                f"{s['epoch']}/{s['epochs']}" if "epochs" in s else "",
                f"{s['loss']:.3f}" if "loss" in s else "",
                f"{s['images_per_s']:.0f}" if "images_per_s" in s else "",
                f"{last['val_macro_f1']:.3f}" if "val_macro_f1" in last else "",
                f"{result['accuracy']:.3f}" if "accuracy" in result else "",
                _clock(spent) if spent is not None else "",
                f"~{_clock(left)}" if left is not None else "",
            )
        return table


def _clock(seconds: float) -> str:
    """12:05 (minutes:seconds), 1:02:05 past an hour."""
    minutes, rest = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{rest:02d}" if hours else f"{minutes}:{rest:02d}"


def print_tables(tables: list[Table]) -> None:
    """Print the library's text tables (`raycells.report.writers.Table`) with rich, fitted to the
    terminal: a number is never split over two lines; a table too wide leaves out its optional
    columns, then prints each row as a block of "header: value" lines."""
    for table in tables:
        for keep in (table.headers, [h for h in table.headers if h not in table.optional]):
            if _width(table, keep) <= console.width:
                console.print(_rich_table(table, keep))
                break
        else:
            _print_stacked(table)


def _columns(table: Table, keep: list[str]) -> list[tuple[int, str, int, bool]]:
    """(index, header, width kept whole, numeric) of the columns `keep`: the width of the
    longest number in the column, or of its longest word (text wraps at spaces; headers too)."""
    from ..report.writers import NUMBER

    out = []
    for index, header in enumerate(table.headers):
        if header not in keep:
            continue
        cells = [row[index] for row in table.rows]
        numbers = [len(cell) for cell in cells if NUMBER.match(cell)]
        words = [len(word) for text in [header, *cells] for word in text.split()]
        out.append((index, header, max([*numbers, *words, 1]), table.numeric(index)))
    return out


def _width(table: Table, keep: list[str]) -> int:
    """The narrowest the table can print with no number split: the columns, a space either side
    of each divider (no outer border)."""
    columns = _columns(table, keep)
    return sum(column[2] for column in columns) + 3 * (len(columns) - 1)


def _rich_table(table: Table, keep: list[str]) -> RichTable:
    rich_table = RichTable(title=table.title, title_justify="left", caption=table.note or None,
                           caption_justify="left", show_edge=False, pad_edge=False,
                           show_header=any(table.headers))
    columns = _columns(table, keep)
    for _, header, width, numeric in columns:
        rich_table.add_column(header, justify="right" if numeric else "left", min_width=width)
    for row in table.rows:
        rich_table.add_row(*(row[index] for index, *_ in columns))
    return rich_table


def _print_stacked(table: Table) -> None:
    """Each row as its first cell, then its "header: value" pairs, as many to a line as fit the
    width; a pair is never split over two lines."""
    from rich.markup import escape

    console.print(f"[italic]{escape(table.title)}[/]", highlight=False)
    room = console.width - 4
    for row in table.rows:
        lines = [""]
        for header, cell in zip(table.headers[1:], row[1:]):
            if not cell:
                continue
            pair = f"{header}: {cell}"
            if lines[-1] and len(lines[-1]) + 2 + len(pair) > room:
                lines.append(pair)
            else:
                lines[-1] = f"{lines[-1]}; {pair}" if lines[-1] else pair
        console.print(f"  [bold]{escape(row[0])}[/]", highlight=False)
        for line in lines:
            console.print(f"    {escape(line)}", highlight=False)
    if table.note:
        console.print(table.note, highlight=False)


def print_folds(result: CvResult, seconds: float) -> None:
    """The test folds (and, after a nested search, what each chose) and the per-class scores of a
    finished cross-validation; then the wall time (`seconds`), the next command and, for the
    synthetic demo data, the reminder that its scores mean nothing."""
    from ..report.writers import Table, per_class_table, pm
    from ..runs.rundir import RunDir

    summary = result.summary
    console.print()
    searched = any("chosen" in m for m in result.per_fold.values())
    folds = [[str(k), str(m["images"]), str(m["best_epoch"]), f"{m['accuracy']:.3f}",
              f"{m['balanced_accuracy']:.3f}", f"{m['macro_f1']:.3f}",
              *([settings_text(m.get("chosen", {}))] if searched else [])]
             for k, m in sorted(result.per_fold.items())]
    folds.append(["mean ± std", "", "", *(pm(summary[key]) for key in
                                          ("accuracy", "balanced_accuracy", "macro_f1")),
                  *([""] if searched else [])])
    print_tables([
        Table(f"Test folds ({result.run_dir})",
              ["fold", "images", "best epoch", "accuracy", "balanced accuracy", "macro F1",
               *(["chose"] if searched else [])], folds,
              note="Each fold's settings were chosen by a search on its training part only: the "
                   "mean ± std estimates the whole procedure, search included." if searched else ""),
        per_class_table(summary, result.classes,
                        title=f"Per class, mean ± std over {len(result.per_fold)} folds "
                              f"(std with ddof={summary['ddof']})"),
    ])
    status.print(f"Finished in {_clock(seconds)}. The report: `raycells report "
                 f"{result.run_dir}`.", highlight=False)
    if RunDir(result.run_dir).read_config().get("data", {}).get("synthetic"):
        status.print("[bold yellow]SYNTHETIC demo data:[/] these scores say nothing about real "
                     "cells.")


class Predicting(LiveDisplay):
    """`raycells predict` and `evaluate`: a line naming the networks, then a progress bar over
    the images (every network predicts each batch)."""

    def __init__(self) -> None:
        super().__init__()
        self._bar = None

    def _on_networks(self, folds) -> None:
        if len(folds) == 1:
            status.print(f"Predicting with fold {folds[0]}'s network.")
        else:
            status.print(f"Predicting with the networks of folds {', '.join(map(str, folds))}, "
                         "their probabilities averaged.")

    def _on_images(self, done, total) -> None:
        if self._bar is None:
            self._bar = new_progress("Predicting")
        bar, task = self._bar
        bar.update(task, completed=done, total=total)

    def close(self) -> None:
        if self._bar is not None:
            self._bar[0].stop()
            self._bar = None
        super().close()
