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
