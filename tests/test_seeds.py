"""Seeds of a run's random streams, and deterministic kernels."""

import numpy as np
import torch

from raycells.seeds import derive_seed, uniforms


def test_every_purpose_fold_epoch_and_rank_gets_its_own_seed():
    seeds = {derive_seed(0, purpose, fold, epoch, rank) for purpose in ("augment", "batches")
             for fold in range(3) for epoch in range(3) for rank in range(2)}
    assert len(seeds) == 2 * 3 * 3 * 2
    assert derive_seed(5, "init", 1) == derive_seed(5, "init", 1) != derive_seed(6, "init", 1)


def test_a_rows_draw_does_not_depend_on_how_rows_are_batched():
    rows = np.arange(1000)
    whole = uniforms(42, rows)
    parts = np.concatenate([uniforms(42, rows[:300]), uniforms(42, rows[300:])])
    assert np.array_equal(whole, parts) and whole.min() >= 0 and whole.max() < 1
    assert abs(whole.mean() - 0.5) < 0.05 and not np.array_equal(whole, uniforms(43, rows))


def test_deterministic_switches_the_kernels_and_back():
    from raycells.train.loop import set_determinism

    try:
        set_determinism(True)
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    finally:
        set_determinism(False)
    assert not torch.are_deterministic_algorithms_enabled()
    assert not torch.backends.cudnn.deterministic
