import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from raycells.data.images import load_rgb
from raycells.data.index import index_dataset
from raycells.errors import RaycellsError

PBC_FINE_COUNTS = {
    "BA": 589, "EO": 1588, "ERB": 770, "PMY": 303, "MY": 593, "MMY": 498, "IG": 64,
    "LY": 608, "MO": 691, "SNE": 824, "BNE": 819, "NEUTROPHIL": 28, "PLATELET": 1186,
}
PBC_CLASS_COUNTS = {
    "basophil": 589, "eosinophil": 1588, "erythroblast": 770, "ig": 1458, "lymphocyte": 608,
    "monocyte": 691, "neutrophil": 1671, "platelet": 1186,
}


def test_pbc_index_matches_the_dataset_readme(pbc_manifest, pbc_dir):
    m = pbc_manifest
    assert m.layout == "pbc" and m.source == "pbc"
    assert len(m) == 8561
    assert m.class_counts() == PBC_CLASS_COUNTS
    assert m.class_counts("fine_label") == dict(sorted(PBC_FINE_COUNTS.items()))
    assert [p.path for p in m.unreadable] == [str(pbc_dir / "neutrophil" / ".DS_169665.jpg")]
    assert "not an image" in m.unreadable[0].reason
    assert set(m.frame["source"]) == {"pbc"}
    assert m.frame["sha1"].str.len().eq(40).all()
    assert {(360, 363), (366, 369), (360, 360), (360, 361)} == set(zip(m.frame.width, m.frame.height))


def test_matek_samples_index_as_rgb_whatever_the_compression(matek_dir):
    m = index_dataset(matek_dir)
    assert m.layout == "tcia-aml" and m.source == "matek-aml"
    assert len(m) == 160 and len(m.class_counts()) == 15
    assert set(m.frame["mode"]) == {"RGBA"}
    compressions = {Image.open(path).info.get("compression") for path in m.frame["path"]}
    assert {"raw", "tiff_adobe_deflate"} <= compressions
    for path in m.frame["path"]:
        image = load_rgb(path)
        assert image.shape == (400, 400, 3) and image.dtype == np.uint8


def test_the_folder_holding_the_tcia_tree_is_accepted(matek_dir):
    assert len(index_dataset(matek_dir.parent)) == 160


def test_bad_files_are_listed_and_the_rest_indexed(tmp_path, pbc_dir):
    root = tmp_path / "pbc"
    for folder in ("basophil", "lymphocyte"):
        (root / folder).mkdir(parents=True)
        for path in sorted((pbc_dir / folder).glob("*.jpg"))[:6]:
            shutil.copy(path, root / folder / path.name)
    (root / "monocyte").mkdir()  # an empty class folder
    victim = sorted((root / "lymphocyte").glob("*.jpg"))[0]
    victim.write_bytes(victim.read_bytes()[:3000])
    (root / "basophil" / "notes.txt").write_text("a note")

    m = index_dataset(root)
    assert len(m) == 11
    assert m.class_counts() == {"basophil": 6, "lymphocyte": 5}
    assert [(p.path, "damaged or incomplete" in p.reason) for p in m.unreadable] == [(str(victim), True)]
    assert m.skipped == [str(root / "basophil" / "notes.txt")]
    assert any("monocyte" in w and "empty class folder" in w for w in m.warnings)


@pytest.mark.parametrize("make, message", [
    (lambda root: None, "no such file or folder"),
    (lambda root: root.mkdir(), "the folder is empty"),
    (lambda root: (root.mkdir(), (root / "x.txt").write_text("x")), "no recognised dataset layout"),
    (lambda root: (root.mkdir(), Image.new("RGB", (4, 4)).save(root / "a.png")), "no class subfolders"),
    (lambda root: ((root / "cls").mkdir(parents=True), (root / "cls" / "x.txt").write_text("x")),
     "hold no image files"),
])
def test_bad_dataset_paths_name_the_problem(tmp_path, make, message):
    root = tmp_path / "data"
    make(root)
    with pytest.raises(RaycellsError, match=message) as error:
        index_dataset(root)
    assert str(root) in str(error.value)


def test_generic_tree_converts_modes(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    Image.new("RGBA", (8, 6), (10, 20, 30, 128)).save(tmp_path / "a" / "rgba.png")
    Image.new("L", (8, 6), 50).save(tmp_path / "a" / "gray.png")
    Image.fromarray(np.full((6, 8), 40000, np.uint16)).save(tmp_path / "b" / "deep.png")
    m = index_dataset(tmp_path)
    assert m.layout == "folders" and m.source == tmp_path.name
    assert m.class_counts() == {"a": 2, "b": 1}
    assert sorted(m.frame["mode"].str[:1]) == ["I", "L", "R"]
    for path in m.frame["path"]:
        assert load_rgb(path).shape == (6, 8, 3)


def test_csv_of_paths_and_labels(tmp_path, pbc_dir):
    images = sorted((pbc_dir / "basophil").glob("*.jpg"))[:3]
    rows = [{"path": str(p), "label": "BAS", "group": f"patient{i % 2}"} for i, p in enumerate(images)]
    shutil.copy(images[0], tmp_path / "local.jpg")
    rows.append({"path": "local.jpg", "label": "EOS", "group": "patient9"})
    rows.append({"path": "missing.jpg", "label": "EOS", "group": "patient9"})
    pd.DataFrame(rows).to_csv(tmp_path / "list.csv", index=False)

    with pytest.raises(RaycellsError, match=r"3 listed paths lead outside the CSV's folder .*"
                                            r"--allow-outside"):
        index_dataset(tmp_path / "list.csv")  # the three PBC images, named by absolute paths
    m = index_dataset(tmp_path / "list.csv", allow_outside=True)
    assert m.layout == "csv" and len(m) == 4
    assert m.class_counts() == {"BAS": 3, "EOS": 1}
    assert set(m.frame["group"]) == {"patient0", "patient1", "patient9"}
    assert str(tmp_path / "local.jpg") in set(m.frame["path"])
    assert [p.path for p in m.unreadable] == [str(tmp_path / "missing.jpg")]
    assert "not found" in m.unreadable[0].reason


def test_a_csv_cannot_lead_out_of_its_folder_with_dots(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "secret.png").write_bytes(b"not read")
    (tmp_path / "data" / "list.csv").write_text("path,label\n../secret.png,x\nsub/../ok.png,y\n")
    with pytest.raises(RaycellsError, match=r"1 listed paths .* such as \.\./secret\.png"):
        index_dataset(tmp_path / "data" / "list.csv")


def test_csv_without_label_column_names_the_columns(tmp_path):
    (tmp_path / "list.csv").write_text("file,class\na.jpg,x\n")
    with pytest.raises(RaycellsError, match=r"no label or path column \(found: file, class\)"):
        index_dataset(tmp_path / "list.csv")


def test_annotations_dat_supplies_labels(tmp_path, matek_dir):
    root = tmp_path / "AML-Cytomorphology_LMU"
    for code in ("MYO", "MOB"):
        shutil.copytree(matek_dir / code, root / code)
    first_myo = sorted((root / "MYO").glob("*.tiff"))[0]
    lines = [f"MYO/{first_myo.name} MOB MYO nan"]
    lines += [f"MOB/{p.name} MOB nan nan" for p in sorted((root / "MOB").glob("*.tiff"))]
    lines.append("MOB/MOB_9999.tiff MOB nan nan")
    (root / "annotations.dat").write_text("\n".join(lines) + "\n")

    m = index_dataset(root)
    row = m.frame.set_index("path").loc[str(first_myo)]
    assert row["label"] == "MOB" and row["annotation_2"] == "MYO" and row["annotation_3"] is None
    assert m.class_counts() == {"MOB": 12, "MYO": 10}
    assert any("not listed" in w for w in m.warnings)
    assert any("were not found" in w and "MOB_9999.tiff" in w for w in m.warnings)


def test_a_decompression_bomb_is_listed_and_the_rest_indexed(tmp_path, pbc_dir):
    """A 20000x20000 PNG (a few hundred KB, 400 million pixels) and a 12000x12000 one are
    unreadable with the reason and the fix; the other images are indexed; --max-pixels lets the
    large scan through."""
    from typer.testing import CliRunner

    from raycells.cli.main import app

    root = tmp_path / "data"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    for path in sorted((pbc_dir / "basophil").glob("*.jpg"))[:3]:
        shutil.copy(path, root / "a" / path.name)
    Image.new("1", (20000, 20000)).save(root / "b" / "bomb.png")
    Image.new("1", (12000, 12000)).save(root / "b" / "large.png")
    shutil.copy(sorted((pbc_dir / "monocyte").glob("*.jpg"))[0], root / "b" / "cell.jpg")
    manifest = index_dataset(root)
    assert len(manifest) == 4
    reasons = {Path(problem.path).name: problem.reason for problem in manifest.unreadable}
    assert "400000000 pixels" in reasons["bomb.png"] and "--max-pixels" in reasons["bomb.png"]
    assert "144,000,000 pixels" in reasons["large.png"]
    assert "--max-pixels 144000000" in reasons["large.png"]
    result = CliRunner().invoke(app, ["data", "index", str(root), "--out", str(tmp_path / "m.parquet")])
    assert result.exit_code == 1 and "bomb.png" in result.output
    larger = CliRunner().invoke(app, ["data", "index", str(root), "--max-pixels", "150000000",
                                      "--out", str(tmp_path / "m2.parquet")], terminal_width=300)
    assert larger.exit_code == 1 and "large.png" not in larger.output and "bomb.png" in larger.output


def test_a_second_index_reads_only_the_files_that_changed(tmp_path, pbc_dir, monkeypatch):
    """Indexing again recalls each unchanged file's facts ($RAYCELLS_CACHE/probes) and reads the
    new or changed ones; the manifest is the same either way."""
    from raycells.data import index as indexing

    monkeypatch.setenv("RAYCELLS_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "data"
    for name in ("basophil", "platelet"):
        (root / name).mkdir(parents=True)
        for image in sorted((pbc_dir / name).iterdir())[:3]:
            shutil.copy(image, root / name / image.name)
    first = index_dataset(root)
    read = []
    real = indexing.probe
    monkeypatch.setattr(indexing, "probe", lambda path, *args: read.append(path) or real(path, *args))
    pd.testing.assert_frame_equal(index_dataset(root).frame, first.frame)
    assert read == []
    changed = sorted((root / "platelet").iterdir())[0]
    changed.write_bytes((root / "basophil" / sorted(p.name for p in (root / "basophil").iterdir())[0])
                        .read_bytes())
    again = index_dataset(root)
    assert read == [str(changed)]
    assert again.frame.set_index("path").loc[str(changed), "sha1"] != first.frame.set_index(
        "path").loc[str(changed), "sha1"]
    read.clear()
    index_dataset(root, max_pixels=10**8)  # another pixel limit: every file read again
    assert len(read) == 6
    blocked = tmp_path / "a-file"  # a cache folder that cannot be made costs only the time
    blocked.write_text("")
    monkeypatch.setenv("RAYCELLS_CACHE", str(blocked))
    (root / "basophil" / "new.jpg").write_bytes(changed.read_bytes())
    assert len(index_dataset(root).frame) == 7
