"""Micro-batching: complaints of concurrent requests share one `router.route` call.

Requests put their texts in one queue and await one future per text. A collector task takes the
first waiting text, then whatever else arrives within `max_wait` (or until `max_size`), and runs
the batch in a worker thread: onnxruntime and tokenizers release the GIL, so the event loop keeps
accepting requests meanwhile, and texts arriving during a batch form the next one. Up to
`workers` batches run at once: by default one per core, each a single-threaded onnxruntime call,
which uses small CPUs better than one multi-threaded call (numbers in serving/settings.py).

- The router is looked up when a batch starts: a hot swap never changes a running batch.
- If `route` raises, the batch is retried one text at a time, so an error fails only the texts
  that cause it (each gets a RoutingFailed), never its neighbours.
- Load is shed by expected wait, not only by queue length: each text may wait at most
  `deadline_s` for its batch. A request whose texts would wait longer — the queue ahead of it
  divided by the measured routing rate (a moving average over recent batches) — is refused
  whole with Overloaded (503, Retry-After); a text that has waited past its deadline anyway
  (the rate dropped) fails with Overloaded instead of being routed late. `max_queue` stays as a
  hard bound on memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass

from model.router import Router, Routing
from serving.errors import ModelNotReady, Overloaded, RoutingFailed

log = logging.getLogger("huying.serving")

# When the current request arrived (time.monotonic()), set by serving/middleware.py: a text's
# deadline counts from there, so time spent before the queue (parsing, auth) counts too.
REQUEST_ARRIVED: ContextVar[float | None] = ContextVar("huying_request_arrived", default=None)

BatchObserver = Callable[[int, float], None]
WaitObserver = Callable[[float], None]
# Niceness added to batch threads (Linux schedules threads one by one).
BATCH_NICENESS = 5
# Weight of the newest batch in the moving average of seconds per routed text.
_RATE_SMOOTHING = 0.2


@dataclass
class _Item:
    text: str
    future: asyncio.Future[Routing]
    enqueued: float  # time.monotonic() when its request arrived


class MicroBatcher:
    """Gathers texts from concurrent callers into batches for the current router."""

    def __init__(self, get_router: Callable[[], Router], *, max_size: int = 32,
                 max_wait_s: float = 0.004, max_queue: int = 2048, workers: int = 1,
                 deadline_s: float = 2.0, on_batch: BatchObserver | None = None,
                 on_wait: WaitObserver | None = None):
        self._get_router = get_router
        self.max_size = max_size
        self.max_wait_s = max_wait_s
        self.max_queue = max_queue
        self.workers = workers
        self.deadline_s = deadline_s
        self._on_batch = on_batch
        self._on_wait = on_wait
        self._seconds_per_text: float | None = None  # measured; None until the first batch
        self._queue: deque[_Item] = deque()
        self._arrived = asyncio.Event()
        self._free = asyncio.Semaphore(workers)
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="huying-batch",
                                            initializer=_lower_priority)
        self._collector: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def depth(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        self._collector = asyncio.get_running_loop().create_task(self._collect(),
                                                                 name="huying-batch-collector")

    async def route(self, texts: Sequence[str]) -> list[Routing | RoutingFailed]:
        """One Routing per text, in order, or a RoutingFailed for a text the router failed on."""
        if self._closed:
            raise ModelNotReady("the server is shutting down; retry on another replica")
        if len(self._queue) + len(texts) > self.max_queue:
            raise Overloaded(f"the routing queue is full ({len(self._queue)} complaints waiting, "
                             f"limit {self.max_queue}); retry after a second")
        now = time.monotonic()
        arrived = REQUEST_ARRIVED.get()
        arrived = now if arrived is None else min(arrived, now)
        wait = now - arrived + self.expected_wait(len(texts))
        if wait > self.deadline_s:
            raise Overloaded(f"the server is busy: these complaints would wait about {wait:.1f} s "
                             f"for the router (limit {self.deadline_s:g} s, "
                             "HUYING_QUEUE_DEADLINE_MS); retry later or on another replica",
                             retry_after_s=max(1, math.ceil(wait - self.deadline_s)))
        loop = asyncio.get_running_loop()
        items = [_Item(t, loop.create_future(), arrived) for t in texts]
        self._queue.extend(items)
        self._arrived.set()
        results: list[Routing | RoutingFailed] = []
        try:
            for item in items:
                try:
                    results.append(await item.future)
                except RoutingFailed as exc:
                    results.append(exc)
        finally:
            # The caller went away (client disconnect): drop its texts that have not started.
            for item in items:
                item.future.cancel()
        return results

    def expected_wait(self, n: int) -> float:
        """Seconds until the last of `n` more texts would be routed, at the measured rate: the
        batches running now, then the queue ahead, then these."""
        if self._seconds_per_text is None:
            return 0.0
        running = self.max_size * self._seconds_per_text if self._running else 0.0
        return running + (len(self._queue) + n) * self._seconds_per_text / self.workers

    async def close(self) -> None:
        """Stop taking texts, fail those still queued, wait for running batches."""
        self._closed = True
        if self._collector is not None:
            self._collector.cancel()
            await asyncio.gather(self._collector, return_exceptions=True)
        while self._queue:
            item = self._queue.popleft()
            if not item.future.done():
                item.future.set_exception(ModelNotReady("the server shut down before routing "
                                                        "this complaint; retry"))
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)
        self._executor.shutdown(wait=True)

    async def _collect(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._free.acquire()
            batch = await self._next_batch(loop)
            task = loop.create_task(self._run(batch))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _next_batch(self, loop: asyncio.AbstractEventLoop) -> list[_Item]:
        batch: list[_Item] = []
        deadline: float | None = None
        while len(batch) < self.max_size:
            if self._queue:
                item = self._queue.popleft()
                if item.future.done():  # skip texts whose caller already went away
                    continue
                waited = time.monotonic() - item.enqueued
                if self._on_wait is not None:
                    self._on_wait(waited)
                if waited > self.deadline_s:
                    item.future.set_exception(Overloaded(
                        f"this complaint waited {waited:.1f} s for the router (limit "
                        f"{self.deadline_s:g} s): the server is overloaded; retry later"))
                    continue
                batch.append(item)
                if deadline is None:
                    deadline = loop.time() + self.max_wait_s
                continue
            self._arrived.clear()
            if deadline is None:
                await self._arrived.wait()
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                break
        return batch

    async def _run(self, batch: list[_Item]) -> None:
        try:
            try:
                router = self._get_router()  # captured once: a swap mid-batch changes nothing
            except ModelNotReady as exc:
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(exc)
                return
            started = time.perf_counter()
            results = await asyncio.get_running_loop().run_in_executor(
                self._executor, _route_isolating, router, [i.text for i in batch])
            seconds = time.perf_counter() - started
            per_text = seconds / len(batch)
            self._seconds_per_text = per_text if self._seconds_per_text is None else (
                (1 - _RATE_SMOOTHING) * self._seconds_per_text + _RATE_SMOOTHING * per_text)
            if self._on_batch is not None:
                self._on_batch(len(batch), seconds)
            for item, result in zip(batch, results, strict=True):
                if item.future.done():
                    continue
                if isinstance(result, RoutingFailed):
                    item.future.set_exception(result)
                else:
                    item.future.set_result(result)
        except Exception as exc:  # a bug here must not leave callers waiting forever
            log.exception("micro-batch failed")
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(RoutingFailed(f"routing failed: {exc}"))
        finally:
            self._free.release()


def _lower_priority() -> None:
    """Batch threads yield the CPU to the event loop: under overload, reading requests and
    refusing them quickly matters more than routing a few more per second."""
    with contextlib.suppress(AttributeError, OSError):  # not on Linux, or not permitted
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BATCH_NICENESS)


def _route_isolating(router: Router, texts: list[str]) -> list[Routing | RoutingFailed]:
    """router.route(texts); if that raises, route text by text so only failing texts fail."""
    try:
        routings = router.route(texts)
        if len(routings) == len(texts):
            return list(routings)
        raise RuntimeError(f"the router returned {len(routings)} routings for {len(texts)} texts")
    except Exception as exc:
        if len(texts) == 1:
            log.warning("routing one complaint failed: %s", exc, exc_info=exc)
            return [RoutingFailed(f"the model ({router.version}) could not route this complaint: "
                                  f"{type(exc).__name__}: {exc}")]
    return [r for t in texts for r in _route_isolating(router, [t])]
