"""The officer page in a real headless Chromium: sign in, accept, correct with the picker, and
check that the queue moves on and that the answers reached the store with their audit trail; in
the 热点问题 view, list the hot issues of a period, split a complaint off an issue and merge it
back, and check the store and the audit trail followed; in the 统计 view, query a period by week
and check the cards, the department table, the charts and a CSV export against the API; in the
预警 view, detect a day's warnings, list them as the API does and acknowledge one with a note;
in the review item, adopt a reply of its hot issue (秒回), edit it and send it to the case.

Runs the real app under uvicorn on a free localhost port (tiny bundle, temporary SQLite file,
temporary keys) and Debian's chromium driven by Playwright. Install the browser with
`apt-get install -y chromium` (and a CJK font, e.g. fonts-wqy-microhei, for readable screenshots).
Without chromium the test is skipped, unless CI is set: then it fails.

    pytest -m browser tests/serving/test_review_page.py
"""

from __future__ import annotations

import math
import os
import re
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from serving.app import create_app
from serving.settings import Settings, load_settings
from serving.store import service
from serving.store.db import make_engine, make_sessionmaker
from serving.store.tables import Complaint, EarlyWarning, HotIssue, ReviewItem
from serving.store.tables import Response as ResponseRow

pytestmark = pytest.mark.browser

CHROMIUM = Path(os.environ.get("HUYING_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOT = Path(os.environ.get("HUYING_REVIEW_SCREENSHOT", "/tmp/review-page.png"))
HOT_SCREENSHOT = Path(os.environ.get("HUYING_HOT_ISSUES_SCREENSHOT", "/tmp/hot-issues-page.png"))
STATS_SCREENSHOT = Path(os.environ.get("HUYING_STATS_SCREENSHOT", "/tmp/stats-page.png"))
WARNINGS_SCREENSHOT = Path(os.environ.get("HUYING_WARNINGS_SCREENSHOT", "/tmp/warnings-page.png"))
REPLIES_SCREENSHOT = Path(os.environ.get("HUYING_REPLIES_SCREENSHOT", "/tmp/replies-panel.png"))
TIMEOUT_MS = 15_000


def _chromium() -> Path:
    if CHROMIUM.exists():
        return CHROMIUM
    reason = (f"Debian's chromium is not installed at {CHROMIUM}: `apt-get install -y chromium` "
              "(or point HUYING_CHROMIUM at a Chromium binary)")
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI is set, so the browser test must run")
    pytest.skip(reason)


@contextmanager
def _review_page(url: str, problems: list[str], *, height: int = 900) -> Iterator[Any]:
    """/review in headless Chromium at 1440 × `height`; page errors and console errors go to
    `problems`."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(_chromium()), args=CHROMIUM_ARGS,
                                    headless=True)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": height}, locale="zh-CN",
                                    timezone_id="Asia/Shanghai")
            page.set_default_timeout(TIMEOUT_MS)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("console", lambda m: problems.append(f"console: {m.text}")
                    if m.type == "error" else None)
            page.goto(f"{url}/review")
            yield page
        finally:
            browser.close()


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
    yield from _serve(tmp_path, bundles_dir, key_file)


@pytest.fixture
def hot_server(tmp_path, bundles_dir, key_file) -> Iterator[Server]:
    """As `server`, but only (near-)exact repeats are the same event: the tiny model finds
    unrelated texts about 0.49 similar, at the default threshold, which would blur the issues."""
    yield from _serve(tmp_path, bundles_dir, key_file, duplicate_threshold=0.95)


def _serve(tmp_path, bundles_dir, key_file, **overrides) -> Iterator[Server]:
    import uvicorn

    settings = load_settings(bundles_dir=bundles_dir, api_keys_file=key_file[0],
                             demo_keys_file=tmp_path / "demo-keys.txt", batch_max_wait_ms=2,
                             database_url=f"sqlite:///{tmp_path / 'huying.db'}",
                             index_dir=tmp_path / "index", batch_workers=1, **overrides)
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
    _chromium()  # skips (or fails in CI) without a browser
    from playwright.sync_api import expect

    texts = [r.text for r in haikou_sample.records[:12]]
    queued = _seed(server, keys, texts)
    assert queued >= 3, "the tiny model should send at least three of these texts to review"
    officer = f"test officer ({keys['officer'].split('_')[1]})"
    taxonomy = tiny_bundle.taxonomy
    problems: list[str] = []

    with _review_page(server.url, problems, height=1000) as page:

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


LAMP = "龙华区南沙路坡博新村二巷102号处有一盏路灯不亮，晚上出行很不方便"
NOISE = "美兰区海甸五西路工地夜间施工噪音扰民，严重影响休息"
PARKING = "秀英区向荣北路金美花园外面很多机动车违停，堵塞消防通道"
PERIOD = {"from": "2018-04-07", "to": "2018-04-10"}


def _register(server: Server, keys: dict[str, str], complaints: list[dict]) -> None:
    """Register complaints through /v1/complaints (/v1/route stores nothing): they join issues."""
    r = httpx.post(f"{server.url}/v1/complaints", json={"complaints": complaints}, timeout=60,
                   headers={"Authorization": f"Bearer {keys['intake']}"})
    r.raise_for_status()
    assert r.json()["registered"] == len(complaints), r.text


def _hot_issues(server: Server, keys: dict[str, str], **params) -> dict:
    r = httpx.get(f"{server.url}/v1/hot-issues", params={**PERIOD, "top": 50, **params},
                  headers={"Authorization": f"Bearer {keys['officer']}"}, timeout=30)
    r.raise_for_status()
    return r.json()


def _issue_of(server: Server, complaint_id: str) -> int | None:
    engine = make_engine(server.settings.database_url)
    try:
        with make_sessionmaker(engine)() as s:
            return s.get(Complaint, complaint_id).issue_id
    finally:
        engine.dispose()


def test_hot_issues_view_lists_splits_and_merges_into_the_store(hot_server, keys, haikou_sample,
                                                                tiny_bundle):
    _chromium()  # skips (or fails in CI) without a browser
    server = hot_server
    from playwright.sync_api import expect

    complaints = [
        {"id": "lamp-1", "text": LAMP, "channel": "12345热线", "location": "海口市龙华区南沙路",
         "received_at": "2018-04-08T09:30:00+08:00"},
        {"id": "lamp-2", "text": LAMP, "channel": "微信小程序",  # an exact repeat: same issue
         "received_at": "2018-04-09T07:30:00+08:00"},
        {"id": "noise-1", "text": NOISE, "channel": "12345热线", "location": "海口市美兰区",
         "received_at": "2018-04-09T22:00:00+08:00"},
        {"id": "parking-1", "text": PARKING, "channel": "12345热线",
         "location": "海口市秀英区向荣北路", "received_at": "2018-04-10T08:15:00+08:00"},
        *({"id": f"sample-{i}", "text": r.text, "channel": "12345热线",
           "received_at": f"2018-04-0{7 + i}T1{i}:00:00+08:00"}
          for i, r in enumerate(haikou_sample.records[:2])),
    ]
    _register(server, keys, complaints)
    listed = _hot_issues(server, keys)
    lamp_id = _issue_of(server, "lamp-1")
    assert lamp_id is not None and _issue_of(server, "lamp-2") == lamp_id
    noise_id, parking_id = _issue_of(server, "noise-1"), _issue_of(server, "parking-1")
    n = len(listed["issues"])
    assert n == listed["total"] >= 4
    lamp = next(i for i in listed["issues"] if i["id"] == lamp_id)
    assert lamp["reports"] == 2 and lamp["trend"] == [0, 1, 1, 0]
    officer = f"test officer ({keys['officer'].split('_')[1]})"
    problems: list[str] = []

    with _review_page(server.url, problems, height=900) as page:
        page.get_by_label("API 密钥").fill(keys["officer"])
        page.get_by_role("button", name="进入审核").click()
        views = page.get_by_role("navigation", name="切换页面")
        expect(views).to_be_visible()

        # switch views from the keyboard (H, Q) and with the top bar's buttons
        hot_tab = views.get_by_role("button", name="热点问题")
        queue_tab = views.get_by_role("button", name="审核队列")
        page.locator("#item").focus()
        page.keyboard.press("h")
        expect(page.locator("#hot")).to_be_visible()
        expect(page.locator("#app")).to_be_hidden()
        expect(hot_tab).to_have_attribute("aria-current", "page")
        page.keyboard.press("q")
        expect(page.locator("#app")).to_be_visible()
        expect(queue_tab).to_have_attribute("aria-current", "page")
        hot_tab.focus()
        page.keyboard.press("Enter")
        expect(page.locator("#hot")).to_be_visible()
        expect(page.locator("#hot-count")).to_contain_text("个热点问题")  # the last 30 days

        # the period of the seeded complaints: the table lists what the API lists
        # (within the view: the 统计 view has its own 起始日期 and 截止日期)
        rows = page.locator("#hot-rows tr.hot-row")
        page.locator("#hot").get_by_label("起始日期").fill(PERIOD["from"])
        page.locator("#hot").get_by_label("截止日期").fill(PERIOD["to"])
        page.get_by_role("button", name="查询").click()
        expect(page.locator("#hot-count")).to_contain_text(
            f"{PERIOD['from']} 至 {PERIOD['to']}：共 {listed['total']} 个热点问题")
        expect(rows).to_have_count(n)
        expect(rows.locator("td.rank")).to_have_text([str(i["rank"]) for i in listed["issues"]])
        expect(rows.locator("td.heat")).to_have_text([f"{i['heat']:.1f}"
                                                      for i in listed["issues"]])
        lamp_row = page.locator(f'#hot-rows tr[data-id="{lamp_id}"]')
        expect(lamp_row.locator("td.reports")).to_have_text("2")
        expect(lamp_row.locator("td.when")).to_have_text("2018-04-08 09:30 – 2018-04-09 07:30")
        expect(lamp_row.locator("td.place")).to_have_text(lamp["place"] or "—")
        spark = lamp_row.locator("svg.spark")
        expect(spark).to_have_attribute("role", "img")
        expect(spark).to_have_attribute("aria-label", re.compile(
            r"^每日投诉数：4月8日 1 件，4月9日 1 件，其余日期 0 件"))
        expect(spark.locator("polyline")).to_have_count(1)

        # the district narrows the list as the API does
        page.get_by_label("区域").fill("龙华区")
        page.get_by_role("button", name="查询").click()
        expect(rows).to_have_count(len(_hot_issues(server, keys, district="龙华区")["issues"]))
        expect(page.locator("#hot-count")).to_contain_text("龙华区")
        page.get_by_label("区域").fill("")
        page.get_by_role("button", name="查询").click()
        expect(rows).to_have_count(n)

        # 1. split lamp-2 off the lamp issue
        lamp_row.get_by_role("button", name=re.compile(f"^查看热点问题 #{lamp_id}（")).click()
        expect(page.locator("#hd-id")).to_have_text(f"#{lamp_id}")
        expect(lamp_row).to_have_attribute("aria-current", "true")
        members = page.locator("#hd-complaints input[type=checkbox]")
        expect(members).to_have_count(2)
        split_button = page.get_by_role("button", name="拆分所选")
        expect(split_button).to_be_disabled()
        page.get_by_label(re.compile("^#lamp-2")).check()
        expect(page.locator("#hd-selected")).to_have_text("已选 1 件")
        split_button.click()
        expect(page.locator("#toast")).to_contain_text("1 件投诉移入新热点问题")
        expect(page.locator("#hd-id")).not_to_have_text(f"#{lamp_id}")
        new_id = int(page.locator("#hd-id").inner_text().removeprefix("#"))
        expect(page.locator("#hd-complaints input[type=checkbox]")).to_have_count(1)
        expect(rows).to_have_count(n + 1)  # the list was reloaded
        expect(lamp_row.locator("td.reports")).to_have_text("1")
        expect(page.locator(f'#hot-rows tr[data-id="{new_id}"] td.reports')).to_have_text("1")
        assert _issue_of(server, "lamp-2") == new_id

        # 2. merge the new issue back into the lamp issue
        into = page.get_by_label("合并到")
        expect(into.locator(f'option[value="{new_id}"]')).to_have_count(0)  # not itself
        into.select_option(str(lamp_id))
        page.get_by_role("button", name="合并", exact=True).click()
        expect(page.locator("#toast")).to_contain_text(f"#{new_id} 合并到 #{lamp_id}")
        expect(page.locator("#hd-id")).to_have_text(f"#{lamp_id}")
        expect(page.locator("#hd-complaints input[type=checkbox]")).to_have_count(2)
        expect(rows).to_have_count(n)
        expect(lamp_row.locator("td.reports")).to_have_text("2")
        page.screenshot(path=str(HOT_SCREENSHOT), full_page=True)
        assert problems == []

        # 3. a refusal is shown inline: the noise issue was merged elsewhere meanwhile
        page.locator(f'#hot-rows tr[data-id="{noise_id}"] td.desc button').click()
        expect(page.locator("#hd-id")).to_have_text(f"#{noise_id}")
        into.select_option(str(lamp_id))
        r = httpx.post(f"{server.url}/v1/hot-issues/{noise_id}/merge",
                       json={"into": parking_id}, timeout=30,
                       headers={"Authorization": f"Bearer {keys['officer']}"})
        assert r.status_code == 200, r.text
        page.get_by_role("button", name="合并", exact=True).click()
        alert = page.locator("#hd-error")
        expect(alert).to_have_attribute("role", "alert")
        expect(alert).to_contain_text("该热点问题已被合并")
        problems.clear()  # the browser logs the refused request (409): expected here
        page.get_by_role("button", name="查询").click()
        expect(rows).to_have_count(n - 1)
        expect(page.locator("#hd-complaints")).to_contain_text(f"已合并到 #{parking_id}")

    assert problems == []
    engine = make_engine(server.settings.database_url)
    try:
        with make_sessionmaker(engine)() as s:
            _check_issues(s, officer, lamp_id, new_id)
    finally:
        engine.dispose()


def _check_issues(s, officer: str, lamp_id: int, new_id: int) -> None:
    assert [c.id for c in s.scalars(select(Complaint).where(Complaint.issue_id == lamp_id)
                                    .order_by(Complaint.id))] == ["lamp-1", "lamp-2"]
    assert s.scalars(select(Complaint).where(Complaint.issue_id == new_id)).all() == []
    assert s.get(HotIssue, new_id).merged_into == lamp_id
    assert s.get(HotIssue, lamp_id).merged_into is None
    trail = service.audit_trail(s, "hot_issue", lamp_id)
    assert [(e.action, e.actor) for e in trail] == [("hot_issue.split", officer),
                                                    ("hot_issue.merged", officer)]
    split, merged = trail
    assert split.before["complaint_ids"] == ["lamp-1", "lamp-2"]
    assert split.after == {"complaint_ids": ["lamp-1"], "merged_into": None,
                           "split_into": new_id}
    assert merged.after == {"complaint_ids": ["lamp-1", "lamp-2"], "merged_into": None}
    trail = service.audit_trail(s, "hot_issue", new_id)
    assert [(e.action, e.actor) for e in trail] == [("hot_issue.split", officer),
                                                    ("hot_issue.merged", officer)]
    assert trail[0].before is None
    assert trail[0].after == {"complaint_ids": ["lamp-2"], "merged_into": None,
                              "split_from": lamp_id}
    assert trail[1].after == {"complaint_ids": [], "merged_into": lamp_id}


STATS_PARAMS = {"from": "2018-04-01", "to": "2018-04-30", "by": "week"}
# 2018-04-01 is a Sunday (its week starts on Monday 26 March) and 2018-04-30 a Monday: six weeks
STATS_WEEKS = ["2018-03-26", "2018-04-02", "2018-04-09", "2018-04-16", "2018-04-23", "2018-04-30"]


def _share(value: float | None) -> str:
    """As the page shows a share: a percentage with one decimal, rounded half up."""
    return "—" if value is None else f"{math.floor(value * 1000 + 0.5) / 10:.1f}%"


def _hours(value: float | None) -> str:
    """As the page shows hours: as the API gives them, without trailing zeros."""
    return "—" if value is None else f"{value:.2f}".rstrip("0").rstrip(".")


def _stats_get(server: Server, keys: dict[str, str], path: str = "") -> httpx.Response:
    r = httpx.get(f"{server.url}/v1/stats{path}", params=STATS_PARAMS, timeout=30,
                  headers={"Authorization": f"Bearer {keys['officer']}"})
    r.raise_for_status()
    return r


def _seed_cases(server: Server, keys: dict[str, str], haikou_sample, department: str) -> None:
    """Six complaints of April 2018 (one just after local midnight on Sunday 1 April, the day
    before in UTC), three of them with case events, as tests/serving/test_stats_api.py does."""
    _register(server, keys, [
        {"id": "lamp-1", "text": LAMP, "channel": "12345热线", "location": "海口市龙华区南沙路",
         "received_at": "2018-04-08T09:30:00+08:00"},
        {"id": "lamp-2", "text": LAMP, "channel": "微信小程序",  # a repeat of lamp-1
         "received_at": "2018-04-09T07:30:00+08:00"},
        {"id": "noise-1", "text": NOISE, "channel": "12345热线", "location": "海口市美兰区",
         "received_at": "2018-04-09T22:00:00+08:00"},
        {"id": "park-1", "text": PARKING, "channel": "12345热线",
         "location": "海口市秀英区向荣北路", "received_at": "2018-04-16T08:15:00+08:00"},
        {"id": "sample-0", "text": haikou_sample.records[0].text, "channel": "12345热线",
         "received_at": "2018-04-01T00:30:00+08:00"},
        {"id": "sample-1", "text": haikou_sample.records[1].text, "channel": "12345热线",
         "received_at": "2018-04-23T15:00:00+08:00"},
    ])
    for cid, events in {
        "lamp-1": [("assigned", "2018-04-08T09:40:00+08:00", {"department": department}),
                   ("replied", "2018-04-08T09:55:00+08:00", {"reply": "已安排维修"}),
                   ("closed", "2018-04-09T09:30:00+08:00", {})],
        "noise-1": [("replied", "2018-04-10T09:00:00+08:00", {"reply": "已责令停工"}),
                    ("closed", "2018-04-10T12:00:00+08:00", {})],
        "park-1": [("assigned", "2018-04-16T08:20:00+08:00", {"department": department})],
    }.items():
        for n, (kind, at, extra) in enumerate(events):
            r = httpx.post(f"{server.url}/v1/complaints/{cid}/events", timeout=30,
                           headers={"Authorization": f"Bearer {keys['intake']}"},
                           json={"event_id": f"{cid}-{n}", "kind": kind, "at": at, **extra})
            assert r.status_code == 200, r.text


def _department_row(d: dict) -> list[str]:
    return [d["department"], str(d["complaints"]), str(d["closed"]), _share(d["closed_share"]),
            _hours(d["close_hours_median"]), _hours(d["close_hours_p90"]),
            str(d["with_time_limit"]), str(d["overdue"]), _share(d["overdue_share"]),
            str(d["repeats"])]


def test_stats_view_shows_what_the_api_computes_and_exports_its_csv(hot_server, keys,
                                                                    haikou_sample, tiny_bundle):
    _chromium()  # skips (or fails in CI) without a browser
    server = hot_server
    from playwright.sync_api import expect

    _seed_cases(server, keys, haikou_sample, tiny_bundle.taxonomy.departments[0])
    expected = _stats_get(server, keys).json()
    summary, departments = expected["summary"], expected["departments"]
    assert summary["complaints"] == 6 and summary["closed"] == 2 and summary["repeats"] == 1
    weekly: dict[str, int] = dict.fromkeys(STATS_WEEKS, 0)
    for v in expected["volumes"]:
        if v["dimension"] == "department":
            weekly[v["period"]] += v["complaints"]
    assert list(weekly.values()) == [1, 1, 2, 1, 1, 0]  # 1 April (local) counts in 26 March's week
    categories = {v["value"] for v in expected["volumes"] if v["dimension"] == "category"}
    districts: dict[str, int] = {}
    for v in expected["volumes"]:
        if v["dimension"] == "district":
            districts[v["value"]] = districts.get(v["value"], 0) + v["complaints"]
    assert districts["龙华区"] >= 2  # lamp-1 and lamp-2
    departments_csv = _stats_get(server, keys, "/departments.csv").text
    problems: list[str] = []

    with _review_page(server.url, problems, height=900) as page:
        page.get_by_label("API 密钥").fill(keys["officer"])
        page.get_by_role("button", name="进入审核").click()
        views = page.get_by_role("navigation", name="切换页面")
        stats_tab = views.get_by_role("button", name="统计")
        expect(stats_tab).to_have_attribute("aria-keyshortcuts", "T")

        # T switches to the view, which loads the last 30 days; Q goes back, the tab returns
        page.locator("#item").focus()
        page.keyboard.press("t")
        view = page.locator("#stats")
        expect(view).to_be_visible()
        expect(page.locator("#app")).to_be_hidden()
        expect(stats_tab).to_have_attribute("aria-current", "page")
        expect(page).to_have_title("呼应 · 统计")
        count = page.locator("#stats-count")
        expect(count).to_contain_text("按日：共 0 件投诉")  # nothing in the last 30 days
        page.keyboard.press("q")
        expect(page.locator("#app")).to_be_visible()
        stats_tab.click()
        expect(view).to_be_visible()

        # April 2018 by week: the same numbers as GET /v1/stats
        view.get_by_label("起始日期").fill(STATS_PARAMS["from"])
        view.get_by_label("截止日期").fill(STATS_PARAMS["to"])
        view.get_by_label("粒度").select_option(STATS_PARAMS["by"])
        view.get_by_role("button", name="查询").click()
        expect(count).to_contain_text("2018-04-01 至 2018-04-30，按周：共 6 件投诉")
        expect(page.locator("#sc-complaints")).to_have_text(str(summary["complaints"]))
        expect(page.locator("#sc-closed-share")).to_have_text(_share(summary["closed_share"]))
        expect(page.locator("#sc-closed-note")).to_have_text(f"已办结 {summary['closed']} 件")
        expect(page.locator("#sc-median")).to_have_text(_hours(summary["close_hours_median"]))
        expect(page.locator("#sc-p90")).to_have_text(_hours(summary["close_hours_p90"]))
        expect(page.locator("#sc-overdue")).to_have_text(str(summary["overdue"]))
        expect(page.locator("#sc-overdue-share")).to_have_text(_share(summary["overdue_share"]))
        expect(page.locator("#sc-overdue-note")).to_contain_text(
            f"有办理时限的 {summary['with_time_limit']} 件")
        expect(page.locator("#sc-repeats")).to_have_text(str(summary["repeats"]))
        rows = page.locator("#dept-rows tr")
        expect(rows).to_have_count(len(departments))
        for i, d in enumerate(departments):  # in the API's order: most complaints first
            expect(rows.nth(i).locator("th, td")).to_have_text(_department_row(d))
        if len(departments) > 1:
            expect(page.locator("#dept-total tr th, #dept-total tr td")).to_have_text(
                ["全部部门", *_department_row(summary)[1:]])

        # the charts: one bar per week, totals as the API's volumes add up
        total = page.locator("#chart-total svg[role=img]")
        expect(total).to_have_count(1)
        expect(total).to_have_attribute("aria-label", re.compile(
            r"^每周投诉量柱状图，2018-04-01 至 2018-04-30，共 6 件，6 个周："
            r"3月26日起 1 件，.*，4月30日起 0 件$"))
        expect(total.locator("rect.chart-bar")).to_have_count(len(STATS_WEEKS))
        periods = total.locator("g.period")
        expect(periods).to_have_count(len(STATS_WEEKS))
        assert [periods.nth(i).get_attribute("data-period") for i in range(len(STATS_WEEKS))
                ] == STATS_WEEKS
        assert [int(periods.nth(i).get_attribute("data-total"))
                for i in range(len(STATS_WEEKS))] == list(weekly.values())
        by_value = page.locator("#chart-dim svg[role=img]")
        expect(by_value).to_have_attribute("aria-label", re.compile(r"^按分类的每周投诉量"))
        expect(by_value.locator("g.period")).to_have_count(len(STATS_WEEKS))
        assert len(categories) <= 8  # so one segment per (week, category) with complaints
        expect(by_value.locator("rect.segment")).to_have_count(sum(
            1 for v in expected["volumes"] if v["dimension"] == "category"))
        legend = page.locator("#chart-dim-legend li")
        expect(legend).to_have_count(min(len(categories), 8) + (len(categories) > 8))
        view.get_by_label("维度").select_option("district")
        expect(page.locator("#chart-dim-title")).to_have_text("按区域的投诉量（前 8 项）")
        expect(by_value).to_have_attribute("aria-label", re.compile(r"^按区域的每周投诉量"))
        expect(legend).to_have_count(len(districts))
        expect(legend.locator(".legend-name")).to_contain_text(["龙华区"])
        expect(page.locator('#chart-dim-legend li:has-text("龙华区") .legend-count')
               ).to_have_text(f"{districts['龙华区']} 件")
        page.screenshot(path=str(STATS_SCREENSHOT), full_page=True)

        # CSV export: fetched with the key, saved as a download, the API's bytes
        with page.expect_download() as download:
            view.get_by_role("button", name="各部门 CSV").click()
        saved = download.value
        assert saved.suggested_filename == "departments-2018-04-01-2018-04-30.csv"
        assert Path(saved.path()).read_text(encoding="utf-8") == departments_csv
        expect(page.locator("#toast")).to_contain_text("已导出各部门")

        # at 800 px the view still reads (one column of charts); saved next to the other
        page.set_viewport_size({"width": 800, "height": 900})
        expect(total.locator("rect.chart-bar")).to_have_count(len(STATS_WEEKS))
        page.screenshot(path=str(STATS_SCREENSHOT.with_name(
            f"{STATS_SCREENSHOT.stem}-800{STATS_SCREENSHOT.suffix}")), full_page=True)
        assert problems == []

        # from after to: the API's 422, inline, and what was shown stays
        view.get_by_label("起始日期").fill("2018-04-30")
        view.get_by_label("截止日期").fill("2018-04-01")
        view.get_by_role("button", name="查询").click()
        alert = page.locator("#stats-error")
        expect(alert).to_have_attribute("role", "alert")
        expect(alert).to_contain_text("查询条件有误（起始日期）")
        expect(alert).to_contain_text("from 2018-04-30 is after to 2018-04-01: swap them")
        expect(view.get_by_label("起始日期")).to_be_focused()
        expect(count).to_contain_text("2018-04-01 至 2018-04-30")
        problems.clear()  # the browser logs the refused request (422): expected here
        view.get_by_label("起始日期").fill("2018-04-01")
        view.get_by_label("截止日期").fill("2018-04-30")
        view.get_by_role("button", name="查询").click()
        expect(alert).to_be_hidden()  # .error:empty

    assert problems == []


WARNING_KINDS = {"surge": "数量异常上升", "repeated_event": "同一事件重复反映",
                 "overdue_cases": "超期工单", "overdue_share": "超期率上升"}
APRIL = {"from": "2018-04-01", "to": "2018-04-30"}


def _officer_get(server: Server, keys: dict[str, str], path: str, **params) -> dict:
    r = httpx.get(f"{server.url}{path}", params=params, timeout=30,
                  headers={"Authorization": f"Bearer {keys['officer']}"})
    r.raise_for_status()
    return r.json()


def _pct(value: float) -> str:
    """As the page shows a 0–1 measure: a whole percentage, rounded half up."""
    return f"{math.floor(value * 100 + 0.5)}%"


def test_warnings_view_detects_lists_and_acknowledges_into_the_store(hot_server, keys):
    _chromium()  # skips (or fails in CI) without a browser
    server = hot_server
    from playwright.sync_api import expect

    # six near-identical complaints in 龙华区 on Monday 16 April: a surge against nothing before
    _register(server, keys, [
        {"id": f"jinpan-{k}", "text": f"龙华区金盘路{k}号门口机动车乱停放，堵塞通道",
         "channel": "12345热线", "location": "海口市龙华区",
         "received_at": f"2018-04-16T09:{10 + k}:00+08:00"} for k in range(6)])
    officer = f"test officer ({keys['officer'].split('_')[1]})"
    problems: list[str] = []

    with _review_page(server.url, problems, height=900) as page:
        page.get_by_label("API 密钥").fill(keys["officer"])
        page.get_by_role("button", name="进入审核").click()
        views = page.get_by_role("navigation", name="切换页面")
        tab = views.get_by_role("button", name="预警")
        expect(tab).to_have_attribute("aria-keyshortcuts", "W")
        page.get_by_role("button", name="快捷键").click()
        expect(page.locator("#help")).to_contain_text("统计 / 预警")
        page.keyboard.press("Escape")

        # W switches to the view: the open warnings of the last 30 days (none yet)
        page.locator("#item").focus()
        page.keyboard.press("w")
        view = page.locator("#warnings")
        expect(view).to_be_visible()
        expect(page.locator("#app")).to_be_hidden()
        expect(tab).to_have_attribute("aria-current", "page")
        expect(page).to_have_title("呼应 · 预警")
        count = page.locator("#warnings-count")
        expect(count).to_contain_text("（未处理）：共 0 条预警")
        expect(view.get_by_label("状态")).to_have_value("open")

        # April 2018: nothing until the day is detected; then what GET /v1/warnings lists
        view.get_by_label("起始日期").fill(APRIL["from"])
        view.get_by_label("截止日期").fill(APRIL["to"])
        view.get_by_role("button", name="查询").click()
        expect(count).to_contain_text("2018-04-01 至 2018-04-30（未处理）：共 0 条预警")
        view.get_by_label("检测某日").fill("2018-04-16")
        view.get_by_role("button", name="检测", exact=True).click()
        toast = page.locator("#toast")
        expect(toast).to_have_text(re.compile(r"^新增 \d+ 条预警$"))
        listed = _officer_get(server, keys, "/v1/warnings", **APRIL)["warnings"]
        expect(toast).to_have_text(f"新增 {len(listed)} 条预警")
        assert len(listed) >= 2 and {w["day"] for w in listed} == {"2018-04-16"}
        surge = next(w for w in listed if w["kind"] == "surge"
                     and w["evidence"].get("district") == "龙华区")
        other = next(w for w in listed if w["id"] != surge["id"])
        rows = page.locator("#warnings-list li.warning")
        expect(rows).to_have_count(len(listed))
        expect(count).to_contain_text(f"共 {len(listed)} 条预警")
        assert [int(rows.nth(i).get_attribute("data-id")) for i in range(len(listed))] == [
            w["id"] for w in listed]  # in the API's order
        expect(rows.locator(".w-kind")).to_have_text([WARNING_KINDS[w["kind"]]
                                                      for w in listed])
        expect(rows.locator(".w-day")).to_have_text([w["day"] for w in listed])
        expect(rows.locator(".w-new")).to_have_count(len(listed))  # all just detected

        # the surge: where and what, observed against expected, its series, its complaints
        row = page.locator(f'#warnings-list li[data-id="{surge["id"]}"]')
        expect(row.locator(".w-subject")).to_contain_text("龙华区 · ")
        expected = surge["expected"]  # tiny against an empty history: 不足 0.1
        expect(row.locator(".w-numbers")).to_contain_text(f"{round(surge['observed'])} 件，预计" + (
            "不足 0.1" if 0 < expected < 0.05 else f" {expected:.1f}") + " 件")
        spark = row.locator("svg.spark")
        expect(spark).to_have_attribute("role", "img")
        expect(spark).to_have_attribute("aria-label", re.compile(
            rf"^每日投诉数：4月16日 {round(surge['observed'])} 件，其余日期 0 件"))
        expect(row.locator(".w-ids code")).to_have_text(
            [f"#{c}" for c in surge["evidence"]["complaint_ids"]])

        # acknowledge it with a note: who and when show in its place
        row.get_by_label("备注").fill("已转交龙华区城管核查")
        row.get_by_role("button", name="确认", exact=True).click()
        expect(toast).to_contain_text("已确认预警")
        expect(row.locator(".w-status")).to_have_text("已确认")
        expect(row.locator(".w-acked")).to_contain_text(f"已确认：{officer}")
        expect(row.locator(".w-acked")).to_contain_text("备注：已转交龙华区城管核查")
        expect(row.get_by_role("button", name="确认", exact=True)).to_have_count(0)
        expect(count).to_contain_text(f"其中未处理 {len(listed) - 1} 条")
        page.screenshot(path=str(WARNINGS_SCREENSHOT), full_page=True)

        # 未处理 no longer lists it; 已确认 does
        view.get_by_role("button", name="查询").click()
        expect(rows).to_have_count(len(listed) - 1)
        expect(page.locator(f'#warnings-list li[data-id="{surge["id"]}"]')).to_have_count(0)
        view.get_by_label("状态").select_option("acknowledged")
        view.get_by_role("button", name="查询").click()
        expect(rows).to_have_count(1)
        expect(rows.first).to_have_attribute("data-id", str(surge["id"]))
        assert problems == []

        # detecting again adds nothing; a refusal is shown inline: acknowledged meanwhile
        view.get_by_role("button", name="检测", exact=True).click()
        expect(toast).to_have_text("新增 0 条预警")
        view.get_by_label("状态").select_option("open")
        view.get_by_role("button", name="查询").click()
        expect(rows).to_have_count(len(listed) - 1)
        r = httpx.post(f"{server.url}/v1/warnings/{other['id']}/acknowledge", timeout=30,
                       json={"note": "另一位审核员"},
                       headers={"Authorization": f"Bearer {keys['officer']}"})
        assert r.status_code == 200, r.text
        row = page.locator(f'#warnings-list li[data-id="{other["id"]}"]')
        row.get_by_role("button", name="确认", exact=True).click()
        alert = row.get_by_role("alert")
        expect(alert).to_contain_text("该预警已被确认")
        problems.clear()  # the browser logs the refused request (409): expected here
        # and a day in the future is the API's 422, inline
        view.get_by_label("检测某日").fill("2999-01-01")
        view.get_by_role("button", name="检测", exact=True).click()
        expect(page.locator("#warnings-error")).to_contain_text("输入有误（检测日期）")
        expect(view.get_by_label("检测某日")).to_be_focused()
        problems.clear()  # the refused request (422): expected here

    assert problems == []
    engine = make_engine(server.settings.database_url)
    try:
        with make_sessionmaker(engine)() as s:
            row = s.get(EarlyWarning, surge["id"])
            assert (row.acknowledged_by, row.note) == (officer, "已转交龙华区城管核查")
            assert row.acknowledged_at is not None
            trail = service.audit_trail(s, "warning", surge["id"])
            assert [(e.action, e.actor) for e in trail] == [("warning.raised", officer),
                                                            ("warning.acknowledged", officer)]
            assert trail[-1].after["note"] == "已转交龙华区城管核查"
    finally:
        engine.dispose()


LAMP_REPLY = ("市民您好！您反映的龙华区南沙路坡博新村二巷路灯不亮的问题已收悉。经现场核实，该路灯线路"
              "老化，我局已安排人员于4月8日更换线路，路灯已恢复照明。感谢您对我们工作的支持！")


def test_a_reply_of_the_hot_issue_is_adopted_edited_and_sent_to_the_case(hot_server, keys):
    _chromium()  # skips (or fails in CI) without a browser
    server = hot_server
    from playwright.sync_api import expect

    intake = {"Authorization": f"Bearer {keys['intake']}"}
    _register(server, keys, [{"id": "lamp-1", "text": LAMP, "channel": "12345热线",
                              "location": "海口市龙华区南沙路",
                              "received_at": "2018-04-08T09:30:00+08:00"}])
    r = httpx.post(f"{server.url}/v1/complaints/lamp-1/events", headers=intake, timeout=30,
                   json={"event_id": "lamp-1-reply", "kind": "replied",
                         "at": "2018-04-08T15:30:00+08:00", "reply": LAMP_REPLY})
    assert r.status_code == 200, r.text
    # an exact repeat: the tiny model sends it to review, and it joins lamp-1's hot issue
    _register(server, keys, [{"id": "lamp-2", "text": LAMP, "channel": "微信小程序",
                              "received_at": "2018-04-09T09:00:00+08:00"}])
    queue = _officer_get(server, keys, "/v1/review/queue")["items"]
    item_id = next(i["id"] for i in queue if i["complaint_id"] == "lamp-2")
    [offered] = _officer_get(server, keys, f"/v1/review/items/{item_id}")["replies"]
    assert (offered["reply"], offered["source_complaint_id"]) == (LAMP_REPLY, "lamp-1")
    quality = offered["quality"]
    officer = f"test officer ({keys['officer'].split('_')[1]})"
    edited = LAMP_REPLY.replace("感谢您", "如仍有问题请再次来电（Q&A 热线 12345）。感谢您")
    problems: list[str] = []

    with _review_page(server.url, problems, height=1000) as page:
        page.get_by_label("API 密钥").fill(keys["officer"])
        page.get_by_role("button", name="进入审核").click()
        current = page.locator("#i-complaint")
        expect(current).to_have_text(re.compile(r"^#lamp-\d$"))
        page.locator(f'#queue-list button.q-item[data-id="{item_id}"]').click()  # claims it
        expect(current).to_have_text("#lamp-2")

        # the hot issue's reply, its source, date and quality
        card = page.locator("#replies-card")
        expect(card).to_be_visible()
        reply = card.locator("li.reply")
        expect(reply).to_have_count(1)
        expect(reply.locator(".reply-head")).to_contain_text("#lamp-1 的答复")
        expect(reply.locator(".reply-head")).to_contain_text("2018-04-08 15:30")
        expect(reply.locator(".reply-text")).to_have_text(LAMP_REPLY)
        expect(reply.locator(".badge")).to_have_text([
            f"相关度 {_pct(quality['relevance'])}", f"完整性 {_pct(quality['completeness'])}",
            f"可解释性 {_pct(quality['interpretability'])}",
            f"时效 {quality['timeliness_days']:g} 天"])

        # adopt it, edit it in the textarea: the letters typed are not shortcuts there
        box = page.get_by_role("textbox", name="答复")
        expect(box).to_have_value("")
        reply.get_by_role("button", name="采用并编辑").click()
        expect(box).to_be_focused()
        expect(box).to_have_value(LAMP_REPLY)
        box.evaluate("(el, i) => el.setSelectionRange(i, i)", LAMP_REPLY.index("感谢您"))
        page.keyboard.type("如仍有问题请再次来电（Q&A 热线 12345）。")
        expect(box).to_have_value(edited)
        expect(page.locator("#app")).to_be_visible()  # Q did not switch views
        expect(current).to_have_text("#lamp-2")  # A did not accept the item
        page.evaluate("window.scrollTo(0, 0)")  # the queue is sticky: shoot from the top
        page.screenshot(path=str(REPLIES_SCREENSHOT), full_page=True)
        page.get_by_role("button", name="发送答复").click()
        expect(page.locator("#toast")).to_have_text("已发送答复")
        expect(page.locator("#reply-status")).to_contain_text("案件状态：已答复")
        expect(box).to_have_value("")
        case = _officer_get(server, keys, "/v1/complaints/lamp-2/case")
        assert case["state"] == "replied"
        last = case["events"][-1]
        assert (last["kind"], last["reply"], last["actor"]) == ("replied", edited, officer)
        assert last["event_id"].startswith(f"review-{item_id}-")
        assert problems == []

        # once the case is closed a reply is refused (409), inline; Ctrl+Enter in the
        # textarea sends the reply, it does not submit the item's labels
        r = httpx.post(f"{server.url}/v1/complaints/lamp-2/events", headers=intake,
                       timeout=30, json={"event_id": "lamp-2-closed", "kind": "closed",
                                         "at": datetime.now(UTC).isoformat()})
        assert r.status_code == 200, r.text
        box.fill("再补充一句")
        box.press("Control+Enter")
        alert = page.locator("#reply-error")
        expect(alert).to_have_attribute("role", "alert")
        expect(alert).to_contain_text("案件当前状态不允许")
        expect(alert).to_contain_text("is closed")
        problems.clear()  # the browser logs the refused request (409): expected here
        expect(current).to_have_text("#lamp-2")
        expect(box).to_have_value("再补充一句")
        box.press("Escape")
        expect(box).not_to_be_focused()

    assert problems == []
    engine = make_engine(server.settings.database_url)
    try:
        with make_sessionmaker(engine)() as s:
            assert s.get(ReviewItem, item_id).status != "done"  # only the reply was sent
            assert s.scalars(select(ResponseRow).where(ResponseRow.status == "submitted")
                             ).all() == []
    finally:
        engine.dispose()


def test_missing_chromium_skips_locally_and_fails_in_ci(monkeypatch, tmp_path):
    monkeypatch.setattr(sys.modules[__name__], "CHROMIUM", tmp_path / "no-chromium")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install -y chromium"):
        _chromium()
    monkeypatch.setenv("CI", "1")
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        _chromium()
