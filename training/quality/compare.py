"""Compare evaluation reports side by side: `python -m training compare [LABEL=]REPORT.json ...`.

Prints a Markdown table, one block of rows per direction, so that each model's domain score is
read next to its cycle PSNR/SSIM and classifier-FID (no one figure decides). Reports are only
comparable when one domain classifier scored them all: a report made with another classifier
is refused, naming both.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.quality.imagenet_check import fd_label


class CompareError(Exception):
    """Reports that cannot be compared."""


@dataclass(frozen=True)
class Report:
    label: str
    data: dict[str, Any]


def read_reports(arguments: list[str]) -> list[Report]:
    """`LABEL=path` or `path` (labelled by its file name without .json)."""
    reports = []
    for argument in arguments:
        label, _, path = argument.rpartition("=")
        file = Path(path)
        try:
            data = json.loads(file.read_text())
        except (OSError, ValueError) as error:
            raise CompareError(f"{file}: not a readable report ({error})") from None
        if "directions" not in data or "classifier" not in data:
            raise CompareError(f"{file}: not a report of python -m training evaluate")
        reports.append(Report(label or file.stem, data))
    # The cache file is named by the data's fingerprint, but its weights depend on the CPU
    # that trained it (on horse2zebra: 244/260 test images right on a Zen 4, 248/260 on an
    # AVX2 machine), so its test score tells apart two classifiers of one name.
    classifiers = {
        f"{c['file']} ({c['test_correct']}/{c['test_images']} right)"
        for c in (r.data["classifier"] for r in reports)
    }
    if len(classifiers) > 1:
        raise CompareError(
            "the reports were scored by different domain classifiers "
            f"({', '.join(sorted(classifiers))}): their domain scores do not compare"
        )
    return reports


def _judge_columns(reports: list[Report]) -> list[tuple[str, str]]:
    """(header, key) of the pretrained-judge figures that any report has, in a fixed order."""
    present = {k for r in reports for d in r.data["directions"].values() for k in d}
    columns = [(fd_label(k), k) for k in sorted(present)
               if k.startswith("fd_")]  # fmt: skip
    if "imagenet_target_share" in present:
        columns.append(("ImageNet: target", "imagenet_target_share"))
    if "imagenet_source_left" in present:
        columns.append(("ImageNet: source left", "imagenet_source_left"))
    return columns


def _cell(figures: dict, key: str) -> str:
    value = figures.get(key)
    if value is None:
        return "—"
    return f"{value:.1f}" if key.startswith("fd_") else f"{value:.3f}"


def _domain_score(figures: dict) -> str:
    """The first classifier's score, with the seeds' mean ± spread when there are several."""
    text = f"{figures['domain_score']:.3f}"
    if "domain_score_mean" in figures:
        seeds = len(figures["domain_score_per_seed"])
        text += (
            f" ({figures['domain_score_mean']:.3f} ± {figures['domain_score_std']:.3f}, "
            f"{seeds} seeds)"
        )
    return text


def markdown_table(reports: list[Report]) -> list[str]:
    directions = list(dict.fromkeys(d for r in reports for d in r.data["directions"]))
    classifier = reports[0].data["classifier"]
    judged = _judge_columns(reports)
    lines = [
        f"Domain classifier: {classifier['test_correct']}/{classifier['test_images']} "
        f"({classifier['test_accuracy']:.3f}) of the real test images right.",
        "",
        "| direction | model | version | domain score | cycle PSNR dB | cycle SSIM | "
        "classifier-FID | " + "".join(f"{header} | " for header, _ in judged) + "verdict |",
        "|---|---|---|---|---|---|---|" + "---|" * len(judged) + "---|",
    ]
    for direction in directions:
        for report in reports:
            figures = report.data["directions"].get(direction)
            if figures is None:
                continue
            lines.append(
                f"| {direction} | {report.label} | {report.data['version']} | "
                f"{_domain_score(figures)} | {figures['cycle_psnr_db']:.2f} | "
                f"{figures['cycle_ssim']:.3f} | {figures['classifier_fid']:.1f} | "
                + "".join(f"{_cell(figures, key)} | " for _, key in judged)
                + f"{figures['judgement']['verdict']} |"
            )
    return lines
