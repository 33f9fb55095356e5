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
