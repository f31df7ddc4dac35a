"""Reply quality by the Teddy Cup 2020 (problem C, task 3) criteria: relevance, completeness,
interpretability and timeliness of an official reply to a citizen's message, as deterministic
text measures (no model), so a suggested reply can be shown with its scores.

    q = assess(message, reply, message_time=t0, reply_time=t1)
    q.relevance, q.completeness, q.interpretability, q.timeliness_days, q.to_dict()

- **relevance** (0–1): how much of the message's content the reply addresses, as the cosine of
  the two texts' *content* character bigrams (runs of Chinese, letters and digits; bigrams with a
  function character such as 的/了/是 dropped), counted. Measured on the 2,799 Teddy messages with
  replies (`benchmarks/reply_suggestions.py --quality-only --variants`): the ROC-AUC of matching
  pairs against shuffled ones (each message with another message's reply) was 0.925 for this
  variant, 0.921 for the plain bigram cosine, 0.910 for bigram Jaccard, 0.900 for an
  IDF-weighted share of the message's bigrams found in the reply and 0.869 for that share
  unweighted, so the "share of the message addressed" measures separate worst; against harder
  negatives (the reply of the message with the most similar title) 0.788, 0.784, 0.800, 0.777
  and 0.746 (Jaccard a little ahead there). Matching pairs score a median 0.227, shuffled ones
  0.024: read 0.1 and up as "addresses this message", below 0.05 as "about something else".
- **completeness** (0–1): the share of four parts present: a greeting (您好, 网友…), the
  answer or handling (findings, actions or the rule that answers it: 经调查, 已安排, 根据…,
  可以…; a sentence — up to 。!?; or a colon — that says the message was received or forwarded
  does not count), a closing
  or contact (感谢, 如有疑问, 联系电话…) and a substantive length (SUBSTANTIVE_CHARS characters:
  the 11% of Teddy replies under 60 characters are mostly "已收悉" / "已转…" notices).
- **interpretability** (0–1): the share of three kinds of explanation: a rule cited (a document
  in 《…》 whose title ends like a law, regulation or policy — 法, 条例, 办法, 意见, 通知 … — or an
  article 第…条), a basis phrase (根据/依据/按照 … 规定/文件/政策), a reason (因为, 由于, 因此 …).
  `citations` lists the documents and articles found. 《问政西地省》 (the message board) and
  certificates (《出生医学证明》) are not rules.
- **timeliness_days**: days from the message to the reply, when both times are known.

`replying_organisation` names the organisation a reply says handled it (signature, "X高度重视",
"经X调查"), or None.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

__all__ = ["FUNCTION_CHARS", "SUBSTANTIVE_CHARS", "ReplyQuality", "assess", "bigram_cosine",
           "content_bigrams", "relevance", "replying_organisation", "timeliness_days"]

# Characters that carry grammar, not content: a bigram with one says nothing about the topic.
FUNCTION_CHARS = frozenset("的了是在和有我你他她它们这那就也都而及与或等把被对于为从到以之其个")
SUBSTANTIVE_CHARS = 100
_RUN = re.compile(r"[\u4e00-\u9fffA-Za-z0-9]+")

_GREETING = re.compile(r"您好|你好|尊敬的|网友|市民|同志|先生|女士")
_RECEIVED_OR_FORWARDED = re.compile(
    r"收悉|已收到|获悉|知悉|已转|转交|转至|交由|转[^。!?]{0,24}?(?:核处|办复|处理|办理|调查)")
_HANDLING = re.compile(
    r"经(?:过)?[^。!?]{0,16}?(?:调查|核实|核查|查|了解|研究|现场|勘察|排查|检测|协调|会议)"
    r"|据查|已(?:经)?(?:安排|责令|督促|要求|组织|联系|处理|整改|完成|落实|修复|维修|清理|拆除"
    r"|查处|处罚|立案|启动|制定|纳入|恢复|协调|更换|解决|下发|约谈)"
    r"|(?:将|会)(?:加大|加强|继续|进一步|尽快|督促|安排|组织|及时|依法)"
    r"|(?:根据|依据|按照|依照)|规定|决定|督促|(?:可以|需要|应当|须)|可(?:通过|在|到|向|凭|持|申请)"
    r"|应属|属于|不能|不得|暂不|目前|正在|计划|预计|符合|不符合")
_CLOSING = re.compile(r"感谢|谢谢|特此(?:回复|答复|函复|说明)|电话|联系方式|如有(?:疑问|问题|需要)"
                      r"|如需|详询|致电|拨打|欢迎|理解|支持|监督|祝")
_SENTENCE = re.compile(r"[^。!?！？;；:]+")

# A rule's title ends like a law, regulation, policy or official document.
_DOCUMENT = re.compile(r"《([^《》]{2,60})》")
_RULE_TITLE = re.compile(r"(?:法|条例|规定|办法|意见|通知|细则|规范|标准|规划|方案|决定|纲要|制度"
                         r"|政策|规则|解释|章程|准则|指引|指南|批复|公告|通告|令|目录|规程|守则)"
                         r"(?:\s*[(（][^)）]*[)）])?$")
_ARTICLE = re.compile(r"第[一二三四五六七八九十百零〇两\d]+条(?:第[一二三四五六七八九十\d]+款)?")
_BASIS = re.compile(r"(?:根据|依据|按照|依照|遵照|参照)[^。!?;]{0,40}?"
                    r"(?:规定|要求|文件|精神|政策|条例|办法|法|标准|意见|通知|细则|规划)")
_REASON = re.compile(r"因为|由于|因此|所以|鉴于|原因|为此|之所以|因(?=无|未|该|其|近|受|天|涉|属|不)")

# Organisation names: a place (A市, A3区, 西地省, or 市/区/县 at a word start) then up to 16
# characters, ending in a body's suffix.
_NAME = (r"(?:西地省|[A-Z]\d*(?:市|区|县)|(?:(?<![\u4e00-\u9fff])|(?<=[我经转由至向请据及和与交]))"
         r"[省市区县](?!民|委书记|长|领导|域|别|间))(?:[A-Z]\d*(?:市|区|县))?[\u4e00-\u9fff]{0,16}?"
         r"(?:局|厅|街道办事处|街道|办事处|委员会|人民政府|政府|管委会|办公室|办|中心|支队|大队"
         r"|派出所)(?![长员])")
_ACTS = (r"(?=[、,\s]{0,2}(?:\S{0,12}(?:街道|局|办))?[\s,]?(?:高度重视|非常重视|十分重视|立即"
         r"|及时|迅速|认真|已收悉|收悉|收到|接到|对此|针对|就此|现将|现就|现回复|回复如下|答复如下"
         r"|调查|核实|组织|派|安排|对您|经|办复|核处|处理|回复|答复))")
_ORGANISATION = (
    re.compile(r"(" + _NAME + r")[\s,。]*(?:\d{4}年\d{1,2}月\d{1,2}日)?[\s。]*$"),  # signature
    re.compile(r"(" + _NAME + r")" + _ACTS),  # "A3区洋湖街道高度重视", "已转市人社局调查处理"
    re.compile(r"经(?:过)?(" + _NAME + r")[^。]{0,12}?(?:调查|核实|了解|核查|研究|现场|查)"),
)
_NOT_A_NAME = re.compile(r"[的了是在对向为将已请问题]")


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text or "")


def content_bigrams(text: str) -> list[str]:
    """The character bigrams of each run of Chinese, letters and digits, without those holding
    a function character (FUNCTION_CHARS)."""
    out = []
    for run in _RUN.findall(_fold(text)):
        out += [run[i:i + 2] for i in range(len(run) - 1)
                if run[i] not in FUNCTION_CHARS and run[i + 1] not in FUNCTION_CHARS]
    return out


def bigram_cosine(a: Iterable[str], b: Iterable[str]) -> float:
    """Cosine of two bags of bigrams, counted."""
    ca, cb = Counter(a), Counter(b)
    norm = math.sqrt(sum(v * v for v in ca.values()) * sum(v * v for v in cb.values()))
    return sum(v * cb[k] for k, v in ca.items()) / norm if norm else 0.0


def relevance(message: str, reply: str) -> float:
    """How much of the message the reply addresses: the cosine of their content bigrams."""
    return bigram_cosine(content_bigrams(message), content_bigrams(reply))


def timeliness_days(message_time: datetime | None, reply_time: datetime | None) -> float | None:
    """Days from the message to the reply; None unless both are known (and comparable: both
    with a time zone or both without)."""
    if message_time is None or reply_time is None:
        return None
    if (message_time.utcoffset() is None) != (reply_time.utcoffset() is None):
        return None
    return (reply_time - message_time).total_seconds() / 86400


@dataclass(frozen=True)
class ReplyQuality:
    """The four criteria, and the parts completeness and interpretability are made of."""

    relevance: float
    completeness: float
    interpretability: float
    timeliness_days: float | None
    greeting: bool
    handling: bool
    closing: bool
    length: int
    citations: tuple[str, ...]
    basis: bool
    reason: bool

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["citations"] = list(self.citations)
        for k in ("relevance", "completeness", "interpretability"):
            out[k] = round(out[k], 4)
        if self.timeliness_days is not None:
            out["timeliness_days"] = round(self.timeliness_days, 2)
        return out


def assess(message: str, reply: str, *, message_time: datetime | None = None,
           reply_time: datetime | None = None) -> ReplyQuality:
    """The quality of `reply` as an answer to `message` (texts as written; NFKC-folded here)."""
    reply = _fold(reply).strip()
    greeting = bool(_GREETING.search(reply[:60]))
    # a sentence saying only that it was received or passed on is no answer
    handling = any(_HANDLING.search(s) for s in _SENTENCE.findall(reply)
                   if not _RECEIVED_OR_FORWARDED.search(s))
    closing = bool(_CLOSING.search(reply))
    length = len(reply)
    documents = [d for d in _DOCUMENT.findall(reply) if _RULE_TITLE.search(d.strip())]
    citations = tuple(dict.fromkeys([f"《{d}》" for d in documents] + _ARTICLE.findall(reply)))
    basis, reason = bool(_BASIS.search(reply)), bool(_REASON.search(reply))
    return ReplyQuality(
        relevance=relevance(message, reply),
        completeness=(greeting + handling + closing + (length >= SUBSTANTIVE_CHARS)) / 4,
        interpretability=(bool(citations) + basis + reason) / 3,
        timeliness_days=timeliness_days(message_time, reply_time),
        greeting=greeting, handling=handling, closing=closing, length=length,
        citations=citations, basis=basis, reason=reason)


def replying_organisation(reply: str) -> str | None:
    """The organisation the reply says handled the message: the one signing it, else one that
    acts in it ("…街道高度重视", "已转市人社局调查处理"), else one that investigated ("经…局核实");
    None when it names none (most say only 我局 or 我们)."""
    text = _fold(reply).strip()
    for pattern in _ORGANISATION:
        for match in pattern.finditer(text):
            name = match.group(1)
            if not _NOT_A_NAME.search(name):
                return name
    return None
