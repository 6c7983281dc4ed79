"""The one timing loop: items per second of a runtime call, alone or interleaved with others.

Every figure that times a runtime (compile verify, compile benchmark, the GPU benchmark) comes
from `rates`. It times wall-clock windows with `time.perf_counter` after untimed warm-up calls;
`synchronize` (e.g. `torch.cuda.synchronize`) runs after each call, so asynchronous GPU work is
inside the window that started it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

Run = Callable[[], object]


def rates(
    runs: dict[str, Run],
    items: int,
    seconds: float,
    *,
    rounds: int = 1,
    min_calls: int = 1,
    warmup: int = 1,
    synchronize: Callable[[], None] | None = None,
) -> dict[str, float]:
    """Items per second of each call in `runs`, each of which handles `items` items.

    Each call is timed in `rounds` windows of `seconds / rounds` (at least `min_calls` calls
    per window), taking turns: when the machine's speed drifts (another job, clocks), every
    call sees the drift alike, so ratios between them are fair.
    """
    for run in runs.values():
        for _ in range(warmup):  # first calls allocate memory and pick kernels
            run()
        if synchronize is not None:
            synchronize()
    calls = dict.fromkeys(runs, 0)
    elapsed = dict.fromkeys(runs, 0.0)
    window = seconds / rounds
    for _ in range(rounds):
        for name, run in runs.items():
            count, start = 0, time.perf_counter()
            while count < min_calls or time.perf_counter() - start < window:
                run()
                if synchronize is not None:
                    synchronize()
                count += 1
            calls[name] += count
            elapsed[name] += time.perf_counter() - start
    return {name: items * calls[name] / elapsed[name] for name in runs}


def rate(
    run: Run,
    items: int,
    seconds: float,
    *,
    min_calls: int = 1,
    synchronize: Callable[[], None] | None = None,
) -> float:
    """Items per second of one call (see `rates`)."""
    timed = rates({"run": run}, items, seconds, min_calls=min_calls, synchronize=synchronize)
    return timed["run"]
