"""Reminder letters: a department's numbers, warnings, repeated events and overdue cases, as
Markdown, HTML and a PDF that renders; the same letter from `huying letters`."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from cli import app as cli_app
from serving import letter_pdf
from serving.app import create_app

PARKING = "龙华区金盘路{k}号门口机动车乱停放，堵塞消防通道，请尽快处理"
PERIOD = {"from": "2018-04-01", "to": "2018-04-30"}
PAGE_PNG = Path(os.environ.get("HUYING_LETTER_PNG", "/tmp/letter-page.png"))


@pytest.fixture
def client(settings, backend_url):
    update = {"database_url": backend_url, "duplicate_threshold": 0.95}
    with TestClient(create_app(settings.model_copy(update=update)),
                    raise_server_exceptions=False) as c:
        yield c


def _seed(client, headers) -> str:
    """Six complaints on one day (a surge), two of them the same text (a repeated event), none
    replied (overdue where the duty list states a limit); the department they went to."""
    texts = [PARKING.format(k=k) for k in range(5)] + [PARKING.format(k=0)]
    r = client.post("/v1/complaints", headers=headers["intake"], json={"complaints": [
        {"id": f"p{k}", "text": t, "received_at": f"2018-04-16T0{k}:30:00+08:00",
         "location": "海口市龙华区"} for k, t in enumerate(texts)]})
    assert r.status_code == 200, r.text
    departments = [x["routing"]["department"]["label"] for x in r.json()["results"]]
    r = client.post("/v1/warnings/detect", json={"day": "2018-04-16"}, headers=headers["officer"])
    assert r.status_code == 200, r.text
    return max(set(departments), key=departments.count)


def test_a_letter_says_what_the_numbers_say_in_every_format(client, headers):
    department = _seed(client, headers)
    stats = client.get("/v1/stats", params=PERIOD, headers=headers["officer"]).json()
    [row] = [d for d in stats["departments"] if d["department"] == department]
    r = client.get(f"/v1/letters/{department}", params=PERIOD, headers=headers["officer"])
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/markdown")
    text = r.text
    assert text.startswith(f"# 关于{department}投诉办理情况的提醒函")
    assert f"贵单位共承办投诉{row['complaints']}件，已办结{row['closed']}件" in text
    assert f"超期{row['overdue']}件" in text and f"重复投诉{row['repeats']}件" in text
    assert "## 一、投诉量异常上升的问题" in text and "## 三、超过办理时限的工单" in text
    assert "金盘路" in text  # example complaints are quoted
    html = client.get(f"/v1/letters/{department}", params=PERIOD | {"format": "html"},
                      headers=headers["officer"])
    assert html.headers["content-type"].startswith("text/html") and "<h1>关于" in html.text
    pdf = client.get(f"/v1/letters/{department}", params=PERIOD | {"format": "pdf"},
                     headers=headers["officer"])
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content[:5] == b"%PDF-"
    _render_first_page(pdf.content)


def _render_first_page(content: bytes) -> None:
    """Render page 1 and check it carries ink: the CJK font drew the text."""
    import numpy as np
    import pypdfium2 as pdfium

    page = pdfium.PdfDocument(io.BytesIO(content))[0]
    picture = page.render(scale=1.5).to_pil()
    picture.save(PAGE_PNG)  # to look at
    assert "提醒函" in page.get_textpage().get_text_range()
    if letter_pdf.font_name() == "STSong-Light":
        return  # no CJK font on this machine: the reader draws the glyphs, pdfium has none
    image = np.asarray(picture.convert("L"))
    assert (image < 128).mean() > 0.01, "the first page is blank: no CJK glyphs were drawn"


def test_unknown_departments_and_empty_periods_are_clear(client, headers):
    _seed(client, headers)
    r = client.get("/v1/letters/公安局交通警察支", params=PERIOD, headers=headers["officer"])
    assert r.status_code == 422 and "did you mean '公安局交通警察支队'" in r.text, r.text
    quiet = client.get("/v1/letters/城市管理行政执法局", params={"from": "2018-01-01",
                                                      "to": "2018-01-31"},
                       headers=headers["officer"])
    assert quiet.status_code == 404 and "no complaint reported" in quiet.text
    assert client.get("/v1/letters/x", params={"format": "doc"},
                      headers=headers["officer"]).status_code == 422
    assert client.get("/v1/letters/x", headers=headers["intake"]).status_code == 403


def test_the_cli_writes_the_same_letter(client, headers, backend_url, monkeypatch, tmp_path):
    department = _seed(client, headers)
    api = client.get(f"/v1/letters/{department}", params=PERIOD, headers=headers["officer"]).text
    monkeypatch.setenv("HUYING_DATABASE_URL", backend_url)
    result = CliRunner().invoke(cli_app, ["letters", "--department", department, "--from",
                                          "2018-04-01", "--to", "2018-04-30", "--out",
                                          str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    written = (tmp_path / "out" / "letter-2018-04-01-2018-04-30.md").read_text(encoding="utf-8")
    # the same letter, but for the date it was generated on
    assert written.splitlines()[:-2] == api.splitlines()[:-2]
    assert (tmp_path / "out" / "letter-2018-04-01-2018-04-30.pdf").read_bytes()[:5] == b"%PDF-"
    swapped = CliRunner().invoke(cli_app, ["letters", "--department", department, "--from",
                                           "2018-04-30", "--to", "2018-04-01", "--out",
                                           str(tmp_path / "x")])
    assert swapped.exit_code != 0 and "swap them" in swapped.output
