"""The app's store: opened once per app, called from handlers in worker threads.

    store = open_store(settings.database_url)      # in the lifespan: migrated to head
    page = await run(store.sessions, service.list_queue, QueueFilter(), limit=50)

The store (serving/store/) is synchronous SQLAlchemy: `run` calls one of its functions in a worker
thread with a session of its own, so a slow disk or a locked SQLite file never stalls the event
loop. It is also the one failure policy for a write that cannot be made: an unreachable or locked
database is a 503 (`StoreUnavailable`, with Retry-After) for the whole request, never a silently
dropped row.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

from pydantic import BaseModel
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from serving.errors import StoreUnavailable
from serving.store.db import make_engine, make_sessionmaker, normalise_url
from serving.store.idempotency import RequestKey, once
from serving.store.migrations import upgrade

log = logging.getLogger("huying.serving")
T = TypeVar("T")


@dataclass
class Store:
    """The app's database: an engine and the sessions made from it."""

    engine: Engine
    sessions: sessionmaker[Session]

    def close(self) -> None:
        self.engine.dispose()


def open_store(url: str) -> Store:
    """Open the database at `url` and migrate it to head (a SQLite file's folder is created)."""
    parsed = normalise_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = make_engine(parsed)
    try:
        upgrade(engine)
    except BaseException:
        engine.dispose()
        raise
    return Store(engine=engine, sessions=make_sessionmaker(engine))


async def run(sessions: sessionmaker[Session], fn: Callable[..., T], /, *args: Any,
              **kwargs: Any) -> T:
    """`fn(session, *args, **kwargs)` in a worker thread with a session of its own; an
    unreachable or locked database raises StoreUnavailable (503)."""
    def work() -> T:
        with sessions() as session:
            return fn(session, *args, **kwargs)

    try:
        return await asyncio.to_thread(work)
    except OperationalError as exc:  # unreachable server, or SQLite locked past its timeout
        log.error("store unavailable: %s", exc)
        raise StoreUnavailable("the database is unavailable or busy; retry in a moment") from exc


async def run_once(sessions: sessionmaker[Session], key: RequestKey | None,
                   answer: type[BaseModel], fn: Callable[..., T], /, *args: Any,
                   **kwargs: Any) -> tuple[T, bool]:
    """`run` for a write sent with an Idempotency-Key (serving/store/idempotency.py): the write
    and its answer (an `answer` model, or None: nothing written) in one transaction, or the
    stored answer of the first request with that key. (answer, replayed); without a key, `run`."""
    if key is None:
        return await run(sessions, fn, *args, **kwargs), False

    def write(session: Session) -> dict[str, Any] | None:
        result = fn(session, *args, **kwargs)
        if result is not None and not isinstance(result, answer):
            raise TypeError(f"{fn.__name__} answered {type(result).__name__}, not {answer.__name__}")
        return None if result is None else result.model_dump(mode="json")

    stored, replayed = await run(sessions, once, key, write)
    return cast(T, None if stored is None else answer.model_validate(stored)), replayed
