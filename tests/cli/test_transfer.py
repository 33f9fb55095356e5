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
