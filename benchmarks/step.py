"""The training step's ceiling: the training worker's own step (`raycells.train.step.Step`: the
preset's optimizer, augmentation and precision, channels-last, cuDNN's benchmark search) in a
plain loop over images already on the device (random uint8 tensors: the content does not change
the speed), for each batch size, with and without augmentation; on a GPU, also whatever in the step makes
the host wait for the GPU (CUDA's synchronisation check). `raycells cv` with the same
preset and batch (benchmarks/device/path.py) is measured against it, like for like.

    python benchmarks/step.py --preset paper --batches 64,32,128 --out step.json
    python benchmarks/step.py --smoke     # a few steps of a tiny CNN on the CPU

Writes (and prints) one JSON object, rewritten after each configuration so that a run stopped
by its time limit keeps what it measured: images/s and peak GPU memory per configuration.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import warnings
from pathlib import Path

import torch

from raycells.settings import AugmentSettings, Experiment, build_settings
from raycells.train.augment import Augmenter
from raycells.train.loop import set_determinism
from raycells.train.models import create_model
from raycells.train.optim import make_optimizer
from raycells.train.precision import choose_precision
from raycells.train.step import Step


def measure(experiment: Experiment, batch: int, augment: bool, steps: int, warmup: int,
            device: torch.device) -> dict:
    """Images/s of `steps` training steps after `warmup` ones, and the peak memory."""
    torch.manual_seed(0)
    on_gpu = device.type == "cuda"
    model = create_model(experiment.model, 15).to(
        device, memory_format=torch.channels_last if on_gpu else torch.preserve_format)
    if on_gpu:
        torch.cuda.reset_peak_memory_stats(device)
    precision = choose_precision(experiment.precision, device)
    settings = experiment.augment if augment else AugmentSettings.off()
    step = Step(model=model, optimizer=make_optimizer(list(model.parameters()), experiment, experiment.lr),
                scaler=torch.amp.GradScaler("cuda", enabled=precision == "fp16"),
                loss_fn=torch.nn.CrossEntropyLoss(),
                augmenter=Augmenter(settings).to(device) if settings.enabled else None,
                precision=precision, device=device)
    size = experiment.image_size
    images = torch.randint(0, 256, (batch * 4, size, size, 3), dtype=torch.uint8, device=device)
    labels = torch.randint(0, 15, (batch * 4,), device=device)
    sums = torch.zeros(2, dtype=torch.float64, device=device)
    seen = torch.zeros(15, dtype=torch.long, device=device)
    model.train()
    for index in range(warmup + steps):
        if index == warmup:
            if on_gpu:
                torch.cuda.synchronize()
            start = time.perf_counter()
        part = slice((index % 4) * batch, (index % 4 + 1) * batch)
        step({"image": images[part], "label": labels[part]}, experiment.lr, sums, seen)
    if on_gpu:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return {"model": experiment.model, "size": size, "batch": batch, "precision": precision,
            "optimizer": experiment.optimizer, "augment": augment,
            "images_per_s": round(steps * batch / seconds, 1),
            "peak_memory_gib": round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
            if on_gpu else None,
            "host_waits": host_waits(step, images[:batch], labels[:batch], sums, seen)
            if on_gpu else None}


def host_waits(step: Step, images: torch.Tensor, labels: torch.Tensor, sums: torch.Tensor,
               seen: torch.Tensor) -> list[str]:
    """The distinct warnings of CUDA's synchronisation check over three steps, with the line
    that raised each: an operation that made the host wait for the GPU (none expected)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            for _ in range(3):
                step({"image": images, "label": labels}, 0.01, sums, seen)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sorted({f"{w.filename}:{w.lineno}: {str(w.message).splitlines()[0]}" for w in caught})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="paper", help="optimizer, augmentation, precision, model, size")
    parser.add_argument("--model", help="instead of the preset's")
    parser.add_argument("--size", type=int, help="instead of the preset's image size")
    parser.add_argument("--batches", default="64,32,128", help="measured in this order")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    parser.add_argument("--smoke", action="store_true", help="tiny CNN, 32 px, batch 8, 3 steps")
    args = parser.parse_args()
    if args.smoke:
        args.model, args.size, args.batches, args.steps, args.warmup = "tiny_cnn", 32, "8", 3, 1
    experiment, _ = build_settings(preset=args.preset, flags={
        "data": "benchmark", "model": args.model, "image_size": args.size})
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    set_determinism(experiment.deterministic)  # as the training worker: cuDNN's benchmark search
    result = {"command": "benchmarks/step.py", "preset": args.preset,
              "device": torch.cuda.get_device_name() if device.type == "cuda"
              else f"cpu ({platform.machine()})", "torch": torch.__version__, "results": []}
    for batch in (int(b) for b in args.batches.split(",")):
        for augment in (True, False):
            result["results"].append(measure(experiment, batch, augment, args.steps,
                                             args.warmup, device))
            if args.out:
                args.out.write_text(json.dumps(result) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
