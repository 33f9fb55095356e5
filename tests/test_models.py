import pytest
import torch

from raycells.errors import RaycellsError
from raycells.train.models import create_model, model_names


@pytest.mark.parametrize("name", model_names())
def test_every_registered_model_runs_forward_at_a_tiny_size(name):
    model = create_model(name, num_classes=5).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, 32, 32))
    assert out.shape == (2, 5)


def test_registry_has_the_papers_network_and_the_newer_ones():
    assert ({"resnext50", "efficientnet_b0", "densenet121", "convnext_tiny", "resnet18", "tiny_cnn"}
            <= set(model_names()))


def test_weights_load_and_mismatches_name_the_file(tmp_path):
    source = create_model("tiny_cnn", 4)
    torch.save(source.state_dict(), tmp_path / "w.pt")
    loaded = create_model("tiny_cnn", 4, weights=tmp_path / "w.pt")
    assert all(torch.equal(a, b) for a, b in zip(source.state_dict().values(), loaded.state_dict().values()))
    with pytest.raises(RaycellsError, match="w.pt: the weights do not fit"):
        create_model("resnet18", 4, weights=tmp_path / "w.pt")
    with pytest.raises(RaycellsError, match="unknown model 'vgg'"):
        create_model("vgg", 4)


def test_the_settings_name_exactly_the_registered_models():
    from raycells.settings import MODELS

    assert sorted(MODELS) == model_names()


def _same_body(a: torch.nn.Module, b: torch.nn.Module, head: str) -> bool:
    theirs = b.state_dict()
    return all(torch.equal(value, theirs[key]) for key, value in a.state_dict().items()
               if not key.startswith(head))


def test_pretrained_weights_with_another_head_start_every_layer_but_the_head(tmp_path):
    """ImageNet-style files (1,000 classes) in the formats users have: torchvision's state dict,
    timm's train.py checkpoint (state dict under "state_dict") and safetensors."""
    import torchvision
    from safetensors.torch import save_file

    from raycells.train.models import load_weights

    imagenet = torchvision.models.resnet18(weights=None, num_classes=1000)
    torch.save(imagenet.state_dict(), tmp_path / "resnet18.pth")
    torch.save({"epoch": 90, "arch": "resnet18", "state_dict": imagenet.state_dict()},
               tmp_path / "checkpoint.pth.tar")
    save_file(imagenet.state_dict(), tmp_path / "model.safetensors")
    for name in ("resnet18.pth", "checkpoint.pth.tar", "model.safetensors"):
        model = create_model("resnet18", 15)
        fresh = model.fc.weight.detach().clone()
        assert load_weights(model, tmp_path / name) is True, name  # a new head
        assert _same_body(model, imagenet, "fc.") and torch.equal(model.fc.weight, fresh)
    # A head that fits is the file's; in a transfer (head=False) it never is.
    same = create_model("resnet18", 15)
    torch.save(same.state_dict(), tmp_path / "same.pt")
    model = create_model("resnet18", 15)
    assert load_weights(model, tmp_path / "same.pt") is False
    assert torch.equal(model.fc.weight, same.fc.weight)
    assert load_weights(create_model("resnet18", 15), tmp_path / "same.pt", head=False) is True
    (tmp_path / "broken.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(RaycellsError, match="broken.safetensors: it cannot be read as safetensors"):
        load_weights(model, tmp_path / "broken.safetensors")


def test_timm_models_are_built_without_downloading_and_take_their_own_weights(tmp_path):
    from raycells.train.models import cam_layer, load_weights

    model = create_model("timm:resnet18", 8).eval()
    with torch.no_grad():
        assert model(torch.rand(2, 3, 32, 32)).shape == (2, 8)
    assert cam_layer(model, "timm:resnet18") is model.layer4
    imagenet = create_model("timm:resnet18", 1000)
    torch.save(imagenet.state_dict(), tmp_path / "pytorch_model.bin")
    assert load_weights(model, tmp_path / "pytorch_model.bin") is True
    assert _same_body(model, imagenet, "fc.")
    # A checkpoint of timm's own training script (its settings in an argparse Namespace).
    import argparse

    from timm.utils import CheckpointSaver

    saver = CheckpointSaver(imagenet, torch.optim.SGD(imagenet.parameters(), lr=0.1),
                            args=argparse.Namespace(model="resnet18", lr=0.1),
                            checkpoint_dir=str(tmp_path), recovery_dir=str(tmp_path))
    saver.save_checkpoint(0, metric=0.5)
    model = create_model("timm:resnet18", 8)
    assert load_weights(model, tmp_path / "model_best.pth.tar") is True
    assert _same_body(model, imagenet, "fc.")
    with pytest.raises(RaycellsError, match=r"timm:no_such_net: Unknown model"):
        create_model("timm:no_such_net", 8)
