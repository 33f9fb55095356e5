"""The training step's ceiling: a plain PyTorch loop on images already on the device (random
uint8 tensors: the content does not change the speed), with the training worker's own pieces
(`raycells.train.inputs.prepare_images`, `raycells.train.augment.Augmenter`,
`raycells.train.precision`, channels-last, cuDNN's benchmark search), for each precision, batch
size and with or without Kornia augmentation.

    .venv/bin/python benchmarks/step.py --model resnext50 --size 400 --batches 32,64,128
    .venv/bin/python benchmarks/step.py --smoke     # a few steps of a tiny CNN on the CPU

Prints one JSON line: images/s and peak GPU memory per configuration.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from raycells.settings import AugmentSettings
from raycells.train.augment import Augmenter
from raycells.train.inputs import prepare_images
from raycells.train.models import create_model
from raycells.train.precision import autocast, choose_precision


def measure(model_name: str, size: int, batch: int, precision: str, augment: bool,
            steps: int, warmup: int, device: torch.device) -> dict:
    """Images/s of `steps` training steps after `warmup` ones, and the peak memory."""
    torch.manual_seed(0)
    model = create_model(model_name, 15).to(device)
    on_gpu = device.type == "cuda"
    if on_gpu:
        model = model.to(memory_format=torch.channels_last)
        torch.cuda.reset_peak_memory_stats(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    scaler = torch.amp.GradScaler("cuda", enabled=precision == "fp16")
    augmenter = Augmenter(AugmentSettings()).to(device) if augment else None
    images = torch.randint(0, 256, (batch * 4, size, size, 3), dtype=torch.uint8, device=device)
    labels = torch.randint(0, 15, (batch * 4,), device=device)
    loss_fn = torch.nn.CrossEntropyLoss()
    model.train()
    for step in range(warmup + steps):
        if step == warmup:
            if on_gpu:
                torch.cuda.synchronize()
            start = time.perf_counter()
        part = slice((step % 4) * batch, (step % 4 + 1) * batch)
        x = prepare_images(images[part], augmenter, channels_last=on_gpu)
        with autocast(precision, device):
            loss = loss_fn(model(x), labels[part])
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    if on_gpu:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return {"model": model_name, "size": size, "batch": batch, "precision": precision,
            "augment": augment, "images_per_s": round(steps * batch / seconds, 1),
            "peak_memory_gib": round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
            if on_gpu else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnext50")
    parser.add_argument("--size", type=int, default=400)
    parser.add_argument("--batches", default="32,64,128")
    parser.add_argument("--precisions", default="fp16,bf16", help="on a GPU; a CPU runs fp32")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--smoke", action="store_true", help="tiny CNN, 32 px, 3 steps")
    args = parser.parse_args()
    if args.smoke:
        args.model, args.size, args.batches, args.steps, args.warmup = "tiny_cnn", 32, "8", 3, 1
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cudnn.benchmark = True  # as the training worker (raycells.train.loop)
    precisions = sorted({choose_precision(p, device) for p in args.precisions.split(",")})
    results = []
    for precision in precisions:
        for batch in (int(b) for b in args.batches.split(",")):
            for augment in (True, False):
                results.append(measure(args.model, args.size, batch, precision, augment,
                                       args.steps, args.warmup, device))
    print(json.dumps({
        "command": "benchmarks/step.py", "device": torch.cuda.get_device_name()
        if device.type == "cuda" else f"cpu ({platform.machine()})",
        "torch": torch.__version__, "results": results}))


if __name__ == "__main__":
    main()
