"""Extra training images from another dataset, mapped onto the run's classes (for example PBC
cells for the rare AML classes: `--extra-data ../shared/data/pbc --extra-map pbc-to-aml`).

Extra images join the training part of every fold and nothing else: in the fold plan their fold
is -1 (never a test fold) and they are never in an inner validation split. The run's manifest
keeps them with their own `source`, so every later step can count them apart.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..errors import RaycellsError
from .manifest import Manifest
from .schemes import MAPPINGS

EXTRA_FOLD = -1
"""The fold-plan value of an extra image: in no test fold."""


def load_mapping(name: str, flag: str = "--extra-map") -> dict[str, str]:
    """A label mapping: a built-in name (pbc-to-aml, aml-to-pbc) or a .json ({"from": "to"}) or .csv
    (columns from,to) file. Keys are the other dataset's fine labels or labels. `flag` names
    the option it came from, in errors."""
    if name in MAPPINGS:
        return dict(MAPPINGS[name])
    path = Path(name)
    if not path.is_file():
        raise RaycellsError(f"{flag} {name}: neither a built-in mapping "
                            f"({', '.join(MAPPINGS)}) nor a mapping file.")
    try:
        if path.suffix == ".json":
            mapping = json.loads(path.read_text())
        elif path.suffix == ".csv":
            table = pd.read_csv(path)
            mapping = dict(zip(table["from"].astype(str), table["to"].astype(str)))
        else:
            raise RaycellsError(f"{path}: a mapping file is .json or .csv (columns from,to).")
    except (OSError, ValueError, KeyError) as error:
        raise RaycellsError(f"{path}: cannot read the mapping ({error}). Expected a JSON object "
                            '{"from": "to"} or a CSV with columns from,to.') from error
    if not isinstance(mapping, dict) or not mapping:
        raise RaycellsError(f"{path}: the mapping is empty or not a table of from -> to labels.")
    return {str(k): str(v) for k, v in mapping.items()}


def mapped_extra(extra: Manifest, mapping: dict[str, str], classes: set[str]) -> pd.DataFrame:
    """The images of `extra` (another dataset) whose fine label (or else label) maps to one of
    `classes`, relabelled; the others are left out."""
    frame = extra.frame
    key = frame["fine_label"].fillna(frame["label"]) if "fine_label" in frame else frame["label"]
    target = key.astype(str).map(mapping)
    keep = target.isin(classes)
    if not keep.any():
        raise RaycellsError(f"{extra.root}: no image maps onto the run's classes "
                            f"({', '.join(sorted(classes))}) with this mapping; check the mapping.")
    chosen = frame[keep].copy()
    chosen["label"] = target[keep]
    chosen["source"] = chosen["source"].fillna(extra.source) if "source" in chosen else extra.source
    return chosen.reset_index(drop=True)


def with_extra(plan: pd.DataFrame, extra: pd.DataFrame, folds: int) -> pd.DataFrame:
    """The fold plan with the extra images appended: no test fold, no validation split."""
    rows = pd.DataFrame({"path": extra["path"].to_numpy(), "label": extra["label"].to_numpy(),
                         "fold": EXTRA_FOLD})
    for k in range(folds):
        rows[f"val_{k}"] = False
    return pd.concat([plan, rows], ignore_index=True)
