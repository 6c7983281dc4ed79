"""The SLO gate on recorded locust statistics, and a short real run against the server."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from loadtest.__main__ import main
from loadtest.slo import evaluate
from tests.builders import FIXTURES
from tests.serverlib import Server

STATS_HEADER = ["Type", "Name", "Request Count", "Failure Count", "Requests/s", "95%"]
FAILURES_HEADER = ["Method", "Name", "Error", "Occurrences"]


def record(prefix: Path, stats: list[list[object]], failures: list[list[object]]) -> Path:
    for suffix, header, rows in (
        ("stats", STATS_HEADER, stats),
        ("failures", FAILURES_HEADER, failures),
    ):
        with open(f"{prefix}_{suffix}.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(rows)
    return prefix


HEALTHY = [
    ["GET", "/directions", 4, 0, 0.1, 5],
    ["POST", "/translate/horse2zebra", 500, 2, 10.0, 300],
    ["POST", "/translate/zebra2horse", 500, 0, 10.0, 450],
    ["", "Aggregated", 1004, 2, 20.1, 440],
]


def test_healthy_run_passes(tmp_path: Path) -> None:
    prefix = record(
        tmp_path / "run", HEALTHY, [["POST", "/translate/horse2zebra", "HTTP 500: boom", 2]]
    )
    result = evaluate(prefix, max_error_rate=0.01, max_p95_ms=1000)
    assert result.passed, result.reasons
    assert (result.requests, result.errors, result.overloaded, result.p95_ms) == (1000, 2, 0, 450)
    assert result.error_rate == pytest.approx(0.002)


def test_errors_fail_the_gate(tmp_path: Path) -> None:
    stats = [["POST", "/translate/horse2zebra", 100, 5, 5.0, 300]]
    prefix = record(
        tmp_path / "run", stats, [["POST", "/translate/horse2zebra", "HTTP 500: boom", 5]]
    )
    result = evaluate(prefix, max_error_rate=0.01, max_p95_ms=1000)
    assert not result.passed and "error rate 5.00% > 1.00%" in result.reasons[0]


def test_latency_fails_the_gate(tmp_path: Path) -> None:
    prefix = record(tmp_path / "run", HEALTHY, [])
    result = evaluate(prefix, max_error_rate=0.01, max_p95_ms=400)
    assert result.reasons == ["p95 450 ms > 400 ms"]


def test_overload_is_counted_apart_from_errors(tmp_path: Path) -> None:
    stats = [["POST", "/translate/horse2zebra", 100, 40, 5.0, 300]]
    failures = [
        ["POST", "/translate/horse2zebra", "overloaded (429)", 30],
        ["POST", "/translate/horse2zebra", "overloaded (503)", 9],
        ["POST", "/translate/horse2zebra", "HTTP 500: boom", 1],
    ]
    result = evaluate(
        record(tmp_path / "run", stats, failures), max_error_rate=0.02, max_p95_ms=1000
    )
    assert (result.errors, result.overloaded) == (1, 39)
    assert result.passed


def test_no_requests_fails(tmp_path: Path) -> None:
    result = evaluate(record(tmp_path / "run", [], []), max_error_rate=0.01, max_p95_ms=1000)
    assert result.reasons == ["no translate request was made"]


def test_smoke_run_against_the_real_server(server: Server, tmp_path: Path) -> None:
    """A few seconds of real load: the gate passes on a healthy server, fails an impossible SLO."""
    images = f"{FIXTURES / 'testA'}:{FIXTURES / 'testB'}"  # not the whole data set
    common = ["--host", server.url, "--users", "3", "--spawn-rate", "3", "--duration", "8"]
    common += ["--images", images]
    assert main([*common, "--out", str(tmp_path / "ok"), "--max-p95-ms", "5000"]) == 0
    assert (tmp_path / "ok" / "report.html").is_file()
    assert main([*common, "--out", str(tmp_path / "strict"), "--max-p95-ms", "0.001"]) == 1
