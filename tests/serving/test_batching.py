"""Micro-batching: concurrent requests share router calls; failures and overload stay contained."""

from __future__ import annotations

import asyncio
import threading
import time
from types import SimpleNamespace

import httpx
import pytest

from model.router import Router
from serving.app import create_app
from serving.batching import MicroBatcher
from serving.errors import ModelNotReady, Overloaded, RoutingFailed

pytestmark = pytest.mark.anyio


class FakeRouter:
    """Records batch sizes; raises on texts containing 'boom'; can be held to build a queue."""

    def __init__(self, version: str = "fake-v1"):
        self.version = version
        self.batches: list[list[str]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.calls = 0  # router calls begun (a held call counts once it waits at the gate)

    def route(self, texts):
        self.calls += 1
        self.gate.wait(10)
        self.batches.append(list(texts))
        if any("boom" in t for t in texts):
            raise ValueError("cannot route boom")
        return [SimpleNamespace(text=t, version=self.version) for t in texts]


async def _until(condition, timeout: float = 10.0) -> None:
    """Wait for a state of the batcher or the router, instead of sleeping and hoping."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.001)


async def _with_batcher(router, **kwargs):
    batcher = MicroBatcher(lambda: router, **kwargs)
    batcher.start()
    return batcher


async def test_concurrent_callers_share_one_batch():
    router = FakeRouter()
    batcher = await _with_batcher(router, max_size=32, max_wait_s=0.05)
    results = await asyncio.gather(*(batcher.route([f"text {i}"]) for i in range(10)))
    await batcher.close()
    assert [r[0].text for r in results] == [f"text {i}" for i in range(10)]
    assert [len(b) for b in router.batches] == [10]


async def test_batches_never_exceed_max_size_and_keep_order():
    router = FakeRouter()
    batcher = await _with_batcher(router, max_size=4, max_wait_s=0.01)
    out = await batcher.route([f"t{i}" for i in range(10)])
    await batcher.close()
    assert [r.text for r in out] == [f"t{i}" for i in range(10)]
    assert max(len(b) for b in router.batches) <= 4
    assert sum(len(b) for b in router.batches) == 10


async def test_a_failing_text_fails_alone():
    router = FakeRouter()
    batcher = await _with_batcher(router, max_size=8, max_wait_s=0.05)
    first, second = await asyncio.gather(batcher.route(["ok 1", "boom", "ok 2"]),
                                         batcher.route(["ok 3"]))
    await batcher.close()
    assert [getattr(r, "text", None) for r in first] == ["ok 1", None, "ok 2"]
    assert isinstance(first[1], RoutingFailed)
    assert "cannot route boom" in str(first[1]) and "fake-v1" in str(first[1])
    assert second[0].text == "ok 3"
    assert router.batches[0] == ["ok 1", "boom", "ok 2", "ok 3"]  # tried together first


async def test_a_full_queue_refuses_with_retry_after():
    router = FakeRouter()
    router.gate.clear()  # the first batch blocks, the rest queue up
    batcher = await _with_batcher(router, max_size=2, max_wait_s=0, max_queue=4)
    running = asyncio.create_task(batcher.route(["a", "b"]))
    await _until(lambda: router.calls == 1)
    queued = asyncio.create_task(batcher.route(["c", "d", "e"]))
    await _until(lambda: batcher.depth == 3)
    with pytest.raises(Overloaded) as refused:
        await batcher.route(["f", "g"])
    assert refused.value.status == 503 and refused.value.headers["Retry-After"] == "1"
    assert "limit 4" in str(refused.value)
    router.gate.set()
    assert len(await running) == 2 and len(await queued) == 3
    await batcher.close()


async def test_the_router_is_captured_when_a_batch_starts():
    old, new = FakeRouter("old"), FakeRouter("new")
    current = {"router": old}
    old.gate.clear()
    batcher = MicroBatcher(lambda: current["router"], max_size=4, max_wait_s=0)
    batcher.start()
    first = asyncio.create_task(batcher.route(["in flight"]))
    await _until(lambda: old.calls == 1)
    current["router"] = new  # the swap
    old.gate.set()
    assert (await first)[0].version == "old"
    assert (await batcher.route(["after"]))[0].version == "new"
    await batcher.close()


async def test_no_model_fails_the_texts_clearly():
    def no_router():
        raise ModelNotReady("no model is loaded: test")

    batcher = MicroBatcher(no_router, max_wait_s=0)
    batcher.start()
    with pytest.raises(ModelNotReady):
        await batcher.route(["x"])
    await batcher.close()
    with pytest.raises(ModelNotReady):
        await batcher.route(["x"])


async def test_a_cancelled_caller_does_not_block_the_others():
    router = FakeRouter()
    router.gate.clear()
    batcher = await _with_batcher(router, max_size=1, max_wait_s=0)
    blocker = asyncio.create_task(batcher.route(["first"]))
    await _until(lambda: router.calls == 1)
    gone = asyncio.create_task(batcher.route(["abandoned"]))
    await _until(lambda: batcher.depth == 1)
    gone.cancel()
    stays = asyncio.create_task(batcher.route(["stays"]))
    await _until(lambda: gone.done() and batcher.depth >= 1)
    router.gate.set()
    assert (await stays)[0].text == "stays" and (await blocker)[0].text == "first"
    assert ["abandoned"] not in router.batches  # dropped before it cost a model call
    await batcher.close()


async def test_concurrent_http_requests_are_batched_into_one_router_call(settings, headers, texts):
    sizes: list[int] = []

    class RecordingRouter(Router):
        def route(self, texts_, **kwargs):
            sizes.append(len(texts_))
            return super().route(texts_, **kwargs)

    app = create_app(settings.model_copy(update={"batch_max_wait_ms": 100}),
                     router_loader=lambda path: RecordingRouter.load(path))
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), \
            httpx.AsyncClient(transport=transport, base_url="http://huying") as c:
        sizes.clear()  # forget the start-up probe check
        responses = await asyncio.gather(*(
            c.post("/v1/route", json={"complaints": [{"id": str(i), "text": texts[i % 3]}]},
                   headers=headers["intake"]) for i in range(12)))
        metrics = (await c.get("/metrics")).text
    assert all(r.status_code == 200 for r in responses)
    assert sorted(r.json()["results"][0]["id"] for r in responses) == sorted(map(str, range(12)))
    assert sum(sizes) == 12 and max(sizes) > 1, sizes
    assert len(sizes) < 12
    assert f"huying_batch_size_count {float(len(sizes))}" in metrics


async def test_a_model_error_in_a_batch_is_an_item_error(settings, headers, texts):
    class FragileRouter(Router):
        def route(self, texts_, **kwargs):
            if any("boom" in t for t in texts_):
                raise RuntimeError("tokenizer exploded")
            return super().route(texts_, **kwargs)

    app = create_app(settings, router_loader=lambda path: FragileRouter.load(path))
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), \
            httpx.AsyncClient(transport=transport, base_url="http://huying") as c:
        r = await c.post("/v1/route", json={"complaints": [
            {"id": "1", "text": texts[0]}, {"id": "2", "text": "boom 路灯"},
            {"id": "3", "text": texts[1]}]}, headers=headers["intake"])
    assert r.status_code == 200
    out = r.json()
    assert (out["routed"], out["errors"]) == (2, 1)
    error = out["results"][1]["error"]
    assert error["code"] == "routing_failed" and "tokenizer exploded" in error["message"]


async def test_a_text_past_its_deadline_fails_instead_of_being_routed_late():
    router = FakeRouter()
    router.gate.clear()  # the first batch blocks past the deadline of the texts behind it
    waits: list[float] = []
    batcher = await _with_batcher(router, max_size=1, max_wait_s=0, deadline_s=0.05,
                                  on_wait=waits.append)
    running = asyncio.create_task(batcher.route(["a"]))
    await _until(lambda: router.calls == 1)
    late = asyncio.create_task(batcher.route(["b"]))
    await asyncio.sleep(0.1)  # the time that makes "b" late: what this test is about
    router.gate.set()
    assert (await running)[0].text == "a"
    with pytest.raises(Overloaded, match="waited"):
        await late
    assert ["b"] not in router.batches and max(waits) > 0.05
    await batcher.close()


async def test_a_request_that_would_wait_past_the_deadline_is_refused_up_front():
    router = FakeRouter()
    batcher = await _with_batcher(router, max_size=1, max_wait_s=0, deadline_s=1.0)
    await batcher.route(["measure"])  # the rate is measured from real batches
    while batcher._running:  # that batch's task ends just after its result is delivered
        await asyncio.sleep(0)
    batcher._seconds_per_text = 0.5  # as if each text took half a second
    assert batcher.expected_wait(4) == pytest.approx(2.0)
    with pytest.raises(Overloaded) as refused:
        await batcher.route(["a", "b", "c", "d"])
    assert refused.value.headers["Retry-After"] == "1" and "HUYING_QUEUE_DEADLINE_MS" in str(
        refused.value)
    assert len(await batcher.route(["e"])) == 1  # one text fits in the deadline
    await batcher.close()
