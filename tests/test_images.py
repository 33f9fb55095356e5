import numpy as np
import pytest
from PIL import Image

from raycells.data.images import UnreadableImage, is_image_name, load_rgb, mode_note, probe


def _save(path, array):
    Image.fromarray(array).save(path)
    return path


def test_rgba_and_grayscale_are_converted_to_rgb(tmp_path):
    rgba = np.zeros((10, 12, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 255
    gray = np.full((10, 12), 77, np.uint8)
    _save(tmp_path / "a.png", rgba)
    _save(tmp_path / "g.png", gray)
    a, g = load_rgb(tmp_path / "a.png"), load_rgb(tmp_path / "g.png")
    assert a.shape == g.shape == (10, 12, 3) and a.dtype == g.dtype == np.uint8
    assert (a[..., 0] == 200).all() and (g == 77).all()
    assert probe(tmp_path / "a.png").mode == "RGBA"
    assert "alpha" in mode_note("RGBA")
    assert mode_note("RGB") is None


def test_16_bit_images_are_scaled_not_clipped(tmp_path):
    values = np.array([[0, 256 * 128, 65535]], np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    facts = probe(tmp_path / "deep.png")
    assert facts.mode.startswith("I")
    rgb = load_rgb(tmp_path / "deep.png")
    assert rgb[0, :, 0].tolist() == [0, 128, 255]
    assert "16" in mode_note(facts.mode)


def test_float_images_are_refused_with_the_fix(tmp_path):
    Image.fromarray(np.ones((4, 4), np.float32)).save(tmp_path / "f.tiff")
    with pytest.raises(UnreadableImage, match="8-bit RGB"):
        probe(tmp_path / "f.tiff")


def test_truncated_jpeg_and_non_image_are_unreadable(tmp_path):
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(
        tmp_path / "ok.jpg", quality=95)
    data = (tmp_path / "ok.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.jpg").write_text("not an image")
    (tmp_path / "empty.png").write_bytes(b"")
    assert probe(tmp_path / "ok.jpg").width == 64
    with pytest.raises(UnreadableImage, match="damaged or incomplete"):
        probe(tmp_path / "cut.jpg")
    with pytest.raises(UnreadableImage, match="not an image"):
        probe(tmp_path / "text.jpg")
    with pytest.raises(UnreadableImage, match="empty"):
        probe(tmp_path / "empty.png")


def test_image_names():
    assert is_image_name("a/B.TIFF") and is_image_name(".DS_1.jpg")
    assert not is_image_name("notes.txt") and not is_image_name(".DS_Store")
