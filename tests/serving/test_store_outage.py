"""The database drops every connection under load (as a PostgreSQL restart does): each request is
answered 200 or 503 with Retry-After, never a 500; the server recovers by itself; and every
acknowledged complaint is stored once, a client's retry of a refused one included."""

from __future__ import annotations

import threading
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from serving.app import create_app

pytestmark = pytest.mark.postgres


def test_dropped_connections_are_503s_with_retry_after_and_the_server_recovers(
        settings, headers, scratch_database, postgres_database, texts):
    with scratch_database(postgres_database) as url:
        name = make_url(url).database
        admin = create_engine(postgres_database, isolation_level="AUTOCOMMIT")
        stop = threading.Event()

        def cut() -> None:  # what a restart does to the server's sessions
            while not stop.is_set():
                with admin.connect() as c:
                    c.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                   "WHERE datname = :name AND pid <> pg_backend_pid()"),
                              {"name": name})
                time.sleep(0.15)

        statuses: list[int] = []
        acknowledged: set[str] = set()
        with TestClient(create_app(settings.model_copy(update={"database_url": url})),
                        raise_server_exceptions=False) as client:
            cutter = threading.Thread(target=cut)
            cutter.start()
            try:
                for n in range(60):
                    ids = [f"c{n}-{i}" for i in range(3)]
                    body = {"complaints": [{"id": i, "text": f"{texts[k % 3]}（{i}）"}
                                           for k, i in enumerate(ids)]}
                    for _ in range(20):  # the client retries a refused request, same ids
                        r = client.post("/v1/complaints", json=body, headers=headers["intake"])
                        statuses.append(r.status_code)
                        if r.status_code == 503:
                            assert r.headers.get("retry-after"), r.text
                            continue
                        assert r.status_code == 200, r.text
                        for result in r.json()["results"]:
                            error = result["error"]
                            assert error is None or error["code"] == "already_registered", error
                        acknowledged.update(ids)
                        break
            finally:
                stop.set()
                cutter.join()
            r = client.post("/v1/complaints", json={"complaints": [{"id": "after",
                                                                    "text": texts[0]}]},
                            headers=headers["intake"])
            assert r.status_code == 200, r.text  # recovered by itself
        admin.dispose()
        engine = create_engine(url)
        with engine.connect() as c:
            stored = list(c.execute(text("SELECT id FROM complaints")).scalars())
        engine.dispose()
    assert 503 in statuses, "the cuts never hit a request: the test proved nothing"
    assert set(statuses) <= {200, 503}
    assert len(stored) == len(set(stored)) and acknowledged | {"after"} <= set(stored)
