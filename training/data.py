"""Unpaired image folders: DIR/trainA and DIR/trainB (and testA/testB).

Every file is decoded once up front, so unreadable or truncated files are skipped, counted
and logged before training starts, and an empty or missing folder fails at once.
Sampling and augmentation are pure functions of (seed, epoch, index), which makes a resumed
run see exactly the images the uninterrupted run would have seen, with any number of workers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm import tqdm

from cyclegan.imaging import image_to_tensor

log = logging.getLogger(__name__)


class DataError(Exception):
    """A data folder that cannot be trained on."""


@dataclass(frozen=True)
class ImageFolder:
    path: Path
    files: list[Path]
    skipped: list[Path]


def scan_folder(path: Path) -> ImageFolder:
    """All decodable images in `path` (sorted), and the files that could not be decoded."""
    if not path.is_dir():
        raise DataError(f"{path}: folder is missing")
    candidates = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    files: list[Path] = []
    skipped: list[Path] = []
    for file in tqdm(candidates, desc=f"checking {path.name}", unit="img", leave=False):
        try:
            with Image.open(file) as image:
                image.load()  # a full decode: catches truncated files, not just bad headers
            files.append(file)
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as error:
            skipped.append(file)
            log.warning("skipping %s: %s", file, error)
    if not files:
        raise DataError(
            f"{path}: no readable images"
            + (f" ({len(skipped)} files could not be decoded)" if skipped else " (folder is empty)")
        )
    log.info("%s: %d images, %d skipped", path, len(files), len(skipped))
    return ImageFolder(path, files, skipped)


def load_image(path: Path) -> Image.Image:
    with Image.open(path) as image:
        image.load()
        return image


def resize_shorter_side(tensor: torch.Tensor, shorter: int, at_least: int) -> torch.Tensor:
    """(3, H, W) in [-1, 1] with its shorter side at `shorter` (bicubic, antialiased), and
    neither side under `at_least` (the crop that follows)."""
    height, width = tensor.shape[1:]
    scale = shorter / min(height, width)
    size = (max(at_least, round(height * scale)), max(at_least, round(width * scale)))
    if size == (height, width):
        return tensor
    return F.interpolate(
        tensor[None], size=size, mode="bicubic", align_corners=False, antialias=True
    )[0].clamp_(-1, 1)


def augment(
    image: Image.Image, load_size: int, crop: int, flip: bool, generator: torch.Generator
) -> torch.Tensor:
    """Resize the shorter side to load_size, random crop (crop x crop), random h-flip."""
    tensor = resize_shorter_side(image_to_tensor(image), load_size, crop)
    size = tensor.shape[1:]
    top = int(torch.randint(0, size[0] - crop + 1, (1,), generator=generator))
    left = int(torch.randint(0, size[1] - crop + 1, (1,), generator=generator))
    tensor = tensor[:, top : top + crop, left : left + crop]
    if flip and bool(torch.rand(1, generator=generator) < 0.5):
        tensor = tensor.flip(-1)
    return tensor.contiguous()


def _generator(seed: int, *keys: int) -> torch.Generator:
    mixed = seed
    for key in keys:  # a cheap, deterministic mix of the keys into one seed
        mixed = (mixed * 1_000_003 + key) % (2**63)
    return torch.Generator().manual_seed(mixed)


def unpaired_loader(
    dataset: UnpairedDataset,
    batch_size: int = 1,
    *,
    rank: int = 0,
    world: int = 1,
    start_step: int = 0,
    workers: int = 0,
    pin_memory: bool = False,
) -> DataLoader[dict[str, torch.Tensor]]:
    """The endless, resumable stream of batches over `dataset` (rank `rank` of `world`)."""
    sampler = ResumableSampler(dataset.epoch_length, batch_size, rank, world, start_step)
    return DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
        pin_memory=pin_memory, persistent_workers=workers > 0,
        # its own generator: drawing worker seeds from the global one would shift the stream
        # that DiffAugment draws from, and a resumed run would not be exact
        generator=torch.Generator().manual_seed(dataset.seed),
    )  # fmt: skip


class UnpairedDataset(Dataset[dict[str, torch.Tensor]]):
    """Item (epoch, i): A[permA[i % |A|]] and B[permB[i % |B|]], each augmented.

    An epoch has max(|A|, |B|) items, as in the reference implementation.
    """

    def __init__(
        self,
        folder_a: ImageFolder,
        folder_b: ImageFolder,
        load_size: int,
        image_size: int,
        flip: bool,
        seed: int,
    ) -> None:
        self.files_a = folder_a.files
        self.files_b = folder_b.files
        self.load_size = load_size
        self.image_size = image_size
        self.flip = flip
        self.seed = seed

    @classmethod
    def from_data(
        cls, data: Path, load_size: int, image_size: int, flip: bool, seed: int
    ) -> UnpairedDataset:
        """All readable images of DATA/trainA and DATA/trainB."""
        return cls(
            scan_folder(data / "trainA"), scan_folder(data / "trainB"),
            load_size, image_size, flip, seed,
        )  # fmt: skip

    @property
    def epoch_length(self) -> int:
        return max(len(self.files_a), len(self.files_b))

    def __len__(self) -> int:
        return self.epoch_length

    def permutation(self, epoch: int, side: int) -> torch.Tensor:
        count = len(self.files_a) if side == 0 else len(self.files_b)
        return torch.randperm(count, generator=_generator(self.seed, epoch, side))

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:  # type: ignore[override]
        epoch, index = key
        path_a = self.files_a[int(self.permutation(epoch, 0)[index % len(self.files_a)])]
        path_b = self.files_b[int(self.permutation(epoch, 1)[index % len(self.files_b)])]
        generator = _generator(self.seed, epoch, index, 2)
        return {
            "a": augment(load_image(path_a), self.load_size, self.image_size, self.flip, generator),
            "b": augment(load_image(path_b), self.load_size, self.image_size, self.flip, generator),
        }


def steps_in_epoch(epoch_length: int, batch_size: int, world: int) -> int:
    """Each epoch is cut to a whole number of global batches (at least one)."""
    return max(1, epoch_length // (batch_size * world))


class ResumableSampler(Sampler[tuple[int, int]]):
    """Yields (epoch, index) from `start_item` on, this rank's share of every epoch.

    Rank r of w takes items r, r + w, r + 2w, ...; each epoch is cut to a whole number of
    global batches so that every rank takes the same number of steps.
    """

    def __init__(
        self, epoch_length: int, batch_size: int, rank: int, world: int, start_step: int
    ) -> None:
        self.steps_per_epoch = steps_in_epoch(epoch_length, batch_size, world)
        self.batch_size = batch_size
        self.rank = rank
        self.world = world
        self.start_step = start_step

    def __iter__(self):  # type: ignore[no-untyped-def]
        step = self.start_step
        while True:
            epoch, step_in_epoch = divmod(step, self.steps_per_epoch)
            first = step_in_epoch * self.batch_size * self.world
            for slot in range(self.batch_size):
                yield epoch, first + slot * self.world + self.rank
            step += 1

    def __len__(self) -> int:  # infinite stream; DataLoader only needs this for hints
        return 2**62
