"""Files a run writes are complete or absent, and readable by whoever may read the folder."""

from __future__ import annotations

import os

import pytest

from raycells.files import atomic_path, staged_folder, write_json


def test_written_files_and_folders_follow_the_umask_like_any_other_program(tmp_path):
    old = os.umask(0o022)
    try:
        write_json(tmp_path / "metrics.json", {"images": 3})
        with staged_folder(tmp_path / "cache", "done") as staging:
            (staging / "done").write_text("")
    finally:
        os.umask(old)
    assert os.stat(tmp_path / "metrics.json").st_mode & 0o777 == 0o644  # not tempfile's 0600
    assert os.stat(tmp_path / "cache").st_mode & 0o777 == 0o755  # not tempfile's 0700
    assert sorted(os.listdir(tmp_path)) == ["cache", "metrics.json"]


def test_safetensors_files_follow_the_umask_too(tmp_path):
    """safetensors writes its files 0600: the network files and safetensors exports were
    readable by their owner alone, unlike every other file of a run."""
    import torch

    from raycells.train.checkpoint import save_best

    old = os.umask(0o022)
    try:
        save_best(torch.nn.Linear(2, 2), tmp_path, "best-epoch-001.safetensors")
        os.umask(0o077)
        save_best(torch.nn.Linear(2, 2), tmp_path, "private.safetensors")
    finally:
        os.umask(old)
    assert os.stat(tmp_path / "best-epoch-001.safetensors").st_mode & 0o777 == 0o644
    assert os.stat(tmp_path / "private.safetensors").st_mode & 0o777 == 0o600


def test_a_failed_write_leaves_the_old_file_and_no_temporary_one(tmp_path):
    write_json(tmp_path / "metrics.json", {"images": 3})
    with pytest.raises(OSError), atomic_path(tmp_path / "metrics.json") as tmp:
        tmp.write_text('{"images": ')
        raise OSError(28, "No space left on device")
    assert (tmp_path / "metrics.json").read_text().startswith('{\n  "images": 3')
    assert os.listdir(tmp_path) == ["metrics.json"]


def test_a_file_reaches_the_disk_before_it_takes_its_name(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: events.append("fsync") or real_fsync(fd))
    monkeypatch.setattr(os, "replace", lambda a, b: events.append("rename") or real_replace(a, b))
    write_json(tmp_path / "a.json", {"x": 1})
    assert events == ["fsync", "rename"] and (tmp_path / "a.json").read_text().startswith("{")
