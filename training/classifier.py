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

INPUT_SIZE = 64  # images are judged at 64x64: enough for texture and colour, cheap on a CPU
RECIPE = {"version": 1, "epochs": 10, "batch_size": 32, "lr": 1e-3, "width": 32}


class DomainClassifier(nn.Module):
    """(N, 3, 64, 64) in [-1, 1] -> logits (N, 2); `features` gives (N, 4 * width)."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for out in (width, width * 2, width * 4, width * 4):  # 64 -> 32 -> 16 -> 8 -> 4
            layers += [
                nn.Conv2d(channels, out, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(out),
                nn.ReLU(inplace=True),
            ]
            channels = out
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(channels, 2)
        self.feature_dim = channels

    def features(self, x: Tensor) -> Tensor:
        return self.body(x).mean(dim=(2, 3))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def to_classifier_input(images: Tensor) -> Tensor:
    """(N, 3, H, W) in [-1, 1] at any size -> (N, 3, 64, 64)."""
    if images.shape[-2:] == (INPUT_SIZE, INPUT_SIZE):
        return images
    return F.interpolate(
        images.float(), size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", antialias=True,
        align_corners=False,
    )  # fmt: skip


def load_folder(folder: ImageFolder, desc: str) -> Tensor:
    """Every image of a folder as (N, 3, 64, 64)."""
    images = [
        to_classifier_input(image_to_tensor(load_image(path))[None])[0]
        for path in tqdm(folder.files, desc=desc, unit="img", leave=False)
    ]
    return torch.stack(images)


def data_fingerprint(data: Path) -> str:
    """Names and sizes of the train/test files plus the recipe: changes when either does."""
    digest = hashlib.sha256(json.dumps(RECIPE, sort_keys=True).encode())
    for split in ("trainA", "trainB", "testA", "testB"):
        folder = data / split
        if folder.is_dir():
            for path in sorted(folder.iterdir()):
                digest.update(f"{split}/{path.name}:{path.stat().st_size}\n".encode())
    return digest.hexdigest()[:16]


@dataclass
class TrainedClassifier:
    net: DomainClassifier
    test_accuracy: float | None  # on testA + testB; None when the data has no test folders
    path: Path

    @torch.no_grad()
    def predict(self, images: Tensor, batch_size: int = 64) -> tuple[Tensor, Tensor]:
        """(labels 0=A / 1=B, features) for (N, 3, H, W) in [-1, 1]."""
        labels, features = [], []
        for chunk in images.split(batch_size):
            feats = self.net.features(to_classifier_input(chunk))
            features.append(feats)
            labels.append(self.net.head(feats).argmax(1))
        return torch.cat(labels), torch.cat(features)


def accuracy(net: DomainClassifier, images: Tensor, labels: Tensor) -> float:
    net.eval()
    with torch.no_grad():
        predicted = torch.cat([net(chunk).argmax(1) for chunk in images.split(128)])
    return float((predicted == labels).float().mean())


def train_classifier(data: Path, seed: int = 0) -> tuple[DomainClassifier, float | None]:
    """Fit the classifier on trainA (label 0) vs trainB (label 1); accuracy on the test folders."""
    torch.manual_seed(seed)
    images_a = load_folder(scan_folder(data / "trainA"), "classifier data A")
    images_b = load_folder(scan_folder(data / "trainB"), "classifier data B")
    images = torch.cat([images_a, images_b])
    labels = torch.cat([torch.zeros(len(images_a)), torch.ones(len(images_b))]).long()
    net = DomainClassifier(RECIPE["width"])
    optimizer = torch.optim.Adam(net.parameters(), lr=RECIPE["lr"])
    # Weight the classes so that an unbalanced pair of folders does not bias the decision.
    weights = len(labels) / (2 * torch.bincount(labels, minlength=2).float())
    generator = torch.Generator().manual_seed(seed)
    batch = RECIPE["batch_size"]
    for epoch in tqdm(range(RECIPE["epochs"]), desc="training domain classifier", unit="epoch"):
        net.train()
        order = torch.randperm(len(images), generator=generator)
        for start in range(0, len(order), batch):
            index = order[start : start + batch]
            x = images[index]
            flip = torch.rand(len(x), generator=generator) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
            loss = F.cross_entropy(net(x), labels[index], weight=weights)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        log.debug("classifier epoch %d: loss %.3f", epoch, loss.item())
    net.eval()
    test_accuracy = None
    if (data / "testA").is_dir() and (data / "testB").is_dir():
        test_a = load_folder(scan_folder(data / "testA"), "classifier test A")
        test_b = load_folder(scan_folder(data / "testB"), "classifier test B")
        test_labels = torch.cat([torch.zeros(len(test_a)), torch.ones(len(test_b))]).long()
        test_accuracy = accuracy(net, torch.cat([test_a, test_b]), test_labels)
    return net, test_accuracy


def load_or_train_classifier(data: Path, cache_dir: Path) -> TrainedClassifier:
    """The cached classifier for `data` if there is one, else train it and cache it."""
    path = cache_dir / f"domain-classifier-{data_fingerprint(data)}.safetensors"
    net = DomainClassifier(RECIPE["width"])
    if path.is_file():
        from safetensors import safe_open

        with safe_open(path, framework="pt") as handle:
            metadata = handle.metadata() or {}
        net.load_state_dict(load_file(path))
        raw = metadata.get("test_accuracy", "null")
        log.info("domain classifier from cache: %s", path)
        return TrainedClassifier(net.eval(), json.loads(raw), path)
    net, test_accuracy = train_classifier(data)
    cache_dir.mkdir(parents=True, exist_ok=True)
    save_file(
        net.state_dict(), path,
        metadata={"test_accuracy": json.dumps(test_accuracy), "data": str(data)},
    )  # fmt: skip
    log.info("domain classifier trained (test accuracy %s), cached at %s", test_accuracy, path)
    return TrainedClassifier(net.eval(), test_accuracy, path)
