"""The GPU-only parts of training, checked on the CPU: the device each batch is asked for, what is
pinned, the shapes cuDNN sees, refusing GPUs that would be left unused, and a training step and a
validation pass that never make the host wait for the device.

The waits are found on PyTorch's "meta" device (tensors with shapes and no data) under a
dispatch mode that records every operation that would synchronise a GPU with the host: reading
a value (`.item()`, `bool()`, `.tolist()`), a boolean-mask index (`nonzero`), a copy from the
device to the host, and a copy from the host to the device that blocks (PyTorch follows a
blocking host-to-device copy with a stream synchronisation)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from raycells.errors import RaycellsError
from raycells.settings import AugmentSettings, Placement
from raycells.train.augment import Augmenter
from raycells.train.feed import PADDING, fixed_batches, validation_share
from raycells.train.inputs import prepare_images
from raycells.train.loop import check_device, validation_sums
from raycells.train.models import create_model
from raycells.train.step import Step
from raycells.train.trainer import check_gpus_seen

META = torch.device("meta")


class HostWaits(TorchDispatchMode):
    """Records the operations that would make the host wait for a GPU (see the module's text)."""

    def __init__(self):
        super().__init__()
        self.waits: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = func.__name__.split(".")[0]
        if name.startswith(("_local_scalar_dense", "nonzero")) and args[0].device.type != "cpu":
            self.waits.append(f"{name} reads a device tensor")
        elif func is torch.ops.aten._to_copy.default and "device" in kwargs:
            self._copy(args[0].device, torch.device(kwargs["device"]), kwargs.get("non_blocking"),
                       args[0].shape)
        elif func is torch.ops.aten.copy_.default:
            self._copy(args[1].device, args[0].device, args[2] if len(args) > 2 else False,
                       args[1].shape)
        return func(*args, **kwargs)

    def _copy(self, source: torch.device, target: torch.device, non_blocking, shape) -> None:
        if source.type == target.type:
            return
        if target.type == "cpu":
            self.waits.append(f"copy {tuple(shape)} from the device to the host")
        elif not non_blocking:
            self.waits.append(f"blocking copy {tuple(shape)} from the host to the device")


def _step(classes: int = 5) -> Step:
    """A worker's training step on the meta device, as `FoldTraining` builds it."""
    model = create_model("tiny_cnn", classes).to(META, memory_format=torch.channels_last)
    return Step(model=model, optimizer=torch.optim.AdamW(model.parameters(), lr=1e-3),
                scaler=torch.amp.GradScaler("cuda", enabled=False),
                loss_fn=torch.nn.CrossEntropyLoss(weight=torch.ones(classes, device=META)),
                augmenter=Augmenter(AugmentSettings(noise=0.5, brightness=0.5, contrast=0.5)).to(META),
                precision="fp32", device=META)


def test_a_training_step_never_waits_for_the_device():
    step = _step()
    batch = {"image": torch.empty((8, 32, 32, 3), dtype=torch.uint8, device=META),
             "label": torch.empty(8, dtype=torch.long, device=META)}
    sums = torch.zeros(2, dtype=torch.float64, device=META)
    seen = torch.zeros(5, dtype=torch.long, device=META)
    step(batch, 1e-3, sums, seen)  # the first step makes the constants once
    with HostWaits() as probe:
        for _ in range(2):
            assert step(batch, 1e-3, sums, seen) == 8
    assert probe.waits == []


def test_the_probe_sees_a_wait():
    """The check above can fail: the normalisation copied to the device on every batch (as it
    was) and a loss read on the host are both found."""
    x = torch.empty((2, 3, 8, 8), device=META)
    with HostWaits() as probe:
        _ = x - torch.tensor([0.5, 0.5, 0.5]).view(1, 3, 1, 1).to(x.device)
        with pytest.raises(RuntimeError):  # a meta tensor has no value to read
            x.sum().item()
    assert probe.waits == ["blocking copy (1, 3, 1, 1) from the host to the device",
                           "_local_scalar_dense reads a device tensor"]


def test_augmentation_draws_on_the_device():
    augmenter = Augmenter(AugmentSettings(flip=0.5, rotate=1.0, noise=1.0, brightness=1.0,
                                          contrast=1.0)).to(META)
    x = torch.empty((4, 3, 16, 16), device=META)
    with HostWaits() as probe:
        augmenter(x)
    assert probe.waits == []
    assert augmenter.last_angles().device == META


def test_validation_reads_nothing_back_until_the_end():
    model = _step().model
    batches = fixed_batches(torch.zeros((10, 32, 32, 3), dtype=torch.uint8),
                            torch.zeros(10, dtype=torch.long), 4, pin=False)
    validation_sums(model, batches, 5, META, "fp32")  # the first pass makes the constants once
    with HostWaits() as probe:
        validation_sums(model, batches, 5, META, "fp32")
    # Unpinned host batches here (this machine has no GPU to pin for); moved without blocking.
    assert probe.waits == []


def test_validation_batches_are_asked_for_on_the_cpu():
    """In a Ray Train worker on a GPU, Ray's default device for a batch is the GPU, and a GPU
    tensor cannot be pinned: the first GPU run crashed there."""

    class Shard:  # a Ray DataIterator's one method that validation_share uses
        def __init__(self):
            self.asked = []

        def iter_torch_batches(self, **kwargs):
            self.asked.append(kwargs)
            rows = torch.arange(6)
            yield {"row": rows, "image": torch.zeros((6, 4, 4, 3), dtype=torch.uint8),
                   "label": rows % 2}

    shard = Shard()
    batches = validation_share(shard, rank=1, world=2, batch_size=2, device=torch.device("cpu"))
    assert [asked["device"] for asked in shard.asked] == ["cpu"]
    assert [labels.tolist() for _images, labels in batches] == [[1, 1], [1, PADDING]]


def test_validation_batches_have_one_shape_and_padding_is_never_scored():
    images = torch.randint(0, 256, (7, 32, 32, 3), dtype=torch.uint8)
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0])
    batches = fixed_batches(images, labels, 3, pin=False)
    assert {tuple(x.shape) for x, _ in batches} == {(3, 32, 32, 3)}
    assert [y.tolist() for _, y in batches][-1] == [0, PADDING, PADDING]
    assert not batches[0][0].is_pinned()

    torch.manual_seed(0)
    model = create_model("tiny_cnn", 3).eval()
    loss_sum, confusion = validation_sums(model, batches, 3, torch.device("cpu"), "fp32")
    with torch.no_grad():
        logits = model(prepare_images(images))
    expected = np.zeros((3, 3), dtype=np.int64)
    np.add.at(expected, (labels.numpy(), logits.argmax(1).numpy()), 1)
    assert confusion.view(3, 3).numpy().tolist() == expected.tolist()
    assert loss_sum.item() == pytest.approx(
        torch.nn.functional.cross_entropy(logits, labels, reduction="sum").item(), rel=1e-5)


def test_device_batches_are_not_kept_as_host_batches():
    with pytest.raises(ValueError, match="host memory"):
        fixed_batches(torch.zeros((2, 4, 4, 3), device=META), torch.zeros(2, device=META), 2,
                      pin=False)


def test_gpus_that_ray_does_not_offer_are_not_left_idle_silently():
    with pytest.raises(RaycellsError, match=r"sees 2 GPUs here but Ray offers none.*--gpus-per-worker 0"):
        check_gpus_seen(Placement(), ray_gpus=0, cuda_gpus=2)
    check_gpus_seen(Placement(gpus_per_worker=0), ray_gpus=0, cuda_gpus=2)  # CPUs, as asked
    check_gpus_seen(Placement(), ray_gpus=2, cuda_gpus=2)
    check_gpus_seen(Placement(), ray_gpus=0, cuda_gpus=0)


def test_a_worker_given_a_gpu_that_torch_cannot_use_refuses():
    with pytest.raises(RaycellsError, match=r"GPU 0 .* cannot use it"):
        check_device(torch.device("cpu"), [0])
    check_device(torch.device("cpu"), [])
