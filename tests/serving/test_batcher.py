"""The generator's batcher and the front's retries, without a server."""

from __future__ import annotations

import asyncio
import time

from serving.batcher import Batcher, Overloaded


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
