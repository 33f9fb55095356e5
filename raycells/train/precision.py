"""The arithmetic a network runs in: bf16 autocast where the GPU has it (no loss scaling, so no
host synchronisation in the step), fp16 with loss scaling on older GPUs, fp32 on CPUs."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch

from ..errors import RaycellsError

AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}


def choose_precision(setting: str, device: torch.device) -> str:
    """The precision `setting` (auto, bf16, fp16, fp32) means on `device`."""
    if device.type != "cuda":
        return "fp32"
    has_bf16 = torch.cuda.is_bf16_supported()
    if setting == "auto":
        return "bf16" if has_bf16 else "fp16"
    if setting == "bf16" and not has_bf16:
        raise RaycellsError(f"--precision bf16, but {torch.cuda.get_device_name(device)} has no "
                            "bf16: use --precision auto (fp16 with loss scaling there).")
    return setting


def autocast(precision: str, device: torch.device) -> AbstractContextManager:
    """The autocast context of `precision` (none for fp32, on any device)."""
    if precision not in AUTOCAST:
        return nullcontext()
    return torch.autocast(device.type, dtype=AUTOCAST[precision])
