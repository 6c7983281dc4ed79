"""The loss log (RUN/metrics.jsonl) of the trainer and the distiller: the mean of each loss
between two log lines, with the step, the learning rate and the images per second."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any


class LossLog:
    """Sums the losses of each step; `flush` appends their means as one JSON line."""

    def __init__(self, path: Path, images_per_step: int) -> None:
        self.path = path
        self.images_per_step = images_per_step
        self.last: dict[str, float] = {}  # the means of the last flush
        self._reset()

    def _reset(self) -> None:
        self.sums: dict[str, float] = {}
        self.count = 0
        self.started = time.perf_counter()

    def add(self, losses: dict[str, float]) -> None:
        for name, value in losses.items():
            self.sums[name] = self.sums.get(name, 0.0) + value
        self.count += 1

    def flush(
        self, step: int, lr: float, write: bool = True, epoch: float | None = None
    ) -> dict[str, Any]:
        """The means since the last flush, as written (only `write`: one rank of several)."""
        count = max(self.count, 1)
        self.last = {name: total / count for name, total in self.sums.items()}
        elapsed = time.perf_counter() - self.started
        record: dict[str, Any] = {"step": step}
        if epoch is not None:
            record["epoch"] = round(epoch, 4)
        record["lr"] = lr
        record.update({name: round(value, 6) for name, value in self.last.items()})
        record["images_per_second"] = round(self.count * self.images_per_step / elapsed, 3)
        if write:
            with open(self.path, "a") as handle:
                handle.write(json.dumps(record) + "\n")
        self._reset()
        return record
