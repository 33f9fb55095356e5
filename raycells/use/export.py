"""`raycells export`: a run's networks as one file a deployment can load (ONNX, TorchScript, or
safetensors weights), with a model card saying what goes in and what comes out (model.json, and
model_card.md for people).

ONNX and TorchScript files hold one graph: float32 RGB images (N, 3, S, S) scaled to 0-1 go in;
the graph normalises them, runs every fold network (over the 8 dihedral views when the run used
test-time augmentation), and returns `probabilities` (N, classes: the mean over the networks) and
`network_probabilities` (N, networks, classes). A safetensors file holds the networks' weights
(keys `fold<k>.<parameter>`) for `raycells.load_model` or code that builds the architecture.
Every export is checked against PyTorch on images of the run before it is kept.
"""

from __future__ import annotations

import datetime as dt
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import __version__
from ..data.cache import load_square
from ..data.manifest import fingerprint
from ..data.sources import source_terms
from ..errors import RaycellsError
from ..files import atomic_path, write_json
from ..metrics import summarize_folds
from ..runs.results import read_metrics
from ..runs.rundir import RunDir
from ..settings import EXPORT_FORMATS
from ..train.inputs import MEAN, STD
from .card import CARD_MARKDOWN, card_markdown
from .networks import EnsembleGraph, RunNetworks

FORMATS = dict(zip(EXPORT_FORMATS, ("model.onnx", "model.pt", "model.safetensors"), strict=True))
"""Each format's file name."""
CARD = "model.json"
TOLERANCE = 1e-4
"""Largest difference of a probability between the exported file and PyTorch that is accepted."""
CHECK_IMAGES = 8


def export_run(run_dir: str | Path, out: str | Path, fmt: str, *, fold: int | None = None,
               tta: bool | None = None) -> list[Path]:
    """Export the networks of `run_dir` (every finished fold's, or fold `fold`'s) in format `fmt`
    (`FORMATS`) into the folder `out`, with the model card; returns the files written. Test-time
    augmentation as the run was configured unless `tta` says otherwise (ONNX and TorchScript)."""
    if fmt not in FORMATS:
        raise RaycellsError(f"--format {fmt}: choose one of {', '.join(FORMATS)}.")
    out = Path(out)
    existing = [out / name for name in (FORMATS[fmt], CARD, CARD_MARKDOWN) if (out / name).exists()]
    if existing:
        raise RaycellsError(f"{existing[0]} exists: delete it or choose another --out, so that an "
                            "earlier export is not replaced.")
    networks = RunNetworks.of(run_dir, fold)
    tta = networks.tta if tta is None else tta
    graph = EnsembleGraph(networks.modules(), tta).eval()
    images = _check_images(networks)
    out.mkdir(parents=True, exist_ok=True)
    target = out / FORMATS[fmt]
    with atomic_path(target) as tmp:
        {"onnx": _onnx, "torchscript": _torchscript, "safetensors": _safetensors}[fmt](
            graph, networks, images, Path(tmp))
    difference = _difference(fmt, target, graph, networks, images)
    if difference > TOLERANCE:
        target.unlink()
        raise RaycellsError(f"{target}: its probabilities differ from PyTorch's by {difference:.2g} "
                            f"(more than {TOLERANCE:g}) on {len(images)} images of the run, so it "
                            "was not kept. Try another --format, and report this with the run's "
                            "model and your torch and onnx versions.")
    card = model_card(networks, fmt, tta=tta,
                      check={"images": len(images), "max_abs_difference": difference})
    write_json(out / CARD, card)
    with atomic_path(out / CARD_MARKDOWN) as tmp:
        tmp.write_text(card_markdown(card))
    return [target, out / CARD, out / CARD_MARKDOWN]


def model_card(networks: RunNetworks, fmt: str, *, tta: bool, check: dict[str, Any]) -> dict[str, Any]:
    """model.json: what the export is, what it expects, how it was made and how well it did."""
    run = RunDir(networks.run_dir)
    config = run.read_config()
    size = networks.image_size
    training = run.training_images(networks.folds)
    per_fold = {k: read_metrics(run.fold(k)) for k in networks.folds}
    summary = summarize_folds(per_fold)
    sources = sorted(training["source"].dropna().unique())
    return {
        "format": fmt,
        "file": FORMATS[fmt],
        "architecture": networks.model_name,
        "folds": networks.folds,
        "combined": "mean of the fold networks' probabilities" if len(networks.folds) > 1
                    else "one fold's network",
        "classes": [{"code": code, "name": networks.names[code]} for code in networks.classes],
        "input": {"name": "image", "shape": ["N", 3, size, size], "dtype": "float32",
                  "values": "RGB, 0-1"},
        "outputs": {"probabilities": ["N", len(networks.classes)],
                    "network_probabilities": ["N", len(networks.folds), len(networks.classes)]},
        "preprocessing": [
            "decode to 8-bit RGB (grey copied to R, G and B; alpha dropped; 16-bit scaled to 8)",
            "crop the central square (its side is the shorter side)",
            f"resize to {size}x{size}, bilinear",
            "divide by 255 (values 0-1), channels first",
            f"in the graph: subtract mean {MEAN.flatten().tolist()}, divide by std "
            f"{STD.flatten().tolist()}",
            *(["in the graph: the mean over the 8 flips and right-angle rotations"] if tta else []),
            "in the graph: softmax, then the mean over the fold networks",
        ],
        "normalisation": {"mean": MEAN.flatten().tolist(), "std": STD.flatten().tolist()},
        "test_time_augmentation": tta,
        "training_data": {
            "images": len(training),
            "manifest_sha1": fingerprint(training["sha1"]),
            "root": config.get("data", {}).get("root"),
            "sources": [{"name": name, **source_terms(name)} for name in sources],
            "warnings": config.get("data", {}).get("warnings", []),
            "range": networks.training_range().to_dict(),
        },
        "metrics": {
            "what": "test folds of the run (each fold's network on images it never saw), mean ± "
                    f"std over {len(per_fold)} fold(s), std with ddof={summary['ddof']}",
            **{key: summary[key] for key in ("accuracy", "balanced_accuracy", "macro_f1")},
            "per_class": summary["per_class"],
        },
        "check": {**check, "tolerance": TOLERANCE,
                  "what": "largest difference of a probability from PyTorch's on images of the run"},
        "run": str(networks.run_dir),
        "versions": {"raycells": __version__, "torch": torch.__version__},
        "exported": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def _check_images(networks: RunNetworks) -> torch.Tensor:
    """Up to CHECK_IMAGES images of the run, prepared as the export expects them."""
    paths = RunDir(networks.run_dir).read_plan()["path"].tolist()
    pictures = []
    for path in paths:
        try:
            pictures.append(load_square(path, networks.image_size))
        except OSError:
            continue  # moved or unreadable here: another image serves
        if len(pictures) == CHECK_IMAGES:
            break
    if not pictures:
        raise RaycellsError(f"{networks.run_dir}: none of the run's images can be read here, and "
                            "the export is checked on them. Run the export where the data is.")
    return torch.from_numpy(np.stack(pictures)).permute(0, 3, 1, 2).float() / 255


def _onnx(graph: nn.Module, networks: RunNetworks, images: torch.Tensor, path: Path) -> None:
    with warnings.catch_warnings():  # one file: ONNX's 2 GB limit holds five ResNeXt-50s
        warnings.simplefilter("ignore")
        torch.onnx.export(graph, (images[:2],), str(path), input_names=["image"],
                          output_names=["probabilities", "network_probabilities"],
                          dynamic_shapes={"image": {0: torch.export.Dim("batch")}},
                          dynamo=True, external_data=False, verbose=False)
    _label_onnx(path, networks)


def _label_onnx(path: Path, networks: RunNetworks) -> None:
    """Write into the ONNX file's metadata what its outputs mean, for tools that see only the
    file (ONNX Runtime's `get_modelmeta().custom_metadata_map`): the class codes in output
    order (JSON), the architecture, the input size, the folds."""
    import onnx

    model = onnx.load(str(path))
    onnx.helper.set_model_props(model, {
        "classes": json.dumps(networks.classes), "architecture": networks.model_name,
        "image_size": str(networks.image_size), "folds": json.dumps(networks.folds),
        "producer": f"raycells {__version__}"})
    with atomic_path(path) as tmp:
        onnx.save(model, str(tmp))


def _torchscript(graph: nn.Module, networks: RunNetworks, images: torch.Tensor, path: Path) -> None:
    with warnings.catch_warnings():  # deprecated upstream in favour of torch.export; still asked for
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.trace(graph, images[:2]), str(path))


def _safetensors(graph: nn.Module, networks: RunNetworks, images: torch.Tensor, path: Path) -> None:
    from safetensors.torch import save_file

    state = {f"fold{k}.{name}": tensor.contiguous()
             for k, network in zip(networks.folds, graph.networks)
             for name, tensor in network.state_dict().items()}
    save_file(state, str(path), metadata={"architecture": networks.model_name,
                                          "classes": ",".join(networks.classes)})


def _difference(fmt: str, path: Path, graph: nn.Module, networks: RunNetworks,
                images: torch.Tensor) -> float:
    """The largest difference of a probability between the file at `path` and `graph`."""
    from .model import load_backend

    with torch.no_grad():
        expected = graph(images)[1].numpy()
    if fmt == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scripted = torch.jit.load(str(path))  # the file this call just wrote
        with torch.no_grad():
            got = scripted(images)[1].numpy()
    else:
        got = load_backend(path, fmt, networks.model_name, networks.classes, networks.folds,
                           graph.tta)(images.numpy())
    return float(np.abs(got - expected).max())
