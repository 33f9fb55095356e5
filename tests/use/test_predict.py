"""raycells predict: unlabelled images of any layout, the ensemble's table, and the same
probabilities as raycells evaluate."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from raycells.cli.main import app
from raycells.data.index import index_images
from raycells.runs.evaluate import run_evaluate
from raycells.use.outliers import TrainingRange
from raycells.use.predict import prediction_table

runner = CliRunner()


def test_predict_writes_the_table_and_agrees_with_evaluate(ray_session, pbc_run, pbc_manifest,
                                                           tmp_path):
    # Two images per class that never trained the run, in a layout that says nothing of labels.
    unseen = pbc_manifest.frame.groupby("label").nth([12, 13])
    mine = tmp_path / "mine"
    labels = {}
    for n, row in enumerate(unseen.itertuples()):
        target = mine / ("a" if n % 2 else "b/c") / f"cell-{n}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(row.path, target)
        labels[str(target)] = row.label
    with Image.open(unseen["path"].iloc[0]) as image:  # the same cell at three times the size
        image.resize((image.width * 3, image.height * 3)).save(tmp_path / "big.png")
    (mine / "broken.jpg").write_bytes(b"not a picture")
    (mine / "notes.txt").write_text("not an image")

    out = tmp_path / "out"
    result = runner.invoke(app, ["predict", str(mine), str(tmp_path / "big.png"), "--from",
                                 str(pbc_run), "--out", str(out)])
    assert result.exit_code == 1, result.output  # finished, one image unreadable
    assert "broken.jpg" in result.output and "Skipped 1 files that are not images" in result.output
    assert "images are unlike the training images" in result.output
    table = pd.read_parquet(out / "predictions.parquet")
    assert len(table) == len(labels) + 1
    assert pd.read_csv(out / "predictions.csv")["path"].tolist() == table["path"].tolist()
    classes = sorted(pbc_manifest.frame["label"].unique())
    probs = table[[f"prob_{code}" for code in classes]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert (table["predicted"] == np.asarray(classes)[probs.argmax(1)]).all()
    assert table["spread"].notna().all()  # two fold networks
    big = table["path"].str.endswith("big.png")
    assert table.loc[big, "unusual"].iloc[0].startswith("size 1080x1089")
    assert not table.loc[~big, "unusual"].str.contains("size").any()

    # The same images through `raycells evaluate`, labelled: the same probabilities.
    manifest = index_images([mine])
    manifest = dataclasses.replace(manifest, frame=manifest.frame.assign(
        label=manifest.frame["path"].map(labels)))
    run_evaluate(tmp_path / "evaluated", pbc_run, manifest)
    evaluated = pd.read_parquet(tmp_path / "evaluated" / "fold-0" / "predictions.parquet")
    both = table.merge(evaluated, on="path", suffixes=("", "_evaluate"))
    assert len(both) == len(labels)
    for code in classes:
        np.testing.assert_allclose(both[f"prob_{code}"], both[f"prob_{code}_evaluate"], atol=1e-6)

    again = runner.invoke(app, ["predict", str(mine), "--from", str(pbc_run), "--out", str(out)])
    assert again.exit_code == 2 and "exists: delete it, or choose another --out" in again.output
    one = runner.invoke(app, ["predict", str(mine), "--from", str(pbc_run), "--fold", "1",
                              "--out", str(tmp_path / "one.csv")])
    assert one.exit_code == 1, one.output
    assert pd.read_csv(tmp_path / "one.csv")["spread"].isna().all()
    assert (tmp_path / "one.parquet").is_file()


def test_the_table_has_top_3_spread_and_the_aml_groups():
    classes = ["EOS", "MOB", "MYO", "NGS"]
    network_probs = np.array([[[0.1, 0.5, 0.3, 0.1], [0.7, 0.1, 0.1, 0.1]],
                              [[0.1, 0.3, 0.5, 0.1], [0.9, 0.0, 0.1, 0.0]]])
    table = prediction_table(["a.png", "b.png"], network_probs, classes,
                             {code: code.lower() for code in classes}, unusual=["", "odd"],
                             threshold=0.5)
    assert table["predicted"].tolist() == ["MOB", "EOS"]  # a tie goes to the first class
    assert table["predicted_name"].tolist() == ["mob", "eos"]
    assert table["top_3"].tolist() == ["MOB 0.400, MYO 0.400, EOS 0.100",
                                       "EOS 0.800, MYO 0.100, MOB 0.050"]
    np.testing.assert_allclose(table["spread"], [0.1, 0.1], atol=1e-6)
    np.testing.assert_allclose(table["p_blast"], [0.8, 0.15], atol=1e-6)
    assert table["blast_flag"].tolist() == [True, False]
    assert {"p_atypical", "atypical_flag"} <= set(table.columns)
    assert table["unusual"].tolist() == ["", "odd"]


def test_images_unlike_the_training_images_are_named():
    training = pd.DataFrame({"width": [360, 366], "height": [363, 363],
                             **{c: [0.5, 0.6] for c in ("mean_r", "mean_g", "mean_b")},
                             **{c: [0.1, 0.12] for c in ("std_r", "std_g", "std_b")}})
    span = TrainingRange.of(training)
    assert TrainingRange.from_dict(span.to_dict()) == span
    new = pd.DataFrame({"width": [400, 1200, 360], "height": [400, 900, 363],
                        "mean_r": [0.55, 0.55, 0.95], "mean_g": [0.55] * 3, "mean_b": [0.55] * 3,
                        **{c: [0.11] * 3 for c in ("std_r", "std_g", "std_b")}})
    notes = span.unusual(new)
    assert notes[0] == ""
    assert notes[1] == "size 1200x900 (training 360-366 x 363)"
    assert notes[2].startswith("mean_r 0.95 (training 0.")


@pytest.mark.parametrize(("name", "content", "message"), [
    ("missing", None, "no such file or folder"),
    ("empty", "", "no image files there"),
    ("list.csv", "file\na.png\n", "no path column"),
])
def test_bad_images_are_named_before_any_work(tmp_path, name, content, message):
    if content == "":
        (tmp_path / name).mkdir()
    elif content is not None:
        (tmp_path / name).write_text(content)
    result = runner.invoke(app, ["predict", str(tmp_path / name), "--from", str(tmp_path),
                                 "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "out").exists()


def test_a_folder_that_is_not_a_run_is_named(tmp_path, pbc_dir):
    image = next((pbc_dir / "basophil").iterdir())
    result = runner.invoke(app, ["predict", str(image), "--from", str(tmp_path),
                                 "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "config.json: cannot read the run's config" in result.output
    assert not (tmp_path / "out").exists()


def test_predict_in_a_terminal_writes_its_table(ray_address, pbc_run, pbc_manifest, tmp_path,
                                                in_terminal):
    """In a terminal the progress bar was stopped after the handle it drew on was closed: exit 1,
    nothing written (piped, it worked)."""
    mine = tmp_path / "images"
    mine.mkdir()
    for path in pbc_manifest.frame["path"].iloc[-3:]:
        shutil.copy(path, mine)
    out = tmp_path / "out"
    code, shown = in_terminal(["predict", str(mine), "--from", str(pbc_run), "--out", str(out),
                               "--address", ray_address], cwd=tmp_path)  # the screen checked too
    assert code == 0, shown[-3000:]
    assert "Predicted 3 images" in shown and "Traceback" not in shown
    assert len(pd.read_parquet(out / "predictions.parquet")) == 3
