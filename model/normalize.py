"""The one text normaliser: turns intake text into model input. Training and serving both call it.

It removes what a citizen did not write and what leaks the answer: operator prefixes
(`市民来电反映:`), routing instructions (`请交警核实处理!`), deadlines
(`(请职能局按规定在30分钟内联系市民,响应处置)`), quoted earlier tickets and the departments'
replies to them. It masks phone and ID numbers and folds full-width forms (NFKC) and whitespace.
It is idempotent: normalising twice changes nothing.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

PHONE_MASK = "<电话>"
ID_MASK = "<证件号>"
TICKET_MASK = "<工单号>"

_CHANNEL_VERB = (r"(?:反映|咨询|建议|撤销|补充|表扬|反馈|投诉|求助|举报|来电|来信|留言"
                 r"|报备|来电(?:要求|感谢|更正|退单))")
# `市民来电反映:`, `交警来电反馈:`, `市民再次微信反映:` — who relayed it, through which channel. The
# relaying party (`交警`, `开源水务`) names the department, so the whole prefix goes. It may follow
# a comma or colon once an instruction before it is gone (`…其认为不合理,市民再次来电反映:`);
# a citizen's (`市民再次来电反映:`) may follow anything.
_PREFIX = re.compile(r"(?:(?:^|(?<=[\s,:。!?;)]))[^\s,。!?;:]{0,14}?" + _CHANNEL_VERB
                     + r"|市民(?:再次)?(?:来电|微信|短信|网站)?(?:反映|咨询|投诉|补充|反馈)"
                     r")\s*:\s*")
# Header of a quoted earlier ticket, up to its content: `政府工单号2018…《…》工单信息 工单内容:`,
# `(工单编号:2018…)《…》处理结果 工单内容:`, `单号2018…《…》 工单内容`.
_QUOTED_HEADER = re.compile(
    r"(?:^|(?<=[\s:,(]))(?=(?:(?!\)\))[^。!?;\s]){0,36}?(?:工单|单号|《))[^!?]{0,200}?(?:工单内容\s*[:。]?\s*)+"
)
# A department's reply to an earlier ticket, up to its closing ticket reference or the citizen's
# next call. The replying body (`海口市龙华区市政维修管理中心答复:`) names the department.
_NAME = r"[^\s,。!?;:()]"  # one character of a name: no space, punctuation or bracket
_BODY = r"(?:局|政府|支队|大队|中心|办|所|公司|委员会|指挥部|集团)"  # how a body's name ends
_AFTER_DEADLINE = r"(?:(?<=[置件]\))|(?<=[置件]\)\s)|(?<=[置件][。!]\))|(?<=[置件][。!]\)\s))"
_REPLY_START = "|".join([
    # `2018-01-16 10:43市公安局交通警察支队:`, `已告知市民,2018-02-27 19:46美兰区城管局回复:`,
    # `市公安局2018-04-11 10:44:28的处理意见:`, `2017-11-17 市公安局交通警察支队 经我支队…`
    r"(?:已告知市民,\s*)?" + _NAME + r"{0,20}?\d{2,4}-\d{1,2}-\d{1,2}[\d:\s]*"
    r"(?:" + _NAME + r"{2,40}?:|" + _NAME + r"{2,40}?" + _BODY + r"\s)",
    # `美兰区灵山镇人民政府于12-28 10:07反馈:`, `秀英区商务局01-26 20:42反馈:`,
    # `01-26 15:37:00龙华区环保:`
    _NAME + r"{0,40}?于?(?<!\d)\d{1,2}-\d{1,2}(?:[\d:\s]*(?:反馈|答复|回复)"
    r"|\s+\d{1,2}:\d{2}(?::\d{2})?\s*" + _NAME + r"{2,40}?)\s*:",
    # `海口市龙华区市政维修管理中心答复:`, `-01-17美兰区城管局反馈:`; not the prefix `交警来电反馈:`
    _NAME + r"{0,40}?(?:答复|回复|(?<!来电)(?<!微信)反馈|回报|处理意见|办理结果|处理结果)\s*:",
    # `…响应处置) 海南民生燃气股份有限公司:` — right after a deadline, a body's name and a colon
    _AFTER_DEADLINE + _NAME + r"{2,40}?" + _BODY + r"\s*:",
])
# A reply ends at the ticket reference closing it (`(工单号2017…)` then a space, the end or the
# citizen), or where the citizen speaks again (`市民再次来电反映:`); a reference inside it does not.
_REPLY_END = "|".join([
    r"\((?:(?:政府)?(?:工单|办件|撤销件)(?:编)?号\s*:?\s*)?\d{6,20}\)[。.]?(?=\s|$|市民)",
    r"(?=市民再次\S{0,6}?(?:反映|来电|咨询|投诉|反馈|补充|微信|致电|留言)\S{0,4}?[:,])",
    r"(?=市民(?:来电|微信|短信|网站)(?:反映|补充|咨询|投诉)\s*:)",
    r"$",
])
_REPLY = re.compile(r"(?:^|(?<=[\s,。!?;:()]))(?:" + _REPLY_START + r").*?(?:" + _REPLY_END + ")")
# Routing instruction: `请交警核实处理!`, `请美兰区政府核实处理,谢谢!`, `请职能局给予核实回复。`
_INSTRUCTION = re.compile(
    r"请[^,。!?;()]{0,30}?(?:(?:给予|及时|尽快|进行|并)?"
    r"(?:核实|核查|调查|处理|回复|答复|跟进|协调|查处|落实|处置|情况)){1,4}"
    r"\s*(?:[,]?\s*谢谢)?[。!?;]*"
)
# The same instruction without `请`: `…,交通警察支队核实处理!`, `希望交警部门给予核实处理!`.
_INSTRUCTION_CLAUSE = re.compile(r"(?:^|(?<=[,。!?;\s]))[^,。!?;\s]{0,20}?核实处理[。!]*")
# The operator's escalation on a repeat call: `…并未得到整改,希望美兰区政府加大力度查处,谢谢!`,
# `请城管部门加大执法力度!`
_ESCALATION = re.compile(r"(?:希望|请)[^,。!?;()]{0,20}?加大(?:执法)?力度(?:查处|处理)?"
                         r"[,]?(?:谢谢)?[。!]*")
# Time-limit parentheticals: `(请职能局按规定在30分钟内联系市民,响应处置)`, `(30分钟办件)`, and
# one cut short by the end of a truncated text.
_DEADLINE = re.compile(r"\([^()]{0,30}?(?:分钟|小时|工作日|响应处置|职能局)"
                       r"(?:[^()]*\)[。!]?|[^()]{0,20}$)")
_BARE_DEADLINE = re.compile(r"(?:请?职能局|请[^,。!?()]{0,12}?在[^,。!?()]{0,6}分钟内联系市民)"
                            r"[^。!?()]*?(?:响应|处置)[^。!?()]*[。!]?")
_PHONE = re.compile(r"(?<![\dX])(?:1[3-9]\d{9}|1X{10}|0\d{2,3}-?\d{7,8})(?![\dX])")
_ID_NUMBER = re.compile(r"(?<![\dXx])\d{17}[\dXx](?![\dXx])")
_TICKET = re.compile(r"(?<!\d)20\d{12}(?!\d)")
_SPACES = re.compile(r"\s+")
_EMPTY_BRACKETS = re.compile(r"\(\s*\)|《\s*》")
# Punctuation left dangling where a part was removed: `其认为不合理,` (an instruction followed).
_STRAY_PUNCT = re.compile(r"^[\s,。!?;:、]+|(?<=[,。!?;])\s?[,。!?;]+|[\s,;:、]+$")


def _one_pass(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    if not text.isprintable():  # cheap test first: most texts have no control or format character
        text = "".join(ch for ch in text if unicodedata.category(ch)[0] != "C" or ch in "\t\n\r ")
    text = _SPACES.sub(" ", text)
    text = _QUOTED_HEADER.sub("", text)
    text = _REPLY.sub(" ", text)
    text = _DEADLINE.sub("", text)
    text = _BARE_DEADLINE.sub("", text)
    text = _INSTRUCTION.sub("", text)
    text = _INSTRUCTION_CLAUSE.sub("", text)
    text = _ESCALATION.sub("", text)
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
    """Hash of the normalised text without punctuation, symbols or spaces: complaints that differ
    only in operator wrapping and punctuation share it (dedupe, exact repeats). The same
    garbage complaint with and without `市民来电反映:…请环卫局核实处理,谢谢!` kept a `。` and
    hashed apart before punctuation was folded."""
    folded = "".join(ch for ch in normalize_text(text)
                     if unicodedata.category(ch)[0] not in "PSZ")
    return hashlib.sha256(folded.encode("utf-8")).hexdigest()[:32]
