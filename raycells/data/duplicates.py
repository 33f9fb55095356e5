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
    rows = frame.reset_index(drop=True)
    return [DuplicateSet(paths=[rows.at[i, "path"], rows.at[j, "path"]],
                         labels=[str(rows.at[i, "label"]), str(rows.at[j, "label"])], bits=bits)
            for i, j, bits in _near_positions(rows, max_bits)]


def _hashes(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(positions of the rows with a difference hash, the hashes as uint64)."""
    if "dhash" not in frame:  # a manifest from before difference hashes
        return np.zeros(0, dtype=int), np.zeros(0, dtype=np.uint64)
    known = frame["dhash"].notna().to_numpy()
    positions = np.flatnonzero(known)
    return positions, np.array([int(value, 16) for value in frame["dhash"].to_numpy()[known]],
                               dtype=np.uint64)


def _near_positions(frame: pd.DataFrame, max_bits: int) -> list[tuple[int, int, int]]:
    """(i, j, bits) for each near pair of rows i < j (different sha1) of `frame`."""
    positions, hashes = _hashes(frame)
    sha1 = frame["sha1"].to_numpy()[positions] if len(positions) else np.zeros(0)
    found = []
    for start in range(0, len(hashes), 512):
        bits = np.bitwise_count(hashes[start:start + 512, None] ^ hashes[None, :])
        for i, j in zip(*np.nonzero(bits <= max_bits)):
            i = i + start
            if i < j and sha1[i] != sha1[j]:
                found.append((int(positions[i]), int(positions[j]), int(bits[i - start, j])))
    return found


def near_to(frame: pd.DataFrame, others: pd.DataFrame, max_bits: int = NEAR_BITS) -> np.ndarray:
    """Which rows of `frame` are byte-identical (sha1) or near-identical (difference hashes at most
    `max_bits` apart) to some row of `others`."""
    hit = frame["sha1"].isin(set(others["sha1"].dropna())).to_numpy().copy()
    mine, hashes = _hashes(frame.reset_index(drop=True))
    _, theirs = _hashes(others.reset_index(drop=True))
    if len(hashes) and len(theirs):
        for start in range(0, len(hashes), 512):
            bits = np.bitwise_count(hashes[start:start + 512, None] ^ theirs[None, :])
            hit[mine[start:start + 512][(bits <= max_bits).any(axis=1)]] = True
    return hit


MAX_NEAR_GROUP = 0.01
"""The largest share of a dataset one group of near-duplicates may join. Near pairs chain (A
near B, B near C): at 12 bits on PBC one group joined 5,197 of 8,561 images, which then fell in
one test fold together. A group larger than this is reported and not merged."""


def near_groups(frame: pd.DataFrame, max_bits: int = NEAR_BITS) -> tuple[np.ndarray, list[int]]:
    """The components that near pairs (at most `max_bits` apart) chain `frame`'s rows into, those
    larger than MAX_NEAR_GROUP of the rows split back into single images: (a component id per
    row, the sizes of the components not merged)."""
    n = len(frame)
    pairs = np.array([(i, j) for i, j, _ in _near_positions(frame.reset_index(drop=True), max_bits)],
                     dtype=int).reshape(-1, 2).T
    graph = coo_matrix((np.ones(pairs.shape[1]), (pairs[0], pairs[1])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    sizes = np.bincount(labels)
    limit = max(2, int(np.ceil(MAX_NEAR_GROUP * n)))
    too_large = np.flatnonzero(sizes > limit)
    alone = np.isin(labels, too_large)
    labels = labels.copy()
    labels[alone] = labels.max(initial=-1) + 1 + np.arange(alone.sum())
    return labels, sorted((int(sizes[k]) for k in too_large), reverse=True)


def threshold_tradeoff(frame: pd.DataFrame, thresholds=(2, 4, 6, 8, 12)) -> list[dict[str, int]]:
    """For each near-duplicate threshold (bits): the near pairs it finds, the images they join
    into groups and the largest group they chain (what --group-near-duplicates would keep
    together, before the size guard)."""
    rows = frame.reset_index(drop=True)
    found = _near_positions(rows, max(thresholds))
    table = []
    for bits in thresholds:
        pairs = np.array([(i, j) for i, j, b in found if b <= bits], dtype=int).reshape(-1, 2).T
        graph = coo_matrix((np.ones(pairs.shape[1]), (pairs[0], pairs[1])), shape=(len(rows),) * 2)
        _, labels = connected_components(graph, directed=False)
        sizes = np.bincount(labels)
        table.append({"bits": bits, "pairs": pairs.shape[1],
                      "images_grouped": int(sizes[sizes > 1].sum()), "largest_group": int(sizes.max(initial=0))})
    return table


def image_groups(frame: pd.DataFrame, *, near: bool = False) -> np.ndarray | None:
    """A group id per image (position in `frame`): images of one group always fall in the same
    part of a fold. A group joins images with the same `group` value (patient, slide), the same
    sha1 and, with `near`, near-duplicate pictures (`near_groups`, or the caller's column
    "near_group" of its labels: a chain larger than MAX_NEAR_GROUP is not merged). None when
    every image is a group of its own."""
    n = len(frame)
    rows = frame.reset_index(drop=True)
    links = []
    columns = ("group", "sha1")
    if near:
        if "dhash" not in rows or rows["dhash"].isna().all():
            raise RaycellsError("grouping near-duplicates needs the images' difference hashes, "
                                "which this manifest lacks (it was written by an older raycells): "
                                "index the dataset again with `raycells data index`.")
        if "near_group" not in rows:  # not worked out by the caller already
            rows = rows.assign(near_group=near_groups(rows)[0])
        columns += ("near_group",)
    for column in columns:
        if column in rows:
            codes, _ = pd.factorize(rows[column].astype("string").replace("", pd.NA))
            members = np.flatnonzero(codes >= 0)  # -1: no value, a group of its own
            first = pd.Series(members).groupby(codes[members]).transform("first").to_numpy()
            links.append(np.stack([members, first]))
    edges = np.concatenate(links, axis=1) if links else np.zeros((2, 0), dtype=int)
    graph = coo_matrix((np.ones(edges.shape[1]), (edges[0], edges[1])), shape=(n, n))
    count, labels = connected_components(graph, directed=False)
    return None if count == n else labels
