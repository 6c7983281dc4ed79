"""`python -m training plot RUN`: draw RUN/metrics.jsonl as RUN/curves.png.

One panel per loss (raw values faint, a moving average on top) and one for the learning rate,
all over training steps. Works on a run folder or a model package (which keeps the log).
`--watch` redraws whenever the log grows, for a run that is still training.

`python -m training plot-validation LABEL=RUN ... --out PNG`: several runs' validation scores
(RUN/validation.jsonl) against training minutes, one line per run: the quality-against-CPU-time
curve of an ablation.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from training import run_folder

log = logging.getLogger(__name__)

LOSSES = {
    "loss_G": "generators, total",
    "loss_G_GAN": "generators, adversarial",
    "loss_G_cycle": "cycle consistency",
    "loss_G_identity": "identity",
    "loss_G_content": "content (pretrained features)",
    "loss_D": "discriminators",
}


def read_log(path: Path) -> list[dict[str, float]]:
    """The records of a metrics.jsonl; a half-written last line (a live run) is skipped."""
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return [r for r in records if isinstance(r, dict) and "step" in r]


def moving_average(values: list[float], window: int) -> list[float]:
    """Trailing mean over up to `window` points (the first points average what there is)."""
    out, total = [], 0.0
    for i, value in enumerate(values):
        total += value
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def plot_curves(records: list[dict[str, float]], out: Path, title: str) -> Path:
    """Write the curves of `records` to `out` (PNG) and return it."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    from matplotlib import pyplot as plt

    if not records:
        raise ValueError("the log has no records to plot yet")
    steps = [r["step"] for r in records]
    panels = [name for name in LOSSES if any(name in r for r in records)] + ["lr"]
    window = max(1, len(records) // 30)
    figure, axes = plt.subplots(len(panels), 1, figsize=(8, 1.9 * len(panels)), sharex=True)
    for ax, name in zip(axes, panels, strict=True):
        values = [float(r.get(name, float("nan"))) for r in records]
        if name == "lr":
            ax.plot(steps, values, color="tab:gray")
            ax.set_ylabel("learning rate")
        else:
            ax.plot(steps, values, color="tab:blue", alpha=0.25, linewidth=0.8)
            ax.plot(steps, moving_average(values, window), color="tab:blue")
            ax.set_ylabel(name)
            ax.set_title(LOSSES[name], fontsize=9, loc="left")
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("step")
    figure.suptitle(f"{title}: {steps[-1]} steps (moving average over {window} records)")
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=90)
    plt.close(figure)
    return out


def plot_run(run: Path, watch: bool = False, every: float = 30.0) -> Path:
    """Plot RUN/metrics.jsonl into RUN/curves.png; with `watch`, keep redrawing on growth."""
    path = run / run_folder.LOSS_LOG
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no training log (is {run} a run folder or package?)")
    out = run / run_folder.CURVES
    size = -1
    while True:
        if path.stat().st_size != size:
            size = path.stat().st_size
            plot_curves(read_log(path), out, run.name)
            log.info("curves written: %s", out)
        if not watch:
            return out
        time.sleep(every)


def plot_validation(runs: dict[str, Path], out: Path) -> Path:
    """One panel per validation score, one line per run (the averaged weights solid, the last
    weights dashed in the same colour when the run kept an average)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    logs = {label: read_log(run / run_folder.VALIDATION_LOG) for label, run in runs.items()}
    keys = sorted({k for records in logs.values() for r in records for k in r
                   if k not in ("step", "minutes") and not k.startswith("raw_")})  # fmt: skip
    if not keys:
        raise ValueError("no validation records to plot (train with --val-every)")
    figure, axes = plt.subplots(len(keys), 1, figsize=(8, 2.4 * len(keys)), sharex=True)
    axes = [axes] if len(keys) == 1 else list(axes)
    for index, (label, records) in enumerate(logs.items()):
        colour = f"C{index}"
        minutes = [r["minutes"] for r in records]
        for ax, key in zip(axes, keys, strict=True):
            ax.plot(minutes, [r.get(key, float("nan")) for r in records], "o-", color=colour,
                    label=label, markersize=3)  # fmt: skip
            if any(f"raw_{key}" in r for r in records):
                raw = [r.get(f"raw_{key}", float("nan")) for r in records]
                ax.plot(minutes, raw, "--", color=colour, alpha=0.5, linewidth=1)
    for ax, key in zip(axes, keys, strict=True):
        ax.set_title(key, fontsize=9, loc="left")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    axes[-1].set_xlabel("training minutes (dashed: last weights, solid: their average)")
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=90)
    plt.close(figure)
    return out
