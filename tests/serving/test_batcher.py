"""The generator's batcher and the front's retries, without a server."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import numpy as np
import pytest

from serving.batcher import Batcher, Overloaded
from serving.errors import ServiceError


def test_a_lone_item_starts_at_once_and_a_crowd_forms_batches() -> None:
    sizes: list[int] = []

    def run(items: list[int], waits: list[float]) -> list[int]:
        sizes.append(len(items))
        time.sleep(0.05)
        return [item * 2 for item in items]

    async def main() -> None:
        # A batcher that waited for a batch to fill would hold a lone item for the hour.
        batcher: Batcher[int, int] = Batcher(run, max_batch_size=4, max_wait_s=3600)
        assert await asyncio.wait_for(batcher.submit(1), timeout=60) == 2
        results = await asyncio.gather(*(batcher.submit(i) for i in range(10)))
        assert results == [i * 2 for i in range(10)]

    asyncio.run(main())
    assert sizes[0] == 1 and max(sizes) == 4 and sum(sizes) == 11


def test_items_that_waited_too_long_are_shed() -> None:
    def run(items: list[int], waits: list[float]) -> list[int]:
        time.sleep(0.3)
        return items

    async def main() -> list[object]:
        batcher: Batcher[int, int] = Batcher(run, max_batch_size=1, max_wait_s=0.1)
        return await asyncio.gather(*(batcher.submit(i) for i in range(4)), return_exceptions=True)

    results = asyncio.run(main())
    assert results[0] == 0  # the first one started at once
    assert any(isinstance(r, Overloaded) for r in results[1:])


def test_a_runtime_error_reaches_every_caller_of_the_batch() -> None:
    def run(items: list[int], waits: list[float]) -> list[int]:
        raise RuntimeError("boom")

    async def main() -> list[object]:
        batcher: Batcher[int, int] = Batcher(run, max_batch_size=8, max_wait_s=5)
        return await asyncio.gather(*(batcher.submit(i) for i in range(3)), return_exceptions=True)

    assert all(isinstance(r, RuntimeError) for r in asyncio.run(main()))


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
    from serving.service import Translator

    class Front:
        pass

    front = Front()
    front.generator = generator  # type: ignore[attr-defined]
    return asyncio.run(Translator.inner.generate(front, object()))


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
