"""Training phases: what each one trains, and what it must leave untouched."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from raycells.settings import build_settings
from raycells.train.models import create_model
from raycells.train.optim import make_optimizer
from raycells.train.phases import ALL, ALL_BUT_BATCH_NORM, HEAD, Phase, training_phases
from raycells.train.trainable import head_name, set_trainable, train_mode


def _train_steps(model: nn.Module, phase: Phase, steps: int = 3) -> None:
    """What the training loop does in a phase: its optimizer, its modes, a few steps."""
    experiment, _ = build_settings(flags={"model": "tiny_cnn"})
    optimizer = make_optimizer(set_trainable(model, phase), experiment, lr=0.05)
    torch.manual_seed(1)
    for _ in range(steps):
        train_mode(model, phase)
        loss = nn.functional.cross_entropy(model(torch.randn(8, 3, 32, 32)), torch.randint(0, 3, (8,)))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {key: value.clone() for key, value in model.state_dict().items()}


def _batch_norm_keys(model: nn.Module) -> set[str]:
    return {f"{name}.{key}" for name, module in model.named_modules()
            if isinstance(module, nn.modules.batchnorm._BatchNorm)
            for key in module.state_dict()}


@pytest.mark.parametrize("name", ["tiny_cnn", "resnet18"])
def test_the_head_phase_changes_the_head_and_nothing_else(name):
    model = create_model(name, 3)
    before = _snapshot(model)
    _train_steps(model, Phase("head", 0, 1, 0.05, HEAD))
    head = head_name(model) + "."
    for key, value in model.state_dict().items():
        if key.startswith(head):
            assert not torch.equal(value, before[key]), key
        else:
            assert torch.equal(value, before[key]), f"{key} changed while the body was frozen"


@pytest.mark.parametrize("name", ["tiny_cnn", "resnet18"])
def test_fine_tuning_leaves_batch_norm_weights_and_statistics_alone(name):
    model = create_model(name, 3)
    before = _snapshot(model)
    _train_steps(model, Phase("fine-tune", 0, 1, 0.05, ALL_BUT_BATCH_NORM))
    batch_norm = _batch_norm_keys(model)
    assert batch_norm
    changed = {key for key, value in model.state_dict().items() if not torch.equal(value, before[key])}
    assert not changed & batch_norm
    convolutions = {key for key in before if key.endswith("weight") and before[key].dim() == 4}
    assert convolutions <= changed


def test_training_everything_updates_batch_norm_too():
    model = create_model("tiny_cnn", 3)
    before = _snapshot(model)
    _train_steps(model, Phase("train", 0, 1, 0.05, ALL))
    assert all(not torch.equal(model.state_dict()[key], before[key])
               for key in _batch_norm_keys(model) if not key.endswith("num_batches_tracked"))


def test_a_transfer_run_has_a_head_phase_then_fine_tuning():
    scratch, _ = build_settings(flags={"epochs": 7, "lr": 0.003})
    assert training_phases(scratch) == [Phase("train", 0, 7, 0.003, ALL)]
    transfer, _ = build_settings(flags={"epochs": 4, "lr": 1e-5, "weights": "w.pt",
                                        "transfer": {"source": "w.pt", "head_epochs": 2}})
    assert training_phases(transfer) == [Phase("head", 0, 2, 0.01, HEAD),
                                         Phase("fine-tune", 2, 4, 1e-5, ALL_BUT_BATCH_NORM)]
    thawed, _ = build_settings(flags={"epochs": 4, "lr": 1e-5, "weights": "w.pt", "transfer": {
        "source": "w.pt", "head_epochs": 2, "freeze_batchnorm": False}})
    assert training_phases(thawed)[1] == Phase("fine-tune", 2, 4, 1e-5, ALL)
    head_only, _ = build_settings(flags={"epochs": 0, "weights": "w.pt",
                                         "transfer": {"source": "w.pt", "head_epochs": 3}})
    assert [p.name for p in training_phases(head_only)] == ["head"]
