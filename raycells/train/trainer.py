"""What cross-validation and tuning share: joining Ray, sizing the training workers from the
cluster, and building the Ray Train `TorchTrainer` that trains one fold."""

from __future__ import annotations

import logging
import math
import os
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..data.folds import fold_parts
from ..data.pipeline import DATA_TASK_CPUS, part_dataset
from ..data.sampling import expected_copies, loss_weights
from ..errors import RaycellsError, RayUnavailable
from ..files import WRITE_FAILURES
from ..interrupts import held_signals
from ..settings import Experiment, Placement
from .checkpoint import drop_untracked
from .job import FoldJob, step_batch
from .schedule import fold_widths

DATA_CPUS = 1.0
"""CPUs each fold leaves to Ray Data (listing and reading the cache, sampling). Ray Data's file
listing task asks for a whole CPU, so less than one would stall the pipeline."""


GPU_WORKER_CPUS = 2.0
"""CPUs a GPU training worker asks for: one drives the GPU, one takes the batches from Ray Data
(collating, pinning). The node's other CPUs are left to Ray Data's reading tasks, which at about
1-2 ms of CPU per 400x400 image (benchmarks/feed.py) need 1-2 CPUs per 1,000 images/s."""

CHECKPOINTS = "checkpoint"
"""A fold's checkpoint folder, in its folder of the run directory (`raycells.train.checkpoint`)."""

DATA_RESERVATION_ENV = "RAY_DATA_AUTOSCALING_REQUEST_EXPIRE_TIME_S"
"""Seconds a Ray Data pipeline's resource reservation outlives its last renewal (Ray's default:
180): it renews every 10 s while a pipeline runs, and one whose process was killed (a trial
stopped early, mid-epoch) would hold its CPUs for 3 minutes. Set before the local Ray cluster
starts, which passes it on to every worker."""

HEALTH_CHECK_ENV = "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"
"""Seconds between Ray Train's looks at its workers (its default: 2). Each fold's start waits for
one and its end is noticed at the next: at 0.5 s the end of a fold on CPUs is noticed ~2.5 s
sooner (Ray Train's logs; benchmarks/fold_overhead.py measures a whole fold), for a few more
small calls per worker a second. Read from the driver's environment when a fold starts."""

IDLE_WORKERS_ENV = "RAY_num_workers_soft_limit"
"""How many idle worker processes a Ray node keeps (Ray's default: one per CPU). Ray Data's tasks
ask for a quarter of a CPU, so an epoch runs up to four per CPU; with the default, the extra
processes end a second after the epoch's reads and the next epoch starts them again, at about
2 s of CPU each (benchmarks/feed.py: ~20 s of CPU per epoch's start, ~1 s with enough kept).
Set before the local cluster starts; cluster/*.yaml sets it on every node."""

LOG_MONITOR_ENV = "RAY_LOG_MONITOR_MANY_FILES_THRESHOLD"
"""Log files above which Ray's log monitor looks for new ones every 0.5 s rather than 10 times a
second (Ray's default: 1,000). A cluster raycells starts sends no worker output to the driver
(`log_to_driver` off), so 0: with the ~300 log files a cluster has after a few dozen folds, its
log monitor then takes 0.5 rather than 1.0 s of CPU every 30 s (measured on 2 cores). Set before
the local cluster starts."""

UNWATCHED_ENV = {"RAY_TRAIN_METRICS_ENABLED": "0", "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0"}
"""Ray Train's metrics (for Ray's dashboard) and its preemption watcher (for nodes a cloud takes
back), which every fold otherwise starts, the watcher as an actor process of its own: a cluster
raycells starts has no dashboard and no node to lose. Set before the local cluster starts; a
cluster started with `ray up` keeps Ray's defaults."""


def set_ray_environment() -> None:
    """The environment a local Ray cluster started from this process inherits (see the names
    above); a variable already set is kept."""
    for name, value in {DATA_RESERVATION_ENV: "60", HEALTH_CHECK_ENV: "0.5",
                        IDLE_WORKERS_ENV: str(min(64, round(os.cpu_count() / DATA_TASK_CPUS))),
                        LOG_MONITOR_ENV: "0",
                        **UNWATCHED_ENV}.items():
        os.environ.setdefault(name, value)


@dataclass
class Resources:
    """How one fold's training is placed, and how many folds run at once."""

    workers: int
    cpus_per_worker: float
    gpus_per_worker: float
    threads: int
    concurrent_folds: int
    widths: tuple[int, ...] = ()
    """Workers of each fold in the order they start, when they differ (folds packed onto GPUs,
    `raycells.train.schedule`); empty when every fold has `workers`."""
    slots: int = 1
    """Workers that fit at once: a fold starts when its workers fit beside the running ones."""


def plan_resources(placement: Placement, folds_to_run: int, driver_cpus: float = 0.0,
                   pack: bool = False) -> Resources:
    """Size the training workers from the cluster: one worker per GPU with as many folds at once
    as the GPUs allow, or with `pack` (cross-validation's folds, without --workers) each fold's
    workers chosen so that the folds keep every GPU busy (`raycells.train.schedule`); on CPUs,
    one fold at a time using all cores but a share left to Ray Data (and `driver_cpus`, held by
    whatever launches each fold: a Tune trial)."""
    import ray

    total = ray.cluster_resources()
    cpus, gpus = float(total.get("CPU", 1)), float(total.get("GPU", 0))
    check_gpus_seen(placement, gpus, local_cuda_gpus())
    gpus_per_worker = placement.gpus_per_worker if placement.gpus_per_worker is not None else (
        1.0 if gpus >= 1 else 0.0)
    widths: list[int] = []
    if gpus_per_worker > 0:
        if gpus < gpus_per_worker:
            raise RaycellsError(f"--gpus-per-worker {gpus_per_worker:g} but the Ray cluster has "
                                f"{gpus:g} GPUs: lower it, or set it to 0 to train on CPUs.")
        slots = int(gpus // gpus_per_worker)
        widths = fold_widths(folds_to_run, slots) if pack and not placement.workers else []
        workers = widths[0] if widths else placement.workers or max(
            1, slots // max(1, min(folds_to_run, slots)))
        concurrent = max(1, min(folds_to_run, slots // workers))
        cpus_per_worker = placement.cpus_per_worker or max(
            1.0, min(GPU_WORKER_CPUS, (cpus - concurrent * (DATA_CPUS * 2 + driver_cpus)) / (
                concurrent * workers)))
    else:
        workers = placement.workers or 1
        if placement.cpus_per_worker:
            cpus_per_worker = placement.cpus_per_worker
            concurrent = max(1, min(folds_to_run, int(
                cpus // (workers * cpus_per_worker + DATA_CPUS + driver_cpus))))
        else:
            concurrent = 1
            cpus_per_worker = max(0.25, (cpus - DATA_CPUS - driver_cpus) / workers)
    # Ray's CPU share is for scheduling; the threads may also use the data reserve, which the
    # pipeline leaves mostly idle once the images are cached.
    threads = max(1, math.ceil(cpus_per_worker)) if gpus_per_worker > 0 or concurrent > 1 else max(
        1, round(cpus_per_worker + DATA_CPUS / workers))
    if max([workers, *widths]) * cpus_per_worker > cpus:
        raise RaycellsError(f"{workers} workers x {cpus_per_worker:g} CPUs need more than the "
                            f"cluster's {cpus:g} CPUs: lower --workers.")
    widths = widths if len(set(widths)) > 1 else []
    return Resources(workers=workers, cpus_per_worker=round(cpus_per_worker, 3),
                     gpus_per_worker=gpus_per_worker, threads=threads,
                     concurrent_folds=concurrent, widths=tuple(widths),
                     slots=max(workers * concurrent, *widths, 1))


def local_cuda_gpus() -> int:
    """How many GPUs PyTorch sees on this machine (0 without a CUDA build)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def check_gpus_seen(placement: Placement, ray_gpus: float, cuda_gpus: int) -> None:
    """Refuse to fall back to CPUs without being asked when this machine has GPUs that the Ray
    cluster does not offer (Ray started with CUDA_VISIBLE_DEVICES empty or --num-gpus 0): a run
    meant for the GPUs would otherwise train for days on the CPUs."""
    if placement.gpus_per_worker is None and cuda_gpus and not ray_gpus:
        where = f"the Ray cluster at {placement.address}" if placement.address else "Ray"
        raise RaycellsError(
            f"PyTorch sees {cuda_gpus} GPU{'s' if cuda_gpus > 1 else ''} here but {where} offers "
            f"none (it was started without them: CUDA_VISIBLE_DEVICES empty, or --num-gpus 0). "
            f"Restart it so that it sees them (`ray stop`, then `ray start --head "
            f"--num-gpus {cuda_gpus}`), or pass --gpus-per-worker 0 to train on the CPUs.")


def check_answers(address: str, seconds: float = 5.0) -> None:
    """Fail in seconds, naming the address, when nothing listens at a Ray cluster's host:port
    (ray.init waits minutes, silently, for a cluster that is not there)."""
    import socket
    from urllib.parse import urlsplit

    if address in ("auto", "local") or address.startswith("anyscale://"):
        return
    parts = urlsplit(address if "://" in address else f"ray://{address}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:  # a port that is not a number
        host, port = None, None
    if not host or port is None:
        raise RayUnavailable(f"--address {address}: expected host:port (as `ray start --head` "
                             "prints), ray://host:port, or auto.")
    try:
        socket.create_connection((host, port), timeout=seconds).close()
    except OSError as error:
        raise RayUnavailable(f"nothing answers at --address {address} ({error.strerror or error}): "
                             "check the address `ray start --head` printed and that the cluster "
                             "is up (`ray status` on its head node).") from None


def init_ray(placement: Placement) -> None:
    """Join (or start) the Ray cluster quietly: Ray's own logs stay in its session folder."""
    import ray
    import ray.data

    for name in ("ray", "ray.data", "ray.train", "ray.tune"):
        logging.getLogger(name).setLevel(logging.ERROR)
    set_ray_environment()
    if not ray.is_initialized():
        if placement.address:
            check_answers(placement.address)
        handler = signal.getsignal(signal.SIGTERM)
        try:
            # Without an address (or RAY_ADDRESS), a cluster of our own: Ray would otherwise
            # join whichever local cluster another program started last.
            # Ctrl-C only once Ray has started whole: cut short, ray.init leaves a half-started
            # local cluster that ray.shutdown does not know of, whose agents linger a minute.
            with held_signals(signal.SIGINT):
                ray.init(address=placement.address or os.environ.get("RAY_ADDRESS") or "local",
                         include_dashboard=False, log_to_driver=False,
                         logging_level=logging.ERROR, configure_logging=True)
        except SystemExit as stop:  # ray.init's own SIGTERM handler, while it starts Ray
            if stop.code == signal.SIGTERM and callable(handler):
                handler(signal.SIGTERM, None)  # the caller's way of ending on SIGTERM
            raise
        except Exception as error:  # Ray's own failure types vary by version and cause
            what = (f"join the cluster at {placement.address}" if placement.address
                    else "start a local cluster")
            first = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise RayUnavailable(f"Ray could not {what} ({type(error).__name__}: "
                                 f"{first}); a machine under load or a stale Ray from an "
                                 "earlier run (`ray stop` ends it) are the usual causes.") from error
        if handler not in (signal.SIG_DFL, None) and (
                threading.current_thread() is threading.main_thread()):
            signal.signal(signal.SIGTERM, handler)  # ray.init replaces the caller's with exit(15)
    context = ray.data.DataContext.get_current()
    # Blocks in the order they were read (not as tasks finish): with seeded shard orders and
    # sampling draws, the same seed then streams the same rows (raycells.data.pipeline).
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False
    context.print_on_execution_start = False


def ray_running() -> bool:
    """Whether this process is connected to Ray (found without importing it)."""
    ray = sys.modules.get("ray")
    return ray is not None and ray.is_initialized()


def stop_ray() -> None:
    """Shut Ray down now, rather than at interpreter exit; a process that never imported Ray
    (a command refused before its work began) does not import it to find that out."""
    if ray_running():
        sys.modules["ray"].shutdown()


def fold_trainer(experiment: Experiment, resources: Resources, plan: pd.DataFrame,
                 classes: list[str], labels: np.ndarray, cache: Path, fold: int, board, *,
                 storage: Path, test: bool = False, callbacks: list | None = None):
    """A Ray Train trainer for fold `fold` of `plan` (`trainer_class`): its training part
    streamed from the cache (sampled by the experiment's policy), its inner validation part for
    picking the best epoch, checkpoints under `storage`/checkpoint; with `test`, its test part
    too, predicted after the last epoch (`raycells.train.loop`; `read_test_probabilities` reads
    the result)."""
    import ray.train

    from .loop import train_fold

    parts = fold_parts(plan, fold)
    class_counts = np.bincount(labels[parts["train"]], minlength=len(classes))
    expected = expected_copies(experiment.sampling, class_counts)
    weights = loss_weights(experiment.sampling, class_counts)
    job = FoldJob(
        experiment=experiment, fold=fold, classes=tuple(classes), workers=resources.workers,
        threads=resources.threads, steps_per_epoch=max(1, int(
            (class_counts * expected).sum() // step_batch(experiment, resources.workers))),
        loss_weights=None if weights is None else tuple(weights.tolist()),
        class_copies=tuple(expected.tolist()) if experiment.sampling.resamples else None,
        train_images=len(parts["train"]), test_images=len(parts["test"]) if test else 0,
        shared=(("the run directory, --out", str(storage.resolve())),
                ("the image cache, $RAYCELLS_CACHE", str(cache.resolve()))),
        checkpoints=str(storage.resolve() / CHECKPOINTS))
    storage.mkdir(parents=True, exist_ok=True)
    return trainer_class(resources.workers)(
        train_fold,
        train_loop_config={"job": job, "board": board},
        scaling_config=ray.train.ScalingConfig(
            num_workers=resources.workers, use_gpu=resources.gpus_per_worker > 0,
            resources_per_worker={"CPU": resources.cpus_per_worker,
                                  **({"GPU": resources.gpus_per_worker} if resources.gpus_per_worker else {})}),
        run_config=ray.train.RunConfig(
            name=CHECKPOINTS, storage_path=str(storage.resolve()),
            failure_config=ray.train.FailureConfig(max_failures=3),
            # Two: a last checkpoint cut short (a full disk, a killed write) falls back to the one before.
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2),
            callbacks=callbacks),
        datasets=fold_datasets(experiment, parts, labels, expected, cache, job.data_seed, test),
        dataset_config=ray.train.DataConfig(datasets_to_split=["train"]),
    )


def trainer_class(workers: int) -> type:
    """Ray Train's `TorchTrainer` for a fold of several workers, which sets up torch.distributed
    between them; for a fold of one, which has no one to talk to, Ray Train's plain trainer,
    whose controller process then loads no torch (~2 CPU-s a fold; the worker finds its device
    as before, `ray.train.torch.get_device`, from the GPU Ray gave it)."""
    if workers > 1:
        from ray.train.torch import TorchTrainer

        return TorchTrainer
    from ray.train.v2.api.data_parallel_trainer import DataParallelTrainer

    return DataParallelTrainer


def fold_datasets(experiment: Experiment, parts: dict[str, np.ndarray], labels: np.ndarray,
                  expected: np.ndarray, cache: Path, seed: int, test: bool = False) -> dict:
    """A fold's Ray datasets: "train" (sampled with `expected` copies per image of each class,
    a new shard order every epoch, seeded by `seed`), "val" (the inner validation split, as it
    is), to hold on the workers' devices (`images_on_device`) "train_images" (the training
    part, each image once), and with `test` "test" (the test part, read after training)."""
    datasets = {
        "train": part_dataset(cache, experiment.image_size, labels, parts["train"],
                              expected[labels] if experiment.sampling.resamples else None,
                              shuffle=True, seed=seed),
        "val": part_dataset(cache, experiment.image_size, labels, parts["val"]),
    }
    if experiment.images_on_device:
        datasets["train_images"] = part_dataset(cache, experiment.image_size, labels, parts["train"])
    if test:
        datasets["test"] = part_dataset(cache, experiment.image_size, labels, parts["test"])
    return datasets


def fit(trainer):
    """`trainer.fit()`, with a worker's refusal (a `RaycellsError`, such as a folder its node
    cannot see) or a write its disk refused (`WRITE_FAILURES`) raised as itself rather than
    inside Ray Train's report of worker failures; once it ends, only the checkpoint folders Ray
    Train keeps are left (`drop_untracked`)."""
    import ray.train

    try:
        result = trainer.fit()
    except ray.train.WorkerGroupError as error:
        for failure in error.worker_failures.values():
            cause = getattr(failure, "cause", failure)
            if isinstance(cause, RaycellsError):
                raise RaycellsError(str(cause.args[0])) from None
            if isinstance(cause, OSError) and cause.errno in WRITE_FAILURES:  # saving a checkpoint
                raise OSError(cause.errno, cause.strerror, cause.filename) from None
        raise
    drop_untracked([checkpoint.path for checkpoint, _ in result.best_checkpoints or []])
    return result
