"""The manifest: one row per usable image, plus what indexing found wrong, stored as one Parquet
file (rows as the table, the findings as JSON in the file's metadata)."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import RaycellsError
from ..files import atomic_path

APPEARANCE = ("width", "height", "mode", "format", "file_bytes", "quant", "mean_r", "mean_g",
              "mean_b", "std_r", "std_g", "std_b")
"""What an image looks like apart from the cell: size, file format, JPEG quantisation tables,
file size, colour statistics (`raycells.data.images.ImageFacts`). The shortcut check asks whether
these alone tell the classes apart."""

COLUMNS = ("path", "label", "fine_label", "source", "group", "sha1", "dhash", *APPEARANCE)
"""The columns every manifest has, in this order; a layout may add more after them. A manifest
written before a column existed reads with that column empty."""

_METADATA_KEY = b"raycells"


@dataclass(frozen=True)
class Problem:
    """A file that could not be used, and why."""

    path: str
    reason: str


@dataclass
class Manifest:
    """The images of one dataset and what indexing found on the way."""

    frame: pd.DataFrame
    """One row per readable image, with at least the columns in COLUMNS."""
    root: str
    """The folder (or CSV file) that was indexed."""
    layout: str
    """Which layout was recognised: tcia-aml, pbc, folders, csv or demo."""
    source: str
    """Dataset name written into the source column."""
    synthetic: bool = False
    """True for the built-in demo data, which is generated, not photographed."""
    skipped: list[str] = field(default_factory=list)
    """Files left out because their names are not image names."""
    unreadable: list[Problem] = field(default_factory=list)
    """Files with image names that could not be decoded."""
    warnings: list[str] = field(default_factory=list)
    """Anything else worth a look (empty class folders, annotation mismatches, ...)."""

    def __len__(self) -> int:
        return len(self.frame)

    def class_counts(self, column: str = "label") -> dict[str, int]:
        """Images per class (or per fine label), sorted by class code."""
        counts = self.frame[column].dropna().value_counts()
        return {str(key): int(counts[key]) for key in sorted(counts.index)}


def fingerprint(sha1s) -> str:
    """One sha1 over the sorted sha1s of a set of images: the same images, the same value."""
    return hashlib.sha1("\n".join(sorted(map(str, sha1s))).encode()).hexdigest()


def write_manifest(manifest: Manifest, path: str | os.PathLike) -> Path:
    """Write the manifest to `path` (Parquet) atomically and return the path."""
    info = {key: value for key, value in asdict(manifest).items() if key != "frame"}
    table = pa.Table.from_pandas(manifest.frame, preserve_index=False)
    metadata = dict(table.schema.metadata or {})
    metadata[_METADATA_KEY] = json.dumps(info).encode()
    table = table.replace_schema_metadata(metadata)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return Path(path)


def read_manifest(path: str | os.PathLike) -> Manifest:
    """Read a manifest written by `write_manifest` (or any Parquet file with path and label)."""
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as error:
        raise RaycellsError(
            f"{path}: not a readable Parquet manifest ({error}). Create one with "
            "`raycells data index DATASET --out manifest.parquet`."
        ) from error
    missing = {"path", "label"} - set(table.column_names)
    if missing:
        raise RaycellsError(
            f"{path}: the manifest has no {', '.join(sorted(missing))} column. Create it with "
            "`raycells data index DATASET`."
        )
    frame = table.to_pandas()
    for column in COLUMNS:
        if column not in frame:
            frame[column] = None
    raw = (table.schema.metadata or {}).get(_METADATA_KEY)
    info = json.loads(raw) if raw else {"root": str(path), "layout": "parquet", "source": Path(path).stem}
    info["unreadable"] = [Problem(**item) for item in info.get("unreadable", [])]
    return Manifest(frame=frame, **info)


def training_labels(frame: pd.DataFrame, level: str, origin: str) -> pd.DataFrame:
    """`frame` with the `label` column a run trains on: the class as indexed ("class"), or the
    fine label ("fine"), which every image then needs."""
    if level == "class":
        return frame
    fine = frame["fine_label"] if "fine_label" in frame else pd.Series(None, index=frame.index)
    missing = fine.isna()
    if missing.any():
        example = frame.loc[missing, "path"].iloc[0]
        raise RaycellsError(f"{origin}: --labels fine needs a fine label for every image, and "
                            f"{int(missing.sum()):,} have none (for example {example}). PBC file "
                            "names carry one; a CSV can give a fine_label column. Or train on "
                            "--labels class.")
    return frame.assign(label=fine.astype(str))
