import pytest

from raycells.data.manifest import COLUMNS, read_manifest, training_labels, write_manifest
from raycells.errors import RaycellsError


def test_round_trip_keeps_rows_and_findings(tmp_path, pbc_manifest):
    path = write_manifest(pbc_manifest, tmp_path / "m.parquet")
    back = read_manifest(path)
    assert list(back.frame.columns[: len(COLUMNS)]) == list(COLUMNS)
    assert back.frame["path"].tolist() == pbc_manifest.frame["path"].tolist()
    assert back.frame["sha1"].tolist() == pbc_manifest.frame["sha1"].tolist()
    assert back.unreadable == pbc_manifest.unreadable
    assert (back.layout, back.source, back.root) == ("pbc", "pbc", pbc_manifest.root)
    assert [p.name for p in tmp_path.iterdir()] == ["m.parquet"]  # no temporary file left


def test_a_file_that_is_not_a_manifest_is_refused(tmp_path):
    (tmp_path / "x.parquet").write_text("hello")
    with pytest.raises(RaycellsError, match="raycells data index"):
        read_manifest(tmp_path / "x.parquet")


def test_training_labels_are_the_class_or_the_fine_label(pbc_manifest):
    frame = pbc_manifest.frame
    assert training_labels(frame, "class", "pbc") is frame
    fine = training_labels(frame, "fine", "pbc")
    assert fine["label"].nunique() == 13 and (fine["label"] == frame["fine_label"]).all()
    assert (fine["path"] == frame["path"]).all()
