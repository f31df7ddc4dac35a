"""Hot issues: incremental grouping into one issue per event, deterministic, ranked by heat."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from model.hot_issues import Issue, Report, group, place_of, rank
from model.lexical import Lexical
from model.normalize import normalize_text

# Real Teddy Cup 2020 C messages (messages-unlabelled-fj3, title。text, cut): two known events —
# the mixing station by 丽发新城 (three owners) and the parking spaces bundled at 伊景园滨河苑
# (three railway workers) — and one unrelated message.
MESSAGES = [
    ("274004", "A00026895", "2019-12-21 10:11", "A市暮云街道丽发新城社区附近搅拌站噪音污染严重。我是A市暮云街道丽发新城小区的一名业主,向领导反映开发商在居民区附近建搅拌站,每天噪音影响根本无法睡觉,请领导关注,早日撤销该搅拌站."),  # noqa: E501
    ("272224", "A909224", "2020-01-09 19:46", "丽发新城小区噪音大粉尘大,求撤走搅拌站。我是暮云街道丽发新城小区的一名业主,这里简直无法生活了,因为一个搅拌站,白天粉尘太大无法呼吸,晚上噪音太大无法睡觉,简直比地狱还煎熬.请关注社区居民生活问题,早日撤走搅拌站"),  # noqa: E501
    ("213464", "A909233", "2019-12-10 12:34", "投诉丽发新城小区附近违建搅拌站噪音扰民。我是暮云街道丽发新城小区的业主，我要投诉开发商在小区附近违建大型搅拌站。该搅拌站的设备太吵了，每天轰隆隆的，严重影响我们的休息！请有关部门尽快处理！"),  # noqa: E501
    ("209571", "A909200", "2019-08-28 19:32", "伊景园滨河苑项目绑定车位出售是否合法合规。广铁集团铁路职工定向商品房伊景园滨河苑项目原本是由A市政府办主持为广铁集团铁路职工解决住房问题的福利项目，后来广铁集团发文称广铁集团与A市政府及A市政工程有限公司协商，要求职工购买房子并必须认购所谓"),  # noqa: E501
    ("246407", "A00099597", "2019-09-01 14:20", "举报广铁集团在伊景园滨河苑项目非法绑定车位出售。我要举报广铁集团在伊景园滨河苑项目非法绑定车位出售牟取非法利益。伊景园滨河苑项目原本是为了解决广铁集团基层职工住房问题的，但广铁集团在项目中非法绑定高价车位出售，单个车位高达12万占总价的40"),  # noqa: E501
    ("276460", "A909170", "2019-08-24 17:23", "A市伊景园滨河苑捆绑销售车位是否合理？。尊敬的领导，您好，关于广铁集团要求铁路职工在购买伊景园.滨河苑定向限价商品房时，必须一户一车位购买12万的车位，这样捆绑销售车位是否合理？由于很多职工均是勤勤恳恳的一线职工，在已经交了18.5万的认购"),  # noqa: E501
    ("188006", "A000102948", "2019-02-28 11:25", "A3区一米阳光婚纱艺术摄影是否合法纳税了？。座落在A市A3区联丰路米兰春天G2栋320，一家名叫一米阳光婚纱艺术摄影的影楼，据说年单这一个工作室营业额就上百万，因为地处居民楼内部，而且有蛮长的时间了，请税务局和工商局查一下，看看这个一米阳光"),  # noqa: E501
]


def _reports(reactions: dict[str, int] | None = None) -> list[Report]:
    return [Report(id=i, text=normalize_text(t), time=datetime.strptime(when, "%Y-%m-%d %H:%M"),
                   reporter=user, reactions=(reactions or {}).get(i, 0))
            for i, user, when, t in MESSAGES]


def _score():
    lexical = Lexical.fit(normalize_text(t) for *_, t in MESSAGES)
    return lambda report, earlier: [lexical.cosine(report.text, e.text) for e in earlier]


def _members(issues):
    return sorted(sorted(r.id for r in i.reports) for i in issues)


def test_two_known_events_and_one_unrelated_message_make_three_issues():
    issues = group(_reports(), _score(), threshold=0.15, window=timedelta(days=60))
    assert _members(issues) == [["188006"], ["209571", "246407", "276460"],
                                ["213464", "272224", "274004"]]
    assert [i.id for i in issues] == ["H0001", "H0002", "H0003"]  # opened in time order
    mixing = next(i for i in issues if len(i.reports) == 3 and i.reports[0].id == "213464")
    assert mixing.reporters == 3 and mixing.first < mixing.last


def test_the_same_input_gives_the_same_issues_whatever_its_order():
    reports = _reports()
    first = group(reports, _score(), threshold=0.15, window=timedelta(days=60))
    random.Random(3).shuffle(reports)
    again = group(reports, _score(), threshold=0.15, window=timedelta(days=60))
    assert [(i.id, [r.id for r in i.reports]) for i in again] == \
        [(i.id, [r.id for r in i.reports]) for i in first]


def test_an_issue_closes_after_its_window():
    issues = group(_reports(), _score(), threshold=0.15, window=timedelta(days=5))
    # 213464 (Dec 10) and 274004 (Dec 21) are 11 days apart: the mixing station reopens
    assert ["213464"] in _members(issues)


def test_heat_counts_reports_reporters_reactions_and_recency():
    now = datetime(2020, 1, 10)
    issues = group(_reports({"188006": 5000}), _score(), threshold=0.15,
                   window=timedelta(days=60))
    ranked = rank(issues, now)
    assert [r.id for r in ranked[0].reports] == ["213464", "274004", "272224"]  # recent, 3 people
    old = next(i for i in issues if i.reports[0].id == "188006")
    assert old.heat(now) < old.heat(old.last)  # it cools with age
    assert old.heat(old.last) > ranked[0].heat(ranked[0].last)  # 5,000 reactions weigh
    same_person = group([Report("a", "x", now, "u1"), Report("b", "x", now, "u1")],
                        lambda r, e: [1.0] * len(e), threshold=0.5)
    assert same_person[0].reporters == 1


def test_place_prefers_the_given_location_and_breaks_ties_by_the_text():
    when = datetime(2018, 4, 8, 9, 30)
    lamp = "龙华区南沙路坡博新村二巷有一盏路灯不亮"
    named = Issue(id="1", reports=[Report("a", lamp, when), Report("b", lamp, when)])
    # every place is named twice: the first one in the text wins, whatever the hash seed
    assert place_of(named) == "龙华区南沙路"
    given = Issue(id="2", reports=[Report("a", lamp, when, place="海口市龙华区南沙路"),
                                   Report("b", lamp, when)])
    assert place_of(given) == "海口市龙华区南沙路"
    assert place_of(Issue(id="3", reports=[Report("a", "路灯不亮", when)])) == ""
