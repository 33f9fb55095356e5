import hashlib
import json

import numpy as np

from raycells.data.demo import demo_counts, demo_dataset, draw_cell, write_demo
from raycells.data.index import index_dataset
from raycells.data.schemes import AML


def _digests(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*.png"))}


def test_same_seed_same_images_other_seed_other_images(tmp_path):
    a = write_demo(tmp_path / "a", seed=3, largest=6, smallest=2)
    b = write_demo(tmp_path / "b", seed=3, largest=6, smallest=2)
    c = write_demo(tmp_path / "c", seed=4, largest=6, smallest=2)
    assert _digests(a) == _digests(b)
    assert _digests(a).keys() == _digests(c).keys()
    assert all(_digests(a)[k] != _digests(c)[k] for k in _digests(a))


def test_counts_are_skewed_like_the_real_data_and_fit_five_folds():
    counts = demo_counts()
    assert set(counts) == set(AML.classes)
    assert min(counts.values()) >= 10
    assert max(counts, key=counts.get) == "NGS"
    assert counts["NGS"] > counts["LYT"] > counts["MYO"] > counts["MON"] > counts["LYA"]


def test_classes_are_drawn_differently():
    means = {code: draw_cell(code, np.random.default_rng(0)).reshape(-1, 3).mean(0) for code in AML.codes}
    assert np.linalg.norm(means["EOS"] - means["LYT"]) > 5


def test_demo_dataset_is_cached_and_indexed_as_synthetic():
    folder = demo_dataset(seed=0)
    assert demo_dataset(seed=0) == folder
    marker = json.loads((folder / "raycells-demo.json").read_text())
    assert marker["synthetic"] is True and "not real" in marker["note"]
    m = index_dataset(folder)
    assert m.layout == "demo" and m.synthetic and m.source == "demo-synthetic"
    assert m.class_counts() == demo_counts()
    assert not m.unreadable
