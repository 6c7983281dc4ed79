"""The plain-torch FID Inception: structure, names, loading and errors (random weights only)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from training.quality.inception import FIDInceptionV3, inception_features, load_fid_inception

# torchvision documents inception_v3 at 27,161,264 parameters (Inception_V3_Weights meta
# "num_params"), with aux logits and 1000 classes. Its AuxLogits head is conv0 (768*128 + 2*128
# = 98,560) + conv1 (128*768*5*5 + 2*768 = 2,459,136) + fc (768*1000 + 1000 = 769,000)
# = 3,326,696, leaving 23,834,568 without aux logits. pytorch-fid's FID Inception is that
# network with a 1008-class fc (8 more rows of 2048 weights + 1 bias: 8 * 2049 = 16,392);
# its FID blocks only change pooling, which has no parameters.
EXPECTED_PARAMETERS = 27_161_264 - 3_326_696 + 8 * 2049
assert EXPECTED_PARAMETERS == 23_850_960

LANDMARK_KEYS = [
    "Conv2d_1a_3x3.conv.weight",
    "Conv2d_1a_3x3.bn.running_mean",
    "Conv2d_4a_3x3.bn.running_var",
    "Mixed_5b.branch1x1.conv.weight",
    "Mixed_5b.branch_pool.conv.weight",
    "Mixed_6a.branch3x3dbl_3.conv.weight",
    "Mixed_6e.branch7x7dbl_5.conv.weight",
    "Mixed_7a.branch7x7x3_4.bn.bias",
    "Mixed_7c.branch3x3_2b.conv.weight",
    "fc.weight",
    "fc.bias",
]


class NotATensor:
    """Stands in for an arbitrary pickled object that weights_only loading must refuse."""


@pytest.fixture(scope="module")
def random_net() -> FIDInceptionV3:
    torch.manual_seed(0)
    net = FIDInceptionV3()
    # Non-default BN statistics, so that a round trip that lost the buffers would show.
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.normal_(0.0, 0.1)
            module.running_var.uniform_(0.5, 2.0)
    return net.eval()


@pytest.fixture(scope="module")
def images() -> Tensor:
    # Smaller than 299x299 and not square: the network resizes it.
    return torch.rand(2, 3, 64, 80, generator=torch.Generator().manual_seed(1)) * 2 - 1


@pytest.fixture(scope="module")
def features(random_net: FIDInceptionV3, images: Tensor) -> Tensor:
    with torch.no_grad():
        return random_net(images)


def test_random_net_gives_finite_pool3_features(features: Tensor) -> None:
    assert features.shape == (2, 2048)
    assert torch.isfinite(features).all()
    assert (features >= 0).all()  # average of ReLU outputs
    assert not torch.equal(features[0], features[1])


def test_state_dict_names_and_parameter_count() -> None:
    net = FIDInceptionV3()
    state = net.state_dict()
    for key in LANDMARK_KEYS:
        assert key in state, key
    assert not any(key.startswith("AuxLogits") for key in state)
    assert state["fc.weight"].shape == (1008, 2048)
    assert net.Conv2d_1a_3x3.bn.eps == pytest.approx(0.001)
    assert sum(p.numel() for p in net.parameters()) == EXPECTED_PARAMETERS


def test_load_round_trip(
    random_net: FIDInceptionV3, images: Tensor, features: Tensor, tmp_path: Path
) -> None:
    path = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(random_net.state_dict(), path)
    loaded = load_fid_inception(path)
    assert not loaded.training
    assert not any(p.requires_grad for p in loaded.parameters())
    # batch_size=1 also checks that batching does not change the features
    again = inception_features(loaded, images, batch_size=1)
    assert again.shape == (2, 2048)
    assert again.device.type == "cpu"
    torch.testing.assert_close(again, features, rtol=1e-4, atol=1e-5)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "no-such-weights.pth"
    with pytest.raises(FileNotFoundError) as info:
        load_fid_inception(path)
    message = str(info.value)
    assert str(path) in message
    assert "pt_inception-2015-12-05-6726825d.pth" in message
    assert "Nothing is downloaded" in message


def test_missing_key(tmp_path: Path) -> None:
    state = FIDInceptionV3().state_dict()
    del state["Mixed_6e.branch7x7dbl_5.conv.weight"]
    path = tmp_path / "weights.pth"
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"missing keys: Mixed_6e\.branch7x7dbl_5\.conv\.weight"):
        load_fid_inception(path)


def test_unexpected_key_and_wrong_shape(tmp_path: Path) -> None:
    state = FIDInceptionV3().state_dict()
    state["AuxLogits.fc.weight"] = torch.zeros(1008, 768)
    path = tmp_path / "extra.pth"
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"unexpected keys: AuxLogits\.fc\.weight"):
        load_fid_inception(path)

    del state["AuxLogits.fc.weight"]
    state["fc.weight"] = torch.zeros(1000, 2048)
    torch.save(state, path)
    with pytest.raises(ValueError, match="shape"):
        load_fid_inception(path)


def test_not_a_state_dict(tmp_path: Path) -> None:
    path = tmp_path / "list.pth"
    torch.save([torch.zeros(3)], path)
    with pytest.raises(ValueError, match="state dict"):
        load_fid_inception(path)


def test_refuses_arbitrary_objects(tmp_path: Path) -> None:
    path = tmp_path / "pickled.pth"
    torch.save({"fc.weight": NotATensor()}, path)
    with pytest.raises(ValueError, match="not a loadable"):
        load_fid_inception(path)
