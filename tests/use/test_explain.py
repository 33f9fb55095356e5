"""Grad-CAM: a map for every architecture in the registry that depends on the class asked for,
and raycells explain's overlays and gallery."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from raycells.cli.main import app
from raycells.data.cache import load_square
from raycells.train.inputs import prepare_images
from raycells.train.models import create_model, model_names
from raycells.use.explain import Explainer, class_maps, overlay, write_overlays

runner = CliRunner()


@pytest.fixture(scope="module")
def cells(pbc_dir) -> np.ndarray:
    """Three real cells at 64x64."""
    paths = [next((pbc_dir / folder).glob("*.jpg")) for folder in ("basophil", "monocyte", "neutrophil")]
    return np.stack([load_square(str(path), 64) for path in paths])


@pytest.mark.parametrize("name", model_names())
def test_every_architecture_has_a_map_that_follows_the_class(name, cells):
    torch.manual_seed(0)
    network = create_model(name, 5).eval()
    with torch.no_grad():
        logits = network(prepare_images(torch.from_numpy(cells)))
    top, least = logits.argmax(1).tolist(), logits.argmin(1).tolist()
    maps = class_maps([network], name, cells, top)
    other = class_maps([network], name, cells, least)
    assert maps.shape == (3, 64, 64) and maps.min() >= 0 and maps.max() == pytest.approx(1)
    assert all(heat.std() > 0.01 for heat in maps)  # not constant
    assert np.abs(maps - other).max() > 0.1  # another class, another map
    picture = overlay(cells[0], maps[0])
    assert picture.size == (64, 64) and np.asarray(picture).std() > 0


def test_explain_writes_overlays_and_one_gallery(pbc_run, pbc_manifest, tmp_path):
    paths = pbc_manifest.frame.groupby("label").nth(30)["path"].tolist()[:4]
    folder = tmp_path / "mine"
    folder.mkdir()
    for n, path in enumerate(paths):
        shutil.copy(path, folder / f"{n}.jpg")
    (folder / "broken.png").write_bytes(b"nothing")
    out = tmp_path / "out"
    result = runner.invoke(app, ["explain", str(folder), "--from", str(pbc_run), "--out", str(out)])
    assert result.exit_code == 1, result.output  # one image unreadable, the rest explained
    assert "broken.png" in result.output and "Explained 4 images" in result.output
    overlays = sorted((out / "overlays").glob("*.png"))
    assert len(overlays) == 4
    with Image.open(overlays[0]) as image:
        assert image.size == (256, 256)
    page = (out / "gallery.html").read_text()
    assert page.count("data:image/png;base64,") == 8 and "Grad-CAM of tiny_cnn" in page

    target = runner.invoke(app, ["explain", str(folder / "0.jpg"), "--from", str(pbc_run),
                                 "--target", "platelet", "--out", str(tmp_path / "t")])
    assert target.exit_code == 0, target.output
    assert [p.name.endswith("-platelet.png") for p in (tmp_path / "t" / "overlays").iterdir()] == [True]
    wrong = runner.invoke(app, ["explain", str(folder), "--from", str(pbc_run), "--target", "MYO",
                                "--out", str(tmp_path / "w")])
    assert wrong.exit_code == 2 and "--target MYO: not one of the network's classes" in wrong.output


def test_report_examples_show_right_and_wrong_cells_with_their_maps(pbc_run):
    result = runner.invoke(app, ["report", str(pbc_run), "--examples", "2"])
    assert result.exit_code == 0, result.output
    assert "examples.html" in result.output
    page = (pbc_run / "report" / "examples.html").read_text()
    assert page.count("<h2>") == 8 and "<h2>basophil: Basophil</h2>" in page
    pictures = page.count("data:image/png;base64,")
    assert 2 <= pictures <= 8 * 2 * 2 * 2 and pictures % 2 == 0  # a cell and its map each
    assert "taken for" in page  # a one-epoch network makes mistakes
    assert "Correct, highest probability first" in page


@pytest.mark.parametrize("name", ["resnet18", "resnext50"])
def test_the_paper_and_cpu_networks_get_overlays(name, pbc_dir, tmp_path):
    paths = [str(next((pbc_dir / folder).glob("*.jpg"))) for folder in ("basophil", "platelet")]
    torch.manual_seed(0)
    explainer = Explainer([create_model(name, 8)], name, [f"c{i}" for i in range(8)], 64, tta=False)
    explained = explainer.explain(paths)
    written = write_overlays(explained, tmp_path / "overlays")
    assert len(written) == 2 and all(path.stat().st_size > 0 for path in written)
    assert all(np.asarray(item.overlay).std() > 0 for item in explained)
    assert [item.path for item in explained] == paths
