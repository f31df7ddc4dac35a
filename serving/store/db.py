"""Engines and sessions: a SQLite file by default (WAL, busy timeout, foreign keys), or PostgreSQL.

    engine = make_engine("sqlite:///var/huying.db")  # or "postgresql+psycopg://user@host/db"
    upgrade(engine)                                   # serving.store.migrations: schema at head
    Session = make_sessionmaker(engine)
    with Session() as session:
        service.claim_next(session, "officer-7")

Every write in `serving.store.service` runs inside `write_transaction`: one transaction that commits
as a whole or leaves the stored data as it was. On SQLite it starts with BEGIN IMMEDIATE, so two
writers queue on the busy timeout instead of failing when one tries to upgrade a read snapshot that
the other has already made stale.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

# How long a SQLite writer waits for another one before giving up ("database is locked").
SQLITE_BUSY_TIMEOUT_MS = 30_000
# Execution option asking the SQLite "begin" hook for BEGIN IMMEDIATE (ignored elsewhere).
WRITE_OPTION = "huying_write"


def normalise_url(url: str | URL) -> URL:
    """Parse a database URL; plain `postgresql://` URLs get the psycopg (v3) driver we ship."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ValueError(f"database URL {parsed.render_as_string(hide_password=True)!r}: Huying "
                         "stores in SQLite (sqlite:///path/to/huying.db) or PostgreSQL "
                         "(postgresql+psycopg://user:password@host/database)")
    return parsed


def make_engine(url: str | URL, **kwargs: Any) -> Engine:
    """An engine for `url` with the settings the store relies on (see the module docstring).
    The default URL is a setting (serving/settings.py `database_url`), nowhere else."""
    parsed = normalise_url(url)
    # Statement parameters are complaint texts and phone numbers: never in an error or a log.
    kwargs.setdefault("hide_parameters", True)
    if parsed.get_backend_name() == "postgresql":
        return create_engine(parsed, pool_pre_ping=True, **kwargs)
    if parsed.database in (None, "", ":memory:"):
        raise ValueError("an in-memory SQLite database is private to one connection and would "
                         "vanish between sessions; give a file: sqlite:///path/to/huying.db")
    engine = create_engine(parsed, **kwargs)
    _configure_sqlite(engine)
    return engine


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions whose objects stay readable after commit (services return them to handlers)."""
    return sessionmaker(engine, expire_on_commit=False)


_WRITING = "huying.write_transaction"


@contextmanager
def write_transaction(session: Session) -> Iterator[Session]:
    """One write transaction on `session`: committed if the block ends, rolled back if it raises.

    A read-only transaction the session may have open is ended first (committing it expires
    nothing), so the write starts from a fresh snapshot and, on SQLite, takes the write lock first.
    Inside another write transaction it joins that one: the outer block commits or rolls back
    both (serving/store/idempotency.py stores an answer with the write it answers).
    """
    if session.info.get(_WRITING):
        yield session
        return
    if session.in_transaction():
        if session.new or session.dirty or session.deleted:
            raise RuntimeError("the session holds unsaved changes made outside the store "
                               "service; write only through serving.store.service")
        session.commit()
    session.connection(execution_options={WRITE_OPTION: True})
    session.info[_WRITING] = True
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.info.pop(_WRITING, None)


def _enable_wal(cursor: Any) -> None:
    """PRAGMA journal_mode=WAL, retried: switching a new file to WAL fails at once with "database
    is locked" (SQLite does not wait on the busy timeout for it) while another connection opening
    the same file at that moment (replicas starting together) holds its lock."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    delay = 0.005
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the sqlite3 module: it would otherwise BEGIN (deferred)
        # lazily before the first write, which is what the "begin" hook below does on purpose.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        _enable_wal(cursor)  # readers never block the writer
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        immediate = connection.get_execution_options().get(WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
