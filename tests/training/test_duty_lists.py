"""Time limits mined from the operators' instructions in raw Haikou tickets."""

from __future__ import annotations

import pytest

from model.taxonomy import DutyEntry, Taxonomy
from training.duty_lists import (
    MIN_STATED,
    chinese_number,
    mine_time_limits,
    stated_time_limits,
    with_time_limits,
)


@pytest.mark.parametrize(("text", "number"), [("30", 30), ("三十", 30), ("十五", 15), ("两", 2),
                                              ("十", 10), ("一百二十", 120), ("五", 5)])
def test_chinese_numbers(text, number):
    assert chinese_number(text) == number


@pytest.mark.parametrize(("text", "limits"), [
    ("市民来电反映:积水严重，请龙华区政府核实处理，谢谢！（请职能局按规定在30分钟内联系市民，响应处置）",
     ["30min"]),
    ("（请职能局按照规定在三十分钟内联系市民，响应处置。）", ["30min"]),
    ("请住建局在5个工作日内办结。", ["5wd"]),
    ("请城管部门在2小时内核实处理。（请职能局按规定在30分钟内联系市民）", ["2h", "30min"]),
    # a department's reply states its own promise, not the operator's rule
    ("答复：经核实，已责令其在3日内自拆。", []),
    ("我局将在60个工作日内完成查处", []),
    ("（请职能局按照规定30分钟响应处置！）", ["30min"]),
    ("（请职能局30分钟内联系市民，响应处置）", ["30min"]),
    ("（请职能局按规定在30分钟，响应处置）", ["30min"]),
    ("3月26日请了一天假，上周请了一天假", []),
    ("社会保险经办机构应当自收到申请之日起十五日内予以审核", []),
])
def test_stated_time_limits_come_from_the_operators_instruction_only(text, limits):
    assert stated_time_limits(text) == limits


def test_an_entry_gets_a_limit_only_when_enough_of_its_tickets_state_it():
    rule = "（请职能局按规定在30分钟内联系市民，响应处置）"
    rows = ([{"cat2": "市容环境", "cat3": "商业噪音", "dept": "城管局", "text": "噪音" + rule}]
            * MIN_STATED
            + [{"cat2": "市容环境", "cat3": "商业噪音", "dept": "城管局", "text": "噪音"}]
            + [{"cat2": "市容环境", "cat3": "商业噪音", "dept": "公安局", "text": "噪音" + rule}]
            + [{"cat2": "住房保障", "cat3": "公积金", "dept": "公积金中心",
                "text": "咨询" + rule}] * (MIN_STATED - 1))
    found = mine_time_limits(rows)
    assert [(s.department, s.time_limit, s.stated, s.tickets) for s in found] == [
        ("城管局", "30min", MIN_STATED, MIN_STATED + 1),
        ("公积金中心", "30min", MIN_STATED - 1, MIN_STATED - 1),
        ("公安局", "30min", 1, 1)]
    taxonomy = Taxonomy(name="t", categories=("市容环境", "住房保障"),
                        departments=("城管局", "公安局", "公积金中心"),
                        entries=(DutyEntry("市容环境", "商业噪音", "城管局"),
                                 DutyEntry("住房保障", "公积金", "公积金中心")))
    # the default department's tickets decide; too few statements give no limit
    assert [e.time_limit for e in with_time_limits(taxonomy, found).entries] == ["30min", ""]
