"""Evaluate a model package on held-out test folders.

For each direction (testA -> B, testB -> A) it reports:
- domain score: share of translated images the domain classifier assigns to the target domain;
- content preservation: cycle-reconstruction PSNR and SSIM, x vs F(G(x));
- diversity: mean pairwise feature distance of the translations over that of the real target
  images (a collapsed generator scores near 0);
- FID and KID in the classifier's feature space, and in Inception-v3's when weights are given;
- with a judge network (an ImageNet EfficientNet-Lite that training did not use,
  `imagenet_check.py`): FD-Lite and KD-Lite in its pooled features, and the ImageNet check
  where a domain has an ImageNet class, with the same figures for the real photos as the ceiling;
- with more classifiers (other seeds), each one's domain score, their mean and spread;
and the same FID/KID/FD between the real source and real target images, as a scale to read by.

No one figure is trusted alone: `judge` calls a direction "good" only when the classifier is
accurate enough to believe, the translation lands in the target domain (by the classifier and,
where it applies, by ImageNet), the content survives the cycle, the outputs sit nearer the
target than the inputs did in every feature space, and they are not collapsed. A small
classifier trained here is easily fooled by a colour wash and line artefacts; the ImageNet
judge is not, so the verdict needs both.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor
from torch.nn import functional as F
from tqdm import tqdm

from cyclegan.imaging import image_grid, image_to_tensor, served_resolution
from cyclegan.package import Direction, ModelPackage
from training.data import DataError, load_image, resize_shorter_side, scan_folder
from training.feature_network import FeatureNetwork
from training.quality.classifier import TrainedClassifier
from training.quality.imagenet_check import (
    fd_label,
    imagenet_check,
    judge_outputs,
    pretrained_metrics,
)
from training.quality.metrics import fid, kid, mean_pairwise_distance, psnr, ssim

log = logging.getLogger(__name__)

GRID_IMAGES = 4  # per direction in the sample grid
GRID_TILE = 128  # pixels per tile: the grid is for a README, not for judging detail

# What "good" means; each bound is checked on its own and named when it fails.
MIN_CLASSIFIER_ACCURACY = 0.93  # below this the domain score is too loose to believe
MIN_DOMAIN_SCORE = 0.85
MIN_CYCLE_PSNR_DB = 20.0  # a generator that paints the target anyhow loses the content
MIN_DIVERSITY_RATIO = 0.5  # far below 1: the outputs look alike (mode collapse)
MIN_IMAGENET_TARGET_SHARE = 0.5  # e.g. horse2zebra: top-1 "zebra" (real zebra photos: 0.93)
MAX_IMAGENET_SOURCE_LEFT = 0.15  # e.g. zebra2horse: still top-1 "zebra" (real horses: 0.00)


def judge(result: dict[str, Any], classifier_accuracy: float | None) -> dict[str, Any]:
    """{"verdict": "good" | "weak", "failed": [reasons]} for one direction's figures."""
    checks = {
        f"classifier test accuracy >= {MIN_CLASSIFIER_ACCURACY}": classifier_accuracy is not None
        and classifier_accuracy >= MIN_CLASSIFIER_ACCURACY,
        f"domain score >= {MIN_DOMAIN_SCORE}": result["domain_score"] >= MIN_DOMAIN_SCORE,
        f"cycle PSNR >= {MIN_CYCLE_PSNR_DB} dB": result["cycle_psnr_db"] >= MIN_CYCLE_PSNR_DB,
        "classifier-FID below the real-vs-real baseline": result["classifier_fid"]
        < result["baseline"]["classifier_fid"],
        f"diversity ratio >= {MIN_DIVERSITY_RATIO}": result["diversity_ratio"]
        >= MIN_DIVERSITY_RATIO,
    }
    for key in [k for k in result if k.startswith("fd_")]:
        checks[f"{fd_label(key)} below the real-vs-real baseline"] = (
            result[key] < result["baseline"][key]
        )
    if "imagenet_target_share" in result:
        checks[f"ImageNet top-1 target share >= {MIN_IMAGENET_TARGET_SHARE}"] = (
            result["imagenet_target_share"] >= MIN_IMAGENET_TARGET_SHARE
        )
    if "imagenet_source_left" in result:
        checks[f"ImageNet top-1 source share left <= {MAX_IMAGENET_SOURCE_LEFT}"] = (
            result["imagenet_source_left"] <= MAX_IMAGENET_SOURCE_LEFT
        )
    failed = [check for check, passed in checks.items() if not passed]
    return {"verdict": "weak" if failed else "good", "failed": failed}


def load_test_images(folder: Path, resolution: int, limit: int | None) -> Tensor:
    """(N, 3, r, r) in [-1, 1]: shorter side resized to `resolution`, centre-cropped square."""
    return load_images(scan_folder(folder).files[:limit], resolution)


def load_images(files: list[Path], resolution: int) -> Tensor:
    """`load_test_images` for a list of files."""
    images = []
    for path in files:
        tensor = resize_shorter_side(image_to_tensor(load_image(path)), resolution, resolution)
        size = tensor.shape[1:]
        top, left = (size[0] - resolution) // 2, (size[1] - resolution) // 2
        images.append(tensor[:, top : top + resolution, left : left + resolution])
    return torch.stack(images)


Translator = Callable[[Tensor], Tensor]
GraphName = Literal["pytorch", "int8"]


def generator(package: ModelPackage, direction: str, graph: GraphName) -> Translator:
    """The direction's translator: its PyTorch weights, or the INT8 ONNX graph the CPU serves."""
    if graph == "pytorch":
        return package.load_generator(direction).eval()
    from cyclegan.backends import create_backend

    backend = create_backend("onnxruntime", package, direction, "cpu", precision="int8")
    return lambda batch: torch.from_numpy(backend.translate(batch.numpy()))


@torch.no_grad()
def translate_all(net: Translator, images: Tensor, batch_size: int, desc: str) -> Tensor:
    outputs = [
        net(chunk) for chunk in tqdm(images.split(batch_size), desc=desc, unit="batch", leave=False)
    ]
    return torch.cat(outputs)


def feature_metrics(fake: Tensor, real: Tensor, prefix: str) -> dict[str, float]:
    kid_mean, kid_std = kid(fake, real)
    return {
        f"{prefix}_fid": fid(fake, real),
        f"{prefix}_kid": kid_mean,
        f"{prefix}_kid_std": kid_std,
    }


def judged(
    judge_network: FeatureNetwork,
    fake: Tensor,
    source: Tensor,
    target: Tensor,
    direction: Direction,
) -> dict[str, Any]:
    """FD/KD-Lite and the ImageNet check of the translations; the real photos' as scales."""
    of_target = judge_outputs(judge_network, target)
    result: dict[str, Any] = pretrained_metrics(
        judge_network, judge_outputs(judge_network, fake), of_target,
        direction.source, direction.target,
    )  # fmt: skip
    baseline = pretrained_metrics(
        judge_network, judge_outputs(judge_network, source), of_target,
        direction.source, direction.target,
    )  # fmt: skip
    result["baseline"] = {k: v for k, v in baseline.items() if not k.startswith("imagenet")}
    # The ceiling: the real target photos, read the way the translations are read.
    result["imagenet_real_photos"] = imagenet_check(
        of_target["top1"], direction.source, direction.target
    )
    return result


@dataclass(frozen=True)
class Judges:
    """What scores the translations: the domain classifier (and the same classifier trained
    with other seeds), and, when given, Inception-v3 and an ImageNet judge network."""

    classifier: TrainedClassifier
    inception: torch.nn.Module | None = None
    judge_network: FeatureNetwork | None = None
    more_classifiers: Sequence[TrainedClassifier] = ()


class TestImages:
    """DATA/testA and DATA/testB, each folder decoded once per size."""

    def __init__(self, data: Path, domains: tuple[str, str], limit: int | None) -> None:
        self.folders = {domains[0]: data / "testA", domains[1]: data / "testB"}
        self.limit = limit
        self.loaded: dict[tuple[str, int], Tensor] = {}

    def of(self, domain: str, size: int) -> Tensor:
        folder = self.folders[domain]
        if not folder.is_dir():
            raise DataError(f"{folder}: test folder is missing (evaluate needs testA and testB)")
        if (domain, size) not in self.loaded:
            self.loaded[(domain, size)] = load_test_images(folder, size, self.limit)
        return self.loaded[(domain, size)]


def evaluate_package(
    package: ModelPackage,
    data: Path,
    classifier: TrainedClassifier,
    inception: torch.nn.Module | None = None,
    resolution: int | None = None,
    limit: int | None = None,
    batch_size: int = 8,
    grid_path: Path | None = None,
    teacher: ModelPackage | None = None,
    graph: GraphName = "pytorch",
    judge_network: FeatureNetwork | None = None,
    more_classifiers: Sequence[TrainedClassifier] = (),
) -> dict[str, Any]:
    """The report (a JSON-ready dict) for every direction of `package` on DIR/testA, testB.

    With `teacher` (a student's teacher), each direction also reports the PSNR of its
    translations against the teacher's translations of the same images. `graph="int8"`
    translates (both ways of the cycle) with the package's INT8 graph, which `auto` serves on
    the CPU (unless the graph has 8-bit weights and the CPU no VNNI); each direction's result
    then names the graph (hash, weight bits).
    """
    judges = Judges(classifier, inception, judge_network, more_classifiers)
    report = report_header(package, data, judges, graph)
    images = TestImages(data, package.manifest.domains, limit)
    grid_rows: list[list[Tensor]] = []
    for name, direction in package.manifest.directions.items():
        size = served_resolution(resolution or direction.native_resolution)
        source = images.of(direction.source, size)
        target = images.of(direction.target, size)
        fake, reconstructed = translate_cycle(package, name, graph, source, batch_size)
        target_label = package.manifest.domains.index(direction.target)
        result = scores(judges, direction, source, target, fake, reconstructed, target_label)
        if teacher is not None:
            result.update(teacher_figures(teacher, direction, source, fake, batch_size))
        if graph == "int8":
            result.update(int8_record(package, name))
        result["judgement"] = judge(result, classifier.test_accuracy)
        report["directions"][name] = result
        log_verdict(name, result, classifier.test_accuracy)
        grid_rows.append(grid_row(source, fake))
    if grid_path is not None:
        save_grid(grid_rows, grid_path)
        report["grid"] = grid_path.name
    return report


def report_header(
    package: ModelPackage, data: Path, judges: Judges, graph: GraphName
) -> dict[str, Any]:
    """What was evaluated, on what, scored by what; "directions" still empty."""
    classifier = judges.classifier
    return {
        "package": package.name,
        "version": package.manifest.version,
        "data": data.name,  # by name: a report says nothing about one machine's folders
        "evaluated_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "classifier": {
            "file": classifier.path.name,
            "test_accuracy": classifier.test_accuracy,
            "test_correct": None if classifier.test is None else classifier.test.correct,
            "test_images": None if classifier.test is None else classifier.test.total,
            "feature_dim": classifier.net.feature_dim,
        },
        "feature_spaces": ["classifier"]
        + (["inception"] if judges.inception is not None else [])
        + ([judges.judge_network.name] if judges.judge_network is not None else []),
        "more_classifiers": [
            {"file": c.path.name, "test_accuracy": c.test_accuracy} for c in judges.more_classifiers
        ],
        "graph": graph,
        "directions": {},
    }


def translate_cycle(
    package: ModelPackage, name: str, graph: GraphName, source: Tensor, batch_size: int
) -> tuple[Tensor, Tensor]:
    """The translations of `source` by direction `name`, and their way back."""
    direction = package.direction(name)
    backward = package.manifest.direction_between(direction.target, direction.source)
    fake = translate_all(generator(package, name, graph), source, batch_size, name)
    reconstructed = translate_all(
        generator(package, backward, graph), fake, batch_size, f"{backward} (cycle)"
    )
    return fake, reconstructed


def scores(
    judges: Judges, direction: Direction, source: Tensor, target: Tensor, fake: Tensor,
    reconstructed: Tensor, target_label: int,
) -> dict[str, Any]:  # fmt: skip
    """One direction's figures in every feature space the judges give, with their baselines."""
    result = classifier_figures(
        judges.classifier, source, target, fake, reconstructed, target_label
    )
    if judges.inception is not None:
        figures, baseline = inception_figures(judges.inception, source, target, fake)
        result.update(figures)
        result["baseline"].update(baseline)
    if judges.more_classifiers:
        result.update(
            seed_figures(result["domain_score"], judges.more_classifiers, fake, target_label)
        )
    if judges.judge_network is not None:
        of_judge = judged(judges.judge_network, fake, source, target, direction)
        result["baseline"].update(of_judge.pop("baseline"))
        result.update(of_judge)
    return result


def classifier_figures(
    classifier: TrainedClassifier, source: Tensor, target: Tensor, fake: Tensor,
    reconstructed: Tensor, target_label: int,
) -> dict[str, Any]:  # fmt: skip
    """Domain score, cycle PSNR/SSIM, diversity, and FID/KID in the classifier's features."""
    fake_labels, fake_features = classifier.predict(fake)
    source_labels, source_features = classifier.predict(source)
    _, target_features = classifier.predict(target)
    return {
        "source_images": len(source),
        "target_images": len(target),
        "resolution": source.shape[-1],
        "domain_score": float((fake_labels == target_label).float().mean()),
        "domain_score_of_untranslated_inputs": float(
            (source_labels == target_label).float().mean()
        ),
        "cycle_psnr_db": float(psnr(source, reconstructed).mean()),
        "cycle_ssim": float(ssim(source, reconstructed).mean()),
        "diversity_ratio": mean_pairwise_distance(fake_features)
        / mean_pairwise_distance(target_features),
        **feature_metrics(fake_features, target_features, "classifier"),
        "baseline": feature_metrics(source_features, target_features, "classifier"),
    }


def inception_figures(
    inception: torch.nn.Module, source: Tensor, target: Tensor, fake: Tensor
) -> tuple[dict[str, float], dict[str, float]]:
    """FID/KID in Inception-v3's features: of the translations, and of the untranslated inputs."""
    from training.quality.inception import inception_features

    of_target = inception_features(inception, target)
    return (
        feature_metrics(inception_features(inception, fake), of_target, "inception"),
        feature_metrics(inception_features(inception, source), of_target, "inception"),
    )


def seed_figures(
    domain_score: float, more_classifiers: Sequence[TrainedClassifier], fake: Tensor,
    target_label: int,
) -> dict[str, Any]:  # fmt: skip
    """The domain score by each classifier seed (the first is `domain_score`), mean and spread."""
    seeds = [float((c.predict(fake)[0] == target_label).float().mean()) for c in more_classifiers]
    per_seed = torch.tensor([domain_score, *seeds])
    return {
        "domain_score_per_seed": [domain_score, *seeds],
        "domain_score_mean": float(per_seed.mean()),
        "domain_score_std": float(per_seed.std(correction=0)),
    }


def teacher_figures(
    teacher: ModelPackage, direction: Direction, source: Tensor, fake: Tensor, batch_size: int
) -> dict[str, Any]:
    """How close a student's translations come to its teacher's, as PSNR."""
    name = teacher.manifest.direction_between(direction.source, direction.target)
    reference = translate_all(teacher.load_generator(name), source, batch_size, f"{name} (teacher)")
    return {
        "teacher": f"{teacher.name} {teacher.manifest.version}",
        "psnr_vs_teacher_db": float(psnr(reference, fake).mean()),
    }


def int8_record(package: ModelPackage, name: str) -> dict[str, Any]:
    """The INT8 graph that translated: its hash and weight bits."""
    compiled = package.direction(name).onnx
    if compiled is None or compiled.int8 is None:
        return {}
    int8 = compiled.int8
    return {"int8_graph": {"sha256": int8.sha256, "weight_bits": int8.weight_bits}}


def log_verdict(name: str, result: dict[str, Any], classifier_accuracy: float | None) -> None:
    log.info(
        "%s: %s (domain score %.3f with a classifier %.3f accurate, cycle PSNR %.2f dB, "
        "SSIM %.3f, classifier-FID %.2f)%s",
        name, result["judgement"]["verdict"], result["domain_score"],
        classifier_accuracy or float("nan"), result["cycle_psnr_db"],
        result["cycle_ssim"], result["classifier_fid"],
        "".join(f"; fails: {r}" for r in result["judgement"]["failed"]),
    )  # fmt: skip


def grid_row(source: Tensor, fake: Tensor) -> list[Tensor]:
    """The first few inputs, then their translations, as small tiles."""
    count = min(GRID_IMAGES, len(source))
    tiles = F.interpolate(
        torch.cat([source[:count], fake[:count]]), size=(GRID_TILE, GRID_TILE),
        mode="bilinear", antialias=True, align_corners=False,
    )  # fmt: skip
    return list(tiles)


def save_grid(rows: list[list[Tensor]], path: Path) -> None:
    """One row per direction; shorter rows are padded with white tiles."""
    width = max(len(row) for row in rows)
    blank = torch.ones_like(rows[0][0])
    image_grid([row + [blank] * (width - len(row)) for row in rows]).save(path)
