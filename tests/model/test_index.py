"""The similarity index: self-match, symmetry, removal, persistence, filters, repeats, errors."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model.errors import SimilarityIndexError
from model.index import Match, SimilarityIndex
from model.lexical import Lexical, blend

DIM = 16
DAY = 86400.0
# Both search paths: 4 puts every non-trivial segment on HNSW, 10**9 keeps all exact.
EXACT_BELOW = st.sampled_from([4, 10**9])
FAST = settings(max_examples=20, deadline=None)
# Embedding cosine alone, or blended with the lexical cosine of the stored texts.
LEXICAL = st.booleans()
_PLACES = ["龙华路", "幸福里小区", "美兰区政府", "ABC酒吧", "人民医院"]
_ISSUES = ["垃圾没人清理", "车辆乱停放", "噪音扰民", "拖欠工资", "路灯不亮"]
LEX = Lexical.fit(p + i for p in _PLACES for i in _ISSUES)


def texts_of(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [f"{_PLACES[rng.integers(5)]}{_ISSUES[rng.integers(5)]}{i}" for i in range(n)]


def unit(n: int, seed: int, dim: int = DIM) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def build(n: int, seed: int = 0, *, exact_below: int = 10**9, days: float = 30.0,
          lexical: bool = False, **kw):
    """n random complaints spread over `days`, two channels, hashes all distinct; with
    `lexical`, texts from `texts_of(n, seed)` and the blended similarity."""
    x = unit(n, seed)
    times = np.random.default_rng(seed + 1).uniform(0, days * DAY, n)
    ids = [f"c{i}" for i in range(n)]
    meta = [{"channel": "phone" if i % 3 else "web"} for i in range(n)]
    index = SimilarityIndex(DIM, "m1", exact_below=exact_below, lexical=LEX if lexical else None,
                            **kw)
    index.add(ids, x, times, [f"h{i}" for i in range(n)], meta,
              texts=texts_of(n, seed) if lexical else None)
    return index, x, times, ids, meta


def texts_for(index: SimilarityIndex, n: int, seed: int) -> list[str] | None:
    """What to pass as the query texts of rows 0..n-1 of `build(..., seed)`."""
    return texts_of(n, seed) if index.lexical is not None else None


def brute_force(x, q, allowed, k):
    """Similarities of the exact top-k among allowed rows, descending."""
    sims = (q @ x[allowed].T) if allowed.any() else np.empty((len(q), 0))
    return -np.sort(-sims, axis=1)[:, :k]


def sims_of(rows: list[list[Match]]) -> list[list[float]]:
    return [[m.similarity for m in row] for row in rows]


@FAST
@given(n=st.integers(1, 60), seed=st.integers(0, 10**6), exact_below=EXACT_BELOW,
       lexical=LEXICAL)
def test_a_complaint_is_its_own_nearest_neighbour(n, seed, exact_below, lexical):
    index, x, _, ids, _ = build(n, seed, exact_below=exact_below, lexical=lexical)
    for i, row in enumerate(index.search(x, k=3, texts=texts_for(index, n, seed))):
        assert row[0].id == ids[i]
        assert row[0].similarity == pytest.approx(1.0, abs=1e-5)
        assert not row[0].exact  # no hash given: a near repeat, not a proven one


@FAST
@given(n=st.integers(2, 40), seed=st.integers(0, 10**6), exact_below=EXACT_BELOW,
       lexical=LEXICAL)
def test_similarity_is_symmetric(n, seed, exact_below, lexical):
    index, x, _, ids, _ = build(n, seed, exact_below=exact_below, lexical=lexical)
    rows = index.search(x, k=n, texts=texts_for(index, n, seed))
    sim = [{m.id: m.similarity for m in row} for row in rows]
    for i in range(n):
        for j in range(n):
            if ids[j] in sim[i] and ids[i] in sim[j]:
                assert sim[i][ids[j]] == pytest.approx(sim[j][ids[i]], abs=1e-5)
    assert all(len(row) == n for row in rows)  # tiny index: every row found from every row


@FAST
@given(
    n=st.integers(1, 80),
    seed=st.integers(0, 10**6),
    exact_below=EXACT_BELOW,
    lexical=LEXICAL,
    data=st.data(),
)
def test_removed_ids_are_never_returned(n, seed, exact_below, lexical, data):
    index, x, _, ids, _ = build(n, seed, exact_below=exact_below, lexical=lexical)
    gone = data.draw(st.lists(st.sampled_from(ids), unique=True))
    assert index.remove(gone + ["never-added"]) == len(gone)
    assert len(index) == n - len(gone)
    hashes = [f"h{i}" for i in range(n)]
    found = {m.id for row in index.search(x, hashes, k=n, texts=texts_for(index, n, seed))
             for m in row}
    assert found == set(ids) - set(gone)
    assert index.remove(gone) == 0  # removing twice is a no-op


@settings(max_examples=10, deadline=None)  # each example fsyncs twice
@given(
    n=st.integers(1, 60),
    seed=st.integers(0, 10**6),
    exact_below=EXACT_BELOW,
    lexical=LEXICAL,
    data=st.data(),
)
def test_persist_then_reload_gives_identical_answers(n, seed, exact_below, lexical, data):
    index, x, _, ids, _ = build(n, seed, exact_below=exact_below, bucket_seconds=5 * DAY,
                                lexical=lexical)
    index.remove(data.draw(st.lists(st.sampled_from(ids), unique=True)))
    q = np.vstack([x, unit(5, seed + 7)])
    hashes = [f"h{i}" for i in range(len(q))]
    texts = texts_for(index, len(q), seed)
    queries = [{}, {"since": 10 * DAY, "until": 20 * DAY}, {"where": {"channel": "web"}}]
    with tempfile.TemporaryDirectory() as tmp:
        index.save(Path(tmp))
        index.save(Path(tmp))  # overwriting an earlier save is the normal case
        assert [p.name for p in Path(tmp).iterdir()] == ["index.npz"]  # no temp files left
        loaded = SimilarityIndex.load(Path(tmp), model_version="m1", lexical=index.lexical)
    assert len(loaded) == len(index)
    for kw in queries:
        assert loaded.search(q, hashes, k=7, texts=texts, **kw) == \
            index.search(q, hashes, k=7, texts=texts, **kw)
    # the reloaded index keeps working: add and remove as before
    new_text = ["路灯不亮"] if lexical else None
    loaded.add(["new"], unit(1, seed + 9), [1.0], ["hnew"], texts=new_text)
    assert loaded.search(unit(1, seed + 9), k=1, texts=new_text)[0][0].id == "new"


@FAST
@given(
    n=st.integers(1, 120),
    seed=st.integers(0, 10**6),
    exact_below=EXACT_BELOW,
    since=st.floats(-5, 35),
    width=st.floats(0, 40),
)
def test_time_window_returns_exactly_the_top_k_inside_it(n, seed, exact_below, since, width):
    index, x, times, ids, _ = build(n, seed, exact_below=exact_below, bucket_seconds=7 * DAY)
    lo, hi = since * DAY, (since + width) * DAY
    q = unit(4, seed + 3)
    rows = index.search(q, k=5, since=lo, until=hi)
    inside = (times >= lo) & (times <= hi)
    for row in rows:
        assert all(lo <= times[ids.index(m.id)] <= hi for m in row)
    expected = brute_force(x, q, inside, 5)
    for got, want in zip(sims_of(rows), expected, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5)


@FAST
@given(n=st.integers(1, 80), seed=st.integers(0, 10**6), exact_below=EXACT_BELOW)
def test_metadata_filter_keeps_only_equal_values(n, seed, exact_below):
    index, x, _, ids, meta = build(n, seed, exact_below=exact_below)
    q = unit(3, seed + 5)
    for channel in ("web", "phone"):
        rows = index.search(q, k=4, where={"channel": channel})
        assert all(meta[ids.index(m.id)]["channel"] == channel for row in rows for m in row)
        allowed = np.array([m["channel"] == channel for m in meta])
        for got, want in zip(sims_of(rows), brute_force(x, q, allowed, 4), strict=True):
            np.testing.assert_allclose(got, want, atol=1e-5)
    assert index.search(q, where={"channel": "fax"}) == [[], [], []]
    assert index.search(q, where={"no-such-key": "x"}) == [[], [], []]


def test_exact_hash_repeats_come_first_even_when_the_vectors_differ():
    index, x, times, ids, _ = build(50, 1)
    far = -x[7]  # the opposite direction: cosine -1 to c7
    index.add(["again"], far[None], [times[7] + DAY], ["h7"])
    row = index.search(x[7][None], ["h7"], k=3)[0]
    assert [(m.id, m.similarity, m.exact) for m in row[:2]] == [
        ("again", 1.0, True),  # most recent repeat first
        ("c7", 1.0, True),
    ]
    assert not row[2].exact and row[2].similarity < 1.0
    # filters apply to exact repeats too
    row = index.search(x[7][None], ["h7"], k=3, until=times[7] + DAY / 2)[0]
    assert [m.id for m in row if m.exact] == ["c7"]
    assert index.search(x[7][None], ["h7"], k=1, exclude_ids={"again", "c7"})[0][0].id != "c7"


@given(exact_below=EXACT_BELOW)
@settings(max_examples=4, deadline=None)
def test_re_adding_an_id_replaces_it(exact_below):
    index, x, times, ids, _ = build(40, 2, exact_below=exact_below)
    new = unit(1, 99)
    index.add(["c3"], new, [times[3]], ["h-new"], [{"channel": "app"}])
    assert len(index) == 40
    assert index.search(new, ["h-new"], k=1)[0] == [Match("c3", 1.0, True)]
    old = index.search(x[3][None], ["h3"], k=2)[0]
    assert all(m.id != "c3" or m.similarity < 0.99 for m in old) and not any(m.exact for m in old)
    assert [m.id for m in index.search(new, k=40, where={"channel": "app"})[0]] == ["c3"]


def test_many_removals_compact_and_keep_answers_right():
    index, x, _, ids, _ = build(400, 3, exact_below=32, days=7)
    index.remove(ids[:300])
    keep = np.zeros(400, bool)
    keep[300:] = True
    rows = index.search(x[:20], k=5)
    for got, want in zip(sims_of(rows), brute_force(x, x[:20], keep, 5), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_ann_path_recall_matches_exact_path():
    rng = np.random.default_rng(0)
    centres = unit(40, 1, dim=64)
    x = centres[rng.integers(0, 40, 4000)] + 0.6 * rng.standard_normal((4000, 64)) / 8
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    times = rng.uniform(0, 60 * DAY, 4000)
    ids = [str(i) for i in range(4000)]
    q = x[:200] + 0.1 * rng.standard_normal((200, 64)).astype(np.float32) / 8
    exact = SimilarityIndex(64, "m1", exact_below=10**9, bucket_seconds=14 * DAY)
    approx = SimilarityIndex(64, "m1", exact_below=256, bucket_seconds=14 * DAY)
    for index in (exact, approx):
        index.add(ids, x, times, ids)
    assert all(seg.is_hnsw for seg in approx._segments.values())  # the ANN path is exercised
    for window in ({}, {"since": 10 * DAY, "until": 40 * DAY}):  # the window cuts 2 segments
        pairs = zip(exact.search(q, k=10, **window), approx.search(q, k=10, **window), strict=True)
        recall = np.mean([len({m.id for m in e} & {m.id for m in a}) / 10 for e, a in pairs])
        assert recall >= 0.95, window


def test_wrong_dimension_raises_with_the_expected_shape():
    index, *_ = build(5)
    with pytest.raises(SimilarityIndexError, match=r"expected \(n, 16\)"):
        index.add(["x"], np.ones((1, 8), np.float32), [0.0], ["h"])
    with pytest.raises(SimilarityIndexError, match=r"expected \(n, 16\)"):
        index.search(np.ones((1, 8), np.float32))
    with pytest.raises(SimilarityIndexError, match=r"emb\[None, :\]"):
        index.search(np.ones(16, np.float32))


def test_other_model_version_on_load_raises(tmp_path):
    index, *_ = build(5)
    index.save(tmp_path)
    with pytest.raises(SimilarityIndexError, match="rebuild the index"):
        SimilarityIndex.load(tmp_path, model_version="m2")
    assert len(SimilarityIndex.load(tmp_path)) == 5
    with pytest.raises(SimilarityIndexError, match="no similarity index"):
        SimilarityIndex.load(tmp_path / "missing")


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda ix: ix.add(["a", "b"], unit(2, 0), [0.0], ["h", "h"]), "one of each per row"),
        (lambda ix: ix.add(["a", "a"], unit(2, 0), [0.0, 1.0], ["h", "h"]), "same id twice"),
        (lambda ix: ix.add(["a"], np.zeros((1, DIM)), [0.0], ["h"]), "zero, NaN"),
        (lambda ix: ix.add(["a"], unit(1, 0), [float("nan")], ["h"]), "finite"),
        (lambda ix: ix.search(unit(1, 0), since=2.0, until=1.0), "swap them"),
        (lambda ix: ix.search(unit(1, 0), ["a", "b"]), "one hash per query"),
        (lambda ix: ix.search(unit(1, 0), k=0), "at least 1"),
        (lambda ix: SimilarityIndex(DIM, ""), "model_version is empty"),
    ],
)
def test_bad_input_raises_a_helpful_error(call, message):
    index, *_ = build(3)
    with pytest.raises(SimilarityIndexError, match=message):
        call(index)


def test_the_lexical_similarity_re_ranks_the_nearest_by_embedding():
    index = SimilarityIndex(2, "m1", lexical=LEX)
    close, closer = np.array([[0.8, 0.6]]), np.array([[0.9, np.sqrt(1 - 0.81)]])
    index.add(["same-place", "other-place"], np.vstack([close, closer]), [0.0, 0.0],
              ["h1", "h2"], texts=["幸福里小区垃圾没人清理", "龙华路车辆乱停放"])
    [row] = index.search(np.array([[1.0, 0.0]]), texts=["幸福里小区垃圾又没人清理"], k=2)
    assert [m.id for m in row] == ["same-place", "other-place"]  # embedding alone: the reverse
    assert row[0].similarity == pytest.approx(
        blend(0.8, LEX.cosine("幸福里小区垃圾又没人清理", "幸福里小区垃圾没人清理")), abs=1e-6)


def test_a_lexical_index_needs_texts_and_loads_only_with_its_model(tmp_path):
    index, x, *_ = build(5, lexical=True)
    with pytest.raises(SimilarityIndexError, match="one normalised text per row"):
        index.search(x[:1])
    with pytest.raises(SimilarityIndexError, match="one normalised text per row"):
        index.add(["x"], x[:1], [0.0], ["hx"], texts=["a", "b"])
    index.save(tmp_path)
    with pytest.raises(SimilarityIndexError, match="saved with a lexical model"):
        SimilarityIndex.load(tmp_path)
    plain, *_ = build(5)
    plain.save(tmp_path / "plain")
    with pytest.raises(SimilarityIndexError, match="saved without a lexical model"):
        SimilarityIndex.load(tmp_path / "plain", lexical=LEX)
