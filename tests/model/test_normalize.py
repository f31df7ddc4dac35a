"""The normaliser on real Haikou 12345 tickets: leaks removed, numbers masked, idempotent."""

from __future__ import annotations

import gzip
import json
import re
import unicodedata
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from model.normalize import ID_MASK, PHONE_MASK, TICKET_MASK, normalize_text, text_hash

DATA = Path(__file__).resolve().parents[2] / "data" / "haikou12345"
CURRENT = DATA / "tickets-2018-02-to-04.jsonl.gz"
OLDER = DATA / "tickets-2017-12-to-2018-01-older-taxonomy.jsonl.gz"


def _tickets(path: Path) -> list[dict[str, str]]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


@pytest.fixture(scope="module")
def tickets() -> list[dict[str, str]]:
    """The vendored Feb–Apr 2018 tickets (7,021), read once."""
    return _tickets(CURRENT)


@pytest.fixture(scope="module")
def normalised(tickets: list[dict[str, str]]) -> list[str]:
    return [normalize_text(t["text"]) for t in tickets]


# Real tickets, verbatim from data/haikou12345/ (ticket id, raw text, expected model input).
REAL = [
    # operator prefix only
    ("20180408199687", "市民来电咨询:违章代码为1208的违章内容。", "违章代码为1208的违章内容。"),
    # instruction naming the department, then the deadline parenthetical
    ("20180330092587",
     "市民来电反映: 琼山区琼州大道城东市场路口有一电信井盖破损没有警示牌，导致其驾驶时轮胎陷入其"
     "中。"
     "其认为不合理，要求尽快联系其协商赔偿事项。请海口电信局核实处理！谢谢！"
     "（请职能局按规定在30分钟内联系市民，响应处置）",
     "琼山区琼州大道城东市场路口有一电信井盖破损没有警示牌,导致其驾驶时轮胎陷入其中。"
     "其认为不合理,要求尽快联系其协商赔偿事项。谢谢!"),
    # WeChat channel; deadline with mismatched brackets
    ("20180303773548",
     "市民微信反映: 其于2016年在龙华区金星路海信华庭小区购买房产，至今未验收通过，从2017年七月延"
     "期至此，"
     "验收通过遥遥无期，迟迟不见整改，认为不合理，故进行投诉，请住建局核实处理"
     "（请职能局按照规定在三十分钟内联系市民，响应处置。)",
     "其于2016年在龙华区金星路海信华庭小区购买房产,至今未验收通过,从2017年七月延期至此,"
     "验收通过遥遥无期,迟迟不见整改,认为不合理,故进行投诉"),
    # a department relays the ticket: prefix, quoted header, the department's reply, a repeat call
    ("20180322995008",
     "龙华市政来电反馈: 政府工单号20180322991121《关于龙华区苍峄路电力明园小区门前积水严重的问题》"
     "工单信息的问题 工单内容： 市民来电反映:龙华区苍峄路电力明园小区门前积水严重，请龙华区政府核"
     "实处理，"
     "谢谢！ 2017-11-15 10:30海口市龙华区市政维修管理中心答复：接到办件后，我中心高度重视，立即安"
     "排工作，"
     "人员赶往现场勘查，经核实，关于龙华区苍峄路电力明园小区门前积水严重的问题，目前该处已无积水，"
     "因此，此单申请办结。（工单号20171114495250） 市民再次来电反映：其表示现在排水不畅导致的积水，"
     "且该处苍峄二路为断层路，是否可以与主干道合并一起方可解决这个积水问题。请龙华区政府核实处理"
     "，谢谢！"
     "（请职能局按规定在30分钟内联系市民，响应处置）",
     "龙华区苍峄路电力明园小区门前积水严重, 其表示现在排水不畅导致的积水,且该处苍峄二路为断层路,"
     "是否可以与主干道合并一起方可解决这个积水问题。"),
    # a reply introduced by `于<date> <body>回复(<ticket>):`, with a masked mobile number in it
    ("20180425418449",
     "市民来电反映: 投诉海口市教育局举办的征文比赛活动迟迟没有评审回复，其小孩已经参加提交作品但"
     "迟迟没有"
     "收到评审回复，请教育局核实处理。 于2018-04-23 09:51:19 市教育局回复（20180419339233）：关于"
     "荣誉证书"
     "请市民联系新华书店的陈翊雯，手机：1XXXXXXXXXX 市民再次来电反映:市教育局举办好家风伴我成长的"
     "征文比赛，"
     "其已评选上，但市教育局一直没有发放奖状或证书，其联系市教育提供的联系方式，对方表示证书不是"
     "由其发放的。"
     "请市教育局核实处理。（请职能局按规定在30分钟核实处理，响应并处置）",
     "投诉海口市教育局举办的征文比赛活动迟迟没有评审回复,其小孩已经参加提交作品但迟迟没有收到评审"
     "回复, "
     "市教育局举办好家风伴我成长的征文比赛,其已评选上,但市教育局一直没有发放奖状或证书,"
     "其联系市教育提供的联系方式,对方表示证书不是由其发放的。"),
    # a reply `MM-DD <body>反馈:` and the operator's escalation `请城管部门加大执法力度!`
    ("20180107183127",
     "市民来电反映:美兰区琼山大道天鹅湾小区售楼部旁边有工地超时施工扰民，请城管核实处理，谢谢！"
     "（请职能局按规定在30分钟内联系市民，响应处置。） 01-03美兰区城管局反馈：我局执法中队灵山中"
     "队于1月3日"
     "2点14分已到达现场进行处理，经中队反馈，已责令该处工地停止施工，现场已停工（20180103135333） "
     "市民再次来电反映：该情况还是存在，请城管部门加大执法力度!",
     "美兰区琼山大道天鹅湾小区售楼部旁边有工地超时施工扰民, 该情况还是存在"),
    # a department's own report (`来电报备`)
    ("20180302766720",
     "美兰区民政局来电报备: 近期接到的大量咨询美兰区军人家属春节慰问金的发放问题，"
     "其会做一个具体说明稍后已邮箱方式发送到12345平台。",
     "近期接到的大量咨询美兰区军人家属春节慰问金的发放问题,其会做一个具体说明稍后已邮箱方式发送"
     "到12345平台。"),
    # `请<district>政府核实处理，谢谢！`; local office numbers stay (they are public, not personal)
    ("20180210571384",
     "市民来电反映: 其于2月8日开始拨打龙华区遵谭镇政府电话65480233和65483822有人接听起来就挂机，"
     "故来电投诉，请龙华区政府核实处理，谢谢！ （请职能局按规定在30分钟内联系市民，响应处置）",
     "其于2月8日开始拨打龙华区遵谭镇政府电话65480233和65483822有人接听起来就挂机,故来电投诉"),
    # a masked mobile number
    ("20180129439899",
     "市民来电反映: 其于2018年1月23日在此通过淘宝网向美兰区文明东板桥路217号海口美兰温国造食品店"
     "购买9瓶"
     "辣椒酱，花费339.8元，商家虚假宣传该产品有开胃健食助消化功效，制作辣椒酱使用盐最安全最健康的"
     "防腐方法，"
     "其认为违反广告法规定，要求赔偿500元，商家联系电话1XXXXXXXXXX，请工商部门核实处理！"
     "（请职能局按规定在30分钟内联系市民，响应处置）",
     "其于2018年1月23日在此通过淘宝网向美兰区文明东板桥路217号海口美兰温国造食品店购买9瓶辣椒酱,"
     "花费339.8元,商家虚假宣传该产品有开胃健食助消化功效,制作辣椒酱使用盐最安全最健康的防腐方法,"
     f"其认为违反广告法规定,要求赔偿500元,商家联系电话{PHONE_MASK}"),
    # a landline with area code
    ("20180225702730",
     "市民来电反映: 2月23日18点左右接到大同派出所0898-31953613其自称是史彬警官，要拘留其，"
     "请公安部门核实处理（请职能局按规定在30分钟内联系市民，响应处置）",
     f"2月23日18点左右接到大同派出所{PHONE_MASK}其自称是史彬警官,要拘留其"),
    # ID numbers
    ("20180412246068",
     "市民来电反映: 其于3月份在秀英区办证中心办理了护照（513229198112190017），其想咨询现在是否"
     "办理好了。",
     f"其于3月份在秀英区办证中心办理了护照({ID_MASK}),其想咨询现在是否办理好了。"),
    ("20180123376559",
     "市民来电咨询:其驾驶证（460021196804304419）扣分情况，请交警核实处理！"
     "（请职能局在规定30分钟内联系市民，响应处置）",
     f"其驾驶证({ID_MASK})扣分情况"),
]


@pytest.mark.parametrize(("ticket_id", "raw", "expected"), REAL, ids=[r[0] for r in REAL])
def test_real_ticket(ticket_id: str, raw: str, expected: str) -> None:
    assert normalize_text(raw) == expected


def test_real_examples_are_verbatim(tickets: list[dict[str, str]]) -> None:
    by_id = {t["ticket_id"]: t["text"] for t in tickets + _tickets(OLDER)}
    for ticket_id, raw, _ in REAL:
        assert by_id[ticket_id] == raw, ticket_id


# Departments as the operators' instructions name them (`请<alias>核实处理`).
ALIASES = [
    "交警", "交警部门", "市交警", "城管", "城管部门", "城管局", "市城管", "住建局", "市住建局",
    "公安局", "市公安局", "公安部门", "职能局", "区政府", "美兰区政府", "龙华区政府", "琼山区政府",
    "秀英区政府", "交通局", "工商局", "工商部门", "公交集团", "供电局", "国土局", "教育局",
    "市教育局", "社保局", "卫生局", "电信局", "海口电信局", "质监局", "威立雅", "开源水务",
    "美兰机场", "桂林洋开发区",
]
CITIZEN = "海甸岛和平大道有一辆电动车停在人行道上，影响行人通行。"
INSTRUCTIONS = [
    "请{}核实处理！（请职能局按规定在30分钟内联系市民，响应处置）",
    "请{}核实处理，谢谢！（请职能局按规定在30分钟内核实处理，响应处置）",
    "请{}核实处理。",
    "请{}给予核实处理!",
    "请{}核实处理（30分钟办件）",
]


@pytest.mark.parametrize("template", INSTRUCTIONS)
@pytest.mark.parametrize("alias", ALIASES)
def test_instruction_loses_its_department(alias: str, template: str) -> None:
    out = normalize_text("市民来电反映: " + CITIZEN + template.format(alias))
    assert out == normalize_text(CITIZEN)
    assert alias not in out


_ANY_INSTRUCTION = re.compile(r"请[^,。!?;()]{0,30}?核实处理")


def test_no_instruction_survives_in_real_tickets(normalised: list[str]) -> None:
    survivors = [t for t in normalised if _ANY_INSTRUCTION.search(t)]
    assert not survivors, survivors[:5]
    for alias in ALIASES:
        assert not any(f"请{alias}核实处理" in t for t in normalised), alias


# A ticket that ends with its instruction: `…请<X>核实处理！(请职能局…)`.
_FINAL_INSTRUCTION = re.compile(
    r"请(?P<dept>[^,。!?;()\s]{1,20}?)核实处理[^()]{0,8}(?:\([^()]*\))?[。!]?\s*$"
)


def test_instruction_department_never_survives(tickets: list[dict[str, str]],
                                               normalised: list[str]) -> None:
    """The department an instruction names appears in the model input only if the citizen's
    own words before the instruction name it too."""
    checked, leaks = 0, []
    for ticket, out in zip(tickets, normalised, strict=True):
        raw = unicodedata.normalize("NFKC", ticket["text"])
        m = _FINAL_INSTRUCTION.search(raw)
        if not m or m["dept"].startswith("职能局"):
            continue
        checked += 1
        if m["dept"] in out and m["dept"] not in normalize_text(raw[: m.start()]):
            leaks.append((ticket["ticket_id"], m["dept"], out))
    assert checked > 4000
    assert not leaks, leaks[:5]


def test_no_operator_parts_survive_in_real_tickets(normalised: list[str]) -> None:
    markers = ("职能局按", "工单内容", "分钟内联系市民", "市民来电反映:", "市民再次来电反映:",
               "来电反馈:")
    for marker in markers:
        hits = [t for t in normalised if marker in t]
        assert not hits, (marker, hits[:3])


def test_real_mobile_number_is_masked() -> None:
    raw = "市民来电反映: 其手机号13876543210被停机，请移动公司核实处理！"
    assert normalize_text(raw) == f"其手机号{PHONE_MASK}被停机"
    assert normalize_text("电话:13876543210;身份证:46002119680430441X") == (
        f"电话:{PHONE_MASK};身份证:{ID_MASK}")


def test_longer_digit_runs_are_not_phone_numbers() -> None:
    assert normalize_text("订单号138765432109") == "订单号138765432109"


def test_ticket_numbers_are_masked() -> None:
    out = normalize_text("要求解锁办件号20180114271782的问题")
    assert out == f"要求解锁办件号{TICKET_MASK}的问题"


def test_full_width_forms_are_folded() -> None:
    assert normalize_text("ＡＢＣ１２３") == "ABC123"
    assert normalize_text("车牌号：琼Ａ１２３４５，请问！") == "车牌号:琼A12345,请问!"


def test_whitespace_is_collapsed() -> None:
    assert normalize_text("  小区\t门口\n\n  路灯　坏了 \r\n") == "小区 门口 路灯 坏了"


def test_empty_and_blank_input() -> None:
    assert normalize_text("") == ""
    assert normalize_text(" \n\t　") == ""
    assert normalize_text("市民来电反映: ") == ""


def test_text_hash_ignores_what_the_normaliser_removes() -> None:
    a = ("市民来电反映: 小区门口路灯坏了。请城管核实处理！"
         "（请职能局按规定在30分钟内联系市民，响应处置）")
    b = "市民微信反映：小区门口路灯坏了。请住建局核实处理，谢谢！"
    assert text_hash(a) == text_hash(b) == text_hash("小区门口路灯坏了。")
    assert text_hash(a) != text_hash("小区门口路灯没坏。")


def test_idempotent_on_every_real_text(normalised: list[str]) -> None:
    changed = [t for t in normalised if normalize_text(t) != t]
    assert not changed, changed[:3]


# Pieces that the normaliser's patterns look for, to be mixed with random text.
FRAGMENTS = [
    "市民来电反映:", "市民来电反映：", "交警来电反馈:", "市民微信反映：", "市民再次来电反映：",
    "来电报备:", "请交警核实处理！", "请美兰区政府核实处理，谢谢！",
    "（请职能局按规定在30分钟内联系市民，响应处置）", "请职能局按规定在30分钟内联系市民，响应处置",
    "（30分钟办件）", "核实处理", "答复：", "反馈:", "回复", "2017-11-15 10:30", "于12-28 10:07",
    "海口市龙华区市政维修管理中心答复：", "（工单号20171114495250）", "政府工单号20180322991121",
    "《关于", "的问题》", "工单内容：", "工单", "希望职能局加大力度查处，谢谢！", "1XXXXXXXXXX",
    "13876543210", "0898-31953613", "513229198112190017", "20180114271782", "<电话>", "<证件号>",
    "<工单号>", "已告知市民，", "市民再次", "请", "谢谢", "(", ")", "（", "）",
]
_ALPHABET = st.one_of(
    st.characters(min_codepoint=0x4E00, max_codepoint=0x4FFF),  # CJK
    st.characters(min_codepoint=0x20, max_codepoint=0x7E),  # printable ASCII
    st.sampled_from(list("，。：；！？（）《》、“”　１２３ＡＢＣ\t\n")),  # full-width and blanks
)
TEXTS = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(_ALPHABET, max_size=12)),
                 max_size=14).map("".join)


@settings(max_examples=300, deadline=None)
@given(TEXTS)
@example("市民来电反映: 请交警核实处理！ 市民来电反映: ")
@example("（（请职能局按规定在30分钟内联系市民，响应处置））")
def test_idempotent_on_random_text(text: str) -> None:
    once = normalize_text(text)
    assert normalize_text(once) == once


@pytest.mark.parametrize("wrapped", [
    "市民来电反映：龙华区金盘路某小区门口垃圾堆放多日无人清运，气味很大。请环卫局核实处理，谢谢！",
    "市民来电反映:龙华区金盘路某小区门口垃圾堆放多日无人清运,气味很大!!请环卫局核实处理。",
    "龙华区金盘路某小区门口垃圾堆放多日无人清运 气味很大……",
])
def test_wrapping_and_punctuation_alone_do_not_change_the_hash(wrapped) -> None:
    plain = "龙华区金盘路某小区门口垃圾堆放多日无人清运，气味很大"
    assert text_hash(wrapped) == text_hash(plain)
    assert text_hash(plain) != text_hash("龙华区金盘路某小区门口垃圾堆放多日无人清运，气味不大")
