"""The optional adversarial term of distillation (`distill --lambda-gan W`).

L1 pulls a small student toward the mean of what it cannot reproduce exactly. On horse2zebra
that mean is fainter stripes, and the domain score falls as the PSNR rises. A critic per
direction penalises exactly that blur: a conditional PatchGAN (pix2pix) sees the input beside
an output and tells the teacher's translation (real) from the student's (fake). A package
carries no discriminators, so the critics start fresh: they learn "teacher or student", not
"zebra or horse", and are not written into the student's package.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from training.discriminator import PatchDiscriminator
from training.losses import discriminator_loss, generator_gan_loss

GAN_LOSS = "lsgan"


class OutputCritic:
    """A critic of (input, output) pairs and its optimizer, on the student's lr schedule."""

    def __init__(
        self, ndf: int, lr: float, schedule: Callable[[int], float], device: torch.device
    ) -> None:
        # spectral norm: it steadied the ablation's discriminators (docs/ablation.md)
        self.net = PatchDiscriminator(ndf=ndf, in_channels=6, norm="spectral").to(device)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=lr, betas=(0.5, 0.999))
        self.schedule = torch.optim.lr_scheduler.LambdaLR(self.optimizer, schedule)

    def scores(self, x: Tensor, y: Tensor) -> Tensor:
        return self.net(torch.cat([x, y], dim=1))

    def student_loss(self, x: Tensor, student_out: Tensor) -> Tensor:
        """What the student minimises: the critic should take its output for the teacher's."""
        self.net.requires_grad_(False)  # the student's step must not train the critic
        try:
            return generator_gan_loss(GAN_LOSS, self.scores(x, student_out))
        finally:
            self.net.requires_grad_(True)

    def step(self, x: Tensor, teacher_out: Tensor, student_out: Tensor) -> float:
        """One update of the critic; its loss."""
        self.optimizer.zero_grad(set_to_none=True)
        loss = discriminator_loss(
            GAN_LOSS, self.scores(x, teacher_out), self.scores(x, student_out.detach())
        )
        loss.backward()
        self.optimizer.step()
        self.schedule.step()
        return float(loss.detach())
