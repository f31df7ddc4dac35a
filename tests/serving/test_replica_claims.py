"""The review queue across replica processes: officers on two replicas of one PostgreSQL store
claim concurrently, and no item is ever handed to two of them."""

from __future__ import annotations

import threading
from collections import Counter

import httpx
import pytest
from sqlalchemy import create_engine, text

from serving.auth import Role, create_key

OFFICERS = 8
COMPLAINTS = 120  # the tiny model sends about half of these real complaints to review
MIN_REVIEW_ITEMS = 40


@pytest.mark.postgres
def test_eight_officers_claiming_concurrently_across_two_replicas_never_share_an_item(
        tmp_path, bundles_dir, haikou_sample, server_process, scratch_database,
        postgres_database):
    """Eight officers, bound alternately to replica A and B, call claim-next together (behind a
    barrier) until the queue is empty: each item goes to exactly one officer, and the store
    records that officer as its holder. A claim that did not lock (two transactions reading the
    same most urgent item, both writing their claim) would hand one item to two officers, and
    the store would keep only the last writer."""
    keys_file = tmp_path / "api_keys.json"
    intake = create_key(keys_file, Role.intake, name="claims intake")
    officer_keys = [create_key(keys_file, Role.officer, name=f"officer {n}")
                    for n in range(OFFICERS)]
    # what the store records for a key (serving/review.py officer_id): "<name> (<key id>)"
    officer_names = [f"officer {n} ({key.split('_')[1]})" for n, key in enumerate(officer_keys)]
    texts = list(dict.fromkeys(r.text for r in haikou_sample.records))[:COMPLAINTS]

    with scratch_database(postgres_database) as db, \
            server_process(tmp_path, bundles_dir, keys_file, HUYING_DATABASE_URL=db) as (a, _), \
            server_process(tmp_path, bundles_dir, keys_file, HUYING_DATABASE_URL=db) as (b, _):
        review: set[str] = set()
        for start in range(0, len(texts), 20):  # half registered on each replica
            r = httpx.post(f"{(a, b)[start // 20 % 2]}/v1/complaints", timeout=60,
                           headers={"Authorization": f"Bearer {intake}"},
                           json={"complaints": [{"id": f"c{n}", "text": texts[n]}
                                                for n in range(start, start + 20)]})
            assert r.status_code == 200, r.text
            results = r.json()["results"]
            assert all(x["error"] is None for x in results), results
            review |= {x["id"] for x in results if x["routing"]["decision"] == "review"}
        assert len(review) >= MIN_REVIEW_ITEMS, f"only {len(review)} complaints went to review"

        engine = create_engine(db)
        with engine.connect() as c:
            queued = dict(c.execute(text(
                "SELECT id, complaint_id FROM review_items WHERE status = 'open'")).all())
        assert sorted(queued.values()) == sorted(review)

        barrier = threading.Barrier(OFFICERS)
        claimed: list[list[tuple[int, str]]] = [[] for _ in range(OFFICERS)]
        failures: list[str] = []

        def officer(n: int) -> None:
            url = (a, b)[n % 2]
            with httpx.Client(base_url=url, timeout=30,
                              headers={"Authorization": f"Bearer {officer_keys[n]}"}) as client:
                client.get("/readyz")  # the connection is open before the race starts
                barrier.wait(timeout=30)
                for _ in range(len(queued) + 1):
                    r = client.post("/v1/review/claim-next")
                    if r.status_code == 204:
                        return
                    if r.status_code != 200:
                        failures.append(f"officer {n} on {url}: {r.status_code} {r.text}")
                        return
                    item = r.json()
                    claimed[n].append((item["id"], item["claimed_by"]))
                failures.append(f"officer {n} on {url} never got 204")

        threads = [threading.Thread(target=officer, args=(n,)) for n in range(OFFICERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not any(t.is_alive() for t in threads), "an officer is still claiming after 60 s"
        assert not failures, failures

        with engine.connect() as c:
            stored = {row.id: (row.status, row.claimed_by) for row in c.execute(text(
                "SELECT id, status, claimed_by FROM review_items"))}
        engine.dispose()

    ids = [item for mine in claimed for item, _ in mine]
    shared = {item: [officer_names[n] for n, mine in enumerate(claimed)
                     if any(i == item for i, _ in mine)]
              for item, count in Counter(ids).items() if count > 1}
    assert not shared, (f"{len(shared)} of {len(set(ids))} items handed to more than one "
                        f"officer, e.g. {dict(list(shared.items())[:3])}")
    assert sorted(ids) == sorted(queued), "every review item is claimed exactly once"
    for n, mine in enumerate(claimed):
        for item, answered_by in mine:
            assert answered_by == officer_names[n], (item, answered_by, officer_names[n])
            assert stored[item] == ("claimed", officer_names[n]), (item, stored[item])
    # the claims really raced: officers on both replicas took part
    assert sum(bool(claimed[n]) for n in range(0, OFFICERS, 2)) >= 2, [len(m) for m in claimed]
    assert sum(bool(claimed[n]) for n in range(1, OFFICERS, 2)) >= 2, [len(m) for m in claimed]
