"""Hierarchy-consistent decoding: the top category is always the top subcategory's parent."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from model.hierarchy import Ranked, decode, parent_index

CATEGORIES = ["交通", "环境", "住房"]
SUBCATEGORIES = ["交通/违停", "环境/噪音", "交通/拥堵", "住房/物业", "环境/垃圾"]
DEPARTMENTS = ["交警", "城管", "住建局", "环保局"]
SPACES = {"category": CATEGORIES, "subcategory": SUBCATEGORIES, "department": DEPARTMENTS}


def _parent(key: str) -> str:
    return key.split("/", 1)[0]


def test_parent_index() -> None:
    assert parent_index(CATEGORIES, SUBCATEGORIES).tolist() == [0, 1, 0, 2, 1]
    assert parent_index(["A"], ["A/x", "B/y"]).tolist() == [0, -1]


def test_joint_choice_overrides_the_greedy_one() -> None:
    # greedy: category 交通 (0.5) and subcategory 环境/噪音 (0.4) would contradict each other;
    # jointly 环境 · 环境/噪音 = 0.45 · 0.4 beats 交通 · 交通/违停 = 0.5 · 0.3
    probs = {"category": np.array([[0.5, 0.45, 0.05]]),
             "subcategory": np.array([[0.3, 0.4, 0.0, 0.1, 0.2]])}
    [row] = decode(probs, SPACES, k=2)
    assert row["subcategory"].labels == ("环境/噪音", "交通/违停")
    assert row["category"].labels == ("环境", "交通")
    # confidences are the hierarchy-consistent probabilities, so they follow the order shown:
    # √joint of .15 .18 0 .005 .09, normalised; 环境 = 噪音 + 垃圾, 交通 = 违停 + 拥堵
    g = np.sqrt([0.15, 0.18, 0.0, 0.005, 0.09])
    g = g / g.sum()
    assert row["subcategory"].confidences == pytest.approx((g[1], g[0]))
    assert row["category"].confidences == pytest.approx((g[1] + g[4], g[0] + g[2]))


def test_heads_without_hierarchy_rank_by_their_own_probs() -> None:
    probs = {"category": np.array([[0.9, 0.05, 0.05]]),
             "subcategory": np.array([[0.0, 0.7, 0.1, 0.1, 0.1]]),
             "department": np.array([[0.1, 0.2, 0.6, 0.1]])}
    [row] = decode(probs, SPACES, k=3)
    assert row["department"] == Ranked(("住建局", "城管", "交警"), (0.6, 0.2, 0.1))
    assert set(row) == {"category", "subcategory", "department"}


def test_subcategory_alone_ranks_by_its_own_probs() -> None:
    [row] = decode({"subcategory": np.array([[0.1, 0.2, 0.3, 0.4, 0.0]])}, SPACES, k=2)
    assert row["subcategory"].labels == ("住房/物业", "交通/拥堵")


def test_department_only() -> None:
    rows = decode({"department": np.array([[0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]])},
                  SPACES, k=1)
    assert [r["department"].labels for r in rows] == [("环保局",), ("交警",)]


def test_k_larger_than_the_label_count() -> None:
    probs = {"category": np.array([[0.2, 0.5, 0.3]]),
             "subcategory": np.array([[0.1, 0.3, 0.2, 0.3, 0.1]]),
             "department": np.array([[0.25, 0.25, 0.25, 0.25]])}
    [row] = decode(probs, SPACES, k=50)
    assert sorted(row["category"].labels) == sorted(CATEGORIES)
    assert sorted(row["subcategory"].labels) == sorted(SUBCATEGORIES)
    assert row["department"].labels == tuple(DEPARTMENTS)  # ties keep label order


def test_category_without_subcategories_ranks_last() -> None:
    spaces = {"category": ["A", "B", "C"], "subcategory": ["A/x", "C/y"]}
    probs = {"category": np.array([[0.2, 0.7, 0.1]]), "subcategory": np.array([[0.5, 0.5]])}
    [row] = decode(probs, spaces, k=3)
    assert row["category"].labels == ("A", "C", "B")
    assert row["subcategory"].labels == ("A/x", "C/y")


def test_ties_keep_category_and_subcategory_consistent() -> None:
    # equal joint scores, and the duty list does not group subcategories by category
    spaces = {"category": ["A", "B"], "subcategory": ["B/x", "A/y"]}
    probs = {"category": np.array([[0.5, 0.5], [0.0, 0.0]]),
             "subcategory": np.array([[0.5, 0.5], [0.0, 0.0]])}
    for row in decode(probs, spaces, k=2):
        assert row["category"].label == _parent(row["subcategory"].label)


def test_unknown_parent_is_refused() -> None:
    spaces = {"category": ["A"], "subcategory": ["A/x", "B/y"]}
    probs = {"category": np.array([[1.0]]), "subcategory": np.array([[0.5, 0.5]])}
    with pytest.raises(ValueError, match="known category"):
        decode(probs, spaces)


@st.composite
def taxonomies_and_probs(draw: st.DrawFn) -> tuple[dict[str, list[str]], dict[str, np.ndarray]]:
    n_cat = draw(st.integers(1, 5))
    categories = [f"c{i}" for i in range(n_cat)]
    parents = draw(st.lists(st.integers(0, n_cat - 1), min_size=1, max_size=10))
    subcategories = [f"c{p}/s{j}" for j, p in enumerate(parents)]
    n = draw(st.integers(1, 6))
    # coarse values make ties (and all-zero rows) common; a model can produce both
    values = st.one_of(st.sampled_from([0.0, 0.25, 0.5, 1.0]),
                       st.floats(0, 1, allow_nan=False, width=32))
    cat = draw(arrays(np.float64, (n, n_cat), elements=values))
    sub = draw(arrays(np.float64, (n, len(subcategories)), elements=values))
    norm = draw(st.booleans())
    if norm:  # rows that sum to one, as calibrated probabilities do (all-zero rows stay zero)
        cat = cat / np.maximum(cat.sum(axis=1, keepdims=True), 1e-12)
        sub = sub / np.maximum(sub.sum(axis=1, keepdims=True), 1e-12)
    return ({"category": categories, "subcategory": subcategories},
            {"category": cat, "subcategory": sub})


@settings(max_examples=150, deadline=None)
@given(taxonomies_and_probs(), st.integers(1, 12))
def test_top_category_is_the_parent_of_the_top_subcategory(
        case: tuple[dict[str, list[str]], dict[str, np.ndarray]], k: int) -> None:
    spaces, probs = case
    rows = decode(probs, spaces, k=k)
    assert len(rows) == len(probs["category"])
    parents = parent_index(spaces["category"], spaces["subcategory"])
    for i, row in enumerate(rows):
        cat, sub = row["category"], row["subcategory"]
        assert cat.label == _parent(sub.label)
        # the top subcategory maximises p(category) · p(subcategory)
        joint = probs["subcategory"][i] * probs["category"][i][parents]
        assert joint[spaces["subcategory"].index(sub.label)] == joint.max()
        # every label at most once, k of them (or all); the subcategories' confidences follow
        # their order and sum to one with the others'; a category's is its subcategories' sum
        root = np.sqrt(joint)
        total = root.sum()
        shown = root / total if total > 0 else root
        for head, ranked in row.items():
            space = spaces[head]
            assert len(ranked.labels) == len(set(ranked.labels)) == min(k, len(space))
        assert list(sub.confidences) == sorted(sub.confidences, reverse=True)
        assert sub.confidences == pytest.approx(
            [shown[spaces["subcategory"].index(s)] for s in sub.labels])
        assert cat.confidences == pytest.approx(
            [sum(shown[j] for j, p in enumerate(parents) if spaces["category"][p] == c)
             for c in cat.labels])
        assert list(cat.confidences[1:]) == sorted(cat.confidences[1:], reverse=True)
