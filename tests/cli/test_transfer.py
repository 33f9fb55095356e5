"""The transfer and evaluate commands: their options, their errors and an evaluation end to end."""

import pandas as pd
from typer.testing import CliRunner

from raycells.cli.main import app
from raycells.data.schemes import PBC_TO_AML

runner = CliRunner()


def test_bad_transfer_input_is_refused_before_any_work(tmp_path, aml_run):
    cases = [
        (["transfer"], "--from is needed"),
        (["transfer", "--from", str(tmp_path / "nope")], "no such run directory or weights file"),
        (["transfer", "--from", str(aml_run), "--fold", "0", "--best"], "give one"),
        (["transfer", "--from", str(aml_run), "--model", "resnet18"], "--model goes with a weights file"),
        (["transfer", "--resume"], "--resume needs --out"),
        (["transfer", "--resume", "--out", str(tmp_path), "--from", str(aml_run)], "leave out --from"),
        (["transfer", "--from", str(aml_run), "--head-epochs", "0", "--epochs", "0",
          "--out", str(tmp_path / "r")], "at least 1 epoch over both transfer phases"),
        (["transfer", "--from", str(aml_run), "--search", "transfer.head_lr=0.1|-1",
          "--out", str(tmp_path / "r")], "transfer.head_lr = -1 is not valid"),
    ]
    for args, message in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output, (args, result.output)
    assert not (tmp_path / "r").exists()


def test_evaluate_maps_pbc_cells_onto_the_aml_network_and_reports(ray_session, aml_run, small_pbc,
                                                                  tmp_path):
    out = tmp_path / "eval"
    result = runner.invoke(app, ["evaluate", "--from", str(aml_run), "--data", str(small_pbc),
                                 "--map", "pbc-to-aml", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "Left out (no counterpart among the network's classes)" in result.output
    assert "PLATELET 12" in result.output
    predictions = pd.read_parquet(out / "fold-0" / "predictions.parquet")
    assert set(predictions["label"]) <= set(PBC_TO_AML.values())
    assert predictions.filter(like="prob_").shape[1] == 15
    assert (out / "report" / "report.md").is_file()


def test_transfer_search_chooses_the_fine_tuning_rate_inside_every_fold(ray_session, aml_run,
                                                                         small_pbc, tmp_path):
    """Nested selection of a transfer's settings (`raycells transfer --search`): inside a fold, a
    search on its training part draws the fine-tuning rate; the winner is trained again from the
    source network and tested once. A resumed run keeps the search it began with. (One fold of
    two, to keep the suite short.)"""
    import json

    import torch

    from raycells.data.manifest import read_manifest
    from raycells.runs.rundir import RunDir
    from raycells.runs.source import find_source, transfer_flags
    from raycells.runs.transfer import run_transfer
    from raycells.runs.tune import SearchPlan
    from raycells.settings import build_settings

    out = tmp_path / "nested"
    source = find_source(aml_run)
    experiment, placement = build_settings(preset="transfer", flags=transfer_flags(source, out, {
        "data": str(small_pbc), "folds": 2, "epochs": 1, "head_epochs": 1, "batch_size": 16,
        "tracking": False}))
    plan = SearchPlan({"transfer.lr": {"loguniform": [1e-5, 1e-3]}})
    result = run_transfer(out, experiment, placement, source=source,
                          manifest=read_manifest(small_pbc), nested=plan, only_folds=[1])
    config = json.loads((out / "config.json").read_text())
    assert config["command"] == "transfer" and (out / "source.pt").is_file()
    assert SearchPlan.of_run(RunDir(out)) == plan and not (out / "fold-0").exists()
    chosen = json.loads((out / "fold-1" / "search" / "chosen.json").read_text())["chosen"]
    assert 1e-5 <= chosen["transfer.lr"] <= 1e-3 and result.per_fold[1]["chosen"] == chosen
    final = torch.load(sorted((out / "fold-1" / "checkpoint").rglob("state.pt"))[-1],
                       weights_only=True)
    assert final["experiment"]["lr"] == chosen["transfer.lr"]
    assert final["experiment"]["transfer"]["head_epochs"] == 1
    assert not list((out / "fold-1" / "search").rglob("predictions.parquet"))

    again = runner.invoke(app, ["transfer", "--resume", "--out", str(out), "--search", "lr=0.1"])
    assert again.exit_code == 2 and "continues the run's own search" in again.output
