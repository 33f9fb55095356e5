"""raycells export and raycells.load_model: exported graphs give PyTorch's probabilities, and a
notebook needs three lines."""

from __future__ import annotations

import json
import warnings

import numpy as np
import onnxruntime
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import raycells
from raycells.cli.main import app
from raycells.data.cache import load_square
from raycells.errors import RaycellsError
from raycells.use.networks import EnsembleGraph, RunNetworks

runner = CliRunner()


@pytest.fixture(scope="module")
def unseen(pbc_manifest) -> list[str]:
    """Real PBC images that never trained pbc_run, one per class."""
    return pbc_manifest.frame.groupby("label").nth(20)["path"].tolist()


def _images(paths: list[str], size: int) -> np.ndarray:
    return np.stack([load_square(p, size) for p in paths]).transpose(0, 3, 1, 2).astype(np.float32) / 255


def test_onnx_and_torchscript_reproduce_pytorch_on_real_images(pbc_run, unseen, tmp_path):
    networks = RunNetworks.of(pbc_run)
    graph = EnsembleGraph(networks.modules(), networks.tta).eval()
    images = _images(unseen, networks.image_size)
    with torch.no_grad():
        expected, each = (t.numpy() for t in graph(torch.from_numpy(images)))

    for fmt in ("onnx", "torchscript"):
        result = runner.invoke(app, ["export", "--from", str(pbc_run), "--format", fmt,
                                     "--out", str(tmp_path / fmt)])
        assert result.exit_code == 0, result.output
        assert "largest difference from PyTorch" in result.output
    session = onnxruntime.InferenceSession(str(tmp_path / "onnx" / "model.onnx"))
    meta = session.get_modelmeta().custom_metadata_map  # what the outputs mean, in the file itself
    assert json.loads(meta["classes"]) == networks.classes and meta["architecture"] == "tiny_cnn"
    assert meta["image_size"] == "32" and json.loads(meta["folds"]) == [0, 1]
    probs, per_network = session.run(None, {"image": images})
    assert np.abs(probs - expected).max() <= 1e-4 and np.abs(per_network - each).max() <= 1e-4
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.load(str(tmp_path / "torchscript" / "model.pt"))
    with torch.no_grad():
        assert np.abs(scripted(torch.from_numpy(images))[0].numpy() - expected).max() <= 1e-4

    card = json.loads((tmp_path / "onnx" / "model.json").read_text())
    assert [c["code"] for c in card["classes"]] == networks.classes
    assert card["classes"][0] == {"code": "basophil", "name": "Basophil"}
    assert card["input"]["shape"] == ["N", 3, 32, 32] and card["folds"] == [0, 1]
    assert card["training_data"]["sources"][0]["licence"] == "CC BY 4.0"
    assert len(card["training_data"]["manifest_sha1"]) == 40 and card["training_data"]["images"] == 96
    assert len(card["metrics"]["accuracy"]) == 2 and "basophil" in card["metrics"]["per_class"]
    assert card["check"]["max_abs_difference"] <= 1e-4
    assert any("central square" in step for step in card["preprocessing"])
    # Its twin for people, in the manner of Hugging Face's model cards: the same facts.
    markdown = (tmp_path / "onnx" / "model_card.md").read_text()
    assert markdown.startswith('---\nlibrary_name: "raycells"\npipeline_tag: "image-classification"')
    assert "| 0 | basophil | Basophil |" in markdown and 'license_details: "CC BY 4.0"' in markdown
    mean, std = card["metrics"]["accuracy"]
    assert f"| accuracy | {mean:.3f} ± {std:.3f} |" in markdown and "raycells.load_model" in markdown
    assert "import torch" in (tmp_path / "torchscript" / "model_card.md").read_text()

    again = runner.invoke(app, ["export", "--from", str(pbc_run), "--out", str(tmp_path / "onnx")])
    assert again.exit_code == 2 and "model.onnx exists" in again.output


def test_load_model_predicts_in_three_lines_from_an_export_or_a_run(pbc_run, unseen, tmp_path):
    result = runner.invoke(app, ["export", "--from", str(pbc_run), "--format", "safetensors",
                                 "--fold", "1", "--out", str(tmp_path / "weights")])
    assert result.exit_code == 0, result.output
    runner.invoke(app, ["export", "--from", str(pbc_run), "--out", str(tmp_path / "onnx")])

    model = raycells.load_model(tmp_path / "onnx")
    table = model.predict(unseen)
    from_run = raycells.load_model(pbc_run).predict(unseen)
    columns = [c for c in table.columns if c.startswith("prob_")]
    assert len(columns) == 8 and table["path"].tolist() == unseen
    np.testing.assert_allclose(table[columns], from_run[columns], atol=1e-4)
    assert (table["predicted"] == from_run["predicted"]).all()
    assert {"predicted_name", "probability", "spread", "top_3", "unusual"} <= set(table.columns)

    one = raycells.load_model(tmp_path / "weights").predict(unseen)
    assert one["spread"].isna().all()
    single = RunNetworks.of(pbc_run, fold=1)
    graph = EnsembleGraph(single.modules(), single.tta).eval()
    with torch.no_grad():
        expected = graph(torch.from_numpy(_images(unseen, single.image_size)))[0].numpy()
    np.testing.assert_allclose(one[columns].to_numpy(), expected, atol=1e-5)

    # A picture already in memory is the same picture (PNG: no reduced-scale JPEG decoding).
    png = tmp_path / "cell.png"
    with Image.open(unseen[0]) as image:
        image.save(png)
        in_memory = model.predict([image.copy(), png])
    np.testing.assert_allclose(in_memory.loc[0, columns].to_numpy(dtype=float),
                               in_memory.loc[1, columns].to_numpy(dtype=float), atol=1e-6)
    assert in_memory["path"].tolist() == ["<image 0>", str(png)]


def test_code_carrying_or_foreign_exports_are_refused(pbc_run, tmp_path):
    runner.invoke(app, ["export", "--from", str(pbc_run), "--format", "torchscript", "--fold", "0",
                        "--out", str(tmp_path / "ts")])
    with pytest.raises(RaycellsError, match="carries code, which raycells never runs"):
        raycells.load_model(tmp_path / "ts")
    with pytest.raises(RaycellsError, match="neither an export .* nor a run directory"):
        raycells.load_model(tmp_path)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "model.json").write_text("{}")
    with pytest.raises(RaycellsError, match="not a raycells model card"):
        raycells.load_model(tmp_path / "bad")
    result = runner.invoke(app, ["export", "--from", str(pbc_run), "--format", "pickle",
                                 "--out", str(tmp_path / "p")])
    assert result.exit_code == 2 and "choose one of onnx, torchscript, safetensors" in result.output
    assert not (tmp_path / "p").exists()


def test_an_export_folder_from_someone_else_is_read_inside_itself_only(pbc_run, tmp_path):
    """load_model followed model.json's "file" out of the export folder, and a truncated ONNX
    file or weights of the wrong shape gave onnxruntime's or torch's raw errors."""
    import shutil

    from safetensors.torch import save_file

    for fmt in ("onnx", "safetensors"):
        result = runner.invoke(app, ["export", "--from", str(pbc_run), "--format", fmt, "--fold", "0",
                                     "--out", str(tmp_path / fmt)])
        assert result.exit_code == 0, result.output
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(tmp_path / "onnx", elsewhere / "export")
    card = json.loads((elsewhere / "export" / "model.json").read_text())
    (elsewhere / "model.onnx").write_bytes((tmp_path / "onnx" / "model.onnx").read_bytes())
    (elsewhere / "export" / "model.json").write_text(json.dumps({**card, "file": "../model.onnx"}))
    with pytest.raises(RaycellsError, match=r"its file '../model.onnx' is not in"):
        raycells.load_model(elsewhere / "export")

    onnx = (tmp_path / "onnx" / "model.onnx").read_bytes()
    (tmp_path / "onnx" / "model.onnx").write_bytes(onnx[:len(onnx) // 2])
    with pytest.raises(RaycellsError, match=r"model.onnx: not a graph onnxruntime can load"):
        raycells.load_model(tmp_path / "onnx")

    weights = tmp_path / "safetensors" / "model.safetensors"
    save_file({"fold0.wrong": torch.zeros(3)}, str(weights))
    with pytest.raises(RaycellsError, match=r"model.safetensors: fold 0's weights do not fit a tiny_cnn"):
        raycells.load_model(tmp_path / "safetensors")
