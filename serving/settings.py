"""The service's settings: one typed object, read from CYCLEGAN_* environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "CYCLEGAN_"
ROOT = Path(__file__).resolve().parents[1]


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid")

    model_dir: Path = Field(ROOT / "models", description="folder of model packages")
    backend: Literal["auto", "onnxruntime", "torch", "tensorrt"] = "auto"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    host: str = "127.0.0.1"
    port: int = Field(3000, ge=1, le=65535)
    # batching (BentoML's adaptive batcher in the generator service)
    max_batch_size: int = Field(8, ge=1)
    max_latency_ms: int = Field(
        5000, ge=1, description="a request not started by then is shed with 503"
    )
    # limits
    max_bytes: int = Field(20 * 1024 * 1024, ge=1, description="largest request body")
    max_pixels: int = Field(40_000_000, ge=1, description="largest decoded image (width x height)")
    max_resolution: int = Field(
        512, ge=32, description="largest working resolution a request may ask"
    )
    max_concurrency: int = Field(64, ge=1, description="requests in flight before 429")
    request_timeout_s: int = Field(60, ge=1)
    # processes and threads
    workers: int = Field(1, ge=1, description="generator processes")
    threads: int | None = Field(None, ge=1, description="inference threads per process")


@lru_cache(maxsize=1)
def get_settings() -> ServiceSettings:
    return ServiceSettings()
