"""A reminder letter as PDF (reportlab: pure Python, no system libraries), in Chinese.

The font: HUYING_PDF_FONT (a .ttf/.ttc/.otf file), else the first CJK font found in the usual
places (WenQuanYi, Noto CJK, PingFang, Microsoft YaHei, SimHei), embedded (subset) so the PDF
reads the same everywhere; without one, reportlab's built-in STSong-Light, which a PDF reader
supplies itself (Acrobat, pdf.js and poppler do).
"""

from __future__ import annotations

import io
import os
from functools import lru_cache
from pathlib import Path
from xml.sax.saxutils import escape

from serving.letters import Letter

FONT_FILES = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/System/Library/Fonts/PingFang.ttc",
    "/System/Library/Fonts/STHeiti Light.ttc",
    "C:/Windows/Fonts/msyh.ttc",
    "C:/Windows/Fonts/simhei.ttf",
)


@lru_cache(maxsize=1)
def font_name() -> str:
    """Register the CJK font and return its name."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfbase.ttfonts import TTFont

    wanted = os.environ.get("HUYING_PDF_FONT")
    for path in ([wanted] if wanted else []) + list(FONT_FILES):
        if Path(path).is_file():
            pdfmetrics.registerFont(TTFont("HuyingCJK", path, subfontIndex=0))
            return "HuyingCJK"
    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    return "STSong-Light"


def render(letter: Letter) -> bytes:
    from reportlab.lib.enums import TA_CENTER, TA_RIGHT
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer

    font = font_name()
    body = ParagraphStyle("body", fontName=font, fontSize=11, leading=19, wordWrap="CJK",
                          firstLineIndent=22)
    plain = ParagraphStyle("plain", parent=body, firstLineIndent=0)
    item = ParagraphStyle("item", parent=body, firstLineIndent=0, leftIndent=16, spaceAfter=3)
    title = ParagraphStyle("title", parent=body, fontSize=16, leading=26, alignment=TA_CENTER,
                           firstLineIndent=0, spaceAfter=12)
    heading = ParagraphStyle("heading", parent=body, fontSize=12.5, leading=22, spaceBefore=8,
                             firstLineIndent=0)
    sign = ParagraphStyle("sign", parent=plain, alignment=TA_RIGHT, spaceBefore=16)
    story = [Paragraph(escape(letter.title), title), Paragraph(escape(f"{letter.department}："), plain),
             Spacer(1, 4), Paragraph(escape(letter.opening), body)]
    for s in letter.sections:
        story.append(Paragraph(escape(s.title), heading))
        story += ([Paragraph(escape(f"{n}. {i}"), item) for n, i in enumerate(s.items, 1)]
                  or [Paragraph(escape(s.empty), item)])
    story += [Spacer(1, 8), Paragraph(escape(letter.closing), body),
              Paragraph(escape(f"呼应 · 12345 热线平台（{letter.generated:%Y年%m月%d日}自动生成）"),
                        sign)]
    out = io.BytesIO()
    SimpleDocTemplate(out, pagesize=A4, leftMargin=22 * mm, rightMargin=22 * mm,
                      topMargin=20 * mm, bottomMargin=20 * mm, title=letter.title,
                      author="Huying 呼应").build(story)
    return out.getvalue()
