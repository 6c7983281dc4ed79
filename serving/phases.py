"""Where one request's time goes: `Server-Timing` on every translation, and a histogram.

The guard starts the clock when a translate request arrives and records `read` (the body
received); the front adds `decode`, `hop` (to the generator process and back), `encode` and
`total`; the generator reports `queue` (waiting for a batch) and `infer` (its share of the
forward pass, conversions included). Browsers show the header in their developer tools; the
page shows the model's share of the time. The phases never overlap, so they add up to no more
than `total`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from starlette.types import Scope

from serving.prometheus import PHASE_SECONDS

PHASES = ("read", "decode", "queue", "hop", "infer", "encode", "total")  # the label set
SCOPE_KEY = "cyclegan.phases"  # the ASGI scope carries a request's Phases from the guard


@dataclass
class Phases:
    started: float = field(default_factory=time.perf_counter)
    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, phase: str, seconds: float) -> None:
        if phase not in PHASES:
            raise ValueError(f"unknown phase {phase!r}")
        self.seconds[phase] = self.seconds.get(phase, 0.0) + max(seconds, 0.0)

    def since(self, phase: str, began: float) -> float:
        """Add the time from `began` to now to `phase`; returns now."""
        now = time.perf_counter()
        self.add(phase, now - began)
        return now

    def finish(self) -> str:
        """Set `total`, count every phase in the histogram, and return the header's value."""
        self.seconds["total"] = time.perf_counter() - self.started
        for phase, seconds in self.seconds.items():
            PHASE_SECONDS.labels(phase).observe(seconds)
        return ", ".join(
            f"{phase};dur={self.seconds[phase] * 1000:.1f}"
            for phase in PHASES
            if phase in self.seconds
        )


def phases_of(scope: Scope) -> Phases:
    """The request's Phases (started by the guard), or new ones where no guard ran."""
    phases = scope.get(SCOPE_KEY)
    return phases if isinstance(phases, Phases) else Phases()
