import pytest
import torch

from cyclegan.generator import GeneratorConfig, build_generator, count_macs, init_weights


@pytest.mark.parametrize("size", [(32, 32), (64, 48), (36, 100), (256, 256)])
@pytest.mark.parametrize("n_blocks", [1, 6, 9])
def test_generator_keeps_shape_and_range(size: tuple[int, int], n_blocks: int) -> None:
    net = build_generator(GeneratorConfig(ngf=4, n_blocks=n_blocks)).eval()
    x = torch.rand(2, 3, *size) * 2 - 1
    with torch.no_grad():
        y = net(x)
    assert y.shape == x.shape
    assert y.min() >= -1 and y.max() <= 1


def test_generator_parameter_count_matches_reference() -> None:
    # The reference ResNet-9 generator (ngf 64) has 11.378M parameters.
    net = build_generator(GeneratorConfig(ngf=64, n_blocks=9))
    assert sum(p.numel() for p in net.parameters()) == 11_378_179


def test_count_macs_matches_hand_count() -> None:
    config = GeneratorConfig(ngf=8, n_blocks=1)
    h = w = 32
    ngf = 8
    expected = (
        h * w * 49 * 3 * ngf  # c7s1
        + (h // 2) * (w // 2) * 9 * ngf * 2 * ngf  # down 1
        + (h // 4) * (w // 4) * 9 * 2 * ngf * 4 * ngf  # down 2
        + 2 * (h // 4) * (w // 4) * 9 * (4 * ngf) ** 2  # one residual block
        + (h // 4) * (w // 4) * 9 * 4 * ngf * 2 * ngf  # up 1 (per input pixel)
        + (h // 2) * (w // 2) * 9 * 2 * ngf * ngf  # up 2
        + h * w * 49 * ngf * 3  # c7s1 out
    )
    assert count_macs(config, h, w) == expected


SHUFFLE = GeneratorConfig(arch="mobile", ngf=8, n_blocks=2, upsample="resize", ends="shuffle")


def test_shuffle_ends_keep_shape_and_run_no_layer_at_full_resolution() -> None:
    net = build_generator(SHUFFLE).eval()
    x = torch.rand(1, 3, 40, 24) * 2 - 1
    sizes: list[tuple[int, int]] = []
    for layer in net.modules():
        if isinstance(layer, torch.nn.Conv2d):
            layer.register_forward_hook(lambda m, i, out: sizes.append(tuple(out.shape[-2:])))
    with torch.no_grad():
        y = net(x)
    assert y.shape == x.shape and y.min() >= -1 and y.max() <= 1
    assert sizes and max(sizes) == (20, 12)  # half resolution at most


def test_count_macs_of_shuffle_ends_matches_hand_count() -> None:
    h = w = 32
    ngf = 8
    inner = count_macs(GeneratorConfig(**{**SHUFFLE.model_dump(), "ends": "conv7"}), h, w) - (
        h * w * 49 * 3 * ngf  # c7s1 in
        + (h // 2) * (w // 2) * 9 * ngf * 2 * ngf  # down 1
        + h * w * 9 * 2 * ngf * ngf  # up 2 (resize to full resolution, then a 3x3 conv)
        + h * w * 49 * ngf * 3  # c7s1 out
    )
    shuffle_ends = (
        (h // 2) * (w // 2) * 9 * 12 * 2 * ngf  # c3 on the unshuffled image
        + (h // 2) * (w // 2) * 9 * 2 * ngf * 12  # c3 to the 12 channels shuffled out
    )
    assert count_macs(SHUFFLE, h, w) == inner + shuffle_ends


def test_inner_layers_carry_over_between_ends() -> None:
    """What `distill --init-from` does for a student with other ends."""
    torch.manual_seed(0)
    conv7 = build_generator(GeneratorConfig(**{**SHUFFLE.model_dump(), "ends": "conv7"}))
    shuffle = build_generator(SHUFFLE)
    init_weights(conv7)
    shuffle.inner_layers().load_state_dict(conv7.inner_layers().state_dict())
    features = torch.rand(1, 2 * SHUFFLE.ngf, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(shuffle.inner_layers()(features), conv7.inner_layers()(features))
        # the modules are the network's own: the whole network changed with them
        assert torch.equal(
            shuffle.model[shuffle.inner][0].weight, conv7.model[conv7.inner][0].weight
        )


def test_a_config_written_before_ends_existed_reads_as_conv7() -> None:
    old = {"arch": "mobile", "ngf": 16, "n_blocks": 6, "upsample": "resize"}
    assert GeneratorConfig.model_validate(old).ends == "conv7"
    with pytest.raises(ValueError):
        GeneratorConfig(ends="bilinear")  # type: ignore[arg-type]


def test_init_weights_is_normal_002() -> None:
    torch.manual_seed(0)
    net = build_generator(GeneratorConfig(ngf=16, n_blocks=2))
    init_weights(net)
    weights = torch.cat(
        [m.weight.detach().flatten() for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    )
    assert abs(float(weights.std()) - 0.02) < 0.002
    assert abs(float(weights.mean())) < 0.002


def test_config_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        GeneratorConfig(ngf=0)
    with pytest.raises(ValueError):
        GeneratorConfig.model_validate({"ngf": 8, "unknown": 1})
