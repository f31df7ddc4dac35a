"""The migrations build exactly the ORM's schema, on SQLite and PostgreSQL, and run safely twice."""

from __future__ import annotations

import json
import threading

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import CheckConstraint, inspect, text
from sqlalchemy.exc import IntegrityError

from serving.store.db import make_engine
from serving.store.migrations import current, downgrade, head, upgrade
from serving.store.tables import Base


def test_migration_builds_exactly_the_orm_schema(store):
    with store.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
    assert current(store.engine) == head()


def test_migration_builds_the_orm_check_constraints(store):
    # autogenerate does not compare CHECK constraints, so compare them here
    inspector = inspect(store.engine)
    for table in Base.metadata.sorted_tables:
        expected = {c.name for c in table.constraints if isinstance(c, CheckConstraint)}
        found = {c["name"] for c in inspector.get_check_constraints(table.name)}
        assert found == expected, table.name
    with pytest.raises(IntegrityError), store.engine.begin() as c:
        c.execute(text("INSERT INTO responses (text, kind, status, source, created_at, "
                       "updated_at) VALUES ('x', 'guess', 'draft', 'review', :t, :t)"),
                  {"t": "2026-01-01 00:00:00"})


def test_upgrade_twice_is_a_no_op_and_downgrade_removes_everything(store):
    upgrade(store.engine)
    assert current(store.engine) == head()
    downgrade(store.engine, "base")
    assert set(inspect(store.engine).get_table_names()) <= {"alembic_version"}
    assert current(store.engine) is None
    upgrade(store.url)  # by URL, as the app does
    assert current(store.engine) == head()


def test_replicas_migrating_at_once_take_turns(database_url):
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def replica() -> None:
        engine = make_engine(database_url)
        try:
            barrier.wait()
            upgrade(engine)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=replica) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert current(database_url) == head()


def test_unknown_backends_and_in_memory_sqlite_are_refused():
    with pytest.raises(ValueError, match="SQLite .* or PostgreSQL"):
        make_engine("mysql://localhost/huying")
    with pytest.raises(ValueError, match="in-memory"):
        make_engine("sqlite://")


def test_sqlite_engine_settings(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'h.db'}")
    with engine.connect() as c:
        assert c.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert c.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert c.execute(text("PRAGMA busy_timeout")).scalar() >= 1000
    engine.dispose()


def test_plain_postgresql_urls_get_the_psycopg_driver():
    from serving.store.db import normalise_url

    assert normalise_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert normalise_url("postgres://u@h/db").drivername == "postgresql+psycopg"


def test_0002_recomputes_stored_text_hashes_with_punctuation_folded(database_url):
    from model.normalize import text_hash

    engine = make_engine(database_url)
    try:
        upgrade(engine, "0001")
        with engine.begin() as c:
            c.execute(text("INSERT INTO complaints (id, text, text_hash, registered_at, removed) "
                           "VALUES ('a', '市民来电反映:小区门口路灯坏了。请城管核实处理!', 'old', "
                           ":t, :no)"), {"t": "2026-01-01 00:00:00", "no": False})
        upgrade(engine)
        with engine.connect() as c:
            stored = c.execute(text("SELECT text_hash FROM complaints")).scalar_one()
        assert stored == text_hash("小区门口路灯坏了") != "old"
    finally:
        engine.dispose()


def test_0003_gives_each_registered_complaint_an_issue_and_its_routed_labels(database_url):
    engine = make_engine(database_url)
    routed = json.dumps({"category": {"label": "城乡建设"}, "subcategory": {"label": "城乡建设/噪音"},
                         "department": {"label": "住建局"}, "decision": "auto"})
    try:
        upgrade(engine, "0002")
        with engine.begin() as c:
            for cid in ("a", "b"):
                c.execute(text("INSERT INTO complaints (id, text, text_hash, registered_at, "
                               "removed) VALUES (:id, '噪音', 'h', :t, :no)"),
                          {"id": cid, "t": "2026-01-01 00:00:00", "no": False})
            c.execute(text("INSERT INTO routing_log (request_id, complaint_id, text, "
                           "model_version, suggestions, decision, created_at) VALUES "
                           "('r', 'a', '噪音', 'v1', :s, 'auto', :t)"),
                      {"s": routed, "t": "2026-01-01 00:00:00"})
        upgrade(engine)
        with engine.connect() as c:
            rows = c.execute(text("SELECT id, issue_id, category, subcategory, department "
                                  "FROM complaints ORDER BY id")).all()
            issues = c.execute(text("SELECT count(*) FROM hot_issues")).scalar_one()
        assert [tuple(r)[2:] for r in rows] == [("城乡建设", "城乡建设/噪音", "住建局"),
                                                (None, None, None)]
        assert issues == 2 and rows[0].issue_id != rows[1].issue_id
    finally:
        engine.dispose()


def test_0004_gives_registered_complaints_the_time_limit_they_were_routed_with(database_url):
    engine = make_engine(database_url)
    routed = json.dumps({"duty": {"subcategory": "路灯", "time_limit": "30min"},
                         "decision": "auto"})
    try:
        upgrade(engine, "0003")
        with engine.begin() as c:
            for cid in ("a", "b"):
                c.execute(text("INSERT INTO complaints (id, text, text_hash, registered_at, "
                               "removed) VALUES (:id, '路灯', 'h', :t, :no)"),
                          {"id": cid, "t": "2026-01-01 00:00:00", "no": False})
            c.execute(text("INSERT INTO routing_log (request_id, complaint_id, text, "
                           "model_version, suggestions, decision, created_at) VALUES "
                           "('r', 'a', '路灯', 'v1', :s, 'auto', :t)"),
                      {"s": routed, "t": "2026-01-01 00:00:00"})
        upgrade(engine)
        with engine.connect() as c:
            limits = c.execute(text("SELECT time_limit FROM complaints ORDER BY id")).scalars()
            assert list(limits) == ["30min", None]
            assert c.execute(text("SELECT count(*) FROM case_events")).scalar_one() == 0
    finally:
        engine.dispose()
