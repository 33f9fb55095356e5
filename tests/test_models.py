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
