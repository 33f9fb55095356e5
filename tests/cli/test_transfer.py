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
    """`raycells transfer --search`: nested selection of a transfer's settings. Inside each fold
    a search on its training part draws the fine-tuning rate; the winner is trained again from
    the source network and tested once. A resumed run keeps the search it began with."""
    import json

    import torch

    out = tmp_path / "nested"
    args = ["transfer", "--from", str(aml_run), "--data", str(small_pbc), "--folds", "2",
            "--epochs", "1", "--head-epochs", "1", "--batch-size", "16", "--out", str(out)]
    result = runner.invoke(app, [*args, "--search", "transfer.lr=loguniform(1e-5,1e-3)",
                                 "--samples", "1", "--no-tracking"], terminal_width=300)
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert config["search"] == {"space": {"transfer.lr": {"loguniform": [1e-5, 1e-3]}},
                                "samples": 1, "metric": "macro_f1", "grace_epochs": None}
    assert config["command"] == "transfer" and (out / "source.pt").is_file()
    for k in (0, 1):
        chosen = json.loads((out / f"fold-{k}" / "search" / "chosen.json").read_text())["chosen"]
        assert 1e-5 <= chosen["transfer.lr"] <= 1e-3
        final = torch.load(sorted((out / f"fold-{k}" / "checkpoint").rglob("state.pt"))[-1],
                           weights_only=True)
        assert final["experiment"]["lr"] == chosen["transfer.lr"]
        assert final["experiment"]["transfer"]["head_epochs"] == 1
        assert not list((out / f"fold-{k}" / "search").rglob("predictions.parquet"))
    assert "chose" in result.output

    again = runner.invoke(app, ["transfer", "--resume", "--out", str(out), "--search", "lr=0.1"])
    assert again.exit_code == 2 and "continues the run's own search" in again.output
    again = runner.invoke(app, ["transfer", "--resume", "--out", str(out)], terminal_width=300)
    assert again.exit_code == 0, again.output
