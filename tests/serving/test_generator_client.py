"""The front's client of the generator (serving/generator_client.py): bounded retries with
backoff, against a stand-in for BentoML's dependency handle that fails as told (the real
restarts are in tests/serving/test_faults.py)."""

from __future__ import annotations

import asyncio

import aiohttp
import numpy as np
import pytest

from serving.errors import ServiceError
from serving.generator_client import GeneratorClient


class FakeGenerator:
    """Stands in for the generator's client: fails with `errors`, then answers."""

    def __init__(self, errors: list[Exception]) -> None:
        self.errors = errors
        self.calls = 0
        self.to_async = self

    async def generate(self, item: object) -> np.ndarray:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return np.zeros(3, np.uint8)


def connect_error() -> aiohttp.ClientConnectorError:
    return aiohttp.ClientConnectorError(None, OSError(111, "refused"))  # type: ignore[arg-type]


@pytest.fixture
def pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(asyncio, "sleep", sleep)
    return slept


def generate(generator: FakeGenerator) -> np.ndarray:
    return asyncio.run(GeneratorClient(generator).generate(object()))  # type: ignore[arg-type]


def test_connection_failures_are_retried_with_backoff(pauses: list[float]) -> None:
    generator = FakeGenerator([connect_error(), connect_error()])
    assert generate(generator).shape == (3,)
    assert generator.calls == 3 and pauses == [0.25, 0.5]


def test_retries_are_bounded(pauses: list[float]) -> None:
    generator = FakeGenerator([connect_error() for _ in range(10)])
    with pytest.raises(ServiceError) as refused:
        generate(generator)
    assert refused.value.status == 503 and generator.calls == 4 and len(pauses) == 3


def test_a_connection_dropped_mid_request_is_retried_once(pauses: list[float]) -> None:
    dropped = [aiohttp.ServerDisconnectedError() for _ in range(3)]
    generator = FakeGenerator(dropped)
    with pytest.raises(ServiceError) as refused:
        generate(generator)
    assert refused.value.status == 503 and generator.calls == 2
