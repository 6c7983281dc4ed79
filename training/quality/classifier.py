"""A small domain classifier: is this image from domain A or domain B?

Trained on DIR/trainA vs DIR/trainB and checked on testA/testB, it gives evaluation two
things that need no downloaded weights: the share of translated images it assigns to the
target domain, and a feature space (its pooled last layer) for FID, KID and diversity.
The trained weights are cached in a safetensors file keyed by a fingerprint of the data.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from torch.nn import functional as F
from tqdm import tqdm

from cyclegan.imaging import image_to_tensor
from training.data import ImageFolder, load_image, scan_folder

log = logging.getLogger(__name__)

# Images are judged at 96x96: at 64 the classifier confused horses and zebras in 14% of the
# test images; 96 keeps stripes legible and still trains in minutes on a CPU.
INPUT_SIZE = 96
# Training images are loaded a little larger and randomly cropped (augmentation).
LOAD_SIZE = 108
RECIPE = {
    "version": 2,
    "input_size": INPUT_SIZE,
    "epochs": 16,
    "batch_size": 32,
    "lr": 2e-3,
    "width": 32,
    "validation_share": 0.1,
}


def conv_bn_relu(channels_in: int, channels_out: int, stride: int) -> list[nn.Module]:
    return [
        nn.Conv2d(channels_in, channels_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(channels_out),
        nn.ReLU(inplace=True),
    ]


class DomainClassifier(nn.Module):
    """(N, 3, 96, 96) in [-1, 1] -> logits (N, 2); `features` gives (N, 8 * width)."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for out in (width, width * 2, width * 4, width * 8):  # 96 -> 48 -> 24 -> 12 -> 6
            layers += conv_bn_relu(channels, out, 2) + conv_bn_relu(out, out, 1)
            channels = out
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(channels, 2)
        self.feature_dim = channels

    def features(self, x: Tensor) -> Tensor:
        return self.body(x).mean(dim=(2, 3))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def to_classifier_input(images: Tensor, size: int = INPUT_SIZE) -> Tensor:
    """(N, 3, H, W) in [-1, 1] at any size -> (N, 3, size, size)."""
    if images.shape[-2:] == (size, size):
        return images
    return F.interpolate(
        images.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False
    )


def load_folder(folder: ImageFolder, desc: str, size: int = INPUT_SIZE) -> Tensor:
    """Every image of a folder as (N, 3, size, size)."""
    images = [
        to_classifier_input(image_to_tensor(load_image(path))[None], size)[0]
        for path in tqdm(folder.files, desc=desc, unit="img", leave=False)
    ]
    return torch.stack(images)


def augment_batch(images: Tensor, generator: torch.Generator) -> Tensor:
    """(N, 3, LOAD_SIZE, LOAD_SIZE) -> (N, 3, INPUT_SIZE, INPUT_SIZE): random crop and flip."""
    margin = images.shape[-1] - INPUT_SIZE
    top, left = (int(v) for v in torch.randint(0, margin + 1, (2,), generator=generator))
    x = images[..., top : top + INPUT_SIZE, left : left + INPUT_SIZE]
    flip = torch.rand(len(x), generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def data_fingerprint(data: Path) -> str:
    """Names and sizes of the train/test files plus the recipe: changes when either does."""
    digest = hashlib.sha256(json.dumps(RECIPE, sort_keys=True).encode())
    for split in ("trainA", "trainB", "testA", "testB"):
        folder = data / split
        if folder.is_dir():
            for path in sorted(folder.iterdir()):
                digest.update(f"{split}/{path.name}:{path.stat().st_size}\n".encode())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class Accuracy:
    """Right answers out of how many: counts compare exactly, where floats round."""

    correct: int
    total: int

    @property
    def share(self) -> float:
        return self.correct / self.total


@dataclass
class TrainedClassifier:
    net: DomainClassifier
    test: Accuracy | None  # on testA + testB; None when the data has no test folders
    path: Path

    @property
    def test_accuracy(self) -> float | None:
        return None if self.test is None else self.test.share

    @torch.no_grad()
    def predict(self, images: Tensor, batch_size: int = 64) -> tuple[Tensor, Tensor]:
        """(labels 0=A / 1=B, features) for (N, 3, H, W) in [-1, 1]."""
        labels, features = [], []
        for chunk in images.split(batch_size):
            feats = self.net.features(to_classifier_input(chunk))
            features.append(feats)
            labels.append(self.net.head(feats).argmax(1))
        return torch.cat(labels), torch.cat(features)


def accuracy(net: DomainClassifier, images: Tensor, labels: Tensor) -> Accuracy:
    net.eval()
    with torch.no_grad():
        predicted = torch.cat(
            [net(to_classifier_input(chunk)).argmax(1) for chunk in images.split(128)]
        )
    return Accuracy(int((predicted == labels).sum()), len(labels))


def labelled(data: Path, split: str, size: int) -> tuple[Tensor, Tensor]:
    """DIR/{split}A (label 0) and DIR/{split}B (label 1) as (images, labels)."""
    images_a = load_folder(scan_folder(data / f"{split}A"), f"classifier {split} A", size)
    images_b = load_folder(scan_folder(data / f"{split}B"), f"classifier {split} B", size)
    labels = torch.cat([torch.zeros(len(images_a)), torch.ones(len(images_b))]).long()
    return torch.cat([images_a, images_b]), labels


def train_classifier(data: Path, seed: int = 0) -> tuple[DomainClassifier, Accuracy | None]:
    """Fit the classifier on trainA (label 0) vs trainB (label 1); accuracy on the test folders.

    A share of the training images is held out; the epoch that scores best on it is kept, so
    the test folders never choose the model. Deterministic for a given seed.
    """
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    images, labels = labelled(data, "train", LOAD_SIZE)
    order = torch.randperm(len(images), generator=generator)
    n_val = max(1, round(len(images) * RECIPE["validation_share"]))
    val_index, train_index = order[:n_val], order[n_val:]
    val_images = to_classifier_input(images[val_index])
    net = DomainClassifier(RECIPE["width"])
    optimizer = torch.optim.AdamW(net.parameters(), lr=RECIPE["lr"], weight_decay=1e-4)
    batch, epochs = RECIPE["batch_size"], RECIPE["epochs"]
    steps = epochs * -(-len(train_index) // batch)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, RECIPE["lr"], total_steps=steps)
    # Weight the classes so that an unbalanced pair of folders does not bias the decision.
    train_labels = labels[train_index]
    weights = len(train_labels) / (2 * torch.bincount(train_labels, minlength=2).float())
    best: tuple[int, dict[str, Tensor]] = (-1, {})
    for epoch in tqdm(range(epochs), desc="training domain classifier", unit="epoch"):
        net.train()
        shuffled = train_index[torch.randperm(len(train_index), generator=generator)]
        for start in range(0, len(shuffled), batch):
            index = shuffled[start : start + batch]
            loss = F.cross_entropy(
                net(augment_batch(images[index], generator)), labels[index], weight=weights
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
        validation = accuracy(net, val_images, labels[val_index])
        log.debug("classifier epoch %d: validation %d/%d", epoch, validation.correct, n_val)
        if validation.correct >= best[0]:  # ties go to the later, better-trained epoch
            best = (validation.correct, {k: v.clone() for k, v in net.state_dict().items()})
    net.load_state_dict(best[1])
    net.eval()
    test = None
    if (data / "testA").is_dir() and (data / "testB").is_dir():
        test_images, test_labels = labelled(data, "test", INPUT_SIZE)
        test = accuracy(net, test_images, test_labels)
    return net, test


def load_or_train_classifier(data: Path, cache_dir: Path, seed: int = 0) -> TrainedClassifier:
    """The cached classifier for `data` (and `seed`) if there is one, else train and cache it."""
    seeded = f"-seed{seed}" if seed else ""  # seed 0 keeps the name caches already have
    path = cache_dir / f"domain-classifier-{data_fingerprint(data)}{seeded}.safetensors"
    net = DomainClassifier(RECIPE["width"])
    if path.is_file():
        from safetensors import safe_open

        with safe_open(path, framework="pt") as handle:
            metadata = handle.metadata() or {}
        net.load_state_dict(load_file(path))
        raw = json.loads(metadata.get("test", "null"))
        log.info("domain classifier from cache: %s", path)
        return TrainedClassifier(net.eval(), None if raw is None else Accuracy(*raw), path)
    net, test = train_classifier(data, seed)
    cache_dir.mkdir(parents=True, exist_ok=True)
    counts = None if test is None else [test.correct, test.total]
    save_file(net.state_dict(), path, metadata={"test": json.dumps(counts)})
    trained = TrainedClassifier(net.eval(), test, path)
    log.info("domain classifier trained (test accuracy %s), cached at %s", counts, path)
    return trained
