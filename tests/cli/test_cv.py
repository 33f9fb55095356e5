import os

from typer.testing import CliRunner

from raycells.cli.common import ray_messages_to, status
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
        (["cv", "--sampling", "smote"], "sampling = 'smote' is not valid"),
        (["cv", "--labels", "coarse"], "labels = 'coarse' is not valid"),
        (["cv", "--sampling", "oversample,goal=3"], "then target=, cap= or same_length="),
        (["cv", "--sampling", "sqrt,same_length=maybe"], "same_length is true or false"),
        (["cv", "--out", "s3://bucket/run"], "a run directory is a folder, not a URL"),
        (["cv", str(tmp_path / "nope")], "no such file or folder"),  # the dataset as an argument
        (["cv", "a", "--data", "b"], "two datasets: a and --data b. Give the dataset once"),
        (["tune", "a", "--data", "b"], "two datasets: a and --data b"),
        (["transfer", "a", "--data", "b", "--from", "r"], "two datasets: a and --data b"),
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


def test_fine_labels_need_a_fine_label_for_every_image(tmp_path, matek_dir):
    result = runner.invoke(app, ["cv", "--data", str(matek_dir), "--labels", "fine", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert "--labels fine needs a fine label for every image, and 160 have none" in result.output
    assert not (tmp_path / "r").exists()


def test_ray_messages_go_to_the_run_directory_not_the_terminal(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    with ray_messages_to(run / "ray.log"):
        os.write(2, b"core_worker.cc: a line from Ray's C++ core\n")
        print("(raylet) WARNING: 8 PYTHON worker processes have been started")
        status.print("Fold 0: epoch 1/15")
    kept = (run / "ray.log").read_text()
    assert "C++ core" in kept and "raylet" in kept and "Fold 0" not in kept
    shown = capsys.readouterr()
    assert "Fold 0: epoch 1/15" in shown.err and "raylet" not in shown.out + shown.err
    with ray_messages_to(tmp_path / "never-made" / "ray.log"):
        print("lost")
    assert not (tmp_path / "never-made").exists()
