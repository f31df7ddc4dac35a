"""Store fixtures: every store test runs on a real SQLite file and on a real PostgreSQL server.

PostgreSQL: a fresh database `huying_test_<random>` per test session on the server named by
HUYING_TEST_POSTGRES (default postgresql://postgres@127.0.0.1:5432/postgres), dropped at the end;
store tests share one migrated schema emptied before each test, migration tests get a schema each.
Unreachable server: the PostgreSQL tests are skipped, unless CI is set, in which case they fail.
"""

from __future__ import annotations

import itertools
import secrets
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

from model.taxonomy import DutyEntry, Taxonomy
from serving.store.db import make_engine, make_sessionmaker
from serving.store.migrations import upgrade

_schemas = itertools.count()


@dataclass
class Store:
    backend: str  # "sqlite" or "postgresql"
    url: URL
    engine: Engine
    sessions: sessionmaker[Session]

    def rows(self, table: str) -> list[dict[str, Any]]:
        with self.engine.connect() as c:
            return [dict(r._mapping) for r in c.execute(text(f"SELECT * FROM {table} ORDER BY id"))]

    def snapshot(self) -> dict[str, list[dict[str, Any]]]:
        """Every row of every table: what "the stored data" is."""
        return {t: self.rows(t) for t in
                ("routing_log", "complaints", "hot_issues", "case_events", "review_items",
                 "responses", "warnings", "audit_log")}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[URL]:
    """An empty database: a new SQLite file, or a new schema in the session's PostgreSQL one."""
    if request.param == "sqlite":
        yield make_url(f"sqlite:///{tmp_path / 'huying.db'}")
        return
    base: URL = request.getfixturevalue("postgres_database")
    schema = f"t{next(_schemas)}_{secrets.token_hex(3)}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield base.update_query_dict({"options": f"-csearch_path={schema}"})
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    """A migrated SQLite file, copied for each test (migrating takes ~0.1 s, copying ~1 ms)."""
    path = tmp_path_factory.mktemp("template") / "huying.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()  # the last connection checkpoints the WAL into the file
    return path


@pytest.fixture(scope="session")
def postgres_store_url(postgres_database: URL) -> Iterator[URL]:
    """A migrated schema shared by the PostgreSQL store tests, emptied before each of them."""
    admin = create_engine(postgres_database, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text('CREATE SCHEMA "store"'))
    admin.dispose()
    url = postgres_database.update_query_dict({"options": "-csearch_path=store"})
    upgrade(url)
    yield url


def _empty_postgres(engine: Engine) -> None:
    # The owner may switch the append-only triggers off; in the same transaction, so they are
    # on again for the test whatever happens.
    with engine.begin() as c:
        c.execute(text("ALTER TABLE audit_log DISABLE TRIGGER USER"))
        for table in ("audit_log", "responses", "review_items", "routing_log", "case_events",
                      "complaints", "hot_issues", "warnings", "idempotency_keys"):
            c.execute(text(f"DELETE FROM {table}"))
        c.execute(text("ALTER TABLE audit_log ENABLE TRIGGER USER"))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A migrated, empty store: a SQLite file of its own, or the emptied PostgreSQL schema."""
    if request.param == "sqlite":
        path = tmp_path / "huying.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        url = make_url(f"sqlite:///{path}")
    else:
        url = request.getfixturevalue("postgres_store_url")
    engine = make_engine(url)
    if request.param == "postgresql":
        _empty_postgres(engine)
    try:
        yield Store(engine.dialect.name, url, engine, make_sessionmaker(engine))
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def taxonomy() -> Taxonomy:
    """A small duty list; 物业管理 exists under two categories."""
    return Taxonomy(
        name="tiny",
        categories=("城乡建设", "交通运输", "市场监管"),
        departments=("住建局", "交通局", "城管局", "市场监管局"),
        entries=(
            DutyEntry("城乡建设", "违章建筑", "城管局", "5wd"),
            DutyEntry("城乡建设", "物业管理", "住建局", "3d"),
            DutyEntry("交通运输", "出租车", "交通局", "24h"),
            DutyEntry("交通运输", "物业管理", "交通局"),
            DutyEntry("市场监管", "食品安全", "市场监管局", "30min"),
        ),
    )


def routing_dict(category: str = "城乡建设", subcategory: str = "违章建筑",
                 department: str = "城管局", confidence: float = 0.5, *,
                 decision: str = "review", time_limit: str | None = None,
                 version: str = "tiny-v1") -> dict[str, Any]:
    """What `Routing.to_dict()` returns, for a routing with these labels."""
    key = f"{category}/{subcategory}"

    def head(label: str, c: float) -> dict[str, Any]:
        return {"label": label, "confidence": c, "top": [{"label": label, "confidence": c}]}

    return {"category": head(category, min(1.0, confidence + 0.2)),
            "subcategory": head(key, confidence),
            "department": head(department, min(1.0, confidence + 0.1)),
            "duty": {"category": category, "subcategory": subcategory, "department": department,
                     "time_limit": time_limit, "legal_basis": None},
            "decision": decision, "model_version": version}


@pytest.fixture
def make_routing() -> Callable[..., dict[str, Any]]:
    return routing_dict
