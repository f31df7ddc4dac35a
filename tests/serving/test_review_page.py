"""The officer page in a real headless Chromium: sign in, accept, correct with the picker, and
check that the queue moves on and that the answers reached the store with their audit trail.

Runs the real app under uvicorn on a free localhost port (tiny bundle, temporary SQLite file,
temporary keys) and Debian's chromium driven by Playwright. Install the browser with
`apt-get install -y chromium` (and a CJK font, e.g. fonts-wqy-microhei, for readable screenshots).
Without chromium the test is skipped, unless CI is set: then it fails.

    pytest -m browser tests/serving/test_review_page.py
"""

from __future__ import annotations

import os
import re
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from serving.app import create_app
from serving.settings import Settings, load_settings
from serving.store import service
from serving.store.db import make_engine, make_sessionmaker
from serving.store.tables import Response as ResponseRow
from serving.store.tables import ReviewItem

pytestmark = pytest.mark.browser

CHROMIUM = Path(os.environ.get("HUYING_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOT = Path(os.environ.get("HUYING_REVIEW_SCREENSHOT", "/tmp/review-page.png"))
TIMEOUT_MS = 15_000


def _chromium() -> Path:
    if CHROMIUM.exists():
        return CHROMIUM
    reason = (f"Debian's chromium is not installed at {CHROMIUM}: `apt-get install -y chromium` "
              "(or point HUYING_CHROMIUM at a Chromium binary)")
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI is set, so the browser test must run")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    settings: Settings


@pytest.fixture
def server(tmp_path, bundles_dir, key_file) -> Iterator[Server]:
    """The real app under uvicorn in a background thread, on a free port."""
    import uvicorn

    settings = load_settings(bundles_dir=bundles_dir, api_keys_file=key_file[0],
                             demo_keys_file=tmp_path / "demo-keys.txt", batch_max_wait_ms=2,
                             database_url=f"sqlite:///{tmp_path / 'huying.db'}",
                             index_dir=tmp_path / "index", batch_workers=1)
    port = _free_port()
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port,
                            log_level="warning", access_log=False, lifespan="on")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not uv.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("the app did not start under uvicorn")
        time.sleep(0.05)
    try:
        yield Server(url=f"http://127.0.0.1:{port}", settings=settings)
    finally:
        uv.should_exit = True
        thread.join(timeout=30)


def _seed(server: Server, keys: dict[str, str], texts: list[str]) -> int:
    """Route `texts` as complaints; returns how many the model sent to review."""
    body = {"complaints": [{"id": f"page-{i}", "text": t, "channel": "12345热线"}
                           for i, t in enumerate(texts)]}
    r = httpx.post(f"{server.url}/v1/route", json=body, timeout=60,
                   headers={"Authorization": f"Bearer {keys['intake']}"})
    r.raise_for_status()
    return sum(x["routing"]["decision"] == "review" for x in r.json()["results"])


def test_accept_and_correct_in_the_page_reach_the_store(server, keys, haikou_sample,
                                                        tiny_bundle):
    chromium = _chromium()
    from playwright.sync_api import expect, sync_playwright

    texts = [r.text for r in haikou_sample.records[:12]]
    queued = _seed(server, keys, texts)
    assert queued >= 3, "the tiny model should send at least three of these texts to review"
    officer = f"test officer ({keys['officer'].split('_')[1]})"
    taxonomy = tiny_bundle.taxonomy
    problems: list[str] = []

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS,
                                    headless=True)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1000}, locale="zh-CN",
                                    timezone_id="Asia/Shanghai")
            page.set_default_timeout(TIMEOUT_MS)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("console", lambda m: problems.append(f"console: {m.text}")
                    if m.type == "error" else None)
            page.goto(f"{server.url}/review")

            # A key without the officer role is refused inline.
            page.get_by_label("API 密钥").fill(keys["intake"])
            page.get_by_role("button", name="进入审核").click()
            expect(page.locator("#login-error")).to_contain_text("没有审核权限")
            problems.clear()  # the browser logs the refused request (403): expected here

            page.get_by_label("API 密钥").fill(keys["officer"])
            page.get_by_role("button", name="进入审核").click()
            current = page.locator("#i-complaint")
            expect(current).to_have_text(re.compile(r"^#page-\d+$"))
            # the header counts what the list shows: the claimed item in hand included
            expect(page.locator("#queue-count")).to_contain_text(f"共 {queued} 条")
            expect(page.locator("#queue-list li")).to_have_count(queued)
            expect(page.locator("#s-subcategory li")).to_have_count(3)

            # 1. accept the first item with the keyboard
            first = current.inner_text().removeprefix("#")
            page.locator("#item").focus()
            page.keyboard.press("a")
            expect(current).not_to_have_text(f"#{first}")  # the queue moved on
            expect(page.locator("#toast")).to_contain_text("已提交 接受建议")
            second = current.inner_text().removeprefix("#")

            # 2. correct the second with the picker: another subcategory, its default department
            with make_sessionmaker(engine := make_engine(server.settings.database_url))() as s:
                item2 = s.scalars(select(ReviewItem).where(ReviewItem.complaint_id == second)).one()
            engine.dispose()
            target = next(e for e in taxonomy.entries if e.department
                          and e.key != item2.subcategory and e.department != item2.department)
            page.keyboard.press("c")
            expect(page.locator("#picker-input")).to_be_focused()
            page.keyboard.type(f"{target.category} {target.subcategory}")
            option = page.get_by_role("option", name=f"{target.category} › {target.subcategory}")
            option.first.click()
            expect(page.locator("#c-subcategory")).to_have_text(target.subcategory)
            expect(page.locator("#c-category")).to_have_text(target.category)
            expect(page.locator("#c-department")).to_have_value(target.department)
            expect(page.locator("#duty")).to_contain_text(target.department)
            expect(page.locator("#c-status")).to_contain_text("草稿已保存")  # autosaved
            page.screenshot(path=str(SCREENSHOT), full_page=True)
            page.get_by_role("button", name="提交更正").click()
            expect(current).not_to_have_text(f"#{second}")  # and on again
            expect(page.locator("#toast")).to_contain_text("已提交 更正")
            expect(page.locator("#queue-count")).to_contain_text(f"共 {queued - 2} 条")  # 2 done
        finally:
            browser.close()

    assert problems == []
    engine = make_engine(server.settings.database_url)
    try:
        with make_sessionmaker(engine)() as s:
            _check_store(s, officer, first, second, target)
    finally:
        engine.dispose()


def _check_store(s, officer: str, first: str, second: str, target) -> None:
    responses = s.scalars(select(ResponseRow).where(ResponseRow.status == "submitted")
                          .order_by(ResponseRow.id)).all()
    assert [r.complaint_id for r in responses] == [first, second]
    accepted, corrected = responses
    item1, item2 = (s.scalars(select(ReviewItem).where(ReviewItem.complaint_id == c)).one()
                    for c in (first, second))
    # (b) the right labels, the officer, and what the model had said
    assert accepted.kind == "accept"
    assert (accepted.category, accepted.subcategory, accepted.department) == (
        item1.category, item1.subcategory, item1.department)
    assert corrected.kind == "correct"
    assert (corrected.category, corrected.subcategory, corrected.department) == (
        target.category, target.key, target.department)
    for response, item in ((accepted, item1), (corrected, item2)):
        assert response.officer == officer and response.source == "review"
        assert response.review_item_id == item.id
        assert response.suggestion == item.suggestion and response.suggestion["subcategory"]
        assert response.model_version == "tiny-v1"
        assert item.status == "done" and item.claimed_by == officer
    labels = {label.complaint_id: label for label in service.submitted_labels(s)}
    assert labels[second].subcategory == target.key
    # (c) the audit log
    for response, item in ((accepted, item1), (corrected, item2)):
        trail = service.audit_trail(s, "review_item", item.id)
        assert [e.action for e in trail] == ["review_item.enqueued", "review_item.claimed",
                                             "review_item.done"]
        assert trail[-1].actor == officer
        submitted = service.audit_trail(s, "response", response.id)
        assert submitted[-1].action == "response.submitted" and submitted[-1].actor == officer
        assert submitted[-1].after["kind"] == response.kind
    # the correction's draft was saved on the way (the picker autosaves)
    assert any(e.action == "response.draft_saved"
               for e in service.audit_trail(s, "response", corrected.id))


def test_missing_chromium_skips_locally_and_fails_in_ci(monkeypatch, tmp_path):
    monkeypatch.setattr(sys.modules[__name__], "CHROMIUM", tmp_path / "no-chromium")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install -y chromium"):
        _chromium()
    monkeypatch.setenv("CI", "1")
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        _chromium()
