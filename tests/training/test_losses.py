import math

import pytest
import torch

from training.losses import cycle_loss, discriminator_loss, generator_gan_loss, identity_loss

ones = torch.ones(2, 1, 4, 4)
zeros = torch.zeros(2, 1, 4, 4)


def test_lsgan() -> None:
    assert float(generator_gan_loss("lsgan", ones)) == 0.0
    assert float(generator_gan_loss("lsgan", zeros)) == 1.0
    assert float(discriminator_loss("lsgan", ones, zeros)) == 0.0
    # real scored 0 (cost 1) and fake scored 1 (cost 1): (1 + 1) / 2
    assert float(discriminator_loss("lsgan", zeros, ones)) == 1.0


def test_vanilla() -> None:
    assert float(generator_gan_loss("vanilla", zeros)) == pytest.approx(math.log(2))
    assert float(discriminator_loss("vanilla", zeros, zeros)) == pytest.approx(math.log(2))
    assert float(discriminator_loss("vanilla", ones * 20, -ones * 20)) == pytest.approx(0, abs=1e-6)


def test_hinge() -> None:
    assert float(generator_gan_loss("hinge", ones * 3)) == -3.0
    assert float(discriminator_loss("hinge", ones * 2, -ones * 2)) == 0.0
    assert float(discriminator_loss("hinge", zeros, zeros)) == 1.0


def test_unknown_loss_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown gan loss"):
        generator_gan_loss("wgan", ones)  # type: ignore[arg-type]


def test_cycle_and_identity_are_l1() -> None:
    a = torch.zeros(1, 3, 2, 2)
    b = torch.full((1, 3, 2, 2), 0.5)
    assert float(cycle_loss(a, b)) == 0.5
    assert float(identity_loss(a, a)) == 0.0
