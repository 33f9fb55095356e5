"""One optimisation step of a training worker, the same in the training loop, the step benchmark
(benchmarks/step.py) and the check that a step never waits for the GPU (tests/test_gpu_path.py)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .augment import Augmenter
from .inputs import prepare_images
from .precision import autocast


@dataclass
class Step:
    """What a step uses: the network as this phase trains it (wrapped for data parallelism),
    its optimizer and loss scaler, the loss (class weights on the device), the augmentation
    (None: off) and the precision (`raycells.train.precision`), on `device`."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    loss_fn: nn.Module
    augmenter: Augmenter | None
    precision: str
    device: torch.device

    def __call__(self, batch: dict[str, torch.Tensor], lr: float, sums: torch.Tensor,
                 seen: torch.Tensor) -> int:
        """Train on `batch` (uint8 images, labels, on the device) at learning rate `lr`, adding
        its summed loss and correct predictions to `sums` and its labels to `seen` (both on the
        device: nothing here reads a value back, so a GPU never waits for the host); returns
        the batch's size."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        x = prepare_images(batch["image"], self.augmenter, channels_last=self.device.type == "cuda")
        y = batch["label"].long()
        with autocast(self.precision, self.device):
            logits = self.model(x)
            loss = self.loss_fn(logits, y)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        sums[0] += loss.detach().double() * len(y)
        sums[1] += (logits.argmax(1) == y).sum()
        seen.index_add_(0, y, torch.ones_like(y))  # bincount would wait for the GPU
        return len(y)
