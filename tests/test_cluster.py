"""Running on a Ray cluster: the cluster-launcher configs in cluster/ (valid for Ray's own
validation, no cloud call; GPU node types declared explicitly, idle nodes scaled down, raycells
installed with its pins), and `raycells cv --address` on a two-node cluster on this machine."""

import copy
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from raycells.errors import RaycellsError
from raycells.train.loop import check_reachable
from raycells.train.trainer import (
    DATA_RESERVATION_ENV,
    GPU_WORKER_CPUS,
    LOG_MONITOR_ENV,
    UNWATCHED_ENV,
    set_ray_environment,
)

CLUSTER = Path(__file__).resolve().parents[1] / "cluster"


@pytest.mark.parametrize("name", ["aws", "gcp"])
def test_cluster_config_passes_rays_validation(name):
    config = yaml.safe_load((CLUSTER / f"{name}.yaml").read_text())
    validate_config(prepare_config(copy.deepcopy(config)))  # raises on an invalid config

    assert config["provider"]["type"] == name and config["idle_timeout_minutes"] > 0
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0  # the head trains nothing
    gpu_types = [t for key, t in types.items() if key.startswith("gpu_")]
    assert gpu_types and all(t["resources"]["GPU"] >= 1 and t.get("min_workers", 0) == 0
                             for t in gpu_types)
    # Enough CPUs per GPU for the data feed: the training worker's, and 6 for Ray Data's reads.
    assert all(t["resources"]["CPU"] / t["resources"]["GPU"] >= GPU_WORKER_CPUS + 6
               for t in gpu_types)
    setup = " ".join(config["setup_commands"])
    assert "-c ~/raycells/constraints.txt" in setup and f"raycells[{name}]" in setup
    assert "/mnt/raycells" in setup and "RAYCELLS_CACHE=/mnt/raycells/cache" in " ".join(
        config["worker_start_ray_commands"])


def test_only_a_cluster_raycells_starts_goes_without_rays_dashboard_watchers(monkeypatch):
    """A local cluster (no dashboard, no node a cloud can take back) starts without Ray Train's
    metrics and preemption watcher; a value the user set is kept; `ray up` keeps Ray's."""
    for name in UNWATCHED_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(DATA_RESERVATION_ENV, "90")
    set_ray_environment()
    assert {name: os.environ[name] for name in UNWATCHED_ENV} == {
        "RAY_TRAIN_METRICS_ENABLED": "0", "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0"}
    assert os.environ[DATA_RESERVATION_ENV] == "90"
    for name in ("aws", "gcp"):
        assert not any(variable in (CLUSTER / f"{name}.yaml").read_text() for variable in UNWATCHED_ENV)


def test_the_log_monitor_of_a_cluster_raycells_starts_looks_for_new_files_every_half_second(
        ray_session):
    """Nothing goes from the workers to the driver, so the log monitor need not look for new log
    files ten times a second: the setting reaches the monitor of the cluster this process started
    (the tests' shared one, started as `init_ray` starts one)."""
    def read(path: str) -> bytes:
        try:
            return Path(path).read_bytes()
        except OSError:
            return b""

    mine = [pid for pid in os.listdir("/proc") if pid.isdigit()
            and b"log_monitor.py" in read(f"/proc/{pid}/cmdline")
            and read(f"/proc/{pid}/stat").rpartition(b")")[2].split()[1:2] == [str(os.getpid()).encode()]]
    assert len(mine) == 1
    assert f"{LOG_MONITOR_ENV}=0".encode() in read(f"/proc/{mine[0]}/environ").split(b"\0")


@pytest.mark.slow
def test_a_cv_run_spans_two_nodes_and_survives_losing_one(small_pbc, tmp_path, complete_run,
                                                           monkeypatch):
    """Two nodes of 3 CPUs and workers of 2 CPUs: a fold's two workers cannot share a node. The
    worker node is killed once Ray Train has recorded a checkpoint of fold 0 (up to 2 s after it
    is written: five epochs, so that the fold is still training then) and a new one joins; the
    fold goes on from the checkpoint on the new node."""
    from ray.cluster_utils import Cluster

    monkeypatch.setenv(DATA_RESERVATION_ENV, "60")  # as raycells sets for a cluster it starts
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 3})
    lost = cluster.add_node(num_cpus=3)
    run, log = tmp_path / "run", tmp_path / "driver.log"
    command = [sys.executable, "-m", "raycells.cli.main", "cv", "--address", cluster.address,
               "--data", str(small_pbc), "--out", str(run), "--folds", "2", "--epochs", "5",
               "--model", "tiny_cnn", "--image-size", "32", "--batch-size", "16", "--lr", "0.01",
               "--workers", "2", "--cpus-per-worker", "2", "--batch-scaling", "per-worker"]
    try:
        with log.open("w") as output:
            driver = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
            snapshot = run / "fold-0" / "checkpoint" / "checkpoint_manager_snapshot.json"
            deadline = time.time() + 300
            while not (snapshot.is_file() and "epoch-00" in snapshot.read_text()):
                assert driver.poll() is None and time.time() < deadline, log.read_text()[-3000:]
                time.sleep(0.2)
            cluster.remove_node(lost, allow_graceful=False)
            new = cluster.add_node(num_cpus=3)
            assert driver.wait(timeout=600) == 0, log.read_text()[-3000:]
        head = cluster.head_node.node_id
    finally:
        cluster.shutdown()
    first, second = (json.loads((run / f"fold-{k}" / "metrics.json").read_text()) for k in (0, 1))
    assert set(first["nodes"]) == {head, lost.node_id, new.node_id}
    assert first["restored_from_epochs"], "fold 0 did not go on from its checkpoint"
    assert set(second["nodes"]) == {head, new.node_id}
    complete_run(run, folds=2, classes=8)
    # Per-worker batch scaling: 16 images on each worker, the peak learning rate doubled (above
    # --lr, which a schedule of the unscaled rate never reaches).
    history = pd.read_csv(run / "fold-1" / "history.csv")
    assert (history["workers"] == 2).all() and (history["batch"] == 32).all()
    assert 0.01 < history["lr"].max() <= 0.02
    assert not history["sync_batchnorm"].any()  # CPU workers keep their own statistics
    plan = pd.read_parquet(run / "folds.parquet")
    tested = pd.concat(pd.read_parquet(run / f"fold-{k}" / "predictions.parquet") for k in (0, 1))
    assert sorted(tested["path"]) == sorted(plan["path"])  # every image tested exactly once


def test_a_worker_refuses_folders_its_node_cannot_see(tmp_path):
    check_reachable({"the run directory, --out": str(tmp_path)})
    with pytest.raises(RaycellsError, match=r"nope \(the image cache, \$RAYCELLS_CACHE\) does not "
                                            r"exist on node .*a file system every node mounts"):
        check_reachable({"the run directory, --out": str(tmp_path),
                         "the image cache, $RAYCELLS_CACHE": str(tmp_path / "nope")})
