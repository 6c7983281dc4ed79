"""The generator's batcher: what queued while one batch ran becomes the next batch.

No batch waits for requests that may never come: on an idle runtime a lone image starts at
once, and under load batches fill up by themselves (up to `max_batch_size`) while the
previous one runs. So a lone request after a burst is as fast as before it, with no
learned wait to unlearn. An image that has waited longer than `max_wait_s` is shed with
`Overloaded` (the front answers 503 with Retry-After), so under saturation excess requests
are refused quickly instead of timing out.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import anyio

T = TypeVar("T")
R = TypeVar("R")


class Overloaded(Exception):
    """The image waited longer than the latency goal; retrying later may succeed."""


@dataclass
class Job:
    item: Any
    future: asyncio.Future[Any]
    queued_at: float = field(default_factory=time.monotonic)


class Batcher(Generic[T, R]):
    """`await submit(item)` -> `run(items, queue_waits)[i]`, one `run` at a time, in a thread."""

    def __init__(
        self,
        run: Callable[[list[T], list[float]], list[R]],
        max_batch_size: int,
        max_wait_s: float,
    ) -> None:
        self.run = run
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.queue: collections.deque[Job] = collections.deque()
        self.wake = asyncio.Event()
        self.worker: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        if self.worker is None or self.worker.done():
            self.worker = asyncio.get_running_loop().create_task(self.work())
        job = Job(item, asyncio.get_running_loop().create_future())
        self.queue.append(job)
        self.wake.set()
        try:
            return await job.future
        finally:
            job.future.cancel()  # a caller that gave up: its image is skipped (no-op when done)

    async def work(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            while self.queue:
                batch = self.take()
                if not batch:
                    continue
                now = time.monotonic()
                waits = [now - job.queued_at for job in batch]
                try:
                    results = await anyio.to_thread.run_sync(
                        self.run, [job.item for job in batch], waits
                    )
                except Exception as error:  # the callers see the runtime's error
                    results = [error] * len(batch)
                for job, result in zip(batch, results, strict=True):
                    if job.future.done():
                        continue
                    if isinstance(result, Exception):
                        job.future.set_exception(result)
                    else:
                        job.future.set_result(result)

    def take(self) -> list[Job]:
        """The next batch: live jobs in arrival order; those waiting too long are shed."""
        now = time.monotonic()
        batch: list[Job] = []
        while self.queue and len(batch) < self.max_batch_size:
            job = self.queue.popleft()
            if job.future.done():  # its caller gave up
                continue
            if now - job.queued_at > self.max_wait_s:
                job.future.set_exception(
                    Overloaded(f"waited {now - job.queued_at:.1f} s for the generator")
                )
                continue
            batch.append(job)
        return batch
