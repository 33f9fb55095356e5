"""`raycells transfer`: a trained network adapted to a new dataset (new head with the body frozen,
then fine-tuning all but the batch-norm layers), cross-validated like `raycells cv`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import RaycellsError
from ..runs.transfer import find_source, run_transfer, source_settings
from .common import reported_errors, status
from .cv import FoldsDisplay, final_table, parse_augment, parse_sampling, run_directory, run_settings


def transfer(
    from_: Annotated[Optional[Path], typer.Option("--from", help="The trained network: a run directory (the network of its best fold, or of --fold) or a weights file (with --model).", show_default=False)] = None,
    fold: Annotated[Optional[int], typer.Option(help="The source run's fold to take the network from (default: --best).", show_default=False)] = None,
    best: Annotated[bool, typer.Option("--best", help="Take the fold whose best epoch scored the highest inner-validation macro F1 (the default).")] = False,
    model: Annotated[Optional[str], typer.Option(help="Architecture of a --from weights file (see raycells cv).", show_default=False)] = None,
    data: Annotated[Optional[Path], typer.Option(help="Target dataset folder, CSV or manifest. Default: the built-in SYNTHETIC demo dataset.", show_default=False)] = None,
    folds: Annotated[Optional[int], typer.Option(help="Number of stratified folds (default: 5).", show_default=False)] = None,
    folds_from: Annotated[Optional[Path], typer.Option(help="Use the fold plan of this run directory (same images), to compare with it fold by fold.", show_default=False)] = None,
    head_epochs: Annotated[Optional[int], typer.Option(help="Phase 1, new head only with the body frozen: epochs (default: 10).", show_default=False)] = None,
    head_lr: Annotated[Optional[float], typer.Option(help="Phase 1: peak learning rate (default: 0.01).", show_default=False)] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Phase 2, everything but batch-norm layers: epochs (default: 10; 0 trains the head only).", show_default=False)] = None,
    lr: Annotated[Optional[float], typer.Option(help="Phase 2: peak learning rate (default: 1e-5).", show_default=False)] = None,
    image_size: Annotated[Optional[int], typer.Option(help="Input size in pixels (default: the source network's).", show_default=False)] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Images per step over all workers (default: 64).", show_default=False)] = None,
    weight_decay: Annotated[Optional[float], typer.Option(help="Weight decay (default: 0.05).", show_default=False)] = None,
    optimizer: Annotated[Optional[str], typer.Option(help="adamw (default) or sgd.", show_default=False)] = None,
    schedule: Annotated[Optional[str], typer.Option(help="onecycle (default), cosine or constant; it starts again in each phase.", show_default=False)] = None,
    augment: Annotated[Optional[str], typer.Option(help='"off", or settings as in raycells cv.', show_default=False)] = None,
    sampling: Annotated[Optional[str], typer.Option(help="Per-epoch class balancing, as in raycells cv.", show_default=False)] = None,
    labels: Annotated[Optional[str], typer.Option(help="class (default) or fine.", show_default=False)] = None,
    tta: Annotated[Optional[bool], typer.Option("--tta/--no-tta", help="Average test predictions over the 8 flips and right-angle rotations (default: on).", show_default=False)] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed for folds, the new head, sampling and augmentation (default: 0).", show_default=False)] = None,
    drop_small_classes: Annotated[bool, typer.Option("--drop-small-classes", help="Leave out classes with fewer images than folds.")] = False,
    config: Annotated[Optional[Path], typer.Option(help="Settings file (.json, .toml, .yaml) with any of these options.", show_default=False)] = None,
    workers: Annotated[Optional[int], typer.Option(help="Training workers per fold (default: sized from the cluster).", show_default=False)] = None,
    gpus_per_worker: Annotated[Optional[float], typer.Option(help="GPUs per worker (default: 1 when the cluster has GPUs).", show_default=False)] = None,
    cpus_per_worker: Annotated[Optional[float], typer.Option(help="CPUs per worker (default: what is left after Ray Data).", show_default=False)] = None,
    address: Annotated[Optional[str], typer.Option(help='Ray cluster to join ("auto" on a cluster node) (default: start one here).', show_default=False)] = None,
    out: Annotated[Optional[Path], typer.Option(help="Run directory (default: runs/transfer-<time>).", show_default=False)] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the transfer run in --out.")] = False,
) -> None:
    """Adapt a trained network to another dataset: new head, then fine-tuning, with k-fold CV."""
    flags = {"data": str(data) if data else None, "folds": folds,
             "folds_from": str(folds_from) if folds_from else None,
             "image_size": image_size, "epochs": epochs, "batch_size": batch_size, "lr": lr,
             "weight_decay": weight_decay, "optimizer": optimizer, "schedule": schedule,
             "seed": seed, "labels": labels, "tta": tta,
             "drop_small_classes": drop_small_classes or None, "workers": workers,
             "gpus_per_worker": gpus_per_worker, "cpus_per_worker": cpus_per_worker,
             "address": address,
             "transfer": {k: v for k, v in (("head_epochs", head_epochs), ("head_lr", head_lr))
                          if v is not None} or None}
    with reported_errors():
        flags["augment"] = parse_augment(augment)
        flags["sampling"] = parse_sampling(sampling)
        if fold is not None and best:
            raise RaycellsError("--fold and --best both choose the source fold: give one.")
        out = run_directory(out, resume, "transfer")
        source = None
        if resume:
            if from_ is not None or model is not None:
                raise RaycellsError("--resume continues with the run's own source network: leave "
                                    "out --from and --model.")
        else:
            if from_ is None:
                raise RaycellsError("--from is needed: the run directory or weights file of the "
                                    "trained network.")
            source = find_source(from_, fold=fold, model=model)
            status.print(f"Source network: {source.describe()}.")
            start = source_settings(source, out)
            flags["transfer"] = {**start.pop("transfer"), **(flags["transfer"] or {})}
            flags.update({key: value for key, value in start.items() if flags.get(key) is None})
        experiment, placement, manifest = run_settings(flags, preset="transfer", config=config,
                                                       out=out, resume=resume)
        display = FoldsDisplay()
        result = display.run(
            lambda: run_transfer(out, experiment, placement, source=source, manifest=manifest,
                                 resume=resume, events=display.event),
            Path(out), "Finished folds and checkpoints are kept: continue with "
                       f"`raycells transfer --resume --out {out}`.")
    final_table(result)
