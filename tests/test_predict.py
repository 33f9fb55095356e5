import torch

from raycells.train.inputs import dihedral_views


def test_dihedral_views_are_the_eight_exact_flips_and_rotations():
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 4, 4)
    views = dihedral_views(x)
    assert len(views) == 8 and all(v.shape == x.shape for v in views)
    assert len({tuple(v.flatten().tolist()) for v in views}) == 8  # all different
    assert torch.equal(views[0], x)
    for v in views:  # the same pixel values, only moved
        assert torch.equal(v.flatten(2).sort(dim=2).values, x.flatten(2).sort(dim=2).values)
