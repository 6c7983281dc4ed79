"""`python -m training.tools.throughput`: training steps per second for each speed lever.

Each variant trains real steps on real images (the default model's shape: ngf 24, 6 blocks,
128-pixel crops, batch 1). The CPU's speed drifts from minute to minute, so the variants run
in interleaved rounds and the table reports each one's median rate and its ratio to the
baseline in the same round. Writes a Markdown table (for BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import datetime
import logging
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from cyclegan.benchmarks_file import machine, write_section
from training.config import TrainConfig
from training.data import UnpairedDataset, unpaired_loader
from training.networks import TrainState, build_state
from training.placement import Placement
from training.step import train_step

log = logging.getLogger("training.tools.throughput")

BASE = {
    "ngf": 24, "n_blocks": 6, "ndf": 64, "load_size": 256, "image_size": 128,
    "batch_size": 1, "workers": 0, "upsample": "resize",
}  # fmt: skip


@dataclass
class Variant:
    name: str
    overrides: dict[str, Any] = field(default_factory=dict)
    bf16: bool = False
    channels_last: bool = False
    compiled: bool = False
    threads: int | None = None


VARIANTS = [
    Variant("baseline (fp32, resize, ndf 64, identity on)"),
    Variant("bf16 autocast", bf16=True),
    Variant("channels_last", channels_last=True),
    Variant("torch.compile (generators)", compiled=True),
    Variant("1 thread", threads=1),
    Variant("ndf 32", {"ndf": 32}),
    Variant("identity loss off", {"lambda_identity": 0.0}),
    Variant("deconv upsampling", {"upsample": "deconv"}),
    Variant("bf16 + identity off + ndf 32", {"lambda_identity": 0.0, "ndf": 32}, bf16=True),
]


def prepare(variant: Variant, data: Path, base: dict[str, Any]) -> Callable[[int], float]:
    """A function that trains `n` steps of this variant and returns steps per second."""
    config = TrainConfig.model_validate({**base, **variant.overrides, "data": data})
    placement = Placement(torch.device("cpu"), torch.bfloat16 if variant.bf16 else None, 0, 1)
    state: TrainState = build_state(config, placement.device, False, 0)
    if variant.channels_last:
        state.generators.to(memory_format=torch.channels_last)
        state.discriminators.to(memory_format=torch.channels_last)
    if variant.compiled:
        state.generators_train = torch.compile(state.generators)
    loader = unpaired_loader(
        UnpairedDataset.from_data(data, config.load_size, config.image_size, True, 0)
    )
    batches = iter(loader)

    def run(n: int) -> float:
        threads = torch.get_num_threads()
        if variant.threads is not None:
            torch.set_num_threads(variant.threads)
        try:
            ready = [next(batches) for _ in range(n)]  # decode outside the timed part
            if variant.channels_last:
                ready = [
                    {k: v.contiguous(memory_format=torch.channels_last) for k, v in b.items()}
                    for b in ready
                ]
            start = time.perf_counter()
            for batch in ready:
                train_step(batch, state, config, placement)
            return n / (time.perf_counter() - start)
        finally:
            torch.set_num_threads(threads)

    return run


def measure(
    data: Path, variants: list[Variant], base: dict[str, Any], steps: int, rounds: int,
    warmup: int,
) -> list[tuple[str, float, float]]:  # fmt: skip
    """[(variant, median steps/s, median ratio to the first variant in the same round)]."""
    runners = {}
    for variant in variants:
        log.info("warming up: %s", variant.name)
        runners[variant.name] = prepare(variant, data, base)
        runners[variant.name](warmup)  # first steps allocate, and torch.compile compiles
    rates: dict[str, list[float]] = {name: [] for name in runners}
    for round_index in range(rounds):
        for name, run in runners.items():
            rates[name].append(run(steps))
        log.info("round %d of %d done", round_index + 1, rounds)
    baseline = rates[variants[0].name]
    return [
        (
            name,
            statistics.median(values),
            statistics.median(v / b for v, b in zip(values, baseline, strict=True)),
        )
        for name, values in rates.items()
    ]


SECTION = "## Training throughput (speed levers)"


def now_utc() -> str:
    return f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC"


def markdown(rows: list[tuple[str, float, float]], steps: int, rounds: int) -> str:
    lines = [
        f"Steps/s at 128 px, ngf 24, 6 blocks, batch 1; {rounds} interleaved rounds of "
        f"{steps} steps each, {torch.get_num_threads()} threads unless named "
        "(`python -m training.tools.throughput`).",
        "",
        "| variant | steps/s (median) | vs baseline, same round (median) |",
        "|---|---|---|",
    ]
    lines += [f"| {name} | {rate:.2f} | {ratio:.2f}x |" for name, rate, ratio in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.tools.throughput", description=__doc__
    )
    parser.add_argument("--data", type=Path, default=Path("../shared/data/horse2zebra"))
    parser.add_argument("--steps", type=int, default=20, help="steps per variant per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument(
        "--out", type=Path,
        help=f"also write the table as the section '{SECTION}' of this Markdown file "
        "(e.g. BENCHMARKS.md; the file's other sections are kept)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    load, started = os.getloadavg()[0], now_utc()
    rows = measure(args.data, VARIANTS, BASE, args.steps, args.rounds, args.warmup)
    table = markdown(rows, args.steps, args.rounds)
    sys.stdout.write(table)
    if args.out:
        written = (
            f"Written by `python -m training.tools.throughput` on {started}. "
            f"Machine: {machine(load, ['torch'])}."
        )
        write_section(args.out, SECTION, [SECTION, "", written, "", table])
    return 0


if __name__ == "__main__":
    sys.exit(main())
