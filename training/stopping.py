"""When a run stops early: a signal (SIGINT/SIGTERM) or a spent time budget (--max-minutes)."""

from __future__ import annotations

import logging
import signal
import time
from typing import Any

from training.placement import Placement

log = logging.getLogger(__name__)


class StopRequest:
    """SIGINT/SIGTERM set a flag; the loop checkpoints at the end of the current step."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequest:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: object) -> None:
        if self.signal is not None:  # a second signal: the person means it
            raise KeyboardInterrupt
        log.warning("%s received: saving a checkpoint after this step", signal.Signals(signum).name)
        self.signal = signum

    def agreed(self, placement: Placement) -> bool:
        """All ranks stop at the same step if any of them was signalled."""
        return placement.any_rank(self.signal is not None)


class TimeBudget:
    """--max-minutes, counted from this process's start of training."""

    def __init__(self, minutes: float | None) -> None:
        self.minutes = minutes
        self.started = time.monotonic()
        self.deadline = None if minutes is None else time.monotonic() + minutes * 60

    def elapsed_minutes(self) -> float:
        return (time.monotonic() - self.started) / 60

    def spent(self, placement: Placement) -> bool:
        if self.deadline is None:
            return False
        return placement.any_rank(time.monotonic() > self.deadline)
