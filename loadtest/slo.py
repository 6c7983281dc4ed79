"""The SLO gate: read locust's CSV stats and decide pass or fail.

Errors are failures other than deliberate overload answers (429/503, which the locustfile
marks "overloaded ..."): those are counted apart, since shedding load is the service doing its
job. The latency bound applies to the worst p95 among the translate endpoints.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

OVERLOADED = "overloaded"


@dataclass
class SloResult:
    requests: int
    errors: int
    overloaded: int
    p95_ms: float
    requests_per_second: float
    max_error_rate: float
    max_p95_ms: float
    reasons: list[str] = field(default_factory=list)

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def passed(self) -> bool:
        return not self.reasons

    def summary(self) -> str:
        verdict = "PASS" if self.passed else "FAIL: " + "; ".join(self.reasons)
        return (
            f"{self.requests} translate requests, {self.requests_per_second:.2f}/s, "
            f"errors {self.errors} ({self.error_rate:.2%}, limit {self.max_error_rate:.2%}), "
            f"overloaded {self.overloaded}, "
            f"p95 {self.p95_ms:.0f} ms (limit {self.max_p95_ms:.0f} ms): {verdict}"
        )


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def evaluate(prefix: Path, max_error_rate: float, max_p95_ms: float) -> SloResult:
    """Judge the run whose CSV files start with `prefix` (locust --csv PREFIX)."""
    stats = [
        r for r in read_rows(Path(f"{prefix}_stats.csv")) if r["Name"].startswith("/translate")
    ]
    failures = [
        r for r in read_rows(Path(f"{prefix}_failures.csv")) if r["Name"].startswith("/translate")
    ]
    requests = sum(int(r["Request Count"]) for r in stats)
    failed = sum(int(r["Failure Count"]) for r in stats)
    overloaded = sum(int(r["Occurrences"]) for r in failures if r["Error"].startswith(OVERLOADED))
    p95 = max((float(r["95%"]) for r in stats if r["95%"] not in ("", "N/A")), default=0.0)
    rps = sum(float(r["Requests/s"]) for r in stats)
    result = SloResult(
        requests, failed - overloaded, overloaded, p95, rps, max_error_rate, max_p95_ms
    )
    if requests == 0:
        result.reasons.append("no translate request was made")
    if result.error_rate > max_error_rate:
        result.reasons.append(f"error rate {result.error_rate:.2%} > {max_error_rate:.2%}")
    if p95 > max_p95_ms:
        result.reasons.append(f"p95 {p95:.0f} ms > {max_p95_ms:.0f} ms")
    return result
