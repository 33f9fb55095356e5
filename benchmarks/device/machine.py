"""What the GPU kit runs on: Python, torch, CUDA, the GPU, CPU cores, and whether each package
raycells trains with imports (and its version). Writes one JSON object to the file named.

    python benchmarks/device/machine.py machine.json
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import sys
from pathlib import Path

PACKAGES = ("torch", "torchvision", "ray", "ray.data", "ray.train", "ray.tune", "kornia",
            "pyarrow", "pandas", "sklearn", "typer", "rich", "safetensors", "mlflow",
            "raycells.cli.main")


def packages() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            module = importlib.import_module(name)
            found[name] = getattr(module, "__version__", "imported")
        except Exception as error:  # any failure to import is what this reports
            found[name] = f"MISSING: {type(error).__name__}: {error}"
    return found


def main() -> None:
    import torch

    cuda = torch.cuda.is_available()
    result = {
        "python": sys.version.split()[0], "platform": platform.platform(),
        "cpus": os.cpu_count(), "torch": torch.__version__, "cuda": torch.version.cuda,
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else [],
        "gpu_memory_gib": round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1) if cuda else None,
        "bf16": torch.cuda.is_bf16_supported() if cuda else None,
        "packages": packages(),
    }
    Path(sys.argv[1]).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
