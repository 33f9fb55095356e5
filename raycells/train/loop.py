"""The per-worker training loop of one fold: plain PyTorch plus `ray.train.report`.

    restore -> for each epoch: enter its phase -> train -> validate -> record -> report
            -> predict the test part (first worker, with the best epoch's network)

Each epoch trains on this worker's shard of the training images (augmented on the worker's
device), scores the inner validation split (each worker a share, confusion matrices summed),
and reports the metrics with a checkpoint (`raycells.train.checkpoint`), so that a restarted
worker continues where the last one stopped. Once every epoch is done, and only then, the first
worker reads the fold's test part (for cross-validation; a Tune trial has none) and predicts it
with the best epoch's network, already on its device.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import ray.train
import ray.train.torch
import ray.util
import torch
import torch.distributed as dist
from torch import nn

from ..collector import collect_rarely
from ..errors import RaycellsError
from ..metrics import confusion_scores
from ..seeds import derive_seed
from ..settings import as_dict
from .augment import Augmenter
from .checkpoint import (
    Checkpoint,
    Progress,
    newest_readable,
    prune_best,
    read_best,
    recorded_best,
    save_best,
    save_checkpoint,
    save_test_probabilities,
)
from .feed import PADDING, EpochBatches, HeldBatches, HeldImages, validation_share
from .inputs import prepare_images
from .job import FoldJob
from .models import create_model, load_weights
from .optim import learning_rate, make_optimizer
from .phases import phase_of
from .precision import autocast, choose_precision
from .predict import class_probabilities
from .step import Step
from .trainable import set_trainable, train_mode


def train_fold(config: dict[str, Any]) -> None:
    """Ray Train entry point for one fold: `config` holds the FoldJob ("job") and the progress
    board the driver displays ("board")."""
    collect_rarely()  # this process is the fold's worker until the fold ends
    fold = FoldTraining(config["job"], config["board"])
    fold.restore(ray.train.get_checkpoint())
    for epoch in range(fold.progress.epoch + 1, fold.job.epochs):
        fold.enter_phase(epoch)
        trained = fold.train_epoch(epoch)
        validated = fold.validate(epoch)
        record = epoch_record(epoch, fold.phase.name, trained, validated)
        best = fold.progress.record(epoch, record, keep=fold.job.experiment.keep_epoch)
        fold.report(epoch, record, best)
    if fold.job.test_images:
        fold.predict_test()


def epoch_record(epoch: int, phase: str, trained: dict[str, Any],
                 validated: dict[str, Any]) -> dict[str, Any]:
    """One row of history.csv, in its column order."""
    return {"epoch": epoch + 1, "phase": phase, "lr": trained["lr"],
            "train_loss": trained["loss"], "train_accuracy": trained["accuracy"],
            "val_loss": validated["loss"], "val_accuracy": validated["accuracy"],
            "val_balanced_accuracy": validated["balanced_accuracy"],
            "val_macro_f1": validated["macro_f1"], "train_images": trained["images"],
            "steps": trained["steps"],
            "images_per_s": trained["images_per_s"], "train_seconds": trained["seconds"],
            "data_wait_seconds": trained["data_wait_seconds"], "val_seconds": validated["seconds"],
            "precision": trained["precision"], "feed": trained["feed"],
            "workers": trained["workers"],
            "batch": trained["batch"], "sync_batchnorm": trained["sync_batchnorm"],
            "ended_at": time.time(),
            "seen_per_class": trained["seen_per_class"]}


class FoldTraining:
    """One worker's part of a fold's training: the network, its optimizer and data feed."""

    def __init__(self, job: FoldJob, board) -> None:
        self.job, self.board = job, board
        experiment = job.experiment
        context = ray.train.get_context()
        self.rank, self.world = context.get_world_rank(), context.get_world_size()
        torch.set_num_threads(job.threads)
        set_determinism(experiment.deterministic)
        torch.manual_seed(derive_seed(experiment.seed, "init", job.fold))  # DDP copies rank 0's
        self.device = ray.train.torch.get_device()
        check_device(self.device, ray.get_gpu_ids())
        self.on_gpu = self.device.type == "cuda"
        self.precision = choose_precision(experiment.precision, self.device)
        check_reachable(dict(job.shared))
        board.joined.remote(job.fold, ray.get_runtime_context().get_node_id())
        group = ray.util.get_current_placement_group()
        self.placement_group = group.id.hex() if group else None  # reported, for whoever cleans up

        self.model = create_model(experiment.model, len(job.classes))
        if experiment.weights:
            load_weights(self.model, experiment.weights, head=experiment.transfer is None)
        # Batch-norm statistics over the whole step's batch: SyncBatchNorm needs GPUs (NCCL).
        self.sync_batchnorm = experiment.sync_batchnorm and self.on_gpu and self.world > 1
        if self.sync_batchnorm:
            self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        # On the device before anything refers to its parameters (optimizers, restored state).
        self.model = self.model.to(self.device, memory_format=torch.channels_last
                                   if self.on_gpu else torch.preserve_format)
        self.trained: nn.Module = self.model  # the model as prepared for this phase (DDP)
        # Loss scaling only for fp16: its step reads the gradients' finiteness on the host.
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.precision == "fp16")
        self.augmenter = (Augmenter(experiment.augment).to(self.device)
                          if experiment.augment.enabled else None)
        weights = job.loss_weights
        self.loss_fn = nn.CrossEntropyLoss(weight=None if weights is None else torch.tensor(
            weights, dtype=torch.float32, device=self.device))
        self.progress = Progress()
        self.phase = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.step: Step | None = None  # this phase's optimisation step
        self._saved: Checkpoint | None = None
        self._best_before: str | None = None  # the network file the checkpoint before names
        self.local_batch = job.worker_batch
        self._shard = ray.train.get_dataset_shard("train")
        self._upcoming: EpochBatches | HeldBatches | None = None  # the next epoch's batches
        self._held: HeldImages | None = None  # the training part on the device (images_on_device)
        self.feed = "stream"
        self._val_batches = None  # this worker's share of the validation images, read once

    def restore(self, checkpoint: ray.train.Checkpoint | None) -> None:
        """Continue from the newest readable checkpoint of this fold: Ray Train's last
        (`checkpoint`), or one the workers wrote after it (`newest_readable`), if there is one."""
        # The run directory is a local or shared folder: its paths are read as they are.
        saved = newest_readable(self.job.checkpoints, checkpoint.path if checkpoint else None)
        if saved is None:
            return
        self.model.load_state_dict(saved.model)
        if saved.scaler and self.scaler.is_enabled():  # none saved by a bf16 or CPU run
            self.scaler.load_state_dict(saved.scaler)
        self.progress = saved.progress
        self.progress.restored_from = [*self.progress.restored_from, saved.progress.epoch + 1]
        self._saved = saved
        # Not always `saved`'s file: restored from a checkpoint written after Ray Train's last,
        # the one Ray Train keeps beside the next is its last recorded one.
        self._best_before = recorded_best(checkpoint.path if checkpoint else None, saved)

    def enter_phase(self, epoch: int) -> None:
        """Switch to the phase of `epoch` if it starts a new one: what trains, a new optimizer."""
        phase = phase_of(self.job.phases, epoch)
        if phase == self.phase:
            return
        self.phase = phase
        self.optimizer = make_optimizer(set_trainable(self.model, phase), self.job.experiment,
                                        phase.lr * self.job.lr_scale)
        # A new wrapper per phase: DDP synchronises only the parameters trainable when it is built.
        self.trained = ray.train.torch.prepare_model(self.model)
        if self.job.experiment.compile:
            self.trained = torch.compile(self.trained)
        self.step = Step(self.trained, self.optimizer, self.scaler, self.loss_fn, self.augmenter,
                         self.precision, self.device)
        saved = self._saved
        if saved is not None and (saved.progress.phase or phase.name) == phase.name:
            self.optimizer.load_state_dict(saved.optimizer)  # resuming inside this phase
        else:
            self.progress.phase, self.progress.phase_start_step = phase.name, self.progress.step

    def train_epoch(self, epoch: int) -> dict[str, Any]:
        """One pass over this worker's (sampled) training batches; the totals of all workers."""
        job, phase, progress = self.job, self.phase, self.progress
        # Timed from here: the first epoch of a held part waits here for its images to arrive.
        start = time.perf_counter()
        batches = self._upcoming or self._batches(epoch)
        self._upcoming = None
        # Augmentation (and dropout) draws: their own stream per fold, epoch and worker.
        torch.manual_seed(epoch_seed(job, epoch, self.rank))
        train_mode(self.trained, phase)
        # Running sums stay on the device: reading them every step would stall a GPU.
        sums = torch.zeros(2, dtype=torch.float64, device=self.device)  # loss, correct
        seen = torch.zeros(len(job.classes), dtype=torch.long, device=self.device)
        count, steps, last_post = 0, 0, start
        lr = self._learning_rate()
        for steps, batch in enumerate(batches, start=1):
            lr = self._learning_rate()
            count += self.step(batch, lr, sums, seen)
            progress.step += 1
            if self.rank == 0 and time.perf_counter() - last_post > 1.0:
                last_post = time.perf_counter()
                self._post_training(epoch, steps, sums[0].item() / count,
                                    count * self.world / (time.perf_counter() - start))
        seconds = time.perf_counter() - start
        if not steps:  # the driver checks the batch against the part; this is the last guard
            raise RaycellsError(
                f"fold {job.fold}, epoch {epoch + 1}: worker {self.rank} got no full batch of "
                f"{self.local_batch} images, so the epoch trained no step: lower --batch-size "
                "(or --workers).")
        if epoch + 1 < job.epochs:  # the next epoch's stream starts while this one validates
            self._upcoming = self._batches(epoch + 1)
        if self.rank == 0 and count:
            self._post_training(epoch, count // self.local_batch, sums[0].item() / count,
                                count * self.world / seconds)
        loss_sum, correct, images = _sum_across([*sums.tolist(), count], self.device)
        seen_totals = _sum_across(seen.tolist(), self.device)
        return {"lr": lr, "loss": loss_sum / max(images, 1), "accuracy": correct / max(images, 1),
                "precision": self.precision, "feed": self.feed, "workers": self.world,
                "batch": self.local_batch * self.world, "sync_batchnorm": self.sync_batchnorm,
                "images": int(images), "steps": steps, "images_per_s": images / max(seconds, 1e-9),
                "seconds": seconds, "data_wait_seconds": batches.waited,
                "seen_per_class": {code: int(n) for code, n in zip(job.classes, seen_totals)}}

    def validate(self, epoch: int) -> dict[str, Any]:
        """Loss and scores on the inner validation split, over all workers."""
        if self.rank == 0:
            self.board.post.remote(self.job.fold, phase="validate", epoch=epoch + 1)
        start = time.perf_counter()
        if self._val_batches is None:
            self._val_batches = validation_share(ray.train.get_dataset_shard("val"), self.rank,
                                                 self.world, self.local_batch, self.device)
        loss, confusion = _validate(self.trained, self._val_batches, len(self.job.classes),
                                    self.device, self.precision)
        scores = confusion_scores(confusion)
        return {"loss": loss, "accuracy": scores["accuracy"],
                "balanced_accuracy": scores["balanced_accuracy"], "macro_f1": scores["macro_f1"],
                "seconds": time.perf_counter() - start}

    def report(self, epoch: int, record: dict[str, Any], best: bool) -> None:
        """Report the epoch to Ray Train; the first worker adds the checkpoint, and with `best`
        (the epoch's network is now the fold's) writes the network first, so that a checkpoint
        never names a file that is not there."""
        job = self.job
        metrics = {"fold": job.fold, "placement_group": self.placement_group,
                   **{key: value for key, value in record.items() if key != "seen_per_class"}}
        if self.rank != 0:
            ray.train.report(metrics)
            return
        self.board.epoch_done.remote(job.fold, epoch + 1, metrics)
        best_file = self.progress.best["file"]
        if best:
            save_best(self.model, job.checkpoints, best_file)
        with tempfile.TemporaryDirectory() as folder:
            save_checkpoint(Checkpoint(
                model_name=job.experiment.model, classes=list(job.classes),
                image_size=job.experiment.image_size, experiment=as_dict(job.experiment),
                progress=self.progress, model=self.model.state_dict(),
                optimizer=self.optimizer.state_dict(), scaler=self.scaler.state_dict()), folder)
            # After a restart the names get -r<restarts>: an epoch trained again (its first
            # checkpoint was cut short) never reuses a folder Ray Train still tracks.
            restarts = len(self.progress.restored_from)
            name = f"epoch-{epoch + 1:03d}" + (f"-r{restarts}" if restarts else "")
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder),
                             checkpoint_dir_name=name)
        # Ray Train keeps two checkpoints (this one and the one before): keep their networks.
        prune_best(job.checkpoints, {best_file, self._best_before})
        self._best_before = best_file

    def predict_test(self) -> None:
        """On the first worker: the fold's test part's class probabilities from the fold's network
        (the best epoch's weights, as `raycells evaluate` would read them), written beside its
        file (`save_test_probabilities`)."""
        if self.rank != 0:
            return
        job = self.job
        self.board.post.remote(job.fold, phase="predicting")
        best = self.progress.best["file"]
        self.model.load_state_dict(read_best(Path(job.checkpoints) / best))
        self.model.eval()
        rows, probs = [], []
        for batch in ray.train.get_dataset_shard("test").iter_batches(
                batch_size=self.local_batch, batch_format="numpy"):
            rows.append(batch["row"])
            probs.append(class_probabilities(self.model, batch["image"], self.device,
                                             job.experiment.tta))
        rows, probs = np.concatenate(rows), np.concatenate(probs)
        order = np.argsort(rows)
        save_test_probabilities(job.checkpoints, best, rows[order], probs[order])

    def _batches(self, epoch: int) -> EpochBatches | HeldBatches:
        job = self.job
        reading = 0.0
        if job.experiment.images_on_device and self.feed == "stream" and self._held is None:
            started = time.perf_counter()
            self._hold_images()
            reading = time.perf_counter() - started
        if self._held is not None:
            batches = self._held.batches(epoch, self.local_batch, self.rank, self.world)
            batches.waited = reading  # the first epoch waited for the images to arrive
            return batches
        return EpochBatches(self._shard, self.local_batch, self.device)

    def _hold_images(self) -> None:
        """Read the training part onto the device, if it fits on every worker's (all workers cut
        their batches the same way, or all stream)."""
        job, size = self.job, self.job.experiment.image_size
        fits = HeldImages.fits(job.train_images, size, self.device)
        if _sum_across([float(fits)], self.device)[0] == self.world:
            self._held = HeldImages(ray.train.get_dataset_shard("train_images"), job.train_images,
                                    size, self.device, job.class_copies, job.data_seed)
            self.feed = "device"
        else:
            self.feed = "stream (did not fit on the device)"

    def _learning_rate(self) -> float:
        phase = self.phase
        return learning_rate(self.progress.step - self.progress.phase_start_step,
                             phase.epochs * self.job.steps_per_epoch, phase.lr * self.job.lr_scale,
                             self.job.experiment.schedule)

    def _post_training(self, epoch: int, batch: int, loss: float, images_per_s: float) -> None:
        self.board.post.remote(self.job.fold, phase=self.phase.name, epoch=epoch + 1,
                               epochs=self.job.epochs, batch=batch,
                               batches=self.job.steps_per_epoch, loss=loss,
                               images_per_s=images_per_s)


def set_determinism(on: bool) -> None:
    """With `on`, GPU kernels that repeat bit for bit: cuDNN's deterministic algorithms without
    its benchmark search, torch's deterministic implementations (an op without one warns rather
    than stops), and the cuBLAS workspace setting they need. Without, cuDNN times its algorithms
    on the first batches and keeps the fastest. CPU kernels repeat either way."""

    if on:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.deterministic = on
    torch.backends.cudnn.benchmark = not on  # fixed input shapes: the fastest kernels, measured once
    torch.use_deterministic_algorithms(on, warn_only=True)


def epoch_seed(job: FoldJob, epoch: int, rank: int) -> int:
    """The torch seed of a worker's training epoch: augmentation parameters differ between
    workers (data-parallel ranks) and epochs, and repeat with the run's seed."""
    return derive_seed(job.experiment.seed, "augment", job.fold, epoch, rank)


def check_device(device: torch.device, gpu_ids: list) -> None:
    """Refuse to train on the CPU when Ray gave this worker GPUs (`gpu_ids`) that PyTorch
    cannot use: it would train, slowly, on a machine rented for its GPUs."""
    if gpu_ids and device.type != "cuda":
        raise RaycellsError(
            f"Ray gave this training worker GPU {', '.join(map(str, gpu_ids))} on node "
            f"{ray.util.get_node_ip_address()}, but PyTorch {torch.__version__} cannot use it "
            "(torch.cuda.is_available() is False: a CPU-only build of torch, or an NVIDIA driver "
            "older than its CUDA): install a CUDA build of torch there, or pass "
            "--gpus-per-worker 0 to train on CPUs.")


def check_reachable(folders: dict[str, str]) -> None:
    """Refuse to train on a node that cannot see the run's folders (`folders`: what each is ->
    its path). On a cluster they must be on storage every node mounts; otherwise this worker's
    checkpoints would stay on its own disk and its images could not be read."""
    for what, folder in folders.items():
        if not Path(folder).is_dir():
            node = ray.util.get_node_ip_address()
            raise RaycellsError(
                f"{folder} ({what}) does not exist on node {node}, where a training worker runs: "
                "on a cluster of several machines it must be on a file system every node mounts, "
                "such as /mnt/raycells in cluster/aws.yaml and cluster/gcp.yaml "
                "(see cluster/README.md).")


def _validate(model: nn.Module, batches, num_classes: int, device: torch.device,
              precision: str) -> tuple[float, np.ndarray]:
    """Loss and confusion matrix on the validation batches, summed over all workers, read from
    the device once (`validation_sums`)."""
    loss_sum, confusion = validation_sums(model, batches, num_classes, device, precision)
    count = sum(int((labels != PADDING).sum()) for _images, labels in batches)  # host tensors
    summed = _sum_across([loss_sum.item(), count, *confusion.tolist()], device)
    confusion = np.asarray(summed[2:], dtype=np.int64).reshape(num_classes, num_classes)
    return summed[0] / max(summed[1], 1), confusion


def validation_sums(model: nn.Module, batches, num_classes: int, device: torch.device,
                    precision: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The summed loss and the confusion counts (flat) of the validation batches (host tensors,
    `raycells.train.feed.fixed_batches`), kept on `device`: each batch is copied without
    blocking and nothing is read back, so a GPU never waits for the host. Padding rows (label
    `PADDING`) count nowhere."""
    model.eval()
    confusion = torch.zeros(num_classes * num_classes, dtype=torch.long, device=device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    with torch.no_grad():
        for images, labels in batches:
            labels = labels.to(device, non_blocking=True)
            x = prepare_images(images.to(device, non_blocking=True),
                               channels_last=device.type == "cuda")
            with autocast(precision, device):
                logits = model(x)
            loss_sum += nn.functional.cross_entropy(logits.float(), labels, reduction="sum",
                                                    ignore_index=PADDING)
            real = labels != PADDING
            confusion.index_add_(0, labels.clamp(min=0) * num_classes + logits.argmax(1),
                                 real.long())
    return loss_sum, confusion


def _sum_across(values: list[float], device: torch.device) -> list[float]:
    """Sum a list of numbers over all workers (a no-op for one worker)."""
    if not dist.is_available() or not dist.is_initialized() or dist.get_world_size() == 1:
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()
