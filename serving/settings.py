"""The service's settings: one typed object, read from CYCLEGAN_* environment variables.

Unknown CYCLEGAN_* variables are refused (a misspelt limit would otherwise be silently
ignored), and settings that only make sense together are checked together.
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Literal, Self

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from cyclegan.backends import BackendName, DeviceName, PrecisionName
from cyclegan.generator_config import SIZE_MULTIPLE

ENV_PREFIX = "CYCLEGAN_"
ROOT = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024
# Peak memory of the front per input pixel, for the image-memory budget: decoded pixels,
# the alpha plane, the output at full size (RGBA) and the encoded answer. Measured on
# 16-bit greyscale, RGBA PNG and JPEG inputs (tests/serving/test_hostile.py checks RSS).
PEAK_BYTES_PER_PIXEL = 12


class SettingsError(ValueError):
    """Settings the service cannot run with; the message says which and why."""


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid")

    model_dir: Path = Field(ROOT / "models", description="folder of model packages")
    packages: str = Field(
        "",
        pattern=r"^[a-z0-9_,-]*$",
        description="the package folders to serve, comma-separated (e.g. a pool per pair: "
        "summer2winter,summer2winter-fast); empty: every package in model_dir",
    )
    backend: BackendName = "auto"
    device: DeviceName = "auto"
    precision: PrecisionName = Field(
        "auto",
        description="auto: a package's INT8 graph on the CPU where it passed its gate (not an "
        "8-bit-weight graph on a CPU without VNNI)",
    )
    host: str = "127.0.0.1"
    port: int = Field(3000, ge=1, le=65535)
    metrics_port: int = Field(
        3001, ge=1, le=65535, description="Prometheus metrics (/metrics), apart from the API"
    )
    # batching (the generator's batcher: serving/batcher.py)
    max_batch_size: int = Field(
        4,
        ge=1,
        description="largest batch; 4 suits a CPU (larger ones gain nothing there), a GPU "
        "pool sets more (deploy/k8s/base: 16)",
    )
    max_latency_ms: int = Field(
        5000, ge=1, description="an image not started by then is shed with 503"
    )
    # limits
    max_bytes: int = Field(20 * MIB, ge=1, description="largest request body")
    max_pixels: int = Field(16_000_000, ge=1, description="largest decoded image (width x height)")
    image_memory_mb: int = Field(
        768, ge=1, description="memory for images in flight in the front; past it, 503"
    )
    max_resolution: int = Field(
        512, ge=32, description="largest working resolution a request may ask"
    )
    max_concurrency: int = Field(64, ge=1, description="requests in flight before 429")
    request_timeout_s: int = Field(60, ge=1)
    client_timeout_s: float = Field(
        10, gt=0, description="longest pause in a client's upload or download before 408"
    )
    # processes and threads
    generator: Literal["in-process", "worker"] = Field(
        "in-process",
        description="where inference runs: in-process, in the front's own process (no hop); "
        "worker, in BentoML worker processes of its own (a crashed runtime costs only "
        "them, and there can be `workers` of them)",
    )
    workers: int = Field(1, ge=1, description="generator processes (with generator=worker)")
    threads: int | None = Field(
        None,
        ge=1,
        description="inference threads per process; unset: the container's CPU limit (cgroup "
        "quota) where there is one, else every core",
    )
    thread_spinning: bool = Field(
        False,
        description="ONNX Runtime's idle inference threads spin (off: they sleep, leaving the "
        "cores to the other directions' sessions and the front's image work)",
    )

    @property
    def package_names(self) -> list[str]:
        return [name for name in self.packages.split(",") if name]

    @property
    def inference_threads(self) -> int | None:
        """`threads`, else the CPU limit; None lets ONNX Runtime size its pools to the cores."""
        return self.threads or cgroup_cpu_limit()

    @model_validator(mode="after")
    def check_together(self) -> Self:
        problems = []
        if self.max_latency_ms >= self.request_timeout_s * 1000:
            problems.append(
                f"max_latency_ms ({self.max_latency_ms}) must be below request_timeout_s "
                f"({self.request_timeout_s} s), or queued requests time out (504) instead "
                "of being shed (503)"
            )
        if self.client_timeout_s >= self.request_timeout_s:
            problems.append(
                f"client_timeout_s ({self.client_timeout_s}) must be below request_timeout_s "
                f"({self.request_timeout_s})"
            )
        largest = self.max_bytes + self.max_pixels * PEAK_BYTES_PER_PIXEL
        if largest > self.image_memory_mb * MIB:
            problems.append(
                f"image_memory_mb ({self.image_memory_mb}) cannot hold one request at the "
                f"limits: max_bytes + max_pixels x {PEAK_BYTES_PER_PIXEL} bytes = "
                f"{largest / MIB:.0f} MiB; raise it or lower max_pixels / max_bytes"
            )
        if self.max_resolution % SIZE_MULTIPLE:
            problems.append(f"max_resolution ({self.max_resolution}) must be a multiple of 4")
        if self.metrics_port == self.port:
            problems.append(f"metrics_port and port are both {self.port}; give metrics their own")
        if self.workers > 1 and self.generator == "in-process":
            problems.append(
                f"workers ({self.workers}) are generator processes: set generator=worker too"
            )
        if self.backend == "tensorrt" and self.device == "cpu":
            problems.append("backend tensorrt needs device cuda (or auto)")
        if problems:
            raise ValueError("; ".join(problems))
        return self


def cgroup_cpu_limit(cgroup: Path = Path("/sys/fs/cgroup")) -> int | None:
    """The CPUs this container may use by its CFS quota, rounded up (cgroup v2 `cpu.max`, or
    v1 `cpu/cpu.cfs_quota_us` over `cpu.cfs_period_us`); None without a quota.

    In a pod limited to 2 CPUs on a 64-core node, ONNX Runtime would otherwise start 64
    threads and be throttled most of each period."""
    try:
        if (cgroup / "cpu.max").is_file():
            quota, period = (cgroup / "cpu.max").read_text().split()[:2]
        else:
            v1 = cgroup / "cpu"
            quota = (v1 / "cpu.cfs_quota_us").read_text().strip()
            period = (v1 / "cpu.cfs_period_us").read_text().strip()
    except (OSError, ValueError):
        return None
    if quota in ("max", "-1") or int(period) <= 0:
        return None
    cpus = math.ceil(int(quota) / int(period))
    return max(1, min(cpus, os.cpu_count() or cpus))


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """CYCLEGAN_* variables that name no setting, each with a likely meant one."""
    known = [ENV_PREFIX + name.upper() for name in ServiceSettings.model_fields]
    unknown = []
    for name in sorted(environ):
        upper = name.upper()
        if upper.startswith(ENV_PREFIX) and upper not in known:
            guess = difflib.get_close_matches(upper, known, n=1)
            unknown.append(f"{name} (did you mean {guess[0]}?)" if guess else name)
    return unknown


def load_settings() -> ServiceSettings:
    """The settings from the environment; SettingsError for unknown names or bad values."""
    unknown = unknown_variables(os.environ)
    if unknown:
        raise SettingsError(
            f"unknown setting: {', '.join(unknown)}. The settings are: "
            + ", ".join(ENV_PREFIX + name.upper() for name in ServiceSettings.model_fields)
        )
    try:
        return ServiceSettings()
    except ValueError as error:  # pydantic's ValidationError names the field and the rule
        raise SettingsError(str(error)) from None


@lru_cache(maxsize=1)
def get_settings() -> ServiceSettings:
    return load_settings()
