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
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor
from torch.nn import functional as F
from tqdm import tqdm

from cyclegan.imaging import image_grid, image_to_tensor, served_resolution
from cyclegan.package import ModelPackage
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
    judge_network: FeatureNetwork, fake: Tensor, source: Tensor, target: Tensor, direction: Any
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
    domains = package.manifest.domains
    sides = {domains[0]: "A", domains[1]: "B"}
    report: dict[str, Any] = {
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
        + (["inception"] if inception is not None else [])
        + ([judge_network.name] if judge_network is not None else []),
        "more_classifiers": [
            {"file": c.path.name, "test_accuracy": c.test_accuracy} for c in more_classifiers
        ],
        "graph": graph,
        "directions": {},
    }
    grid_rows: list[list[Tensor]] = []
    loaded: dict[tuple[Path, int], Tensor] = {}

    def test_images(folder: Path, size: int) -> Tensor:  # each folder decoded once per size
        if not folder.is_dir():
            raise DataError(f"{folder}: test folder is missing (evaluate needs testA and testB)")
        if (folder, size) not in loaded:
            loaded[(folder, size)] = load_test_images(folder, size, limit)
        return loaded[(folder, size)]

    for name, direction in package.manifest.directions.items():
        size = served_resolution(resolution or direction.native_resolution)
        source_folder = data / f"test{sides[direction.source]}"
        target_folder = data / f"test{sides[direction.target]}"
        source = test_images(source_folder, size)
        target = test_images(target_folder, size)
        backward_name = package.manifest.direction_between(direction.target, direction.source)
        fake = translate_all(generator(package, name, graph), source, batch_size, f"{name}")
        reconstructed = translate_all(
            generator(package, backward_name, graph), fake, batch_size, f"{backward_name} (cycle)"
        )
        target_label = 0 if sides[direction.target] == "A" else 1
        fake_labels, fake_features = classifier.predict(fake)
        source_labels, source_features = classifier.predict(source)
        _, target_features = classifier.predict(target)
        result: dict[str, Any] = {
            "source_images": len(source),
            "target_images": len(target),
            "resolution": size,
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
        if inception is not None:
            from training.quality.inception import inception_features

            fake_inc = inception_features(inception, fake)
            target_inc = inception_features(inception, target)
            result.update(feature_metrics(fake_inc, target_inc, "inception"))
            result["baseline"].update(
                feature_metrics(inception_features(inception, source), target_inc, "inception")
            )
        if more_classifiers:
            scores = [result["domain_score"]] + [
                float((c.predict(fake)[0] == target_label).float().mean()) for c in more_classifiers
            ]
            result["domain_score_per_seed"] = scores
            result["domain_score_mean"] = float(torch.tensor(scores).mean())
            result["domain_score_std"] = float(torch.tensor(scores).std(correction=0))
        if judge_network is not None:
            of_judge = judged(judge_network, fake, source, target, direction)
            result["baseline"].update(of_judge.pop("baseline"))
            result.update(of_judge)
        if teacher is not None:
            teacher_name = teacher.manifest.direction_between(direction.source, direction.target)
            reference = translate_all(
                teacher.load_generator(teacher_name),
                source,
                batch_size,
                f"{teacher_name} (teacher)",
            )
            result["teacher"] = f"{teacher.name} {teacher.manifest.version}"
            result["psnr_vs_teacher_db"] = float(psnr(reference, fake).mean())
        compiled = package.direction(name).onnx
        if graph == "int8" and compiled is not None and compiled.int8 is not None:
            int8 = compiled.int8
            result["int8_graph"] = {"sha256": int8.sha256, "weight_bits": int8.weight_bits}
        result["judgement"] = judge(result, classifier.test_accuracy)
        report["directions"][name] = result
        log.info(
            "%s: %s (domain score %.3f with a classifier %.3f accurate, cycle PSNR %.2f dB, "
            "SSIM %.3f, classifier-FID %.2f)%s",
            name, result["judgement"]["verdict"], result["domain_score"],
            classifier.test_accuracy or float("nan"), result["cycle_psnr_db"],
            result["cycle_ssim"], result["classifier_fid"],
            "".join(f"; fails: {r}" for r in result["judgement"]["failed"]),
        )  # fmt: skip
        count = min(GRID_IMAGES, len(source))
        tiles = F.interpolate(
            torch.cat([source[:count], fake[:count]]), size=(GRID_TILE, GRID_TILE),
            mode="bilinear", antialias=True, align_corners=False,
        )  # fmt: skip
        grid_rows.append(list(tiles))
    if grid_path is not None:
        # one row per direction: the inputs, then their translations
        width = max(len(row) for row in grid_rows)
        blank = torch.ones_like(grid_rows[0][0])
        image_grid([row + [blank] * (width - len(row)) for row in grid_rows]).save(grid_path)
        report["grid"] = grid_path.name
    return report
