from typer.testing import CliRunner

from raycells.cli.main import app

runner = CliRunner()


def test_bad_input_is_refused_before_any_work(tmp_path):
    cases = [
        (["cv", "--data", str(tmp_path / "nope")], "no such file or folder"),
        (["cv", "--resume"], "--resume needs --out"),
        (["cv", "--resume", "--out", str(tmp_path)], "nothing to resume"),
        (["cv", "--augment", "noise"], "key=value pairs"),
        (["cv", "--model", "vgg"], "model = 'vgg' is not valid"),
        (["cv", "--folds", "1"], "folds = 1 is not valid"),
    ]
    for args, message in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output, (args, result.output)


def test_a_class_too_small_for_the_folds_is_named(tmp_path, matek_dir):
    result = runner.invoke(app, ["cv", "--data", str(matek_dir), "--folds", "11", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert "NGS (10 images)" in result.output and "--drop-small-classes" in result.output
    assert not (tmp_path / "r").exists()  # nothing written for a run that cannot start
