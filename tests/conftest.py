"""Shared fixtures: the real images in ../shared/data (never copied into the repository)."""

from __future__ import annotations

from pathlib import Path

import pytest

from raycells.index import index_dataset

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
