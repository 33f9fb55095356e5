"""Extra training images from another dataset: mapped, and only ever in training parts."""

from __future__ import annotations

import json

import pytest

from raycells.data.extra import EXTRA_FOLD, load_mapping, mapped_extra
from raycells.data.folds import fold_parts
from raycells.data.index import index_dataset
from raycells.data.manifest import read_manifest
from raycells.data.schemes import PBC_TO_AML
from raycells.errors import RaycellsError
from raycells.runs.rundir import RunDir
from raycells.runs.setup import prepare_run
from raycells.settings import build_settings


def test_mappings_built_in_or_from_a_file(tmp_path):
    assert load_mapping("pbc-to-aml") == PBC_TO_AML
    (tmp_path / "m.json").write_text(json.dumps({"LY": "LYT"}))
    (tmp_path / "m.csv").write_text("from,to\nLY,LYT\nMO,MON\n")
    assert load_mapping(str(tmp_path / "m.json")) == {"LY": "LYT"}
    assert load_mapping(str(tmp_path / "m.csv")) == {"LY": "LYT", "MO": "MON"}
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(RaycellsError, match="columns from,to"):
        load_mapping(str(tmp_path / "bad.csv"))
    assert load_mapping("aml-to-pbc")["MYB"] == "MY"
    with pytest.raises(RaycellsError, match=r"neither a built-in mapping \(pbc-to-aml, aml-to-pbc\)"):
        load_mapping("aml-to-mll")


def test_pbc_images_map_onto_the_aml_classes_by_fine_label(pbc_manifest):
    extra = mapped_extra(pbc_manifest, PBC_TO_AML, {"MYB", "PMO", "EOS"})
    counts = extra["label"].value_counts().to_dict()
    assert counts == {"EOS": 1588, "MYB": 593, "PMO": 303}  # EO, MY, PMY in PBC
    assert (extra["source"] == "pbc").all()
    with pytest.raises(RaycellsError, match="no image maps onto"):
        mapped_extra(pbc_manifest, PBC_TO_AML, {"KSC"})


def test_extra_images_are_in_every_training_part_and_nothing_else(tmp_path, matek_dir, pbc_dir):
    experiment, placement = build_settings(flags={"data": str(matek_dir), "extra_data": str(pbc_dir),
                                                  "extra_map": "pbc-to-aml"})
    run = RunDir(tmp_path / "run")
    _manifest, plan = prepare_run(run, experiment, placement, index_dataset(matek_dir), resume=False)
    extra = plan.index[plan["fold"] == EXTRA_FOLD]
    primary = plan.index[plan["fold"] != EXTRA_FOLD]
    assert len(primary) == 160 and len(extra) == 8561 - 1186 - 64 - 28  # all but PLATELET, IG, NEUTROPHIL
    for k in range(experiment.folds):
        parts = fold_parts(plan, k)
        assert set(extra) <= set(parts["train"])
        assert not set(extra) & (set(parts["val"]) | set(parts["test"]))
    saved = read_manifest(run.manifest).frame
    assert len(saved) == len(plan) and (saved["path"] == plan["path"]).all()
    assert set(saved.loc[extra, "source"]) == {"pbc"}
    counts = json.loads(run.config.read_text())["data"]["extra_training_images"]
    assert counts["NGS"] == 824 and counts["PMO"] == 303 and sum(counts.values()) == len(extra)


def test_extra_data_needs_a_mapping():
    with pytest.raises(RaycellsError, match="extra_map"):
        build_settings(flags={"data": "x", "extra_data": "y"})


def test_extra_images_identical_to_the_runs_own_are_dropped_with_a_warning(tmp_path, pbc_dir):
    """A byte-identical or re-encoded copy of a primary image among the extra images trained in
    every fold while its twin sat in a test fold (24 of 24 in a small check)."""
    from PIL import Image

    eosinophils = sorted((pbc_dir / "eosinophil").iterdir())
    lymphocytes = sorted((pbc_dir / "lymphocyte").iterdir())
    for name, images in (("eosinophil", eosinophils[:10]), ("lymphocyte", lymphocytes[:10])):
        (tmp_path / "data" / name).mkdir(parents=True)
        for image in images:
            (tmp_path / "data" / name / image.name).symlink_to(image)
    extra = tmp_path / "extra" / "eosinophil"
    extra.mkdir(parents=True)
    for image in eosinophils[:4]:  # byte-identical twins
        (extra / image.name).symlink_to(image)
    with Image.open(eosinophils[4]) as picture:  # the same picture saved as PNG: other bytes
        picture.save(extra / "reencoded.png")
    for image in eosinophils[20:25]:  # new pictures
        (extra / image.name).symlink_to(image)
    # PBC file names give the fine label EO; the re-encoded copy has none: its folder's label
    (tmp_path / "map.json").write_text(json.dumps({"EO": "eosinophil", "eosinophil": "eosinophil"}))
    experiment, placement = build_settings(flags={
        "data": str(tmp_path / "data"), "extra_data": str(tmp_path / "extra"),
        "extra_map": str(tmp_path / "map.json"), "folds": 2, "batch_size": 4})
    run = RunDir(tmp_path / "run")
    _manifest, plan = prepare_run(run, experiment, placement, index_dataset(tmp_path / "data"),
                                  resume=False)
    assert (plan["fold"] == EXTRA_FOLD).sum() == 5
    data = json.loads(run.config.read_text())["data"]
    assert data["extra_training_images"] == {"eosinophil": 5}
    assert any(w.startswith("5 of 10 extra images") and "dropped" in w for w in data["warnings"])


def test_near_duplicate_chains_over_the_size_guard_are_not_merged():
    """Difference hashes one bit apart chain: 0-1-2-...-9 joins 10 of 200 images, over 1 %, so
    they are not kept together; a pair (2 images) is."""
    import numpy as np
    import pandas as pd

    from raycells.data.duplicates import image_groups, near_groups, threshold_tradeoff

    hashes = [(1 << i) - 1 for i in range(10)]  # each one more bit than the one before
    rng = np.random.default_rng(0)
    hashes += [int(h) for h in rng.integers(0, 2**62, 188, dtype=np.int64)]  # far from everything
    hashes += [hashes[-1] ^ 0b1]  # a near pair with the last random image
    frame = pd.DataFrame({"path": [f"{i}.png" for i in range(len(hashes) + 1)],
                          "label": "a", "sha1": [f"s{i}" for i in range(len(hashes) + 1)],
                          "dhash": [f"{h:016x}" for h in hashes] + [None]})
    labels, unmerged = near_groups(frame.iloc[:-1], max_bits=1)
    assert unmerged == [10]
    assert len(set(labels[:10])) == 10 and labels[197] == labels[198]
    groups = image_groups(frame.iloc[:-1].assign(dhash=frame["dhash"]), near=True)  # NEAR_BITS 4
    assert len(set(groups[:10])) == 10 and groups[197] == groups[198]
    rows = {row["bits"]: row for row in threshold_tradeoff(frame, thresholds=(1, 2))}
    assert rows[1]["largest_group"] == 10 and rows[1]["pairs"] == 10


def test_near_groups_worked_out_by_the_caller_are_used_as_they_are():
    """prepare_run works the near pairs out once (for the folds and for its warning) and hands
    them to the fold split as a column: the same groups as working them out there."""
    import numpy as np
    import pandas as pd

    from raycells.data.duplicates import image_groups, near_groups

    rng = np.random.default_rng(1)
    hashes = [int(h) for h in rng.integers(0, 2**62, 300, dtype=np.int64)]
    hashes[1], hashes[2] = hashes[0] ^ 1, hashes[0] ^ 3  # a chain of three near copies
    frame = pd.DataFrame({"path": [f"{i}.png" for i in range(300)], "label": "a",
                          "sha1": [f"s{i}" for i in range(300)], "dhash": [f"{h:016x}" for h in hashes]})
    labels, unmerged = near_groups(frame)
    given = image_groups(frame.assign(near_group=labels), near=True)
    assert unmerged == [] and (given == image_groups(frame, near=True)).all()
    assert given[0] == given[1] == given[2] and len(set(given)) == 298
