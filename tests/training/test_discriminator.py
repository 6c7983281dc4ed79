import pytest
import torch

from training.discriminator import PatchDiscriminator


@pytest.mark.parametrize(
    ("size", "expected"), [((256, 256), (30, 30)), ((128, 128), (14, 14)), ((128, 96), (14, 10))]
)
def test_patchgan_output_grid(size: tuple[int, int], expected: tuple[int, int]) -> None:
    # 256x256 in -> a 30x30 grid of scores, as the reference 70x70 PatchGAN gives.
    net = PatchDiscriminator(ndf=8, n_layers=3)
    scores = net(torch.zeros(2, 3, *size))
    assert scores.shape == (2, 1, *expected)


def test_patchgan_receptive_field_is_70() -> None:
    # Which input pixels can move output (0, 0)? InstanceNorm's statistics span the whole
    # image, so swap it out to see the convolutions' own receptive field.
    torch.manual_seed(0)
    net = PatchDiscriminator(ndf=4, n_layers=3).eval()
    for i, layer in enumerate(net.model):
        if isinstance(layer, torch.nn.InstanceNorm2d):
            net.model[i] = torch.nn.Identity()
    x = torch.zeros(1, 3, 256, 256, requires_grad=True)
    net(x)[0, 0, 5, 5].backward()  # an interior output, clear of the zero padding
    rows = torch.nonzero(x.grad.abs().sum(dim=(0, 1)).sum(dim=1)).flatten()
    cols = torch.nonzero(x.grad.abs().sum(dim=(0, 1)).sum(dim=0)).flatten()
    assert int(rows.max()) - int(rows.min()) + 1 == 70
    assert int(cols.max()) - int(cols.min()) + 1 == 70
