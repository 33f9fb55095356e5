from typer.testing import CliRunner

from raycells.cli.main import app

runner = CliRunner()


def test_bad_searches_are_refused_before_any_training(tmp_path, pbc_dir):
    out = tmp_path / "t"
    cases = [
        (["tune", "--data", str(pbc_dir), "--out", str(out)], "the search space is empty"),
        (["tune", "--space", "lr", "--out", str(out)], "expected key=a|b|c"),
        (["tune", "--space", "sampling.policy=none|smote", "--data", str(pbc_dir), "--out", str(out)],
         "'smote' is not valid"),
        (["tune", "--space", "lr=0.1", "--metric", "accuracy", "--data", str(pbc_dir), "--out", str(out)],
         "choose macro_f1 or balanced_accuracy"),
    ]
    for args, message in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output, (args, result.output)
    assert not out.exists()


def test_tune_searches_a_transfers_fine_tuning_rate(ray_session, aml_run, small_pbc, tmp_path):
    """`raycells tune --from RUN --space "lr=loguniform(...)"`: every trial a transfer from the
    AML run's network (source.pt kept in the search's run directory), the fine-tuning rate drawn."""
    import json

    import pandas as pd

    out = tmp_path / "t"
    result = runner.invoke(app, [
        "tune", "--from", str(aml_run), "--data", str(small_pbc), "--folds", "2",
        "--space", "lr=loguniform(1e-5,1e-3)", "--samples", "2", "--epochs", "1",
        "--head-epochs", "1", "--batch-size", "16", "--out", str(out)])
    assert result.exit_code == 0, result.output
    trials = pd.read_csv(out / "trials.csv")
    assert len(trials) == 2 and trials["lr"].between(1e-5, 1e-3).all()
    assert (out / "source.pt").is_file()
    best = json.loads((out / "best.json").read_text())
    transfer = best["settings"]["experiment"]["transfer"]
    assert transfer["head_epochs"] == 1 and transfer["freeze_batchnorm"] is True
    assert best["settings"]["experiment"]["weights"] == str((out / "source.pt").resolve())
    refused = runner.invoke(app, ["tune", "--from", str(aml_run), "--data", str(small_pbc),
                                  "--space", "transfer.lr=loguniform(1e-5,1e-3)",
                                  "--out", str(tmp_path / "u")])
    assert refused.exit_code == 2 and "are `lr` (as `raycells transfer --lr/--epochs`)" in refused.output
