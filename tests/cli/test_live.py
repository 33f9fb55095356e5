"""What the terminal shows: tables that fit 80 columns, and the live display's phases and times."""

from __future__ import annotations

import io
import re
import sys

import pytest
from rich.console import Console

from raycells.cli import live
from raycells.report.writers import Table, per_class_table

SUMMARY = {"per_class": {code: {"precision": (0.929, 0.101), "sensitivity": (1.0, 0.0),
                                "f1": (0.962, 0.054), "roc_auc": (0.999, 0.001), "support": 12}
                         for code in ("NGS", "LYA", "PMB", "MOB")}}


def _printed(monkeypatch, tables, width: int) -> str:
    out = io.StringIO()
    monkeypatch.setattr(live, "console", Console(file=out, width=width, soft_wrap=True))
    live.print_tables(tables)
    return out.getvalue()


def test_tables_fit_the_terminal_and_never_split_a_number(monkeypatch):
    table = per_class_table(SUMMARY, list(SUMMARY["per_class"]))
    for width in (80, 100, 140):
        text = _printed(monkeypatch, [table], width)
        assert max(len(line) for line in text.splitlines()) <= width, text
        assert text.count("0.929 ± 0.101") == 4 and "…" not in text, text
    assert "Lymphocyte" not in _printed(monkeypatch, [table], 80)  # the names are left out
    assert "Lymphocyte (atypical)" in _printed(monkeypatch, [table], 140)


def test_a_table_too_wide_for_any_column_choice_is_stacked(monkeypatch):
    table = Table("Wide", ["score", *(f"column {i}" for i in range(8))],
                  [["accuracy", *("0.912 ± 0.034" for _ in range(8))]])
    text = _printed(monkeypatch, [table], 80)
    lines = text.splitlines()
    assert lines[1:4] == ["  accuracy",
                          "    column 0: 0.912 ± 0.034; column 1: 0.912 ± 0.034; column 2: 0.912 ± 0.034",
                          "    column 3: 0.912 ± 0.034; column 4: 0.912 ± 0.034; column 5: 0.912 ± 0.034"]
    assert text.count("0.912 ± 0.034") == 8 and max(map(len, lines)) <= 80  # no pair split


def test_the_live_table_shows_each_folds_phase_time_and_time_left(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(live.time, "monotonic", lambda: clock[0])
    display = live.FoldsDisplay()
    display._on_todo(folds=[0, 1, 2])
    display._on_fold_started(fold=0)
    clock[0] += 80  # the worker group starting
    display._on_status(folds={0: {"phase": "train", "epoch": 1, "epochs": 2, "batch": 0,
                                  "batches": 10, "loss": 2.0, "images_per_s": 50.0}})
    clock[0] += 60  # half of the training done in 60 s: about 60 s left
    display._on_status(folds={0: {"phase": "train", "epoch": 2, "epochs": 2, "batch": 0,
                                  "batches": 10}})
    rows = _rendered(display)
    assert re.search(r"0\s+train 0/10\s+2/2\s.*2:20\s+~1:00", rows), rows
    assert re.search(r"1\s+waiting", rows) and re.search(r"2\s+waiting", rows)
    assert "2:20 so far, about" in rows  # the run: this fold's minute, then the two waiting
    display._on_status(folds={0: {"phase": "predicting"}})  # the first worker, after training
    display._on_status(folds={0: {"phase": "epoch done", "epoch": 2, "epochs": 2}})
    assert re.search(r"0\s+predicting", _rendered(display))  # a late earlier post stays behind


def _rendered(display) -> str:
    out = io.StringIO()
    Console(file=out, width=100).print(display._table())
    return out.getvalue()


def test_a_log_gets_a_line_per_epoch_and_per_fold(monkeypatch):
    """Where the output is not a terminal (nohup, a Slurm log) rich draws the live table only at
    the end: each finished epoch of every fold gets a line instead, once, and so does each
    finished fold. A terminal gets none (the live table shows it)."""
    record = {"epoch": 1, "phase": "train", "train_loss": 2.0, "val_loss": 1.5,
              "val_macro_f1": 0.25, "steps": 7, "images_per_s": 123.4, "train_seconds": 50.0,
              "val_seconds": 15.0}
    for terminal in (False, True):
        out = io.StringIO()
        monkeypatch.setattr(live, "status", Console(file=out, width=200, force_terminal=terminal))
        display = live.FoldsDisplay()
        display._on_todo(folds=[0])
        display._on_fold_started(fold=0)
        display._on_status(folds={0: {"phase": "train", "epoch": 1, "epochs": 12}})
        display._on_epochs(fold=0, records=[record])
        display._on_epochs(fold=0, records=[record, {**record, "epoch": 2, "phase": "fine-tune"}])
        display._on_fold_finished(fold=0, metrics={"accuracy": 0.5, "macro_f1": 0.4})
        lines = out.getvalue().splitlines()
        if terminal:
            assert lines == []
            continue
        assert lines == [
            "Fold 0: epoch 1/12: train loss 2.000, val loss 1.500, val F1 0.250; 7 steps, 123 img/s, 1:05",
            "Fold 0: epoch 2/12 (fine-tune): train loss 2.000, val loss 1.500, val F1 0.250; 7 steps, "
            "123 img/s, 1:05",
            "Fold 0 finished in 0:00: test accuracy 0.500, macro F1 0.400."]


@pytest.mark.slow  # starts a Ray of its own
def test_a_command_ends_the_ray_it_started_while_its_messages_still_go_to_ray_log(
        tmp_path, no_ray, request, monkeypatch):
    """Ray's raylet pushes warnings to every connected driver (too many workers starting, ...),
    printed by a thread of Ray's to sys.stdout: a command that started Ray ends it inside the
    block that sends Ray's messages to ray.log, or a late warning lands on the terminal. A Ray
    that was running before the command (a notebook's, the tests' shared one) stays up."""
    import ray

    from raycells.settings import Placement
    from raycells.train.trainer import init_ray

    terminal, stdout_at_shutdown = sys.stdout, []
    shutdown = ray.shutdown
    monkeypatch.setattr(ray, "shutdown", lambda: (stdout_at_shutdown.append(sys.stdout), shutdown()))

    def work() -> bool:
        init_ray(Placement())
        return ray.is_initialized()

    display = live.Predicting()
    assert display.run(work, tmp_path / "own", "hint", command="predict")
    assert not ray.is_initialized()
    assert len(stdout_at_shutdown) == 1 and stdout_at_shutdown[0] is not terminal
    request.getfixturevalue("ray_session")
    display.run(lambda: None, tmp_path / "shared", "hint", command="predict")
    assert ray.is_initialized() and len(stdout_at_shutdown) == 1
