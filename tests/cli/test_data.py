import pytest
from typer.testing import CliRunner

from raycells.cli.main import app
from raycells.data.manifest import read_manifest

runner = CliRunner()


@pytest.mark.slow  # the shortcut check's forests on all 8,561 PBC images
def test_inspect_pbc_prints_the_table_and_flags_the_stray_file(pbc_dir):
    result = runner.invoke(app, ["data", "inspect", str(pbc_dir)], terminal_width=400)
    assert result.exit_code == 1, result.output  # one unreadable image
    out = " ".join(result.output.split())
    for text in ("8,561 images", "neutrophil", "SNE 824", "PMY 303", "360 x 363", "RGB",
                 "Unreadable images: 1", ".DS_169665.jpg", "1 under different labels",
                 f"EO_225902.jpg (eosinophil), {pbc_dir}/neutrophil/BNE_191112.jpg (neutrophil)",
                 "Near-duplicates", "MO_231316.jpg", "0 classes readable without the cell"):
        assert text in out


@pytest.mark.slow  # the shortcut check's forests on all 8,561 PBC images
def test_inspect_with_fine_labels_names_the_classes_readable_from_image_size(pbc_dir):
    """PBC's IG images are 360x360 (one 360x361) and its NEUTROPHIL images 366x369, saved with
    other JPEG quantisation tables: the shortcut check must say so."""
    result = runner.invoke(app, ["data", "inspect", str(pbc_dir), "--labels", "fine"],
                           terminal_width=400)
    out = " ".join(result.output.split())
    assert "2 classes readable without the cell" in out
    warning = out[out.index("warning: shortcut check:"):]
    assert "IG (AUC 1.00: size" in warning and "NEUTROPHIL (AUC" in warning
    assert warning.index("NEUTROPHIL") < warning.index("A network can learn")


def test_index_writes_a_manifest_and_inspect_reads_it(tmp_path, matek_dir):
    out = tmp_path / "aml.parquet"
    result = runner.invoke(app, ["data", "index", str(matek_dir), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "160 images in 15 classes" in result.output
    assert len(read_manifest(out)) == 160
    shown = runner.invoke(app, ["data", "inspect", str(out), "--folds", "11"])
    assert shown.exit_code == 0, shown.output
    assert "RGBA" in shown.output and "alpha channel" in shown.output
    assert "class NGS has 10 images, fewer than 11 folds" in shown.output


def test_inspect_without_a_path_uses_the_synthetic_demo():
    result = runner.invoke(app, ["data", "inspect"])
    assert result.exit_code == 0, result.output
    assert "SYNTHETIC" in result.output and "15 classes" in result.output


def test_bad_input_exits_2_with_the_path(tmp_path):
    result = runner.invoke(app, ["data", "index", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert "no such file or folder" in result.output and "nope" in result.output


def test_demo_command_writes_a_dataset(tmp_path):
    result = runner.invoke(app, ["data", "demo", str(tmp_path / "demo"), "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "demo").rglob("*.png"))) > 500
