"""Reply quality on real Teddy Cup replies (messages-with-replies-fj4, ids in the names): each
criterion finds what the reply has, and the measures are deterministic."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from model.reply_quality import (
    assess,
    content_bigrams,
    relevance,
    replying_organisation,
    timeliness_days,
)

# 2554: a road works question answered with the cause, the progress and the expected date
ROAD = ("A3区潇楚南路洋湖段怎么还没修好？。潇楚南路从2018年开始修，到现在都快一年了，路挖得稀烂用"
        "围栏围起，一直不怎么动工，有时候今天来台挖机挖两几下，过几天又来挖几下，对当地的交通和店面"
        "的生意带来很大影响，里面的车出去和外面的车进来要绕很大一个圈，很不方便，请有关部门对此监管"
        "一下，这路修的时间也太长了，至少可以一段一段的修好，方便街上的老百姓出行。")
ROAD_REPLY = (
    "网友“A00023583”：您好！针对您反映A3区潇楚南路洋湖段怎么还没修好的问题,A3区洋湖街道高度重视，"
    "立即组织精干力量调查处理，现回复如下：您反映的为潇楚大道西线道路工程项目，该项目位处于坪塘老集"
    "镇，目前正在进行土方及排水施工。因该项目为城市次大道，设计标准高，该段原路基土质较差，需整体换"
    "填，且换填后还有三趟雨污水管道施工，施工难度较大，周期较长。加之坪塘集镇原有管线、排水渠道较多，"
    "需先处理管线和渠道才能进行道路施工，且因近期持续雨天，为保证道路施工质量，需在晴好天气才能正常"
    "施工。目前该项目已完成75土方及50排水，预计今年8月底将完工通车。感谢您对我们工作的关心、监督与"
    "支持。2019年4月29日")
# 2557: a policy question answered by the article of the rule that decides it
FLAT = ("在A市买公寓能享受人才新政购房补贴吗？。尊敬的书记：您好！我研究生毕业后根据人才新政落户A市，"
        "想买套公寓，请问购买公寓能否享受研究生3万元的购房补贴？谢谢。")
FLAT_REPLY = (
    "网友“A000110735”：您好！您在平台《问政西地省》上的留言已收悉，市住建局及时将您反映的问题交由市"
    "房屋交易管理中心办理。现将相关情况回复如下：按照《A市人才购房及购房补贴实施办法（试行）》第七条"
    "规定：新落户并在A市域内工作的全日制博士、硕士毕业生（不含机关事业单位在编人员），年龄35周岁以下"
    "（含），首次购房后，可分别申请6万元、3万元的购房补贴。“首次购房”是指在A市限购区域内首次购买商"
    "品住房（含住宅类公寓）。因此，如购买商业性质公寓（非商品住房），则不可申领购房补贴。以上情况，望"
    "您知晓和理解。如您还有疑问，建议可拨打市房屋交易管理中心咨询电话0000-00000000详询。特此回复！"
    "2019年4月30日")
# 128565: only forwarded; 10924: only acknowledged
FORWARDED = "“UU0081020”您好！您反映的问题已收悉，我办已转迎丰街道办事处调查核处。2019年11月14日"
RECEIVED = "网友：您好！留言已收悉"


def test_a_full_answer_has_every_part_of_completeness():
    q = assess(ROAD, ROAD_REPLY)
    assert (q.greeting, q.handling, q.closing, q.length >= 100) == (True, True, True, True)
    assert q.completeness == 1.0
    # a reason (因该项目…) but no rule cited and no basis phrase
    assert (q.citations, q.basis, q.reason) == ((), False, True)
    assert q.interpretability == 1 / 3


def test_a_cited_rule_its_article_basis_and_reason_make_it_interpretable():
    q = assess(FLAT, FLAT_REPLY)
    # the message board 《问政西地省》 is no rule; the full-width brackets are folded (NFKC)
    assert q.citations == ("《A市人才购房及购房补贴实施办法(试行)》", "第七条")
    assert q.basis and q.reason and q.interpretability == 1.0 and q.completeness == 1.0


def test_received_or_forwarded_is_not_an_answer():
    for reply in (FORWARDED, RECEIVED):
        q = assess(ROAD, reply)
        assert q.greeting and not q.handling and not q.closing and q.length < 100
        assert q.completeness == 0.25 and q.interpretability == 0.0


def test_relevance_is_higher_for_the_reply_to_the_message():
    assert relevance(ROAD, ROAD_REPLY) > 0.1 > relevance(FLAT, ROAD_REPLY)
    assert relevance(FLAT, FLAT_REPLY) > 0.2 > relevance(ROAD, FLAT_REPLY)
    assert relevance(ROAD, ROAD_REPLY) == relevance(ROAD, ROAD_REPLY)  # deterministic
    assert relevance("", ROAD_REPLY) == 0.0 and relevance("的了", "的了") == 0.0
    assert "的交" not in content_bigrams("当地的交通") and "交通" in content_bigrams("当地的交通")


def test_timeliness_is_the_days_from_message_to_reply_when_both_are_known():
    china = timezone(timedelta(hours=8))
    sent, replied = datetime(2019, 4, 24, 16, 3, 40, tzinfo=china), \
        datetime(2019, 5, 9, 9, 49, 10, tzinfo=china)  # 2554's times
    assert round(timeliness_days(sent, replied), 2) == 14.74
    assert assess(ROAD, ROAD_REPLY, message_time=sent,
                  reply_time=replied).to_dict()["timeliness_days"] == 14.74
    assert timeliness_days(None, replied) is None and timeliness_days(sent, None) is None
    assert timeliness_days(sent.replace(tzinfo=None), replied) is None  # not comparable


def test_the_replying_organisation_is_the_one_that_acts_or_signs():
    assert replying_organisation(ROAD_REPLY) == "A3区洋湖街道"
    assert replying_organisation(FLAT_REPLY) == "市住建局"
    assert replying_organisation("感谢您对我们工作的理解和支持。 A7县安沙镇人民政府 2014年2月17日") \
        == "A7县安沙镇人民政府"
    assert replying_organisation("经区住建局现场初步核查，未发现对梁铸等主体结构进行改动") == "区住建局"
    assert replying_organisation(FORWARDED) is None  # "我办" names no one
    assert replying_organisation(RECEIVED) is None
