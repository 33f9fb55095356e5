"""`raycells cv`: stratified k-fold cross-validation on Ray, with a live display and a final table
of mean ± std over folds."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.table import Table

from ..runs.cv import CvResult, run_cv
from ..errors import RaycellsError
from ..data.schemes import scheme_for
from ..settings import build_settings
from .common import LiveDisplay, console, dataset_path, load_dataset, reported_errors


def cv(
    data: Annotated[Optional[Path], typer.Option(help="Dataset folder, CSV or manifest. Default: the built-in SYNTHETIC demo dataset.", show_default=False)] = None,
    folds: Annotated[Optional[int], typer.Option(help="Number of stratified folds (default: 5).", show_default=False)] = None,
    folds_from: Annotated[Optional[Path], typer.Option(help="Use the fold plan of this run directory (same images), so that `raycells report` pairs the two runs fold by fold.", show_default=False)] = None,
    model: Annotated[Optional[str], typer.Option(help="resnext50 (the paper's), efficientnet_b0, densenet121, convnext_tiny, resnet18 (cpu preset) or tiny_cnn.", show_default=False)] = None,
    image_size: Annotated[Optional[int], typer.Option(help="Input size in pixels (cpu preset: 64; paper: 400).", show_default=False)] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Epochs per fold (cpu preset: 18).", show_default=False)] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Images per step over all workers (cpu preset: 64).", show_default=False)] = None,
    lr: Annotated[Optional[float], typer.Option(help="Peak learning rate (cpu preset: 0.002).", show_default=False)] = None,
    weight_decay: Annotated[Optional[float], typer.Option(help="Weight decay (cpu preset: 0.05).", show_default=False)] = None,
    optimizer: Annotated[Optional[str], typer.Option(help="adamw or sgd (cpu preset: adamw).", show_default=False)] = None,
    schedule: Annotated[Optional[str], typer.Option(help="onecycle, cosine or constant (cpu preset: onecycle).", show_default=False)] = None,
    augment: Annotated[Optional[str], typer.Option(help='"off", or settings such as "rotate=1,flip=0.5,noise=0.3,noise_std=0.03,brightness=0.5,contrast=0.5".', show_default=False)] = None,
    labels: Annotated[Optional[str], typer.Option(help="Train on each image's class (default) or on its fine label: fine (PBC: the 13 file-name prefixes).", show_default=False)] = None,
    extra_data: Annotated[Optional[Path], typer.Option(help="Another dataset whose images join every fold's training part (never test or validation).", show_default=False)] = None,
    extra_map: Annotated[Optional[str], typer.Option(help="How --extra-data labels map onto the classes: pbc-to-aml, or a .json/.csv (from,to) file.", show_default=False)] = None,
    sampling: Annotated[Optional[str], typer.Option(help='Per-epoch class balancing: none (default), oversample, sqrt or class-weighted, with parameters for oversample: "oversample,target=10000,cap=20" (target default: the largest class).', show_default=False)] = None,
    tta: Annotated[Optional[bool], typer.Option("--tta/--no-tta", help="Average test predictions over the 8 flips and right-angle rotations (default: on; paper preset: off).", show_default=False)] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed for folds, weights, sampling and augmentation (default: 0).", show_default=False)] = None,
    weights: Annotated[Optional[Path], typer.Option(help="Initial weights (state dict or raycells checkpoint).", show_default=False)] = None,
    drop_small_classes: Annotated[bool, typer.Option("--drop-small-classes", help="Leave out classes with fewer images than folds.")] = False,
    preset: Annotated[Optional[str], typer.Option(help="cpu (ResNet-18 at 64x64; the default with --data), demo (tiny CNN; the default without --data) or paper (ResNeXt-50 at 400x400, for GPUs).", show_default=False)] = None,
    config: Annotated[Optional[Path], typer.Option(help="Settings file (.json, .toml, .yaml) with any of these options.", show_default=False)] = None,
    workers: Annotated[Optional[int], typer.Option(help="Training workers per fold (default: sized from the cluster).", show_default=False)] = None,
    gpus_per_worker: Annotated[Optional[float], typer.Option(help="GPUs per worker (default: 1 when the cluster has GPUs).", show_default=False)] = None,
    cpus_per_worker: Annotated[Optional[float], typer.Option(help="CPUs per worker (default: what is left after Ray Data).", show_default=False)] = None,
    address: Annotated[Optional[str], typer.Option(help='Ray cluster to join ("auto" on a cluster node) (default: start one here).', show_default=False)] = None,
    out: Annotated[Optional[Path], typer.Option(help="Run directory (default: runs/cv-<time>).", show_default=False)] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out: finished folds are kept, the others go on from their last checkpoint.")] = False,
) -> None:
    """Cross-validate a classifier: stratified k folds, trained on Ray, evaluated like the paper."""
    flags = {"data": str(data) if data else None, "folds": folds, "model": model,
             "folds_from": str(folds_from) if folds_from else None,
             "image_size": image_size, "epochs": epochs, "batch_size": batch_size, "lr": lr,
             "weight_decay": weight_decay, "optimizer": optimizer, "schedule": schedule,
             "seed": seed, "labels": labels, "tta": tta,
             "extra_data": str(extra_data) if extra_data else None, "extra_map": extra_map,
             "weights": str(weights) if weights else None,
             "drop_small_classes": drop_small_classes or None, "workers": workers,
             "gpus_per_worker": gpus_per_worker, "cpus_per_worker": cpus_per_worker,
             "address": address}
    with reported_errors():
        flags["augment"] = parse_augment(augment)
        flags["sampling"] = parse_sampling(sampling)
        out = run_directory(out, resume, "cv")
        experiment, placement, manifest = run_settings(flags, preset=preset, config=config,
                                                       out=out, resume=resume)
        display = FoldsDisplay()
        result = display.run(
            lambda: run_cv(out, experiment, placement, manifest=manifest, resume=resume,
                           events=display.event),
            Path(out), "Finished folds and checkpoints are kept: continue with "
                       f"`raycells cv --resume --out {out}`.")
    final_table(result)


def run_directory(out: Path | None, resume: bool, command: str) -> Path:
    """--out, or a new runs/<command>-<time> folder; --resume needs --out."""
    if resume and out is None:
        raise RaycellsError("--resume needs --out: the run directory to continue.")
    return out or Path("runs") / f"{command}-{dt.datetime.now():%Y%m%d-%H%M%S}"


def run_settings(flags: dict[str, Any], *, preset: str | None, config: Path | None, out: Path,
                 resume: bool) -> tuple[Any, Any, Any]:
    """(experiment, placement, manifest) for a new run (the dataset read) or for --resume (the
    run's own config.json under the flags; the manifest is the run's)."""
    if resume:
        base = out / "config.json"
        if not base.is_file():
            raise RaycellsError(f"{out}: nothing to resume (no config.json). Start the run without --resume.")
        experiment, placement = build_settings(preset=preset, config_file=config or base, flags=flags)
        return experiment, placement, None
    experiment, placement = build_settings(preset=preset, config_file=config, flags=flags)
    path = dataset_path(Path(experiment.data) if experiment.data else None)
    experiment = dataclasses.replace(experiment, data=str(path))
    return experiment, placement, load_dataset(path)


def parse_augment(text: str | None) -> Any:
    if text is None or text == "on":
        return None
    if text == "off":
        return "off"
    values = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep:
            raise RaycellsError(f'--augment {text!r}: expected "off" or key=value pairs such as '
                                '"rotate=1,noise=0.3".')
        try:
            values[key.strip()] = float(value)
        except ValueError:
            raise RaycellsError(f"--augment: {key.strip()} needs a number, not {value!r}.") from None
    return values


def parse_sampling(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    policy, *parameters = [part.strip() for part in text.split(",")]
    values: dict[str, Any] = {"policy": policy}
    for part in parameters:
        key, sep, value = part.partition("=")
        if not sep or key not in ("target", "cap"):
            raise RaycellsError(f'--sampling {text!r}: expected a policy, then target= or cap=, '
                                'such as "oversample,target=10000,cap=20".')
        try:
            values[key] = int(value) if key == "target" else float(value)
        except ValueError:
            raise RaycellsError(f"--sampling: {key} needs a number, not {value!r}.") from None
    return values


class FoldsDisplay(LiveDisplay):
    """Turns run_cv's events into a live table (fold, phase, epoch, batches, loss, images/s)."""


    def __init__(self) -> None:
        super().__init__()
        self._folds: dict[int, dict[str, Any]] = {}

    def _on_fold_skipped(self, fold) -> None:
        self._folds[fold] = {"phase": "finished earlier"}

    def _on_fold_started(self, fold) -> None:
        self._folds.setdefault(fold, {})["phase"] = "starting"

    def _on_status(self, folds) -> None:
        for fold, state in folds.items():
            if self._folds.get(fold, {}).get("phase") not in ("done", "finished earlier"):
                self._folds.setdefault(fold, {}).update(state)

    def _on_fold_finished(self, fold, metrics) -> None:
        self._folds[fold].update(phase="done", result=metrics)

    def _table(self) -> Table:
        table = Table(title="Folds", title_justify="left")
        for header in ("fold", "phase", "epoch", "batch", "loss", "images/s", "val macro F1", "test accuracy"):
            table.add_column(header, justify="left" if header == "phase" else "right")
        for fold in sorted(self._folds):
            s = self._folds[fold]
            last = s.get("last", {})
            result = s.get("result", {})
            table.add_row(
                str(fold), s.get("phase", ""),
                f"{s['epoch']}/{s['epochs']}" if "epochs" in s else "",
                f"{s['batch']}/{s['batches']}" if "batches" in s else "",
                f"{s['loss']:.3f}" if "loss" in s else "",
                f"{s['images_per_s']:.0f}" if "images_per_s" in s else "",
                f"{last['val_macro_f1']:.3f}" if "val_macro_f1" in last else "",
                f"{result['accuracy']:.3f}" if "accuracy" in result else "",
            )
        return table


def final_table(result: CvResult) -> None:
    summary = result.summary
    console.print()
    folds = Table(title=f"Test folds ({result.run_dir})", title_justify="left")
    for header in ("fold", "images", "best epoch", "accuracy", "balanced accuracy", "macro F1"):
        folds.add_column(header, justify="right")
    for k, m in sorted(result.per_fold.items()):
        folds.add_row(str(k), str(m["images"]), str(m["best_epoch"]), f"{m['accuracy']:.3f}",
                      f"{m['balanced_accuracy']:.3f}", f"{m['macro_f1']:.3f}")
    folds.add_row("mean ± std", "", "", *(_pm(summary[key]) for key in
                                          ("accuracy", "balanced_accuracy", "macro_f1")), style="bold")
    console.print(folds)

    scheme = scheme_for(result.classes)
    order = [c for c in scheme.table_order if c in result.classes] if scheme else result.classes
    per_class = Table(title=f"Per class, mean ± std over {len(result.per_fold)} folds (std with ddof={summary['ddof']})",
                      title_justify="left")
    for header in ("class", "precision", "sensitivity", "F1", "images"):
        per_class.add_column(header, justify="left" if header == "class" else "right")
    for code in order:
        row = summary["per_class"][code]
        per_class.add_row(code, _pm(row["precision"]), _pm(row["sensitivity"]), _pm(row["f1"]),
                          f"{row['support']:,}")
    console.print(per_class)


def _pm(pair: tuple[float, float]) -> str:
    return f"{pair[0]:.3f} ± {pair[1]:.3f}"
