"""Sampling policies: expected class counts per epoch, and what the Ray Data pipeline draws."""

from __future__ import annotations

import numpy as np
import pytest

from raycells.data.cache import image_cache
from raycells.data.folds import fold_parts, make_folds
from raycells.data.manifest import read_manifest
from raycells.data.pipeline import part_dataset, spread_copies
from raycells.data.sampling import draw_copies, expected_copies, loss_weights
from raycells.seeds import uniforms
from raycells.settings import Placement, Sampling
from raycells.train.trainer import init_ray

COUNTS = np.array([100, 10, 1])


def per_class(sampling: Sampling, counts=COUNTS) -> np.ndarray:
    return counts * expected_copies(sampling, counts)


def test_each_policy_gives_its_class_counts():
    assert per_class(Sampling()).tolist() == [100, 10, 1]
    assert per_class(Sampling("oversample")).tolist() == [100, 100, 100]
    assert per_class(Sampling("oversample", target=50)).tolist() == [100, 50, 50]
    assert per_class(Sampling("oversample", cap=20)).tolist() == [100, 100, 20]
    sqrt = per_class(Sampling("sqrt"))
    assert sqrt.sum() == pytest.approx(111)
    assert sqrt / sqrt[2] == pytest.approx([10, np.sqrt(10), 1])
    assert per_class(Sampling("class-weighted")).tolist() == [100, 10, 1]


def test_same_length_epochs_hold_as_many_images_as_the_training_part():
    """At equal compute every policy's epoch is as long as one pass over the training images; the
    class proportions stay the policy's (oversample: equal classes, the largest subsampled)."""
    for policy in ("none", "oversample", "sqrt", "class-weighted"):
        counts = per_class(Sampling(policy, same_length=True))
        assert counts.sum() == pytest.approx(COUNTS.sum())
    assert per_class(Sampling("oversample", same_length=True)) == pytest.approx([37, 37, 37])
    assert Sampling("oversample", same_length=True).resamples
    assert not Sampling("none", same_length=True).resamples


def test_only_class_weighting_weighs_the_loss():
    weights = loss_weights(Sampling("class-weighted"), np.array([100, 10, 1, 0]))
    assert weights == pytest.approx([111 / 300, 111 / 30, 111 / 3, 0])
    for policy in ("none", "oversample", "sqrt"):
        assert loss_weights(Sampling(policy), COUNTS) is None


def test_a_class_without_training_images_gets_no_copies():
    for policy in ("oversample", "sqrt"):
        copies = expected_copies(Sampling(policy), np.array([50, 0, 5]))
        assert copies[1] == 0 and np.isfinite(copies).all()


def test_drawn_copies_match_the_expectation_on_average():
    expected = np.array([0.25, 1.0, 2.5])
    draws = np.array([draw_copies(expected, uniforms(key, np.arange(3))) for key in range(4000)])
    assert set(np.unique(draws[:, 0])) == {0, 1} and (draws[:, 1] == 1).all()
    assert set(np.unique(draws[:, 2])) == {2, 3}
    assert draws.mean(axis=0) == pytest.approx(expected, abs=0.03)


def test_bad_parameters_are_refused():
    for kwargs in ({"policy": "smote"}, {"policy": "oversample", "target": 0},
                   {"policy": "oversample", "cap": 0.5}):
        with pytest.raises(ValueError):
            Sampling(**kwargs)


def test_training_epochs_never_hold_validation_or_test_images(ray_session, small_pbc):
    """Through Ray Data: two epochs of an oversampled training part hold only training rows, each
    class between the whole and the rounded-up number of copies of the policy."""
    frame = read_manifest(small_pbc).frame
    frame = frame[~frame["label"].isin(["basophil"])].reset_index(drop=True)
    keep = frame.groupby("label").cumcount() < frame["label"].map({"eosinophil": 3}).fillna(12)
    frame = frame[keep].reset_index(drop=True)  # eosinophil: 3 images, the rest 12
    plan = make_folds(frame, folds=3, seed=0, val_fraction=0.2)
    classes = sorted(plan["label"].unique())
    labels = np.searchsorted(classes, plan["label"].to_numpy())
    parts = fold_parts(plan, 0)
    cache = image_cache(frame, 32)
    counts = np.bincount(labels[parts["train"]], minlength=len(classes))
    for sampling in (Sampling(), Sampling("oversample", target=int(counts.max()) * 2)):
        expected = expected_copies(sampling, counts)
        copies = expected[labels] if sampling.resamples else None
        dataset = part_dataset(cache, 32, labels, parts["train"], copies, shuffle=True)
        for _ in range(2):
            rows = np.concatenate([b["row"] for b in dataset.iter_batches(batch_format="numpy")])
            assert set(rows) == set(parts["train"]), "an epoch holds a row outside the training part"
            seen = np.bincount(labels[rows], minlength=len(classes))
            assert (seen >= counts * np.floor(expected)).all()
            assert (seen <= counts * np.ceil(expected)).all()
            assert seen.sum() > counts.sum() or not sampling.resamples


def _oversampled_fold(manifest):
    """Fold 0 of a 3-fold plan of `manifest` at 32 px: labels, training rows, the image cache
    and each class's expected copies when oversampled to 40 images."""
    init_ray(Placement())  # keeps Ray Data's output in order, as every run does
    frame = read_manifest(manifest).frame
    plan = make_folds(frame, folds=3, seed=0, val_fraction=0.2)
    classes = sorted(plan["label"].unique())
    labels = np.searchsorted(classes, plan["label"].to_numpy())
    rows = fold_parts(plan, 0)["train"]
    expected = expected_copies(Sampling("oversample", target=40),
                               np.bincount(labels[rows], minlength=len(classes)))
    return labels, rows, image_cache(frame, 32), expected


def test_the_same_seed_streams_the_same_epochs(ray_session, small_pbc):
    """Shard order and sampling draws repeat with the seed, epoch by epoch, and change from one
    epoch to the next and with another seed."""
    labels, rows, cache, expected = _oversampled_fold(small_pbc)
    copies = expected[labels]

    def epochs(seed):
        dataset = part_dataset(cache, 32, labels, rows, copies, shuffle=True, seed=seed)
        return [np.concatenate([b["row"] for b in dataset.iter_batches(batch_format="numpy")])
                for _ in range(2)]

    first, again, other = epochs(1), epochs(1), epochs(2)
    for epoch in range(2):
        assert np.array_equal(first[epoch], again[epoch]), f"epoch {epoch} did not repeat"
        assert not np.array_equal(first[epoch], other[epoch])
    assert not np.array_equal(first[0], first[1])


def test_images_held_on_the_device_draw_the_streams_copies(ray_session, small_pbc):
    """`images_on_device`: the part read once, each epoch cut from it, holds exactly the rows
    (and copies) that the Ray Data stream of that epoch holds, in another order; workers get
    equal, disjoint shares."""
    import torch

    from raycells.train.feed import HeldImages

    labels, rows, cache, expected = _oversampled_fold(small_pbc)
    stream = part_dataset(cache, 32, labels, rows, expected[labels], shuffle=True, seed=5)
    held = HeldImages(part_dataset(cache, 32, labels, rows), len(rows), 32, torch.device("cpu"),
                      tuple(expected), seed=5)
    assert sorted(held.rows) == sorted(rows)
    first = torch.from_numpy(np.stack(
        [b["image"][0] for b in part_dataset(cache, 32, labels, rows[:1]).iter_batches()]))
    assert torch.equal(held.images[list(held.rows).index(rows[0])], first[0])
    for epoch in range(2):
        streamed = np.concatenate([b["row"] for b in stream.iter_batches(batch_format="numpy")])
        order = held.epoch_order(epoch)
        assert sorted(held.rows[order]) == sorted(streamed), f"epoch {epoch}"
        assert (held.labels[order].numpy() == labels[held.rows[order]]).all()
        shares = [torch.cat([b["label"] for b in held.batches(epoch, 8, rank, 3)])
                  for rank in range(3)]
        assert len({len(share) for share in shares}) == 1 and len(shares[0]) % 8 == 0
    assert not np.array_equal(held.epoch_order(0), held.epoch_order(1))


def test_a_rare_images_copies_are_spread_over_the_epoch():
    """An image drawn 300 times an epoch (a rare class, oversampled) has its copies placed beside
    training rows drawn at random: every copy exactly once, about as many beside every 64 rows
    (a shard's block) as beside any other, rather than all 300 in its own block."""
    hosts = np.arange(1000, 7400)
    copies = np.zeros(7400)
    copies[[5, 6]] = [300.0, 12.5]
    pooled = np.array([5, 6])
    blocks = np.array_split(hosts, 100)
    placed = [spread_copies(pooled, copies, hosts, seed=3, epoch=1, here=block) for block in blocks]
    owners = np.concatenate(placed)
    assert np.bincount(owners, minlength=2)[0] == 300
    assert np.bincount(owners, minlength=2)[1] in (12, 13)
    per_block = np.array([(p == 0).sum() for p in placed])
    assert per_block.max() <= 12, f"one block holds {per_block.max()} of 300 copies (share: 3)"
    again = spread_copies(pooled, copies, hosts, seed=3, epoch=1, here=blocks[7])
    assert np.array_equal(again, placed[7])
    other = spread_copies(pooled, copies, hosts, seed=3, epoch=2, here=blocks[7])
    assert not np.array_equal(other, placed[7])
