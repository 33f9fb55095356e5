"""Folds packed onto GPUs: the planned workers per fold keep the wall time within 10 % of the ideal
(every fold on an even share of the GPUs) for 5 folds on 1-16 GPUs, and cross-validation's runner
keeps to the plan on a Ray cluster with fake GPUs, each fold holding its workers' GPUs (a
placement group) for its modelled training time."""

from __future__ import annotations

import time

import pytest

from raycells.runs.cv import _run_packed
from raycells.settings import Placement
from raycells.train.schedule import fold_widths, ideal_time, modelled_time, speedup, timeline
from raycells.train.trainer import plan_resources


@pytest.mark.parametrize("gpus", [1, 2, 3, 4, 6, 8, 12, 16])
def test_planned_workers_come_within_ten_percent_of_the_ideal(gpus):
    for folds in (5, 10):
        widths = fold_widths(folds, gpus)
        assert len(widths) == folds and max(widths) <= gpus
        assert modelled_time(widths, gpus) <= 1.10 * ideal_time(folds, gpus), widths


def test_one_gpu_per_fold_leaves_gpus_idle():
    """What the plan replaces: 5 folds at one GPU each take two rounds on 4 GPUs and leave 3 of
    8 idle, 60 % over the bound."""
    assert modelled_time([1] * 5, 4) > 1.5 * ideal_time(5, 4)
    assert modelled_time([1] * 5, 8) > 1.5 * ideal_time(5, 8)


UNIT = 4.0
"""Seconds one fold takes on one fake GPU."""

RELEASE = 1.0
"""Seconds Ray may take to hand a finished fold's GPUs to the next (placement groups are removed
asynchronously; measured up to 1 s), allowed once per wave of folds that start together."""


@pytest.mark.slow  # starts Ray with fake GPUs of its own
@pytest.mark.parametrize("gpus", [4, 8, 16])
def test_cross_validation_keeps_to_the_plan_on_fake_gpus(gpus, no_ray):
    """Every fold holds its workers' GPUs (a placement group) for its modelled time; the runner
    starts each as its GPUs come free. Starting folds before their GPUs are free would show as
    waiting, leaving GPUs idle as a longer wall time; 5 folds at one GPU each fails this on 4, 8
    and 16 GPUs."""
    import ray
    from ray.util.placement_group import placement_group, remove_placement_group

    assert not ray.is_initialized(), "this test starts a Ray cluster with fake GPUs of its own"
    ray.init(address="local", num_cpus=2 * gpus + 4, num_gpus=gpus, include_dashboard=False,
             log_to_driver=False)
    try:
        resources = plan_resources(Placement(), 5, pack=True)
        widths = resources.widths or [resources.workers] * 5

        def fold(workers: int) -> None:
            group = placement_group([{"GPU": 1, "CPU": resources.cpus_per_worker}] * workers)
            assert group.wait(timeout_seconds=60)
            time.sleep(UNIT / speedup(workers))
            remove_placement_group(group)

        start = time.perf_counter()
        _run_packed([(lambda w=w: fold(w), w) for w in widths], resources.slots)
        wall = time.perf_counter() - start
    finally:
        ray.shutdown()
    waves = len({start for start, _ in timeline(widths, gpus)})
    bound = UNIT * ideal_time(5, gpus)
    assert wall <= 1.10 * bound + RELEASE * waves, (
        f"{wall:.2f} s for workers {widths} in {waves} waves; bound {bound:.2f} s")
