import pandas as pd
import pytest

from raycells.data.manifest import Manifest, Problem
from raycells.data.summary import summarize


def _manifest(rows):
    frame = pd.DataFrame(rows, columns=["path", "label", "fine_label", "sha1", "width", "height", "mode"])
    return Manifest(frame=frame, root="/data", layout="folders", source="t",
                    unreadable=[Problem("/data/x.jpg", "broken")], skipped=["/data/a.txt"])


def test_duplicates_small_classes_sizes_and_modes():
    rows = [
        ("/a1", "MYO", None, "s1", 10, 10, "RGB"),
        ("/a2", "MYO", None, "s1", 10, 10, "RGB"),   # duplicate within MYO
        ("/a3", "MYO", None, "s2", 10, 10, "RGBA"),
        ("/b1", "MOB", None, "s2", 12, 10, "RGB"),   # duplicate across MYO and MOB
        ("/c1", "NGS", None, "s3", 10, 10, "L"),
    ]
    summary = summarize(_manifest(rows), folds=2)
    assert summary.scheme == "aml"
    assert [row.code for row in summary.classes] == ["NGS", "MYO", "MOB"]  # the paper's order
    assert summary.sizes == [(10, 10, 4), (12, 10, 1)]
    assert {mode: n for mode, n, _ in summary.modes} == {"RGB": 3, "RGBA": 1, "L": 1}
    groups = [(g.paths, g.conflicting) for g in summary.duplicates]
    assert groups == [(["/a1", "/a2"], False), (["/a3", "/b1"], True)]
    assert summary.too_small == [("MOB", 1), ("NGS", 1)]
    assert summary.unreadable[0].path == "/data/x.jpg" and summary.skipped == ["/data/a.txt"]


@pytest.mark.slow  # the shortcut check's forests on all 8,561 PBC images
def test_fine_labels_are_counted_per_class(pbc_manifest):
    summary = summarize(pbc_manifest)
    ig = next(row for row in summary.classes if row.code == "ig")
    assert ig.fine == {"IG": 64, "MMY": 498, "MY": 593, "PMY": 303}
    assert ig.name == "Immature granulocyte"
    assert summary.too_small == []
    conflicts = [g.paths for g in summary.duplicates if g.conflicting]
    assert [[path.split("pbc/")[1] for path in paths] for paths in conflicts] == [
        ["eosinophil/EO_225902.jpg", "neutrophil/BNE_191112.jpg"]]


def test_the_shortcut_check_scores_alike_in_one_thread_or_several(pbc_manifest, monkeypatch):
    """Small datasets fit the check's forests in one thread (faster there), large ones in one per
    core: the forests, and so every class's AUC, are the same either way."""
    from raycells.data import shortcuts

    frame = pbc_manifest.frame.groupby("label").head(20).reset_index(drop=True)
    labels = frame["label"].to_numpy().astype(str)
    columns = [column for group in shortcuts.FACTS.values() for column in group]
    alone = shortcuts._aucs(frame, columns, labels, 5, 0)
    monkeypatch.setattr(shortcuts, "PARALLEL_FROM", 0)
    assert shortcuts._aucs(frame, columns, labels, 5, 0) == alone
