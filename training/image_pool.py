"""The image pool (Shrivastava et al. 2017): D sees a history of fakes, not only the newest."""

from __future__ import annotations

import torch
from torch import Tensor


class ImagePool:
    """Keeps up to `size` past fakes; half the time returns an old one in place of a new one.

    Its random choices come from its own generator, and `state_dict` holds that generator
    and the stored images, so a resumed run makes exactly the same choices.
    """

    def __init__(self, size: int, seed: int = 0) -> None:
        self.size = size
        self.images: list[Tensor] = []
        self.generator = torch.Generator().manual_seed(seed)

    def query(self, images: Tensor) -> Tensor:
        """(N, C, H, W) fakes in -> (N, C, H, W) to show the discriminator, detached."""
        if self.size == 0:
            return images.detach()
        result = []
        for image in images.detach():
            image = image[None]
            if len(self.images) < self.size:
                self.images.append(image.clone())
                result.append(image)
            elif float(torch.rand(1, generator=self.generator)) > 0.5:
                slot = int(torch.randint(0, self.size, (1,), generator=self.generator))
                result.append(self.images[slot].clone())
                self.images[slot] = image.clone()
            else:
                result.append(image)
        return torch.cat(result, dim=0)

    def state_dict(self) -> dict[str, object]:
        images = [image.cpu() for image in self.images]
        return {"images": images, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, object], device: torch.device) -> None:
        images = state["images"]
        assert isinstance(images, list)
        self.images = [image.to(device) for image in images]
        generator_state = state["generator"]
        assert isinstance(generator_state, torch.Tensor)
        self.generator.set_state(generator_state)
