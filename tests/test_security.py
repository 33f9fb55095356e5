"""A run directory or weights file from someone else never runs code: every place raycells reads
a network or checkpoint from is handed a malicious pickle, and each refuses it with a clear error
(exit 2 on the command line) while the code in it never runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
import torch
from typer.testing import CliRunner

from raycells.cli.main import app
from raycells.errors import RaycellsError
from raycells.train.checkpoint import load_checkpoint
from raycells.train.models import create_model, load_weights

runner = CliRunner()


class _Payload:
    """Unpickling this runs a shell command that creates `marker`."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _plant(path, marker) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": _Payload(marker), "epoch": 1}, path)


def test_the_payload_would_run_if_unpickled(tmp_path):
    """The planted file is a real attack: a plain unpickling runs it (in another process)."""
    evil, marker = tmp_path / "evil.pt", tmp_path / "ran"
    _plant(evil, marker)
    subprocess.run([sys.executable, "-c", f"import torch; torch.load({str(evil)!r}, weights_only=False)"],
                   check=False, capture_output=True)
    assert marker.exists()


def test_checkpoints_and_weights_files_are_refused_without_running_code(tmp_path):
    evil, marker = tmp_path / "state.pt", tmp_path / "ran"
    _plant(evil, marker)
    with pytest.raises(RaycellsError, match="never loads"):
        load_checkpoint(evil)
    with pytest.raises(RaycellsError, match="never loads"):
        load_weights(create_model("tiny_cnn", 3), evil)
    result = runner.invoke(app, ["transfer", "--from", str(evil), "--model", "tiny_cnn",
                                 "--out", str(tmp_path / "t")])
    assert result.exit_code == 2 and "never loads" in result.output, result.output
    result = runner.invoke(app, ["cv", "--weights", str(evil), "--model", "tiny_cnn",
                                 "--out", str(tmp_path / "c")])
    assert result.exit_code == 2 and "never loads" in result.output, result.output
    assert not marker.exists()


def test_test_predictions_a_fold_left_are_read_as_numbers_only(tmp_path):
    """A fold's worker leaves its test part's probabilities in checkpoint/test-*.npz for the driver;
    one holding a pickle (an object array) is refused without running it, a missing one named."""
    import numpy as np

    from raycells.train.checkpoint import read_test_probabilities, save_test_probabilities, test_file

    best, marker = "best-epoch-002.safetensors", tmp_path / "ran"
    save_test_probabilities(tmp_path, best, np.array([3, 7]), np.array([[0.9, 0.1], [0.2, 0.8]]))
    rows, probs = read_test_probabilities(tmp_path, best)
    assert rows.tolist() == [3, 7] and probs[1].tolist() == [0.2, 0.8]
    with open(tmp_path / test_file(best), "wb") as stream:
        np.savez(stream, rows=np.array([_Payload(marker)], dtype=object), probs=np.zeros((1, 2)))
    with pytest.raises(RaycellsError, match="test-best-epoch-002.npz.*cannot be read.*Resume"):
        read_test_probabilities(tmp_path, best)
    with pytest.raises(RaycellsError, match="test-best-epoch-009.npz"):
        read_test_probabilities(tmp_path, "best-epoch-009.safetensors")
    assert not marker.exists()


def test_a_run_directory_with_planted_checkpoints_is_refused(aml_run, tmp_path):
    """evaluate --from RUN and transfer --from RUN read the run's checkpoints: refused before Ray
    or the image cache start."""
    run, marker = tmp_path / "planted", tmp_path / "ran"
    shutil.copytree(aml_run, run)
    for state in run.glob("fold-*/checkpoint/epoch-*/state.pt"):
        _plant(state, marker)
    for args in (["evaluate", "--from", str(run), "--data", str(run / "manifest.parquet"),
                  "--out", str(tmp_path / "e")],
                 ["transfer", "--from", str(run), "--out", str(tmp_path / "t")]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and "never loads" in result.output, (args, result.output)
    assert not marker.exists()
