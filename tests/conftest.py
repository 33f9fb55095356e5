"""Shared fixtures: the real images in ../shared/data (never copied into the repository)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from raycells.index import index_dataset
from raycells.manifest import Manifest, write_manifest
from raycells.rundir import RunDir, write_plan

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _shared(relative: str) -> Path:
    path = SHARED_DATA / relative
    if not path.is_dir():
        pytest.fail(f"{path} is missing: the tests need the real images in ../shared/data beside "
                    "the repository checkout.")
    return path


@pytest.fixture(scope="session")
def pbc_dir() -> Path:
    return _shared("pbc")


@pytest.fixture(scope="session")
def matek_dir() -> Path:
    return _shared("matek-samples/AML-Cytomorphology_LMU")


@pytest.fixture(scope="session")
def pbc_manifest(pbc_dir):
    return index_dataset(pbc_dir)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Generated and cached data goes to a per-session temporary folder, not ~/.cache."""
    monkeypatch.setenv("RAYCELLS_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture
def prediction_run():
    """Build a run directory over the classes MOB, MYO, NGS whose fold k holds the given
    predictions [(label, [p_MOB, p_MYO, p_NGS]), ...]: prediction_run(folder, {k: rows}, total)."""
    classes = ["MOB", "MYO", "NGS"]

    def build(folder: Path, folds: dict[int, list[tuple[str, list[float]]]], total: int | None = None) -> Path:
        run = RunDir(folder / "run")
        run.path.mkdir(parents=True)
        run.config.write_text(json.dumps({"data": {"classes": classes},
                                          "settings": {"experiment": {"folds": total or len(folds)}}}))
        plan_rows = []
        for k, rows in folds.items():
            frame = pd.DataFrame({"path": [f"/f{k}/{i}.png" for i in range(len(rows))],
                                  "label": [label for label, _ in rows]})
            probs = np.array([p for _, p in rows])
            frame["predicted"] = np.asarray(classes)[probs.argmax(1)]
            for i, code in enumerate(classes):
                frame[f"prob_{code}"] = probs[:, i]
            run.fold(k).mkdir()
            frame.to_parquet(run.fold(k) / "predictions.parquet")
            plan_rows += [(path, label, k) for path, label in zip(frame["path"], frame["label"])]
        write_plan(pd.DataFrame(plan_rows, columns=["path", "label", "fold"]), run.folds)
        return run.path

    return build


@pytest.fixture(scope="module")
def ray_session():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def small_pbc(pbc_manifest, tmp_path_factory) -> Path:
    """A manifest of 12 real images per PBC class."""
    frame = pbc_manifest.frame.groupby("label").head(12).reset_index(drop=True)
    path = tmp_path_factory.mktemp("data") / "small.parquet"
    write_manifest(Manifest(frame=frame, root=pbc_manifest.root, layout="pbc", source="pbc"), path)
    return path
