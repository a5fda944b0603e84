"""Concurrent requests to one model, batched into one predictor call.

Each model has `workers` copies of its predictor, each on its own thread (a TFLite interpreter serves
one caller at a time). A request's instances join the model's queue; a free worker takes everything
waiting, up to `max_batch` instances, as one `predictor.records(...)` call and hands each request its
records. Nothing waits on purpose: a lone request is predicted at once (no added latency at
concurrency 1), and while a worker is busy the requests arriving meanwhile pile up into the next batch,
so the batch grows with the load (the same adaptive batching as TF Serving's with a zero timeout).
`max_batch` 1 (speech: each recording is cut into its own segments) means no batching.

The event loop never runs a model: health checks and other models' requests are answered while a
slow request runs. A full queue refuses new work with a 503 rather than growing without bound.
"""
from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sensorium.apps.serve.errors import ApiError
from sensorium.runtime.predictor import Item, Record

log = logging.getLogger(__name__)


@dataclass
class _Pending:
    items: list[Item]
    future: asyncio.Future


@dataclass
class BatchStats:
    """Counters of a batcher (what the tests and the metadata report)."""

    requests: int = 0
    batches: int = 0
    instances: int = 0
    largest_batch: int = 0
    failures: int = 0
    sizes: dict[int, int] = field(default_factory=dict)  # requests per batch -> how many batches


def _predict(predictor: Any, items: list[Item]) -> list[Record]:
    return list(predictor.records(items))


class Batcher:
    """The queue and worker threads of one served model."""

    def __init__(self, name: str, predictors: Sequence[Any], *, max_batch: int, max_queue: int) -> None:
        if not predictors:
            raise ValueError("a batcher needs at least one predictor")
        self.name = name
        self.predictors = list(predictors)
        self.max_batch = max(1, int(max_batch))
        self.max_queue = max(1, int(max_queue))
        self.stats = BatchStats()
        self.closed = False
        self._executors = [ThreadPoolExecutor(1, thread_name_prefix=f"sensorium-{name}-{i}")
                           for i in range(len(self.predictors))]
        self._idle = list(range(len(self.predictors)))[::-1]
        self._queue: deque[_Pending] = deque()
        self._queued = 0  # instances waiting in the queue
        self._running: set[asyncio.Task] = set()

    async def predict(self, items: list[Item]) -> list[Record]:
        """The records of `items`, in order (predicted with whatever else is waiting)."""
        if self.closed:
            raise ApiError(503, "the server is shutting down")
        if self._queued and self._queued + len(items) > self.max_queue:  # (a large request alone may wait)
            raise ApiError(503, f"model '{self.name}' is busy ({self._queued} instances queued); retry shortly")
        pending = _Pending(list(items), asyncio.get_running_loop().create_future())
        self._queue.append(pending)
        self._queued += len(pending.items)
        self.stats.requests += 1
        self._dispatch()
        return await pending.future

    def _dispatch(self) -> None:
        while self._idle and self._queue:
            batch = [self._queue.popleft()]
            size = len(batch[0].items)
            while self._queue and size + len(self._queue[0].items) <= self.max_batch:
                batch.append(self._queue.popleft())
                size += len(batch[-1].items)
            self._queued -= size
            batch = [p for p in batch if not p.future.done()]  # a cancelled request is not predicted
            if not batch:
                continue
            worker = self._idle.pop()
            task = asyncio.ensure_future(self._run(worker, batch))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _run(self, worker: int, batch: list[_Pending]) -> None:
        items = [item for pending in batch for item in pending.items]
        stats = self.stats
        stats.batches += 1
        stats.instances += len(items)
        stats.largest_batch = max(stats.largest_batch, len(items))
        stats.sizes[len(batch)] = stats.sizes.get(len(batch), 0) + 1
        try:
            loop = asyncio.get_running_loop()
            records = await loop.run_in_executor(self._executors[worker], _predict, self.predictors[worker], items)
            if len(records) != len(items):
                raise RuntimeError(f"{len(records)} records for {len(items)} inputs")
        except Exception as exc:  # noqa: BLE001 - a failure of the model (not of one input): every request of it fails
            stats.failures += 1
            log.error("model %s failed on a batch of %d: %s: %s", self.name, len(items), type(exc).__name__, exc,
                      exc_info=log.isEnabledFor(logging.DEBUG))
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(ApiError(500, f"model '{self.name}' failed on this request "
                                                               f"({type(exc).__name__}); see the server log"))
        else:
            start = 0
            for pending in batch:
                end = start + len(pending.items)
                if not pending.future.done():
                    pending.future.set_result(records[start:end])
                start = end
        finally:
            self._idle.append(worker)
            self._dispatch()

    async def close(self) -> None:
        """Refuse new work, finish what was taken, and stop the worker threads."""
        self.closed = True
        while self._queue or self._running:
            if self._running:
                await asyncio.gather(*list(self._running), return_exceptions=True)
            else:
                await asyncio.sleep(0.01)
        for executor in self._executors:
            executor.shutdown(wait=True)
