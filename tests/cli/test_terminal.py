"""Every command as a user runs it in a terminal 80 columns wide (a pseudo-terminal, see
conftest's `run_in_terminal`): its exit status, the files it wrote, and a screen on which no line
runs past the edge or is cut inside a word or a number (the terminal would cut it there). The
commands that need Ray join the tests' shared cluster with --address, as they would a lab's.
`raycells predict` in a terminal: tests/use/test_predict.py; `raycells tune`: tests/cli/test_tune.py;
`raycells transfer`: tests/test_transfer.py."""

from __future__ import annotations

import re
import shutil

import pandas as pd
import pytest

COLUMNS = 80


@pytest.fixture
def terminal(in_terminal, tmp_path):
    """terminal(args): the command run in a terminal, exit 0 and its screen checked; what it
    showed, as one line."""
    return lambda args: _checked(in_terminal, args, tmp_path)


def _checked(in_terminal, args: list[str], tmp_path) -> str:
    exit_code, shown = in_terminal(args, cwd=tmp_path, columns=COLUMNS)  # checks the screen
    assert exit_code == 0 and "Traceback" not in shown, shown[-3000:]
    return _one_line(shown)


def _one_line(shown: str) -> str:
    return " ".join(re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", shown).split())


def test_the_screen_check_finds_lines_past_the_edge(screen):
    assert screen(f"{'a' * 74} 0.12345\r\nmore") == [f"82 columns: {'a' * 74 + ' 0.12345'!r}"]
    assert screen(f"\x1b[1m{'a' * 74}\x1b[0m 0.123\r\n45 more") == []  # colours take no room
    assert screen("—" * 80 + "\r" + "x" * 80) == []
    assert screen("sensitivity: 0.000 ±\r\n0.000") == ["a mean ± std split: 'sensitivity: 0.000 ±'"]


@pytest.mark.slow  # indexes the 160 AML images in a process of its own
def test_data_commands_in_a_terminal(tmp_path, small_pbc, matek_dir, terminal):
    shown = terminal(["data", "inspect", str(small_pbc)])
    assert "96 images · 8 classes" in shown and "shortcut check: ig" in shown
    shown = terminal(["data", "index", str(matek_dir), "--out", str(tmp_path / "m.parquet")])
    assert len(pd.read_parquet(tmp_path / "m.parquet")) == 160


def test_cv_in_a_terminal(pbc_run, pbc_run_screen, screen):
    """`raycells cv` as conftest's `pbc_run` ran it, in a terminal (the tests' trained PBC run)."""
    assert screen(pbc_run_screen, COLUMNS) == []
    shown = _one_line(pbc_run_screen)
    assert "Finished in" in shown and f"raycells report {pbc_run}" in shown
    assert "platelet" in shown and "ROC AUC:" in shown  # the per-class block, stacked at 80 columns
    assert "Recording in MLflow (run " in shown and "mlflow ui --backend-store-uri sqlite:" in shown
    assert all((pbc_run / f"fold-{k}" / "metrics.json").is_file() for k in (0, 1))


def test_commands_that_read_a_run_in_a_terminal(tmp_path, pbc_run, small_pbc, pbc_manifest,
                                                ray_address, terminal):
    run = tmp_path / "run"
    shutil.copytree(pbc_run, run)  # report writes into it
    shown = terminal(["report", str(run)])
    assert "accuracy" in shown and (run / "report" / "report.html").is_file()
    terminal(["export", "--from", str(run), "--format", "onnx", "--out", str(tmp_path / "export")])
    assert (tmp_path / "export" / "model.json").is_file()
    images = tmp_path / "images"
    images.mkdir()
    for path in pbc_manifest.frame["path"].iloc[:2]:
        shutil.copy(path, images)
    shown = terminal(["explain", str(images), "--from", str(run), "--out", str(tmp_path / "maps")])
    assert "Explained 2 images" in shown and len(list((tmp_path / "maps" / "overlays").iterdir())) == 2
    shown = terminal(["evaluate", "--from", str(run), "--data", str(small_pbc), "--allow-overlap",
                  "--out", str(tmp_path / "eval"), "--address", ray_address])
    assert (tmp_path / "eval" / "fold-0" / "metrics.json").is_file()
