"""ImageNet initialisation: torchvision's weights through torch's cache, a local file, and the offline message."""
from __future__ import annotations

from urllib.error import URLError

import pytest
import torch
import torchvision

from wildhands.config import load_profile
from wildhands.hand.hand_model import HandModel
from wildhands.net.checkpoints import load_model, save_checkpoint
from wildhands.net.encoder import HandEncoder, imagenet_weights_file
from wildhands.net.model import build_model


@pytest.fixture
def hub_dir(tmp_path, monkeypatch):
    """An empty torch hub cache; any download attempt fails as it does offline."""
    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    attempts = []

    def offline(url, *args, **kwargs):
        attempts.append(url)
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    yield tmp_path / "hub", attempts
    torch.hub.set_dir(previous)


def test_imagenet_weights_come_from_torchs_cache(hub_dir):
    hub, attempts = hub_dir
    reference = torchvision.models.resnet18(weights=None)
    cached = imagenet_weights_file("resnet18")
    assert cached.parent == hub / "checkpoints" and cached.name == "resnet18-f37072fd.pth"
    cached.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), cached)          # as a download would have left it
    encoder = HandEncoder("rgb+2d", "resnet18", pretrained="imagenet")
    assert not attempts                                  # found in the cache: nothing downloaded
    assert torch.equal(encoder.backbone.conv1.weight[:, :3], reference.conv1.weight)
    assert torch.equal(encoder.backbone.layer4[1].conv2.weight, reference.layer4[1].conv2.weight)


def test_imagenet_offline_names_the_file_and_where_to_place_it(hub_dir):
    hub, attempts = hub_dir
    with pytest.raises(FileNotFoundError) as err:
        HandEncoder("rgb", "resnet50", pretrained="imagenet")
    message = str(err.value)
    assert attempts == ["https://download.pytorch.org/models/resnet50-0676ba61.pth"]
    assert "ResNet50_Weights.IMAGENET1K_V1" in message and "Temporary failure" in message
    assert str(hub / "checkpoints" / "resnet50-0676ba61.pth") in message
    assert "torch.hub.get_dir()/checkpoints" in message and "local state-dict path" in message
    with pytest.raises(ValueError, match="no ImageNet weights for 'resnet10'"):
        HandEncoder("rgb", "resnet10", pretrained="imagenet")


def test_a_local_state_dict_still_works(tmp_path, hub_dir):
    _, attempts = hub_dir
    reference = torchvision.models.resnet18(weights=None)
    path = tmp_path / "my_resnet18.pth"
    torch.save(reference.state_dict(), path)
    encoder = HandEncoder("2d", "resnet18", pretrained=str(path))
    assert torch.equal(encoder.backbone.layer1[0].conv1.weight, reference.layer1[0].conv1.weight)
    assert not attempts
    with pytest.raises(FileNotFoundError, match="'imagenet', a local torchvision ResNet state dict"):
        HandEncoder("2d", "resnet18", pretrained=str(tmp_path / "missing.pth"))


def test_a_trained_checkpoint_loads_without_the_imagenet_weights(toy_mano_path, tmp_path, hub_dir):
    _, attempts = hub_dir
    hand = HandModel(toy_mano_path)
    config = load_profile("smoke", {"model.backbone": "resnet18", "model.input_size": 32})
    model = build_model(config, hand)
    trained_with = {**config, "model": {**config["model"], "pretrained": "imagenet"}}
    path = save_checkpoint(tmp_path / "run.pt", model=model, config=trained_with, stage="finetune", step=1)
    loaded, saved = load_model(path, hand_model=hand)   # offline, empty cache: must not need them
    assert saved["model"]["pretrained"] == "imagenet" and not attempts
    x = torch.rand(1, 21, 32, 32)
    assert torch.allclose(loaded(x).keypoints_3d, model.eval()(x).keypoints_3d)
