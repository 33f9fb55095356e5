"""raycells transfer: from a small real source run (the AML samples) to a small PBC subset."""

from __future__ import annotations

import json
import re
import shutil

import pandas as pd
import pytest
import torch
from torch import nn

from raycells.data.manifest import read_manifest
from raycells.errors import RaycellsError
from raycells.runs.rundir import RunDir
from raycells.runs.setup import prepare_run
from raycells.runs.source import SOURCE_FILE, find_source, source_settings
from raycells.runs.transfer import run_transfer
from raycells.seeds import derive_seed
from raycells.settings import build_settings
from raycells.train.models import create_model

SMALL = {"model": "tiny_cnn", "image_size": 32, "batch_size": 16, "folds": 2}


def _transfer(source_run, out, data, only_folds=None, **flags):
    source = find_source(source_run)
    settings = source_settings(source, out)
    settings["transfer"].update(flags.pop("transfer", {}))
    experiment, placement = build_settings(preset="transfer", flags={
        **settings, "folds": 2, "batch_size": 16, "data": str(data), **flags})
    return source, run_transfer(out, experiment, placement, source=source,
                                manifest=read_manifest(data), only_folds=only_folds)


def _batch_norm_keys(model: nn.Module) -> set[str]:
    return {f"{name}.{key}" for name, module in model.named_modules()
            if isinstance(module, nn.modules.batchnorm._BatchNorm) for key in module.state_dict()}


def _final_state(run, fold: int) -> dict[str, torch.Tensor]:
    checkpoint = sorted((run / f"fold-{fold}" / "checkpoint").glob("epoch-*/state.pt"))[-1]
    return torch.load(checkpoint, map_location="cpu", weights_only=True)["model"]


def test_transfer_in_a_terminal_runs_both_phases_on_two_workers_and_keeps_batch_norm(
        ray_address, aml_run, small_pbc, tmp_path, complete_run, in_terminal):
    """`raycells transfer` as a user runs it, in a terminal 80 columns wide (its screen checked
    by `in_terminal`), joining the tests' shared Ray cluster with --address."""
    out = tmp_path / "transfer"
    code, shown = in_terminal([
        "transfer", "--from", str(aml_run), "--data", str(small_pbc), "--out", str(out),
        "--address", ray_address, "--folds", "2", "--head-epochs", "1", "--epochs", "1",
        "--lr", "0.001", "--workers", "2", "--batch-size", "16", "--no-tracking"], cwd=tmp_path)
    assert code == 0 and "Traceback" not in shown, shown[-3000:]
    said = " ".join(re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", shown).split())
    assert "Source network:" in said and "Finished in" in said
    source = find_source(aml_run)
    complete_run(out, folds=2, classes=8)
    config = json.loads((out / "config.json").read_text())
    assert config["command"] == "transfer"
    assert config["transfer_source"]["model"] == "tiny_cnn" and len(config["transfer_source"]["classes"]) == 15
    assert config["settings"]["experiment"]["transfer"]["head_epochs"] == 1
    assert config["settings"]["experiment"]["image_size"] == 32  # the source network's
    assert (out / SOURCE_FILE).is_file()
    for k in (0, 1):
        history = pd.read_csv(out / f"fold-{k}" / "history.csv")
        assert history["phase"].tolist() == ["head", "fine-tune"]
        final = _final_state(out, k)
        batch_norm = _batch_norm_keys(create_model("tiny_cnn", 8))
        for key, value in final.items():
            if key in batch_norm:
                assert torch.equal(value, source.weights[key]), f"fold {k}: {key} changed"
            elif key.endswith("weight") and value.dim() == 4:
                assert not torch.equal(value, source.weights[key]), f"fold {k}: {key} not fine-tuned"
        assert final["6.weight"].shape == (8, 128)


def test_the_head_phase_alone_leaves_the_body_alone_and_cv_can_share_its_folds(
        ray_session, aml_run, small_pbc, tmp_path):
    """(Fold 1 of two: the folds train alike, and the other test trains both.)"""
    out = tmp_path / "head-only"
    source, _ = _transfer(aml_run, out, small_pbc, epochs=0, transfer={"head_epochs": 2},
                          only_folds=[1])
    assert not (out / "fold-0").exists()
    for k in (1,):
        final = _final_state(out, k)
        torch.manual_seed(derive_seed(0, "init", k))  # the worker's seed: the new head as it started
        fresh = create_model("tiny_cnn", 8).state_dict()
        for key, value in final.items():
            if key.startswith("6."):
                assert not torch.equal(value, fresh[key]), f"fold {k}: the head did not train"
            else:
                assert torch.equal(value, source.weights[key]), f"fold {k}: {key} changed"

    # A run from scratch on the transfer run's folds (its plan is made before any training):
    # the same plan, so the report pairs them.
    experiment, placement = build_settings(flags={**SMALL, "epochs": 1, "data": str(small_pbc),
                                                  "folds_from": str(out), "seed": 5})
    prepare_run(RunDir(tmp_path / "scratch"), experiment, placement, read_manifest(small_pbc),
                resume=False)
    pd.testing.assert_frame_equal(pd.read_parquet(out / "folds.parquet"),
                                  pd.read_parquet(tmp_path / "scratch" / "folds.parquet"))


def test_bad_sources_are_named_with_the_fix(aml_run, tmp_path):
    bare = tmp_path / "bare"
    shutil.copytree(aml_run, bare)
    for k in (0, 1):
        shutil.rmtree(bare / f"fold-{k}" / "checkpoint")
    with pytest.raises(RaycellsError, match="has no checkpoint"):
        find_source(bare)
    with pytest.raises(RaycellsError, match="folds 0 to 1"):
        find_source(aml_run, fold=4)
    (bare / "fold-1" / "metrics.json").unlink()
    with pytest.raises(RaycellsError, match="fold-1 is not finished"):
        find_source(bare, fold=1)

    weights = tmp_path / "resnet.pt"
    torch.save(create_model("resnet18", 4).state_dict(), weights)
    with pytest.raises(RaycellsError, match="resnet.pt: the weights do not fit"):
        find_source(weights, model="tiny_cnn")
    with pytest.raises(RaycellsError, match="name its architecture with --model"):
        find_source(weights)
    assert find_source(weights, model="resnet18").model == "resnet18"


def test_a_source_file_may_be_safetensors_or_a_timm_training_checkpoint(tmp_path):
    """What users have on disk: a registry model's weights as safetensors, and the checkpoint
    timm's own training script writes (state dict under "state_dict", its args beside it)."""
    import argparse

    from safetensors.torch import save_file
    from timm.utils import CheckpointSaver

    network = create_model("resnet18", 1000)
    save_file(network.state_dict(), tmp_path / "resnet18.safetensors")
    source = find_source(tmp_path / "resnet18.safetensors", model="resnet18")
    assert source.model == "resnet18" and source.weights["fc.weight"].shape == (1000, 512)
    assert torch.equal(source.weights["layer1.0.conv1.weight"], network.layer1[0].conv1.weight)

    timm_net = create_model("timm:resnet18", 7)
    CheckpointSaver(timm_net, torch.optim.SGD(timm_net.parameters(), lr=0.1),
                    args=argparse.Namespace(model="resnet18"), checkpoint_dir=str(tmp_path),
                    recovery_dir=str(tmp_path)).save_checkpoint(0, metric=0.5)
    source = find_source(tmp_path / "model_best.pth.tar", model="timm:resnet18")
    assert source.weights["fc.weight"].shape == (7, 512)
    assert torch.equal(source.weights["conv1.weight"], timm_net.conv1.weight)


def test_a_target_the_source_network_trained_on_is_refused(aml_run, matek_dir, tmp_path):
    """Transferring the AML run's network to the AML images themselves would test it on images it
    trained on: refused before anything is written."""
    from raycells.data.index import index_dataset

    out = tmp_path / "onto-itself"
    source = find_source(aml_run)
    experiment, placement = build_settings(preset="transfer", flags={
        **source_settings(source, out), **SMALL, "data": str(matek_dir)})
    with pytest.raises(RaycellsError, match=r"images are byte-identical to images the network\(s\) "
                                            r"of .* trained on.*--allow-overlap"):
        run_transfer(out, experiment, placement, source=source, manifest=index_dataset(matek_dir))
    assert not out.exists()


def test_a_best_source_is_the_fold_with_the_best_validation_score(aml_run):
    scores = {}
    for k in (0, 1):
        state = torch.load(sorted((aml_run / f"fold-{k}" / "checkpoint").glob("epoch-*/state.pt"))[-1],
                           weights_only=True)
        scores[k] = state["best"]["val_macro_f1"]
    source = find_source(aml_run)
    assert source.fold == max(scores, key=scores.get) and source.classes == sorted(source.classes)
    assert find_source(aml_run, fold=1).fold == 1
