"""The one text normaliser: turns intake text into model input. Training and serving both call it.

It removes what a citizen did not write and what leaks the answer: operator prefixes
(`市民来电反映:`), routing instructions (`请交警核实处理!(请职能局按规定在30分钟内联系市民,响应处置)`),
quoted earlier tickets and the departments' replies to them. It masks phone and ID numbers and
folds full-width forms (NFKC) and whitespace. It is idempotent: normalising twice changes nothing.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

PHONE_MASK = "<电话>"
ID_MASK = "<证件号>"
TICKET_MASK = "<工单号>"

_CHANNEL_VERB = r"(?:反映|咨询|建议|撤销|补充|表扬|反馈|投诉|求助|举报|来电|来信|留言)"
# `市民来电反映:`, `交警来电反馈:`, `市民再次微信反映:` — who relayed it, through which channel. The
# relaying party (`交警`, `开源水务`) names the department, so the whole prefix goes.
_PREFIX = re.compile(r"(?:^|(?<=[\s。!?;]))[^\s,。!?;:]{0,14}?" + _CHANNEL_VERB + r"\s*:\s*")
# Header of a quoted earlier ticket: `政府工单号2018…《…》工单信息的问题 工单内容:`.
_QUOTED_HEADER = re.compile(r"[^\s。!?;]{0,12}工单号?\s*\d{8,20}.{0,80}?工单内容\s*:\s*")
# A department's reply to an earlier ticket, up to its closing ticket reference or the citizen's
# next call. The replying body (`海口市龙华区市政维修管理中心答复:`) names the department.
_REPLY = re.compile(
    r"(?:\d{4}-\d{1,2}-\d{1,2}[\d:\s]*[^\s,。!?;:()]{2,40}?:"
    r"|[^\s,。!?;:()]{0,40}?(?:答复|回复|办理结果|处理结果)\s*:)"
    r".*?(?:\((?:(?:工单|办件|撤销件)(?:编)?号\s*:?\s*)?\d{6,20}\)|(?=市民再次)|$)"
)
# Routing instruction: `请交警核实处理!`, `请美兰区政府核实处理,谢谢!`, `请职能局给予核实回复。`
_INSTRUCTION = re.compile(
    r"请[^,。!?;()]{0,30}?(?:(?:给予|及时|尽快|进行|并)?"
    r"(?:核实|核查|调查|处理|回复|答复|跟进|协调|查处|落实|处置|情况)){1,4}"
    r"\s*(?:[,]?\s*谢谢)?[。!?;]*"
)
# The same instruction without `请`: `…,交通警察支队核实处理!`, `希望交警部门给予核实处理!`.
_INSTRUCTION_CLAUSE = re.compile(r"(?:^|(?<=[,。!?;\s]))[^,。!?;\s]{0,20}?核实处理[。!]*")
# Time-limit parentheticals: `(请职能局按规定在30分钟内联系市民,响应处置)`, `(30分钟办件)`.
_DEADLINE = re.compile(r"\([^()]*?(?:分钟|小时|工作日|响应处置|职能局)[^()]*\)[。!]?")
_BARE_DEADLINE = re.compile(r"请?职能局[^。!?()]*?(?:响应|处置)[^。!?()]*[。!]?")
_PHONE = re.compile(r"(?<![\dX])(?:1[3-9]\d{9}|1X{10}|0\d{2,3}-?\d{7,8})(?![\dX])")
_ID_NUMBER = re.compile(r"(?<![\dXx])\d{17}[\dXx](?![\dXx])")
_TICKET = re.compile(r"(?<!\d)20\d{12}(?!\d)")
_SPACES = re.compile(r"\s+")
_EMPTY_BRACKETS = re.compile(r"\(\s*\)|《\s*》")
_STRAY_PUNCT = re.compile(r"^[\s,。!?;:、]+|(?<=[,。!?;])[,。!?;]+")


def _one_pass(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    text = "".join(ch for ch in text if unicodedata.category(ch)[0] != "C" or ch in "\t\n\r ")
    text = _SPACES.sub(" ", text)
    text = _QUOTED_HEADER.sub("", text)
    text = _REPLY.sub(" ", text)
    text = _DEADLINE.sub("", text)
    text = _BARE_DEADLINE.sub("", text)
    text = _INSTRUCTION.sub("", text)
    text = _INSTRUCTION_CLAUSE.sub("", text)
    text = _PREFIX.sub("", text)
    text = _ID_NUMBER.sub(ID_MASK, text)
    text = _TICKET.sub(TICKET_MASK, text)
    text = _PHONE.sub(PHONE_MASK, text)
    text = _EMPTY_BRACKETS.sub("", text)
    text = _SPACES.sub(" ", text).strip()
    return _STRAY_PUNCT.sub("", text).strip()


def normalize_text(text: str) -> str:
    """Return the model input for one complaint text (idempotent)."""
    # Removing one layer can expose another (a prefix after a removed reply); repeat to a fixpoint.
    for _ in range(8):
        cleaned = _one_pass(text)
        if cleaned == text:
            break
        text = cleaned
    return text


def text_hash(text: str) -> str:
    """Hash of the normalised text: identical complaints share it (dedupe, exact repeats)."""
    return hashlib.sha256(normalize_text(text).encode("utf-8")).hexdigest()[:32]
