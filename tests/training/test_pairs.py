"""Labelled duplicate pairs from real-shaped data (training/pairs.py), and the similarity
evaluation and threshold calibration on them (training/duplicates.py)."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest

from training.duplicates import (
    ap_difference,
    cross_fitted,
    evaluate_bundle,
    evaluate_pairs,
    precision_threshold,
    recall_floor,
    render_table,
    wilson_lower_bound,
)
from training.pairs import Pair, build_pairs, read_pairs, split_by_time, write_pairs

REPO = Path(__file__).resolve().parents[2]

# Haikou-shaped tickets: ids start with the date; cat2 is the category.
LAMP = "龙华区南沙路坡博新村二巷102号处有一盏路灯不亮"
LAMP_AGAIN = "市民来电反映: 龙华区南沙路坡博新村二巷102号处有一盏路灯不亮，至今未修，其认为不合理"
PARKING = "秀英区向荣北路金美花园外面很多机动车违停，堵住小区出入口"
FEES = "其原来在公司上班有社保，请问辞职出来了个人社保怎么交费？"
PHONE = "车管所电话的问题。"
FILLER = ["美兰区海甸岛三西路7号宿舍旁私人加建违章建筑", "琼山区中山南一横路西餐厅抽油烟机噪音扰民",
          "海府一横路政通驾校不退学费", "龙昆南路公交站台损坏无人维修", "滨海大道夜间施工噪音扰民",
          "国兴大道人行道井盖缺失", "白龙南路垃圾堆放多日无人清运", "金盘路工地泥头车带泥上路"]


def _write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                    encoding="utf-8")


@pytest.fixture
def sources(tmp_path) -> tuple[Path, Path]:
    haikou, teddy = tmp_path / "haikou", tmp_path / "teddy"
    tickets = [
        {"ticket_id": "20180203000001", "month": "201802", "text": LAMP, "cat2": "市政"},
        {"ticket_id": "20180210000002", "month": "201802", "text": LAMP_AGAIN, "cat2": "市政"},
        {"ticket_id": "20180301000003", "month": "201803", "text": PARKING, "cat2": "交通"},
        {"ticket_id": "20180305000004", "month": "201803", "text": "请交警核实处理!" + PARKING,
         "cat2": "交通"},  # followup that is an exact repeat once normalised
        {"ticket_id": "20180306000005", "month": "201803", "text": FEES, "cat2": "社保"},
    ]
    tickets += [{"ticket_id": f"2018{m:02d}{d:02d}1000{n:02d}", "month": f"2018{m:02d}",
                 "text": PHONE, "cat2": "咨询"}
                for n, (m, d) in enumerate([(2, 1), (2, 5), (2, 9), (3, 1), (3, 2), (3, 8),
                                            (3, 9), (3, 20)])]
    tickets += [{"ticket_id": f"201802{10 + i:02d}2000{i:02d}", "month": "201802", "text": t,
                 "cat2": "市政"} for i, t in enumerate(FILLER)]
    tickets += [{"ticket_id": f"201803{10 + i:02d}3000{i:02d}", "month": "201803",
                 "text": t + "(第二次)", "cat2": "交通"} for i, t in enumerate(FILLER)]
    _write(haikou / "tickets-2018-02-to-04.jsonl", tickets)
    _write(haikou / "followup-pairs-2017-12-to-2018-04.jsonl", [
        {"ticket_id": "20180210000002", "ref_ticket_id": "20180203000001", "text": LAMP_AGAIN,
         "ref_text": "ignored: the ticket's own text is used"},
        {"ticket_id": "20180305000004", "ref_ticket_id": "20180301000003", "text": "x",
         "ref_text": PARKING},
    ])
    messages = [
        {"id": "1", "user": "u1", "time": "2019/3/1 10:00:00",
         "title": "A3区欣胜园小区急需水改电改",
         "text": "我们是A市A3区欣胜园小区居民，小区变压器老化，急需改造"},
        {"id": "2", "user": "u1", "time": "2019/3/20 10:00:00",
         "title": "A3区欣胜园小区急需水改电改！", "text": "再次反映：欣胜园小区变压器老化，水管网也要改造"},
        {"id": "3", "user": "u2", "time": "2019-04-02 09:00:00",
         "title": "投诉A2区丽发新城附近建搅拌站噪音扰民", "text": "丽发新城旁边建了搅拌站，噪音和粉尘严重"},
        {"id": "4", "user": "u3", "time": "2019/4/20 09:00:00",
         "title": "投诉A2区丽发新城附近建搅拌站噪音扰民",
         "text": "搅拌站离小区不到百米，日夜施工，居民无法休息"},
        {"id": "5", "user": "u4", "time": "2019/4/21 09:00:00",
         "title": "对A市公交线路的建议", "text": "建议增加早班公交"},
        {"id": "6", "user": "u5", "time": "2019/4/22 09:00:00",
         "title": "对A市公交线路的建议", "text": "公交线路太绕，希望优化"},  # city only: no pair
        {"id": "7", "user": "u1", "time": "2019/4/25 09:00:00",
         "title": "A7县文体中心何时开放", "text": "文体中心建成多年仍未开放"},  # u1, other title
    ]
    messages += [{"id": str(100 + i), "user": f"v{i}", "time": f"2019/{3 + i % 2}/{1 + i}"
                  " 08:00:00", "title": f"A{2 + i % 2}区{t[:6]}", "text": t}
                 for i, t in enumerate(FILLER)]
    _write(teddy / "messages-unlabelled-fj3.jsonl", messages)
    return haikou, teddy


def test_pairs_follow_the_documented_rules(sources):
    pairs = build_pairs(*sources, seed=0)
    positives = {(p.a_id, p.b_id): p for p in pairs if p.label == 1}
    lamp = positives[("20180210000002", "20180203000001")]
    assert lamp.kind == "followup" and lamp.b_text == LAMP and not lamp.exact
    parking = positives[("20180305000004", "20180301000003")]
    assert parking.kind == "followup" and parking.exact  # found by hash: reported apart
    group = [p for p in pairs if p.kind == "repeat_group"]
    assert len(group) == 5 and all(p.exact for p in group)  # 8 tickets, capped at 5 pairs
    assert positives[("2", "1")].kind == "same_user_repost"
    assert positives[("4", "3")].kind == "same_title_place"
    assert ("6", "5") not in positives and ("7", "2") not in positives
    # Teddy pairs are compared on the bodies, never on the titles the rule looked at
    assert positives[("4", "3")].a_text.startswith("搅拌站")


def test_negatives_are_unlinked_and_anchored_on_their_positive(sources):
    pairs = build_pairs(*sources, seed=0)
    linked = {frozenset((p.a_id, p.b_id)) for p in pairs if p.label == 1}
    for p in pairs:
        if p.label == 0:
            assert p.kind in ("hard_negative", "random_negative")
            assert frozenset((p.a_id, p.b_id)) not in linked and not p.exact
    near = [p for p in pairs if p.label == 1 and not p.exact]
    for pos in near:
        negs = [p for p in pairs if p.label == 0 and p.a_id == pos.a_id]
        assert negs and {p.split for p in negs} == {pos.split}
        assert sum(p.kind == "random_negative" for p in negs) == 2
    hard = [p for p in pairs if p.kind == "hard_negative" and p.source == "haikou12345"]
    assert hard and all(p.b_text in FILLER for p in hard)  # same category, within 30 days


def test_building_is_deterministic_and_split_by_time(sources):
    first, again = build_pairs(*sources, seed=0), build_pairs(*sources, seed=0)
    assert first == again
    assert build_pairs(*sources, seed=1) != first  # the seed picks the negatives
    for source in ("haikou12345", "teddy2020c"):
        cal = [p.time for p in first if p.source == source and p.split == "calibration"]
        ev = [p.time for p in first if p.source == source and p.split == "evaluation"]
        assert cal and ev and max(cal) < min(ev)


def test_pairs_round_trip_through_jsonl(sources, tmp_path):
    pairs = build_pairs(*sources)
    path = write_pairs(pairs, tmp_path / "pairs.jsonl.gz")
    assert read_pairs(path) == pairs
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"a_text": "x", "b_text": "y"}\n', encoding="utf-8")
    with pytest.raises(Exception, match="lacks label"):
        read_pairs(bad)


def test_threshold_helpers_on_a_small_example():
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    labels = np.array([1, 1, 0, 1, 0, 0])
    assert recall_floor(scores, labels, 0.6) == pytest.approx(0.8)
    assert recall_floor(scores, labels, 1.0) == pytest.approx(0.6)


def test_wilson_lower_bound_grows_with_the_evidence():
    bound = wilson_lower_bound(np.array([5, 50, 500, 46]), np.array([5, 50, 500, 50]))
    assert bound[0] < bound[1] < bound[2] < 1  # all hits: more pairs, more confidence
    assert bound[0] == pytest.approx(5 / (5 + 1.645 ** 2))  # k = n: n / (n + z²)
    assert bound[3] < 0.9 < 46 / 50  # 92% measured is not 90% with confidence


def test_precision_threshold_asks_for_confidence_not_a_point_estimate():
    """40 hits, two misses, 8 more hits: the top 50 measure 0.96 precision and the best F1, but
    only the top 40 show 0.9 with 95% confidence, so the cut stays above the misses; where no
    cut shows it, the cut with the highest lower bound is taken."""
    labels = np.array([1] * 40 + [0, 0] + [1] * 8 + [0] * 50)
    scores = np.linspace(1, 0, len(labels))
    assert (scores >= precision_threshold(scores, labels, 0.9)).sum() == 40
    few = np.array([1, 1, 1, 0, 0, 0])
    assert (scores[:6] >= precision_threshold(scores[:6], few, 0.9)).sum() == 3


def test_cross_fitted_scores_do_not_see_their_own_label():
    """A pair model's scores on its own training pairs flatter it (the served threshold reached
    90% precision there and 68% on later pairs); cross-fitted ones are each from a model fitted
    without the pair, so a mislabelled-looking pair gets no credit from its own label."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(1, 2, 30), rng.uniform(-2, -1, 30), [-1.5, -1.4]])[:, None]
    y = np.array([1] * 30 + [0] * 30 + [1, 1])  # the last two: positives among the negatives
    in_sample = LogisticRegression(C=1.0, max_iter=2000).fit(x, y).predict_proba(x)[:, 1]
    held_out = cross_fitted(x, y)
    assert held_out.shape == (62,) and ((held_out >= 0) & (held_out <= 1)).all()
    assert (held_out[-2:] < in_sample[-2:]).all()
    assert np.array_equal(held_out, cross_fitted(x, y))  # fixed folds: reproducible


def _handmade() -> tuple[list[Pair], dict[str, np.ndarray]]:
    """Four events; positives are noisy copies of their event's vector, negatives other events."""
    rng = np.random.default_rng(0)
    events = rng.normal(size=(4, 8))
    vectors: dict[str, np.ndarray] = {}
    pairs = []
    for split, day in (("calibration", "2018-01-10"), ("evaluation", "2018-03-10")):
        for e in range(4):
            for n in range(3):
                a, b = f"{split}事件{e}甲{n}", f"{split}事件{e}乙{n}"
                vectors[a] = events[e] + 0.1 * rng.normal(size=8)
                vectors[b] = events[e] + 0.1 * rng.normal(size=8)
                c = f"{split}事件{(e + 1) % 4}丙{n}"
                vectors[c] = events[(e + 1) % 4] + 0.1 * rng.normal(size=8)
                pairs.append(Pair(a, b, 1, "followup", "test", time=day, split=split))
                pairs.append(Pair(a, c, 0, "hard_negative", "test", time=day, split=split))
    pairs.append(Pair("完全相同的投诉", "市民来电反映: 完全相同的投诉", 1, "repeat_group", "test",
                      time="2018-03-10", split="evaluation"))
    vectors["完全相同的投诉"] = vectors["市民来电反映: 完全相同的投诉"] = events[0]
    return pairs, vectors


def test_evaluate_pairs_on_a_handmade_example():
    pairs, vectors = _handmade()
    calls = []

    def embed(texts):
        calls.append(len(texts))
        return np.stack([vectors[t] for t in texts])

    report = evaluate_pairs(pairs, embed)
    assert calls == [len(vectors)]  # every text embedded once
    assert report["exact"]["pairs"] == 1  # the exact repeat is reported apart
    assert report["near_duplicates"]["evaluation"] == {"pairs": 24, "positives": 12}
    emb = report["methods"]["embedding"]
    assert emb["evaluation"]["roc_auc"] == 1.0 and emb["evaluation"]["average_precision"] == 1.0
    assert emb["evaluation"]["precision"] == emb["evaluation"]["recall"] == 1.0
    assert emb["floor"] <= emb["threshold"]
    assert emb["evaluation_by_kind"]["followup"]["flagged"] == 1.0
    assert emb["evaluation_by_kind"]["hard_negative"]["flagged"] == 0.0
    tfidf = report["methods"]["tfidf"]
    assert 0.0 <= tfidf["evaluation"]["roc_auc"] <= 1.0
    assert report["methods"]["served"] == emb  # no lexical model: the embedding is served
    table = render_table(report)
    assert "bundle embedding cosine" in table and "char 1-3-gram TF-IDF cosine" in table


class _SameLexical:
    """A lexical model that finds every pair identical: the blend is then 0.5 * cosine + 0.5."""

    def cosine(self, a, b):
        return 1.0


def test_the_served_similarity_blends_embedding_and_lexical_cosines():
    pairs, vectors = _handmade()
    report = evaluate_pairs(pairs, lambda ts: np.stack([vectors[t] for t in ts]),
                            _SameLexical())  # type: ignore[arg-type]
    served, emb = report["methods"]["served"], report["methods"]["embedding"]
    assert served["evaluation"]["average_precision"] == emb["evaluation"]["average_precision"]
    assert served["threshold"] == pytest.approx(0.5 * emb["threshold"] + 0.5, abs=2e-4)
    assert "TF-IDF" in report["served_similarity"]


def test_evaluate_pairs_needs_both_labels_in_both_halves():
    pairs, vectors = _handmade()
    only_positive = [p for p in pairs if p.label == 1 or p.split == "calibration"]
    with pytest.raises(Exception, match="evaluation half"):
        evaluate_pairs(only_positive, lambda ts: np.stack([vectors[t] for t in ts]))


def test_pairs_without_a_split_are_split_by_time_per_source():
    days = list(range(1, 11))
    random.Random(0).shuffle(days)
    pairs = [Pair("a", "b", 1, source=s, time=f"2018-01-{d:02d}") for d in days for s in "xy"]
    pairs.append(Pair("a", "c", 0, source="x", time="2018-01-05"))  # a negative: its anchor's
    out = split_by_time(pairs)
    for p in out:
        assert p.split == ("calibration" if p.time <= "2018-01-05" else "evaluation")
    untimed = split_by_time([Pair("a", "b", 1, source="z") for _ in range(4)])
    assert [p.split for p in untimed] == ["calibration"] * 2 + ["evaluation"] * 2


def test_evaluate_bundle_end_to_end(sources, tmp_path, tiny_bundle):
    report = evaluate_bundle(tiny_bundle.path, haikou_dir=sources[0], teddy_dir=sources[1],
                             write_pairs_to=tmp_path / "pairs.jsonl.gz", out_dir=tmp_path / "out")
    assert report["model_version"] == "tiny-v1"
    # the tiny bundle ships lexical.json: the served score is the pair model, the blend beside it
    assert set(report["methods"]) == {"served", "blend", "embedding", "tfidf"}
    assert "pair model" in report["served_similarity"]
    assert "blend" in render_table(report)
    assert (tmp_path / "out" / "report.md").read_text(encoding="utf-8").startswith("# Duplicates")
    again = evaluate_bundle(tiny_bundle.path, tmp_path / "pairs.jsonl.gz")

    def overall(methods):  # a file's pairs are one set: no hard/easy figures apart
        return {m: {k: v for k, v in f.items() if not k.startswith("evaluation_set")}
                for m, f in methods.items()}

    assert overall(again["methods"]) == overall(report["methods"])


@pytest.mark.slow
def test_pairs_from_the_vendored_haikou_data():
    pairs = build_pairs(REPO / "data" / "haikou12345")
    followups = [p for p in pairs if p.kind == "followup"]
    assert len(followups) == 123
    assert sum(not p.exact for p in followups) > 40
    assert {p.split for p in pairs} == {"calibration", "evaluation"}


def test_the_ap_difference_has_a_paired_bootstrap_interval():
    rng = np.random.default_rng(0)
    labels = np.array([1] * 30 + [0] * 70)
    good = labels + 0.3 * rng.standard_normal(100)
    noisy = labels + 1.5 * rng.standard_normal(100)
    d = ap_difference(good, noisy, labels, resamples=300)
    assert d["difference"] > 0 and 0 < d["ci95"][0] <= d["difference"] <= d["ci95"][1]
    assert d["better_share"] > 0.95
    same = ap_difference(good, good, labels, resamples=50)
    assert same["difference"] == 0 and same["ci95"] == [0, 0]


def test_the_bundle_keeps_its_calibrated_threshold_wherever_it_is_copied(
        sources, tmp_path, haikou_sample, tiny_encoder_dir, capsys):
    from model.router import Router
    from serving.duplicates import DuplicatePolicy, DuplicateService
    from training.finetune import FinetuneConfig
    from training.pipeline import BuildOptions, build_router

    pairs = build_pairs(*sources)
    write_pairs(pairs, tmp_path / "pairs.jsonl")
    config = FinetuneConfig.from_preset("tiny", base=str(tiny_encoder_dir), epochs=1)
    bundle = build_router(haikou_sample, config, tmp_path / "bundles",
                          BuildOptions(version="dup-v1", duplicate_pairs=tmp_path / "pairs.jsonl"),
                          run_dir=tmp_path / "run")
    assert "same-event threshold" in capsys.readouterr().out
    record = bundle.duplicate_thresholds()
    assert record["model_version"] == "dup-v1" and record["pairs_from"].endswith("pairs.jsonl")

    elsewhere = tmp_path / "another-server" / "bundles" / "dup-v1"
    shutil.copytree(bundle.path, elsewhere)  # no index directory travels with it
    service = DuplicateService(None, tmp_path / "another-server" / "index",  # type: ignore[arg-type]
                               DuplicatePolicy())
    limits = service._load_thresholds(Router.load(elsewhere))
    assert (limits.same_event, limits.source) == (record["same_event"], "bundle dup-v1")
    assert limits.floor == min(record["floor"], record["same_event"])
    override = DuplicateService(None, tmp_path, DuplicatePolicy(threshold=0.9))  # type: ignore[arg-type]
    assert override._load_thresholds(Router.load(elsewhere)).source == "settings"


def test_without_pairs_the_bundle_keeps_no_threshold_and_says_so(tmp_path, tiny_bundle,
                                                                  monkeypatch, capsys):
    from model.router import Router
    from training.pipeline import _duplicate_thresholds

    monkeypatch.setattr("training.pairs.default_sources", lambda: (tmp_path / "none", None))
    assert _duplicate_thresholds(Router(tiny_bundle), None) is None
    assert "not calibrated" in capsys.readouterr().out


def test_the_duplicates_command_reports_beside_the_baseline(tmp_path, tiny_bundle):
    from typer.testing import CliRunner

    from cli import app

    pairs, _ = _handmade()
    write_pairs(pairs, tmp_path / "pairs.jsonl")
    result = CliRunner().invoke(app, ["duplicates", "--model", str(tiny_bundle.path), "--pairs",
                                      str(tmp_path / "pairs.jsonl"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "baseline: char 1-3-gram TF-IDF cosine" in result.output
    assert "served minus baseline AP" in result.output
    assert (tmp_path / "out" / "report.json").is_file()
    missing = CliRunner().invoke(app, ["duplicates", "--model", str(tiny_bundle.path), "--pairs",
                                       str(tmp_path / "nope.jsonl")])
    assert missing.exit_code == 2 and "does not exist" in missing.output


@pytest.mark.parametrize("line, message", [('{"a_text": "x", "b_text": "y"}', "lacks label"),
                                           ('{"a_text": "x", "b_text": "y", "label": 3}',
                                            "label must be 0 or 1")])
def test_the_duplicates_command_refuses_bad_pairs_and_writes_nothing(tmp_path, tiny_bundle,
                                                                      line, message):
    from typer.testing import CliRunner

    from cli import app

    (tmp_path / "pairs.jsonl").write_text(line + "\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["duplicates", "--model", str(tiny_bundle.path), "--pairs",
                                      str(tmp_path / "pairs.jsonl"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and message in result.output
    assert not (tmp_path / "out").exists()
    not_a_bundle = CliRunner().invoke(app, ["duplicates", "--model", str(tmp_path)])
    assert not_a_bundle.exit_code == 2 and "not a model bundle" in not_a_bundle.output
