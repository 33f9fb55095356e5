"""The GPU kit (benchmarks/device/run.sh) runs end to end in its smoke mode (toy sizes, on the
CPU, with the venv): every step writes its figures, so the kit a GPU machine is lent for works
the first time. Its wheels are checked by size and content, without the network."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks" / "device"))
from trim_wheel import trim  # noqa: E402


def test_the_gpu_kit_runs_in_smoke_mode(tmp_path, ray_address):
    """The raycells path's step joins the tests' shared Ray (RAY_ADDRESS, as on a lab's cluster);
    the feed's step starts a Ray of its own, whose CPU it measures."""
    out = tmp_path / "out"
    subprocess.run(["bash", "benchmarks/device/run.sh", str(out)], cwd=ROOT, check=True,
                   timeout=900, env={**os.environ, "SMOKE": "1", "PY": sys.executable,
                                     "WORK": str(tmp_path / "work"), "RAY_ADDRESS": ray_address})
    log = (out / "log.txt").read_text()
    assert "FAILED" not in log and "SKIPPED" not in log, log
    # At most 8 files come back from a device machine: the image cache stays in WORK.
    assert sorted(p.name for p in out.iterdir()) == [
        "feed.json", "log.txt", "machine.json", "path.json", "path_held.json", "step.json"]
    machine = json.loads((out / "machine.json").read_text())
    assert not any(str(v).startswith("MISSING") for k, v in machine["packages"].items() if k != "mlflow")
    step = json.loads((out / "step.json").read_text())
    assert {r["augment"] for r in step["results"]} == {True, False}
    assert all(r["images_per_s"] > 0 and r["optimizer"] == "sgd" for r in step["results"])
    path = json.loads((out / "path.json").read_text())
    assert path["feed"] == ["stream"] and path["images_per_s"][0] > 0
    assert path["optimizer"] == "sgd" and path["augment"] == {"flip": 0.5, "rotate": 1.0, "noise": 0.0}
    assert 0 <= path["data_wait_share"][0] <= 1
    held = json.loads((out / "path_held.json").read_text())
    assert held["feed"] == ["device"] and held["images_per_s"][0] > 0
    assert 0 <= held["data_wait_share"][0] <= 1  # the images' arrival is part of the first epoch
    feed = json.loads((out / "feed.json").read_text())["results"][0]
    # Reading 200 tiny images costs less than /proc's 10 ms clock tick: about 0, either sign.
    assert feed["cache_build_ms_per_image"] > 0 and abs(feed["plain_parquet_ms_per_image"]) < 0.5
    assert all(ms > 0 for ms in feed["raycells"]["steady_ms_per_image"])


def test_the_kit_refuses_to_start_without_its_wheels(tmp_path):
    """On the GPU machine (not SMOKE) the wheels must have travelled with the tree."""
    if any((ROOT / "benchmarks" / "device" / "wheels").glob("*.whl")):
        pytest.skip("this checkout has the wheels (benchmarks/device/wheels.sh was run)")
    done = subprocess.run(["bash", "benchmarks/device/run.sh", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "SMOKE": "0", "WORK": str(tmp_path / "work")})
    assert done.returncode == 2
    assert "run benchmarks/device/wheels.sh" in (tmp_path / "log.txt").read_text()


def test_trimming_a_wheel_removes_the_folders_and_their_record_lines(tmp_path):
    wheel = tmp_path / "pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("pkg/__init__.py", "x = 1\n")
        z.writestr("pkg/jars/big.jar", b"\0" * 10_000)
        z.writestr("pkg-1.0.dist-info/RECORD",
                   "pkg/__init__.py,sha256=a,6\npkg/jars/big.jar,sha256=b,10000\npkg-1.0.dist-info/RECORD,,\n")
    assert trim(wheel, ("pkg/jars/",)) > 0
    with zipfile.ZipFile(wheel) as z:
        assert z.namelist() == ["pkg/__init__.py", "pkg-1.0.dist-info/RECORD"]
        assert "jars" not in z.read("pkg-1.0.dist-info/RECORD").decode()
    with pytest.raises(SystemExit, match="nothing starts with"):
        trim(wheel, ("pkg/jars/",))


def test_process_cpu_names_the_processes_of_a_command_and_their_cpu():
    busy = "# busy-cell-marker\nimport time; t = time.time()\nwhile time.time() - t < 1: pass"
    done = subprocess.run([sys.executable, "benchmarks/process_cpu.py", "--", sys.executable, "-c",
                           busy], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    line = next(line for line in done.stderr.splitlines() if "busy-cell-marker" in line)
    cpu, count = line.split()[:2]
    assert 0.5 < float(cpu) < 1.5 and count == "1"  # a second of CPU, less the last 0.25 s
    assert done.stderr.rstrip().endswith("all processes")
