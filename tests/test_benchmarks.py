"""The GPU benchmark's script runs end to end in its smoke mode (toy sizes, on the CPU): every
step writes its figures, so the script a GPU machine is lent for works the first time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # starts Ray, in the script
def test_the_gpu_benchmark_runs_in_smoke_mode(tmp_path):
    subprocess.run(["bash", "benchmarks/gpu.sh", str(tmp_path)], cwd=ROOT, check=True,
                   timeout=900, env={**os.environ, "SMOKE": "1", "PY": sys.executable})
    log = (tmp_path / "log.txt").read_text()
    assert "FAILED" not in log, log
    step = json.loads((tmp_path / "step.json").read_text())
    assert {r["augment"] for r in step["results"]} == {True, False}
    assert all(r["images_per_s"] > 0 for r in step["results"])
    path = json.loads((tmp_path / "throughput.json").read_text())
    assert path["ray_images_per_s"] > 0 and path["plain_images_per_s"] > 0
    assert len(path["ray_data_wait_seconds"]) == path["epochs"] and path["ray_feed"][0] == "stream"
    held = json.loads((tmp_path / "throughput_held.json").read_text())
    assert held["ray_feed"] == ["device"] * held["epochs"] and held["ray_images_per_s"] > 0
    feed = json.loads((tmp_path / "feed.json").read_text())["results"][0]
    # Reading 200 tiny images costs less than /proc's 10 ms clock tick: about 0, either sign.
    assert feed["cache_build_ms_per_image"] > 0 and abs(feed["plain_parquet_ms_per_image"]) < 0.5
    assert all(ms > 0 for ms in feed["raycells"]["steady_ms_per_image"])
