"""Images that are the same picture: byte-identical files (the same sha1) and near-duplicates (the
same picture re-encoded, resized or slightly changed: difference hashes at most NEAR_BITS of 64
bits apart). A test image whose twin was trained on is not a test, so the fold plan keeps each
such set in one part of every fold; copies filed under two labels are label conflicts."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from ..errors import RaycellsError

NEAR_BITS = 4
"""Most differing bits of two difference hashes for a near-duplicate pair. On PBC (8,561 images)
the closest pairs that are not byte-identical differ in 2 bits (1 pair), then 6 (5 pairs)."""


@dataclass(frozen=True)
class DuplicateSet:
    """Images showing the same picture."""

    paths: list[str]
    labels: list[str]
    bits: int
    """0 for byte-identical files; otherwise the differing bits of the hashes (the largest)."""

    @property
    def conflicting(self) -> bool:
        """Filed under more than one label."""
        return len(set(self.labels)) > 1


def exact_sets(frame: pd.DataFrame) -> list[DuplicateSet]:
    """Byte-identical files, by sha1."""
    shared = frame[frame["sha1"].notna() & frame["sha1"].duplicated(keep=False)]
    return [DuplicateSet(paths=list(group["path"]), labels=list(group["label"].astype(str)), bits=0)
            for _, group in shared.groupby("sha1", sort=True)]


def near_pairs(frame: pd.DataFrame, max_bits: int = NEAR_BITS) -> list[DuplicateSet]:
    """Pairs of different files whose difference hashes are at most `max_bits` apart."""
    known = frame["dhash"].notna().to_numpy() if "dhash" in frame else np.zeros(0, dtype=bool)
    if not known.any():
        return []
    positions = np.flatnonzero(known)
    hashes = np.array([int(value, 16) for value in frame["dhash"].to_numpy()[known]], dtype=np.uint64)
    sha1 = frame["sha1"].to_numpy()[known]
    found = []
    for start in range(0, len(hashes), 512):
        bits = np.bitwise_count(hashes[start:start + 512, None] ^ hashes[None, :])
        for i, j in zip(*np.nonzero(bits <= max_bits)):
            i = i + start
            if i < j and sha1[i] != sha1[j]:
                found.append((positions[i], positions[j], int(bits[i - start, j])))
    rows = frame.reset_index(drop=True)
    return [DuplicateSet(paths=[rows.at[i, "path"], rows.at[j, "path"]],
                         labels=[str(rows.at[i, "label"]), str(rows.at[j, "label"])], bits=bits)
            for i, j, bits in found]


def image_groups(frame: pd.DataFrame, *, near: bool = False) -> np.ndarray | None:
    """A group id per image (position in `frame`): images of one group always fall in the same
    part of a fold. A group joins images with the same `group` value (patient, slide), the same
    sha1 and, with `near`, near-duplicate pictures. None when every image is a group of its own."""
    n = len(frame)
    rows = frame.reset_index(drop=True)
    links = []
    for column in ("group", "sha1"):
        if column in rows:
            codes, _ = pd.factorize(rows[column].astype("string").replace("", pd.NA))
            members = np.flatnonzero(codes >= 0)  # -1: no value, a group of its own
            first = pd.Series(members).groupby(codes[members]).transform("first").to_numpy()
            links.append(np.stack([members, first]))
    if near:
        if "dhash" not in rows or rows["dhash"].isna().all():
            raise RaycellsError("grouping near-duplicates needs the images' difference hashes, "
                                "which this manifest lacks (it was written by an older raycells): "
                                "index the dataset again with `raycells data index`.")
        index = {path: i for i, path in enumerate(rows["path"])}
        pairs = [(index[found.paths[0]], index[found.paths[1]]) for found in near_pairs(rows)]
        if pairs:
            links.append(np.array(pairs).T)
    edges = np.concatenate(links, axis=1) if links else np.zeros((2, 0), dtype=int)
    graph = coo_matrix((np.ones(edges.shape[1]), (edges[0], edges[1])), shape=(n, n))
    count, labels = connected_components(graph, directed=False)
    return None if count == n else labels
