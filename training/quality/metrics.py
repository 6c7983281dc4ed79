"""Quality metrics on tensors: FID, KID, PSNR, SSIM and set diversity.

Feature-space metrics take (N, D) feature matrices from any network (the domain classifier,
or Inception-v3 when its weights are given); image metrics take (N, 3, H, W) in [-1, 1].
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)) between two Gaussians.

    Tr((S1 S2)^(1/2)) is the sum of square roots of the eigenvalues of S1 S2, which are real
    and non-negative for covariance matrices; tiny negative round-off is clipped to 0.
    """
    diff = mu1 - mu2
    eigenvalues = np.linalg.eigvals(sigma1 @ sigma2)
    trace_sqrt = np.sqrt(np.clip(eigenvalues.real, 0, None)).sum()
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt
    return float(max(value, 0.0))


def fid(features_1: Tensor, features_2: Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two (N, D) feature sets."""
    a = features_1.double().cpu().numpy()
    b = features_2.double().cpu().numpy()
    if len(a) < 2 or len(b) < 2:
        raise ValueError("FID needs at least two samples in each set")
    return frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))


def kid(
    features_1: Tensor, features_2: Tensor, subsets: int = 50, subset_size: int = 100, seed: int = 0
) -> tuple[float, float]:
    """Kernel Inception Distance: unbiased MMD^2 with k(x, y) = (x.y / d + 1)^3.

    Averaged over random subsets (as in Binkowski et al. 2018); returns (mean, std).
    """
    x, y = features_1.double(), features_2.double()
    size = min(subset_size, len(x), len(y))
    if size < 2:
        raise ValueError("KID needs at least two samples in each set")
    dim = x.shape[1]
    generator = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(subsets):
        xs = x[torch.randperm(len(x), generator=generator)[:size]]
        ys = y[torch.randperm(len(y), generator=generator)[:size]]
        k_xx = (xs @ xs.T / dim + 1) ** 3
        k_yy = (ys @ ys.T / dim + 1) ** 3
        k_xy = (xs @ ys.T / dim + 1) ** 3
        off_diagonal = size * (size - 1)
        mmd = (
            (k_xx.sum() - k_xx.diagonal().sum()) / off_diagonal
            + (k_yy.sum() - k_yy.diagonal().sum()) / off_diagonal
            - 2 * k_xy.mean()
        )
        values.append(float(mmd))
    return float(np.mean(values)), float(np.std(values))


def psnr(images_1: Tensor, images_2: Tensor) -> Tensor:
    """Per-image PSNR in dB for (N, 3, H, W) in [-1, 1] (peak-to-peak range 2)."""
    mse = (images_1.float() - images_2.float()).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(4.0 / mse.clamp_min(1e-10))


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> Tensor:
    coords = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] @ g[None, :])[None, None]  # (1, 1, size, size)


def ssim(images_1: Tensor, images_2: Tensor) -> Tensor:
    """Per-image SSIM (Wang et al. 2004: 11x11 Gaussian, sigma 1.5) on [0, 1]-scaled images."""
    x = (images_1.float() + 1) / 2
    y = (images_2.float() + 1) / 2
    channels = x.shape[1]
    window = _gaussian_window().to(x.device).expand(channels, 1, 11, 11)

    def blur(t: Tensor) -> Tensor:
        return F.conv2d(t, window, groups=channels)

    c1, c2 = 0.01**2, 0.03**2
    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
        (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    )
    return ssim_map.flatten(1).mean(1)


def mean_pairwise_distance(features: Tensor) -> float:
    """Mean L2 distance over all pairs of rows: how spread out a set is."""
    if len(features) < 2:
        raise ValueError("diversity needs at least two samples")
    distances = torch.cdist(features.double()[None], features.double()[None])[0]
    count = len(features)
    return float(distances.sum() / (count * (count - 1)))
