import numpy as np
import pytest
import torch

from training.quality.metrics import (
    fid,
    frechet_distance,
    kid,
    mean_pairwise_distance,
    psnr,
    ssim,
)


def gaussian(n: int, dim: int, mean: float, std: float, seed: int) -> torch.Tensor:
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed)) * std + mean


def test_fid_of_a_set_with_itself_is_zero() -> None:
    features = gaussian(500, 16, 0.0, 1.0, 0)
    assert fid(features, features) == pytest.approx(0.0, abs=1e-6)


def test_frechet_distance_closed_form() -> None:
    # N(m1, s1^2 I) vs N(m2, s2^2 I) in d dims: |m1 - m2|^2 + d (s1 - s2)^2
    d = 8
    mu1, mu2 = np.zeros(d), np.full(d, 0.5)
    value = frechet_distance(mu1, np.eye(d) * 1.0, mu2, np.eye(d) * 4.0)
    assert value == pytest.approx(d * 0.25 + d * (1.0 - 2.0) ** 2)


def test_fid_of_sampled_gaussians_approaches_closed_form() -> None:
    a = gaussian(20000, 4, 0.0, 1.0, 1)
    b = gaussian(20000, 4, 1.0, 2.0, 2)
    assert fid(a, b) == pytest.approx(4 * 1.0 + 4 * 1.0, rel=0.05)


def test_fid_grows_with_shift() -> None:
    a = gaussian(400, 8, 0.0, 1.0, 3)
    assert fid(a, gaussian(400, 8, 0.2, 1.0, 4)) < fid(a, gaussian(400, 8, 1.0, 1.0, 4))


def test_kid_is_near_zero_for_one_distribution_and_positive_for_two() -> None:
    a, b = gaussian(300, 16, 0.0, 1.0, 5), gaussian(300, 16, 0.0, 1.0, 6)
    same, _ = kid(a, b)
    shifted, std = kid(a, gaussian(300, 16, 1.0, 1.0, 7))
    assert abs(same) < 0.05
    assert shifted > 10 * max(abs(same), 1e-3) and std >= 0


def test_metrics_refuse_too_few_samples() -> None:
    one = torch.zeros(1, 4)
    with pytest.raises(ValueError):
        fid(one, one)
    with pytest.raises(ValueError):
        kid(one, one)
    with pytest.raises(ValueError):
        mean_pairwise_distance(one)


def test_psnr_known_values() -> None:
    x = torch.zeros(2, 3, 8, 8)
    y = x + 0.2  # mse 0.04 on a range of 2: 10 log10(4 / 0.04) = 20 dB
    assert psnr(x, y).tolist() == pytest.approx([20.0, 20.0])
    identical = float(psnr(x, x)[0])
    assert np.isfinite(identical) and identical > 100  # capped, not infinite


def test_ssim_is_one_for_identical_and_lower_for_noise() -> None:
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    noisy = (x + 0.3 * torch.randn_like(x)).clamp(-1, 1)
    assert ssim(x, x).tolist() == pytest.approx([1.0, 1.0], abs=1e-5)
    assert float(ssim(x, noisy).max()) < 0.9


def test_collapsed_set_has_low_diversity() -> None:
    varied = gaussian(50, 32, 0.0, 1.0, 8)
    collapsed = varied[:1].repeat(50, 1) + 0.01 * gaussian(50, 32, 0.0, 1.0, 9)
    assert mean_pairwise_distance(collapsed) / mean_pairwise_distance(varied) < 0.05
