"""The cluster-launcher configs in cluster/: valid for Ray's own validation (no cloud call), GPU
node types declared explicitly, idle nodes scaled down, raycells installed with its pins."""

import copy
from pathlib import Path

import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

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
    assert gpu_types and all(t["resources"]["GPU"] >= 1 and t["resources"]["CPU"] >= 1
                             and t.get("min_workers", 0) == 0 for t in gpu_types)
    setup = " ".join(config["setup_commands"])
    assert "-c ~/raycells/constraints.txt" in setup and f"raycells[{name}]" in setup
    assert "/mnt/raycells" in setup and "RAYCELLS_CACHE=/mnt/raycells/cache" in " ".join(
        config["worker_start_ray_commands"])
