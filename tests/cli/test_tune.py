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
        (["tune", "--space", "transfer.lr=0.1|0.01", "--data", str(pbc_dir), "--out", str(out)],
         "transfer.lr: only a transfer has a fine-tuning phase (add --from)"),
    ]
    for args, message in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output, (args, result.output)
    assert not out.exists()


def test_tune_searches_a_transfers_fine_tuning_rate(ray_address, aml_run, small_pbc, tmp_path,
                                                    in_terminal):
    """`raycells tune --from RUN --space "transfer.lr=loguniform(...)"`, in a terminal 80 columns
    wide: every trial a whole transfer from the AML run's network (head epoch, then fine-tuning at
    the drawn rate; source.pt kept in the search's run directory); the winner runs with
    `raycells transfer`, not cv."""
    import json

    import pandas as pd

    out = tmp_path / "t"
    code, shown = in_terminal([
        "tune", str(small_pbc), "--from", str(aml_run), "--folds", "2", "--address", ray_address,
        "--space", "transfer.lr=loguniform(1e-5,1e-3)", "--samples", "2", "--epochs", "1",
        "--head-epochs", "1", "--batch-size", "16", "--out", str(out)], cwd=tmp_path)
    assert code == 0 and "Traceback" not in shown, shown[-3000:]
    trials = pd.read_csv(out / "trials.csv")
    assert len(trials) == 2 and trials["transfer.lr"].between(1e-5, 1e-3).all()
    assert (trials["status"] == "complete").all() and (trials["epochs"] == 2).all()
    assert (out / "source.pt").is_file()
    best = json.loads((out / "best.json").read_text())
    experiment = best["settings"]["experiment"]
    assert experiment["lr"] == best["best"]["transfer.lr"] == trials.iloc[0]["transfer.lr"]
    assert experiment["transfer"]["head_epochs"] == 1
    assert experiment["transfer"]["freeze_batchnorm"] is True
    assert experiment["weights"] == str((out / "source.pt").resolve())
    assert f"raycells transfer --from {aml_run} --fold" in " ".join(shown.split())

    chosen = out / "best.json"
    refused = runner.invoke(app, ["cv", "--config", str(chosen), "--allow-overlap",
                                  "--out", str(tmp_path / "cv")])
    assert refused.exit_code == 2 and "these settings are a transfer's" in refused.output
    refused = runner.invoke(app, ["transfer", "--from", str(aml_run), "--config", str(chosen),
                                  "--out", str(tmp_path / "again")])
    assert refused.exit_code == 2 and "were used by the search" in refused.output
    assert not (tmp_path / "cv").exists() and not (tmp_path / "again").exists()
    both = runner.invoke(app, ["tune", "--from", str(aml_run), "--data", str(small_pbc),
                               "--space", "transfer.lr=loguniform(1e-5,1e-3)",
                               "--space", "lr=0.1|0.2", "--out", str(tmp_path / "u")])
    assert both.exit_code == 2 and "transfer.lr and lr are the same setting" in both.output
