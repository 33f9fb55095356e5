"""The per-worker training loop of one fold: plain PyTorch plus `ray.train.report`.

Each epoch trains on this worker's shard of the training images (augmented on the worker's
device), scores the inner validation split (each worker a share, confusion matrices summed), and
reports the metrics with a checkpoint. The checkpoint describes itself: model name and classes,
model, optimizer and scaler state, the epoch, the history so far and the best model so far, so a
restarted worker continues where the last one stopped and the driver can predict with the best.
"""

from __future__ import annotations

import math
import tempfile
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np
import ray.train
import ray.train.torch
import ray.util
import torch
import torch.distributed as dist
from torch import nn

from .augment import Augmenter
from ..errors import RaycellsError
from ..metrics import confusion_scores
from .models import create_model, load_weights
from .phases import phase_of, set_trainable, total_epochs, train_mode, training_phases
from ..settings import settings_from_dict

CHECKPOINT_FILE = "state.pt"
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def prepare_images(images: torch.Tensor, augmenter: Augmenter | None = None,
                   channels_last: bool = False) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> normalised float (N, 3, H, W), augmented when `augmenter` is given."""
    x = images.permute(0, 3, 1, 2).float().div_(255.0)
    if augmenter is not None:
        x = augmenter(x)
    x = (x - MEAN.to(x.device)) / STD.to(x.device)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def learning_rate(step: int, total: int, peak: float, schedule: str) -> float:
    """The learning rate after `step` of `total` optimisation steps."""
    progress = min(step / max(total, 1), 1.0)
    if schedule == "constant":
        return peak
    if schedule == "cosine":
        return peak * 0.5 * (1 + math.cos(math.pi * progress))
    warmup = 0.3  # one-cycle: cosine rise from peak/25 over the first 30%, then cosine decay
    if progress < warmup:
        return peak / 25 + (peak - peak / 25) * 0.5 * (1 - math.cos(math.pi * progress / warmup))
    return peak * 0.5 * (1 + math.cos(math.pi * (progress - warmup) / (1 - warmup))) + peak * 1e-4


def train_fold(config: dict[str, Any]) -> None:
    """Ray Train entry point for one fold; `config` is built by `raycells.runs.cv`."""
    experiment, _ = settings_from_dict(config["experiment"])
    fold, classes, board = config["fold"], config["classes"], config["board"]
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    torch.set_num_threads(config["threads"])
    torch.manual_seed(experiment.seed * 1000 + fold)
    device = ray.train.torch.get_device()
    on_gpu = device.type == "cuda"
    check_reachable(config["shared"])
    board.joined.remote(fold, ray.get_runtime_context().get_node_id())
    group = ray.util.get_current_placement_group()
    placement_group = group.id.hex() if group else None  # reported, for whoever must clean up

    model = create_model(experiment.model, len(classes))
    if experiment.weights:
        load_weights(model, experiment.weights, head=experiment.transfer is None)
    if on_gpu:
        model = model.to(memory_format=torch.channels_last)
    scaler = torch.amp.GradScaler("cuda", enabled=on_gpu)
    augmenter = Augmenter(experiment.augment).to(device) if experiment.augment.enabled else None
    weights = config["loss_weights"]
    loss_fn = nn.CrossEntropyLoss(
        weight=None if weights is None else torch.tensor(weights, dtype=torch.float32, device=device))

    state = {"epoch": -1, "step": 0, "history": [], "best": None, "restored_from": [],
             "phase": None, "phase_start_step": 0}
    saved = None
    checkpoint = ray.train.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as folder:
            saved = torch.load(Path(folder) / CHECKPOINT_FILE, map_location="cpu", weights_only=False)
        model.load_state_dict(saved["model"])
        scaler.load_state_dict(saved["scaler"])
        state = {key: saved.get(key, state[key]) for key in state}
        state["restored_from"] = state["restored_from"] + [saved["epoch"] + 1]  # epochs done

    local_batch = max(1, experiment.batch_size // world)
    shard = ray.train.get_dataset_shard("train")
    upcoming = None  # the next epoch's batches, already on their way
    val_batches = None  # this worker's share of the validation images, read once
    phases = training_phases(experiment)
    epochs = total_epochs(experiment)
    phase, trained, optimizer = None, model, None
    for epoch in range(state["epoch"] + 1, epochs):
        if phase != phase_of(phases, epoch):
            phase = phase_of(phases, epoch)
            # A new wrapper per phase: DDP synchronises only the parameters trainable when it is built.
            optimizer = _optimizer(set_trainable(model, phase), experiment, phase.lr)
            trained = ray.train.torch.prepare_model(model)
            if saved is not None and saved.get("phase", phase.name) == phase.name:
                optimizer.load_state_dict(saved["optimizer"])  # resuming inside this phase
            else:
                state["phase"], state["phase_start_step"] = phase.name, state["step"]
        phase_steps = phase.epochs * config["steps_per_epoch"]
        upcoming = upcoming or EpochBatches(shard, local_batch, device)
        train_mode(trained, phase)
        # Running sums stay on the device: reading them every step would stall a GPU.
        sums = torch.zeros(2, dtype=torch.float64, device=device)  # loss, correct
        seen = torch.zeros(len(classes), dtype=torch.long, device=device)
        count, start = 0, time.perf_counter()
        last_post = start
        batches, upcoming = upcoming, None
        lr = learning_rate(state["step"] - state["phase_start_step"], phase_steps, phase.lr,
                           experiment.schedule)
        for index, batch in enumerate(batches):
            lr = learning_rate(state["step"] - state["phase_start_step"], phase_steps, phase.lr,
                               experiment.schedule)
            for group in optimizer.param_groups:
                group["lr"] = lr
            x = prepare_images(batch["image"], augmenter, channels_last=on_gpu)
            y = batch["label"].long()
            with torch.autocast(device.type, dtype=torch.float16, enabled=on_gpu):
                logits = trained(x)
                loss = loss_fn(logits, y)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            state["step"] += 1
            sums[0] += loss.detach().double() * len(y)
            sums[1] += (logits.argmax(1) == y).sum()
            seen += torch.bincount(y, minlength=len(classes))
            count += len(y)
            if rank == 0 and time.perf_counter() - last_post > 1.0:
                last_post = time.perf_counter()
                _post_train(board, fold, phase.name, epoch, epochs, index + 1,
                            config["steps_per_epoch"], sums[0].item() / count,
                            count * world / (time.perf_counter() - start))
        train_seconds = time.perf_counter() - start
        if epoch + 1 < epochs:
            upcoming = EpochBatches(shard, local_batch, device)  # starts while this epoch validates
        if rank == 0 and count:
            _post_train(board, fold, phase.name, epoch, epochs, count // local_batch,
                        config["steps_per_epoch"], sums[0].item() / count,
                        count * world / train_seconds)
        totals = _sum_across(sums.tolist() + [count], device)
        seen = _sum_across(seen.tolist(), device)

        if rank == 0:
            board.post.remote(fold, phase="validate", epoch=epoch + 1)
        start = time.perf_counter()
        if val_batches is None:
            val_batches = _my_share(ray.train.get_dataset_shard("val"), rank, world, local_batch)
        val_loss, confusion = _validate(trained, val_batches, len(classes), device)
        val_seconds = time.perf_counter() - start
        scores = confusion_scores(confusion)
        record = {
            "epoch": epoch + 1, "phase": phase.name, "lr": lr,
            "train_loss": totals[0] / max(totals[2], 1), "train_accuracy": totals[1] / max(totals[2], 1),
            "val_loss": val_loss, "val_accuracy": scores["accuracy"],
            "val_balanced_accuracy": scores["balanced_accuracy"], "val_macro_f1": scores["macro_f1"],
            "train_images": int(totals[2]), "images_per_s": totals[2] / max(train_seconds, 1e-9),
            "train_seconds": train_seconds, "data_wait_seconds": batches.waited,
            "val_seconds": val_seconds, "ended_at": time.time(),
            "seen_per_class": {code: int(n) for code, n in zip(classes, seen)},
        }
        state["history"].append(record)
        state["epoch"] = epoch
        best = state["best"]
        if best is None or (record["val_macro_f1"], -record["val_loss"]) > (best["val_macro_f1"], -best["val_loss"]):
            state["best"] = {"epoch": epoch + 1, "val_macro_f1": record["val_macro_f1"],
                             "val_loss": record["val_loss"],
                             "model": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}
        metrics = {"fold": fold, "placement_group": placement_group,
                   **{key: value for key, value in record.items() if key != "seen_per_class"}}
        if rank == 0:
            board.post.remote(fold, phase="epoch done", epoch=epoch + 1, last=metrics)
            with tempfile.TemporaryDirectory() as folder:
                torch.save({
                    **state, "model_name": experiment.model, "classes": classes,
                    "image_size": experiment.image_size, "experiment": config["experiment"],
                    "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scaler": scaler.state_dict(),
                }, Path(folder) / CHECKPOINT_FILE)
                ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder),
                                 checkpoint_dir_name=f"epoch-{epoch + 1:03d}")
        else:
            ray.train.report(metrics)


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


class EpochBatches:
    """One epoch of training batches from this worker's shard of the training dataset.

    The pipeline starts at construction, in a background thread that fetches the first batch:
    Ray Data takes seconds to start an epoch, and this way that start-up overlaps whatever the
    worker does next (validating and checkpointing the previous epoch). `waited` adds up the
    seconds the training loop then spent waiting for batches."""

    def __init__(self, shard, batch_size: int, device: torch.device):
        self._batches = iter(shard.iter_torch_batches(
            batch_size=batch_size, device=device, drop_last=True,
            local_shuffle_buffer_size=max(4 * batch_size, 256)))
        self._first: Future = Future()
        threading.Thread(target=self._fetch_first, daemon=True).start()
        self.waited = 0.0

    def _fetch_first(self) -> None:
        try:
            self._first.set_result(next(self._batches, None))
        except BaseException as error:  # raised in the training loop
            self._first.set_exception(error)

    def __iter__(self):
        asked = time.perf_counter()
        batch = self._first.result()
        while batch is not None:
            self.waited += time.perf_counter() - asked
            yield batch
            asked = time.perf_counter()
            batch = next(self._batches, None)
        self.waited += time.perf_counter() - asked


def _post_train(board, fold: int, phase: str, epoch: int, epochs: int, batch: int, batches: int,
                loss: float, images_per_s: float) -> None:
    board.post.remote(fold, phase=phase, epoch=epoch + 1, epochs=epochs, batch=batch,
                      batches=batches, loss=loss, images_per_s=images_per_s)


def _my_share(shard, rank: int, world: int, batch_size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """This worker's part of the (unsplit) validation set: the rows with row % world == rank,
    as uint8 image and label batches kept in memory for every epoch's validation."""
    batches = []
    for batch in shard.iter_torch_batches(batch_size=batch_size):
        mine = batch["row"] % world == rank
        if mine.any():
            batches.append((batch["image"][mine], batch["label"][mine].long()))
    return batches


def _validate(model: nn.Module, batches, num_classes: int,
              device: torch.device) -> tuple[float, np.ndarray]:
    """Loss and confusion matrix on the validation batches, summed over all workers."""
    model.eval()
    on_gpu = device.type == "cuda"
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.long)
    loss_sum, count = 0.0, 0
    with torch.no_grad():
        for images, labels in batches:
            x = prepare_images(images.to(device), channels_last=on_gpu)
            with torch.autocast(device.type, dtype=torch.float16, enabled=on_gpu):
                logits = model(x)
            loss_sum += nn.functional.cross_entropy(logits.float().cpu(), labels, reduction="sum").item()
            count += len(labels)
            index = labels * num_classes + logits.argmax(1).cpu()
            confusion += torch.bincount(index, minlength=num_classes ** 2).view(num_classes, num_classes)
    summed = _sum_across([loss_sum, count] + confusion.flatten().tolist(), device)
    confusion = np.asarray(summed[2:], dtype=np.int64).reshape(num_classes, num_classes)
    return summed[0] / max(summed[1], 1), confusion


def _sum_across(values: list[float], device: torch.device) -> list[float]:
    """Sum a list of numbers over all workers (a no-op for one worker)."""
    if not dist.is_available() or not dist.is_initialized() or dist.get_world_size() == 1:
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def _optimizer(parameters: list[nn.Parameter], experiment, lr: float) -> torch.optim.Optimizer:
    if experiment.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=lr, momentum=0.9, nesterov=True,
                               weight_decay=experiment.weight_decay)
    return torch.optim.AdamW(parameters, lr=lr, weight_decay=experiment.weight_decay)
