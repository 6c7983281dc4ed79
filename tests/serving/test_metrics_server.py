"""The metrics port's view of every process (serving/metrics_server.py): a killed process's live
gauges are forgotten, a running one's are kept."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from serving.metrics_server import forget_dead_processes

SET_IN_FLIGHT = """
from prometheus_client import Gauge
Gauge("in_flight", "help", multiprocess_mode="livesum").set(4)
"""


def in_flight(directory: Path) -> float:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))
    return registry.get_sample_value("in_flight") or 0.0


def test_a_dead_process_in_flight_gauge_is_forgotten_and_a_live_one_kept(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    subprocess.run([sys.executable, "-c", SET_IN_FLIGHT], env=env, check=True)  # then exits
    running = subprocess.Popen(
        [sys.executable, "-c", SET_IN_FLIGHT + "print('set', flush=True); input()"],
        env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert running.stdout is not None and running.stdout.readline() == "set\n"
        assert in_flight(tmp_path) == 8
        assert forget_dead_processes(tmp_path) != [] and in_flight(tmp_path) == 4
        assert forget_dead_processes(tmp_path) == []  # nothing more to forget
    finally:
        running.communicate("\n")
