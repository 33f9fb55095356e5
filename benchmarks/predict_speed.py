"""Images per second of `raycells predict` (Ray Data batch inference) for the cpu and paper presets.

    .venv/bin/python benchmarks/predict_speed.py --data ../shared/data/pbc --images 256

For each preset: a 2-fold, 1-epoch run of the preset's network at its image size on a few
images per class (the weights do not change the speed), then fold 0's network predicts
`--images` other images of the dataset, as `raycells predict --fold 0` does. Prints one JSON line
per preset: the device, the seconds decoding images into the cache, the seconds of inference
(first network started to last batch back) and images/s over the inference. On a machine with a
GPU the networks run there (one Ray Data actor per GPU). Writes benchmarks/results/predict_speed.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import ray
import torch

from raycells.data.index import index_dataset
from raycells.data.manifest import Manifest, write_manifest
from raycells.runs.cv import run_cv
from raycells.settings import build_settings
from raycells.use.predict import predict_images

RESULTS = Path(__file__).parent / "results" / "predict_speed.json"


def measure(preset: str, dataset: Manifest, images: int, workdir: Path) -> dict:
    frame = dataset.frame
    training = frame.groupby("label").head(4)
    small = Manifest(frame=training.reset_index(drop=True), root=dataset.root,
                     layout=dataset.layout, source=dataset.source)
    path = write_manifest(small, workdir / f"{preset}.parquet")
    experiment, placement = build_settings(preset=preset, flags={
        "data": str(path), "folds": 2, "epochs": 1, "sampling": {"policy": "none"}})
    run_cv(workdir / preset, experiment, placement, manifest=small)
    unseen = frame.drop(training.index).sample(n=images, random_state=0).reset_index(drop=True)
    marks: dict[str, float] = {}

    def event(kind: str, **info) -> None:
        marks.setdefault(kind, time.perf_counter())
        marks[f"last_{kind}"] = time.perf_counter()

    started = time.perf_counter()
    result = predict_images(workdir / preset, Manifest(frame=unseen, root=dataset.root,
                                                        layout="images", source="images"),
                            fold=0, events=event)
    seconds = marks["last_images"] - marks["model"]
    return {"preset": preset, "model": experiment.model, "image_size": experiment.image_size,
            "tta": experiment.tta, "images": len(result.table), "networks": 1,
            "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU",
            "cpus": ray.cluster_resources().get("CPU"),
            "cache_seconds": round(marks.get("model", started) - started, 1),
            "inference_seconds": round(seconds, 1),
            "images_per_s": round(len(result.table) / seconds, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/pbc")
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--presets", nargs="+", default=["cpu", "paper"])
    args = parser.parse_args()
    dataset = index_dataset(args.data)
    lines = []
    with tempfile.TemporaryDirectory() as workdir:
        for preset in args.presets:
            lines.append(measure(preset, dataset, args.images, Path(workdir)))
            print(json.dumps(lines[-1]), flush=True)
    RESULTS.write_text(json.dumps({"command": "benchmarks/predict_speed.py", "args": vars(args),
                                   "results": lines}, indent=1) + "\n")


if __name__ == "__main__":
    main()
