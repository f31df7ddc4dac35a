"""Serving fixtures: a bundles directory holding the tiny bundle, keys per role, a running app."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import URL, make_url

from model.versions import set_active
from serving.app import create_app
from serving.auth import Role, create_key
from serving.settings import Settings, load_settings

ADMIN_URL = os.environ.get("HUYING_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")

# Real Haikou 12345 complaints.
TEXTS = (
    "市民来电反映: 秀英区向荣北路金美花园外面很多机动车违停，请交警局核实处理，谢谢！",
    "其原来在公司上班有社保，请问辞职出来了个人社保怎么交费？",
    "龙华区南沙路坡博新村二巷102号处有一盏路灯不亮",
)


@pytest.fixture(scope="session")
def key_file(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    path = tmp_path_factory.mktemp("keys") / "api_keys.json"
    return path, {role.value: create_key(path, role, name=f"test {role.value}") for role in Role}


@pytest.fixture(scope="session")
def keys(key_file) -> dict[str, str]:
    return key_file[1]


def _bundles(root: Path, tiny_bundle, bundle_copy) -> Path:
    directory = root / "bundles"
    directory.mkdir()
    shutil.copytree(tiny_bundle.path, directory / "tiny-v1")
    bundle_copy(tiny_bundle.path, directory, "tiny-v2")
    set_active(directory, "tiny-v1")
    return directory


def _settings(root: Path, bundles_dir: Path, key_file) -> Settings:
    return load_settings(bundles_dir=bundles_dir, api_keys_file=key_file[0],
                         demo_keys_file=root / "demo-keys.txt", batch_max_wait_ms=2,
                         database_url=f"sqlite:///{root / 'huying.db'}", index_dir=root / "index")


@pytest.fixture
def bundles_dir(tmp_path, tiny_bundle, bundle_copy) -> Path:
    """bundles/ with tiny-v1 active and a tiny-v2 next to it (same model, another version)."""
    return _bundles(tmp_path, tiny_bundle, bundle_copy)


@pytest.fixture
def settings(tmp_path, bundles_dir, key_file) -> Settings:
    return _settings(tmp_path, bundles_dir, key_file)


@pytest.fixture
def client(settings):
    """A started app (lifespan run: the model is loaded) behind a TestClient."""
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture(scope="module")
def started_app(tmp_path_factory, tiny_bundle, bundle_copy, key_file):
    """One started app for a whole module whose tests do not change what it serves (its
    routing log grows): starting an app per test costs a model load and an index build."""
    root = tmp_path_factory.mktemp("app")
    with TestClient(create_app(_settings(root, _bundles(root, tiny_bundle, bundle_copy),
                                         key_file))) as c:
        yield c


@pytest.fixture(scope="session")
def texts() -> tuple[str, ...]:
    return TEXTS


@pytest.fixture(scope="session")
def headers(keys) -> dict[str, dict[str, str]]:
    """Authorization headers per role: headers["intake"], headers["admin"], …"""
    return {role: {"Authorization": f"Bearer {key}"} for role, key in keys.items()}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[URL]:
    """A fresh database on the PostgreSQL server, dropped when the test session ends."""
    try:
        import psycopg
    except ImportError as exc:
        _unavailable(f"psycopg is not installed ({exc}); pip install 'psycopg[binary]'")
    try:
        admin = psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        why = " ".join(str(exc).split())
        _unavailable(f"PostgreSQL is not reachable at {ADMIN_URL} ({why}); start it or point "
                     "HUYING_TEST_POSTGRES at a server")
    name = f"huying_test_{secrets.token_hex(4)}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        # commits need not wait for the server's disk here: tests kill clients, never the server
        admin.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
        try:
            yield make_url(ADMIN_URL).set(drivername="postgresql+psycopg", database=name)
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so the PostgreSQL tests must run)")
    pytest.skip(reason)


@contextmanager
def scratch_postgres(base: URL) -> Iterator[str]:
    """A new, empty database on the test server for one app; dropped afterwards."""
    from sqlalchemy import create_engine, text

    name = f"{base.database}_{secrets.token_hex(4)}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend_url(request, tmp_path) -> Iterator[str]:
    """A database URL for an app: a SQLite file, or a scratch PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'huying.db'}"
        return
    with scratch_postgres(request.getfixturevalue("postgres_database")) as url:
        yield url


@pytest.fixture(scope="session")
def scratch_database():
    return scratch_postgres


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _server_process(workdir: Path, bundles_dir: Path, keys_file: Path,
                    **env: str) -> Iterator[tuple[str, subprocess.Popen]]:
    """`python -m serving.main` on a free port, ready; its log is workdir/server-<port>.log."""
    import httpx

    port = _free_port()
    full = {**os.environ, "HUYING_BUNDLES_DIR": str(bundles_dir),
            "HUYING_API_KEYS_FILE": str(keys_file),
            "HUYING_DEMO_KEYS_FILE": str(workdir / "demo.txt"),
            "HUYING_DATABASE_URL": f"sqlite:///{workdir / 'huying.db'}",
            "HUYING_INDEX_DIR": str(workdir / f"index-{port}"), "HUYING_PORT": str(port),
            "HUYING_ACCESS_LOG": "false", **env}
    log_path = workdir / f"server-{port}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "serving.main"], env=full, stdout=log,
                                   stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start:\n{log_path.read_text()}")
            time.sleep(0.2)
        yield url, process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(15)


@pytest.fixture(scope="session")
def server_process():
    """Start real server processes: `with server_process(dir, bundles, keys, **env) as (url, p)`."""
    return _server_process
