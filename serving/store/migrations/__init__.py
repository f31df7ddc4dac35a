"""Schema migrations (Alembic), run from code: `upgrade(database_url)` brings a database to head.

No alembic.ini is needed: the configuration is built here. To write the next migration, change
`serving/store/tables.py`, then autogenerate against a database at head and edit the result:

    python -c "from serving.store.migrations import config; from alembic import command; \
               command.revision(config('sqlite:///dev.db'), 'what changed', autogenerate=True)"
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text
from sqlalchemy.engine import URL

from serving.store.db import WRITE_OPTION, make_engine, normalise_url

HERE = Path(__file__).resolve().parent
# Any constant works; it only has to be the same in every process that migrates this database.
_PG_LOCK_KEY = 0x487579696E67  # "Huying"


def config(database: str | URL | None = None) -> Config:
    """An Alembic configuration for this package's scripts (and `database`, if given)."""
    cfg = Config()
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("script_location", str(HERE))
    cfg.set_main_option("version_locations", str(HERE / "versions"))
    if database is not None:
        url = normalise_url(database).render_as_string(hide_password=False)
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head() -> str:
    """The newest revision the scripts define."""
    revision = ScriptDirectory.from_config(config()).get_current_head()
    if revision is None:
        raise RuntimeError(f"no migration scripts in {HERE / 'versions'}")
    return revision


def current(database: str | URL | Engine) -> str | None:
    """The revision `database` is at (None: never migrated)."""
    engine, owned = _engine(database)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        if owned:
            engine.dispose()


def upgrade(database: str | URL | Engine, revision: str = "head") -> None:
    """Migrate `database` to `revision`, in one transaction. Safe to run from several processes
    at once (e.g. replicas starting together): they take turns and later ones find nothing to do."""
    engine, owned = _engine(database)
    try:
        # on SQLite, BEGIN IMMEDIATE: take the write lock before reading the current version
        with engine.connect().execution_options(**{WRITE_OPTION: True}) as connection, \
                connection.begin():
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                                   {"key": _PG_LOCK_KEY})
            cfg = config()
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, revision)
    finally:
        if owned:
            engine.dispose()


def downgrade(database: str | URL | Engine, revision: str) -> None:
    """Migrate `database` back to `revision` ("base": drop everything), in one transaction."""
    engine, owned = _engine(database)
    try:
        with engine.begin() as connection:
            cfg = config()
            cfg.attributes["connection"] = connection
            command.downgrade(cfg, revision)
    finally:
        if owned:
            engine.dispose()


def _engine(database: str | URL | Engine) -> tuple[Engine, bool]:
    if isinstance(database, Engine):
        return database, False
    return make_engine(database), True
