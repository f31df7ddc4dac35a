"""Registration against real server processes: replicas racing for one id on PostgreSQL, and a
server killed with SIGKILL in the middle of registrations."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import create_engine, text


def _register(url: str, key: str, items: list[dict]) -> httpx.Response:
    return httpx.post(f"{url}/v1/complaints", json={"complaints": items}, timeout=60,
                      headers={"Authorization": f"Bearer {key}"})


@pytest.mark.postgres
def test_two_replicas_registering_one_id_keep_every_other_item(tmp_path, bundles_dir, key_file,
                                                              keys, texts, server_process,
                                                              scratch_database,
                                                              postgres_database):
    """Before: the loser of each race got 409 for its whole request and its good item was lost
    (16 of 40 on two PostgreSQL replicas)."""
    rounds = 20
    with scratch_database(postgres_database) as db, \
            server_process(tmp_path, bundles_dir, key_file[0], HUYING_DATABASE_URL=db) as a, \
            server_process(tmp_path, bundles_dir, key_file[0], HUYING_DATABASE_URL=db) as b, \
            ThreadPoolExecutor(2) as pool:
        for n in range(rounds):
            barrier = threading.Barrier(2)

            def send(url: str, side: str, n: int = n, barrier=barrier) -> httpx.Response:
                barrier.wait()
                return _register(url, keys["intake"], [
                    {"id": f"race-{n}", "text": texts[n % 3]},
                    {"id": f"good-{n}-{side}", "text": texts[(n + 1) % 3]}])

            ra, rb = pool.map(send, (a[0], b[0]), ("a", "b"))
            assert ra.status_code == rb.status_code == 200, (ra.text, rb.text)
            codes = sorted(str(r.json()["results"][0]["error"] and
                               r.json()["results"][0]["error"]["code"]) for r in (ra, rb))
            assert codes == ["None", "already_registered"], codes
            assert all(r.json()["results"][1]["error"] is None for r in (ra, rb))
        engine = create_engine(db)
        with engine.connect() as c:
            ids = sorted(c.execute(text("SELECT id FROM complaints")).scalars())
        engine.dispose()
    assert ids == sorted([f"race-{n}" for n in range(rounds)]
                         + [f"good-{n}-{s}" for n in range(rounds) for s in "ab"])


def test_a_killed_server_leaves_no_complaint_without_its_routing_log(tmp_path, bundles_dir,
                                                                     key_file, keys, texts,
                                                                     server_process):
    """Before: registration was two transactions; SIGKILL between them left registered
    complaints with no routing log or review item (5 of 805 in a probe)."""
    acknowledged: list[str] = []
    stop = threading.Event()

    def stream(url: str, worker: int) -> None:
        n = 0
        while not stop.is_set():
            ids = [f"w{worker}-{n}-{i}" for i in range(8)]
            n += 1
            try:
                r = _register(url, keys["intake"], [
                    {"id": cid, "text": f"{texts[i % 3]}（第{n}次）"} for i, cid in enumerate(ids)])
            except httpx.HTTPError:
                return  # the server is gone
            if r.status_code == 200:
                acknowledged.extend(ids)

    with server_process(tmp_path, bundles_dir, key_file[0]) as (url, process):
        workers = [threading.Thread(target=stream, args=(url, w)) for w in range(4)]
        for w in workers:
            w.start()
        deadline = time.monotonic() + 30
        while len(acknowledged) < 40 and time.monotonic() < deadline:
            time.sleep(0.05)
        process.kill()  # SIGKILL, mid-stream
        process.wait(10)
        stop.set()
        for w in workers:
            w.join(30)
    engine = create_engine(f"sqlite:///{tmp_path / 'huying.db'}")
    with engine.connect() as c:
        complaints = set(c.execute(text("SELECT id FROM complaints")).scalars())
        logged = set(c.execute(text("SELECT complaint_id FROM routing_log")).scalars())
        review = {r[0] for r in c.execute(text(
            "SELECT complaint_id FROM routing_log WHERE decision = 'review'"))}
        queued = set(c.execute(text("SELECT complaint_id FROM review_items")).scalars())
    engine.dispose()
    assert len(acknowledged) >= 40
    assert set(acknowledged) <= complaints  # every acknowledged write survived
    assert complaints == logged  # and none is registered without its routing log
    assert review <= queued  # nor decided `review` without a review item


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql",
                                                            marks=pytest.mark.postgres)])
def test_two_replica_processes_see_each_others_complaints_and_model(
        backend, request, tmp_path, bundles_dir, key_file, keys, texts, server_process):
    """Before: replica B answered [] for a complaint registered on A until it was restarted, and
    a model promoted on A was served by A alone."""
    from contextlib import ExitStack

    env = {"HUYING_DUPLICATE_THRESHOLD": "0.95", "HUYING_MODEL_FOLLOW_INTERVAL_S": "0.5"}
    with ExitStack() as stack:
        if backend == "postgresql":
            scratch = request.getfixturevalue("scratch_database")
            env["HUYING_DATABASE_URL"] = stack.enter_context(
                scratch(request.getfixturevalue("postgres_database")))
        (a, _), (b, _) = (stack.enter_context(server_process(tmp_path, bundles_dir, key_file[0],
                                                             **env)) for _ in range(2))
        assert _register(a, keys["intake"], [{"id": "a1", "text": texts[0]}]).status_code == 200
        started = time.monotonic()
        while True:
            r = httpx.post(f"{b}/v1/route", json={"complaints": [{"id": "q", "text": texts[0]}]},
                           headers={"Authorization": f"Bearer {keys['intake']}"}, timeout=30)
            if any(d["id"] == "a1" and d["same_event"] for d in r.json()["results"][0]["duplicates"]):
                break
            assert time.monotonic() - started < 1.0, "B did not see A's complaint within 1 s"
            time.sleep(0.05)
        r = httpx.post(f"{a}/v1/admin/model", json={"version": "tiny-v2"}, timeout=60,
                       headers={"Authorization": f"Bearer {keys['admin']}"})
        assert r.status_code == 200, r.text
        deadline = time.monotonic() + 30
        while httpx.get(f"{b}/readyz", timeout=5).json().get("model_version") != "tiny-v2":
            assert time.monotonic() < deadline, "B did not follow the promotion"
            time.sleep(0.2)
        assert httpx.get(f"{b}/readyz", timeout=5).json()["active_version"] == "tiny-v2"


def _until_acked(urls: tuple[str, ...], path: str, **kwargs) -> httpx.Response | None:
    """POST `path` to each url in turn until one answers 200; None if none did."""
    for url in urls:
        try:
            r = httpx.post(f"{url}{path}", timeout=60, **kwargs)
        except httpx.HTTPError:
            continue
        if r.status_code == 200:
            return r
    return None


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql",
                                                            marks=pytest.mark.postgres)])
def test_a_replica_killed_mid_stream_loses_nothing_its_clients_retry_on_the_other(
        backend, request, tmp_path, bundles_dir, key_file, keys, texts, server_process,
        tiny_bundle):
    """kill -9 replica A under four clients registering complaints, one sending feedback and
    one officer claiming and submitting reviews; each request A did not answer is retried on B
    (registrations with the same ids, the others with the same Idempotency-Key): afterwards
    every complaint is stored exactly once, every one the clients sent is stored, and every
    acknowledged feedback and review answer is stored once."""
    import signal
    from contextlib import ExitStack

    from sqlalchemy import create_engine, text

    env: dict[str, str] = {}
    with ExitStack() as stack:
        if backend == "postgresql":
            scratch = request.getfixturevalue("scratch_database")
            env["HUYING_DATABASE_URL"] = stack.enter_context(
                scratch(request.getfixturevalue("postgres_database")))
        (a, process_a), (b, _) = (stack.enter_context(
            server_process(tmp_path, bundles_dir, key_file[0], **env)) for _ in range(2))
        urls = (a, b, b, b)  # A first; once A is gone, B
        sent: list[str] = []
        feedback: list[str] = []  # complaint ids whose feedback was acknowledged
        reviewed: list[int] = []  # review items whose submit was acknowledged
        stop = threading.Event()

        def registrar(worker: int) -> None:
            n = 0
            while not stop.is_set():
                ids = [f"w{worker}-{n}-{i}" for i in range(4)]
                n += 1
                items = [{"id": cid, "text": f"{texts[i % 3]}（第{n}次）"}
                         for i, cid in enumerate(ids)]
                sent.extend(ids)
                r = _until_acked(urls, "/v1/complaints", json={"complaints": items},
                                 headers={"Authorization": f"Bearer {keys['intake']}"})
                assert r is not None and all(
                    x["error"] is None or x["error"]["code"] == "already_registered"
                    for x in r.json()["results"]), f"{ids} were never registered"

        def feedback_client() -> None:
            n = 0
            while not stop.is_set():
                n += 1
                body = {"complaint_id": f"fb-{n}", "kind": "correct", "text": texts[n % 3],
                        "category": tiny_bundle.taxonomy.categories[n % 2]}
                r = _until_acked(urls, "/v1/feedback", json=body, headers={
                    "Authorization": f"Bearer {keys['intake']}", "Idempotency-Key": f"fb-{n}"})
                assert r is not None, f"feedback {n} was never acknowledged"
                feedback.append(body["complaint_id"])

        def officer() -> None:
            n = 0
            while not stop.is_set():
                n += 1
                auth = {"Authorization": f"Bearer {keys['officer']}"}
                claimed = _until_acked(urls, "/v1/review/claim-next",
                                       headers={**auth, "Idempotency-Key": f"claim-{n}"})
                if claimed is None:  # 204 everywhere: nothing queued yet
                    time.sleep(0.1)
                    continue
                item = claimed.json()["id"]
                r = _until_acked(urls, f"/v1/review/items/{item}/submit", json={"kind": "accept"},
                                 headers={**auth, "Idempotency-Key": f"submit-{item}"})
                assert r is not None, f"the answer to item {item} was never acknowledged"
                reviewed.append(item)

        with ThreadPoolExecutor(6) as pool:
            futures = [pool.submit(registrar, w) for w in range(4)]
            futures += [pool.submit(feedback_client), pool.submit(officer)]
            time.sleep(3)
            process_a.send_signal(signal.SIGKILL)
            time.sleep(3)
            stop.set()
            for f in futures:
                f.result()
        url = env.get("HUYING_DATABASE_URL", f"sqlite:///{tmp_path / 'huying.db'}")
        engine = create_engine(url)
        with engine.connect() as c:
            stored = list(c.execute(text("SELECT id FROM complaints")).scalars())
            labels = list(c.execute(text(
                "SELECT complaint_id FROM responses WHERE source <> 'review'")).scalars())
            answers = list(c.execute(text(
                "SELECT review_item_id FROM responses WHERE status = 'submitted' "
                "AND source = 'review'")).scalars())
        engine.dispose()
    assert len(sent) > 16
    assert len(stored) == len(set(stored))  # once
    assert set(sent) <= set(stored)  # and every one the clients sent
    assert feedback and sorted(labels) == sorted(feedback)
    assert reviewed and sorted(answers) == sorted(reviewed)


@pytest.fixture
def full_disk(tmp_path):
    """A 1 MiB tmpfs mounted at tmp_path/full-disk and filled to the last byte (ENOSPC for any
    write); `full_disk.free()` deletes the filler. Mounting needs root."""
    import errno
    import os
    import subprocess

    mount = tmp_path / "full-disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        reason = f"cannot mount a small tmpfs to fill ({done.stderr.strip()}); run as root"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI is set, so the full-disk test must run)")
        pytest.skip(reason)

    class Disk:
        path = mount / "index"
        filler = mount / "filler"

        def free(self) -> None:
            self.filler.unlink()

    Disk.path.mkdir()
    try:
        with open(Disk.filler, "wb") as f:
            while True:
                f.write(b"\0" * 4096)
                f.flush()
    except OSError as exc:
        assert exc.errno == errno.ENOSPC, exc
    try:
        yield Disk()
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_index_disk_keeps_the_replica_serving_and_a_restart_rebuilds_from_the_store(
        tmp_path, bundles_dir, key_file, keys, texts, server_process, full_disk):
    """The index folder's disk is full: the replica still gets ready, registers and finds
    repeats from memory, and /readyz says the save failed; killed and restarted on the still
    full disk it rebuilds the index from the store; once there is space the save succeeds."""
    import signal

    env = {"HUYING_INDEX_DIR": str(full_disk.path), "HUYING_INDEX_SAVE_INTERVAL_S": "0.5"}
    auth = {"Authorization": f"Bearer {keys['officer']}"}

    def index_status(url: str) -> dict:
        return httpx.get(f"{url}/readyz", timeout=5).json()["similarity_index"]

    def similar(url: str) -> list[str]:
        r = httpx.get(f"{url}/v1/complaints/f1/similar", headers=auth, timeout=30)
        assert r.status_code == 200, r.text
        return [d["id"] for d in r.json()["duplicates"]]

    with server_process(tmp_path, bundles_dir, key_file[0], **env) as (url, process):
        status = index_status(url)
        assert status["ready"] and "No space left" in status["save_error"], status
        items = [{"id": "f1", "text": texts[2]}, {"id": "f2", "text": f"{texts[2]}，请尽快修"}]
        r = _register(url, keys["intake"], items)
        assert r.status_code == 200 and all(x["error"] is None for x in r.json()["results"])
        before = similar(url)
        assert "f2" in before
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    assert not (full_disk.path / "tiny-v1" / "index.npz").exists()
    with server_process(tmp_path, bundles_dir, key_file[0], **env) as (url, process):
        status = index_status(url)
        assert status["last_build"] == "rebuilt (no saved index)" and status["size"] == 2, status
        assert similar(url) == before
        full_disk.free()
        deadline = time.monotonic() + 10
        while index_status(url)["save_error"] is not None:
            assert time.monotonic() < deadline, "the save was not retried once there was space"
            time.sleep(0.2)
        assert (full_disk.path / "tiny-v1" / "index.npz").is_file()
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    with server_process(tmp_path, bundles_dir, key_file[0], **env) as (url, _):
        assert index_status(url)["last_build"].startswith("loaded from")
        assert similar(url) == before
