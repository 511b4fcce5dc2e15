"""Micro-batching: concurrent requests are gathered for a few milliseconds and run as one forward pass.

Requests are queued on the event loop; a single worker task takes the first waiting request, waits ``max_wait_ms``
for others to arrive, packs whole requests up to ``max_batch_size`` images and runs the model in one dedicated
thread (so the event loop keeps accepting connections and the model is never called concurrently).

Requests are isolated: a request whose caller went away (its future cancelled) is dropped before its batch runs,
and when a shared batch fails each of its requests is run again on its own, so only the request that makes the
model fail gets the error.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from .limits import RequestError


@dataclass
class _Job:
    items: list[Any]
    future: asyncio.Future


@dataclass
class BatchStats:
    """Counters for monitoring: forward passes run, images and requests served, time spent in the model."""

    batches: int = 0
    images: int = 0
    requests: int = 0
    dropped: int = 0  # requests whose caller had gone before their batch ran
    model_seconds: float = 0.0

    @property
    def images_per_second(self) -> float:
        """Model throughput measured so far (0 before the first batch)."""
        return self.images / self.model_seconds if self.model_seconds > 0 else 0.0


class MicroBatcher:
    """Run ``fn(items) -> results`` (one result per item, same order) on batches gathered from concurrent callers."""

    def __init__(self, fn: Callable[[list[Any]], Sequence[Any]], max_batch_size: int = 16, max_wait_ms: float = 5.0,
                 max_pending: int = 1024):
        if max_batch_size < 1 or max_wait_ms < 0 or max_pending < 1:
            raise ValueError("max_batch_size and max_pending must be >= 1 and max_wait_ms >= 0.")
        self.fn = fn
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000.0
        self.max_pending = max_pending
        self.stats = BatchStats()
        self._queue: asyncio.Queue[_Job] | None = None
        self._worker: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        """Start the worker on the running event loop."""
        self._queue = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hf-beit-forward")
        self._worker = asyncio.create_task(self._run(), name="hf-beit-micro-batcher")

    async def stop(self) -> None:
        """Cancel the worker, fail waiting requests and release the model thread."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        while self._queue is not None and not self._queue.empty():
            job = self._queue.get_nowait()
            if not job.future.done():
                job.future.set_exception(RequestError(503, "Server is shutting down; retry later."))
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        self._worker = self._queue = self._executor = None

    async def submit(self, items: list[Any]) -> list[Any]:
        """Queue ``items`` (one request) and wait for their results."""
        if self._queue is None:
            raise RuntimeError("MicroBatcher.start() has not been called.")
        if self._queue.qsize() >= self.max_pending:
            raise RequestError(503, f"Server busy: {self._queue.qsize()} requests are waiting; retry shortly.")
        job = _Job(list(items), asyncio.get_running_loop().create_future())
        self._queue.put_nowait(job)
        return await job.future

    async def _run(self) -> None:
        carry: _Job | None = None
        loop = asyncio.get_running_loop()
        while True:
            batch = [carry or await self._queue.get()]
            carry = None
            if self.max_wait:
                await asyncio.sleep(self.max_wait)
            size = len(batch[0].items)
            while size < self.max_batch_size and not self._queue.empty():
                job = self._queue.get_nowait()
                if job.future.done():  # its caller went away while it waited: never computed
                    self.stats.dropped += 1
                    continue
                if size + len(job.items) > self.max_batch_size:
                    carry = job
                    break
                batch.append(job)
                size += len(job.items)
            live = [job for job in batch if not job.future.done()]  # drop requests whose client went away
            self.stats.dropped += len(batch) - len(live)
            if live:
                await self._process(loop, live)

    async def _call(self, loop: asyncio.AbstractEventLoop, items: list[Any]) -> Sequence[Any]:
        start = time.perf_counter()
        results = await loop.run_in_executor(self._executor, self.fn, items)
        self.stats.model_seconds += time.perf_counter() - start
        if len(results) != len(items):
            raise RuntimeError(f"Batch function returned {len(results)} results for {len(items)} items.")
        return results

    async def _process(self, loop: asyncio.AbstractEventLoop, batch: list[_Job]) -> None:
        flat = [item for job in batch for item in job.items]
        try:
            results = await self._call(loop, flat)
        except Exception as error:
            if len(batch) == 1:
                _finish(batch[0], error=error)
                return
            for job in batch:  # isolate: run each request of the failed batch on its own
                if job.future.done():
                    continue
                try:
                    _finish(job, await self._call(loop, job.items))
                except Exception as own_error:
                    _finish(job, error=own_error)
                    continue
                self._count([job])
            return
        self._count(batch)
        start = 0
        for job in batch:
            _finish(job, list(results[start:start + len(job.items)]))
            start += len(job.items)


    def _count(self, jobs: list[_Job]) -> None:
        self.stats.batches += 1
        self.stats.images += sum(len(job.items) for job in jobs)
        self.stats.requests += len(jobs)


def _finish(job: _Job, result: Any = None, error: Exception | None = None) -> None:
    if job.future.done():
        return
    if error is not None:
        job.future.set_exception(error)
    else:
        job.future.set_result(list(result))
