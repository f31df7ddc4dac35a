"""Idempotency keys: a write retried with the same key is answered once, written once."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from model.errors import InvalidInput
from serving.store import service
from serving.store.idempotency import KEEP, RequestKey, once
from serving.store.service import RoutedText

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _key(key: str = "k-1", body: object = None, actor: str = "officer-a",
         request: str = "POST /v1/feedback") -> RequestKey:
    return RequestKey(actor=actor, key=key, request=request,
                      body={"text": "路灯不亮"} if body is None else body)


def _writer(make_routing, calls: list[int]):
    """A real write (one routing logged) that answers the new row's id."""
    def write(session):
        calls.append(1)
        [row] = service.log_routing(session, "req", [RoutedText(
            "路灯不亮", make_routing(), complaint_id=f"c{len(calls)}")], actor="t", now=T0)
        return {"id": row.id}
    return write


def test_a_retry_gets_the_first_answer_and_writes_nothing(store, make_routing):
    calls: list[int] = []
    with store.sessions() as s:
        first, replayed = once(s, _key(), _writer(make_routing, calls), now=T0)
        assert not replayed
        again, replayed = once(s, _key(), _writer(make_routing, calls), now=T0 + KEEP / 2)
    assert replayed and again == first and len(calls) == 1
    assert len(store.rows("routing_log")) == 1


def test_the_same_key_for_another_request_is_refused(store, make_routing):
    calls: list[int] = []
    with store.sessions() as s:
        once(s, _key(), _writer(make_routing, calls), now=T0)
        for other in (_key(body={"text": "噪音"}), _key(request="POST /v1/review/claim-next")):
            with pytest.raises(InvalidInput, match="another request") as err:
                once(s, other, _writer(make_routing, calls), now=T0)
            assert err.value.field == "Idempotency-Key"
    assert len(calls) == 1 and len(store.rows("routing_log")) == 1


def test_keys_belong_to_one_caller(store, make_routing):
    calls: list[int] = []
    with store.sessions() as s:
        a, _ = once(s, _key(actor="officer-a"), _writer(make_routing, calls), now=T0)
        b, replayed = once(s, _key(actor="officer-b"), _writer(make_routing, calls), now=T0)
    assert not replayed and a != b and len(store.rows("routing_log")) == 2


def test_a_failed_write_or_an_empty_answer_is_not_remembered(store, make_routing):
    calls: list[int] = []
    write = _writer(make_routing, calls)

    def fails(session):
        write(session)
        raise RuntimeError("boom")

    with store.sessions() as s:
        with pytest.raises(RuntimeError):
            once(s, _key(), fails, now=T0)
        assert store.rows("routing_log") == []  # the write was rolled back with its key
        assert once(s, _key(), lambda session: None, now=T0) == (None, False)
        answer, replayed = once(s, _key(), write, now=T0)
    assert not replayed and answer == {"id": store.rows("routing_log")[0]["id"]}


def test_a_key_older_than_a_day_is_a_new_request(store, make_routing):
    calls: list[int] = []
    with store.sessions() as s:
        once(s, _key(), _writer(make_routing, calls), now=T0)
        once(s, _key("k-2"), _writer(make_routing, calls), now=T0 + timedelta(hours=1))
        _, replayed = once(s, _key(), _writer(make_routing, calls), now=T0 + KEEP * 1.01)
    assert not replayed and len(calls) == 3
    with store.engine.connect() as c:  # the first key was pruned and written again, k-2 kept
        from sqlalchemy import text
        keys = sorted(r[0] for r in c.execute(text("SELECT key FROM idempotency_keys")))
    assert keys == ["k-1", "k-2"]


def test_concurrent_retries_with_one_key_write_once(store, make_routing):
    calls: list[int] = []
    lock = threading.Lock()
    inner = _writer(make_routing, calls)
    barrier = threading.Barrier(6)

    def write(session):
        with lock:
            answer = inner(session)
        return answer

    def attempt(_: int):
        with store.sessions() as s:
            barrier.wait()
            return once(s, _key(), write, now=T0)

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(attempt, range(6)))
    assert len(calls) == 1 and len(store.rows("routing_log")) == 1
    assert len({r[0]["id"] for r in results}) == 1
    assert sorted(r[1] for r in results) == [False] + [True] * 5
